//! The agent's control-path session: register with the controller, then keep one
//! bidirectional stream open — heartbeats with telemetry up, commands down. Any failure
//! reconnects with exponential backoff and jitter (capped at one second), so a controller
//! restart needs no agent restart.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use switchyard_backoff::{Backoff, Jitter};
use switchyard_proto::v1::registry_client::RegistryClient;
use switchyard_proto::v1::{
    AgentMessage, CommandResult, ControllerCommand, Device, Heartbeat, HostFacts, NodeInfo,
    RegisterRequest, ResidentModel, SessionHello, agent_message, controller_command,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::AgentSettings;
use crate::advertise::{self, Advertise};
use crate::engines::Engines;
use crate::inventory::InventorySource;
use crate::runner::StageRunner;

/// Why the agent stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Retrying cannot help (bad URL, duplicate node name at first registration).
    #[error("{0}")]
    Fatal(String),
}

mod memory;
use memory::{cap_free_by_reservations, capped_free};

/// One failed session attempt.
#[derive(Debug)]
enum Attempt {
    /// Give up: the operator must act.
    Fatal(String),
    /// Try again after a back-off.
    Retry(String),
}

/// Rescan the inventory (hot-plug) every this many heartbeats.
const RESCAN_EVERY: u64 = 10;
const BACKOFF_CAP: Duration = Duration::from_millis(1000);

/// Reconnect delays: from 100 ms doubling up to one second, with equal jitter (a random
/// factor in [0.5, 1.0]) so reconnecting agents don't stampede the controller.
const RECONNECT: Backoff = Backoff {
    base: Duration::from_millis(100),
    max: BACKOFF_CAP,
    jitter: Jitter::Equal,
};

/// The delay before reconnect attempt `attempt` (0-based).
pub fn backoff(attempt: u32, unit_random: f64) -> Duration {
    RECONNECT.delay(attempt.saturating_add(1), unit_random)
}

/// Renders an error with its whole source chain on one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// Parses and checks the controller URL.
pub fn controller_endpoint(url: &str) -> Result<Endpoint, String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!(
            "invalid controller URL '{url}': expected http://HOST:PORT (e.g. http://10.0.0.2:50051)"
        ));
    }
    Endpoint::from_shared(url.to_string())
        .map(|e| {
            e.connect_timeout(Duration::from_secs(1))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(5))
                .keep_alive_timeout(Duration::from_secs(3))
        })
        .map_err(|e| format!("invalid controller URL '{url}': {}", error_chain(&e)))
}

/// Resolves when `shutdown` turns true (drops the watch guard before returning, so the
/// future stays `Send`).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Runs the session until `shutdown` turns true or a fatal error happens.
pub async fn run(
    settings: AgentSettings,
    tls: Option<ClientTlsConfig>,
    advertise: Advertise,
    mut inventory: Box<dyn InventorySource>,
    runner: Arc<StageRunner>,
    engines: Arc<Engines>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), SessionError> {
    let endpoint = match tls {
        None => controller_endpoint(&settings.controller).map_err(SessionError::Fatal)?,
        Some(tls) => controller_endpoint(&crate::join::https(&settings.controller))
            .and_then(|e| {
                e.tls_config(tls)
                    .map_err(|e| format!("TLS settings: {}", error_chain(&e)))
            })
            .map_err(SessionError::Fatal)?,
    };
    let instance_id = uuid::Uuid::new_v4().to_string();
    let (host, mut devices) = inventory.scan();
    crate::engines::advertise(&runner, &mut devices);
    runner.set_devices(&devices);
    let mut state = SessionState {
        settings,
        advertise,
        endpoint: String::new(),
        instance_id,
        host,
        devices,
        inventory: std::sync::Mutex::new(inventory),
        runner,
        engines,
        registered_once: false,
        sent_available: Vec::new(),
        sent_engines: Vec::new(),
    };
    let mut attempt = 0u32;
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let span = info_span!("session", node = %state.settings.node_name, controller = %state.settings.controller);
        let outcome = state
            .connect_and_serve(&endpoint, &mut shutdown, &mut attempt)
            .instrument(span)
            .await;
        match outcome {
            Ok(()) => return Ok(()),
            Err(Attempt::Fatal(msg)) => {
                error!("{msg}");
                return Err(SessionError::Fatal(msg));
            }
            Err(Attempt::Retry(msg)) => {
                let delay = backoff(attempt, rand::rng().random());
                attempt = attempt.saturating_add(1);
                warn!("{msg}; retrying in {:.1}s", delay.as_secs_f64());
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stopped(&mut shutdown) => return Ok(()),
                }
            }
        }
    }
}

struct SessionState {
    settings: AgentSettings,
    advertise: Advertise,
    /// The data-path URL of the latest registration.
    endpoint: String,
    instance_id: String,
    host: HostFacts,
    devices: Vec<Device>,
    inventory: std::sync::Mutex<Box<dyn InventorySource>>,
    runner: Arc<StageRunner>,
    engines: Arc<Engines>,
    registered_once: bool,
    /// The models whose files we last told the controller we have.
    sent_available: Vec<String>,
    /// The attached endpoints' (device id, models) we last told the controller.
    sent_engines: Vec<(String, Vec<String>)>,
}

