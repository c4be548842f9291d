//! Issue 5 end to end: real agent processes whose inventories differ (fixture inventories
//! are simulated devices that execute on the CPU backend, and say so in every trace).
//! Requires the prepared models (scripts/setup.sh).

use std::time::Duration;

use serde_json::Value;
use switchyard_backend_core::paths;
use switchyard_e2e::{
    Proc, UP_ON_LOOPBACK, post, run_cli, states, status_json, wait_for, wait_node_ready,
};

/// These tests each run a small cluster and real models; on a 2-core machine they run one
/// at a time so none of them measures the others' load.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const PRIME: &str = "Write a Python function that checks if a number is prime";

fn fixture(name: &str) -> String {
    format!("{}/fixtures/discovery/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Fixture agents' devices are simulated: a controller places on them only when told to.
const ON_FIXTURES: &str = "[scheduler.policy]\nallow_simulated = true\n";

fn controller(extra_config: &str) -> (Proc, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("switchyard.toml");
    std::fs::write(&cfg, extra_config).unwrap();
    let c = Proc::start(
        "controller",
        &[
            "controller",
            "--config",
            cfg.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ],
    )
    .expect("controller starts");
    let grpc = c.field("grpc").unwrap();
    (c, grpc, dir)
}

fn agent(grpc: &str, name: &str, extra: &[&str]) -> Proc {
    let url = format!("http://{grpc}");
    let mut args = vec![
        "agent",
        "--controller",
        &url,
        "--node-name",
        name,
        "--agent-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    Proc::start(name, &args).unwrap_or_else(|e| panic!("agent {name}: {e}"))
}

fn wait_ready(grpc: &str, n: usize) {
    let ok = wait_for(Duration::from_secs(30), || {
        let nodes = status_json(grpc).ok()?;
        (states(&nodes).iter().filter(|(_, s)| s == "ready").count() == n).then_some(())
    });
    assert!(
        ok.is_some(),
        "{n} ready nodes expected: {:?}",
        status_json(grpc)
    );
}

fn run_json(grpc: &str, prompt: &str, extra: &[&str]) -> Value {
    let url = format!("http://{grpc}");
    let mut args = vec!["run", prompt, "--controller", &url, "-o", "json"];
    args.extend_from_slice(extra);
    let (status, out, err) = run_cli(&args).unwrap();
    assert!(status.success(), "run failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn stage<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["trace"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["stage"] == name)
        .unwrap_or_else(|| panic!("no {name} stage in {v}"))
}

#[test]
fn up_in_a_clean_environment_answers_a_coding_prompt_through_classify_embed_and_generate() {
    let _serial = serial();
    // As an operator runs it: nothing sourced (no SWITCHYARD_*_LIB, no models directory),
    // started outside the source tree (the model registry is compiled in).
    let elsewhere = tempfile::tempdir().unwrap();
    let up = Proc::start_clean(
        "up",
        &[
            "up",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--agent-listen",
            "127.0.0.1:0",
            "--node-name",
            "solo",
        ],
        elsewhere.path(),
    )
    .expect("switchyard up");
    let grpc = up.field("grpc").unwrap();
    wait_ready(&grpc, 1);
    let url = format!("http://{grpc}");
    let (ok, out, err) = run_cli(&[
        "docs",
        "add",
        "--controller",
        &url,
        "--text",
        "A prime number has no divisors other than 1 and itself.",
        "--text",
        "Proxmox VE is based on Debian.",
    ])
    .unwrap();
    assert!(ok.success(), "{err}");
    assert!(out.contains("added 2 document(s)"), "{out}");

    let v = run_json(&grpc, PRIME, &["--retrieve", "--max-tokens", "48"]);
    assert_eq!(v["tier"], "code", "{v}");
    assert_eq!(v["model"], "smollm2-135m-code");
    let stages: Vec<&str> = v["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["classify", "embed", "generate"], "{v}");
    for t in v["trace"].as_array().unwrap() {
        assert_eq!(t["node"], "solo");
        assert_eq!(t["device"], "cpu");
        assert!(
            t["backend"].as_str().unwrap().starts_with("ort-") || t["backend"] == "openvino",
            "{t}"
        );
        assert_eq!(t["simulated"], false);
        assert_eq!(t["precision"], "f32", "the registry asks for f32: {t}");
        assert!(t["compute_ms"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(
        v["context_documents"][0], "A prime number has no divisors other than 1 and itself.",
        "closest document first: {v}"
    );
    assert_eq!(v["retrieved"][0]["document_id"], 1, "{v}");
    let embed = stage(&v, "embed");
    assert_eq!(
        embed["retrieved"][0]["document_id"], 1,
        "the trace names the chunks found: {v}"
    );
    let text = v["text"].as_str().unwrap();
    assert!(!text.trim().is_empty());
    assert!(v["completion_tokens"].as_u64().unwrap() >= 1);

    // The human-readable form prints the answer and the trace table.
    let (ok, table, _) =
        run_cli(&["run", PRIME, "--controller", &url, "--max-tokens", "8"]).unwrap();
    assert!(ok.success());
    assert!(
        table.contains("STAGE") && table.contains("classify") && table.contains("generate"),
        "{table}"
    );
}

#[test]
fn stages_go_to_preferred_kinds_that_fit_fixture_simulated() {
    let _serial = serial();
    let (_c, grpc, _d) = controller(ON_FIXTURES);
    let _host = agent(&grpc, "host", &[]);
    let _edge = agent(&grpc, "edge", &["--fixture", &fixture("arc-npu-ncs2")]);
    wait_ready(&grpc, 2);

    // Dry run: the NCS2 (512 MB) cannot hold the 750 MB generator; the explanation says so.
    let url = format!("http://{grpc}");
    let (ok, out, err) = run_cli(&["explain", PRIME, "--controller", &url, "-o", "json"]).unwrap();
    assert!(ok.success(), "{err}");
    let stages: Value = serde_json::from_str(&out).unwrap();
    let generation = stages
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "generate")
        .unwrap();
    let ncs2 = generation["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["device"] == "usb-3-2")
        .expect("ncs2 listed");
    assert_eq!(ncs2["eligible"], false);
    let reason = ncs2["filtered_reason"].as_str().unwrap();
    assert!(
        reason.contains("does not fit") || reason.contains("unhealthy"),
        "{reason}"
    );
    let best = generation["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["eligible"] == true)
        .unwrap();
    assert_eq!(
        best["device"], "pci-0000:03:00.0",
        "generation prefers the (simulated) Arc GPU: {generation}"
    );

    // A real run: classification lands on the NPU (the NCS2 is degraded without the
    // OpenVINO 2022.3 runtime), generation on the Arc; both simulated, both on the CPU.
    let v = run_json(&grpc, PRIME, &["--max-tokens", "8"]);
    let classify = stage(&v, "classify");
    assert_eq!(classify["node"], "edge");
    assert_eq!(classify["device"], "pci-0000:00:0b.0", "{v}");
    assert_eq!(classify["simulated"], true);
    let generate = stage(&v, "generate");
    assert_eq!(generate["device"], "pci-0000:03:00.0", "{v}");
    assert_eq!(generate["simulated"], true);

    // explain says how each candidate starts: before the run the Arc was cold and never
    // measured; once its agent reports the model resident (next heartbeat), warm.
    assert!(
        best["score_detail"]
            .as_str()
            .unwrap()
            .starts_with("cold start (not measured yet); "),
        "{best}"
    );
    let model = generate["model"].clone();
    let arc = || {
        let (_, out, _) = run_cli(&["explain", PRIME, "--controller", &url, "-o", "json"]).ok()?;
        let stages: Value = serde_json::from_str(&out).ok()?;
        let stage = stages
            .as_array()?
            .iter()
            .find(|s| s["stage"] == "generate" && s["model"] == model)?
            .clone();
        stage["candidates"]
            .as_array()?
            .iter()
            .find(|c| c["device"] == "pci-0000:03:00.0")
            .cloned()
    };
    let warm = wait_for(Duration::from_secs(10), || {
        arc().filter(|c| {
            c["score_detail"]
                .as_str()
                .unwrap_or("")
                .starts_with("warm; ")
        })
    });
    assert!(warm.is_some(), "{model}: {:?}", arc());
}

#[test]
fn killing_the_generating_agent_mid_request_still_answers_from_another_node() {
    let _serial = serial();
    let (_c, grpc, _d) = controller(ON_FIXTURES);
    let _host = agent(&grpc, "host", &[]);
    let mut gpu = agent(&grpc, "gpu-box", &["--fixture", &fixture("two-nvidia")]);
    wait_ready(&grpc, 2);
    // Warm up so the kill lands during token streaming rather than model loading.
    let warm = run_json(&grpc, "Say hi", &["--max-tokens", "2"]);
    assert_eq!(
        stage(&warm, "generate")["node"],
        "gpu-box",
        "generation prefers the NVIDIA node: {warm}"
    );

    let g = grpc.clone();
    let request = std::thread::spawn(move || {
        run_json(
            &g,
            "Tell me a long story about a lighthouse keeper.",
            &["--max-tokens", "96"],
        )
    });
    std::thread::sleep(Duration::from_millis(1500));
    gpu.kill9();
    let v = request.join().expect("request thread");
    let generate = stage(&v, "generate");
    assert_eq!(
        generate["node"], "host",
        "re-placed on the surviving node: {v}"
    );
    assert!(generate["retries"].as_u64().unwrap() >= 1, "{v}");
    assert!(!v["text"].as_str().unwrap().trim().is_empty());
}

#[test]
fn a_tripped_circuit_routes_around_the_device_and_recovers() {
    let _serial = serial();
    // Two failures open a breaker; a probe is allowed 10 s later. A model that does not
    // load excludes the device it failed on, not the node (the agent answered), so the first
    // generation tries both broken GPUs and the broken node's CPU before the healthy node:
    // four attempts.
    let (_c, grpc, _d) = controller(&format!(
        "{ON_FIXTURES}[scheduler.breakers]\nfailure_threshold = 2\nwindow_ms = 60000\ncooldown_ms = 10000\n\
         [scheduler.retry]\nmax_attempts = 4\n",
    ));
    let _host = agent(&grpc, "host", &[]);

    // The GPU node's model files are corrupt (the probe model is intact, so the node looks
    // healthy): every stage placed there fails to load. Its models directory is a symlink
    // so it can be repaired atomically later.
    let real = paths::models_dir();
    let tmp = tempfile::tempdir().unwrap();
    let broken = tmp.path().join("broken");
    for entry in std::fs::read_dir(&real).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let dst = broken.join(&name);
        if entry.path().is_dir() && !["probe", "calibrate"].contains(&name.to_str().unwrap()) {
            std::fs::create_dir_all(&dst).unwrap();
            for f in std::fs::read_dir(entry.path()).unwrap() {
                std::fs::write(dst.join(f.unwrap().file_name()), b"corrupt: not a model").unwrap();
            }
        } else {
            std::fs::create_dir_all(&broken).unwrap();
            std::os::unix::fs::symlink(entry.path(), &dst).unwrap();
        }
    }
    let current = tmp.path().join("current");
    std::os::unix::fs::symlink(&broken, &current).unwrap();
    let _gpu = agent(
        &grpc,
        "gpu-box",
        &[
            "--fixture",
            &fixture("two-nvidia"),
            "--models-dir",
            current.to_str().unwrap(),
        ],
    );
    wait_ready(&grpc, 2);

    let mut retries = Vec::new();
    for _ in 0..3 {
        let v = run_json(&grpc, "Say hi", &["--max-tokens", "2"]);
        let generate = stage(&v, "generate");
        assert_eq!(
            generate["node"], "host",
            "answered by the healthy node: {v}"
        );
        retries.push(
            v["trace"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["retries"].as_u64().unwrap())
                .sum::<u64>(),
        );
    }
    assert!(
        retries[0] >= 1,
        "the first request failed over: {retries:?}"
    );
    assert_eq!(
        *retries.last().unwrap(),
        0,
        "once the circuits are open the node is skipped: {retries:?}"
    );
    let url = format!("http://{grpc}");
    let (_, out, _) = run_cli(&["explain", "Say hi", "--controller", &url, "-o", "json"]).unwrap();
    assert!(
        out.contains("circuit open"),
        "explain shows the open circuit: {out}"
    );

    // Repair the node, wait out the cooldown: a half-open probe succeeds there and the
    // node takes traffic again.
    let next = tmp.path().join("next");
    std::os::unix::fs::symlink(&real, &next).unwrap();
    std::fs::rename(&next, &current).unwrap();
    let recovered = wait_for(Duration::from_secs(30), || {
        let v = run_json(&grpc, "Say hi", &["--max-tokens", "2"]);
        (stage(&v, "generate")["node"] == "gpu-box").then_some(v)
    });
    assert!(
        recovered.is_some(),
        "the repaired node never took traffic again"
    );
}

/// The generate-stage candidates of `switchyard explain` for a prompt.
fn generate_candidates(grpc: &str) -> Vec<Value> {
    let url = format!("http://{grpc}");
    let (ok, out, err) = run_cli(&["explain", PRIME, "--controller", &url, "-o", "json"]).unwrap();
    assert!(ok.success(), "{err}");
    let stages: Value = serde_json::from_str(&out).unwrap();
    stages
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "generate")
        .expect("generate stage explained")["candidates"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_node_without_the_model_files_is_skipped_until_they_appear() {
    let _serial = serial();
    let (_c, grpc, _d) = controller(ON_FIXTURES);
    let _host = agent(&grpc, "host", &[]);
    // "bare" has the probe model (its backends work) but none of the registry's models.
    let real = paths::models_dir();
    let bare_dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(real.join("probe"), bare_dir.path().join("probe")).unwrap();
    let _bare = agent(
        &grpc,
        "bare",
        &[
            "--fixture",
            &fixture("two-nvidia"),
            "--models-dir",
            bare_dir.path().to_str().unwrap(),
        ],
    );
    wait_ready(&grpc, 2);

    let candidates = generate_candidates(&grpc);
    let on_bare: Vec<&Value> = candidates.iter().filter(|c| c["node"] == "bare").collect();
    assert!(!on_bare.is_empty(), "{candidates:?}");
    for c in &on_bare {
        assert_eq!(c["eligible"], false, "{c}");
        let why = c["filtered_reason"].as_str().unwrap();
        assert!(why.contains("model files missing"), "{why}");
    }
    // A real request is answered by the node that has the files.
    let v = run_json(&grpc, PRIME, &["--max-tokens", "2"]);
    assert_eq!(stage(&v, "generate")["node"], "host", "{v}");

    // The operator prepares the models on "bare": its agent notices (rescan) and the
    // controller places there again, without restarting anything.
    for entry in std::fs::read_dir(&real).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "probe" {
            std::os::unix::fs::symlink(entry.path(), bare_dir.path().join(entry.file_name()))
                .unwrap();
        }
    }
    let eligible = wait_for(Duration::from_secs(30), || {
        generate_candidates(&grpc)
            .iter()
            .any(|c| c["node"] == "bare" && c["eligible"] == true)
            .then_some(())
    });
    assert!(
        eligible.is_some(),
        "bare never became eligible: {:?}",
        generate_candidates(&grpc)
    );
}

/// The shipped embedder entry sets no `streams`: the agent loads it as two OpenVINO streams
/// (or, on one inference thread, one) plus a wide instance for lone requests, `status -o json`
/// says so, and lone requests (the wide instance) and concurrent ones (the streams) get the
/// same vectors.
#[test]
fn the_embedder_runs_as_two_streams_by_default_and_every_lane_answers_alike() {
    let _serial = serial();
    let mut args = UP_ON_LOOPBACK.to_vec();
    args.extend(["--node-name", "s"]);
    let up = Proc::start("up", &args).unwrap();
    let grpc = up.field("grpc").unwrap();
    let http = up.field("http").unwrap();
    wait_node_ready(&up, &grpc, "s");

    let embed = |text: &str| -> Vec<f64> {
        let (code, body) = post(
            &http,
            "/v1/embeddings",
            &serde_json::json!({"model": "minilm-l6-v2", "input": text}),
        )
        .unwrap();
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["data"][0]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let texts = ["A man is eating food.", "The stock market fell today."];
    let alone: Vec<Vec<f64>> = texts.iter().map(|t| embed(t)).collect();

    let threads = paths::inference_threads();
    // The agent reports what it holds with its next heartbeat.
    let (resident, _) = wait_for(Duration::from_secs(15), || {
        status_json(&grpc).ok()?.first()?["resident_models"]
            .as_array()?
            .iter()
            .find(|r| r["model"] == "minilm-l6-v2")
            .cloned()
    })
    .expect("the embedder is reported resident");
    assert_eq!(resident["streams"], threads.min(2) as u64, "{resident}");
    assert_eq!(resident["backend"], "openvino", "{resident}");

    // Sixteen at once: batches on both streams; each answer is the lone request's.
    let answers: Vec<(usize, Vec<f64>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let embed = &embed;
                s.spawn(move || (i % 2, embed(texts[i % 2])))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (which, v) in answers {
        let cos: f64 = v.iter().zip(&alone[which]).map(|(a, b)| a * b).sum();
        assert!(cos > 0.9999, "cosine {cos} with the lone request's vector");
    }
}
