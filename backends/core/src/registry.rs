//! The model registry file (`models/registry.toml`): which models exist, what stage they
//! serve, which files they need (relative to the models directory), how much memory they
//! take and what input limits apply.
//!
//! ```toml
//! [[model]]
//! name = "minilm-l6-v2"
//! stage = "embed"
//! onnx = "minilm-l6-v2/model.onnx"
//! tokenizer = "minilm-l6-v2/tokenizer.json"
//! memory_bytes = 120_000_000
//! max_input_tokens = 128
//! overflow = "truncate"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::precision::Precision;
use crate::stage::StageKind;

/// What to do with an input longer than `max_input_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowPolicy {
    /// Cut the input to the limit.
    Truncate,
    /// Refuse the request with an InvalidInput error.
    Refuse,
}

/// One registry entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Unique name clients use (`minilm-l6-v2`, `router`, `smollm2-135m`).
    pub name: String,
    /// The stage this model serves.
    pub stage: StageKind,
    /// ONNX graph, relative to the models directory (absolute after [`ModelRegistry::load`]);
    /// empty for an engine model.
    #[serde(default)]
    pub onnx: PathBuf,
    /// `tokenizer.json`, relative to the models directory; empty for an engine model.
    #[serde(default)]
    pub tokenizer: PathBuf,
    /// Expected SHA-256 of the ONNX file (hex), checked by the set-up step.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Estimated resident memory on a device, bytes. An engine model may leave it out: it is
    /// then computed from its GGUF header ([`crate::gguf::GgufInfo::estimate`]) where the
    /// file exists (0 where it does not: such a host cannot serve it).
    #[serde(default)]
    pub memory_bytes: u64,
    /// Longest input accepted, in tokens.
    pub max_input_tokens: u32,
    /// What to do with an input over `max_input_tokens` (default: truncate).
    #[serde(default = "default_overflow")]
    pub overflow: OverflowPolicy,
    /// Classify: label names in output order.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Embed: vector width.
    #[serde(default)]
    pub embedding_dim: Option<u32>,
    /// Generate: the tier this model answers (`fast`, `code`, `heavy`).
    #[serde(default)]
    pub tier: Option<String>,
    /// Generate: context window in tokens (prompt + completion).
    #[serde(default)]
    pub context_tokens: Option<u32>,
    /// Generate: chat template name (`chatml`).
    #[serde(default)]
    pub chat_template: Option<String>,
    /// Generate: a system prompt prepended when the request has none.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Generate: tokens that end generation (e.g. `<|im_end|>`).
    #[serde(default)]
    pub stop_tokens: Vec<String>,
    /// Largest batch the model accepts in one call (classify/embed).
    #[serde(default = "default_max_batch")]
    pub max_batch: u32,
    /// Classify/embed on a CPU: streams of the model that compute side by side, splitting
    /// the inference threads, each with a batch of its own (default 1: one stream on all the
    /// threads, the lowest latency for a lone request; more streams raise throughput under
    /// heavy load). OpenVINO runs them over one compiled model; ONNX Runtime, GPUs and NPUs
    /// run one. A generate model's entry may not set it.
    #[serde(default)]
    pub streams: Option<u32>,
    /// The precision the model must compute at (default `f32`). Backends set it explicitly
    /// and refuse a device where they cannot honour it; traces report what ran.
    #[serde(default)]
    pub precision: Precision,
    /// Other precisions the model may compute at where a device cannot do `precision`
    /// (an Intel NPU computes at f16 only: `also_at = ["f16"]`). Placement admits a device
    /// whose backend computes at any of them; the agent loads at the first its backend has
    /// on that device (`precision` first); the trace says which.
    #[serde(default)]
    pub also_at: Vec<Precision>,
    /// Backend ids allowed to run the model (`["openvino"]`); empty (the default): any.
    #[serde(default)]
    pub backends: Vec<String>,
    /// Free-form facts (licence, origin package) shown by `GET /v1/models`.
    #[serde(default)]
    pub info: BTreeMap<String, String>,
    /// Served by an engine process the agent supervises instead of an ONNX backend:
    /// `engine = { kind = "llama_cpp", gguf = "dir/model.gguf", parallel = 4 }`.
    #[serde(default)]
    pub engine: Option<EngineSpec>,
}

impl ModelSpec {
    /// Every precision the model may compute at, `precision` first.
    pub fn precisions(&self) -> Vec<Precision> {
        let mut all = vec![self.precision];
        for p in &self.also_at {
            if !all.contains(p) {
                all.push(*p);
            }
        }
        all
    }

