//! Placement policy: pack or spread, memory headroom, per-stage device preferences,
//! per-device-kind backend preferences and score weights.
//!
//! Deserialises from the controller's TOML (`[placement]`), unknown keys rejected:
//!
//! ```toml
//! mode = "spread"                 # or "pack"
//! memory_headroom_ratio = 0.1     # keep 10 % of a device's memory free
//! allow_unlisted_kinds = true     # kinds missing from a stage's list rank last instead of never
//! allow_simulated = false         # true only for a cluster started on fixtures
//! default_throttle_celsius = 90.0 # for devices that do not report their throttle point
//! thermal_margin_celsius = 15.0   # the thermal term backs off over this last stretch
//!
//! [stage_preferences]
//! classify = ["ncs2", "intel_npu", "cpu"]
//!
//! [backend_preferences]
//! cpu = ["openvino", "ort-cpu"]   # measured faster on this CPU
//!
//! [weights]
//! kind_step = 20.0
//! ```
//!
//! # The score
//!
//! A candidate's score is the sum of weighted terms, each in `[0, weight]`; higher wins:
//!
//! | term | value | default weight |
//! |---|---|---|
//! | kind preference | `kind_step × (5 − rank)` (rank 0 = the stage's first kind) | 20 per step |
//! | warm | model already resident, times the idle share of its queue (a saturated warm device loses the bonus, so an idle one of the kind loads the model) | 6 |
//! | TOPS | `min(1, ln(1 + tops) / ln(1 + tops_ref))` (measured TOPS when known) | 3, `tops_ref` 2000 |
//! | memory | free share after placement (spread) or its complement (pack) | 1 |
//! | queue | idle share of the device's queue: `1 − depth / max_concurrency` (or `depth / (depth + 8)` unbounded); depth = max(requests this controller has in flight there, what the agent reports) | 2 |
//! | latency | `avg / (avg + ewma)`: this device's EWMA against the model's average | 2 |
//! | utilisation | `1 − utilisation` the agent reports | 1.5 |
//! | thermal | `min(1, (throttle − temperature) / thermal_margin_celsius)`, 0 at or past the throttle point | 2 |
//! | power | `1 − power / power_limit`: headroom under the device's power cap | 1 |
//! | partial offload | an engine model bigger than a GPU's room, run partly there (llama.cpp `-ngl`): `−3 × kind_step × (1 − share on the device)`; 0 when it fits whole | 0 to −60 |
//!
//! A figure the agent does not report costs nothing (the term is at its full weight), except
//! latency, which is at half weight until known. The kind step is larger than all other
//! terms together (18.5 by default), so the stage's preference order decides between kinds
//! and the other terms between devices of one kind. TOPS uses a log scale so it still tells
//! devices apart at the top (an H100 at ~1979 TOPS scores 1.00, an RTX 3090 at 284 TOPS
//! 0.74, a CPU at 1 TOPS 0.09) where `tops / (tops + 50)` gave 0.975 and 0.85.

use serde::Deserialize;
use switchyard_backend_core::{DeviceType, StageKind};

use crate::view::{DEVICE_KINDS, kind_index, kind_name};

/// Whether new work goes where memory is already used (pack) or where most is free (spread).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlacementMode {
    /// Fill devices up: prefer the device with the least free memory left after placement.
    Pack,
    /// Balance: prefer the device with the most free memory left after placement.
    #[default]
    Spread,
}

/// Ordered device kinds per stage (best first).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StagePreferences {
    /// Router / classifier models.
    pub classify: Vec<DeviceType>,
    /// Embedding models.
    pub embed: Vec<DeviceType>,
    /// Generators.
    pub generate: Vec<DeviceType>,
}

impl Default for StagePreferences {
    fn default() -> Self {
        use DeviceType::*;
        StagePreferences {
            // Ranked by what each kind can run today: an NCS2 needs the legacy OpenVINO
            // 2022.3 runtime (no current release carries its plugin), so it comes after the
            // devices that run now; an NPU generates (llama.cpp's OpenVINO backend, 2-30
            // tok/s for 1B models) only when nothing else is free.
            classify: vec![IntelNpu, Cpu, Ncs2],
            embed: vec![IntelNpu, IntelGpu, NvidiaGpu, Cpu],
            generate: vec![NvidiaGpu, IntelGpu, VulkanGpu, Cpu, IntelNpu],
        }
    }
}

impl StagePreferences {
    /// The list for one stage.
    pub fn for_stage(&self, stage: StageKind) -> &[DeviceType] {
        match stage {
            StageKind::Classify => &self.classify,
            StageKind::Embed => &self.embed,
            StageKind::Generate => &self.generate,
        }
    }
}

