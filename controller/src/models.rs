//! The cluster's model set: the shipped (or configured) registry, which seeds it, plus the
//! models added with `switchyard models add`, kept in `<data dir>/models.toml` across restarts.
//! One writer (the Cluster service's AddModel/RemoveModel) replaces the snapshot that
//! placement, the pipeline and the listings read; every change bumps a version that the
//! agents' sessions watch to send the new set ([`ModelSet::subscribe`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use switchyard_backend_core::ModelRegistry;
use switchyard_backend_core::registry::RegistryError;
use switchyard_backend_core::registry::added::{self, AddedModel};
use switchyard_proto::errors::ErrorClass;
use thiserror::Error;
use tokio::sync::watch;

/// The file, inside the controller's data directory.
pub const MODELS_FILE: &str = "models.toml";

/// Why a change to the model set was refused.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum ModelSetError {
    /// The entry does not parse or check as a registry entry.
    #[error("{0}")]
    Invalid(String),
    /// The name is taken.
    #[error(
        "a model named {0} exists already: choose another name, or `switchyard models rm {0}` first"
    )]
    Exists(String),
    /// No such model.
    #[error("no model named {0} (`switchyard models list` shows them)")]
    NotFound(String),
    /// The model comes from the registry file, not from `models add`.
    #[error(
        "{0} comes from the model registry, not from `models add`: edit the registry file to remove it"
    )]
    Shipped(String),
    /// `[routes]` name the model.
    #[error("{0} is named by [routes] in the controller's configuration: route elsewhere first")]
    Routed(String),
    /// The data directory could not be read or written.
    #[error("{0}")]
    Storage(String),
}

impl ModelSetError {
    /// The gRPC status for this refusal (through the one error table).
    pub fn status(&self) -> tonic::Status {
        let class = match self {
            ModelSetError::Invalid(_) => ErrorClass::InvalidArgument,
            ModelSetError::Exists(_) => ErrorClass::AlreadyExists,
            ModelSetError::NotFound(_) => ErrorClass::NotFound,
            ModelSetError::Shipped(_) | ModelSetError::Routed(_) => ErrorClass::FailedPrecondition,
            ModelSetError::Storage(_) => ErrorClass::Internal,
        };
        class.status(self.to_string())
    }
}

impl From<RegistryError> for ModelSetError {
    fn from(e: RegistryError) -> Self {
        ModelSetError::Invalid(e.to_string())
    }
}

/// The model set (see the module docs).
#[derive(Debug)]
pub struct ModelSet {
    base: ModelRegistry,
    /// `None`: not persisted (tests, and tools that only read).
    file: Option<PathBuf>,
    routed: BTreeSet<String>,
    /// Serialises writers (check, persist, publish).
    write: Mutex<()>,
    current: RwLock<(Vec<AddedModel>, Arc<ModelRegistry>)>,
    version: watch::Sender<u64>,
}

impl ModelSet {
    /// `base` plus the models kept in `<data_dir>/models.toml` (none the first time).
    pub fn open(base: ModelRegistry, data_dir: &Path) -> Result<Self, ModelSetError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            ModelSetError::Storage(format!(
                "cannot create the data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let file = data_dir.join(MODELS_FILE);
        let added = added::load(&file)?;
        let registry = base.clone().with_added(&added, &file)?;
        Ok(Self::build(base, Some(file), added, registry))
    }

    /// A set that is `registry` and never changes on disk (tests).
    pub fn fixed(registry: ModelRegistry) -> Self {
        Self::build(registry.clone(), None, Vec::new(), registry)
    }

    fn build(
        base: ModelRegistry,
        file: Option<PathBuf>,
        added: Vec<AddedModel>,
        registry: ModelRegistry,
    ) -> Self {
        ModelSet {
            base,
            file,
            routed: BTreeSet::new(),
            write: Mutex::new(()),
            current: RwLock::new((added, Arc::new(registry))),
            version: watch::channel(0).0,
        }
    }

    /// Models that `[routes]` name: they cannot be removed.
    pub fn with_routed(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.routed = names.into_iter().collect();
        self
    }

    /// Every model now: the registry and the added ones.
    pub fn snapshot(&self) -> Arc<ModelRegistry> {
        self.current.read().expect("model set").1.clone()
    }

    /// The added models now.
    pub fn added(&self) -> Vec<AddedModel> {
        self.current.read().expect("model set").0.clone()
    }

    /// True when `name` was added (not from the registry).
    pub fn is_added(&self, name: &str) -> bool {
        self.current
            .read()
            .expect("model set")
            .0
            .iter()
            .any(|m| m.name == name)
    }

    /// Changes of the set: the value is a version, bumped on every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Adds `model`, checked by the registry parser, kept on disk, then published.
    pub fn add(&self, model: AddedModel) -> Result<(), ModelSetError> {
        let _w = self.write.lock().expect("model set writer");
        if let Err(e) = added::check_name(&model.name) {
            return Err(ModelSetError::Invalid(e));
        }
        if self.snapshot().get(&model.name).is_some() {
            return Err(ModelSetError::Exists(model.name));
        }
        let mut next = self.added();
        next.push(model);
        self.replace(next)
    }

    /// Removes the added model `name`, kept on disk, then published.
    pub fn remove(&self, name: &str) -> Result<(), ModelSetError> {
        let _w = self.write.lock().expect("model set writer");
        let mut next = self.added();
        let before = next.len();
        next.retain(|m| m.name != name);
        if next.len() == before {
            return Err(match self.base.get(name) {
                Some(_) => ModelSetError::Shipped(name.into()),
                None => ModelSetError::NotFound(name.into()),
            });
        }
        if self.routed.contains(name) {
            return Err(ModelSetError::Routed(name.into()));
        }
        self.replace(next)
    }

    /// Checks `next`, writes it, swaps the snapshot and bumps the version (writer held).
    fn replace(&self, next: Vec<AddedModel>) -> Result<(), ModelSetError> {
        let origin = self
            .file
            .clone()
            .unwrap_or_else(|| PathBuf::from("<model set>"));
        let registry = self.base.clone().with_added(&next, &origin)?;
        if let Some(file) = &self.file {
            added::save(file, &next).map_err(|e| ModelSetError::Storage(e.to_string()))?;
        }
        *self.current.write().expect("model set") = (next, Arc::new(registry));
        self.version.send_modify(|v| *v += 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
