//! Issue 11: generation models served by a `llama-server` the agent supervises. The real
//! SmolLM2-135M GGUF (scripts/setup.sh keeps it in the models directory) through the real
//! `llama-server` that scripts/setup.sh builds: four concurrent chat streams through the
//! OpenAI HTTP API answered by one engine process; kill -9 of the engine mid-stream → the
//! stream (sampled, no seed) completes on the other node's engine, which continues the text
//! already sent instead of starting over, and the killed engine comes back. Nothing is skipped: without `llama-server` the test fails with
//! how to get one.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use switchyard_e2e::{
    Proc, UP_ON_LOOPBACK, engines_of, post, status_json, wait_for, wait_node_ready,
};
use switchyard_proto::v1::inference_client::InferenceClient;
use switchyard_proto::v1::{ChatMessage, GenerateRequest, SamplingParams};

const MODEL: &str = "smollm2-135m-gguf";

fn cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"))
        .join("switchyard")
}

/// The shipped registry plus the GGUF entries (memory from their header), and a config naming it.
fn config(dir: &tempfile::TempDir) -> String {
    let llama = cache().join("engines");
    let built = std::fs::read_dir(&llama)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.path().join("llama-server").is_file());
    assert!(
        built,
        "no llama-server under {}: run scripts/setup.sh (it builds one from the llama-cpp-python sdist)",
        llama.display()
    );
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models");
    let read = |f: &str| std::fs::read_to_string(models.join(f)).unwrap();
    // The shipped registry plus models/gguf.toml, as scripts/quickstart.sh serves them.
    let registry = format!("{}\n{}", read("registry.toml"), read("gguf.toml"));
    let path = dir.path().join("registry.toml");
    std::fs::write(&path, registry).unwrap();
    let cfg = dir.path().join("sy.toml");
    std::fs::write(&cfg, format!("[models]\nregistry = {:?}\n", path)).unwrap();
    cfg.to_string_lossy().into_owned()
}

/// One streamed chat completion over HTTP/1.0 (no chunked encoding): the text.
fn chat_http(http: &str, prompt: &str, max_tokens: u32) -> Result<String, String> {
    let body = serde_json::json!({
        "model": MODEL, "stream": true, "max_tokens": max_tokens, "temperature": 0,
        "messages": [{"role": "user", "content": prompt}],
    });
    let (code, raw) = post(http, "/v1/chat/completions", &body)?;
    if code != 200 {
        return Err(format!("HTTP {code}: {raw}"));
    }
    let mut text = String::new();
    for line in raw.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            return Ok(text);
        }
        let v: Value = serde_json::from_str(data).map_err(|e| format!("{e}: {data}"))?;
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(t);
        }
    }
    Err(format!("no [DONE] in: {raw}"))
}

