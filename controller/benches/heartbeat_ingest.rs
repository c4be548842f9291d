//! Heartbeat ingest rate of the controller on ONE core, with N simulated agent sessions.
//!
//! The controller runs on a current-thread Tokio runtime (one core); the simulated agents
//! run on a second runtime and stream heartbeats as fast as the controller takes them over
//! real gRPC on loopback. Baseline in the same run: the same heartbeats applied straight to
//! the cluster state (no gRPC), i.e. the ceiling the transport is measured against.
//!
//! `cargo bench -p switchyard-controller --bench heartbeat_ingest -- [SESSIONS] [SECONDS]`
//! Goal: ≥ 10,000 heartbeats/s.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use switchyard_backend_core::ModelRegistry;
use switchyard_controller::cluster::ClusterState;
use switchyard_controller::config::ServerConfig;
use switchyard_proto::v1::registry_client::RegistryClient;
use switchyard_proto::v1::{
    AgentMessage, Device, DeviceKind, DeviceTelemetry, Heartbeat, NodeInfo, RegisterRequest,
    SessionHello, agent_message,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn node(i: usize) -> NodeInfo {
    NodeInfo {
        node_name: format!("sim-{i}"),
        agent_endpoint: "http://127.0.0.1:9".into(),
        devices: (0..4)
            .map(|d| Device {
                id: format!("dev-{d}"),
                kind: DeviceKind::Cpu as i32,
                memory_total_bytes: 16 << 30,
                memory_free_bytes: 8 << 30,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn heartbeat(seq: u64) -> Heartbeat {
    Heartbeat {
        seq,
        telemetry: (0..4)
            .map(|d| DeviceTelemetry {
                device_id: format!("dev-{d}"),
                memory_free_bytes: 8 << 30,
                utilization_ratio: Some(0.5),
                temperature_celsius: Some(55.0),
                power_watts: Some(120.0),
                health: 1,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn baseline(sessions: usize, seconds: f64) -> f64 {
    let cluster = ClusterState::new(Duration::from_secs(1), 3);
    let mut handles = Vec::new();
    for i in 0..sessions {
        let (id, lease) = cluster.register(node(i), &format!("inst-{i}")).unwrap();
        let (tx, rx) = mpsc::channel(1);
        std::mem::forget(rx);
        handles.push(cluster.attach_session(&id, &lease, tx).unwrap());
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        for (node, epoch) in &handles {
            cluster.heartbeat(node, *epoch, heartbeat(n));
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn registry() -> ModelRegistry {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/registry.toml");
    ModelRegistry::load(
        &file,
        &switchyard_backend_core::paths::cache_dir().join("models"),
    )
    .expect("models/registry.toml")
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let sessions: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(200);
    let seconds: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5.0);

    // The controller: one core.
    let controller_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut config = ServerConfig::default();
    config.controller.listen = "127.0.0.1:0".parse().unwrap();
    config.controller.http_listen = "127.0.0.1:0".parse().unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    config.controller.data_dir = data_dir.path().to_path_buf();
    let handle = controller_rt
        .block_on(switchyard_controller::server::start(
            &config,
            Arc::new(registry()),
        ))
        .unwrap();
    let addr = handle.grpc_addr;
    let cluster = handle.cluster.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_ctl = stop.clone();
    let ctl_thread = std::thread::spawn(move || {
        controller_rt.block_on(async move {
            while !stop_ctl.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            handle.stop().await;
        })
    });

    // The simulated agents: the other core.
    let agents_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    agents_rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..sessions {
            let mut client = RegistryClient::new(channel.clone());
            let lease = client
                .register(RegisterRequest {
                    node: Some(node(i)),
                    instance_id: format!("inst-{i}"),
                })
                .await
                .unwrap()
                .into_inner();
            let (tx, rx) = mpsc::channel(256);
            tx.send(AgentMessage {
                kind: Some(agent_message::Kind::Hello(SessionHello {
                    node_id: lease.node_id,
                    lease_id: lease.lease_id,
                })),
            })
            .await
            .unwrap();
            let _commands = client.session(ReceiverStream::new(rx)).await.unwrap();
            let sent = sent.clone();
            tasks.push(tokio::spawn(async move {
                let _keep = _commands;
                let mut seq = 0u64;
                loop {
                    seq += 1;
                    if tx
                        .send(AgentMessage {
                            kind: Some(agent_message::Kind::Heartbeat(heartbeat(seq))),
                        })
                        .await
                        .is_err()
                    {
                        break;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        let received = |c: &ClusterState| {
            c.snapshot()
                .iter()
                .map(|n| n.heartbeats_received)
                .sum::<u64>()
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r0 = received(&cluster);
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        let r1 = received(&cluster);
        let rate = (r1 - r0) as f64 / t0.elapsed().as_secs_f64();
        for t in &tasks {
            t.abort();
        }
        let base = baseline(sessions, seconds.min(2.0));
        println!("heartbeat ingest, controller on 1 core, {sessions} sessions, 4 devices each:");
        println!("  over gRPC (Session stream): {rate:>12.0} heartbeats/s   (goal >= 10,000)");
        println!("  baseline, in-process state: {base:>12.0} heartbeats/s");
        println!("  ratio gRPC/in-process:      {:>12.3}", rate / base);
    });
    stop.store(true, Ordering::Relaxed);
    let _ = ctl_thread.join();
}
