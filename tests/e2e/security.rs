//! Issue 13 end to end: real controller and agent processes on loopback under mTLS. An agent
//! with a valid join token joins and serves a request; wrong, expired, revoked or
//! other-cluster tokens, a missing certificate and a plaintext or certificate-less Register
//! are refused with a one-line reason on both sides; the agent's data path refuses callers
//! without the controller's certificate; restarts reuse the certificates; `nodes remove`
//! revokes a node.
//! Requires the prepared models (scripts/setup.sh) for the request the joined agent serves.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use switchyard_e2e::mtls::{cli, env_refs, secure};
use switchyard_e2e::{Proc, binary, run_command, wait_for};
use switchyard_proto::v1::agent_client::AgentClient;
use switchyard_proto::v1::enrollment_client::EnrollmentClient;
use switchyard_proto::v1::registry_client::RegistryClient;
use switchyard_proto::v1::{NodeInfo, RegisterRequest, RenewRequest, RunStageRequest, StageKind};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// Each test runs a small cluster; one at a time on a 2-core machine.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn controller(data: &Path, listen: &str) -> Proc {
    switchyard_e2e::mtls::controller(data, listen, &[])
}

fn token(data: &Path, ttl: &str) -> String {
    let (ok, out, err) = cli(data, &["token", "create", "--ttl", ttl]);
    assert!(ok, "token create: {err}");
    out.trim().to_string()
}

fn agent_args<'a>(url: &'a str, name: &'a str, token: Option<&'a str>) -> Vec<&'a str> {
    let mut args = vec![
        "agent",
        "--controller",
        url,
        "--node-name",
        name,
        "--agent-listen",
        "127.0.0.1:0",
    ];
    if let Some(t) = token {
        args.extend(["--join-token", t]);
    }
    args
}

fn agent(data: &Path, grpc: &str, name: &str, token: Option<&str>, dir: &Path) -> Proc {
    let url = format!("http://{grpc}");
    let mut env = secure(data);
    env.push(("SWITCHYARD_AGENT_DATA_DIR", dir.display().to_string()));
    Proc::start_with_env(name, &agent_args(&url, name, token), &env_refs(&env))
        .unwrap_or_else(|e| panic!("agent {name}: {e}"))
}

/// Runs an agent that must not start: its last stderr line.
fn agent_refused(data: &Path, grpc: &str, name: &str, token: Option<&str>, dir: &Path) -> String {
    let url = format!("http://{grpc}");
    let mut cmd = Command::new(binary());
    for (k, v) in secure(data) {
        cmd.env(k, v);
    }
    cmd.env("SWITCHYARD_AGENT_DATA_DIR", dir);
    let (status, _, err) = run_command(cmd, &agent_args(&url, name, token)).unwrap();
    assert!(!status.success(), "agent {name} must not start: {err}");
    err.lines().last().unwrap_or_default().to_string()
}

/// `status` over TLS with the controller's own client certificate (as on its host).
fn nodes(data: &Path, grpc: &str) -> Vec<Value> {
    let url = format!("https://{grpc}");
    let (ok, out, err) = cli(data, &["status", "--controller", &url, "-o", "json"]);
    assert!(ok, "status: {err}");
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn wait_ready(data: &Path, grpc: &str, name: &str) {
    let ok = wait_for(Duration::from_secs(30), || {
        nodes(data, grpc)
            .iter()
            .any(|n| n["name"] == name && n["state"] == "ready")
            .then_some(())
    });
    assert!(ok.is_some(), "{name} ready: {:?}", nodes(data, grpc));
}

fn register_request(name: &str) -> RegisterRequest {
    RegisterRequest {
        node: Some(NodeInfo {
            node_name: name.into(),
            agent_endpoint: "http://127.0.0.1:9".into(),
            ..Default::default()
        }),
        instance_id: "forged".into(),
    }
}

fn read(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f)).unwrap()
}

