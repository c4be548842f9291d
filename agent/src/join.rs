//! The agent's credentials: the node certificate kept in its data directory, or — the first
//! time, with a join token — obtained from the controller. The token pins the cluster CA:
//! the agent fetches the CA the controller presents, accepts it only if its sha256 is the
//! pinned one, then joins over a connection that verifies the controller against it.
//! Without credentials and without `insecure`, the agent does not start.

use std::path::Path;

use switchyard_pki::node::{self, NodeCredentials};
use switchyard_pki::{CONTROLLER_NAME, JoinToken};
use switchyard_proto::v1::enrollment_client::EnrollmentClient;
use switchyard_proto::v1::{JoinRequest, JoinResponse, RenewRequest};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
use tracing::{info, warn};

use crate::AgentSettings;
use crate::session::{controller_endpoint, error_chain};

/// The agent's TLS settings, both directions.
#[derive(Clone)]
pub struct AgentTls {
    /// Its credentials.
    pub credentials: NodeCredentials,
}

impl std::fmt::Debug for AgentTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentTls")
    }
}

impl AgentTls {
    /// Calls to the controller: verify it against the CA (as [`CONTROLLER_NAME`], whatever
    /// address is dialled), present the node certificate.
    pub fn client(&self) -> ClientTlsConfig {
        let c = &self.credentials;
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&c.ca_pem))
            .identity(Identity::from_pem(&c.cert_pem, &c.key_pem))
            .domain_name(CONTROLLER_NAME)
    }

    /// The data-path server: the node certificate, client certificates required and
    /// verified against the CA (the service then admits only the controller role).
    pub fn server(&self) -> ServerTlsConfig {
        let c = &self.credentials;
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&c.cert_pem, &c.key_pem))
            .client_ca_root(Certificate::from_pem(&c.ca_pem))
    }
}

/// `http://HOST:PORT` as `https://HOST:PORT` (tonic only does TLS for `https`).
pub fn https(url: &str) -> String {
    match url.strip_prefix("http://") {
        Some(rest) => format!("https://{rest}"),
        None => url.to_string(),
    }
}

/// The credentials the agent runs with: `None` when insecure, the stored ones when
/// present (checked against the token and the node name), else new ones from joining.
/// Every error is one line for the operator.
pub async fn credentials(settings: &AgentSettings) -> Result<Option<AgentTls>, String> {
    if settings.insecure {
        warn!(
            "running with --insecure: the session with the controller and the data path are plaintext, and anyone who reaches {} can run stages here",
            settings.listen
        );
        return Ok(None);
    }
    let dir = &settings.data_dir;
    let token = match &settings.join_token {
        Some(t) => Some(JoinToken::parse(t).map_err(|e| e.to_string())?),
        None => None,
    };
    let stored = NodeCredentials::load(dir).map_err(|e| e.to_string())?;
    if let Some(creds) = stored {
        let id = creds.identity().map_err(|e| e.to_string())?;
        if id.name != settings.node_name {
            return Err(format!(
                "the node certificate in {} is for node '{}', not '{}': use --node-name {} or remove the directory and join again",
                dir.display(),
                id.name,
                settings.node_name,
                id.name
            ));
        }
        let pinned = creds.ca_fingerprint().map_err(|e| e.to_string())?;
        match &token {
            Some(t) if t.ca_hash != pinned => {
                return Err(format!(
                    "the credentials in {} belong to another cluster (CA sha256 {pinned}) than the join token pins: remove the directory to join this cluster",
                    dir.display()
                ));
            }
            Some(t) if creds.needs_renewal() => {
                info!("node certificate expires soon: joining again to renew it");
                return join(settings, t, dir).await.map(Some);
            }
            _ => {}
        }
        if creds.needs_renewal() {
            match renew(settings, &creds, dir).await {
                Ok(renewed) => return Ok(Some(renewed)),
                // Still valid: run with it and try again at the next start.
                Err(e) if creds.identity().is_ok() && !creds.expired() => {
                    warn!(
                        "node certificate expires within 30 days and renewal failed ({e}): running with it"
                    )
                }
                Err(e) => {
                    return Err(format!(
                        "the node certificate in {} has expired and renewal failed ({e}): start with --join-token TOKEN",
                        dir.display()
                    ));
                }
            }
        }
        info!(dir = %dir.display(), "using the stored node certificate");
        return Ok(Some(AgentTls { credentials: creds }));
    }
    let Some(token) = token else {
        return Err(format!(
            "no node certificate in {}: start with --join-token TOKEN (printed by `switchyard controller` at its first start, or made with `switchyard token create`), or with --insecure for a plaintext cluster",
            dir.display()
        ));
    };
    join(settings, &token, dir).await.map(Some)
}

