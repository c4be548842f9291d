//! The network-namespace cluster of `scripts/netns-cluster.sh`, driven from tests: a
//! controller host and agent hosts, each a namespace with its own address on one bridge,
//! each running the real binary. Dropping the handle runs `down`, which leaves nothing
//! behind.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::{binary, run_command};

/// The script, in the source tree.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/netns-cluster.sh")
}

/// A cluster that is up; `down` on drop.
#[derive(Debug)]
pub struct NetnsCluster {
    /// Prefix of its namespaces and links.
    pub name: String,
    /// Its /24, as three octets (`10.77.N`).
    pub net: String,
    /// Number of agents (`agent-1` …).
    pub agents: usize,
    /// The control path runs under mTLS (agents joined with tokens).
    pub secure: bool,
    env: Vec<(String, String)>,
}

/// Clusters made by this process so far (each gets its own name and subnet).
static MADE: AtomicU32 = AtomicU32::new(0);

impl NetnsCluster {
    /// Why a namespace cluster cannot run here (not root, no `ip`, namespaces refused), or
    /// `None` when it can.
    pub fn unavailable() -> Option<String> {
        match Command::new("bash").arg(script()).arg("check").output() {
            Ok(out) if out.status.success() => None,
            Ok(out) => Some(String::from_utf8_lossy(&out.stderr).trim().to_string()),
            Err(e) => Some(format!("cannot run bash: {e}")),
        }
    }

    /// Brings up a controller and one agent per entry of `agent_args` (each entry: extra
    /// flags of that agent), and waits until every agent is ready.
    pub fn up(agent_args: &[&[&str]]) -> Result<NetnsCluster> {
        Self::bring_up(agent_args, &[])
    }

    /// Like [`NetnsCluster::up`] under mTLS (each agent joins with its own single-use token),
    /// plus an `intruder` host (NET.200) that runs nothing and holds no credential.
    pub fn up_secure(agent_args: &[&[&str]]) -> Result<NetnsCluster> {
        Self::bring_up(
            agent_args,
            &[("SY_NETNS_SECURE", "1"), ("SY_NETNS_INTRUDER", "1")],
        )
    }

    fn bring_up(agent_args: &[&[&str]], extra: &[(&str, &str)]) -> Result<NetnsCluster> {
        let n = (std::process::id() % 150 + 20 + MADE.fetch_add(1, Ordering::Relaxed) * 7) % 250;
        let name = format!("sy{n}");
        let net = format!("10.77.{n}");
        let mut env = vec![
            ("SY_NETNS_NAME".to_string(), name.clone()),
            ("SY_NETNS_NET".to_string(), net.clone()),
            ("SY_NETNS_AGENTS".to_string(), agent_args.len().to_string()),
            ("SWITCHYARD_BIN".to_string(), binary().display().to_string()),
            (
                "SY_API_TOKEN".to_string(),
                crate::NETNS_API_TOKEN.to_string(),
            ),
        ];
        for (i, args) in agent_args.iter().enumerate() {
            env.push((format!("SY_AGENT_ARGS_{}", i + 1), args.join(" ")));
        }
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        // Simulated (fixture) devices are placed only when the controller allows them.
        if agent_args.iter().any(|a| a.contains(&"--fixture")) {
            env.push(("SY_CONTROLLER_ARGS".into(), "--allow-simulated".into()));
        }
        let cluster = NetnsCluster {
            name,
            net,
            agents: agent_args.len(),
            secure: extra
                .iter()
                .any(|(k, v)| *k == "SY_NETNS_SECURE" && *v == "1"),
            env,
        };
        cluster.run(&["reap"]).context("netns-cluster.sh reap")?;
        cluster.run(&["up"]).context("netns-cluster.sh up")?;
        Ok(cluster)
    }

