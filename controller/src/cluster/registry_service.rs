//! `switchyard.v1.Registry`: agents register and hold a session (heartbeats up, commands
//! down). Every field a peer sends is validated before it reaches the cluster state.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;

use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::registry_server::Registry;
use switchyard_proto::v1::{
    AgentMessage, ControllerCommand, ModelSetCommand, NodeInfo, RegisterRequest, RegisterResponse,
    agent_message, controller_command,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, debug, info_span, warn};

use crate::cluster::{ClusterError, ClusterState};
use crate::models::ModelSet;

/// The registry service.
#[derive(Debug, Clone)]
pub struct RegistryService {
    cluster: Arc<ClusterState>,
    models: Option<Arc<ModelSet>>,
}

impl RegistryService {
    /// A registry over `cluster`.
    pub fn new(cluster: Arc<ClusterState>) -> Self {
        RegistryService {
            cluster,
            models: None,
        }
    }

    /// Sends `models`' added models to every session: when it starts and on every change.
    pub fn with_models(mut self, models: Arc<ModelSet>) -> Self {
        self.models = Some(models);
        self
    }
}

/// Keeps one session's agent up to date with the cluster's added models (the whole set each
/// time: the agent replaces what it had) until the session ends. Holds the session's sender
/// weakly, so a session the cluster drops (superseded, node removed) still ends.
async fn push_model_set(
    models: Arc<ModelSet>,
    cluster: Arc<ClusterState>,
    tx: mpsc::WeakSender<ControllerCommand>,
) {
    let mut changes = models.subscribe();
    loop {
        changes.borrow_and_update();
        let Some(sender) = tx.upgrade() else { return };
        let set = ModelSetCommand {
            models: models.added().iter().map(Into::into).collect(),
        };
        debug!(models = set.models.len(), "sending the model set");
        let cmd = ControllerCommand {
            id: cluster.next_command_id(),
            kind: Some(controller_command::Kind::Models(set)),
        };
        if sender.send(cmd).await.is_err() {
            return;
        }
        drop(sender);
        // Wake on a change, or now and then to notice that the session is gone.
        loop {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return } else { break },
                _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => {
                    if tx.strong_count() == 0 { return }
                }
            }
        }
    }
}

/// Checks a node's self-description; the error names the offending field.
pub fn validate_node_info(info: &NodeInfo) -> Result<(), String> {
    let name = &info.node_name;
    if name.is_empty() || name.len() > 63 {
        return Err(format!("node_name must be 1-63 characters, got {:?}", name));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(format!(
            "node_name {name:?} may only contain letters, digits, '-', '_' and '.'"
        ));
    }
    let ep = &info.agent_endpoint;
    if !(ep.starts_with("http://") || ep.starts_with("https://"))
        || ep.parse::<tonic::transport::Uri>().is_err()
    {
        return Err(format!(
            "agent_endpoint {ep:?} must be an http(s)://HOST:PORT URL"
        ));
    }
    let mut seen = HashSet::new();
    for (i, d) in info.devices.iter().enumerate() {
        if d.id.is_empty() {
            return Err(format!("devices[{i}].id must not be empty"));
        }
        if !seen.insert(d.id.as_str()) {
            return Err(format!("devices[{i}].id {:?} is duplicated", d.id));
        }
        if switchyard_proto::v1::DeviceKind::try_from(d.kind).is_err() || d.kind == 0 {
            return Err(format!(
                "devices[{i}] ({}) has an unknown kind {}",
                d.id, d.kind
            ));
        }
        if d.memory_free_bytes > d.memory_total_bytes && d.memory_total_bytes > 0 {
            return Err(format!(
                "devices[{i}] ({}) reports more free memory than total",
                d.id
            ));
        }
    }
    Ok(())
}

/// Why the controller could not reach an agent that registers from `peer` at `endpoint`
/// (a loopback URL from another host), with the agent flags that fix it.
pub fn unreachable_endpoint(endpoint: &str, peer: std::net::SocketAddr) -> Option<String> {
    switchyard_proto::endpoint::unreachable_from(endpoint, peer).map(|why| {
        format!(
            "agent_endpoint {why}: start the agent with --agent-listen 0.0.0.0:PORT (it then advertises its address on the route to the controller) or --advertise http://{}:PORT",
            peer.ip().to_canonical()
        )
    })
}

fn to_status(e: ClusterError) -> Status {
    match e {
        ClusterError::NameTaken { .. } => ErrorClass::AlreadyExists.status(e.to_string()),
        ClusterError::UnknownLease(_) => ErrorClass::NotFound.status(e.to_string()),
        ClusterError::Superseded(_) => ErrorClass::FailedPrecondition.status(e.to_string()),
    }
}

type CommandStream = Pin<Box<dyn Stream<Item = Result<ControllerCommand, Status>> + Send>>;