fn resident_on(grpc: &str, node: &str) -> Option<Value> {
    let nodes = status_json(grpc).ok()?;
    let n = nodes.iter().find(|n| n["name"] == node)?;
    n["resident_models"]
        .as_array()?
        .iter()
        .find(|r| r["model"] == MODEL && r["backend"] == "llama_cpp")
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_supervised_llama_server_serves_concurrent_streams_and_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    let (a, grpc, http) = up("a", &cfg);
    let a_pid = a.child.id();

    // 1. Four concurrent streams through the OpenAI API, all answered by one llama-server.
    let streams: Vec<_> = (0..4)
        .map(|i| {
            let http = http.clone();
            std::thread::spawn(move || {
                chat_http(
                    &http,
                    &format!("Name {} colours of the rainbow.", i + 2),
                    32,
                )
            })
        })
        .collect();
    for (i, s) in streams.into_iter().enumerate() {
        let text = s
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("stream {i}: {e}\n{}", a.stderr()));
        assert!(!text.trim().is_empty(), "stream {i} answered nothing");
    }
    let engines = engines_of(a_pid);
    assert_eq!(
        engines.len(),
        1,
        "one llama-server for (model, cpu0): {engines:?}"
    );
    // Locked: the engine's port answers nobody without the key only the agent holds (given
    // through a file, not on its command line).
    let argv = std::fs::read(format!("/proc/{}/cmdline", engines[0].0)).unwrap();
    let argv: Vec<String> = argv
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(argv.iter().any(|a| a == "--api-key-file"), "{argv:?}");
    assert!(
        !argv.iter().any(|a| a == "--api-key"),
        "no key on the command line: {argv:?}"
    );
    let port = &argv[argv.iter().position(|a| a == "--port").unwrap() + 1];
    let engine = format!("127.0.0.1:{port}");
    let (code, body) = post(
        &engine,
        "/v1/chat/completions",
        &serde_json::json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}),
    )
    .unwrap();
    assert_eq!(
        code, 401,
        "the engine must refuse a caller without its key: {body}"
    );
    assert_eq!(
        switchyard_e2e::get(&engine, "/health", None).unwrap().0,
        200
    );
    let resident = wait_for(Duration::from_secs(10), || resident_on(&grpc, "a"))
        .unwrap_or_else(|| panic!("{MODEL} never resident on a: {:?}", status_json(&grpc)))
        .0;
    assert!(
        resident["memory_bytes"].as_u64().unwrap() > 20_000_000,
        "memory is the process RSS: {resident}"
    );

    // 2. A second node with its own engine; kill -9 the engine serving a stream mid-way.
    let b = agent("b", &cfg, &grpc, &[]);
    let b_pid = b.child.id();
    let mut client = InferenceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let mut stream = client
        .generate(GenerateRequest {
            model: MODEL.into(),
            messages: vec![ChatMessage {
                role: "user".into(),
                content: "Count from 1 to 100, separated by commas.".into(),
                ..Default::default()
            }],
            // Sampled, no seed: the resumed attempt cannot regenerate the same text, so it
            // continues the text already sent. A low temperature keeps the count readable, so
            // the test can tell a continuation from a new reply.
            sampling: Some(SamplingParams {
                max_tokens: 200,
                temperature: 0.01,
                top_p: 1.0,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut text = String::new();
    let mut chunks = 0;
    let mut killed = None;
    let mut before_kill = String::new();
    let trace = loop {
        let c = stream
            .message()
            .await
            .unwrap_or_else(|s| {
                panic!(
                    "stream failed: {s:?}\na:\n{}\nb:\n{}",
                    a.stderr(),
                    b.stderr()
                )
            })
            .expect("a last chunk with a trace");
        text.push_str(&c.text);
        chunks += 1;
        if chunks == 12 && killed.is_none() {
            before_kill = text.clone();
            // The busy engine is the one whose CPU time grows.
            let before: Vec<_> = [a_pid, b_pid]
                .iter()
                .flat_map(|p| engines_of(*p).into_iter().map(move |e| (*p, e)))
                .collect();
            std::thread::sleep(Duration::from_millis(300));
            let (parent, (pid, _)) = before
                .iter()
                .max_by_key(|(p, (pid, t))| {
                    engines_of(*p)
                        .iter()
                        .find(|(q, _)| q == pid)
                        .map(|(_, u)| u - t)
                        .unwrap_or(0)
                })
                .copied()
                .expect("an engine running");
            std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
            killed = Some((parent, pid));
        }
        if let Some(t) = c.trace {
            break t;
        }
    };
    let (parent, pid) = killed.expect("the stream outlived 12 chunks");
    assert!(
        trace.retries >= 1,
        "the stream was re-placed after the kill: {trace:?}"
    );
    assert_eq!(
        (trace.backend.as_str(), trace.precision.as_str()),
        ("llama_cpp", "Q4_1"),
        "llama.cpp computes at the GGUF's quantisation"
    );
    assert!(
        text.len() > before_kill.len() + 10,
        "the answer went on after the kill: {before_kill:?} then {text:?}"
    );
    assert!(
        text.contains("1, 2, 3") && text.contains("20, 21, 22"),
        "the count went on past the kill: {before_kill:?} then {text:?}"
    );
    assert_eq!(
        text.matches("1, 2, 3,").count(),
        1,
        "the second engine continued {before_kill:?} instead of starting a new reply: {text:?}"
    );
    // The killed engine comes back (a new process under the same agent).
    let back = wait_for(Duration::from_secs(60), || {
        engines_of(parent).into_iter().find(|(p, _)| *p != pid)
    });
    assert!(
        back.is_some(),
        "engine {pid} was not restarted:\n{}",
        if parent == a_pid {
            a.stderr()
        } else {
            b.stderr()
        }
    );
    drop(b);
    drop(a);
}

fn up(name: &str, cfg: &str) -> (Proc, String, String) {
    let mut args = vec!["--config", cfg];
    args.extend(UP_ON_LOOPBACK);
    args.extend(["--node-name", name]);
    let p = Proc::start(name, &args).unwrap_or_else(|e| panic!("{name}: {e}"));
    let grpc = p.field("grpc").unwrap();
    let http = p.field("http").unwrap();
    wait_node_ready(&p, &grpc, name);
    (p, grpc, http)
}

/// A `switchyard agent` named `name` joining the controller at `grpc`, once ready.
fn agent(name: &str, cfg: &str, grpc: &str, extra: &[&str]) -> Proc {
    let controller = format!("http://{grpc}");
    let mut args = vec![
        "--config",
        cfg,
        "agent",
        "--controller",
        &controller,
        "--node-name",
        name,
        "--agent-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let p = Proc::start(name, &args).unwrap_or_else(|e| panic!("{name}: {e}"));
    wait_node_ready(&p, grpc, name);
    p
}

#[test]
fn unloading_an_engine_model_ends_its_process_and_frees_the_memory_and_explain_follows() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    // Every tier routed to the GGUF model, so explain ranks its candidates.
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[routes]\nfast = [\"{MODEL}\"]\ncode = [\"{MODEL}\"]\nheavy = [\"{MODEL}\"]\n"
    ));
    std::fs::write(&cfg, text).unwrap();
    let (a, grpc, http) = up("a", &cfg);
    let text = chat_http(&http, "Say hello.", 8).unwrap_or_else(|e| panic!("{e}\n{}", a.stderr()));
    assert!(!text.trim().is_empty());
    let pid = a.child.id();
    assert_eq!(engines_of(pid).len(), 1, "the chat started one engine");
    let (resident, _) = wait_for(Duration::from_secs(10), || resident_on(&grpc, "a"))
        .expect("resident after the chat (next heartbeat)");
    assert!(
        resident["load_ms"].as_f64().unwrap() > 0.0,
        "the engine start is measured: {resident}"
    );
    // A prompt over the context: the client's fault, named with the limit.
    let long = "ship sea sun ".repeat(900);
    let (code, body) = post(
        &http,
        "/v1/chat/completions",
        &serde_json::json!({"model": MODEL, "max_tokens": 8,
            "messages": [{"role": "user", "content": long}]}),
    )
    .unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("exceeds the available context size (2048 tokens)"),
        "{body}"
    );
    // explain names the engine build the agent reported and how the candidate would start.
    let url = format!("http://{grpc}");
    let start = || -> Option<String> {
        let (_, out, _) =
            switchyard_e2e::run_cli(&["explain", "Say hello.", "--controller", &url, "-o", "json"])
                .ok()?;
        let stages: Value = serde_json::from_str(&out).ok()?;
        let generate = stages
            .as_array()?
            .iter()
            .find(|s| s["stage"] == "generate" && s["model"] == MODEL)?;
        generate["candidates"][0]["score_detail"]
            .as_str()
            .map(str::to_string)
    };
    wait_for(Duration::from_secs(10), || {
        // The engine tree's build (CPU + Vulkan, or CPU only) and where this engine computes.
        start().filter(|d| {
            d.starts_with("llama.cpp (")
                && d.contains(" build")
                && d.contains(", on cpu), warm (process running); ")
        })
    })
    .unwrap_or_else(|| panic!("explain while running: {:?}", start()));

    // Ollama's way to unload: a generate with no prompt and keep_alive 0.
    let (code, body) = post(
        &http,
        "/api/generate",
        &serde_json::json!({"model": MODEL, "keep_alive": 0}),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let gone = wait_for(Duration::from_secs(30), || {
        (engines_of(pid).is_empty() && resident_on(&grpc, "a").is_none()).then_some(())
    });
    assert!(
        gone.is_some(),
        "after unload: engines {:?}, resident {:?}\n{}",
        engines_of(pid),
        resident_on(&grpc, "a"),
        a.stderr()
    );
    // Cold again, with the load the chat measured.
    let cold = start().unwrap_or_default();
    assert!(
        cold.starts_with("llama.cpp (")
            && cold.contains(", on cpu), cold start ≈ ")
            && cold.contains(" s (last load); "),
        "{cold}"
    );
}

#[test]
fn without_a_usable_llama_server_the_agent_serves_on_and_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    let missing = dir.path().join("no-such/llama-server");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!("\n[engines.llama_cpp]\nserver = {:?}\n", missing));
    std::fs::write(&cfg, text).unwrap();
    let (a, grpc, http) = up("a", &cfg);

    let (code, body) = post(
        &http,
        "/v1/chat/completions",
        &serde_json::json!({"model": MODEL, "max_tokens": 8,
            "messages": [{"role": "user", "content": "hi"}]}),
    )
    .unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("[engines.llama_cpp] server") && body.contains("is not a file"),
        "the error names the setting to fix: {body}"
    );
    // status says why the llama_cpp backend is unusable on the CPU.
    let nodes = status_json(&grpc).unwrap();
    let shown = serde_json::to_string(&nodes).unwrap();
    assert!(
        shown.contains("is not a file"),
        "status shows why llama_cpp is unusable: {shown}"
    );
    // The rest keeps serving: embeddings through the same process.
    let (code, body) = post(
        &http,
        "/v1/embeddings",
        &serde_json::json!({"model": "minilm-l6-v2", "input": "still here"}),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}\n{}", a.stderr());
}

