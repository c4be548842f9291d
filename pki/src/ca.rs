//! The cluster CA: created once in the controller's data directory (`pki/`), then reused.
//! It issues the controller's server certificate (every name and address it is reached at,
//! plus [`CONTROLLER_NAME`]), the controller-role client certificate, and node certificates
//! from agents' CSRs, bound to the node name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use time::OffsetDateTime;

use crate::files::{read_optional, write_private};
use crate::{CONTROLLER_NAME, PkiError, Role, sha256_hex};

/// How long the CA is valid.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);
/// How long server, controller and node certificates are valid.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 86_400);
/// Certificates are valid from this long before they are issued (clocks a few minutes
/// apart).
pub const BACKDATE: Duration = Duration::from_secs(300);
/// A leaf certificate this close to expiry is issued anew (at start, at join).
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);

/// A certificate (PEM, chain: leaf then CA) and its private key (PEM).
#[derive(Clone)]
pub struct Issued {
    /// Certificate chain, PEM.
    pub cert_pem: String,
    /// Private key, PEM (never log it).
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// The cluster CA and the directory it lives in.
pub struct ClusterCa {
    dir: PathBuf,
    ca_pem: String,
    ca_der: Vec<u8>,
    key: KeyPair,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").field("dir", &self.dir).finish()
    }
}

fn subject(role: Role, name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, role.organization());
    dn.push(DnType::CommonName, name);
    dn
}

fn validity(params: &mut CertificateParams, length: Duration) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + length;
}

/// The first certificate of a PEM chain, DER.
pub fn first_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or_else(|| PkiError::Cert("no certificate in PEM".into()))?
        .map(|c| c.as_ref().to_vec())
        .map_err(|e| PkiError::Cert(format!("bad certificate PEM: {e}")))
}

/// Seconds from now until the certificate (DER) expires (negative: expired).
pub fn seconds_left(der: &[u8]) -> Result<i64, PkiError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| PkiError::Cert(format!("unreadable certificate: {e}")))?;
    Ok(cert.validity().not_after.timestamp() - OffsetDateTime::now_utc().unix_timestamp())
}

fn fresh(cert_pem: &str) -> bool {
    first_der(cert_pem)
        .and_then(|d| seconds_left(&d))
        .is_ok_and(|s| s > RENEW_BEFORE.as_secs() as i64)
}

impl ClusterCa {
    /// Opens the CA in `dir` (`ca.pem`, `ca.key`), creating it when absent. Returns whether
    /// it was created now.
    pub fn load_or_create(dir: &Path) -> Result<(ClusterCa, bool), PkiError> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        match (read_optional(&cert_path)?, read_optional(&key_path)?) {
            (Some(ca_pem), Some(key_pem)) => {
                let key = KeyPair::from_pem(&key_pem)?;
                let ca_der = first_der(&ca_pem)?;
                Ok((
                    ClusterCa {
                        dir: dir.to_path_buf(),
                        ca_pem,
                        ca_der,
                        key,
                    },
                    false,
                ))
            }
            (None, None) => {
                let key = KeyPair::generate()?;
                let mut params = CertificateParams::default();
                params.distinguished_name = subject(Role::Controller, "switchyard cluster CA");
                params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
                params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
                validity(&mut params, CA_VALIDITY);
                let cert = params.self_signed(&key)?;
                write_private(&key_path, key.serialize_pem().as_bytes())?;
                write_private(&cert_path, cert.pem().as_bytes())?;
                Ok((
                    ClusterCa {
                        dir: dir.to_path_buf(),
                        ca_pem: cert.pem(),
                        ca_der: cert.der().to_vec(),
                        key,
                    },
                    true,
                ))
            }
            _ => Err(PkiError::Cert(format!(
                "{} holds only half of the cluster CA (ca.pem and ca.key go together): restore the missing file or remove both to create a new CA (every node must then join again)",
                dir.display()
            ))),
        }
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// sha256 of the CA certificate (DER), hex: what join tokens pin.
    pub fn fingerprint(&self) -> String {
        sha256_hex(&self.ca_der)
    }

