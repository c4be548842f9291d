//! Helpers of the mTLS end-to-end tests: the environment of a cluster whose controller keeps
//! its CA in a given data directory, starting that controller, and running the CLI against
//! it.

use std::path::Path;
use std::process::Command;

use crate::{Proc, binary, run_command};

/// The environment of a process of the mTLS cluster whose controller keeps `data`.
pub fn secure(data: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("SWITCHYARD_INSECURE", "false".into()),
        ("SWITCHYARD_DATA_DIR", data.display().to_string()),
    ]
}

/// `env` as the borrowed pairs [`Proc::start_with_env`] takes.
pub fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// An mTLS controller keeping `data`, gRPC on `listen`, HTTP on a free port, with `extra`
/// arguments (e.g. `--config FILE`) before the subcommand.
pub fn controller(data: &Path, listen: &str, extra: &[&str]) -> Proc {
    let env = secure(data);
    let mut args = extra.to_vec();
    args.extend([
        "controller",
        "--listen",
        listen,
        "--http-listen",
        "127.0.0.1:0",
    ]);
    let c = Proc::start_with_env("controller", &args, &env_refs(&env)).expect("controller starts");
    assert!(c.ready_line.contains("control=mtls"), "{}", c.ready_line);
    c
}

/// `switchyard ARGS` with `env` added to [`secure`]`(data)`: (ok, stdout, stderr).
pub fn cli_with(data: &Path, env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(binary());
    for (k, v) in secure(data) {
        cmd.env(k, v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (status, out, err) = run_command(cmd, args).expect("the CLI runs");
    (status.success(), out, err)
}

/// `switchyard ARGS` against the controller data directory `data`: (ok, stdout, stderr).
pub fn cli(data: &Path, args: &[&str]) -> (bool, String, String) {
    cli_with(data, &[], args)
}
