//! The controller's side of mTLS: the cluster CA and certificates it loads (or creates) in
//! its data directory at start, the TLS settings of its gRPC server and of its calls to
//! agents, and the check every control-path call passes ([`Security::authorize`]). With
//! `insecure` none of it applies and a warning says so at every start.
//!
//! * [`enrollment`]: `switchyard.v1.Enrollment/Join`: token + CSR → node certificate.
//! * [`revoked`]: node names removed from the cluster (`switchyard nodes remove`).

pub mod enrollment;
pub mod revoked;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use switchyard_api::config::ct_eq;
use switchyard_pki::ca::Issued;
use switchyard_pki::identity::of_request;
use switchyard_pki::{ClusterCa, PeerIdentity, PkiError, Role, TokenStore};
use switchyard_proto::errors::ErrorClass;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
use tonic::{Request, Status};

/// How long the join token the first start prints stays valid.
pub const FIRST_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

pub use revoked::Revoked;

/// The PKI directory inside a controller's data directory.
pub fn pki_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("pki")
}

/// Everything mTLS needs on the controller, loaded once at start.
pub struct Mtls {
    /// The cluster CA.
    pub ca: ClusterCa,
    /// The join tokens.
    pub tokens: TokenStore,
    /// Removed nodes.
    pub revoked: Revoked,
    server: Issued,
    client: Issued,
}

/// The controller's security mode.
pub struct Security {
    mtls: Option<Mtls>,
    admin_tokens: Vec<String>,
}

/// Who passed [`Security::authorize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Insecure mode: nobody is checked.
    Unchecked,
    /// A verified cluster certificate.
    Certified(PeerIdentity),
    /// An operator presenting one of `[controller] admin_tokens`.
    Admin,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("mtls", &self.mtls.is_some())
            .finish()
    }
}

/// What [`Security::open`] found or created.
#[derive(Debug)]
pub struct Opened {
    /// The security mode.
    pub security: Arc<Security>,
    /// A join token made now because the CA was created now (print it once).
    pub first_token: Option<String>,
}

impl Security {
    /// No TLS, no certificates: every caller is let in.
    pub fn insecure() -> Arc<Security> {
        Arc::new(Security {
            mtls: None,
            admin_tokens: Vec::new(),
        })
    }

    /// Loads (or on first start creates) the CA, the server certificate for `names` and the
    /// controller's client certificate in `data_dir/pki`. A CA created now comes with a
    /// first join token (no expiry; revoke it with `switchyard token revoke`).
    pub fn open(
        data_dir: &Path,
        names: &[String],
        admin_tokens: &[String],
    ) -> Result<Opened, PkiError> {
        let dir = pki_dir(data_dir);
        let (ca, created) = ClusterCa::load_or_create(&dir)?;
        let server = ca.server(names)?;
        let client = ca.controller_client()?;
        let tokens = TokenStore::new(&dir);
        let first_token = if created {
            // Like every token: single-use, and it expires (24 h).
            Some(
                tokens
                    .create(&ca.fingerprint(), Some(FIRST_TOKEN_TTL), 1)?
                    .render(),
            )
        } else {
            None
        };
        Ok(Opened {
            security: Arc::new(Security {
                mtls: Some(Mtls {
                    revoked: Revoked::new(&dir),
                    ca,
                    tokens,
                    server,
                    client,
                }),
                admin_tokens: admin_tokens.to_vec(),
            }),
            first_token,
        })
    }

    /// The controller's CA-issued server certificate and key (PEM), `None` when insecure.
    pub fn server_pem(&self) -> Option<(&str, &str)> {
        let m = self.mtls.as_ref()?;
        Some((&m.server.cert_pem, &m.server.key_pem))
    }

    /// The mTLS state, `None` when insecure.
    pub fn mtls(&self) -> Option<&Mtls> {
        self.mtls.as_ref()
    }

    /// The gRPC server's TLS: the server certificate, client certificates verified against
    /// the CA but optional at the handshake (a joining agent has none yet; every service but
    /// Enrollment and the client API then refuses a call without one).
    pub fn server_tls(&self) -> Option<ServerTlsConfig> {
        let m = self.mtls.as_ref()?;
        Some(
            ServerTlsConfig::new()
                .identity(Identity::from_pem(&m.server.cert_pem, &m.server.key_pem))
                .client_ca_root(Certificate::from_pem(m.ca.ca_pem()))
                .client_auth_optional(true),
        )
    }

    /// TLS for calls to agents: the CA and the controller-role client certificate (the
    /// server name to verify is set per agent: its node name).
    pub fn agent_tls(&self) -> Option<ClientTlsConfig> {
        let m = self.mtls.as_ref()?;
        Some(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(m.ca.ca_pem()))
                .identity(Identity::from_pem(&m.client.cert_pem, &m.client.key_pem)),
        )
    }

    /// Lets a control-path call through only with a verified node or controller certificate
    /// of a node that was not removed, or with an admin token
    /// (`authorization: Bearer <token>`) from `[controller] admin_tokens`.
    #[allow(clippy::result_large_err)]
    pub fn authorize<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let Some(m) = &self.mtls else {
            return Ok(Caller::Unchecked);
        };
        let id = match of_request(request) {
            None => return self.admin(request),
            Some(Err(e)) => return Err(ErrorClass::Unauthenticated.status(e.to_string())),
            Some(Ok(id)) => id,
        };
        if id.role == Role::Node && m.revoked.revokes(&id) {
            return Err(ErrorClass::Unauthenticated.status(format!(
                "node {} was removed from the cluster: its certificate is revoked (join again with a new token)",
                id.name
            )));
        }
        Ok(Caller::Certified(id))
    }

    /// A caller without a certificate: an admin token, or refused.
    #[allow(clippy::result_large_err)]
    fn admin<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            Some(t) if self.admin_tokens.iter().any(|a| ct_eq(a.as_bytes(), t.as_bytes())) => {
                Ok(Caller::Admin)
            }
            Some(_) => Err(ErrorClass::Unauthenticated
                .status("the admin token is not one of [controller] admin_tokens")),
            None => Err(ErrorClass::Unauthenticated.status(
                "a client certificate of the cluster is required: join with `switchyard agent --join-token TOKEN` (operators: SWITCHYARD_ADMIN_TOKEN)",
            )),
        }
    }
}