    /// Runs the script with this cluster's settings; its stdout on success.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("bash");
        cmd.arg(script());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let (status, out, err) = run_command(cmd, args)?;
        if !status.success() {
            bail!("netns-cluster.sh {args:?} failed ({status}): {err}");
        }
        Ok(out)
    }

    /// The controller's gRPC address.
    pub fn grpc(&self) -> String {
        format!("{}.1:50051", self.net)
    }

    /// The controller's HTTP address.
    pub fn http(&self) -> String {
        format!("{}.1:8080", self.net)
    }

    /// The address of `agent-i` (1-based).
    pub fn agent_ip(&self, i: usize) -> String {
        format!("{}.{}", self.net, i + 1)
    }

    /// `kill -9` of a host's process (`ctl`, `agent-1`, …); returns when it is gone.
    pub fn kill(&self, host: &str) {
        self.run(&["kill", host]).expect("kill");
    }

    /// Starts a host's process again.
    pub fn start(&self, host: &str) {
        self.run(&["start", host]).expect("start");
    }

    /// Pulls (`false`) or plugs back (`true`) the host's cable.
    pub fn link(&self, host: &str, up: bool) {
        self.run(&["link", host, if up { "up" } else { "down" }])
            .expect("link");
    }

    /// Runs `program ARGS` to completion inside a host's namespace (the `intruder` too), in
    /// a clean environment plus `env`: (status, stdout, stderr).
    pub fn exec_program(
        &self,
        host: &str,
        env: &[(&str, &str)],
        program: &str,
        args: &[&str],
    ) -> Result<(ExitStatus, String, String)> {
        let mut cmd = Command::new("ip");
        crate::clean_env(&mut cmd);
        cmd.args(["netns", "exec", &format!("{}-{host}", self.name), "env"]);
        cmd.args(env.iter().map(|(k, v)| format!("{k}={v}")));
        cmd.arg(program);
        run_command(cmd, args)
    }

    /// The script's state directory (each host's data, logs, tokens).
    fn state_dir(&self) -> PathBuf {
        self.env
            .iter()
            .find(|(k, _)| k == "SY_NETNS_STATE")
            .map(|(_, v)| PathBuf::from(v))
            .unwrap_or_else(|| PathBuf::from(format!("/tmp/switchyard-netns-{}", self.name)))
    }

    /// The controller's data directory (its CA and client certificate, under mTLS).
    pub fn controller_data(&self) -> PathBuf {
        self.state_dir().join("ctl/data")
    }

    /// Runs `switchyard ARGS` to completion inside a host's namespace, in a clean
    /// environment: (status, stdout, stderr).
    pub fn exec(&self, host: &str, args: &[&str]) -> Result<(ExitStatus, String, String)> {
        let mut cmd = Command::new("ip");
        crate::clean_env(&mut cmd);
        cmd.args(["netns", "exec", &format!("{}-{host}", self.name)])
            .arg(binary());
        run_command(cmd, args)
    }

    /// The pid of a host's process.
    pub fn pid(&self, host: &str) -> u32 {
        let out = self.run(&["pid", host]).expect("pid");
        out.trim().parse().expect("a pid")
    }

    /// True while a host's process runs.
    pub fn alive(&self, host: &str) -> bool {
        Path::new(&format!("/proc/{}", self.pid(host))).exists()
    }

    /// Resident memory of a host's process, bytes (`VmRSS`).
    pub fn rss(&self, host: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid(host))).ok()?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    }

    /// A host's log (stdout and stderr of every process it ran).
    pub fn log(&self, host: &str) -> String {
        std::fs::read_to_string(self.state_dir().join(host).join("log")).unwrap_or_default()
    }

    /// `switchyard status -o json` against the controller: over mTLS with the controller's
    /// own client certificate (from its data directory, as on its host) when secure.
    pub fn status(&self) -> Result<Vec<serde_json::Value>> {
        if !self.secure {
            return crate::status_json(&self.grpc());
        }
        let mut cmd = Command::new(binary());
        cmd.env("SWITCHYARD_INSECURE", "false")
            .env("SWITCHYARD_DATA_DIR", self.controller_data());
        let url = format!("https://{}", self.grpc());
        let (status, out, err) = run_command(cmd, &["status", "--controller", &url, "-o", "json"])?;
        if !status.success() {
            bail!("status failed: {err}");
        }
        let v: serde_json::Value =
            serde_json::from_str(&out).with_context(|| format!("status JSON: {out}"))?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// The controller's gRPC endpoint for clients: TLS verified against the cluster CA when
    /// secure (client APIs need no certificate, only the API token).
    pub fn endpoint(&self) -> tonic::transport::Endpoint {
        use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
        if !self.secure {
            return Endpoint::from_shared(format!("http://{}", self.grpc())).expect("URL");
        }
        let ca = std::fs::read(self.controller_data().join("pki/ca.pem")).expect("the cluster CA");
        Endpoint::from_shared(format!("https://{}", self.grpc()))
            .expect("URL")
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(ca))
                    .domain_name("switchyard-controller"),
            )
            .expect("TLS settings")
    }

    /// `clients` embedding clients against the controller ([`crate::load::Load`]).
    pub fn load(&self, clients: usize) -> crate::load::Load {
        crate::load::Load::embed_on(self.endpoint(), clients)
    }

    /// Waits (up to `limit`) until `n` nodes are ready.
    pub fn wait_ready(&self, n: usize, limit: Duration) -> Option<Duration> {
        crate::wait_for(limit, || {
            let nodes = self.status().ok()?;
            (crate::states(&nodes)
                .iter()
                .filter(|(_, s)| s == "ready")
                .count()
                == n)
                .then_some(())
        })
        .map(|(_, t)| t)
    }
}

impl Drop for NetnsCluster {
    fn drop(&mut self) {
        if let Err(e) = self.run(&["down"]) {
            eprintln!("netns cluster {}: down failed: {e}", self.name);
        }
    }
}
