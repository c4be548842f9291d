//! Issue 16 end to end: the persistent document store, through the real binary (`up`, real
//! models) and the `docs` commands. Requires the prepared models (scripts/setup.sh).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use switchyard_controller::documents::{DocumentStore, SqliteStore};
use switchyard_e2e::{Proc, binary, run_cli, states, status_json, wait_for};

/// One small cluster at a time (2 cores).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `switchyard up` keeping its store in `data`; returns it with its gRPC URL once ready.
fn up(data: &Path, extra: &[&str]) -> (Proc, String) {
    let mut args = vec![
        "up",
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--agent-listen",
        "127.0.0.1:0",
        "--node-name",
        "solo",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let p = Proc::start("up", &args).expect("switchyard up");
    let grpc = p.field("grpc").unwrap();
    let ready = wait_for(Duration::from_secs(60), || {
        let nodes = status_json(&grpc).ok()?;
        states(&nodes)
            .iter()
            .any(|(_, s)| s == "ready")
            .then_some(())
    });
    assert!(ready.is_some(), "node never ready: {}", p.stderr());
    (p, format!("http://{grpc}"))
}

/// `switchyard docs ARGS --controller URL -o json`, which must succeed.
fn docs_json(url: &str, args: &[&str]) -> Value {
    let mut all = vec!["docs"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--controller", url, "-o", "json"]);
    let (status, out, err) = run_cli(&all).unwrap();
    assert!(status.success(), "docs {args:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `switchyard docs ARGS --controller URL`, which must fail: its one-line error.
fn docs_error(url: &str, args: &[&str]) -> String {
    let mut all = vec!["docs"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--controller", url]);
    let (status, _, err) = run_cli(&all).unwrap();
    assert_eq!(status.code(), Some(1), "docs {args:?} should fail: {err}");
    let line = err.trim();
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    line.to_string()
}

/// A corpus: notes about unrelated topics, a Rust file, a binary and an empty file.
fn corpus(dir: &Path) {
    std::fs::create_dir_all(dir.join("notes")).unwrap();
    std::fs::write(
        dir.join("notes/lighthouse.md"),
        "# Kelp Island\n\nThe lighthouse on Kelp Island is painted green.\n\nIts keeper rows to the mainland every Tuesday for supplies.\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("notes/bread.md"),
        "Sourdough bread needs a starter, flour, water and salt.\nProof the dough overnight in a cool room.\n",
    )
    .unwrap();
    let mut code =
        String::from("/// Primality by trial division.\nfn is_prime(n: u64) -> bool {\n");
    for i in 0..40 {
        code.push_str(&format!(
            "    // step {i}: divide by every odd number up to the square root\n"
        ));
    }
    code.push_str("    (2..n).take_while(|d| d * d <= n).all(|d| n % d != 0)\n}\n");
    std::fs::write(dir.join("prime.rs"), code).unwrap();
    std::fs::write(
        dir.join("logo.png"),
        [0x89, b'P', b'N', b'G', 0, 0, 0, 13, 0xff],
    )
    .unwrap();
    std::fs::write(dir.join("empty.txt"), "").unwrap();
}

fn ids(v: &Value, key: &str) -> Vec<u64> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_u64().unwrap())
        .collect()
}

/// (document, chunk, score, text) of a search answer.
fn hits(v: &Value) -> Vec<(u64, u64, f64, String)> {
    v["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["document_id"].as_u64().unwrap(),
                c["chunk"].as_u64().unwrap(),
                c["score"].as_f64().unwrap(),
                c["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn same_hits(a: &[(u64, u64, f64, String)], b: &[(u64, u64, f64, String)]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert_eq!((x.0, x.1, &x.3), (y.0, y.1, &y.3));
        assert!((x.2 - y.2).abs() < 1e-4, "{x:?} vs {y:?}");
    }
}

#[test]
fn an_imported_directory_survives_a_restart_and_deletes_stick() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let files = tmp.path().join("corpus");
    corpus(&files);
    let (mut first, url) = up(&data, &[]);
    let added = docs_json(
        &url,
        &["add", files.to_str().unwrap(), "--collection", "notes"],
    );
    let added_ids = ids(&added, "documents");
    assert_eq!(added_ids.len(), 3, "3 text files: {added}");
    let skipped = added["skipped"].to_string();
    assert!(
        skipped.contains("logo.png") && skipped.contains("binary"),
        "{skipped}"
    );
    assert!(skipped.contains("empty.txt"), "{skipped}");
    let code = added["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["source"].as_str().unwrap().ends_with("prime.rs"))
        .unwrap();
    assert!(
        code["chunks"].as_u64().unwrap() >= 3,
        "long file, several chunks: {code}"
    );

    let query = [
        "search",
        "What colour is the lighthouse?",
        "-k",
        "3",
        "--collection",
        "notes",
    ];
    let listed = docs_json(&url, &["list"]);
    let found = docs_json(&url, &query);
    let before = hits(&found);
    assert!(before[0].3.contains("painted green"), "{before:?}");
    assert!(before.windows(2).all(|w| w[0].2 >= w[1].2), "best first");
    assert!(
        found["trace"]["node"] == "solo",
        "the query went through the cluster: {found}"
    );

    first.kill9();
    drop(first);
    let (second, url) = up(&data, &[]);
    assert_eq!(
        docs_json(&url, &["list"]),
        listed,
        "same documents after a restart"
    );
    same_hits(&before, &hits(&docs_json(&url, &query)));

    // Re-adding the directory changes nothing.
    let again = docs_json(
        &url,
        &["add", files.to_str().unwrap(), "--collection", "notes"],
    );
    assert_eq!(ids(&again, "documents"), added_ids);
    assert!(
        again["documents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "unchanged"),
        "{again}"
    );

    // Delete the lighthouse note: gone from the list and the search, also after a restart.
    let lighthouse = before[0].0.to_string();
    let (ok, _, err) = run_cli(&["docs", "rm", &lighthouse, "--controller", &url]).unwrap();
    assert!(ok.success(), "{err}");
    let after = hits(&docs_json(&url, &query));
    assert!(
        after.iter().all(|h| h.0.to_string() != lighthouse),
        "{after:?}"
    );
    drop(second);
    let (_third, url) = up(&data, &[]);
    let listed = docs_json(&url, &["list"]);
    assert_eq!(ids(&listed, "documents").len(), 2);
    same_hits(&after, &hits(&docs_json(&url, &query)));
    let e = docs_error(&url, &["rm", &lighthouse]);
    assert!(e.contains("NotFound") && e.contains(&lighthouse), "{e}");
}

#[test]
fn kill_9_during_a_large_import_leaves_only_whole_documents() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let files = tmp.path().join("big");
    std::fs::create_dir_all(&files).unwrap();
    let n = 80;
    for i in 0..n {
        let mut text = String::new();
        for p in 0..8 {
            text.push_str(&format!(
                "Note {i}, paragraph {p}: the maintenance log of pump station {i} records pressure readings, valve checks and the names of the crew on shift.\n\n"
            ));
        }
        std::fs::write(files.join(format!("note-{i:03}.md")), text).unwrap();
    }
    let (mut controller, url) = up(&data, &[]);
    let mut import = Command::new(binary())
        .args(["docs", "add", files.to_str().unwrap(), "--controller", &url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the controller once a few documents are in, while the import goes on.
    let some = wait_for(Duration::from_secs(120), || {
        let v = docs_json(&url, &["list"]);
        (ids(&v, "documents").len() >= 3).then_some(())
    });
    assert!(
        some.is_some(),
        "the import never got going: {}",
        controller.stderr()
    );
    controller.kill9();
    let status = import.wait().unwrap();
    assert!(!status.success(), "the import saw its controller die");

    // The file on disk: every document whole (all chunks, every chunk's vector), none half.
    let store = SqliteStore::open(&data).unwrap();
    let check = store.check().unwrap();
    assert!(check.problems.is_empty(), "{:?}", check.problems);
    assert!(
        check.documents >= 3 && check.documents < n,
        "killed mid-import: {check:?}"
    );
    assert_eq!(check.chunks, check.vectors);
    let stored = store.list(None).unwrap();
    assert!(stored.iter().all(|d| d.chunks >= 2), "{stored:?}");
    drop(store);

    // After a restart the same import completes; what was stored is not embedded again.
    let (_controller, url) = up(&data, &[]);
    let done = docs_json(&url, &["add", files.to_str().unwrap()]);
    let docs = done["documents"].as_array().unwrap();
    assert_eq!(docs.len() as u64, n);
    let unchanged = docs.iter().filter(|d| d["status"] == "unchanged").count() as u64;
    assert_eq!(unchanged, check.documents, "{done}");
    let check = SqliteStore::open(&data).unwrap().check().unwrap();
    assert!(
        check.problems.is_empty() && check.documents == n,
        "{check:?}"
    );
}

#[test]
fn bad_documents_and_collections_get_one_line_errors() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let (_up, url) = up(&tmp.path().join("data"), &[]);
    let empty = tmp.path().join("empty.md");
    std::fs::write(&empty, "  \n").unwrap();
    let binary_file = tmp.path().join("blob.bin");
    std::fs::write(&binary_file, [0u8, 1, 2, 3, 0xff, 0xfe]).unwrap();
    let huge = tmp.path().join("huge.txt");
    std::fs::write(&huge, "word ".repeat(500_000)).unwrap();

    let e = docs_error(&url, &["add", empty.to_str().unwrap()]);
    assert!(e.contains("empty.md") && e.contains("empty"), "{e}");
    let e = docs_error(&url, &["add", binary_file.to_str().unwrap()]);
    assert!(e.contains("blob.bin") && e.contains("binary"), "{e}");
    let e = docs_error(&url, &["add", huge.to_str().unwrap()]);
    assert!(
        e.contains("huge.txt") && e.contains("max_document_bytes"),
        "{e}"
    );
    let e = docs_error(
        &url,
        &["add", tmp.path().join("missing.md").to_str().unwrap()],
    );
    assert!(e.contains("missing.md"), "{e}");
    let e = docs_error(&url, &["add", "--text", "x", "--collection", "bad name"]);
    assert!(e.contains("invalid collection name"), "{e}");
    let e = docs_error(&url, &["search", "anything", "--collection", "nope"]);
    assert!(
        e.contains("NotFound") && e.contains("unknown collection 'nope'"),
        "{e}"
    );
    let e = docs_error(&url, &["list", "--collection", "nope"]);
    assert!(e.contains("unknown collection 'nope'"), "{e}");
    let e = docs_error(&url, &["rm", "--collection", "nope"]);
    assert!(e.contains("unknown collection 'nope'"), "{e}");
    // Stdin: `-`.
    let mut child = Command::new(binary())
        .args(["docs", "add", "-", "--controller", &url, "-o", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Notes piped in on stdin.")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["documents"][0]["source"], "-");
}

#[test]
fn a_changed_embedding_model_is_refused_not_mixed() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (first, url) = up(&data, &[]);
    let v = docs_json(&url, &["add", "--text", "The lighthouse is green."]);
    assert_eq!(v["documents"][0]["status"], "added");
    drop(first);

    // The same embedding files registered under a second name, and the embed route moved to
    // it: the stored vectors are another model's.
    let registry = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/registry.toml");
    let mut text = std::fs::read_to_string(&registry).unwrap();
    let start = text.find("[[model]]\nname = \"minilm-l6-v2\"").unwrap();
    let end = start + 10 + text[start + 10..].find("[[model]]").unwrap();
    let copy = text[start..end].replace("name = \"minilm-l6-v2\"", "name = \"minilm-copy\"");
    text.push('\n');
    text.push_str(&copy);
    let reg = tmp.path().join("registry.toml");
    std::fs::write(&reg, text).unwrap();
    let cfg = tmp.path().join("switchyard.toml");
    std::fs::write(&cfg, "[routes]\nembed = \"minilm-copy\"\n").unwrap();
    let (_second, url) = up(
        &data,
        &[
            "--model-registry",
            reg.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ],
    );
    let e = docs_error(&url, &["search", "lighthouse"]);
    assert!(
        e.contains("FailedPrecondition") && e.contains("never mixed"),
        "{e}"
    );
    assert!(
        e.contains("minilm-l6-v2") && e.contains("minilm-copy"),
        "{e}"
    );
    let e = docs_error(&url, &["add", "--text", "another"]);
    assert!(e.contains("never mixed"), "{e}");
    // A new collection takes the new model.
    let v = docs_json(&url, &["add", "--text", "another", "--collection", "v2"]);
    assert_eq!(v["documents"][0]["collection"], "v2");
}

#[test]
fn an_unusable_data_directory_stops_the_controller_with_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let bad = file.join("data");
    let (status, _, err) = run_cli(&[
        "controller",
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--data-dir",
        bad.to_str().unwrap(),
    ])
    .unwrap();
    assert_eq!(status.code(), Some(1));
    assert!(
        err.contains("not-a-dir/data") && err.contains("cannot create"),
        "{err}"
    );
}
