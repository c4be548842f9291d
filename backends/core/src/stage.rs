//! Stage kinds, device references and the typed inputs/outputs of each stage.

use serde::{Deserialize, Serialize};

/// The kind of work a pipeline stage does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// Pick a label (the router: which tier should answer).
    Classify,
    /// Turn text into a vector.
    Embed,
    /// Produce text token by token.
    Generate,
}

impl StageKind {
    /// Short name (`classify`, `embed`, `generate`).
    pub fn as_str(self) -> &'static str {
        match self {
            StageKind::Classify => "classify",
            StageKind::Embed => "embed",
            StageKind::Generate => "generate",
        }
    }
}

/// The device families a backend may address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceType {
    /// The host CPU.
    Cpu,
    /// An NVIDIA GPU (CUDA).
    NvidiaGpu,
    /// An Intel integrated or discrete GPU (OpenVINO `GPU`).
    IntelGpu,
    /// An Intel NPU (OpenVINO `NPU`).
    IntelNpu,
    /// An Intel Neural Compute Stick 2 (Myriad X VPU).
    Ncs2,
    /// A GPU reached through Vulkan only (AMD, other vendors, a software Vulkan device).
    VulkanGpu,
}

/// Which device a backend should run on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceRef {
    /// Inventory id of the device (UUID, PCI address, `cpu`).
    pub id: String,
    /// The device's family.
    pub device_type: DeviceType,
    /// Index among devices of the same type as the runtime numbers them (CUDA ordinal,
    /// OpenVINO `GPU.N`).
    pub ordinal: u32,
}

impl DeviceRef {
    /// The host CPU.
    pub fn cpu() -> Self {
        DeviceRef {
            id: "cpu".into(),
            device_type: DeviceType::Cpu,
            ordinal: 0,
        }
    }
}

/// Output of an embed batch.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedOutput {
    /// One L2-normalised vector per input.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens per input after truncation.
    pub token_counts: Vec<u32>,
}

/// Output of classifying one input.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassScores {
    /// Probability per label, in the registry's label order.
    pub probabilities: Vec<f32>,
    /// Index of the most probable label.
    pub top: usize,
}

/// A generation request as a loaded model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateParams {
    /// Chat messages `(role, content)`, rendered with the model's chat template. When empty,
    /// `prompt` is used verbatim.
    pub messages: Vec<(String, String)>,
    /// Raw prompt text, used only when `messages` is empty.
    pub prompt: String,
    /// Most tokens to generate (further capped by the model's context window).
    pub max_tokens: u32,
    /// 0 = greedy.
    pub temperature: f32,
    /// 1.0 = off.
    pub top_p: f32,
    /// Sample among the k most likely tokens; 0 = off.
    pub top_k: u32,
    /// Logit bias and repetition penalties; the default is off.
    pub penalties: crate::sampling::Penalties,
    /// Seed of the sampling RNG; `None` uses a fixed default, so runs are repeatable.
    pub seed: Option<u64>,
    /// Extra stop strings on top of the model's own stop tokens.
    pub stop: Vec<String>,
    /// The assistant's reply so far, continued instead of starting a new one (a stream
    /// resumed after its first device failed); empty: a new reply.
    pub continuation: String,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            messages: Vec::new(),
            prompt: String::new(),
            max_tokens: 64,
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            penalties: crate::sampling::Penalties::default(),
            seed: None,
            stop: Vec::new(),
            continuation: String::new(),
        }
    }
}

/// One decoded piece of generated text.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenEvent {
    /// Id of the token that completed this piece.
    pub token_id: u32,
    /// The new text (complete UTF-8; may span several tokens).
    pub text: String,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// A stop token or stop string.
    Stop,
    /// `max_tokens` or the context window was reached.
    Length,
    /// The consumer stopped listening.
    Cancelled,
}

impl FinishReason {
    /// OpenAI's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// Totals of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateSummary {
    /// Tokens in the prompt as fed to the model (after any truncation).
    pub prompt_tokens: u32,
    /// Tokens generated, stop tokens excluded.
    pub completion_tokens: u32,
    /// Why generation ended.
    pub finish_reason: FinishReason,
}
