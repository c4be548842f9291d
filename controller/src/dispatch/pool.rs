//! Agent clients, one lazily connected channel per agent endpoint, shared by every request.
//! Under mTLS every channel is TLS (an `http://` endpoint is dialled as `https://`), verifies
//! the agent's certificate for its node name and presents the controller's certificate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use switchyard_api::ApiError;
use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::agent_client::AgentClient;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// The pool of agent clients.
#[derive(Debug, Default)]
pub struct AgentPool {
    clients: Mutex<HashMap<String, AgentClient<Channel>>>,
    tls: Option<ClientTlsConfig>,
}

impl AgentPool {
    /// A pool whose channels use `tls` (the CA and the controller's client certificate), or
    /// plaintext with `None`.
    pub fn new(tls: Option<ClientTlsConfig>) -> Self {
        AgentPool {
            clients: Mutex::default(),
            tls,
        }
    }

    /// The client of `node`'s `endpoint` (created on first use; connects lazily, so an
    /// unreachable agent fails the call as Unavailable rather than here).
    pub fn client(&self, node: &str, endpoint: &str) -> Result<AgentClient<Channel>, ApiError> {
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
        let client = AgentClient::new(channel);
        clients.insert(key, client.clone());
        Ok(client)
    }
}
