//! Model residency as a level-triggered reconcile loop: every tick compares what should be
//! loaded (pinned models somewhere; everything else only while recently used) with what the
//! agents report in their heartbeats, and sends LoadModel/UnloadModel commands on their
//! sessions. Models load on demand through the data path (the agent loads on first use after
//! its memory check, evicting idle unpinned models least recently used first when the device
//! is full); this loop pre-loads and pins pinned models and unloads idle ones after their
//! keep-alive ([`KeepAlives`]: the default, or what a client set for the model). A model
//! with requests in flight is never unloaded nor evicted.

mod keep_alive;

pub use keep_alive::KeepAlives;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_proto::v1::controller_command::Kind;
use switchyard_proto::v1::{LoadModelCommand, UnloadModelCommand};
use tokio::sync::watch;
use tracing::{debug, info};

use crate::cluster::ClusterState;
use crate::config::ResidencyConfig;
use crate::placement::Placer;

/// An action the loop decided on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// Load (or, when already resident, just pin) a model that must stay resident.
    Load {
        /// Node name.
        node: String,
        /// Inventory id of the device on that node.
        device: String,
        /// Id of the backend to load it with.
        backend: String,
        /// Model name.
        model: String,
    },
    /// Unload a model that has been idle longer than its keep-alive.
    Unload {
        /// Node name.
        node: String,
        /// Inventory id of the device on that node.
        device: String,
        /// Model name.
        model: String,
    },
}

/// The reconciler's memory between ticks.
#[derive(Debug)]
pub struct Reconciler {
    config: ResidencyConfig,
    keep_alives: Arc<KeepAlives>,
    /// Actions sent and not yet visible in heartbeats; not repeated until they expire.
    pending: HashMap<Action, Instant>,
}

impl Reconciler {
    /// A reconciler with `config`, unloading idle models after `keep_alives`.
    pub fn new(config: ResidencyConfig, keep_alives: Arc<KeepAlives>) -> Self {
        Reconciler {
            config,
            keep_alives,
            pending: HashMap::new(),
        }
    }

    /// Computes the actions for the observed state (pure apart from its own bookkeeping).
    pub fn plan(&mut self, cluster: &ClusterState, placer: &Placer, now: Instant) -> Vec<Action> {
        let retry_after = Duration::from_millis(self.config.reconcile_interval_ms * 5);
        self.pending
            .retain(|_, sent| now.duration_since(*sent) < retry_after);
        let observed = cluster.resident();
        let mut actions = Vec::new();
        for (node, r) in &observed {
            if self.config.pinned.contains(&r.model) {
                // Loaded on demand before the loop pinned it: pin it where it is, so the
                // agent never evicts it.
                if !r.pinned {
                    actions.push(Action::Load {
                        node: node.clone(),
                        device: r.device_id.clone(),
                        backend: r.backend.clone(),
                        model: r.model.clone(),
                    });
                }
                continue;
            }
            // The agent reports how long the model has been idle (since it last served a
            // request, whoever sent it, or since it was loaded).
            let Some(limit) = self.keep_alives.idle_limit(&r.model) else {
                continue;
            };
            if r.in_flight == 0 && Duration::from_millis(r.idle_ms) > limit {
                actions.push(Action::Unload {
                    node: node.clone(),
                    device: r.device_id.clone(),
                    model: r.model.clone(),
                });
            }
        }
        for model in &self.config.pinned {
            if placer.models().get(model).is_none()
                || observed.iter().any(|(_, r)| &r.model == model)
            {
                continue;
            }
            if let Some((node, device, backend)) = placer.best_target(model) {
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
            if let Action::Unload { model, .. } = a {
                self.keep_alives.unloading(model);
            }
        }
        actions
    }
}

/// Runs the loop until `shutdown` turns true.
pub async fn run(
    cluster: Arc<ClusterState>,
    placer: Arc<Placer>,
    config: ResidencyConfig,
    keep_alives: Arc<KeepAlives>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(Duration::from_millis(config.reconcile_interval_ms));
    let mut reconciler = Reconciler::new(config, keep_alives);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.changed() => return,
        }
        // What each resident copy took to load, however it was loaded (this loop's
        // LoadModel, a request, an engine start): explain's "cold start ≈ N s".
        for (_, r) in cluster.resident() {
            placer.loaded(&r.model, &r.backend, r.load_ms);
        }
        for action in reconciler.plan(&cluster, &placer, Instant::now()) {
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
                        pin: true,
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

#[cfg(test)]
mod tests;
