//! The fitted router slot: which [`RouterHead`] classifies now (none: the registry's router
//! model), the one it replaced (for a rollback), both kept in `<data_dir>/router/` so a
//! restart classifies the same way, and the checks an install must pass first.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use switchyard_backend_core::{ModelRegistry, StageKind};
use switchyard_scheduler::{Tier, TierRoutes};

use crate::tier_router::{RouterError, RouterHead};

/// What classifies now and what a rollback puts back.
#[derive(Debug, Clone, Default)]
pub struct Slots {
    /// The fitted router in use (`None`: the registry's router model).
    pub active: Option<Arc<RouterHead>>,
    /// What the last install replaced: `Some(None)` = the registry's router model; `None` =
    /// nothing to roll back to.
    pub previous: Option<Option<Arc<RouterHead>>>,
}

/// The slot, shared by the pipeline (reads per request) and the Cluster service (writes).
#[derive(Debug, Default)]
pub struct FittedRouter {
    slots: RwLock<Slots>,
    dir: Option<PathBuf>,
}

const ACTIVE: &str = "active.json";
const PREVIOUS: &str = "previous.json";

impl FittedRouter {
    /// An in-memory slot (nothing persisted).
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// The slot kept in `dir`, with what an earlier run installed there. A damaged file is an
    /// error naming it (a controller must not silently route another way than installed).
    pub fn open(dir: PathBuf) -> Result<Self, RouterError> {
        let read = |name: &str| -> Result<Option<Option<Arc<RouterHead>>>, RouterError> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(RouterError::File(format!("{}: {e}", path.display()))),
                Ok(t) if t.trim() == "null" => Ok(Some(None)),
                Ok(t) => RouterHead::from_json(&t)
                    .map(|h| Some(Some(Arc::new(h))))
                    .map_err(|e| {
                        RouterError::File(format!(
                            "{}: {e} (reinstall it or remove the file)",
                            path.display()
                        ))
                    }),
            }
        };
        let slots = Slots {
            active: read(ACTIVE)?.flatten(),
            previous: read(PREVIOUS)?,
        };
        Ok(FittedRouter {
            slots: RwLock::new(slots),
            dir: Some(dir),
        })
    }

    /// The current slots.
    pub fn slots(&self) -> Slots {
        self.slots.read().expect("router slots").clone()
    }

    /// The fitted router in use, if any.
    pub fn active(&self) -> Option<Arc<RouterHead>> {
        self.slots.read().expect("router slots").active.clone()
    }

    /// Makes `head` the active router; the one it replaces becomes the rollback target.
    pub fn install(&self, head: RouterHead) -> Result<Slots, RouterError> {
        let mut slots = self.slots.write().expect("router slots");
        let next = Slots {
            previous: Some(slots.active.clone()),
            active: Some(Arc::new(head)),
        };
        self.persist(&next)?;
        *slots = next.clone();
        Ok(next)
    }

    /// Swaps the active router and the one the last install replaced.
    pub fn rollback(&self) -> Result<Slots, RouterError> {
        let mut slots = self.slots.write().expect("router slots");
        let Some(previous) = slots.previous.clone() else {
            return Err(RouterError::Set("no earlier router to roll back to".into()));
        };
        let next = Slots {
            active: previous,
            previous: Some(slots.active.clone()),
        };
        self.persist(&next)?;
        *slots = next.clone();
        Ok(next)
    }

    fn persist(&self, slots: &Slots) -> Result<(), RouterError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let text =
            |h: &Option<Arc<RouterHead>>| h.as_ref().map_or("null".to_owned(), |h| h.to_json());
        let write = |name: &str, body: String| -> Result<(), RouterError> {
            write_atomic(&dir.join(name), &body)
                .map_err(|e| RouterError::File(format!("{}: {e}", dir.join(name).display())))
        };
        match &slots.active {
            Some(_) => write(ACTIVE, text(&slots.active))?,
            None => remove(&dir.join(ACTIVE))?,
        }
        match &slots.previous {
            Some(p) => write(PREVIOUS, text(p)),
            None => remove(&dir.join(PREVIOUS)),
        }
    }
}

