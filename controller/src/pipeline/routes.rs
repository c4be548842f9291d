//! Routes: which models answer each stage and tier. Checked against the model registry at
//! start-up, so a route to a missing model never reaches a request.

use switchyard_backend_core::{ModelRegistry, StageKind};
use switchyard_scheduler::tiers::{Tier, TierRoutes};

use crate::config::Routes;

/// Why the routes in the config don't match the model registry.
#[derive(Debug, thiserror::Error)]
#[error("invalid routes: {0}")]
pub struct RouteError(String);

/// Checks every model a route names exists in the registry with the right stage: a route to
/// an unregistered model is a start-up error naming it.
pub fn validate_routes(routes: &Routes, models: &ModelRegistry) -> Result<TierRoutes, RouteError> {
    let check = |name: &str, stage: StageKind, what: &str| -> Result<(), RouteError> {
        match models.get(name) {
            None => Err(RouteError(format!(
                "{what} names model '{name}', which is not in the model registry (registered: {})",
                models
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            Some(s) if s.stage != stage => Err(RouteError(format!(
                "{what} names model '{name}', a {} model; it must be a {} model",
                s.stage.as_str(),
                stage.as_str()
            ))),
            Some(_) => Ok(()),
        }
    };
    check(&routes.router, StageKind::Classify, "routes.router")?;
    check(&routes.embed, StageKind::Embed, "routes.embed")?;
    let mut tiers = TierRoutes::default();
    for (tier, list) in [
        (Tier::Fast, &routes.fast),
        (Tier::Code, &routes.code),
        (Tier::Heavy, &routes.heavy),
    ] {
        for m in list {
            check(m, StageKind::Generate, &format!("routes.{}", tier.as_str()))?;
            tiers.push(tier, m.clone());
        }
    }
    if Tier::ALL.iter().all(|t| tiers.models(*t).is_empty()) {
        return Err(RouteError(
            "no generation model in routes.fast/code/heavy".into(),
        ));
    }
    if let Some(spec) = models.get(&routes.router) {
        for label in &spec.labels {
            if label.parse::<Tier>().is_err() {
                return Err(RouteError(format!(
                    "router model '{}' has label '{label}', which is not a tier (fast, code, heavy)",
                    spec.name
                )));
            }
        }
    }
    Ok(tiers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn registry() -> ModelRegistry {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/registry.toml");
        ModelRegistry::load(&file, Path::new("/models")).expect("registry")
    }

    #[test]
    fn routes_to_unregistered_or_wrong_stage_models_are_start_up_errors() {
        let reg = registry();
        assert!(validate_routes(&Routes::default(), &reg).is_ok());
        let r = Routes {
            code: vec!["llama-70b".into()],
            ..Default::default()
        };
        let err = validate_routes(&r, &reg).unwrap_err().to_string();
        assert!(
            err.contains("routes.code names model 'llama-70b'")
                && err.contains("not in the model registry"),
            "{err}"
        );
        let r = Routes {
            fast: vec!["minilm-l6-v2".into()],
            ..Default::default()
        };
        let err = validate_routes(&r, &reg).unwrap_err().to_string();
        assert!(
            err.contains("a embed model; it must be a generate model"),
            "{err}"
        );
    }
}
