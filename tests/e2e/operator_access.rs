//! Issue 13, operators and clients: a real mTLS controller configured with
//! `[controller] admin_tokens`, `[api] metrics_token` and `[api.tls] cluster = true`.
//! From a "host" without the controller's data directory, `switchyard status` reaches the
//! Cluster service with the admin token and the CA file, and is refused with a wrong or no
//! token; the HTTP API speaks only TLS with the CA-issued certificate; `/metrics` needs its
//! token while `/health` stays open; no secret appears in the controller's log.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use switchyard_e2e::mtls::{cli_with, controller};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ADMIN: &str = "adm-0123456789abcdef0123";
const METRICS: &str = "scrape-0123456789";

/// One HTTP/1.1 GET over TLS verified against `ca`: (status code, body).
async fn https_get(addr: &str, ca: &Path, path: &str, bearer: Option<&str>) -> (u16, String) {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake with the CA-issued certificate");
    let auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[test]
fn an_admin_token_opens_the_control_path_and_the_https_api_and_metrics_token_are_enforced() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ctl");
    let config = tmp.path().join("controller.toml");
    std::fs::write(
        &config,
        format!(
            "[controller]\nadmin_tokens = [\"{ADMIN}\"]\n[api]\nmetrics_token = \"{METRICS}\"\n[api.tls]\ncluster = true\n"
        ),
    )
    .unwrap();
    let ctl = controller(
        &data,
        "127.0.0.1:0",
        &["--config", config.to_str().unwrap()],
    );
    let grpc = ctl.field("grpc").unwrap();
    let http = ctl.field("http").unwrap();
    let url = format!("https://{grpc}");
    let ca = data.join("pki/ca.pem");
    let ca_s = ca.to_str().unwrap();

    // Another host: its own (empty) data directory, only the CA file and a token.
    let elsewhere = tmp.path().join("laptop");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let status = |env: &[(&str, &str)]| {
        let mut env = env.to_vec();
        env.push(("SWITCHYARD_DATA_DIR", elsewhere.to_str().unwrap()));
        cli_with(&data, &env, &["status", "--controller", &url, "-o", "json"])
    };
    let (ok, out, err) = status(&[
        ("SWITCHYARD_ADMIN_TOKEN", ADMIN),
        ("SWITCHYARD_CA_FILE", ca_s),
    ]);
    assert!(ok, "status with the admin token: {err}");
    assert_eq!(out.trim(), "[]", "no node has joined yet: {out}");
    let (ok, _, err) = status(&[
        ("SWITCHYARD_ADMIN_TOKEN", "adm-not-the-right-one-000"),
        ("SWITCHYARD_CA_FILE", ca_s),
    ]);
    assert!(!ok);
    assert!(
        err.contains("not one of [controller] admin_tokens"),
        "{err}"
    );
    let (ok, _, err) = status(&[("SWITCHYARD_CA_FILE", ca_s)]);
    assert!(!ok, "no token and no certificate must be refused");
    assert!(err.contains("controller.pem"), "{err}");

    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let (code, body) = https_get(&http, &ca, "/health", None).await;
            assert_eq!(code, 200, "{body}");
            let (code, body) = https_get(&http, &ca, "/metrics", None).await;
            assert_eq!(code, 401, "{body}");
            assert!(body.contains("metrics_token"), "{body}");
            let (code, _) = https_get(&http, &ca, "/metrics", Some("wrong-token")).await;
            assert_eq!(code, 401);
            let (code, body) = https_get(&http, &ca, "/metrics", Some(METRICS)).await;
            assert_eq!(code, 200, "{body}");
            assert!(body.contains("switchyard_build_info"), "{body}");
            // Plain HTTP on the TLS port gets no HTTP answer.
            let mut tcp = tokio::net::TcpStream::connect(&http).await.unwrap();
            tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut raw = Vec::new();
            let _ = tcp.read_to_end(&mut raw).await;
            assert!(
                !String::from_utf8_lossy(&raw).contains("200 OK"),
                "plaintext must not be served"
            );
        });
    // The server keeps serving after the failed handshake.
    let (ok, _, err) = status(&[
        ("SWITCHYARD_ADMIN_TOKEN", ADMIN),
        ("SWITCHYARD_CA_FILE", ca_s),
    ]);
    assert!(ok, "{err}");
    let log = ctl.stderr();
    assert!(
        !log.contains(ADMIN) && !log.contains(METRICS),
        "a secret was logged"
    );
}