/// Ordered backend ids per device kind (best first). Backends a device offers that are not
/// listed stay usable, after the listed ones, in the device's own order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendPreferences {
    /// Host CPU.
    pub cpu: Vec<String>,
    /// NVIDIA GPUs.
    pub nvidia_gpu: Vec<String>,
    /// Intel GPUs.
    pub intel_gpu: Vec<String>,
    /// Intel NPUs.
    pub intel_npu: Vec<String>,
    /// NCS2 sticks.
    pub ncs2: Vec<String>,
    /// GPUs reached through Vulkan only.
    pub vulkan_gpu: Vec<String>,
}

impl Default for BackendPreferences {
    fn default() -> Self {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        BackendPreferences {
            // OpenVINO measured 2.3x faster than ORT's CPU EP on MiniLM here (FIELD-NOTES).
            cpu: v(&["openvino", "ort-openvino", "ort-cpu"]),
            // CUDA before TensorRT: TensorRT needs a long engine build on first load.
            nvidia_gpu: v(&["ort-cuda", "ort-tensorrt"]),
            intel_gpu: v(&["openvino", "ort-openvino"]),
            intel_npu: v(&["openvino", "ort-openvino"]),
            ncs2: v(&["openvino"]),
            vulkan_gpu: v(&["llama_cpp"]),
        }
    }
}

impl BackendPreferences {
    /// The list for one device kind.
    pub fn for_kind(&self, kind: DeviceType) -> &[String] {
        match kind {
            DeviceType::Cpu => &self.cpu,
            DeviceType::NvidiaGpu => &self.nvidia_gpu,
            DeviceType::IntelGpu => &self.intel_gpu,
            DeviceType::IntelNpu => &self.intel_npu,
            DeviceType::Ncs2 => &self.ncs2,
            DeviceType::VulkanGpu => &self.vulkan_gpu,
        }
    }
}

/// Weights of the score terms (see the module docs for the table). A candidate's score is
/// the sum of its terms; higher wins.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoreWeights {
    /// Score per step of kind preference (the best listed kind gets `5 × kind_step`, the next
    /// `4 × kind_step`...). Larger than the other terms together so preference dominates.
    pub kind_step: f64,
    /// Bonus when the model is already resident on the device (no load, no memory needed).
    pub warm: f64,
    /// Weight of `min(1, ln(1 + tops) / ln(1 + tops_ref))` (measured TOPS when known).
    pub tops: f64,
    /// TOPS at which the TOPS term reaches its full weight.
    pub tops_ref: f64,
    /// Weight of the free-memory ratio after placement (spread) or its complement (pack).
    pub memory: f64,
    /// Weight of the idle share of the device's queue.
    pub queue: f64,
    /// Weight of `avg / (avg + ewma)`: latency EWMA on this device against the model's
    /// average over all devices (half the weight when unknown or average).
    pub latency: f64,
    /// Weight of `1 − utilisation` (as the agent reports it).
    pub utilization: f64,
    /// Weight of the thermal headroom before the device's throttle point.
    pub thermal: f64,
    /// Weight of the power headroom under the device's power cap.
    pub power: f64,
}

impl Default for ScoreWeights {
    fn default() -> Self {
        ScoreWeights {
            kind_step: 20.0,
            warm: 6.0,
            tops: 3.0,
            tops_ref: 2000.0,
            memory: 1.0,
            queue: 2.0,
            latency: 2.0,
            utilization: 1.5,
            thermal: 2.0,
            power: 1.0,
        }
    }
}

impl ScoreWeights {
    /// The most every term but kind preference can add together.
    pub fn others_max(&self) -> f64 {
        self.warm
            + self.tops
            + self.memory
            + self.queue
            + self.latency
            + self.utilization
            + self.thermal
            + self.power
    }
}

