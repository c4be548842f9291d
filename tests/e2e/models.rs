//! Issue 11, models from what users already have: `switchyard models add --gguf` with the
//! real SmolLM2 GGUF, `--ollama` from an Ollama-layout store holding the same file, `models
//! list` (table and JSON, with the header's facts and the memory estimate), `models rm`, and
//! the bad inputs (not a GGUF, a truncated one, an unknown Ollama model, a taken name), each
//! refused with a one-line error that names the file. The real binary, a temporary models
//! directory; the shipped registry's files need not be there.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use switchyard_e2e::{binary, run_command};

fn real_gguf() -> PathBuf {
    let dir = std::env::var_os("SWITCHYARD_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(switchyard_backend_core::paths::models_dir);
    let p = dir.join("smollm2-135m-gguf/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(p.is_file(), "{} missing: run scripts/setup.sh", p.display());
    p
}

/// `switchyard models ARGS` with `models_dir` and `ollama` as the stores: (ok, out, err).
fn models(models_dir: &Path, ollama: &Path, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(binary());
    cmd.env("SWITCHYARD_MODELS_DIR", models_dir)
        .env("OLLAMA_MODELS", ollama);
    let mut all = vec!["models"];
    all.extend_from_slice(args);
    let (status, out, err) = run_command(cmd, &all).unwrap();
    (status.success(), out, err)
}

fn listed(models_dir: &Path, ollama: &Path) -> Vec<Value> {
    let (ok, out, err) = models(models_dir, ollama, &["list", "-o", "json"]);
    assert!(ok, "{err}");
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn gguf_and_ollama_models_are_added_listed_and_removed_and_bad_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("models");
    let ollama = tmp.path().join("ollama");
    let gguf = real_gguf();

    let (ok, out, err) = models(
        &dir,
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
    let smol = listed(&dir, &ollama)
        .into_iter()
        .find(|m| m["name"] == "smol")
        .expect("smol listed");
    assert_eq!(smol["engine"], "llama_cpp");
    assert_eq!(smol["quantization"], "Q4_1");
    assert_eq!(smol["parameters"], "135M");
    assert_eq!(smol["tier"], "code");
    assert_eq!(smol["source"], "added");
    assert_eq!(smol["present"], true);
    assert_eq!(smol["memory_bytes"], info.estimate(2048, 2).total());
    let added = std::fs::read_to_string(dir.join("added.toml")).unwrap();
    assert!(added.contains(&sha256_of(&gguf)), "{added}");
    // Recorded, so a host without the file (the controller's) still knows what it needs.
    let recorded = format!("memory_bytes = {}", info.estimate(2048, 2).total());
    assert!(added.contains(&recorded), "{added}");

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
        &dir,
        &ollama,
        &["add", "smol-ollama", "--ollama", "smollm2:135m"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("Q4_1"), "{out}");
    let all = listed(&dir, &ollama);
    let from_ollama = all.iter().find(|m| m["name"] == "smol-ollama").unwrap();
    assert!(
        from_ollama["file"]
            .as_str()
            .unwrap()
            .ends_with(&format!("blobs/sha256-{hex}")),
        "{from_ollama}"
    );
    let (ok, table, _) = models(&dir, &ollama, &["list"]);
    assert!(ok);
    assert!(table.lines().next().unwrap().starts_with("NAME"), "{table}");
    assert!(
        table.contains("smol-ollama") && table.contains("llama_cpp"),
        "{table}"
    );

    // Bad inputs: one line each, naming the file or the model.
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
        (vec!["rm", "nothing"], "no added model named nothing"),
    ] {
        let (ok, _, err) = models(&dir, &ollama, &args);
        assert!(!ok, "{args:?} must fail");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert_eq!(
        listed(&dir, &ollama).len(),
        all.len(),
        "a refused add changes nothing"
    );

    let (ok, out, err) = models(&dir, &ollama, &["rm", "smol"]);
    assert!(ok, "{err}");
    assert!(out.contains("removed smol"), "{out}");
    let names: Vec<Value> = listed(&dir, &ollama)
        .into_iter()
        .map(|m| m["name"].clone())
        .collect();
    assert!(!names.contains(&Value::from("smol")) && names.contains(&Value::from("smol-ollama")));
    assert!(gguf.is_file(), "rm leaves the file alone");
}
