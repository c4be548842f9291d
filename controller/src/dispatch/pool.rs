//! Agent clients, one lazily connected channel per agent endpoint, shared by every request.
//! Under mTLS every channel is TLS (an `http://` endpoint is dialled as `https://`), verifies
//! the agent's certificate for its node name and presents the controller's certificate.
//!
//! An agent running in the controller's own process (`switchyard up`) is attached
//! in-process ([`AgentPool::attach_in_process`]): its node's calls go straight to the agent's
//! service, the same `switchyard.v1.Agent` requests and responses without HTTP/2 or a
//! loopback socket in between. On 2 vCPUs under 32 concurrent embedding requests that hop was
//! a third of the request threads' CPU.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Mutex;
use std::time::Duration;

use switchyard_api::ApiError;
use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::agent_client::AgentClient;
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::transport::{ClientTlsConfig, Endpoint};
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

/// What an agent client calls: a channel to the agent, or the agent's service in-process.
pub type AgentService = BoxCloneSyncService<Request<Body>, Response<Body>, TransportError>;

/// A client of one agent's data path.
pub type AgentRpc = AgentClient<AgentService>;

/// A call that did not reach the agent. The transport error stays its source, so tonic still
/// reads "cannot connect" in it as `Unavailable` (node scope, see [`super::Failure`]).
#[derive(Debug, thiserror::Error)]
#[error("agent transport")]
pub struct TransportError(#[source] tonic::transport::Error);

/// An agent's `switchyard.v1.Agent` server (the generated `AgentServer`, which never fails as
/// a service) as an [`AgentService`].
pub fn in_process<S>(server: S) -> AgentService
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    BoxCloneSyncService::new(server.map_err(|e: Infallible| -> TransportError { match e {} }))
}

/// The pool of agent clients.
#[derive(Debug, Default)]
pub struct AgentPool {
    clients: Mutex<HashMap<String, AgentRpc>>,
    /// Agents in this process, by node name.
    in_process: Mutex<HashMap<String, AgentRpc>>,
    tls: Option<ClientTlsConfig>,
}

impl AgentPool {
    /// A pool whose channels use `tls` (the CA and the controller's client certificate), or
    /// plaintext with `None`.
    pub fn new(tls: Option<ClientTlsConfig>) -> Self {
        AgentPool {
            tls,
            ..AgentPool::default()
        }
    }

    /// Calls `node` through `service` (its agent, in this process) from now on, whatever
    /// endpoint the node advertises.
    pub fn attach_in_process(&self, node: &str, service: AgentService) {
        self.in_process
            .lock()
            .expect("in-process agents")
            .insert(node.to_string(), AgentClient::new(service));
    }

    /// The client of `node`'s `endpoint` (created on first use; connects lazily, so an
    /// unreachable agent fails the call as Unavailable rather than here). A node attached
    /// in-process is called in-process.
    pub fn client(&self, node: &str, endpoint: &str) -> Result<AgentRpc, ApiError> {
        if let Some(c) = self.in_process.lock().expect("in-process agents").get(node) {
            return Ok(c.clone());
        }
        let mut clients = self.clients.lock().expect("agent clients");
        let key = format!("{node} {endpoint}");
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let bad = |e: tonic::transport::Error| {
            ApiError::new(
                ErrorClass::Internal,
                format!("bad agent endpoint {endpoint}: {e}"),
            )
        };
        let url = match (&self.tls, endpoint.strip_prefix("http://")) {
            (Some(_), Some(rest)) => format!("https://{rest}"),
            _ => endpoint.to_string(),
        };
        let mut builder = Endpoint::from_shared(url).map_err(bad)?;
        if let Some(tls) = &self.tls {
            builder = builder
                .tls_config(tls.clone().domain_name(node))
                .map_err(bad)?;
        }
        let channel = builder
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .connect_lazy();
        let client = AgentClient::new(BoxCloneSyncService::new(channel.map_err(TransportError)));
        clients.insert(key, client.clone());
        Ok(client)
    }
}

#[cfg(test)]
mod tests;