/// The placement policy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlacementPolicy {
    /// Pack or spread.
    pub mode: PlacementMode,
    /// Share of a device's total memory that must stay free after placement (0 ≤ r < 1).
    pub memory_headroom_ratio: f64,
    /// Device kinds per stage, best first.
    pub stage_preferences: StagePreferences,
    /// When `true`, kinds missing from a stage's list are still eligible, ranked after every
    /// listed kind; when `false` they are rejected.
    pub allow_unlisted_kinds: bool,
    /// When `false` (the default), simulated (fixture) devices are rejected: they execute
    /// on a CPU while claiming to be something else. `switchyard up --fixture` sets it.
    pub allow_simulated: bool,
    /// Throttle point assumed for devices that do not report one, °C.
    pub default_throttle_celsius: f64,
    /// The thermal term falls from full weight to 0 over this many °C below the throttle
    /// point.
    pub thermal_margin_celsius: f64,
    /// Backend ids per device kind, best first.
    pub backend_preferences: BackendPreferences,
    /// Score weights.
    pub weights: ScoreWeights,
    /// The largest model an NPU generates with (bytes when loaded). NPUs decode at 2–30
    /// tokens/s for 1B-parameter models (2026 reports for Intel Core Ultra NPUs through
    /// llama.cpp's OpenVINO backend and OpenVINO GenAI): fine for small models, draft models
    /// and classify/embed, too slow for bigger ones. Default 2.5 GB (a 3B model at Q4).
    pub npu_generate_max_bytes: u64,
}

impl Default for PlacementPolicy {
    fn default() -> Self {
        PlacementPolicy {
            mode: PlacementMode::Spread,
            memory_headroom_ratio: 0.1,
            stage_preferences: StagePreferences::default(),
            allow_unlisted_kinds: true,
            allow_simulated: false,
            default_throttle_celsius: 90.0,
            thermal_margin_celsius: 15.0,
            backend_preferences: BackendPreferences::default(),
            weights: ScoreWeights::default(),
            npu_generate_max_bytes: 2_500_000_000,
        }
    }
}

/// A policy value out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// Headroom must be in [0, 1).
    #[error("memory_headroom_ratio must be in [0, 1), got {0}")]
    Headroom(f64),
    /// A weight is negative or not finite.
    #[error("weights.{name} must be a finite number ≥ 0, got {value}")]
    Weight {
        /// Field name.
        name: &'static str,
        /// The value given.
        value: f64,
    },
    /// A thermal setting is out of range.
    #[error("{name} must be a finite number (margin > 0), got {value}")]
    Thermal {
        /// Field name.
        name: &'static str,
        /// The value given.
        value: f64,
    },
    /// A kind appears twice in one stage's list.
    #[error("stage_preferences.{stage} lists {kind} twice")]
    DuplicateKind {
        /// Stage name.
        stage: &'static str,
        /// Kind name.
        kind: &'static str,
    },
}

impl PlacementPolicy {
    /// Checks ranges; call after deserialising.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let h = self.memory_headroom_ratio;
        if !(h.is_finite() && (0.0..1.0).contains(&h)) {
            return Err(PolicyError::Headroom(h));
        }
        let w = &self.weights;
        for (name, value) in [
            ("kind_step", w.kind_step),
            ("warm", w.warm),
            ("tops", w.tops),
            ("tops_ref", w.tops_ref),
            ("memory", w.memory),
            ("queue", w.queue),
            ("latency", w.latency),
            ("utilization", w.utilization),
            ("thermal", w.thermal),
            ("power", w.power),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(PolicyError::Weight { name, value });
            }
        }
        if !(self.thermal_margin_celsius.is_finite() && self.thermal_margin_celsius > 0.0) {
            return Err(PolicyError::Thermal {
                name: "thermal_margin_celsius",
                value: self.thermal_margin_celsius,
            });
        }
        if !self.default_throttle_celsius.is_finite() {
            return Err(PolicyError::Thermal {
                name: "default_throttle_celsius",
                value: self.default_throttle_celsius,
            });
        }
        for stage in [StageKind::Classify, StageKind::Embed, StageKind::Generate] {
            let list = self.stage_preferences.for_stage(stage);
            for (i, k) in list.iter().enumerate() {
                if list[..i].contains(k) {
                    return Err(PolicyError::DuplicateKind {
                        stage: stage.as_str(),
                        kind: kind_name(*k),
                    });
                }
            }
        }
        Ok(())
    }

    /// Preference rank of each kind (index by [`DEVICE_KINDS`] order) for a stage: 0 is best;
    /// unlisted kinds get the list length when allowed, `None` otherwise.
    pub fn kind_ranks(&self, stage: StageKind) -> [Option<u8>; DEVICE_KINDS.len()] {
        let list = self.stage_preferences.for_stage(stage);
        let mut ranks = [None; DEVICE_KINDS.len()];
        for (rank, kind) in list.iter().enumerate() {
            let slot = &mut ranks[kind_index(*kind)];
            if slot.is_none() {
                *slot = Some(rank as u8);
            }
        }
        if self.allow_unlisted_kinds {
            let last = list.len() as u8;
            for (i, _) in DEVICE_KINDS.iter().enumerate() {
                ranks[i].get_or_insert(last);
            }
        }
        ranks
    }
}

#[cfg(test)]
mod tests;
