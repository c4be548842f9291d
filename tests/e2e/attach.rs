//! Issue 15: engines that already run, attached by URL. The real server available here is a
//! second `switchyard up`, attached through its Ollama API as `kind = "ollama"`
//! (federation). A real `llama-server` attached as `kind = "openai"` is driven by
//! `tests/python/test_engine_tools.py` (structured output, tool calls, refusals).
//! Requires the prepared models (scripts/setup.sh).

use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;
use switchyard_e2e::{Proc, status_json, wait_for};
use switchyard_proto::v1::inference_client::InferenceClient;
use switchyard_proto::v1::{ChatMessage, GenerateRequest, SamplingParams};

const MODEL: &str = "smollm2-135m";

/// A free loopback port (B must come back on the same address after it is killed).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `switchyard up` whose HTTP API (Ollama routes included) listens on `http_port`.
fn up(name: &str, http_port: u16, config: Option<&str>) -> (Proc, Option<tempfile::TempDir>) {
    let http = format!("127.0.0.1:{http_port}");
    let mut args = vec![
        "up",
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        &http,
        "--agent-listen",
        "127.0.0.1:0",
        "--node-name",
        name,
    ];
    let dir = config.map(|text| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sy.toml"), text).unwrap();
        dir
    });
    let path = dir
        .as_ref()
        .map(|d| d.path().join("sy.toml").to_string_lossy().into_owned());
    if let Some(p) = &path {
        args.splice(0..0, ["--config", p.as_str()]);
    }
    let p = Proc::start(name, &args).unwrap_or_else(|e| panic!("{name}: {e}"));
    (p, dir)
}

/// The device `id` of node `node` in a status listing.
fn device(nodes: &[Value], node: &str, id: &str) -> Option<Value> {
    nodes
        .iter()
        .find(|n| n["name"] == node)?
        .get("devices")?
        .as_array()?
        .iter()
        .find(|d| d["id"] == id)
        .cloned()
}

