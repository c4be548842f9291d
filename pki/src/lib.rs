//! The cluster's public-key infrastructure, one home for every piece of it:
//!
//! * [`ca`]: the cluster CA the controller creates on first start in its data directory, and
//!   the certificates it issues (its own server and controller-role client certificates, and
//!   node certificates signed from an agent's CSR).
//! * [`token`]: join tokens (`SY10::<sha256 of the CA certificate>::<id>.<secret>`), kept
//!   hashed with an expiry in `tokens.json`.
//! * [`identity`]: what a verified peer certificate says: its [`Role`] and name.
//! * [`node`]: the agent side: its key, CSR and the certificates it keeps in its data
//!   directory.
//! * [`pin`]: the first TLS connection of a joining agent, which fetches the CA the server
//!   presents and accepts it only when its sha256 is the one the token pins (no trust on
//!   first use).
//!
//! Keys and secrets are written with mode 0600 and never logged.

pub mod ca;
pub mod files;
pub mod identity;
pub mod node;
pub mod pin;
pub mod token;

pub use ca::ClusterCa;
pub use identity::{PeerIdentity, Role};
pub use node::NodeCredentials;
pub use token::{JoinToken, TokenStore};

/// The DNS name every controller server certificate carries and agents verify against, so
/// the address an agent dials (an IP, a host name, a NAT address) needs no SAN of its own.
/// Node certificates never carry it ([`ca::ClusterCa::sign_node`] refuses the name).
pub const CONTROLLER_NAME: &str = "switchyard-controller";

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file in a data directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A certificate, key or CSR could not be generated or parsed.
    #[error("{0}")]
    Cert(String),
    /// A join token is malformed, unknown, expired or revoked.
    #[error("{0}")]
    Token(String),
    /// The controller's certificate does not chain to the CA the token pins, or TLS failed.
    #[error("{0}")]
    Untrusted(String),
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError::Cert(e.to_string())
    }
}

/// Lower-case hex of the sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