    /// The precision to load at on a device whose backend computes at `supported` (what its
    /// probe found; empty: unknown, then `precision`): the first of [`Self::precisions`] it
    /// has.
    pub fn precision_on(&self, supported: &[Precision]) -> Precision {
        if supported.is_empty() {
            return self.precision;
        }
        self.precisions()
            .into_iter()
            .find(|p| supported.contains(p))
            .unwrap_or(self.precision)
    }
}

/// The engine kinds the agent can supervise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    /// llama.cpp's `llama-server`.
    LlamaCpp,
}

impl EngineKind {
    /// The backend id placement and traces use (`llama_cpp`).
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::LlamaCpp => "llama_cpp",
        }
    }
}

/// How an engine serves a model (`engine = { … }` of a registry entry).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSpec {
    /// The engine.
    pub kind: EngineKind,
    /// The GGUF file, relative to the models directory (or absolute).
    pub gguf: PathBuf,
    /// Concurrent slots (`--parallel`), each of `context_tokens` (default 4).
    #[serde(default = "default_parallel")]
    pub parallel: u32,
    /// A Jinja chat template to use instead of the one in the GGUF (`--chat-template-file`),
    /// relative to the registry file's directory (or absolute): e.g. one that describes
    /// tools, so the engine can answer tool calls.
    #[serde(default)]
    pub chat_template: Option<PathBuf>,
    /// The least device memory a part of the model can run in (llama.cpp's `-ngl 2`: the
    /// compute buffer, the output layer and one layer), from the GGUF header; `None` when
    /// the file is not on this host.
    #[serde(skip)]
    pub offload_min_bytes: Option<u64>,
}

fn default_parallel() -> u32 {
    4
}

fn default_overflow() -> OverflowPolicy {
    OverflowPolicy::Truncate
}

/// The most streams an entry may ask for.
pub const MAX_STREAMS: u32 = 64;

fn default_max_batch() -> u32 {
    32
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default, rename = "model")]
    models: Vec<ModelSpec>,
}

/// Errors reading a registry file.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The file could not be read.
    #[error("cannot read model registry {path}: {source}")]
    Read {
        /// The registry file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema (unknown key, wrong type).
    #[error("invalid model registry {path}: {message}")]
    Parse {
        /// The registry file.
        path: PathBuf,
        /// The parser's message, on one line.
        message: String,
    },
    /// The file parses but an entry is inconsistent (empty name, zero limit, duplicate...).
    #[error("invalid model registry {path}: {message}")]
    Invalid {
        /// The registry file.
        path: PathBuf,
        /// Which entry is wrong and why.
        message: String,
    },
}

/// All registered models, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelRegistry {
    models: BTreeMap<String, ModelSpec>,
    /// Directory the relative file paths were resolved against.
    pub models_dir: PathBuf,
}

