//! One engine process's lifetime: start it, wait for `/health`, check that a GPU engine put
//! its layers on the pinned device, watch it, restart it after a crash (with [`RESTART`]'s
//! backoff), stop it with SIGTERM then SIGKILL. An engine that cannot start
//! ([`FAILED_STARTS`] times in a row) or computes elsewhere than pinned is failed for good,
//! not restarted in a loop.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tracing::{info, warn};

use super::pinning::Family;
use super::{Endpoint, GRACE, Phase, Pin, RESTART, START_TIMEOUT, Server};

/// Starts that fail in a row (never healthy) before the engine is failed for good.
pub const FAILED_STARTS: u32 = 3;

/// How one process lifetime ended badly.
enum Ended {
    /// It crashed or did not start: restart (after a backoff) unless it keeps failing.
    Crashed { why: String, was_healthy: bool },
    /// It runs, but not where it was pinned: fail for good.
    Misplaced(String),
}

/// A free loopback port (bound and released; llama-server binds it next).
pub(super) fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// Runs the engine until asked to stop, restarting it after each crash.
pub(super) async fn supervise(server: Arc<Server>, binary: PathBuf, threads: usize, pin: Pin) {
    let mut stop = server.stop.subscribe();
    let mut restarts = 0u32;
    let mut failed_starts = 0u32;
    loop {
        if *stop.borrow() {
            break;
        }
        server.phase.send_replace(Phase::Starting);
        let why = match run_once(&server, &binary, threads, &pin, &mut stop).await {
            Ok(()) => break,
            Err(Ended::Misplaced(why)) => {
                warn!(error = %why, "llama-server is not computing where it was placed; not restarting");
                server.phase.send_replace(Phase::Failed(why));
                return;
            }
            Err(Ended::Crashed { why, was_healthy }) => {
                if was_healthy {
                    restarts = 0;
                    failed_starts = 0;
                } else {
                    failed_starts += 1;
                }
                why
            }
        };
        if failed_starts >= FAILED_STARTS {
            let why = format!("failed to start {failed_starts} times in a row, last: {why}");
            warn!(error = %why, "llama-server cannot start on this device; not restarting");
            server.phase.send_replace(Phase::Failed(why));
            return;
        }
        restarts += 1;
        warn!(error = %why, restarts, "llama-server is down; restarting");
        server.phase.send_replace(Phase::Down(why));
        let delay = RESTART.delay(restarts, rand::random::<f64>());
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    server.phase.send_replace(Phase::Stopped);
    info!("llama-server stopped");
}

/// What a GPU engine's load log says about where its layers went (`-lv 4` prints it).
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Offload {
    /// `load_tensors: offloaded N/M layers to GPU`.
    pub layers: Option<(u32, u32)>,
    /// The device names with a `model buffer size` line (`Vulkan0`, `CPU_Mapped`).
    pub buffers: Vec<String>,
}

impl Offload {
    /// Reads one log line.
    pub(super) fn note(&mut self, line: &str) {
        if let Some(rest) = line.split("offloaded ").nth(1)
            && let Some((n, rest)) = rest.split_once('/')
            && let Some(m) = rest.split_whitespace().next()
            && rest.contains("layers to GPU")
            && let (Ok(n), Ok(m)) = (n.trim().parse(), m.parse())
        {
            self.layers = Some((n, m));
        }
        if let Some((head, _)) = line.split_once(" model buffer size")
            && let Some(dev) = head.split_whitespace().last()
        {
            self.buffers.push(dev.to_string());
        }
    }

    /// Whether the layers planned (`planned`: a partial offload's `-ngl`; `None`: every
    /// layer) sit on `device` (`Vulkan0`), or what the engine did instead.
    pub(super) fn check(&self, device: &str, planned: Option<u32>) -> Result<(), String> {
        let Some((n, m)) = self.layers else {
            return Err(format!(
                "llama-server's load log shows no offload to {device} (no \"offloaded N/M layers\" line)"
            ));
        };
        let want = planned.map_or(m, |p| p.min(m));
        if n < want || m == 0 {
            return Err(format!(
                "llama-server offloaded only {n}/{m} layers to {device}, {want} planned (too little free memory there?)"
            ));
        }
        if !self.buffers.iter().any(|b| b == device) {
            return Err(format!(
                "llama-server put no model buffer on {device} (buffers on: {})",
                self.buffers.join(", ")
            ));
        }
        Ok(())
    }
}

/// The command line of one engine process: the model, loopback port, slots, threads, the
/// pin (a GPU engine logs its load in detail: where the layers went) and the key file.
fn command(server: &Server, binary: &Path, threads: usize, pin: &Pin, key_file: &Path) -> Command {
    let engine = server.spec.engine.as_ref().expect("engine model");
    let ctx = server.spec.context_tokens.unwrap_or(4096);
    let parallel = pin.parallel(engine.parallel);
    let mut cmd = Command::new(binary);
    super::super::pdeathsig::die_with_parent(&mut cmd);
    cmd.arg("--api-key-file").arg(key_file);
    if let Some(template) = &engine.chat_template {
        cmd.arg("--chat-template-file").arg(template);
    }
    cmd.arg("-m")
        .arg(&engine.gguf)
        .args(["--host", "127.0.0.1", "--port", &port_of(server), "--jinja"])
        .args(["--parallel", &parallel.to_string()])
        .args(["--ctx-size", &(ctx * parallel).to_string()])
        .args(["-t", &threads.to_string()])
        .args(&pin.args)
        .args(if pin.family == Family::Cpu {
            &[][..]
        } else {
            &["-lv", "4"][..]
        })
        .envs(pin.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// The loopback port the engine of `server` listens on.
fn port_of(server: &Server) -> String {
    server
        .endpoint
        .config()
        .base_url()
        .rsplit(':')
        .next()
        .unwrap_or("0")
        .to_string()
}

/// What an engine's stderr told so far: its last lines and where its layers went.
#[derive(Clone, Default)]
struct EngineLog {
    tail: Arc<Mutex<VecDeque<String>>>,
    offload: Arc<Mutex<Offload>>,
}

impl EngineLog {
    /// Reads `child`'s stderr in the background.
    fn watch(child: &mut Child) -> EngineLog {
        let log = EngineLog::default();
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    log.offload.lock().expect("offload").note(&line);
                    let mut t = log.tail.lock().expect("stderr tail");
                    if t.len() == 8 {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            });
        }
        log
    }

    /// Why the process `pid` ended: its status and last non-empty line.
    fn exited(&self, pid: u32, status: std::io::Result<std::process::ExitStatus>) -> String {
        let last = self
            .tail
            .lock()
            .expect("stderr tail")
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .cloned();
        format!(
            "llama-server (pid {pid}) exited ({}){}",
            status
                .map(|s| s.to_string())
                .unwrap_or_else(|e| e.to_string()),
            last.map(|l| format!(": {l}")).unwrap_or_default()
        )
    }
}

/// One process lifetime. Ok: stopped on request; Err: how it ended.
async fn run_once(
    server: &Server,
    binary: &Path,
    threads: usize,
    pin: &Pin,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), Ended> {
    let crashed = |why: String, was_healthy: bool| Ended::Crashed { why, was_healthy };
    let key_file = write_key(server).map_err(|e| crashed(e, false))?;
    let mut child = command(server, binary, threads, pin, key_file.path())
        .spawn()
        .map_err(|e| crashed(format!("cannot start {}: {e}", binary.display()), false))?;
    let pid = child.id().unwrap_or(0);
    let log = EngineLog::watch(&mut child);
    // Wait for /health, the process, or a stop.
    let started = Instant::now();
    loop {
        let stopping = tokio::select! {
            status = child.wait() => return Err(crashed(log.exited(pid, status), false)),
            _ = stop.wait_for(|s| *s) => true,
            _ = tokio::time::sleep(Duration::from_millis(100)) => false,
        };
        if stopping {
            return terminate(&mut child, pid).await;
        }
        if healthy(&server.endpoint).await {
            break;
        }
        if started.elapsed() > START_TIMEOUT {
            let _ = terminate(&mut child, pid).await;
            return Err(crashed(
                format!("no /health after {} s", START_TIMEOUT.as_secs()),
                false,
            ));
        }
    }
    if let Some(device) = pin.engine_device() {
        let seen = log.offload.lock().expect("offload").clone();
        if let Err(why) = seen.check(&device, pin.gpu_layers) {
            let _ = terminate(&mut child, pid).await;
            return Err(Ended::Misplaced(why));
        }
        let (n, m) = seen.layers.unwrap_or_default();
        info!(pid, device = %device, layers = %format!("{n}/{m}"), "llama-server computes on its pinned device");
    }
    info!(pid, port = %port_of(server), ms = started.elapsed().as_millis() as u64, "llama-server healthy");
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    server.phase.send_replace(Phase::Healthy { pid, load_ms });
    tokio::select! {
        status = child.wait() => return Err(crashed(log.exited(pid, status), true)),
        _ = stop.wait_for(|s| *s) => {}
    }
    terminate(&mut child, pid).await
}

/// The engine's API key in a file only this user can read (removed when dropped: llama-server
/// reads it at start).
fn write_key(server: &Server) -> Result<tempfile::NamedTempFile, String> {
    use std::io::Write;
    let key = server.endpoint.config().token.clone().unwrap_or_default();
    let mut f = tempfile::Builder::new()
        .prefix("switchyard-engine-")
        .suffix(".key")
        .tempfile()
        .map_err(|e| format!("cannot write the engine's API key file: {e}"))?;
    f.write_all(key.as_bytes())
        .and_then(|()| f.flush())
        .map_err(|e| format!("cannot write the engine's API key file: {e}"))?;
    Ok(f)
}

/// True when `/health` answers 200.
async fn healthy(ep: &Endpoint) -> bool {
    ep.request(reqwest::Method::GET, "/health")
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// SIGTERM (through `kill`, no unsafe code here), SIGKILL after [`GRACE`]; returns once the
/// process is gone.
async fn terminate(child: &mut Child, pid: u32) -> Result<(), Ended> {
    let termed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    if !termed || tokio::time::timeout(GRACE, child.wait()).await.is_err() {
        warn!(pid, "llama-server did not stop on SIGTERM: SIGKILL");
        let _ = child.kill().await;
    }
    Ok(())
}
