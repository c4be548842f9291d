//! Model residency as a level-triggered reconcile loop: every tick compares what should be
//! loaded (pinned models somewhere; everything else only while recently used) with what the
//! agents report in their heartbeats, and sends LoadModel/UnloadModel commands on their
//! sessions. Models load on demand through the data path (the agent loads on first use after
//! its memory check); this loop pre-loads pinned models and unloads idle ones. A model with
//! requests in flight is never unloaded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_proto::v1::controller_command::Kind;
use switchyard_proto::v1::{LoadModelCommand, UnloadModelCommand};
use tokio::sync::watch;
use tracing::{debug, info};

use crate::cluster::ClusterState;
use crate::config::ResidencyConfig;
use crate::pipeline::Pipeline;

/// An action the loop decided on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    Load {
        node: String,
        device: String,
        backend: String,
        model: String,
    },
    Unload {
        node: String,
        device: String,
        model: String,
    },
}

/// The reconciler's memory between ticks.
#[derive(Debug)]
pub struct Reconciler {
    config: ResidencyConfig,
    /// Actions sent and not yet visible in heartbeats; not repeated until they expire.
    pending: HashMap<Action, Instant>,
    /// When a resident (node, device, model) was first observed.
    first_seen: HashMap<(String, String, String), Instant>,
}

impl Reconciler {
    /// A reconciler with `config`.
    pub fn new(config: ResidencyConfig) -> Self {
        Reconciler {
            config,
            pending: HashMap::new(),
            first_seen: HashMap::new(),
        }
    }

    /// Computes the actions for the observed state (pure apart from its own bookkeeping).
    pub fn plan(
        &mut self,
        cluster: &ClusterState,
        pipeline: &Pipeline,
        now: Instant,
    ) -> Vec<Action> {
        let keep_alive = Duration::from_secs(self.config.keep_alive_s);
        let retry_after = Duration::from_millis(self.config.reconcile_interval_ms * 5);
        self.pending
            .retain(|_, sent| now.duration_since(*sent) < retry_after);
        let observed = cluster.resident();
        let mut actions = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (node, r) in &observed {
            let key = (node.clone(), r.device_id.clone(), r.model.clone());
            seen.insert(key.clone());
            let first = *self.first_seen.entry(key.clone()).or_insert(now);
            if self.config.pinned.contains(&r.model) || r.in_flight > 0 {
                continue;
            }
            let last = pipeline
                .last_used(node, &r.device_id, &r.model)
                .unwrap_or(first)
                .max(first);
            if now.duration_since(last) > keep_alive {
                actions.push(Action::Unload {
                    node: node.clone(),
                    device: r.device_id.clone(),
                    model: r.model.clone(),
                });
            }
        }
        self.first_seen.retain(|k, _| seen.contains(k));
        for model in &self.config.pinned {
            if pipeline.models().get(model).is_none()
                || observed.iter().any(|(_, r)| &r.model == model)
            {
                continue;
            }
            if let Some((node, device, backend)) = pipeline.best_target(model) {
                actions.push(Action::Load {
                    node,
                    device,
                    backend,
                    model: model.clone(),
                });
            }
        }
        actions.retain(|a| !self.pending.contains_key(a));
        for a in &actions {
            self.pending.insert(a.clone(), now);
        }
        actions
    }
}

/// Runs the loop until `shutdown` turns true.
pub async fn run(
    cluster: Arc<ClusterState>,
    pipeline: Arc<Pipeline>,
    config: ResidencyConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(Duration::from_millis(config.reconcile_interval_ms));
    let mut reconciler = Reconciler::new(config);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.changed() => return,
        }
        for action in reconciler.plan(&cluster, &pipeline, Instant::now()) {
            let (node, kind) = match &action {
                Action::Load {
                    node,
                    device,
                    backend,
                    model,
                } => (
                    node.clone(),
                    Kind::Load(LoadModelCommand {
                        model: model.clone(),
                        device_id: device.clone(),
                        backend: backend.clone(),
                    }),
                ),
                Action::Unload {
                    node,
                    device,
                    model,
                } => (
                    node.clone(),
                    Kind::Unload(UnloadModelCommand {
                        model: model.clone(),
                        device_id: device.clone(),
                    }),
                ),
            };
            let sent = cluster.send_command(&node, kind);
            if sent {
                info!(?action, "residency command sent");
            } else {
                debug!(?action, "node has no session; will retry");
            }
        }
    }
}
