//! The agent side of the PKI: a key and CSR for joining, and the credentials (CA, node
//! certificate, key) kept in the agent's data directory and reused on restart.

use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

use crate::ca::{RENEW_BEFORE, first_der, seconds_left};
use crate::files::{read_optional, write_private};
use crate::{PeerIdentity, PkiError, Role, sha256_hex};

/// A node's credentials: the cluster CA and its own certificate and key.
#[derive(Clone)]
pub struct NodeCredentials {
    /// The cluster CA certificate, PEM.
    pub ca_pem: String,
    /// The node certificate chain, PEM.
    pub cert_pem: String,
    /// The node's private key, PEM (never log it).
    pub key_pem: String,
}

impl std::fmt::Debug for NodeCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCredentials")
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// A fresh key and a CSR for `node_name` (PEM each).
pub fn request(node_name: &str) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![node_name.to_string()])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, Role::Node.organization());
    dn.push(DnType::CommonName, node_name);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.pem()?))
}

fn paths(dir: &Path) -> [PathBuf; 3] {
    [
        dir.join("ca.pem"),
        dir.join("node.pem"),
        dir.join("node.key"),
    ]
}

impl NodeCredentials {
    /// The credentials stored in `dir`, `None` when the node has not joined yet.
    pub fn load(dir: &Path) -> Result<Option<NodeCredentials>, PkiError> {
        let [ca, cert, key] = paths(dir);
        match (
            read_optional(&ca)?,
            read_optional(&cert)?,
            read_optional(&key)?,
        ) {
            (Some(ca_pem), Some(cert_pem), Some(key_pem)) => Ok(Some(NodeCredentials {
                ca_pem,
                cert_pem,
                key_pem,
            })),
            (None, None, None) => Ok(None),
            _ => Err(PkiError::Cert(format!(
                "{} holds only part of this node's credentials (ca.pem, node.pem, node.key): remove them and join again with --join-token",
                dir.display()
            ))),
        }
    }

    /// Stores the credentials in `dir` (mode 0600).
    pub fn store(&self, dir: &Path) -> Result<(), PkiError> {
        let [ca, cert, key] = paths(dir);
        write_private(&key, self.key_pem.as_bytes())?;
        write_private(&cert, self.cert_pem.as_bytes())?;
        write_private(&ca, self.ca_pem.as_bytes())
    }

    /// sha256 of the CA certificate, hex (compared with a token's pin).
    pub fn ca_fingerprint(&self) -> Result<String, PkiError> {
        Ok(sha256_hex(&first_der(&self.ca_pem)?))
    }

    /// Who the certificate says this node is.
    pub fn identity(&self) -> Result<PeerIdentity, PkiError> {
        PeerIdentity::from_der(&first_der(&self.cert_pem)?)
    }

    /// True when the certificate expires within [`RENEW_BEFORE`] (or is unreadable).
    pub fn needs_renewal(&self) -> bool {
        first_der(&self.cert_pem)
            .and_then(|d| seconds_left(&d))
            .map_or(true, |s| s <= RENEW_BEFORE.as_secs() as i64)
    }

    /// True when the certificate has expired (or is unreadable).
    pub fn expired(&self) -> bool {
        first_der(&self.cert_pem)
            .and_then(|d| seconds_left(&d))
            .map_or(true, |s| s <= 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClusterCa;

    #[test]
    fn a_node_certificate_is_bound_to_the_name_the_controller_signs() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, created) = ClusterCa::load_or_create(dir.path()).unwrap();
        assert!(created);
        let (key, csr) = request("gpu-box").unwrap();
        let cert = ca.sign_node(&csr, "gpu-box").unwrap();
        let creds = NodeCredentials {
            ca_pem: ca.ca_pem().to_string(),
            cert_pem: cert,
            key_pem: key,
        };
        let id = creds.identity().unwrap();
        assert_eq!((id.role, id.name.as_str()), (Role::Node, "gpu-box"));
        assert_eq!(creds.ca_fingerprint().unwrap(), ca.fingerprint());
        assert!(!creds.needs_renewal());
        let node_dir = dir.path().join("agent");
        creds.store(&node_dir).unwrap();
        let back = NodeCredentials::load(&node_dir).unwrap().unwrap();
        assert_eq!(back.cert_pem, creds.cert_pem);
        #[cfg(unix)]
        assert_eq!(
            crate::files::mode(&node_dir.join("node.key")).unwrap(),
            0o600
        );
        // The controller's name is not for nodes.
        let e = ca.sign_node(&csr, crate::CONTROLLER_NAME).unwrap_err();
        assert!(e.to_string().contains("reserved"), "{e}");
        assert!(ca.sign_node("garbage", "gpu-box").is_err());
    }

    #[test]
    fn the_ca_and_leaf_certificates_are_reused_on_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = ClusterCa::load_or_create(dir.path()).unwrap();
        let names = vec!["127.0.0.1".to_string(), "myhost".to_string()];
        let server = ca.server(&names).unwrap();
        let client = ca.controller_client().unwrap();
        let (again, created) = ClusterCa::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(again.fingerprint(), ca.fingerprint());
        assert_eq!(again.server(&names).unwrap().cert_pem, server.cert_pem);
        assert_eq!(again.controller_client().unwrap().key_pem, client.key_pem);
        // Other names: a new server certificate.
        assert_ne!(
            again.server(&["otherhost".into()]).unwrap().cert_pem,
            server.cert_pem
        );
        #[cfg(unix)]
        for f in ["ca.key", "server.key", "controller.key", "ca.pem"] {
            assert_eq!(
                crate::files::mode(&dir.path().join(f)).unwrap(),
                0o600,
                "{f}"
            );
        }
        let id = PeerIdentity::from_der(&first_der(&client.cert_pem).unwrap()).unwrap();
        assert_eq!(id.role, Role::Controller);
        // Half a CA is an error, not a silent new CA.
        std::fs::remove_file(dir.path().join("ca.key")).unwrap();
        let e = ClusterCa::load_or_create(dir.path()).unwrap_err();
        assert!(e.to_string().contains("only half"), "{e}");
    }
}
