//! The [`Placer`]: one owner for everything placement reads and learns — the cluster view
//! (from [`ClusterState`]'s store), the policy, circuit breakers, latency statistics and
//! in-flight counts. It places a request, explains a dry run, chooses a tier's model and
//! records outcomes; it does no I/O.

mod cold_start;
mod explain;
mod target;

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_api::ApiError;
use switchyard_backend_core::{ModelRegistry, ModelSpec, StageKind};
use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::StageExplanation;
use switchyard_scheduler::tiers::{ModelDemand, Tier, TierChoice, TierRoutes, choose_model};
use switchyard_scheduler::{
    BreakerConfig, CircuitBreakers, LatencyConfig, LatencyStats, PlacementContext, PlacementPolicy,
    PlacementRequest, Sample,
};

pub use explain::{no_placement, stage_explanation};
pub use target::{InFlight, Target};

use crate::cluster::{ClusterState, Snapshot};
use crate::models::ModelSet;

/// What placement needs of a generation model that only attached engines serve: no files,
/// no memory of Switchyard's to reserve (the engine manages its own), no tier.
pub fn attached_spec(model: &str) -> ModelSpec {
    ModelSpec {
        name: model.to_string(),
        stage: StageKind::Generate,
        onnx: Default::default(),
        tokenizer: Default::default(),
        sha256: None,
        memory_bytes: 0,
        max_input_tokens: u32::MAX,
        overflow: switchyard_backend_core::OverflowPolicy::Refuse,
        labels: Vec::new(),
        embedding_dim: None,
        tier: None,
        context_tokens: None,
        chat_template: None,
        system_prompt: None,
        stop_tokens: Vec::new(),
        max_batch: 1,
        streams: None,
        precision: Default::default(),
        also_at: Vec::new(),
        // Any backend: the pseudo-device's backend is the engine's kind.
        backends: Vec::new(),
        engine: None,
        info: [("engine".to_string(), "attached".to_string())]
            .into_iter()
            .collect(),
    }
}

/// Extra time a stage gets when its model is not yet resident on the chosen device.
pub const COLD_LOAD_ALLOWANCE: Duration = Duration::from_secs(30);

/// Placement settings (the `[scheduler]` section minus retries).
#[derive(Debug, Clone, Default)]
pub struct PlacementSettings {
    /// Where each stage may run and how candidates are scored.
    pub policy: PlacementPolicy,
    /// Per-device circuit breakers.
    pub breakers: BreakerConfig,
    /// Latency statistics and adaptive timeouts.
    pub latency: LatencyConfig,
}

/// Places stages on devices and learns from their outcomes.
pub struct Placer {
    cluster: Arc<ClusterState>,
    models: Arc<ModelSet>,
    policy: PlacementPolicy,
    breakers: Mutex<CircuitBreakers>,
    latency: Mutex<LatencyStats>,
    cold_starts: cold_start::ColdStarts,
}

impl std::fmt::Debug for Placer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placer").finish_non_exhaustive()
    }
}

impl Placer {
    /// A placer over `cluster` for the models of `models`.
    pub fn new(
        cluster: Arc<ClusterState>,
        models: Arc<ModelSet>,
        settings: PlacementSettings,
    ) -> Self {
        Placer {
            cluster,
            models,
            policy: settings.policy,
            breakers: Mutex::new(CircuitBreakers::new(settings.breakers)),
            latency: Mutex::new(LatencyStats::new(settings.latency)),
            cold_starts: Default::default(),
        }
    }

    /// Every model now (a snapshot of the cluster's model set).
    pub fn models(&self) -> Arc<ModelRegistry> {
        self.models.snapshot()
    }

    /// The cluster's model set.
    pub fn model_set(&self) -> &Arc<ModelSet> {
        &self.models
    }

    /// The cluster state the placer reads.
    pub fn cluster(&self) -> &Arc<ClusterState> {
        &self.cluster
    }