#[test]
fn an_agent_with_a_valid_token_joins_serves_a_request_and_restarts_reuse_the_certificates() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ctl");
    let node_dir = tmp.path().join("n1");
    let mut ctl = controller(&data, "127.0.0.1:0");
    let grpc = ctl.field("grpc").unwrap();
    // The first start made the CA (key 0600) and one join token, stored hashed.
    let (ok, out, err) = cli(&data, &["token", "list", "-o", "json"]);
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("pki/ca.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let t = token(&data, "1h");
    let mut a = agent(&data, &grpc, "n1", Some(&t), &node_dir);
    wait_ready(&data, &grpc, "n1");
    assert!(ctl.stderr().contains("node joined"), "{}", ctl.stderr());
    // A prompt through the client API (TLS) runs its stages on the agent (mTLS).
    let url = format!("https://{grpc}");
    let (ok, out, err) = cli(
        &data,
        &[
            "run",
            "hello there",
            "--controller",
            &url,
            "--max-tokens",
            "2",
            "-o",
            "json",
        ],
    );
    assert!(ok, "run over mTLS: {err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["trace"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["node"] == "n1"),
        "{v}"
    );
    // Nothing secret in the logs.
    let secret = t.rsplit('.').next().unwrap();
    assert!(!a.stderr().contains(secret) && !ctl.stderr().contains(secret));

    // Agent restart: no token needed, the same certificate.
    let cert = read(&node_dir, "node.pem");
    a.kill9();
    drop(a);
    let a = agent(&data, &grpc, "n1", None, &node_dir);
    wait_ready(&data, &grpc, "n1");
    assert_eq!(read(&node_dir, "node.pem"), cert);
    assert!(a.stderr().contains("using the stored node certificate"));

    // Controller restart on the same port: the same CA and server certificate; the agent
    // reconnects with its certificate.
    let ca = read(&data, "pki/ca.pem");
    let server = read(&data, "pki/server.pem");
    ctl.kill9();
    drop(ctl);
    let ctl = controller(&data, &grpc);
    assert_eq!(read(&data, "pki/ca.pem"), ca);
    assert_eq!(read(&data, "pki/server.pem"), server);
    wait_ready(&data, &grpc, "n1");
    drop(ctl);
}

