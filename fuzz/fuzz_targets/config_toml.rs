//! Configuration files: the controller's sections of `switchyard.toml` (`[controller]`,
//! `[routes]`, `[api]`, `[scheduler]`, `[residency]`, `[retrieval]`: the same serde structs
//! the binary reads, which refuse unknown keys) and then their validation, and the model
//! registry (`models/registry.toml`) through `ModelRegistry::parse`. Invariants: no panic,
//! and an accepted registry serves every model it lists by name.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use switchyard_backend_core::ModelRegistry;
use switchyard_controller::config::{
    ApiConfig, ControllerConfig, ResidencyConfig, RetrievalConfig, Routes, SchedulerConfig,
    ServerConfig,
};

/// The controller's part of the file, laid out as in the binary's `Config`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ControllerSections {
    controller: ControllerConfig,
    routes: Routes,
    api: ApiConfig,
    scheduler: SchedulerConfig,
    residency: ResidencyConfig,
    retrieval: RetrievalConfig,
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(s) = toml::from_str::<ControllerSections>(text) {
        let config = ServerConfig {
            controller: s.controller,
            routes: s.routes,
            api: s.api,
            scheduler: s.scheduler,
            residency: s.residency,
            retrieval: s.retrieval,
        };
        let _ = config.validate();
    }
    if let Ok(registry) =
        ModelRegistry::parse(text, Path::new("fuzz.toml"), Path::new("/nonexistent"))
    {
        for spec in registry.iter() {
            assert!(
                registry.get(&spec.name).is_some(),
                "{} listed but not found",
                spec.name
            );
        }
    }
});
