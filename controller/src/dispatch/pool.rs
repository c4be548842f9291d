//! Agent clients, one lazily connected channel per agent endpoint, shared by every request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use switchyard_api::ApiError;
use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::agent_client::AgentClient;
use tonic::transport::{Channel, Endpoint};

/// The pool of agent clients.
#[derive(Debug, Default)]
pub struct AgentPool {
    clients: Mutex<HashMap<String, AgentClient<Channel>>>,
}

impl AgentPool {
    /// The client of `endpoint` (created on first use; connects lazily, so an unreachable
    /// agent fails the call as Unavailable rather than here).
    pub fn client(&self, endpoint: &str) -> Result<AgentClient<Channel>, ApiError> {
        let mut clients = self.clients.lock().expect("agent clients");
        if let Some(c) = clients.get(endpoint) {
            return Ok(c.clone());
        }
        let channel = Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| {
                ApiError::new(
                    ErrorClass::Internal,
                    format!("bad agent endpoint {endpoint}: {e}"),
                )
            })?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .connect_lazy();
        let client = AgentClient::new(channel);
        clients.insert(endpoint.to_string(), client.clone());
        Ok(client)
    }
}