fn remove(path: &Path) -> Result<(), RouterError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(RouterError::File(format!("{}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}

fn write_atomic(path: &Path, body: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, body)?;
    std::fs::rename(tmp, path)
}

/// Checks an install before anything changes: every tier of the router has a route, its
/// embedder is a registered embed model, and that model's vectors (`probed_dim`, from one
/// real embedding) have the router's dimension.
pub fn check_install(
    head: &RouterHead,
    tiers: &TierRoutes,
    models: &ModelRegistry,
    probed_dim: Option<usize>,
) -> Result<(), RouterError> {
    let unrouted: Vec<&str> = head
        .tiers
        .iter()
        .filter(|t| tiers.models(t).is_empty())
        .map(Tier::as_str)
        .collect();
    if !unrouted.is_empty() {
        return Err(RouterError::Set(format!(
            "the router's tier(s) {} have no models in [routes] (built-ins: routes.fast/code/heavy; others: [routes.tiers] NAME = [\"model\"])",
            unrouted.join(", ")
        )));
    }
    match models.get(&head.embedder) {
        Some(s) if s.stage == StageKind::Embed => {}
        Some(s) => {
            return Err(RouterError::Set(format!(
                "the router's embedder '{}' is a {} model, not an embed model",
                head.embedder,
                s.stage.as_str()
            )));
        }
        None => {
            return Err(RouterError::Set(format!(
                "the router's embedder '{}' is not in the model registry",
                head.embedder
            )));
        }
    }
    match probed_dim {
        Some(d) if d != head.dim => Err(RouterError::Dimension {
            want: head.dim,
            got: d,
            embedder: head.embedder.clone(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tier_router::{FitOptions, fit_head};

    fn t(n: &str) -> Tier {
        n.parse().unwrap()
    }

    fn head(tiers: &[&str], dim: usize) -> RouterHead {
        let tiers: Vec<Tier> = tiers.iter().map(|n| t(n)).collect();
        let xs: Vec<Vec<f32>> = (0..tiers.len())
            .map(|i| (0..dim).map(|j| f32::from(u8::from(i == j))).collect())
            .collect();
        let ys: Vec<usize> = (0..tiers.len()).collect();
        let opts = FitOptions {
            epochs: 5,
            ..FitOptions::default()
        };
        fit_head("minilm-l6-v2", &tiers, &xs, &ys, &opts)
            .unwrap()
            .seal()
    }

    fn registry() -> ModelRegistry {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/registry.toml");
        ModelRegistry::load(&file, Path::new("/models")).expect("registry")
    }

    #[test]
    fn install_checks_routes_embedder_and_dimension() {
        let reg = registry();
        let mut routes = TierRoutes::default();
        routes.push(t("sql"), "smollm2-135m-code");
        routes.push(Tier::fast(), "smollm2-135m");
        let ok = head(&["sql", "fast"], 8);
        assert!(check_install(&ok, &routes, &reg, Some(8)).is_ok());
        let err = check_install(&ok, &routes, &reg, Some(384))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "embedding dimension 384 does not match the router's 8 (embedder minilm-l6-v2)"
        );
        let unrouted = head(&["sql", "german", "vision"], 8);
        let err = check_install(&unrouted, &routes, &reg, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("the router's tier(s) german, vision have no models in [routes]"),
            "{err}"
        );
        let mut other = ok.clone();
        other.embedder = "router".into();
        let err = check_install(&other, &routes, &reg, None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "the router's embedder 'router' is a classify model, not an embed model"
        );
        other.embedder = "e5-huge".into();
        let err = check_install(&other, &routes, &reg, None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "the router's embedder 'e5-huge' is not in the model registry"
        );
    }

    #[test]
    fn installs_roll_back_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let slot = FittedRouter::open(dir.path().join("router")).unwrap();
        assert!(slot.active().is_none());
        assert_eq!(
            slot.rollback().unwrap_err().to_string(),
            "no earlier router to roll back to"
        );
        let (a, b) = (head(&["sql", "fast"], 8), head(&["german", "fast"], 8));
        slot.install(a.clone()).unwrap();
        let s = slot.install(b.clone()).unwrap();
        assert_eq!(s.active.as_deref(), Some(&b));
        assert_eq!(s.previous.clone().flatten().as_deref(), Some(&a));

        let reopened = FittedRouter::open(dir.path().join("router")).unwrap();
        assert_eq!(reopened.active().as_deref(), Some(&b));
        let back = reopened.rollback().unwrap();
        assert_eq!(back.active.as_deref(), Some(&a));
        let again = FittedRouter::open(dir.path().join("router")).unwrap();
        assert_eq!(again.active().as_deref(), Some(&a));

        // The first install replaced the registry's router: rolling back to it is "none".
        let fresh = FittedRouter::open(dir.path().join("other")).unwrap();
        fresh.install(a).unwrap();
        assert!(fresh.rollback().unwrap().active.is_none());
        assert!(!dir.path().join("other/active.json").exists());

        std::fs::write(dir.path().join("router/active.json"), "{\"format\": 1}").unwrap();
        let err = FittedRouter::open(dir.path().join("router"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("active.json") && err.contains("reinstall it or remove the file"),
            "{err}"
        );
    }
}