#[test]
fn wrong_expired_revoked_and_foreign_tokens_and_a_missing_certificate_are_refused_and_a_rotated_token_joins()
 {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ctl");
    let ctl = controller(&data, "127.0.0.1:0");
    let grpc = ctl.field("grpc").unwrap();
    let dir = |n: &str| tmp.path().join(n);

    // Right CA, right id, wrong secret.
    let good = token(&data, "1h");
    let (head, _) = good.rsplit_once('.').unwrap();
    let wrong = format!("{head}.{}", "0".repeat(32));
    let line = agent_refused(&data, &grpc, "w1", Some(&wrong), &dir("w1"));
    assert!(
        line.contains("controller refused to join") && line.contains("wrong secret"),
        "{line}"
    );
    assert!(ctl.stderr().contains("join refused"), "{}", ctl.stderr());

    // Expired.
    let short = token(&data, "1s");
    std::thread::sleep(Duration::from_millis(2100));
    let line = agent_refused(&data, &grpc, "w2", Some(&short), &dir("w2"));
    assert!(line.contains("has expired"), "{line}");

    // Revoked.
    let revoked = token(&data, "1h");
    let id = revoked
        .rsplit("::")
        .next()
        .unwrap()
        .split('.')
        .next()
        .unwrap();
    let (ok, _, err) = cli(&data, &["token", "revoke", id]);
    assert!(ok, "{err}");
    let line = agent_refused(&data, &grpc, "w3", Some(&revoked), &dir("w3"));
    assert!(line.contains("unknown or revoked"), "{line}");

    // A token pinning another CA: the agent refuses the controller before sending anything.
    let foreign = format!(
        "SY10::{}::{}",
        "ab".repeat(32),
        good.rsplit("::").next().unwrap()
    );
    let line = agent_refused(&data, &grpc, "w4", Some(&foreign), &dir("w4"));
    assert!(
        line.contains("presents no CA with the join token's sha256"),
        "{line}"
    );

    // No token, no certificate, not insecure.
    let line = agent_refused(&data, &grpc, "w5", None, &dir("w5"));
    assert!(
        line.contains("no node certificate") && line.contains("--join-token"),
        "{line}"
    );
    // None of them joined.
    assert!(nodes(&data, &grpc).is_empty());
    for n in ["w1", "w2", "w3", "w4", "w5"] {
        assert!(!dir(n).join("node.pem").exists(), "{n}");
    }

    // Rotation: the revoked token's replacement joins the same node.
    let fresh = token(&data, "1h");
    let a = agent(&data, &grpc, "w3", Some(&fresh), &dir("w3"));
    wait_ready(&data, &grpc, "w3");
    // Single-use by default: the same token joins no second node, and `token list` says so.
    let line = agent_refused(&data, &grpc, "w6", Some(&fresh), &dir("w6"));
    assert!(line.contains("is used up"), "{line}");
    let (ok, listed, err) = cli(&data, &["token", "list"]);
    assert!(ok, "{err}");
    assert!(
        listed.contains("1/1") && listed.contains("used up"),
        "{listed}"
    );
    // The first token (printed at the first start) expires, like every token.
    let (ok, listed, _) = cli(&data, &["token", "list", "-o", "json"]);
    assert!(ok);
    let first: Value = serde_json::from_str::<Value>(&listed).unwrap()[0].clone();
    assert!(first["expires_unix"].as_u64().is_some(), "{first}");
    drop(a);
    drop(ctl);
}

#[test]
fn a_forged_register_and_a_direct_run_stage_without_the_controllers_certificate_are_refused() {
    let _g = serial();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(forged_register_and_direct_run_stage());
}