#[tonic::async_trait]
impl Registry for RegistryService {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        let peer = request.remote_addr();
        // The server's TLS verified the chain; the name in it must be the one registered.
        let certified = switchyard_pki::identity::of_request(&request).and_then(Result::ok);
        let req = request.into_inner();
        let info = req
            .node
            .ok_or_else(|| ErrorClass::InvalidArgument.status("node is required"))?;
        validate_node_info(&info).map_err(|m| ErrorClass::InvalidArgument.status(m))?;
        if let Some(id) = certified
            && id.role == switchyard_pki::Role::Node
            && id.name != info.node_name
        {
            warn!(certificate = %id.name, node = %info.node_name, "registration refused: certificate for another node name");
            return Err(ErrorClass::Unauthenticated.status(format!(
                "the client certificate is for node '{}', not '{}': a node registers under the name it joined with",
                id.name, info.node_name
            )));
        }
        if let Some(why) = peer.and_then(|p| unreachable_endpoint(&info.agent_endpoint, p)) {
            return Err(ErrorClass::InvalidArgument.status(why));
        }
        if req.instance_id.is_empty() {
            return Err(ErrorClass::InvalidArgument.status("instance_id must not be empty"));
        }
        let (node_id, lease_id) = self
            .cluster
            .register(info, &req.instance_id)
            .map_err(to_status)?;
        Ok(Response::new(RegisterResponse {
            node_id,
            lease_id,
            heartbeat_interval_ms: self.cluster.heartbeat_interval.as_millis() as u32,
            missed_heartbeats_before_lost: self.cluster.missed_before_lost,
        }))
    }

    type SessionStream = CommandStream;

    async fn session(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let mut inbound = request.into_inner();
        let hello = match inbound.next().await {
            Some(Ok(AgentMessage {
                kind: Some(agent_message::Kind::Hello(h)),
            })) => h,
            Some(Ok(_)) => {
                return Err(ErrorClass::InvalidArgument
                    .status("the first session message must be a SessionHello"));
            }
            Some(Err(s)) => return Err(s),
            None => return Err(ErrorClass::InvalidArgument.status("session closed before hello")),
        };
        let (tx, rx) = mpsc::channel(64);
        let weak = tx.downgrade();
        let (node, epoch) = self
            .cluster
            .attach_session(&hello.node_id, &hello.lease_id, tx)
            .map_err(to_status)?;
        let span = info_span!("session", node_id = %hello.node_id);
        if let Some(models) = &self.models {
            tokio::spawn(
                push_model_set(models.clone(), self.cluster.clone(), weak).instrument(span.clone()),
            );
        }
        let cluster = self.cluster.clone();
        tokio::spawn(
            async move {
                let reason = loop {
                    match inbound.next().await {
                        Some(Ok(msg)) => match msg.kind {
                            Some(agent_message::Kind::Heartbeat(hb)) => {
                                if !cluster.heartbeat(&node, epoch, hb) {
                                    break "superseded by a newer session".to_string();
                                }
                            }
                            Some(agent_message::Kind::Result(r)) => {
                                debug!(command = r.command_id, ok = r.ok, message = %r.message, "command result");
                            }
                            Some(agent_message::Kind::Hello(_)) | None => {
                                warn!("unexpected message on an established session; ignored");
                            }
                        },
                        Some(Err(s)) => break format!("session broke: {}", s.message()),
                        None => break "session closed by agent".to_string(),
                    }
                };
                cluster.session_closed(&node, epoch, &reason);
            }
            .instrument(span),
        );
        let stream = ReceiverStream::new(rx).map(Ok);
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_proto::v1::Device;

    #[test]
    fn a_loopback_endpoint_from_another_host_is_refused_with_the_fix() {
        let remote: std::net::SocketAddr = "10.77.0.2:41000".parse().unwrap();
        let why = unreachable_endpoint("http://127.0.0.1:50061", remote).unwrap();
        assert!(why.contains("--advertise http://10.77.0.2:PORT"), "{why}");
        assert!(why.contains("--agent-listen 0.0.0.0"), "{why}");
        let local: std::net::SocketAddr = "127.0.0.1:41000".parse().unwrap();
        assert_eq!(unreachable_endpoint("http://127.0.0.1:50061", local), None);
        assert_eq!(unreachable_endpoint("http://10.77.0.2:50061", remote), None);
    }

    #[test]
    fn node_info_validation_names_the_field() {
        let mut info = NodeInfo {
            node_name: "node-1".into(),
            agent_endpoint: "http://127.0.0.1:5000".into(),
            ..Default::default()
        };
        assert!(validate_node_info(&info).is_ok());
        info.node_name = "bad name".into();
        assert!(validate_node_info(&info).unwrap_err().contains("node_name"));
        info.node_name = "n".into();
        info.agent_endpoint = "127.0.0.1:5000".into();
        assert!(
            validate_node_info(&info)
                .unwrap_err()
                .contains("agent_endpoint")
        );
        info.agent_endpoint = "http://127.0.0.1:5000".into();
        let d = Device {
            id: "cpu".into(),
            kind: 1,
            ..Default::default()
        };
        info.devices = vec![d.clone(), d];
        assert!(
            validate_node_info(&info)
                .unwrap_err()
                .contains("duplicated")
        );
        info.devices = vec![Device {
            id: "x".into(),
            kind: 99,
            ..Default::default()
        }];
        assert!(
            validate_node_info(&info)
                .unwrap_err()
                .contains("unknown kind")
        );
    }
}