impl ModelRegistry {
    /// Reads `path`, resolving file paths against `models_dir`. Unknown keys, duplicate
    /// names and inconsistent entries (a classifier without labels, ...) are errors.
    pub fn load(path: &Path, models_dir: &Path) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path, models_dir)
    }

    /// Parses registry text (see [`ModelRegistry::load`]); `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path, models_dir: &Path) -> Result<Self, RegistryError> {
        let file: RegistryFile = toml::from_str(text).map_err(|e| RegistryError::Parse {
            path: origin.to_owned(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        let invalid = |message: String| RegistryError::Invalid {
            path: origin.to_owned(),
            message,
        };
        let mut models = BTreeMap::new();
        for mut spec in file.models {
            if spec.name.is_empty() {
                return Err(invalid("a model has an empty name".into()));
            }
            check_files(
                &mut spec,
                models_dir,
                origin.parent().unwrap_or(Path::new(".")),
            )
            .map_err(invalid)?;
            if spec.memory_bytes == 0 && spec.engine.is_none() {
                return Err(invalid(format!(
                    "model {}: memory_bytes must be > 0",
                    spec.name
                )));
            }
            if spec.max_input_tokens == 0 {
                return Err(invalid(format!(
                    "model {}: max_input_tokens must be > 0",
                    spec.name
                )));
            }
            if spec.max_batch == 0 {
                return Err(invalid(format!(
                    "model {}: max_batch must be > 0",
                    spec.name
                )));
            }
            match spec.streams {
                Some(0) => {
                    return Err(invalid(format!(
                        "model {}: streams must be > 0 (1 runs a single instance)",
                        spec.name
                    )));
                }
                Some(n) if n > MAX_STREAMS => {
                    return Err(invalid(format!(
                        "model {}: streams = {n} is more than {MAX_STREAMS}",
                        spec.name
                    )));
                }
                Some(_) if spec.stage == StageKind::Generate => {
                    return Err(invalid(format!(
                        "model {}: streams applies to classify and embed models only (a \
                         generate model runs one instance; an engine sets its own slots)",
                        spec.name
                    )));
                }
                _ => {}
            }
            match spec.stage {
                StageKind::Classify if spec.labels.len() < 2 => {
                    return Err(invalid(format!(
                        "model {}: a classify model needs at least two labels",
                        spec.name
                    )));
                }
                StageKind::Generate if spec.context_tokens.is_none() => {
                    return Err(invalid(format!(
                        "model {}: a generate model needs context_tokens",
                        spec.name
                    )));
                }
                _ => {}
            }
            if let Some(b) = spec.backends.iter().find(|b| b.trim().is_empty()) {
                return Err(invalid(format!(
                    "model {}: backends lists an empty id {b:?}",
                    spec.name
                )));
            }
            let name = spec.name.clone();
            if models.insert(name.clone(), spec).is_some() {
                return Err(invalid(format!("model {name} is registered twice")));
            }
        }
        Ok(ModelRegistry {
            models,
            models_dir: models_dir.to_owned(),
        })
    }

    /// Builds a registry from specs whose paths are already absolute (tests, embedding).
    pub fn from_specs(specs: impl IntoIterator<Item = ModelSpec>) -> Self {
        ModelRegistry {
            models: specs.into_iter().map(|s| (s.name.clone(), s)).collect(),
            models_dir: PathBuf::new(),
        }
    }

    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Option<&ModelSpec> {
        self.models.get(name)
    }

    /// Every entry, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &ModelSpec> {
        self.models.values()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// True when no model is registered.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// Names of models whose files exist on this host.
    pub fn available(&self) -> Vec<String> {
        self.iter()
            .filter(|s| match &s.engine {
                Some(e) => e.gguf.is_file(),
                None => s.onnx.is_file() && s.tokenizer.is_file(),
            })
            .map(|s| s.name.clone())
            .collect()
    }
}

/// Resolves an entry's files against `models_dir`; an engine entry gets its backend, and its
/// memory and facts from the GGUF header when the file is here.
fn check_files(spec: &mut ModelSpec, models_dir: &Path, registry_dir: &Path) -> Result<(), String> {
    let name = spec.name.clone();
    let Some(engine) = spec.engine.as_mut() else {
        if spec.onnx.as_os_str().is_empty() || spec.tokenizer.as_os_str().is_empty() {
            return Err(format!(
                "model {name}: onnx and tokenizer are required (or engine = {{ kind = \"llama_cpp\", gguf = \"…\" }})"
            ));
        }
        spec.onnx = models_dir.join(&spec.onnx);
        spec.tokenizer = models_dir.join(&spec.tokenizer);
        return Ok(());
    };
    if spec.stage != StageKind::Generate {
        return Err(format!(
            "model {name}: an engine serves generate models only"
        ));
    }
    if !spec.onnx.as_os_str().is_empty() || !spec.tokenizer.as_os_str().is_empty() {
        return Err(format!(
            "model {name}: an engine model names its gguf file, not onnx/tokenizer"
        ));
    }
    if engine.gguf.as_os_str().is_empty() || engine.parallel == 0 {
        return Err(format!(
            "model {name}: engine needs a gguf file and parallel ≥ 1"
        ));
    }
    let kind = engine.kind.as_str();
    if spec.backends.iter().any(|b| b != kind) {
        return Err(format!(
            "model {name}: an engine model runs on backend {kind} only (backends = {:?})",
            spec.backends
        ));
    }
    spec.backends = vec![kind.to_string()];
    if let Some(t) = engine.chat_template.as_mut() {
        *t = registry_dir.join(&*t);
        if !t.is_file() {
            return Err(format!(
                "model {name}: chat_template {} is not a file",
                t.display()
            ));
        }
    }
    engine.gguf = models_dir.join(&engine.gguf);
    if !engine.gguf.is_file() {
        return Ok(());
    }
    let info =
        crate::gguf::GgufInfo::read(&engine.gguf).map_err(|e| format!("model {name}: {e}"))?;
    let ctx = spec.context_tokens.unwrap_or(info.context_length);
    if spec.memory_bytes == 0 {
        spec.memory_bytes = info.estimate(ctx, engine.parallel).total();
    }
    engine.offload_min_bytes = Some(info.min_offload_bytes(ctx, engine.parallel));
    let facts = [
        ("family", info.architecture.clone()),
        ("quantization", info.quantization()),
        (
            "parameter_size",
            info.size_label.clone().unwrap_or_default(),
        ),
    ];
    for (k, v) in facts {
        if !v.is_empty() {
            spec.info.entry(k.to_string()).or_insert(v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod engine_tests;

pub mod added;