/// What of the endpoints' pseudo-devices is inventory (their health is telemetry).
fn engine_inventory(devices: &[Device]) -> Vec<(String, Vec<String>)> {
    devices
        .iter()
        .map(|d| (d.id.clone(), d.models.clone()))
        .collect()
}

impl SessionState {
    fn node_info(&self) -> NodeInfo {
        NodeInfo {
            node_name: self.settings.node_name.clone(),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            agent_endpoint: self.endpoint.clone(),
            host: Some(self.host.clone()),
            devices: {
                let reserved = self.runner.reserved_bytes();
                let mut devices = self.devices.clone();
                for d in &mut devices {
                    let held = reserved.get(&d.id).copied().unwrap_or(0);
                    d.memory_free_bytes =
                        capped_free(d.memory_free_bytes, d.memory_total_bytes, held);
                }
                devices.extend(self.engines.devices());
                devices
            },
            resident_models: self.resident_models(),
            available_models: self.runner.registry().available(),
        }
    }

    /// Models resident here: loaded by the runner, or by an attached endpoint.
    fn resident_models(&self) -> Vec<ResidentModel> {
        let mut out = self.runner.resident_models();
        out.extend(self.engines.resident());
        out
    }

    async fn connect_and_serve(
        &mut self,
        endpoint: &Endpoint,
        shutdown: &mut watch::Receiver<bool>,
        attempt: &mut u32,
    ) -> Result<(), Attempt> {
        let url = self.settings.controller.clone();
        let channel: Channel = endpoint.connect().await.map_err(|e| {
            Attempt::Retry(format!(
                "cannot reach controller at {url}: {}",
                error_chain(&e)
            ))
        })?;
        let controller = advertise::resolve(&url)
            .await
            .map_err(|e| Attempt::Retry(format!("controller at {url}: {e}")))?;
        let endpoint_url = self.advertise.url(controller).map_err(|e| {
            if self.registered_once {
                Attempt::Retry(e)
            } else {
                Attempt::Fatal(e)
            }
        })?;
        if endpoint_url != self.endpoint {
            info!(advertise = %endpoint_url, "data path advertised");
            self.endpoint = endpoint_url;
        }
        let mut client = RegistryClient::new(channel);
        // Taken before the registration's inventory, so a change in between is resent.
        let engines_sent = engine_inventory(&self.engines.devices());
        let lease = client
            .register(RegisterRequest {
                node: Some(self.node_info()),
                instance_id: self.instance_id.clone(),
            })
            .await
            .map_err(|s| {
                let msg = format!("controller refused registration: {}", s.message());
                if s.code() == Code::Unauthenticated {
                    // A removed node, or a certificate for another name: retrying cannot help.
                    Attempt::Fatal(msg)
                } else if s.code() == Code::AlreadyExists || s.code() == Code::InvalidArgument {
                    if self.registered_once {
                        Attempt::Retry(msg)
                    } else {
                        Attempt::Fatal(msg)
                    }
                } else {
                    Attempt::Retry(msg)
                }
            })?
            .into_inner();
        self.registered_once = true;
        self.sent_available = self.runner.registry().available();
        self.sent_engines = engines_sent;
        let interval = Duration::from_millis(lease.heartbeat_interval_ms.clamp(50, 60_000) as u64);
        let (out_tx, out_rx) = mpsc::channel::<AgentMessage>(64);
        out_tx
            .send(AgentMessage {
                kind: Some(agent_message::Kind::Hello(SessionHello {
                    node_id: lease.node_id.clone(),
                    lease_id: lease.lease_id.clone(),
                })),
            })
            .await
            .map_err(|_| Attempt::Retry("session channel closed".into()))?;
        let mut commands = client
            .session(ReceiverStream::new(out_rx))
            .await
            .map_err(|s| Attempt::Retry(format!("session refused: {}", s.message())))?
            .into_inner();
        info!(node_id = %lease.node_id, interval_ms = interval.as_millis() as u64, "registered with controller");
        *attempt = 0;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seq = 0u64;
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    seq += 1;
                    let heartbeat = self.heartbeat(seq);
                    if out_tx.send(AgentMessage { kind: Some(agent_message::Kind::Heartbeat(heartbeat)) }).await.is_err() {
                        return Err(Attempt::Retry("session stream closed".into()));
                    }
                }
                msg = commands.next() => match msg {
                    Some(Ok(cmd)) => self.handle_command(cmd, out_tx.clone()),
                    Some(Err(s)) => return Err(Attempt::Retry(format!("session with controller at {url} broke: {}", s.message()))),
                    None => return Err(Attempt::Retry(format!("controller at {url} closed the session"))),
                },
                _ = stopped(shutdown) => return Ok(()),
            }
        }
    }

    fn heartbeat(&mut self, seq: u64) -> Heartbeat {
        let mut inventory_changed = None;
        if seq.is_multiple_of(RESCAN_EVERY) {
            let (host, mut devices) = self.inventory.lock().expect("inventory").scan();
            crate::engines::advertise(&self.runner, &mut devices);
            // Any state change goes up, not only a changed device list: an NCS2 that boots
            // and re-enumerates, a device that turns unhealthy (or recovers).
            let changes = crate::inventory::state_changes(&self.devices, &devices);
            if !changes.is_empty() {
                info!(
                    before = self.devices.len(),
                    after = devices.len(),
                    changes = %changes.join("; "),
                    "inventory changed"
                );
                self.host = host;
                self.devices = devices;
                self.runner.set_devices(&self.devices);
                inventory_changed = Some(self.node_info());
            }
            // Model files prepared (or removed) while running: tell the controller, which
            // places a model only where its files are.
            let available = self.runner.registry().available();
            if available != self.sent_available {
                info!(models = ?available, "available models changed");
                self.sent_available = available;
                inventory_changed = Some(self.node_info());
            }
        }
        // An endpoint's models change when it pulls or deletes one: checked every beat.
        let engines = engine_inventory(&self.engines.devices());
        if engines != self.sent_engines {
            info!(endpoints = ?engines, "attached endpoints' models changed");
            self.sent_engines = engines;
            inventory_changed = Some(self.node_info());
        }
        let mut telemetry = self
            .inventory
            .lock()
            .expect("inventory")
            .telemetry(&self.devices);
        cap_free_by_reservations(&mut telemetry, &self.devices, &self.runner.reserved_bytes());
        telemetry.extend(self.engines.telemetry());
        if let Some(llama_cpp) = self.runner.llama_cpp() {
            llama_cpp.note_telemetry(&telemetry);
        }
        Heartbeat {
            seq,
            telemetry,
            resident_models: self.resident_models(),
            inventory: inventory_changed,
        }
    }

    fn handle_command(&self, cmd: ControllerCommand, out: mpsc::Sender<AgentMessage>) {
        let runner = self.runner.clone();
        let id = cmd.id;
        tokio::spawn(async move {
            let (ok, message) = match cmd.kind {
                Some(controller_command::Kind::Load(l)) => {
                    match runner.load(&l.model, &l.device_id, &l.backend, l.pin).await {
                        Ok(r) => (
                            true,
                            format!(
                                "loaded {} on {}{}",
                                l.model,
                                l.device_id,
                                if r.pinned { " (pinned)" } else { "" }
                            ),
                        ),
                        Err(e) => (false, e.to_string()),
                    }
                }
                Some(controller_command::Kind::Unload(u)) => {
                    let was = runner.unload(&u.model, &u.device_id).await;
                    (
                        true,
                        format!(
                            "unloaded {} from {} (was resident: {was})",
                            u.model, u.device_id
                        ),
                    )
                }
                Some(controller_command::Kind::Models(set)) => {
                    let mut problems = Vec::new();
                    let mut added = Vec::new();
                    for entry in set.models {
                        match switchyard_proto::model_entry::entry_from_wire(entry) {
                            Ok(m) => added.push(m),
                            Err(e) => problems.push(e),
                        }
                    }
                    problems.extend(runner.set_cluster_models(&added).await);
                    for p in &problems {
                        warn!(problem = %p, "an added model of the cluster cannot be served here");
                    }
                    let names: Vec<&str> = added.iter().map(|m| m.name.as_str()).collect();
                    info!(models = ?names, "cluster model set received");
                    if problems.is_empty() {
                        (true, format!("{} added model(s)", added.len()))
                    } else {
                        (false, problems.join("; "))
                    }
                }
                Some(controller_command::Kind::Drain(d)) => {
                    info!(reason = %d.reason, "drain requested");
                    (true, "draining".into())
                }
                None => (false, "empty command".into()),
            };
            debug!(command = id, ok, %message, "command done");
            let _ = out
                .send(AgentMessage {
                    kind: Some(agent_message::Kind::Result(CommandResult {
                        command_id: id,
                        ok,
                        message,
                    })),
                })
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        assert_eq!(backoff(0, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(0, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(2, 1.0), Duration::from_millis(400));
        assert_eq!(backoff(10, 1.0), BACKOFF_CAP);
        assert_eq!(backoff(40, 0.0), BACKOFF_CAP / 2);
    }

    #[test]
    fn controller_url_is_validated() {
        assert!(controller_endpoint("http://127.0.0.1:50051").is_ok());
        let err = controller_endpoint("127.0.0.1:50051").unwrap_err();
        assert!(err.contains("expected http://HOST:PORT"), "{err}");
        let err = controller_endpoint("http://bad host:1").unwrap_err();
        assert!(err.contains("invalid controller URL"), "{err}");
    }
}