    /// The directory the CA lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn issuer(&self) -> Result<Issuer<'static, &KeyPair>, PkiError> {
        Ok(Issuer::from_ca_cert_der(
            &CertificateDer::from(self.ca_der.clone()),
            &self.key,
        )?)
    }

    fn leaf(
        &self,
        role: Role,
        name: &str,
        sans: &[String],
        ekus: Vec<ExtendedKeyUsagePurpose>,
    ) -> Result<CertificateParams, PkiError> {
        let mut params = CertificateParams::new(sans.to_vec())?;
        params.distinguished_name = subject(role, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = ekus;
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, LEAF_VALIDITY);
        Ok(params)
    }

    /// Reuses `NAME.pem`/`NAME.key` when present, still fresh and (for `NAME.sans`) issued
    /// for the same names; issues and stores new ones otherwise.
    fn stored_or_issued(
        &self,
        file: &str,
        sans: &[String],
        make: impl FnOnce() -> Result<CertificateParams, PkiError>,
    ) -> Result<Issued, PkiError> {
        let cert_path = self.dir.join(format!("{file}.pem"));
        let key_path = self.dir.join(format!("{file}.key"));
        let sans_path = self.dir.join(format!("{file}.sans"));
        let wanted = sans.join("\n");
        if let (Some(cert_pem), Some(key_pem)) =
            (read_optional(&cert_path)?, read_optional(&key_path)?)
            && read_optional(&sans_path)?.unwrap_or_default() == wanted
            && fresh(&cert_pem)
        {
            return Ok(Issued { cert_pem, key_pem });
        }
        let key = KeyPair::generate()?;
        let cert = make()?.signed_by(&key, &self.issuer()?)?;
        let issued = Issued {
            cert_pem: format!("{}{}", cert.pem(), self.ca_pem),
            key_pem: key.serialize_pem(),
        };
        write_private(&key_path, issued.key_pem.as_bytes())?;
        write_private(&cert_path, issued.cert_pem.as_bytes())?;
        write_private(&sans_path, wanted.as_bytes())?;
        Ok(issued)
    }

    /// The controller's server certificate for `names` (host names and IP addresses) plus
    /// [`CONTROLLER_NAME`].
    pub fn server(&self, names: &[String]) -> Result<Issued, PkiError> {
        let mut sans = vec![CONTROLLER_NAME.to_string()];
        for n in names {
            if !sans.contains(n) {
                sans.push(n.clone());
            }
        }
        self.stored_or_issued("server", &sans, || {
            self.leaf(
                Role::Controller,
                CONTROLLER_NAME,
                &sans,
                vec![ExtendedKeyUsagePurpose::ServerAuth],
            )
        })
    }

    /// The controller-role client certificate (calls agents' data path; operator commands
    /// on the controller's host use it too).
    pub fn controller_client(&self) -> Result<Issued, PkiError> {
        self.stored_or_issued("controller", &[], || {
            self.leaf(
                Role::Controller,
                CONTROLLER_NAME,
                &[],
                vec![ExtendedKeyUsagePurpose::ClientAuth],
            )
        })
    }

    /// Signs a node's CSR (PEM). Only the CSR's public key is used: the certificate is bound
    /// to `node_name` (common name and DNS SAN), role node, client and server auth (the
    /// agent's data-path server presents it too). Returns the chain, PEM.
    pub fn sign_node(&self, csr_pem: &str, node_name: &str) -> Result<String, PkiError> {
        check_node_name(node_name)?;
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::Cert(format!("invalid CSR: {e}")))?;
        let params = self.leaf(
            Role::Node,
            node_name,
            &[node_name.to_string()],
            vec![
                ExtendedKeyUsagePurpose::ClientAuth,
                ExtendedKeyUsagePurpose::ServerAuth,
            ],
        )?;
        let cert = CertificateSigningRequestParams {
            params,
            public_key: csr.public_key,
        }
        .signed_by(&self.issuer()?)?;
        Ok(format!("{}{}", cert.pem(), self.ca_pem))
    }
}

/// A node name a certificate can be bound to: a DNS label-ish name, never the controller's.
pub fn check_node_name(name: &str) -> Result<(), PkiError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if !ok {
        return Err(PkiError::Cert(format!(
            "node name '{name}' cannot be certified: use 1-63 letters, digits, '-', '.', '_'"
        )));
    }
    if name == CONTROLLER_NAME {
        return Err(PkiError::Cert(format!(
            "node name '{CONTROLLER_NAME}' is reserved for the controller"
        )));
    }
    Ok(())
}