#[test]
fn a_llama_server_without_cuda_is_offered_on_the_cpu_and_refused_on_nvidia_gpus_without_vulkan_identity_saying_why_recorded_fixture()
 {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    let (_a, grpc, _http) = up("a", &cfg);
    let fixture = format!(
        "{}/fixtures/discovery/two-nvidia",
        env!("CARGO_MANIFEST_DIR")
    );
    let _gpu = agent("gpu", &cfg, &grpc, &["--fixture", &fixture]);
    let nodes = status_json(&grpc).unwrap();
    let llama_on = |node: &str, kind: &str| -> Vec<Value> {
        let n = nodes.iter().find(|n| n["name"] == node).unwrap();
        n["devices"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].as_str().unwrap_or("").contains(kind))
            .flat_map(|d| d["backends"].as_array().cloned().unwrap_or_default())
            .filter(|b| b["backend"] == "llama_cpp")
            .collect()
    };
    let cpu = llama_on("a", "cpu");
    assert!(
        !cpu.is_empty() && cpu.iter().all(|b| b["usable"] == true),
        "{cpu:?}"
    );
    let gpus = llama_on("gpu", "nvidia");
    assert_eq!(gpus.len(), 2, "one per fixture GPU: {nodes:?}");
    for b in &gpus {
        assert_eq!(b["usable"], false, "{b}");
        assert!(
            b["reason"]
                .as_str()
                .unwrap()
                .starts_with("llama-server has no CUDA backend"),
            "{b}"
        );
        // The engine tree has Vulkan, but the fixture GPUs have no Vulkan identity.
        assert!(
            b["reason"]
                .as_str()
                .unwrap()
                .contains("no Vulkan device matches this GPU's PCI bus id"),
            "{b}"
        );
    }
}
