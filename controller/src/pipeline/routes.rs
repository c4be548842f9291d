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
    let tiers = tier_routes(routes, models)?;
    for name in &routes.retrieval {
        let t = parse_tier(name, "routes.retrieval")?;
        if tiers.models(&t).is_empty() {
            return Err(RouteError(format!(
                "routes.retrieval names tier '{name}', which has no models in [routes]"
            )));
        }
    }
    Ok(tiers)
}

/// The tier routes: built-ins, user tiers and their fallbacks, each model checked.
fn tier_routes(routes: &Routes, models: &ModelRegistry) -> Result<TierRoutes, RouteError> {
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
    let built_in = [
        (Tier::fast(), &routes.fast),
        (Tier::code(), &routes.code),
        (Tier::heavy(), &routes.heavy),
    ];
    let mut user = Vec::new();
    for (name, list) in &routes.tiers {
        let tier = parse_tier(name, "routes.tiers")?;
        if tier.is_built_in() {
            return Err(RouteError(format!(
                "routes.tiers.{name}: '{name}' is a built-in tier; list its models in routes.{name}"
            )));
        }
        user.push((tier, list));
    }
    for (tier, list) in built_in.iter().map(|(t, l)| (t.clone(), *l)).chain(user) {
        for m in list {
            check(m, StageKind::Generate, &format!("routes.{tier}"))?;
            tiers.push(tier.clone(), m.clone());
        }
    }
    if tiers.tiers().next().is_none() {
        return Err(RouteError(
            "no generation model in routes.fast/code/heavy or routes.tiers".into(),
        ));
    }
    for (name, then) in &routes.fallback {
        let tier = parse_tier(name, "routes.fallback")?;
        let mut order = Vec::new();
        for n in then {
            let t = parse_tier(n, &format!("routes.fallback.{name}"))?;
            if tiers.models(&t).is_empty() {
                return Err(RouteError(format!(
                    "routes.fallback.{name} names tier '{n}', which has no models in [routes]"
                )));
            }
            order.push(t);
        }
        tiers.set_fallback(tier, order);
    }
    if let Some(spec) = models.get(&routes.router) {
        for label in &spec.labels {
            if let Err(e) = label.parse::<Tier>() {
                return Err(RouteError(format!(
                    "router model '{}' has label '{label}': {e}",
                    spec.name
                )));
            }
        }
    }
    Ok(tiers)
}

fn parse_tier(name: &str, what: &str) -> Result<Tier, RouteError> {
    name.parse().map_err(|e| RouteError(format!("{what}: {e}")))
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

    #[test]
    fn user_tiers_route_and_fall_back_with_checked_names() {
        let reg = registry();
        let mut r = Routes::default();
        r.tiers
            .insert("sql".into(), vec!["smollm2-135m-code".into()]);
        r.fallback.insert("sql".into(), vec!["heavy".into()]);
        let tiers = validate_routes(&r, &reg).unwrap();
        let sql: Tier = "sql".parse().unwrap();
        assert_eq!(tiers.models(&sql), ["smollm2-135m-code".to_string()]);
        let order: Vec<String> = tiers
            .fallback_order(&sql)
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(order, ["sql", "heavy", "fast", "code"]);

        let mut bad = r.clone();
        bad.tiers.insert("SQL!".into(), vec!["smollm2-135m".into()]);
        let err = validate_routes(&bad, &reg).unwrap_err().to_string();
        assert!(
            err.contains("routes.tiers: invalid tier name \"SQL!\""),
            "{err}"
        );
        let mut bad = r.clone();
        bad.tiers.insert("fast".into(), vec!["smollm2-135m".into()]);
        let err = validate_routes(&bad, &reg).unwrap_err().to_string();
        assert!(err.contains("'fast' is a built-in tier"), "{err}");
        let mut bad = r.clone();
        bad.fallback.insert("sql".into(), vec!["german".into()]);
        let err = validate_routes(&bad, &reg).unwrap_err().to_string();
        assert!(
            err.contains("routes.fallback.sql names tier 'german', which has no models"),
            "{err}"
        );
        let mut bad = r;
        bad.tiers
            .insert("german".into(), vec!["minilm-l6-v2".into()]);
        let err = validate_routes(&bad, &reg).unwrap_err().to_string();
        assert!(
            err.contains("routes.german names model 'minilm-l6-v2'"),
            "{err}"
        );
    }
}