/// A new certificate for this node from `switchyard.v1.Enrollment/Renew`, authenticated by
/// the current one (no token needed), kept in `dir` in place of the old one.
async fn renew(
    settings: &AgentSettings,
    current: &NodeCredentials,
    dir: &Path,
) -> Result<AgentTls, String> {
    let old = AgentTls {
        credentials: current.clone(),
    };
    let url = &settings.controller;
    let channel = controller_endpoint(&https(url))?
        .tls_config(old.client())
        .map_err(|e| format!("TLS settings: {}", error_chain(&e)))?
        .connect()
        .await
        .map_err(|e| format!("cannot reach controller at {url}: {}", error_chain(&e)))?;
    let (key_pem, csr_pem) = node::request(&settings.node_name).map_err(|e| e.to_string())?;
    let resp = EnrollmentClient::new(channel)
        .renew(RenewRequest { csr_pem })
        .await
        .map_err(|s| format!("controller refused to renew: {}", s.message()))?
        .into_inner();
    let pinned = current.ca_fingerprint().map_err(|e| e.to_string())?;
    let credentials = keep(&settings.node_name, &pinned, resp, key_pem, dir)?;
    info!(dir = %dir.display(), "node certificate renewed and stored");
    Ok(AgentTls { credentials })
}

/// The credentials an Enrollment answer carries, checked (the CA is the pinned one, the
/// certificate names this node) and stored in `dir`.
fn keep(
    node_name: &str,
    ca_hash: &str,
    resp: JoinResponse,
    key_pem: String,
    dir: &Path,
) -> Result<NodeCredentials, String> {
    let credentials = NodeCredentials {
        ca_pem: resp.ca_pem,
        cert_pem: resp.certificate_pem,
        key_pem,
    };
    if credentials.ca_fingerprint().map_err(|e| e.to_string())? != ca_hash {
        return Err("the controller answered with a CA other than the one the token pins".into());
    }
    let id = credentials.identity().map_err(|e| e.to_string())?;
    if id.name != node_name {
        return Err(format!(
            "the controller issued a certificate for '{}', not '{node_name}'",
            id.name
        ));
    }
    credentials.store(dir).map_err(|e| e.to_string())?;
    Ok(credentials)
}

async fn join(settings: &AgentSettings, token: &JoinToken, dir: &Path) -> Result<AgentTls, String> {
    let url = &settings.controller;
    let (host, port) = switchyard_proto::endpoint::host_port(url)?;
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let ca_pem = switchyard_pki::pin::fetch_ca(&addr, &token.ca_hash)
        .await
        .map_err(|e| e.to_string())?;
    let endpoint = controller_endpoint(&https(url))?
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&ca_pem))
                .domain_name(CONTROLLER_NAME),
        )
        .map_err(|e| format!("TLS settings: {}", error_chain(&e)))?;
    let channel = endpoint.connect().await.map_err(|e| {
        format!(
            "cannot reach controller at {url} over TLS: {}",
            error_chain(&e)
        )
    })?;
    let (key_pem, csr_pem) = node::request(&settings.node_name).map_err(|e| e.to_string())?;
    let resp = EnrollmentClient::new(channel)
        .join(JoinRequest {
            token: token.render(),
            node_name: settings.node_name.clone(),
            csr_pem,
        })
        .await
        .map_err(|s| format!("controller refused to join: {}", s.message()))?
        .into_inner();
    let credentials = keep(&settings.node_name, &token.ca_hash, resp, key_pem, dir)?;
    info!(dir = %dir.display(), "joined the cluster: node certificate stored");
    Ok(AgentTls { credentials })
}
