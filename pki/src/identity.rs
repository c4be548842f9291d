//! What a peer certificate (already verified against the cluster CA by rustls) says about
//! its holder: the role in the subject's organisation, the name in its common name.

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::PkiError;

/// The role a certificate was issued for (its subject organisation, `switchyard-ROLE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The controller: its client certificate may call agents' data path and every service.
    Controller,
    /// A node (agent): may register and hold a session under its own name.
    Node,
}

impl Role {
    /// The subject organisation that marks the role.
    pub fn organization(self) -> &'static str {
        match self {
            Role::Controller => "switchyard-controller",
            Role::Node => "switchyard-node",
        }
    }

    fn from_organization(o: &str) -> Option<Role> {
        [Role::Controller, Role::Node]
            .into_iter()
            .find(|r| r.organization() == o)
    }
}

/// The holder of a verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Its role.
    pub role: Role,
    /// Its common name (a node's name; the controller's is [`crate::CONTROLLER_NAME`]).
    pub name: String,
    /// When the certificate was issued, Unix seconds (its not-before plus the back-dating
    /// [`crate::ca::BACKDATE`]).
    pub issued_unix: u64,
}

impl PeerIdentity {
    /// Reads the end-entity certificate (DER).
    pub fn from_der(der: &[u8]) -> Result<PeerIdentity, PkiError> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| PkiError::Cert(format!("unreadable peer certificate: {e}")))?;
        let subject = cert.subject();
        let org = subject
            .iter_organization()
            .filter_map(|a| a.as_str().ok())
            .find_map(Role::from_organization)
            .ok_or_else(|| PkiError::Cert("peer certificate carries no switchyard role".into()))?;
        let name = subject
            .iter_common_name()
            .find_map(|a| a.as_str().ok())
            .ok_or_else(|| PkiError::Cert("peer certificate has no common name".into()))?
            .to_string();
        Ok(PeerIdentity {
            role: org,
            name,
            issued_unix: (cert.validity().not_before.timestamp()
                + crate::ca::BACKDATE.as_secs() as i64)
                .max(0) as u64,
        })
    }
}

/// The identity of a tonic request's verified client certificate, `None` without one.
pub fn of_request<T>(request: &tonic::Request<T>) -> Option<Result<PeerIdentity, PkiError>> {
    let certs = request.peer_certs()?;
    let first = certs.first()?;
    Some(PeerIdentity::from_der(first.as_ref()))
}