async fn forged_register_and_direct_run_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ctl");
    let node_dir = tmp.path().join("n1");
    let ctl = controller(&data, "127.0.0.1:0");
    let grpc = ctl.field("grpc").unwrap();
    let t = token(&data, "1h");
    let a = agent(&data, &grpc, "n1", Some(&t), &node_dir);
    let data_addr = a.field("data").unwrap();
    wait_ready(&data, &grpc, "n1");
    let ca = Certificate::from_pem(read(&data, "pki/ca.pem"));
    let tls = || ClientTlsConfig::new().ca_certificate(ca.clone());

    // Plaintext Register on the TLS port: refused.
    let plain = RegistryClient::connect(format!("http://{grpc}")).await;
    let plain_refused = match plain {
        Err(_) => true,
        Ok(mut c) => c.register(register_request("forged")).await.is_err(),
    };
    assert!(plain_refused, "plaintext Register must fail");
    // TLS without a client certificate: UNAUTHENTICATED, with the reason.
    let anonymous = Endpoint::from_shared(format!("https://{grpc}"))
        .unwrap()
        .tls_config(tls().domain_name("switchyard-controller"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let e = RegistryClient::new(anonymous.clone())
        .register(register_request("forged"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    assert!(
        e.message().contains("client certificate"),
        "{}",
        e.message()
    );
    // n1's own certificate registering another name: refused.
    let node_id = Identity::from_pem(read(&node_dir, "node.pem"), read(&node_dir, "node.key"));
    let with_node_cert = Endpoint::from_shared(format!("https://{grpc}"))
        .unwrap()
        .tls_config(
            tls()
                .domain_name("switchyard-controller")
                .identity(node_id.clone()),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
    let e = RegistryClient::new(with_node_cert.clone())
        .register(register_request("gpu-monster"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    assert!(e.message().contains("is for node 'n1'"), "{}", e.message());
    assert!(ctl.stderr().contains("certificate for another node name"));

    let stage = RunStageRequest {
        stage: StageKind::Embed as i32,
        model: "minilm-l6-v2".into(),
        device_id: "cpu".into(),
        backend: "ort-cpu".into(),
        inputs: vec!["steal my GPU".into()],
    };
    // Straight to the agent in plaintext: refused.
    let plain = AgentClient::connect(format!("http://{data_addr}")).await;
    let refused = match plain {
        Err(_) => true,
        Ok(mut c) => c.run_stage(stage.clone()).await.is_err(),
    };
    assert!(refused, "plaintext RunStage must fail");
    // TLS without a client certificate: the handshake itself is refused.
    let no_cert = Endpoint::from_shared(format!("https://{data_addr}"))
        .unwrap()
        .tls_config(tls().domain_name("n1"))
        .unwrap()
        .connect()
        .await;
    let refused = match no_cert {
        Err(_) => true,
        Ok(ch) => AgentClient::new(ch).run_stage(stage.clone()).await.is_err(),
    };
    assert!(refused, "RunStage without a certificate must fail");
    // A node's certificate (valid in the cluster) is not the controller's: UNAUTHENTICATED.
    let channel = Endpoint::from_shared(format!("https://{data_addr}"))
        .unwrap()
        .tls_config(tls().domain_name("n1").identity(node_id.clone()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let e = AgentClient::new(channel)
        .run_stage(stage)
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    assert!(
        e.message().contains("only the controller's certificate"),
        "{}",
        e.message()
    );
    assert!(a.stderr().contains("data-path call refused"));

    // Renewal: the node's own certificate gets a new one for its name, without a token; a
    // caller without a certificate is refused.
    let renew_request = || RenewRequest {
        csr_pem: switchyard_pki::node::request("n1").unwrap().1,
    };
    let renewed = EnrollmentClient::new(with_node_cert.clone())
        .renew(renew_request())
        .await
        .expect("a node renews with its own certificate")
        .into_inner();
    let id = switchyard_pki::NodeCredentials {
        ca_pem: renewed.ca_pem.clone(),
        cert_pem: renewed.certificate_pem.clone(),
        key_pem: String::new(),
    }
    .identity()
    .unwrap();
    assert_eq!(id.name, "n1");
    assert_ne!(renewed.certificate_pem, read(&node_dir, "node.pem"));
    let e = EnrollmentClient::new(anonymous)
        .renew(renew_request())
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");

    // `nodes remove`: the node is dropped, its certificate revoked; the agent's reconnect
    // is refused and it stops with the reason.
    std::thread::sleep(Duration::from_millis(1100)); // the removal postdates the issue second
    let url = format!("https://{grpc}");
    let (ok, out, err) = cli(&data, &["nodes", "remove", "n1", "--controller", &url]);
    assert!(ok, "{err}");
    assert!(
        out.contains("removed; its certificates are revoked"),
        "{out}"
    );
    let mut a = a;
    let stopped = wait_for(Duration::from_secs(15), || (!a.alive()).then_some(()));
    assert!(
        stopped.is_some(),
        "the removed agent must stop: {}",
        a.stderr()
    );
    assert!(
        a.stderr().contains("was removed from the cluster"),
        "{}",
        a.stderr()
    );
    assert!(nodes(&data, &grpc).iter().all(|n| n["name"] != "n1"));
    // A removed node cannot renew either.
    let e = EnrollmentClient::new(with_node_cert)
        .renew(renew_request())
        .await
        .unwrap_err();
    assert!(
        e.message().contains("was removed from the cluster"),
        "{}",
        e.message()
    );
    drop(a);
    drop(ctl);
}

/// One GET to 127.0.0.1:`port` with an optional bearer token: (status, body).
fn get(port: &str, path: &str, token: Option<&str>) -> (u16, String) {
    switchyard_e2e::get(&format!("127.0.0.1:{port}"), path, token).unwrap()
}

/// `up` with its HTTP API on every interface and its data in `data`: the process and its
/// HTTP port.
fn up_beyond_loopback(data: &str) -> (Proc, String) {
    let args = [
        "up",
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "0.0.0.0:0",
        "--agent-listen",
        "127.0.0.1:0",
        "--node-name",
        "open",
    ];
    let up = Proc::start_with_env("up", &args, &[("SWITCHYARD_DATA_DIR", data)]).unwrap();
    let port = up
        .field("http")
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    (up, port)
}

#[test]
fn an_api_beyond_loopback_with_no_configured_token_requires_the_one_the_first_start_made() {
    use std::os::unix::fs::PermissionsExt;
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_string_lossy().to_string();
    let (up, port) = up_beyond_loopback(&data_s);
    let file = data.join("api-token");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "token file mode");
    let token = std::fs::read_to_string(&file).unwrap().trim().to_string();
    // Printed once, with how clients send it.
    let log = up.stderr();
    assert!(
        log.contains(&file.display().to_string()) && log.contains("OPENAI_API_KEY="),
        "{log}"
    );

    let (code, body) = get(&port, "/v1/models", None);
    assert_eq!(code, 401, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing API token"),
        "{body}"
    );
    let (code, body) = get(&port, "/v1/models", Some("sy-wrong"));
    assert_eq!(code, 401, "{body}");
    assert!(!body.contains(&token), "no token leaks: {body}");
    let (code, body) = get(&port, "/api/tags", None);
    assert_eq!(code, 401, "{body}");
    let (code, body) = get(&port, "/v1/models", Some(&token));
    assert_eq!(code, 200, "{body}");
    let (code, _) = get(&port, "/health", None);
    assert_eq!(code, 200, "/health stays open");
    drop(up);

    // The next start reuses the token and prints it no more.
    let (again, port) = up_beyond_loopback(&data_s);
    assert!(!again.stderr().contains("OPENAI_API_KEY="), "shown once");
    assert_eq!(get(&port, "/v1/models", Some(&token)).0, 200);
    assert_eq!(get(&port, "/v1/models", None).0, 401);
}

#[test]
fn up_beyond_loopback_is_a_cluster_with_mtls_its_own_agent_joins_and_plaintext_is_refused() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut env = switchyard_e2e::mtls::secure(&data);
    env.push((
        "SWITCHYARD_AGENT_DATA_DIR",
        tmp.path().join("agent").display().to_string(),
    ));
    let args = [
        "up",
        "--listen",
        "0.0.0.0:0",
        "--http-listen",
        "127.0.0.1:0",
        "--agent-listen",
        "127.0.0.1:0",
        "--node-name",
        "one",
    ];
    let up = Proc::start_with_env("up", &args, &env_refs(&env)).expect("up starts");
    assert!(up.ready_line.contains("control=mtls"), "{}", up.ready_line);
    let port = up
        .field("grpc")
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let grpc = format!("127.0.0.1:{port}");
    // The local agent joined over mTLS with a token minted for it, revoked once it was up;
    // the first token (for other hosts) is left, printed once.
    wait_ready(&data, &grpc, "one");
    assert!(
        up.stderr().contains("join token for another host"),
        "{}",
        up.stderr()
    );
    let (ok, listed, err) = cli(&data, &["token", "list", "-o", "json"]);
    assert!(ok, "{err}");
    let tokens: Vec<Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(tokens.len(), 1, "only the first token is left: {listed}");
    assert_eq!(tokens[0]["used"], 0, "{listed}");
    // Nobody registers in plaintext on it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let plaintext = rt.block_on(async {
        match RegistryClient::connect(format!("http://{grpc}")).await {
            Ok(mut c) => c.register(register_request("intruder")).await.err(),
            Err(e) => Some(tonic::Status::unavailable(e.to_string())),
        }
    });
    assert!(plaintext.is_some(), "a plaintext Register must fail");
    assert!(
        !nodes(&data, &grpc).iter().any(|n| n["name"] == "intruder"),
        "the intruder is no node"
    );
}

#[test]
fn scoped_api_tokens_take_effect_without_a_restart_and_each_refusal_is_precise() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_string_lossy().to_string();
    let (up, port) = up_beyond_loopback(&data_s);
    let http = format!("127.0.0.1:{port}");
    let admin = std::fs::read_to_string(data.join("api-token"))
        .unwrap()
        .trim()
        .to_string();
    let make = |scope: &str, ttl: &str| -> String {
        let (ok, out, err) = cli(
            &data,
            &[
                "token",
                "create",
                "--api",
                "--scope",
                scope,
                "--ttl",
                ttl,
                "--data-dir",
                &data_s,
            ],
        );
        assert!(ok, "token create --api: {err}");
        out.trim().to_string()
    };
    let infer = make("infer", "never");
    let call = |method: &str, path: &str, token: Option<&str>, body: Option<&Value>| {
        switchyard_e2e::request(&http, method, path, token, body).unwrap()
    };
    // An infer token: inference yes; a document change or a model unload, 403 with why.
    assert_eq!(call("GET", "/v1/models", Some(&infer), None).0, 200);
    let (code, body) = call(
        "POST",
        "/v1/documents",
        Some(&infer),
        Some(&serde_json::json!({"documents": [{"text": "x"}]})),
    );
    assert_eq!(code, 403, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["type"], "permission_error", "{body}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("needs 'admin'"),
        "{body}"
    );
    let unload = serde_json::json!({"model": "smollm2-135m", "keep_alive": 0});
    let (code, body) = call("POST", "/api/generate", Some(&infer), Some(&unload));
    assert_eq!(code, 403, "{body}");
    assert!(
        serde_json::from_str::<Value>(&body).unwrap()["error"].is_string(),
        "Ollama shape: {body}"
    );
    // The admin token passes the same checks (a missing document is the store's 404).
    let (code, body) = call("DELETE", "/v1/documents/424242", Some(&admin), None);
    assert_eq!(code, 404, "{body}");
    // Expired, revoked, in the wrong header, oversized: 401 (or a 4xx for the size), and
    // the server keeps serving.
    let short = make("infer", "1s");
    std::thread::sleep(Duration::from_millis(1100));
    let (code, body) = call("GET", "/v1/models", Some(&short), None);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("has expired"), "{body}");
    let id = infer.trim_start_matches("sy-").split('.').next().unwrap();
    let (ok, _, err) = cli(
        &data,
        &["token", "revoke", "--api", id, "--data-dir", &data_s],
    );
    assert!(ok, "{err}");
    let (code, body) = call("GET", "/v1/models", Some(&infer), None);
    assert_eq!(code, 401, "revoked: {body}");
    assert!(!body.contains(id), "nothing said about the token: {body}");
    let wrong_header = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&http).unwrap();
        write!(s, "GET /v1/models HTTP/1.0\r\nX-Api-Key: {admin}\r\n\r\n").unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        raw
    };
    assert!(
        wrong_header.starts_with("HTTP/1.0 401") || wrong_header.starts_with("HTTP/1.1 401"),
        "{wrong_header}"
    );
    let huge = "a".repeat(200_000);
    let code = switchyard_e2e::request(&http, "GET", "/v1/models", Some(&huge), None)
        .map(|(c, _)| c)
        .unwrap_or(431);
    assert!((400..500).contains(&code), "oversized header: {code}");
    assert_eq!(
        call("GET", "/v1/models", Some(&admin), None).0,
        200,
        "still serving"
    );
    let (ok, listed, err) = cli(&data, &["token", "list", "--api", "--data-dir", &data_s]);
    assert!(ok, "{err}");
    assert!(
        listed.contains("infer") && listed.contains("expired"),
        "{listed}"
    );
    drop(up);
}
