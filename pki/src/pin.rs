//! A joining agent's first TLS connection: it completes a handshake with whatever the server
//! presents, only to read the chain, and accepts the CA in it whose sha256 is the token's
//! pin. Nothing is sent on this connection; the join itself then runs over a connection that
//! fully verifies the server against that CA. No pin match, no trust: there is no trust on
//! first use.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;

use crate::{CONTROLLER_NAME, PkiError, sha256_hex};

/// Records the presented chain; the signature checks are real (the server proves it holds
/// the leaf's key), the chain check is the caller's pin comparison and the second connection.
#[derive(Debug)]
struct Capture {
    chain: Mutex<Vec<CertificateDer<'static>>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = self.chain.lock().expect("chain");
        chain.push(end_entity.clone().into_owned());
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Connects to `addr` (`host:port`), reads the certificate chain the server presents and
/// returns the CA certificate in it (PEM) whose sha256 is `ca_hash`.
pub async fn fetch_ca(addr: &str, ca_hash: &str) -> Result<String, PkiError> {
    let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::ring::default_provider());
    let capture = Arc::new(Capture {
        chain: Mutex::new(Vec::new()),
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PkiError::Untrusted(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::time::timeout(std::time::Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .map_err(|_| PkiError::Untrusted(format!("cannot reach controller at {addr}: timed out")))?
        .map_err(|e| PkiError::Untrusted(format!("cannot reach controller at {addr}: {e}")))?;
    let name = ServerName::try_from(CONTROLLER_NAME).expect("valid DNS name");
    let handshake = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        connector.connect(name, tcp),
    )
    .await
    .map_err(|_| PkiError::Untrusted(format!("TLS handshake with {addr} timed out")))?;
    if let Err(e) = handshake {
        return Err(PkiError::Untrusted(format!(
            "TLS handshake with controller at {addr} failed: {e} (is it running with --insecure? then pass --insecure to the agent too)"
        )));
    }
    let chain = capture.chain.lock().expect("chain").clone();
    let ca = chain
        .iter()
        .find(|c| sha256_hex(c.as_ref()) == ca_hash)
        .ok_or_else(|| {
            PkiError::Untrusted(format!(
                "controller at {addr} presents no CA with the join token's sha256 {ca_hash}: wrong controller or wrong token"
            ))
        })?;
    Ok(pem_of(ca.as_ref()))
}

/// PEM text of a DER certificate.
fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let flat = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in flat.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ascii"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}
