//! Models added to the cluster with `switchyard models add`: GGUF files users already have (a
//! path, or a model of the local Ollama store, used in place), kept as ordinary registry
//! entries. The controller holds the set in its data directory ([`load`], [`save`]) and sends
//! it to every agent; both merge it into the registry ([`ModelRegistry::with_added`]), so an
//! added model is validated by the same parser as a shipped one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ModelRegistry, RegistryError};
use crate::gguf::{GgufInfo, MemoryEstimate};

/// One added model, as written to [`ADDED_FILE`] (a `[[model]]` registry entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddedModel {
    /// Registry name.
    pub name: String,
    /// Always `generate`.
    pub stage: String,
    /// Tier label (`fast`, `code`, `heavy`), shown by `models list`; `[routes]` decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Longest prompt accepted, tokens.
    pub max_input_tokens: u32,
    /// Context per slot, tokens.
    pub context_tokens: u32,
    /// sha256 of the GGUF file.
    pub sha256: String,
    /// The memory estimate at add time (weights + KV cache + compute), so a host without
    /// the file (the controller's) still fits the model honestly.
    pub memory_bytes: u64,
    /// The engine that serves it.
    pub engine: AddedEngine,
    /// Where it came from and what the header says.
    #[serde(default)]
    pub info: BTreeMap<String, String>,
}

/// `engine = { kind = "llama_cpp", gguf = "/abs/path", parallel = N }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddedEngine {
    /// `llama_cpp`.
    pub kind: String,
    /// Absolute path of the GGUF file.
    pub gguf: PathBuf,
    /// Concurrent slots.
    pub parallel: u32,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddedFile {
    #[serde(default, rename = "model")]
    models: Vec<AddedModel>,
}

/// What `models add` asks for.
#[derive(Debug, Clone)]
pub struct AddRequest {
    /// Registry name.
    pub name: String,
    /// The GGUF file.
    pub gguf: PathBuf,
    /// Tier label.
    pub tier: Option<String>,
    /// Context per slot; default: the trained context, at most 4096.
    pub ctx: Option<u32>,
    /// Slots.
    pub parallel: u32,
    /// The file's sha256 when already known (an Ollama blob is named by it).
    pub sha256: Option<String>,
    /// Where it came from, for `info.origin`.
    pub origin: String,
}

/// The added models kept in `file` (none when it does not exist).
pub fn load(file: &Path) -> Result<Vec<AddedModel>, RegistryError> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(RegistryError::Read {
                path: file.to_path_buf(),
                source,
            });
        }
    };
    let parsed: AddedFile = toml::from_str(&text).map_err(|e| RegistryError::Parse {
        path: file.to_path_buf(),
        message: e.to_string().trim().replace('\n', " "),
    })?;
    Ok(parsed.models)
}

/// Writes `models` to `file` (atomically: a temporary file renamed over the old one).
pub fn save(file: &Path, models: &[AddedModel]) -> Result<(), RegistryError> {
    let io = |source| RegistryError::Read {
        path: file.to_path_buf(),
        source,
    };
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let text = to_toml(models, file)?;
    let tmp = file.with_extension("toml.tmp");
    std::fs::write(
        &tmp,
        format!("# The cluster's added models: written by the controller (`switchyard models add` / `rm`).\n{text}"),
    )
    .map_err(io)?;
    std::fs::rename(&tmp, file).map_err(io)
}

fn to_toml(models: &[AddedModel], origin: &Path) -> Result<String, RegistryError> {
    toml::to_string(&AddedFile {
        models: models.to_vec(),
    })
    .map_err(|e| RegistryError::Parse {
        path: origin.to_path_buf(),
        message: e.to_string(),
    })
}

/// A name a model may have: 1–64 of `a-z 0-9 . _ : -`, starting with a letter or digit.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._:-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "model name {name:?}: use 1–64 of a-z 0-9 . _ : - (starting with a letter or digit)"
        ))
    }
}