fn endpoint_state(grpc: &str) -> Option<(String, Vec<String>)> {
    let d = device(&status_json(grpc).ok()?, "a", "endpoint:b")?;
    let models = d["models"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    Some((d["health"].as_str()?.to_string(), models))
}

/// One greedy generation through A's gRPC API: (text, device that answered, backend, retries).
async fn generate(grpc: &str, prompt: &str) -> Result<(String, String, String, u32), String> {
    generate_chat(grpc, &[("user", prompt)]).await
}

/// [`generate`] with a whole conversation of (role, content).
async fn generate_chat(
    grpc: &str,
    messages: &[(&str, &str)],
) -> Result<(String, String, String, u32), String> {
    let mut client = InferenceClient::connect(format!("http://{grpc}"))
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = client
        .generate(GenerateRequest {
            model: MODEL.into(),
            messages: messages
                .iter()
                .map(|(role, content)| ChatMessage {
                    role: role.to_string(),
                    content: content.to_string(),
                    ..Default::default()
                })
                .collect(),
            sampling: Some(SamplingParams {
                max_tokens: 24,
                temperature: 0.0,
                top_p: 1.0,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner();
    let mut text = String::new();
    while let Some(c) = stream
        .message()
        .await
        .map_err(|s| s.message().to_string())?
    {
        text.push_str(&c.text);
        if let Some(t) = c.trace {
            return Ok((text, t.device_id, t.backend, t.retries));
        }
    }
    Err("stream ended without a trace".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_switchyard_attached_through_its_ollama_api_serves_fails_over_and_returns() {
    let b_port = free_port();
    let (mut b, _) = up("b", b_port, None);
    // A attaches B; `device = "nvidia_gpu"` makes placement prefer it over A's own CPU.
    let config = format!(
        "[[agent.endpoints]]\nname = \"b\"\nkind = \"ollama\"\nurl = \"http://127.0.0.1:{b_port}\"\ndevice = \"nvidia_gpu\"\n"
    );
    let (a, _dir) = up("a", free_port(), Some(&config));
    let grpc = a.field("grpc").unwrap();
    let seen = wait_for(Duration::from_secs(60), || {
        endpoint_state(&grpc).filter(|(h, m)| h == "healthy" && m.iter().any(|x| x == MODEL))
    });
    let (_, models) = seen
        .unwrap_or_else(|| {
            panic!(
                "endpoint b never healthy: {:?}\n{}",
                endpoint_state(&grpc),
                a.stderr()
            )
        })
        .0;
    assert!(
        !models.iter().any(|m| m == "auto" || m == "minilm-l6-v2"),
        "{models:?}"
    );

    // Served by B, and the same greedy text B gives its own clients.
    let b_grpc = b.field("grpc").unwrap();
    let prompt = "What is the capital of France?";
    let (text, dev, backend, _) = generate(&grpc, prompt).await.expect("through b");
    assert_eq!(
        (dev.as_str(), backend.as_str()),
        ("endpoint:b", "ollama"),
        "{}",
        a.stderr()
    );
    let direct = {
        let mut c = InferenceClient::connect(format!("http://{b_grpc}"))
            .await
            .unwrap();
        let mut s = c
            .generate(GenerateRequest {
                model: MODEL.into(),
                messages: vec![ChatMessage {
                    role: "user".into(),
                    content: prompt.into(),
                    ..Default::default()
                }],
                sampling: Some(SamplingParams {
                    max_tokens: 24,
                    temperature: 0.0,
                    top_p: 1.0,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut t = String::new();
        while let Some(c) = s.message().await.unwrap() {
            t.push_str(&c.text);
        }
        t
    };
    assert_eq!(
        text, direct,
        "the proxy passes B's answer through unchanged"
    );

    // A last assistant message is a prefill through B's Ollama API too (the way a resumed
    // stream reaches an attached Ollama): B's native decoder continues it.
    let (count, dev, _, _) = generate_chat(
        &grpc,
        &[
            ("user", "Count from 1 to 20, separated by commas."),
            ("assistant", "1, 2, 3, 4, 5, 6,"),
        ],
    )
    .await
    .expect("a prefill through b");
    assert_eq!(dev, "endpoint:b");
    assert!(
        count.trim_start().starts_with('7'),
        "continues after \"6,\": {count:?}"
    );

    // Kill B while requests are in flight: every one still succeeds, moved to A's own CPU.
    let load: Vec<_> = (0..4)
        .map(|i| {
            let grpc = grpc.clone();
            tokio::spawn(async move { generate(&grpc, &format!("Count to {}.", 5 + i)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.kill9();
    let killed = std::time::Instant::now();
    // Watch A's view while the requests finish: how long until the endpoint leaves placement.
    let watch_grpc = grpc.clone();
    let watcher = tokio::task::spawn_blocking(move || {
        wait_for(Duration::from_secs(10), || {
            endpoint_state(&watch_grpc).filter(|(h, _)| h != "healthy")
        })
        .map(|_| killed.elapsed())
    });
    let mut moved = 0;
    for r in load {
        let (text, dev, _, retries) = r
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("a request failed: {e}\n{}", a.stderr()));
        assert!(!text.is_empty());
        if dev != "endpoint:b" && retries > 0 {
            moved += 1;
        }
    }
    assert!(
        moved > 0,
        "no in-flight request moved off the killed endpoint"
    );
    let left_after = watcher.await.unwrap();
    eprintln!(
        "attach: {moved}/4 in-flight requests moved; endpoint left placement {left_after:?} after the kill"
    );
    assert!(
        left_after.is_some_and(|t| t <= Duration::from_secs(3)),
        "endpoint b left placement after {left_after:?} (limit 3 s)"
    );
    let (_, dev, _, _) = generate(&grpc, "Name a colour.")
        .await
        .expect("after the kill");
    assert_ne!(dev, "endpoint:b");

    // B comes back on the same address: the endpoint returns to placement.
    let (_b2, _) = up("b", b_port, None);
    let back = tokio::task::spawn_blocking({
        let grpc = grpc.clone();
        move || {
            wait_for(Duration::from_secs(60), || {
                endpoint_state(&grpc)
                    .filter(|(h, m)| h == "healthy" && m.iter().any(|x| x == MODEL))
            })
        }
    })
    .await
    .unwrap();
    assert!(
        back.is_some(),
        "endpoint b not back: {:?}",
        endpoint_state(&grpc)
    );
    eprintln!(
        "attach: endpoint healthy again {:?} after B restarted",
        back.as_ref().map(|b| b.1)
    );
    // Its circuit breaker half-opens after the cool-down; then requests reach it again.
    let mut back_on_b = false;
    for _ in 0..40 {
        if let Ok((_, dev, _, _)) = generate(&grpc, "Say hi.").await
            && dev == "endpoint:b"
        {
            back_on_b = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(back_on_b, "no request reached b again\n{}", a.stderr());
}
