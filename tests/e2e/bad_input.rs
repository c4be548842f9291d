//! Bad input gets a one-line clear error and the controller keeps serving: malformed config,
//! unknown config key, unreachable controller URL, garbage protobuf on the registry port.

use std::io::Write;
use std::time::Duration;

use switchyard_e2e::{Proc, run_cli, status_json, wait_for};

fn last_error_line(stderr: &str) -> String {
    stderr
        .lines()
        .rfind(|l| l.starts_with("error:"))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn malformed_config_and_unknown_key_are_one_line_errors_with_position() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[controller\nlisten = 1\n").unwrap();
    let (status, _, err) = run_cli(&["controller", "--config", bad.to_str().unwrap()]).unwrap();
    assert!(!status.success());
    let line = last_error_line(&err);
    assert!(line.contains("bad.toml:1:"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line expected: {err}");

    let unknown = dir.path().join("unknown.toml");
    std::fs::write(
        &unknown,
        "[controller]\nlisten = \"127.0.0.1:0\"\nheartbeat_intervall_ms = 5\n",
    )
    .unwrap();
    let (status, _, err) = run_cli(&["controller", "--config", unknown.to_str().unwrap()]).unwrap();
    assert!(!status.success());
    let line = last_error_line(&err);
    assert!(line.contains("unknown.toml:3:1"), "{err}");
    assert!(line.contains("heartbeat_intervall_ms"), "{err}");

    let (status, _, err) = run_cli(&["controller", "--listen", "not-an-address"]).unwrap();
    assert!(!status.success());
    assert!(err.contains("--listen"), "{err}");
}

#[test]
fn a_cluster_controller_on_loopback_is_refused_naming_the_flag() {
    let (status, out, err) = run_cli(&[
        "controller",
        "--cluster",
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
    ])
    .unwrap();
    assert!(!status.success(), "must not start: {out}");
    let line = last_error_line(&err);
    assert!(line.contains("loopback address"), "{err}");
    assert!(line.contains("--listen 0.0.0.0:0"), "{err}");
    // An agent that would advertise a loopback address to a controller on another host is
    // refused before it registers (198.51.100.7 is TEST-NET-2: resolved, never contacted).
    let (status, _, err) = run_cli(&[
        "agent",
        "--controller",
        "http://198.51.100.7:50051",
        "--agent-listen",
        "127.0.0.1:0",
    ])
    .unwrap();
    assert!(!status.success());
    let line = last_error_line(&err);
    assert!(line.contains("--agent-listen 0.0.0.0:50061"), "{err}");
    assert!(line.contains("--advertise"), "{err}");
}

#[test]
fn unreachable_controller_is_a_clear_error_and_the_agent_keeps_retrying() {
    let (status, _, err) = run_cli(&["status", "--controller", "http://127.0.0.1:1"]).unwrap();
    assert!(!status.success());
    let line = last_error_line(&err);
    assert!(
        line.contains("cannot reach controller at http://127.0.0.1:1"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let (status, _, err) = run_cli(&["status", "--controller", "127.0.0.1:50051"]).unwrap();
    assert!(!status.success());
    assert!(
        last_error_line(&err).contains("expected http://HOST:PORT"),
        "{err}"
    );

    // An agent pointed at nothing says so and keeps trying (agents outlive controllers).
    let mut agent = Proc::start(
        "agent",
        &[
            "agent",
            "--controller",
            "http://127.0.0.1:1",
            "--node-name",
            "lonely",
            "--agent-listen",
            "127.0.0.1:0",
        ],
    )
    .unwrap();
    let said = wait_for(Duration::from_secs(10), || {
        agent
            .stderr()
            .contains("cannot reach controller at http://127.0.0.1:1")
            .then_some(())
    });
    assert!(said.is_some(), "stderr: {}", agent.stderr());
    assert!(agent.alive());
}

/// Bytes in, bytes out: lets the test put arbitrary bytes in a gRPC frame.
#[derive(Debug, Clone, Default)]
struct RawCodec;

#[derive(Debug, Default)]
struct RawEncoder;
#[derive(Debug, Default)]
struct RawDecoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use prost::bytes::BufMut;
        buf.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use prost::bytes::Buf;
        let mut out = vec![0; buf.remaining()];
        buf.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_protobuf_and_garbage_bytes_on_the_registry_port_are_refused_and_serving_continues()
{
    let controller = Proc::start(
        "controller",
        &[
            "controller",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ],
    )
    .unwrap();
    let grpc = controller.field("grpc").unwrap();

    // A well-framed gRPC call whose payload is not a RegisterRequest.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/switchyard.v1.Registry/Register");
    let garbage = vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x99];
    let status = client
        .unary(tonic::Request::new(garbage), path.clone(), RawCodec)
        .await
        .expect_err("garbage must be refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("malformed protobuf message"),
        "{}",
        status.message()
    );
    assert!(!status.message().contains('\n'));

    // A valid message with a bad field value is refused naming the field.
    use prost::Message;
    let bad = switchyard_proto::v1::RegisterRequest {
        node: Some(switchyard_proto::v1::NodeInfo {
            node_name: "bad name!".into(),
            agent_endpoint: "http://127.0.0.1:1".into(),
            ..Default::default()
        }),
        instance_id: "x".into(),
    };
    client.ready().await.unwrap();
    let status = client
        .unary(tonic::Request::new(bad.encode_to_vec()), path, RawCodec)
        .await
        .expect_err("bad node name must be refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("node_name"),
        "{}",
        status.message()
    );

    // Raw non-HTTP/2 bytes on the port: the connection is dropped, the server lives on.
    {
        let mut s = std::net::TcpStream::connect(&grpc).unwrap();
        let _ = s.write_all(b"\x00\x01GARBAGE\r\n\r\nnot http2 at all");
    }
    let nodes = tokio::task::spawn_blocking(move || status_json(&grpc))
        .await
        .unwrap();
    assert!(nodes.is_ok(), "controller must keep serving: {nodes:?}");
    drop(controller);
}

#[test]
fn a_models_dir_without_prepared_files_makes_backends_unusable_with_the_path_in_the_reason() {
    // `--models-dir` must reach the backend probe too, not only the registry.
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().to_str().unwrap();
    let (status, out, err) = run_cli(&["devices", "--models-dir", dir, "-o", "json"]).unwrap();
    assert!(status.success(), "{err}");
    let devices: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cpu = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "cpu")
        .expect("the CPU is always found");
    // The one device shape: TOPS under the protobuf field name.
    assert!(cpu["tops"]["int8_tops"].is_number(), "{cpu}");
    // The ONNX backends (the llama.cpp engine needs no prepared model: its own check).
    let backends: Vec<&serde_json::Value> = cpu["backends"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["backend"] != "llama_cpp")
        .collect();
    assert!(!backends.is_empty(), "{cpu}");
    for b in backends {
        assert_eq!(b["usable"], false, "{b}");
        let reason = b["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!("{dir}/probe/tiny.onnx")) && reason.contains("setup.sh"),
            "{reason}"
        );
    }
}

#[test]
fn devices_reports_the_precision_each_usable_cpu_backend_computes_at() {
    let probe = switchyard_backend_core::paths::models_dir().join("probe/tiny.onnx");
    let prepared = if probe.is_file() {
        Ok(())
    } else {
        Err(format!(
            "{} is not prepared (run scripts/setup.sh)",
            probe.display()
        ))
    };
    if !switchyard_e2e::precondition("bad_input::devices_precision", prepared) {
        return;
    }
    let (status, out, err) = run_cli(&["devices", "-o", "json"]).unwrap();
    assert!(status.success(), "{err}");
    let devices: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cpu = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "cpu")
        .expect("the CPU is always found");
    let usable: Vec<&serde_json::Value> = cpu["backends"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["usable"] == true && b["backend"] != "llama_cpp")
        .collect();
    assert!(!usable.is_empty(), "{cpu}");
    for b in usable {
        // Probed at each precision the backend knows; f32 always runs on a CPU, first.
        assert_eq!(b["precisions"][0], "f32", "{b}");
    }
    let (status, table, _) = run_cli(&["devices"]).unwrap();
    assert!(status.success());
    assert!(
        table.contains("(f32"),
        "the table shows precisions: {table}"
    );
}