/// Reads the GGUF header of `req.gguf` and makes its entry, with the header and the
/// memory estimate it was computed from. `sha256` hashes the file when the request does
/// not carry one (`progress` gets bytes done, total).
pub fn entry(
    req: &AddRequest,
    sha256: impl FnOnce(&Path) -> Result<String, String>,
) -> Result<(AddedModel, GgufInfo, MemoryEstimate), String> {
    check_name(&req.name)?;
    if req.parallel == 0 || req.parallel > 64 {
        return Err(format!("--parallel {}: use 1–64 slots", req.parallel));
    }
    let gguf =
        std::path::absolute(&req.gguf).map_err(|e| format!("{}: {e}", req.gguf.display()))?;
    let info = GgufInfo::read(&gguf).map_err(|e| e.to_string())?;
    let ctx = req.ctx.unwrap_or(info.context_length.min(4096));
    if ctx < 256 || ctx > info.context_length {
        return Err(format!(
            "--ctx {ctx}: {} was trained for at most {} tokens (and at least 256 are needed)",
            gguf.display(),
            info.context_length
        ));
    }
    let sha256 = match &req.sha256 {
        Some(s) => s.clone(),
        None => sha256(&gguf)?,
    };
    let estimate = info.estimate(ctx, req.parallel);
    let mut facts = BTreeMap::new();
    facts.insert("origin".to_string(), req.origin.clone());
    facts.insert("family".into(), info.architecture.clone());
    facts.insert("quantization".into(), info.quantization());
    if let Some(size) = &info.size_label {
        facts.insert("parameter_size".into(), size.clone());
    }
    let model = AddedModel {
        name: req.name.clone(),
        stage: "generate".into(),
        tier: req.tier.clone(),
        // Room for the answer: a quarter of the context.
        max_input_tokens: ctx - ctx / 4,
        context_tokens: ctx,
        sha256,
        memory_bytes: estimate.total(),
        engine: AddedEngine {
            kind: "llama_cpp".into(),
            gguf,
            parallel: req.parallel,
        },
        info: facts,
    };
    Ok((model, info, estimate))
}

/// The Ollama store: `$OLLAMA_MODELS`, else `~/.ollama/models`.
pub fn ollama_store() -> PathBuf {
    match std::env::var_os("OLLAMA_MODELS") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".ollama/models"),
    }
}

#[derive(Deserialize)]
struct Manifest {
    layers: Vec<Layer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Layer {
    media_type: String,
    digest: String,
}

/// The GGUF blob and its sha256 of `reference` (`model`, `model:tag`, `user/model:tag`) in
/// the Ollama store at `store`: manifest → the `application/vnd.ollama.image.model` layer.
pub fn ollama_blob(store: &Path, reference: &str) -> Result<(PathBuf, String), String> {
    let (name, tag) = reference.split_once(':').unwrap_or((reference, "latest"));
    let bad = |c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c));
    let parts: Vec<&str> = name.split('/').collect();
    if name.is_empty()
        || tag.is_empty()
        || parts.len() > 2
        || parts.iter().any(|p| p.is_empty() || p.contains(bad))
        || tag.contains(bad)
    {
        return Err(format!(
            "{reference:?} is not an Ollama model name (model, model:tag or namespace/model:tag)"
        ));
    }
    let (namespace, model) = match parts.as_slice() {
        [ns, m] => (*ns, *m),
        _ => ("library", name),
    };
    let manifest = store
        .join("manifests/registry.ollama.ai")
        .join(namespace)
        .join(model)
        .join(tag);
    let text = std::fs::read_to_string(&manifest).map_err(|e| {
        format!(
            "Ollama model {reference} not found: cannot read {} ({e}); `ollama list` shows what the store holds (set OLLAMA_MODELS if it is elsewhere)",
            manifest.display()
        )
    })?;
    let parsed: Manifest = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not an Ollama manifest: {e}", manifest.display()))?;
    let layer = parsed
        .layers
        .iter()
        .find(|l| l.media_type == "application/vnd.ollama.image.model")
        .ok_or_else(|| {
            format!(
                "{}: no model layer (application/vnd.ollama.image.model)",
                manifest.display()
            )
        })?;
    let hex = layer
        .digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
        .ok_or_else(|| {
            format!(
                "{}: model layer digest {:?} is not sha256:<64 hex>",
                manifest.display(),
                layer.digest
            )
        })?;
    let blob = store.join("blobs").join(format!("sha256-{hex}"));
    if !blob.is_file() {
        return Err(format!(
            "{}: the model layer's blob {} is missing (re-pull it with `ollama pull {reference}`)",
            manifest.display(),
            blob.display()
        ));
    }
    Ok((blob, hex.to_ascii_lowercase()))
}

impl ModelRegistry {
    /// This registry plus `added` (from `origin`, named in errors), each checked like a
    /// registry entry; a name in both is an error that says how to fix it.
    pub fn with_added(
        mut self,
        added: &[AddedModel],
        origin: &Path,
    ) -> Result<Self, RegistryError> {
        if added.is_empty() {
            return Ok(self);
        }
        let text = to_toml(added, origin)?;
        let extra = ModelRegistry::parse(&text, origin, &self.models_dir)?;
        for (name, spec) in extra.models {
            if self.models.contains_key(&name) {
                return Err(RegistryError::Invalid {
                    path: origin.to_path_buf(),
                    message: format!(
                        "model {name} is in the registry and was added too: `switchyard models rm {name}` or rename it"
                    ),
                });
            }
            self.models.insert(name, spec);
        }
        Ok(self)
    }
}
