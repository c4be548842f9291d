//! Harness for end-to-end tests: runs the real `switchyard` binary as child processes on
//! loopback with port 0, reads the bound addresses from their first stdout line, and kills
//! them on drop. Their stderr goes to a file that failing tests print. [`netns`] drives a
//! cluster of network namespaces instead; [`load`] is the client load the fault cases run
//! under.

pub mod load;
pub mod mtls;
pub mod netns;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Path of the `switchyard` binary: `SWITCHYARD_BIN`, else `target/{debug,release}`.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHYARD_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    for profile in ["debug", "release"] {
        let p = target.join(profile).join("switchyard");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "switchyard binary not found under {}: run `cargo build -p switchyard` first (scripts/test.sh does)",
        target.display()
    );
}

/// A child `switchyard` process, killed on drop.
pub struct Proc {
    /// Label used in error messages (`controller`, an agent's node name, ...).
    pub name: String,
    /// The running child process.
    pub child: Child,
    /// First stdout line (the "listening" line).
    pub ready_line: String,
    /// File the child's stderr is written to (inside a temporary directory).
    pub stderr_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Proc {
    /// Starts `switchyard ARGS` and waits (up to 60 s) for its first stdout line.
    pub fn start(name: &str, args: &[&str]) -> Result<Proc> {
        Self::start_with_env(name, args, &[])
    }

    /// Like [`Proc::start`] with extra environment variables. A controller keeps its data
    /// (the document store) in a fresh temporary directory unless `--data-dir` says
    /// otherwise, so tests never share (or touch the user's) store.
    pub fn start_with_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> Result<Proc> {
        let mut cmd = Command::new(binary());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(name, cmd, args)
    }

    /// Like [`Proc::start`] in a clean environment ([`clean_env`]) with `dir` as the working
    /// directory: the binary as an operator runs it, with nothing sourced.
    pub fn start_clean(name: &str, args: &[&str], dir: &Path) -> Result<Proc> {
        let mut cmd = Command::new(binary());
        clean_env(&mut cmd);
        cmd.current_dir(dir);
        Self::spawn(name, cmd, args)
    }

    /// Starts `cmd ARGS` and waits (up to 60 s) for its first stdout line.
    pub fn spawn(name: &str, mut cmd: Command, args: &[&str]) -> Result<Proc> {
        let dir = tempfile::tempdir()?;
        let stderr_path = dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path)?;
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .env("SWITCHYARD_LOG", "info");
        // A controller keeps its data (the document store) in a fresh temporary directory
        // unless the caller chose one.
        if !cmd.get_envs().any(|(k, _)| k == "SWITCHYARD_DATA_DIR") {
            cmd.env("SWITCHYARD_DATA_DIR", dir.path().join("data"));
        }
        // An agent keeps its certificate in a fresh temporary directory too.
        if !cmd
            .get_envs()
            .any(|(k, _)| k == "SWITCHYARD_AGENT_DATA_DIR")
        {
            cmd.env("SWITCHYARD_AGENT_DATA_DIR", dir.path().join("agent"));
        }
        // Tests of placement, faults and the APIs run the plaintext cluster (explicitly
        // --insecure, through its env twin); the security tests (tests/e2e/security.rs) set
        // or remove SWITCHYARD_INSECURE themselves and run the mTLS one.
        if !cmd.get_envs().any(|(k, _)| k == "SWITCHYARD_INSECURE") {
            cmd.env("SWITCHYARD_INSECURE", "true");
        }
        let mut child = cmd.spawn().with_context(|| format!("spawning {name}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the child never blocks on a full pipe.
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let mut proc = Proc {
            name: name.to_string(),
            child,
            ready_line: line.trim().to_string(),
            stderr_path,
            _dir: dir,
        };
        if proc.ready_line.is_empty() {
            let status = proc.child.try_wait()?;
            bail!(
                "{name} printed no ready line (exit: {status:?}); stderr:\n{}",
                proc.stderr()
            );
        }
        Ok(proc)
    }

    /// Value of `key=VALUE` in the ready line.
    pub fn field(&self, key: &str) -> Option<String> {
        self.ready_line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")).map(str::to_string))
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// SIGKILL, like `kill -9`.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Clears `cmd`'s environment down to what a login shell has — `HOME`, `PATH`,
/// `XDG_CACHE_HOME` when set — plus `SWITCHYARD_THREADS` (a tuning knob, kept so tests on
/// small machines don't oversubscribe). No `SWITCHYARD_*_LIB`, no models directory: what
/// the binary needs it finds by itself.
pub fn clean_env(cmd: &mut Command) {
    cmd.env_clear();
    for key in ["HOME", "PATH", "XDG_CACHE_HOME", "SWITCHYARD_THREADS"] {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
}

/// Runs `switchyard ARGS` to completion (120 s limit): (status, stdout, stderr).
pub fn run_cli(args: &[&str]) -> Result<(ExitStatus, String, String)> {
    run_command(Command::new(binary()), args)
}

/// Runs `cmd ARGS` to completion (120 s limit): (status, stdout, stderr).
pub fn run_command(mut cmd: Command, args: &[&str]) -> Result<(ExitStatus, String, String)> {
    // As in [`Proc::spawn`]: the plaintext cluster unless the caller chose.
    if !cmd.get_envs().any(|(k, _)| k == "SWITCHYARD_INSECURE") {
        cmd.env("SWITCHYARD_INSECURE", "true");
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("SWITCHYARD_LOG", "warn")
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait()? {
            let mut out = String::new();
            let mut err = String::new();
            child
                .stdout
                .take()
                .expect("stdout")
                .read_to_string(&mut out)?;
            child
                .stderr
                .take()
                .expect("stderr")
                .read_to_string(&mut err)?;
            return Ok((status, out, err));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("{cmd:?} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `switchyard status --output json` against `grpc` (an `ip:port`).
pub fn status_json(grpc: &str) -> Result<Vec<Value>> {
    let (status, out, err) = run_cli(&[
        "status",
        "--controller",
        &format!("http://{grpc}"),
        "-o",
        "json",
    ])?;
    if !status.success() {
        bail!("status failed: {err}");
    }
    let v: Value = serde_json::from_str(&out).with_context(|| format!("status JSON: {out}"))?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

/// Node name → state from a status listing.
pub fn states(nodes: &[Value]) -> Vec<(String, String)> {
    nodes
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap_or_default().to_string(),
                n["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Polls `check` every 50 ms until it returns `Some` or `limit` passes; returns the value and
/// the time it took. A behavioural deadline (e.g. "lost within 3 s"), not a benchmark.
pub fn wait_for<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<(T, Duration)> {
    let start = Instant::now();
    while start.elapsed() <= limit {
        if let Some(v) = check() {
            return Some((v, start.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// `llama-server` processes whose parent is `parent`: (pid, CPU ticks so far).
pub fn engines_of(parent: u32) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ... utime(14) stime(15)
        let Some((comm, rest)) = stat.split_once(") ") else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if comm.ends_with("(llama-server") && f[1].parse::<u32>().ok() == Some(parent) {
            let ticks = f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
            out.push((pid, ticks));
        }
    }
    out
}

/// One HTTP/1.0 POST: (status code, body).
pub fn post(http: &str, path: &str, body: &Value) -> Result<(u16, String), String> {
    request(http, "POST", path, None, Some(body))
}

/// One HTTP/1.0 GET with an optional bearer token: (status code, body).
pub fn get(http: &str, path: &str, token: Option<&str>) -> Result<(u16, String), String> {
    request(http, "GET", path, token, None)
}

/// One HTTP/1.0 request with an optional bearer token and JSON body: (status code, body).
pub fn request(
    http: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, String), String> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut s = std::net::TcpStream::connect(http).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {http}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    response(s)
}

/// The status code and body of the HTTP/1.0 response on `s`.
fn response(mut s: std::net::TcpStream) -> Result<(u16, String), String> {
    let mut raw = String::new();
    s.read_to_string(&mut raw).map_err(|e| e.to_string())?;
    let code = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((code, body.to_string()))
}

/// `switchyard up` on loopback, every port free: what single-host tests start with (then
/// `--node-name` and the rest).
pub const UP_ON_LOOPBACK: [&str; 7] = [
    "up",
    "--listen",
    "127.0.0.1:0",
    "--http-listen",
    "127.0.0.1:0",
    "--agent-listen",
    "127.0.0.1:0",
];

/// Waits (30 s at most) until node `name` is ready in the controller at `grpc`; otherwise
/// panics with `p`'s stderr.
pub fn wait_node_ready(p: &Proc, grpc: &str, name: &str) {
    wait_for(Duration::from_secs(30), || {
        let nodes = status_json(grpc).ok()?;
        nodes
            .iter()
            .any(|n| n["name"] == name && n["state"] == "ready")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("{name} not ready:\n{}", p.stderr()));
}

/// A test's precondition. `Ok`: go on (true). Missing: under `CI=true` — where CI is expected
/// to provide it (root, network namespaces, a Vulkan driver) — the test fails with `why`;
/// elsewhere it prints `SKIPPED <test>: <why>` and the caller returns (false), so a run
/// that checked nothing says so instead of reading as a pass.
pub fn precondition(test: &str, check: Result<(), String>) -> bool {
    match check {
        Ok(()) => true,
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: precondition missing under CI=true: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            // libtest hides a passing test's output: scripts/test.sh lists these at the end.
            if let Some(log) = std::env::var_os("SWITCHYARD_SKIP_LOG")
                && let Ok(mut f) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
            {
                let _ = writeln!(f, "{test}: {why}");
            }
            false
        }
    }
}

/// The client-API token of the namespace cluster's controller (it listens beyond loopback, so
/// it requires one: scripts/netns-cluster.sh configures this one).
pub const NETNS_API_TOKEN: &str = "sy-netns-test-0123456789abcdef0123456789abcdef";

/// `req` with `authorization: Bearer <token>` metadata.
pub fn with_token<T>(req: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(req);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ASCII token"),
    );
    r
}

/// The Switchyard cache (`${XDG_CACHE_HOME:-~/.cache}/switchyard`).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"))
        .join("switchyard")
}
