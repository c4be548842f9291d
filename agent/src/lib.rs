//! The Switchyard node agent.
//!
//! * [`inventory`]: where the agent's device list comes from (real discovery or a fixture).
//! * [`session`]: registration with the controller and the heartbeat/command stream, with
//!   reconnects (exponential backoff + jitter) so a controller restart needs no agent restart.
//! * [`runner`]: owns the loaded models (one worker thread per model × device) and merges
//!   concurrent classify/embed requests into batches ([`batcher`]).
//! * [`service`]: the data-path gRPC server (`switchyard.v1.Agent`) the controller calls.
//! * [`advertise`]: the URL the controller reaches the data-path server at.
//! * [`engines`]: engines that already run, attached by URL (Ollama, OpenAI-compatible),
//!   reported as pseudo-devices and proxied to.

pub mod advertise;
pub mod batcher;
pub mod engines;
pub mod errors;
pub mod eviction;
pub mod inventory;
pub mod join;
pub mod runner;
pub mod service;
pub mod session;
pub mod streams;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use advertise::Advertise;
pub use inventory::{InventorySource, StaticInventory};
pub use runner::StageRunner;
pub use session::SessionError;

/// Settings the agent runs with: the `[agent]` section of the configuration file (defaults
/// < file < `SWITCHYARD_*` environment < flags; unknown keys are refused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSettings {
    /// Unique node name in the cluster (default: the host name).
    pub node_name: String,
    /// Controller gRPC URL, e.g. `http://10.0.0.2:50051`.
    pub controller: String,
    /// Address the data-path server binds (port 0 = any free port).
    pub listen: SocketAddr,
    /// URL the controller uses to reach this agent. When `None`: the bound address, or for
    /// a wildcard bind (`0.0.0.0`) this host's address on the route to the controller.
    pub advertise: Option<String>,
    /// Requests waiting per model × device before new ones are refused (ResourceExhausted).
    pub queue_capacity: usize,
    /// Serve a recorded inventory (a fixture tree) instead of this host's devices; every
    /// device is marked simulated and executes on the CPU.
    pub fixture: Option<PathBuf>,
    /// Measure the effective TOPS of every usable backend × device at start.
    pub calibrate: bool,
    /// Engines that already run, attached by URL (`[[agent.endpoints]]`).
    pub endpoints: Vec<engines::EndpointConfig>,
    /// Where the agent keeps its credentials (`ca.pem`, `node.pem`, `node.key`).
    pub data_dir: PathBuf,
    /// The join token (`SY10::...`) used when there are no credentials yet (or to renew
    /// them). A secret: redacted in logs.
    pub join_token: Option<String>,
    /// No TLS, no certificate: for a controller started with `--insecure`.
    pub insecure: bool,
    /// The supervised llama.cpp engine (the configuration file's `[engines.llama_cpp]`).
    #[serde(skip)]
    pub llama_cpp: engines::LlamaCppSettings,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            node_name: host_name(),
            controller: "http://127.0.0.1:50051".into(),
            listen: "127.0.0.1:0".parse().expect("valid default"),
            advertise: None,
            queue_capacity: 256,
            fixture: None,
            calibrate: false,
            endpoints: Vec::new(),
            data_dir: switchyard_backend_core::paths::cache_dir().join("agent"),
            join_token: None,
            insecure: false,
            llama_cpp: Default::default(),
        }
    }
}

impl AgentSettings {
    /// Checks ranges; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.queue_capacity == 0 {
            return Err("agent.queue_capacity must be ≥ 1".into());
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            e.validate()?;
            if self.endpoints[..i].iter().any(|o| o.name == e.name) {
                return Err(format!("agent.endpoints: name '{}' appears twice", e.name));
            }
        }
        Ok(())
    }
}

/// This host's name (`/proc/sys/kernel/hostname`), or `node`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node".into())
}

/// A running agent: its bound data-path address and a way to stop it.
pub struct AgentHandle {
    /// Address the data-path server is bound to.
    pub data_addr: SocketAddr,
    /// The stage runner (shared with the service).
    pub runner: Arc<StageRunner>,
    engines: Arc<engines::Engines>,
    shutdown: watch::Sender<bool>,
    session: tokio::task::JoinHandle<Result<(), SessionError>>,
    server: tokio::task::JoinHandle<()>,
}

impl AgentHandle {
    /// Waits until the session gives up (fatal error such as a duplicate node name) or
    /// the agent is stopped.
    pub async fn wait(self) -> Result<(), SessionError> {
        let res = self
            .session
            .await
            .unwrap_or_else(|e| Err(SessionError::Fatal(format!("session task failed: {e}"))));
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        res
    }

    /// The data-path service itself, for a controller in this process (`switchyard up`) to
    /// call without a socket: the same requests and answers as over gRPC. It has no peer
    /// check (the server admits only the controller's certificate): only code in this process
    /// can hold it.
    pub fn in_process_service(
        &self,
    ) -> switchyard_proto::v1::agent_server::AgentServer<service::AgentService> {
        switchyard_proto::v1::agent_server::AgentServer::new(service::AgentService::new(
            self.runner.clone(),
            self.engines.clone(),
        ))
    }

    /// Asks the agent to stop.
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
    }
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data-path address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
    /// The controller could not reach the address this agent would advertise.
    #[error("{0}")]
    Unreachable(String),
    /// An `[[agent.endpoints]]` entry could not be set up.
    #[error("agent.endpoints: {0}")]
    Endpoints(String),
    /// No usable credentials: joining failed, or there is neither a certificate nor a token.
    #[error("{0}")]
    Credentials(String),
}

/// Starts the data-path server and the controller session. An advertised address the
/// controller cannot reach (loopback, with the controller on another host) is refused here
/// when the controller's address resolves; otherwise at each registration.
pub async fn start(
    settings: AgentSettings,
    inventory: Box<dyn InventorySource>,
    runner: Arc<StageRunner>,
) -> Result<AgentHandle, StartError> {
    let listen = |source| StartError::Listen {
        addr: settings.listen,
        source,
    };
    let listener = TcpListener::bind(settings.listen).await.map_err(listen)?;
    let data_addr = listener.local_addr().map_err(listen)?;
    let advertise = Advertise::new(settings.advertise.as_deref(), data_addr);
    if let Ok(controller) = advertise::resolve(&settings.controller).await {
        advertise.url(controller).map_err(StartError::Unreachable)?;
    }
    let tls = join::credentials(&settings)
        .await
        .map_err(StartError::Credentials)?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    runner.attach_llama_cpp(Arc::new(engines::LlamaCpp::new(&settings.llama_cpp)));
    let engines =
        Arc::new(engines::Engines::new(&settings.endpoints).map_err(StartError::Endpoints)?);
    tokio::spawn(engines.clone().run(shutdown_rx.clone()));
    let server = tokio::spawn(service::serve(
        listener,
        runner.clone(),
        engines.clone(),
        tls.as_ref().map(join::AgentTls::server),
        shutdown_rx.clone(),
    ));
    let session = tokio::spawn(session::run(
        settings,
        tls.as_ref().map(join::AgentTls::client),
        advertise,
        inventory,
        runner.clone(),
        engines.clone(),
        shutdown_rx,
    ));
    Ok(AgentHandle {
        data_addr,
        runner,
        engines,
        shutdown: shutdown_tx,
        session,
        server,
    })
}