    /// The registry entry of `model`, which must serve `stage` — or, for a model only
    /// attached engines serve, what placement needs of it ([`attached_spec`]).
    pub fn spec(&self, model: &str, stage: StageKind) -> Result<Cow<'_, ModelSpec>, ApiError> {
        let models = self.models();
        let spec: Cow<'_, ModelSpec> = match models.get(model) {
            Some(s) => Cow::Owned(s.clone()),
            None if self.engine_models().iter().any(|m| m == model) => {
                Cow::Owned(attached_spec(model))
            }
            None => {
                let mut known: Vec<String> = models.iter().map(|s| s.name.clone()).collect();
                known.extend(self.engine_models());
                return Err(ApiError::new(
                    ErrorClass::NotFound,
                    format!(
                        "model '{model}' does not exist (registered: {})",
                        known.join(", ")
                    ),
                )
                .with_param("model"));
            }
        };
        if spec.stage != stage {
            return Err(ApiError::new(
                ErrorClass::InvalidArgument,
                format!(
                    "model '{model}' is a {} model, not a {} model",
                    spec.stage.as_str(),
                    stage.as_str()
                ),
            )
            .with_param("model"));
        }
        Ok(spec)
    }

    /// Whether an attached engine of a ready or lost node lists `model`.
    pub fn served_by_engine(&self, model: &str) -> bool {
        let snapshot = self.cluster.view();
        snapshot
            .view
            .nodes()
            .iter()
            .flat_map(|n| &n.devices)
            .filter_map(|d| d.engine_models.as_ref())
            .any(|ms| ms.iter().any(|m| m == model))
    }

    /// Models that attached engines of ready or lost nodes serve and the registry does not
    /// know, sorted, once each.
    pub fn engine_models(&self) -> Vec<String> {
        let snapshot = self.cluster.view();
        let models = self.models();
        let mut out: Vec<String> = snapshot
            .view
            .nodes()
            .iter()
            .flat_map(|n| &n.devices)
            .filter_map(|d| d.engine_models.as_ref())
            .flatten()
            .filter(|m| models.get(m).is_none())
            .cloned()
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// A placement request for `spec`'s stage: its memory, the backends its registry entry
    /// allows (any when it lists none) and the precision it asks for.
    pub fn request(&self, spec: &ModelSpec) -> PlacementRequest {
        let req = PlacementRequest::new(
            spec.stage,
            spec.name.clone(),
            spec.memory_bytes,
            Instant::now(),
        )
        .with_precisions(&spec.precisions())
        .with_partial_offload(spec.engine.as_ref().and_then(|e| e.offload_min_bytes));
        if spec.backends.is_empty() {
            req
        } else {
            req.with_backends(spec.backends.iter().cloned())
        }
    }

    /// Runs `f` over a consistent context: one view snapshot, the breakers and latency.
    fn with_context<R>(&self, f: impl FnOnce(&PlacementContext<'_>, &Snapshot) -> R) -> R {
        let snapshot = self.cluster.view();
        let breakers = self.breakers.lock().expect("breakers");
        let latency = self.latency.lock().expect("latency");
        let ctx = PlacementContext {
            view: &snapshot.view,
            policy: &self.policy,
            breakers: &breakers,
            latency: &latency,
        };
        f(&ctx, &snapshot)
    }

    /// The best target for `req`, or why there is none.
    pub fn place(&self, req: &PlacementRequest) -> Result<Target, ApiError> {
        self.with_context(|ctx, snapshot| {
            let placement = ctx.place(req);
            let Some(c) = placement.best() else {
                return Err(no_placement(req, &ctx.explain(req)));
            };
            Ok(Target {
                node: c.node.clone(),
                device: c.device.clone(),
                backend: c.backend.clone(),
                endpoint: snapshot.endpoint(&c.node).to_string(),
                node_devices: snapshot.node_devices(&c.node),
                engine: snapshot
                    .view
                    .device(&c.node, &c.device)
                    .is_some_and(|d| d.engine_models.is_some()),
                // A cold placement includes loading (and compiling) the model on the agent,
                // which observed stage latencies do not cover.
                timeout: if c.warm {
                    ctx.latency
                        .batch_timeout_on(req.stage, &req.model, &c.node, &c.device, req.inputs)
                } else {
                    Duration::from_millis(ctx.latency.config().rule(req.stage).ceiling_ms)
                        + COLD_LOAD_ALLOWANCE
                },
                gap_timeout: ctx.latency.gap_timeout_on(&req.model, &c.node, &c.device),
            })
        })
    }

    /// The best (node, device, backend) for loading `model` now, if any.
    pub fn best_target(&self, model: &str) -> Option<(String, String, String)> {
        let models = self.models();
        let t = self.place(&self.request(models.get(model)?)).ok()?;
        Some((t.node, t.device, t.backend))
    }

    /// Ranks every candidate of each (stage, model) without running anything; models not in
    /// the registry are left out.
    pub fn explain(&self, stages: &[(StageKind, String)]) -> Vec<StageExplanation> {
        let models = self.models();
        self.with_context(|ctx, _| {
            stages
                .iter()
                .filter_map(|(_, model)| {
                    let req = self.request(models.get(model)?);
                    let x = ctx.explain(&req);
                    let mut e = stage_explanation(&req, &x);
                    // Scored candidates come first, in the same order: how each would start.
                    for (c, scored) in e.candidates.iter_mut().zip(&x.candidates) {
                        let build = ctx.view.device(&c.node, &c.device_id).and_then(|d| {
                            d.engine_builds
                                .iter()
                                .find(|(b, _)| b == &c.backend)
                                .map(|(_, build)| build.as_str())
                        });
                        let start =
                            self.cold_starts
                                .describe(model, &c.backend, build, scored.warm);
                        c.score_detail = format!("{start}; {}", c.score_detail);
                    }
                    Some(e)
                })
                .collect()
        })
    }

    /// The first model of `tier` (then its fallbacks) that can be placed now.
    pub fn choose_model(&self, tier: Tier, tiers: &TierRoutes) -> Result<TierChoice, ApiError> {
        let models = self.models();
        self.with_context(|ctx, _| {
            choose_model(
                tier,
                tiers,
                ctx,
                |m| {
                    models.get(m).map(|s| ModelDemand {
                        memory_bytes: s.memory_bytes,
                        backends: (!s.backends.is_empty()).then(|| s.backends.clone()),
                        precision: s.precision,
                    })
                },
                Instant::now(),
            )
        })
        .map_err(|e| ApiError::new(ErrorClass::Unavailable, e.to_string()))
    }

    /// Marks `target` busy (breaker half-open probe, in-flight count) until the guard drops.
    pub fn dispatch(&self, target: &Target) -> InFlight {
        self.breakers.lock().expect("breakers").on_dispatch(
            &target.node,
            &target.device,
            Instant::now(),
        );
        InFlight::start(self.cluster.clone(), target)
    }

    /// The longest adaptive timeout of `stage` (its rule's ceiling).
    pub fn timeout_ceiling(&self, stage: StageKind) -> Duration {
        let latency = self.latency.lock().expect("latency");
        Duration::from_millis(latency.config().rule(stage).ceiling_ms)
    }

    /// Records that `model` took `load_ms` to load on `backend` (a trace's figure; 0 = it
    /// was resident), for `explain`'s cold-start estimate.
    pub fn loaded(&self, model: &str, backend: &str, load_ms: f64) {
        self.cold_starts.record(model, backend, load_ms);
    }

    /// Records a success of `req` on `target`, as measured (`sample`); `latency: false` for
    /// bulk work, whose durations would skew the adaptive timeouts of interactive requests.
    pub fn succeeded(
        &self,
        req: &PlacementRequest,
        target: &Target,
        sample: Sample,
        latency: bool,
    ) {
        self.breakers.lock().expect("breakers").record_success(
            &target.node,
            &target.device,
            Instant::now(),
        );
        if !latency {
            return;
        }
        self.latency.lock().expect("latency").record_sample(
            req.stage,
            &req.model,
            &target.node,
            &target.device,
            sample,
        );
    }

    /// Charges a failure to the breakers of `devices` (of the target's node) and returns the
    /// request with them excluded.
    pub fn failed(
        &self,
        target: &Target,
        devices: &[String],
        mut req: PlacementRequest,
    ) -> PlacementRequest {
        let now = Instant::now();
        let mut breakers = self.breakers.lock().expect("breakers");
        for d in devices {
            breakers.record_failure(&target.node, d, now);
            req = req.excluding(target.node.clone(), d.clone());
        }
        req
    }

    /// Whether the target's device answered a request at or after `since` (see
    /// [`CircuitBreakers::answered_since`]).
    pub fn answered_since(&self, target: &Target, since: Instant) -> bool {
        self.breakers
            .lock()
            .expect("breakers")
            .answered_since(&target.node, &target.device, since)
    }

    /// The breaker state of one device (for tests and diagnostics).
    pub fn breaker_state(&self, node: &str, device: &str) -> switchyard_scheduler::CircuitState {
        self.breakers
            .lock()
            .expect("breakers")
            .state(node, device, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use switchyard_backend_core::Precision;
    use switchyard_proto::v1::{BackendSupport, Device, DeviceHealth, DeviceKind, NodeInfo};

    use super::*;

    const REGISTRY: &str = r#"
[[model]]
name = "ov-only"
stage = "embed"
onnx = "m.onnx"
tokenizer = "t.json"
memory_bytes = 1000
max_input_tokens = 8
backends = ["openvino"]
precision = "bf16"
"#;

    fn cpu(precisions: &[&str]) -> Device {
        Device {
            id: "cpu".into(),
            kind: DeviceKind::Cpu as i32,
            health: DeviceHealth::Healthy as i32,
            memory_total_bytes: 1 << 30,
            memory_free_bytes: 1 << 30,
            backends: ["ort-cpu", "openvino"]
                .iter()
                .map(|b| BackendSupport {
                    backend: b.to_string(),
                    usable: true,
                    precisions: if *b == "openvino" {
                        precisions.iter().map(|p| p.to_string()).collect()
                    } else {
                        vec!["f32".into()]
                    },
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_registry_entry_decides_which_backends_and_precision_are_usable() {
        let models =
            Arc::new(ModelRegistry::parse(REGISTRY, Path::new("r.toml"), Path::new("/m")).unwrap());
        let cluster = Arc::new(ClusterState::new(Duration::from_secs(60), 3));
        for (name, precisions) in [("avx2", &["f32"][..]), ("amx", &["f32", "bf16"][..])] {
            cluster
                .register(
                    NodeInfo {
                        node_name: name.into(),
                        agent_endpoint: "http://127.0.0.1:1".into(),
                        devices: vec![cpu(precisions)],
                        available_models: vec!["ov-only".into()],
                        ..Default::default()
                    },
                    name,
                )
                .unwrap();
        }
        let placer = Placer::new(
            cluster,
            Arc::new(ModelSet::fixed((*models).clone())),
            PlacementSettings::default(),
        );
        let req = placer.request(models.get("ov-only").unwrap());
        assert_eq!(
            req.backends_supported_by_model,
            Some(vec!["openvino".to_string()])
        );
        assert_eq!(req.precision, Precision::Bf16);
        // Only the host whose OpenVINO computes at bf16, and through OpenVINO, not ort-cpu.
        let t = placer.place(&req).unwrap();
        assert_eq!((t.node.as_str(), t.backend.as_str()), ("amx", "openvino"));
        let t = placer.place(&req.excluding("amx", "cpu")).unwrap_err();
        assert!(t.message.contains("no usable backend"), "{}", t.message);
    }
}
