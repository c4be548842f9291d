//! Config layering: defaults < the TOML file (`--config`) < `SWITCHYARD_*` environment
//! variables < flags. The file's model is in [`file`]; clap has already folded each flag's
//! environment twin into the flag, so this applies both.

mod file;

pub use file::Config;

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use switchyard_backend_core::ModelRegistry;

use crate::args::{AgentArgs, ControllerArgs};

/// Reads the config file (or the defaults without one).
pub fn load(path: Option<&Path>) -> Result<Config> {
    Ok(Config::load(path)?)
}

/// Applies the controller role's flags and validates the result.
pub fn for_controller(mut config: Config, args: &ControllerArgs) -> Result<Config> {
    apply_controller(&mut config, args);
    config.validate()?;
    Ok(config)
}

/// Applies the agent role's flags and validates the result.
pub fn for_agent(mut config: Config, args: &AgentArgs) -> Result<Config> {
    apply_agent(&mut config, args);
    config.validate()?;
    Ok(config)
}

/// Applies both roles' flags (`up`) and validates the result.
pub fn for_up(
    mut config: Config,
    controller: &ControllerArgs,
    agent: &AgentArgs,
) -> Result<Config> {
    apply_controller(&mut config, controller);
    apply_agent(&mut config, agent);
    // On loopback only, nobody else can reach the control path: plaintext, as before. Beyond
    // loopback it is a real cluster (mTLS, join tokens; the local agent joins with a one-time
    // token, see commands/up.rs) unless --insecure asks otherwise.
    if config.controller.listen.ip().is_loopback() {
        config.controller.insecure = true;
    }
    config.agent.insecure = config.controller.insecure;
    // A cluster started on fixtures has nothing but simulated devices to place on.
    if config.agent.fixture.is_some() {
        config.scheduler.policy.allow_simulated = true;
    }
    config.validate()?;
    Ok(config)
}

/// Overrides the file's controller settings with the flags that were given.
pub fn apply_controller(config: &mut Config, args: &ControllerArgs) {
    let c = &mut config.controller;
    if let Some(v) = args.listen {
        c.listen = v;
    }
    if let Some(v) = args.http_listen {
        c.http_listen = v;
    }
    if args.cluster {
        c.cluster = true;
    }
    if let Some(v) = args.heartbeat_interval_ms {
        c.heartbeat_interval_ms = v;
    }
    if let Some(v) = &args.model_registry {
        config.models.registry = Some(v.clone());
    }
    if let Some(v) = &args.data_dir {
        config.controller.data_dir = v.clone();
    }
    if args.allow_simulated {
        config.scheduler.policy.allow_simulated = true;
    }
    if args.insecure {
        config.controller.insecure = true;
    }
}

/// Overrides the file's agent settings with the flags that were given.
pub fn apply_agent(config: &mut Config, args: &AgentArgs) {
    let a = &mut config.agent;
    if let Some(v) = &args.controller {
        a.controller = v.clone();
    }
    if let Some(v) = &args.node_name {
        a.node_name = v.clone();
    }
    if let Some(v) = args.listen {
        a.listen = v;
    }
    if let Some(v) = &args.advertise {
        a.advertise = Some(v.clone());
    }
    if let Some(v) = &args.fixture {
        a.fixture = Some(v.clone());
    }
    if let Some(v) = &args.models_dir {
        config.models.dir = v.clone();
    }
    if args.calibrate {
        config.agent.calibrate = true;
    }
    if let Some(v) = &args.join_token {
        config.agent.join_token = Some(v.clone());
    }
    if let Some(v) = &args.agent_data_dir {
        config.agent.data_dir = v.clone();
    }
}

/// The model registry compiled into the binary: `models/registry.toml` of the source tree it
/// was built from. A `[models] registry` file (or `--model-registry`) replaces it.
pub const BUILTIN_REGISTRY: &str = include_str!("../../../models/registry.toml");

/// The model registry the config names (the built-in one without a file); also points the
/// backend probe and calibration at the same models directory.
pub fn load_models(config: &Config) -> Result<Arc<ModelRegistry>> {
    // The backend probe and calibration read their own files from the same directory.
    switchyard_backend_core::paths::set_models_dir(&config.models.dir);
    let reg = match &config.models.registry {
        Some(file) => ModelRegistry::load(file, &config.models.dir)?,
        None => ModelRegistry::parse(
            BUILTIN_REGISTRY,
            Path::new("<built-in models/registry.toml>"),
            &config.models.dir,
        )?,
    };
    Ok(Arc::new(reg))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::args::{Cli, Command};

    #[test]
    fn flags_override_the_file_and_up_takes_both_roles() {
        let cli = Cli::try_parse_from([
            "switchyard",
            "up",
            "--listen",
            "127.0.0.1:1",
            "--agent-listen",
            "127.0.0.1:2",
            "--node-name",
            "n1",
        ])
        .unwrap();
        let Command::Up(args) = cli.command else {
            panic!("up expected")
        };
        let config = Config::parse(
            "[agent]\nnode_name = \"from-file\"\n",
            std::path::Path::new("c"),
        )
        .unwrap();
        let config = for_up(config, &args.controller, &args.agent).unwrap();
        assert_eq!(config.controller.listen.port(), 1);
        assert_eq!(config.agent.listen.port(), 2);
        assert_eq!(config.agent.node_name, "n1");
        assert!(
            !config.scheduler.policy.allow_simulated,
            "no fixture: simulated devices are refused"
        );
    }

    #[test]
    fn a_cluster_started_on_fixtures_places_on_simulated_devices() {
        let cli = Cli::try_parse_from(["switchyard", "up", "--fixture", "/tmp/f"]).unwrap();
        let Command::Up(args) = cli.command else {
            panic!("up expected")
        };
        let config = for_up(Config::default(), &args.controller, &args.agent).unwrap();
        assert!(config.scheduler.policy.allow_simulated);
        let cli = Cli::try_parse_from(["switchyard", "controller", "--allow-simulated"]).unwrap();
        let Command::Controller(args) = cli.command else {
            panic!("controller expected")
        };
        let config = for_controller(Config::default(), &args).unwrap();
        assert!(config.scheduler.policy.allow_simulated);
    }

    #[test]
    fn the_built_in_registry_serves_without_a_file_and_a_file_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.models.dir = dir.path().to_path_buf();
        assert_eq!(config.models.registry, None);
        let built_in = load_models(&config).unwrap();
        for model in ["router", "minilm-l6-v2", "smollm2-135m"] {
            assert!(
                built_in.get(model).is_some(),
                "{model} in the built-in registry"
            );
        }
        let file = dir.path().join("mine.toml");
        let only = BUILTIN_REGISTRY
            .split("[[model]]")
            .find(|m| m.contains("name = \"minilm-l6-v2\""))
            .expect("minilm entry");
        std::fs::write(&file, format!("[[model]]{only}")).unwrap();
        let text = format!("[models]\nregistry = {:?}\n", file.display().to_string());
        let mut config = Config::parse(&text, Path::new("c.toml")).unwrap();
        config.models.dir = dir.path().to_path_buf();
        let from_file = load_models(&config).unwrap();
        assert!(from_file.get("minilm-l6-v2").is_some());
        assert!(
            from_file.get("router").is_none(),
            "the file replaced the built-in one"
        );
    }
}
