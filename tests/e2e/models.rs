//! Issue 11, models from what users already have, as cluster state: `switchyard models add
//! --gguf` with the real SmolLM2 GGUF and `--ollama` from an Ollama-layout store holding the
//! same file go to the controller, which keeps them in its data directory and sends them to
//! its agents; the agent of `switchyard up` then serves the added model through a real
//! `llama-server`. `models list` (table and JSON: the header's facts, the memory estimate,
//! the nodes that have the file), the set kept across a controller restart, `models rm`
//! (the engine serving it stops, the API no longer knows it), and the bad inputs (not a GGUF,
//! a truncated one, an unknown Ollama model, a taken name), each refused with a one-line
//! error that names the file. The real binary; the shipped registry's files need not be there.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use switchyard_e2e::{
    Proc, UP_ON_LOOPBACK, binary, engines_of, post, run_command, wait_for, wait_node_ready,
};

fn real_gguf() -> PathBuf {
    let dir = std::env::var_os("SWITCHYARD_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(switchyard_backend_core::paths::models_dir);
    let p = dir.join("smollm2-135m-gguf/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(p.is_file(), "{} missing: run scripts/setup.sh", p.display());
    p
}

/// `switchyard up` (node "a") keeping its data in `data`, with `config` when given, once
/// its node is ready.
fn up(data: &Path, config: Option<&Path>) -> (Proc, String, String) {
    let mut args = vec![];
    if let Some(c) = config {
        args.extend(["--config", c.to_str().unwrap()]);
    }
    args.extend(UP_ON_LOOPBACK);
    args.extend(["--node-name", "a"]);
    let p = Proc::start_with_env(
        "a",
        &args,
        &[("SWITCHYARD_DATA_DIR", data.to_str().unwrap())],
    )
    .unwrap();
    let grpc = p.field("grpc").unwrap();
    let http = p.field("http").unwrap();
    wait_node_ready(&p, &grpc, "a");
    (p, grpc, http)
}

/// `switchyard models ARGS` against the controller at `grpc`, with `ollama` as the Ollama
/// store: (ok, out, err).
fn models(grpc: &str, ollama: &Path, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(binary());
    cmd.env("SWITCHYARD_CONTROLLER", format!("http://{grpc}"))
        .env("OLLAMA_MODELS", ollama);
    let mut all = vec!["models"];
    all.extend_from_slice(args);
    let (status, out, err) = run_command(cmd, &all).unwrap();
    (status.success(), out, err)
}

fn listed(grpc: &str, ollama: &Path) -> Vec<Value> {
    let (ok, out, err) = models(grpc, ollama, &["list", "-o", "json"]);
    assert!(ok, "{err}");
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn find(grpc: &str, ollama: &Path, name: &str) -> Option<Value> {
    listed(grpc, ollama).into_iter().find(|m| m["name"] == name)
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// A short chat with `model` through the OpenAI HTTP API: (status, body).
fn chat(http: &str, model: &str) -> (u16, String) {
    let body = serde_json::json!({
        "model": model, "max_tokens": 8, "temperature": 0,
        "messages": [{"role": "user", "content": "Say hello."}],
    });
    post(http, "/v1/chat/completions", &body).unwrap()
}

#[test]
fn models_added_to_the_cluster_are_kept_by_the_controller_served_by_its_agents_and_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("controller-data");
    let ollama = tmp.path().join("ollama");
    let gguf = real_gguf();
    let (mut a, grpc, http) = up(&data, None);

    let (ok, out, err) = models(
        &grpc,
        &ollama,
        &[
            "add",
            "smol",
            "--gguf",
            gguf.to_str().unwrap(),
            "--tier",
            "code",
            "--ctx",
            "2048",
            "--parallel",
            "2",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("llama 135M Q4_1, 30 layers, trained context 8192"),
        "{out}"
    );
    let info = switchyard_backend_core::gguf::GgufInfo::read(&gguf).unwrap();
    let smol = find(&grpc, &ollama, "smol").expect("smol listed");
    assert_eq!(smol["engine"], "llama_cpp");
    assert_eq!(smol["format"], "gguf");
    assert_eq!(smol["quantization"], "Q4_1");
    assert_eq!(smol["parameters"], "135M");
    assert_eq!(smol["tier"], "code");
    assert_eq!(smol["source"], "added");
    assert_eq!(smol["memory_bytes"], info.estimate(2048, 2).total());
    // Cluster state: the controller's data directory keeps it, with what it needs.
    let kept = std::fs::read_to_string(data.join("models.toml")).unwrap();
    assert!(kept.contains(&sha256_of(&gguf)), "{kept}");
    let recorded = format!("memory_bytes = {}", info.estimate(2048, 2).total());
    assert!(kept.contains(&recorded), "{kept}");

    // The agent got the set, has the file, and serves the model through llama-server.
    wait_for(Duration::from_secs(60), || {
        let m = find(&grpc, &ollama, "smol")?;
        (m["available_on"] == serde_json::json!(["a"])).then_some(())
    })
    .unwrap_or_else(|| panic!("node a never reported smol's file:\n{}", a.stderr()));
    let (code, body) = chat(&http, "smol");
    assert_eq!(code, 200, "{body}\n{}", a.stderr());
    assert_eq!(
        engines_of(a.child.id()).len(),
        1,
        "one llama-server serves it"
    );
    wait_for(Duration::from_secs(10), || {
        let m = find(&grpc, &ollama, "smol")?;
        (m["loaded_on"] == serde_json::json!(["a/cpu"])).then_some(())
    })
    .expect("models list says where it is loaded");

    // An Ollama store holding the same file: manifest → blob, used in place.
    let hex = sha256_of(&gguf);
    let blobs = ollama.join("blobs");
    let manifests = ollama.join("manifests/registry.ollama.ai/library/smollm2");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::create_dir_all(&manifests).unwrap();
    std::os::unix::fs::symlink(&gguf, blobs.join(format!("sha256-{hex}"))).unwrap();
    std::fs::write(
        manifests.join("135m"),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:{hex}","size":1}},"layers":[{{"mediaType":"application/vnd.ollama.image.template","digest":"sha256:{hex}","size":1}},{{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:{hex}","size":98362432}}]}}"#
        ),
    )
    .unwrap();
    let (ok, out, err) = models(
        &grpc,
        &ollama,
        &["add", "smol-ollama", "--ollama", "smollm2:135m"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("Q4_1"), "{out}");
    let from_ollama = find(&grpc, &ollama, "smol-ollama").unwrap();
    assert!(
        from_ollama["file"]
            .as_str()
            .unwrap()
            .ends_with(&format!("blobs/sha256-{hex}")),
        "{from_ollama}"
    );
    let (ok, table, _) = models(&grpc, &ollama, &["list"]);
    assert!(ok);
    assert!(table.lines().next().unwrap().starts_with("NAME"), "{table}");
    assert!(
        table.contains("smol-ollama") && table.contains("llama_cpp"),
        "{table}"
    );

    // Bad inputs: one line each, naming the file or the model; nothing changes.
    let all = listed(&grpc, &ollama);
    let text = tmp.path().join("notes.gguf");
    std::fs::write(&text, "these are my notes, not a model").unwrap();
    let truncated = tmp.path().join("cut.gguf");
    std::fs::write(&truncated, &std::fs::read(&gguf).unwrap()[..4096]).unwrap();
    for (args, needle) in [
        (
            vec!["add", "x", "--gguf", text.to_str().unwrap()],
            "notes.gguf",
        ),
        (
            vec!["add", "x", "--gguf", truncated.to_str().unwrap()],
            "cut.gguf",
        ),
        (
            vec!["add", "x", "--ollama", "llama3:70b"],
            "Ollama model llama3:70b not found",
        ),
        (
            vec!["add", "smol", "--gguf", gguf.to_str().unwrap()],
            "exists already",
        ),
        (
            vec!["add", "Bad Name", "--gguf", gguf.to_str().unwrap()],
            "model name",
        ),
        (
            vec![
                "add",
                "x",
                "--gguf",
                gguf.to_str().unwrap(),
                "--ctx",
                "100000",
            ],
            "trained for at most 8192",
        ),
        (vec!["rm", "minilm-l6-v2"], "comes from the model registry"),
        (vec!["rm", "nothing"], "no model named nothing"),
    ] {
        let (ok, _, err) = models(&grpc, &ollama, &args);
        assert!(!ok, "{args:?} must fail");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert_eq!(
        listed(&grpc, &ollama).len(),
        all.len(),
        "a refused add changes nothing"
    );

    // A controller restart keeps the set; the restarted agent serves it again. Routes may
    // name an added model (checked at start against the kept set).
    a.kill9();
    let config = tmp.path().join("routes.toml");
    std::fs::write(
        &config,
        "[routes]\ncode = [\"smol-ollama\", \"smollm2-135m-code\"]\n",
    )
    .unwrap();
    let (a, grpc, http) = up(&data, Some(&config));
    let names: Vec<Value> = listed(&grpc, &ollama)
        .into_iter()
        .filter(|m| m["source"] == "added")
        .map(|m| m["name"].clone())
        .collect();
    assert_eq!(names, vec![Value::from("smol"), Value::from("smol-ollama")]);
    let (code, body) = wait_for(Duration::from_secs(60), || {
        let (code, body) = chat(&http, "smol");
        (code == 200).then_some((code, body))
    })
    .map(|(r, _)| r)
    .unwrap_or_else(|| chat(&http, "smol"));
    assert_eq!(code, 200, "{body}\n{}", a.stderr());

    let (ok, _, err) = models(&grpc, &ollama, &["rm", "smol-ollama"]);
    assert!(!ok && err.contains("named by [routes]"), "{err}");

    // rm: gone from the set and the file, its engine stops, the API no longer knows it.
    let (ok, out, err) = models(&grpc, &ollama, &["rm", "smol"]);
    assert!(ok, "{err}");
    assert!(out.contains("removed smol"), "{out}");
    assert!(find(&grpc, &ollama, "smol").is_none());
    assert!(find(&grpc, &ollama, "smol-ollama").is_some());
    assert!(
        !std::fs::read_to_string(data.join("models.toml"))
            .unwrap()
            .contains("name = \"smol\"")
    );
    wait_for(Duration::from_secs(30), || {
        engines_of(a.child.id()).is_empty().then_some(())
    })
    .unwrap_or_else(|| panic!("the engine serving smol still runs:\n{}", a.stderr()));
    let (code, body) = chat(&http, "smol");
    assert_eq!(code, 404, "{body}");
    assert!(gguf.is_file(), "rm leaves the file alone");
}
