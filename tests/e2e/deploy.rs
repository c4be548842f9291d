//! Issue 14, deployment as an operator meets it: the binary runs with nothing sourced,
//! `deploy/install.sh` writes the config of its role, and the `.deb` (cargo-deb) carries the
//! binary, both systemd units and the example config, installs with `dpkg -i` and purges.

use std::path::{Path, PathBuf};
use std::process::Command;

use switchyard_e2e::{Proc, binary, clean_env, run_command};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sh(args: &[&str]) -> (bool, String, String) {
    let (status, out, err) = run_command(Command::new(args[0]), &args[1..]).unwrap();
    (status.success(), out, err)
}

#[test]
fn devices_calibrate_with_json_output_prints_one_json_document_with_measured_tops() {
    let (status, out, err) = run_command(
        Command::new(binary()),
        &["devices", "--calibrate", "-o", "json"],
    )
    .unwrap();
    assert!(status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {out}"));
    let cpu = v
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "cpu")
        .unwrap_or_else(|| panic!("a CPU device: {out}"));
    assert!(
        cpu["measured_tops"]["int8_tops"]
            .as_f64()
            .is_some_and(|t| t > 0.0),
        "{cpu}"
    );
    assert!(
        !err.trim().is_empty(),
        "the calibration table goes to stderr"
    );
}

#[test]
fn devices_in_a_clean_environment_finds_the_runtime_libraries_by_itself() {
    let mut cmd = Command::new(binary());
    clean_env(&mut cmd);
    cmd.current_dir("/");
    let (status, out, err) = run_command(cmd, &["devices", "-o", "json"]).unwrap();
    assert!(status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cpu = v
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "cpu")
        .unwrap_or_else(|| panic!("a CPU device: {out}"));
    for backend in ["ort-cpu", "openvino"] {
        let b = cpu["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["backend"] == backend)
            .unwrap_or_else(|| panic!("{backend} probed: {cpu}"));
        assert_eq!(b["usable"], true, "{backend} loads with no env.sh: {b}");
    }
    // Pointed at a library that is not there, the override is one clear error.
    let mut cmd = Command::new(binary());
    clean_env(&mut cmd);
    cmd.env("SWITCHYARD_OPENVINO_LIB", "/nonexistent/libopenvino_c.so.1");
    let (_, out, _) = run_command(cmd, &["devices", "-o", "json"]).unwrap();
    assert!(
        out.contains("OpenVINO not found: SWITCHYARD_OPENVINO_LIB=/nonexistent"),
        "{out}"
    );
}

#[test]
fn install_sh_writes_the_config_section_of_its_role() {
    let root = tempfile::tempdir().unwrap();
    let bin = binary();
    let install = repo().join("deploy/install.sh");
    let run = |role: &str, extra: &[&str]| {
        let dest = root.path().join(role);
        let mut args = vec![
            "bash",
            install.to_str().unwrap(),
            "--role",
            role,
            "--binary",
            bin.to_str().unwrap(),
            "--root",
            dest.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let (ok, out, err) = sh(&args);
        assert!(ok, "install.sh --role {role}: {out}{err}");
        dest
    };

    let ctl = run("controller", &[]);
    let config = ctl.join("etc/switchyard/switchyard.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("[controller]") && text.contains("cluster = true"),
        "{text}"
    );
    assert!(
        !text.contains("[agent]"),
        "only the controller's section: {text}"
    );
    let unit =
        std::fs::read_to_string(ctl.join("etc/systemd/system/switchyard-controller.service"))
            .unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/switchyard controller --config /etc/switchyard/switchyard.toml"),
        "{unit}"
    );
    assert!(ctl.join("usr/local/bin/switchyard").is_file());
    // The written file is the controller's real configuration: it starts with it, and its
    // `cluster = true` refuses a loopback listen address.
    let cfg = config.to_str().unwrap();
    let started = Proc::start(
        "controller",
        &[
            "controller",
            "--config",
            cfg,
            "--listen",
            "0.0.0.0:0",
            "--http-listen",
            "127.0.0.1:0",
        ],
    )
    .expect("the controller starts with the installed config");
    assert!(started.field("grpc").is_some(), "{}", started.ready_line);
    drop(started);
    let (status, _, err) =
        switchyard_e2e::run_cli(&["controller", "--config", cfg, "--listen", "127.0.0.1:0"])
            .unwrap();
    assert!(
        !status.success() && err.contains("--listen 0.0.0.0:0"),
        "{err}"
    );

    let agent = run("agent", &["--controller", "http://10.9.8.7:50051"]);
    let config = agent.join("etc/switchyard/switchyard.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("[agent]"), "{text}");
    assert!(
        text.contains("controller = \"http://10.9.8.7:50051\""),
        "{text}"
    );
    assert!(text.contains("listen = \"0.0.0.0:50061\""), "{text}");
    assert!(
        !text.contains("[controller]"),
        "only the agent's section: {text}"
    );
    let unit =
        std::fs::read_to_string(agent.join("etc/systemd/system/switchyard-agent.service")).unwrap();
    assert!(unit.contains("DevicePolicy=closed") && unit.contains("DeviceAllow=char-drm rw"));
    assert!(
        !unit.lines().any(|l| l.trim() == "PrivateDevices=yes"),
        "the agent must see the accelerators: {unit}"
    );
    // The agent starts with it (its controller is unreachable: it keeps retrying).
    let started = Proc::start(
        "agent",
        &[
            "agent",
            "--config",
            config.to_str().unwrap(),
            "--agent-listen",
            "0.0.0.0:0",
            "--node-name",
            "installed",
        ],
    )
    .expect("the agent starts with the installed config");
    assert!(started.field("data").is_some(), "{}", started.ready_line);

    // Bad flags are refused with the usage.
    let (ok, _, err) = sh(&["bash", install.to_str().unwrap(), "--role", "nope"]);
    assert!(!ok && err.contains("--role controller|agent"), "{err}");
}

/// cargo-deb: where scripts/setup.sh installs it, else on PATH.
fn cargo_deb() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
    let cached = cache.join("switchyard/tools/bin/cargo-deb");
    if cached.is_file() {
        cached
    } else {
        PathBuf::from("cargo-deb")
    }
}

#[test]
fn the_deb_carries_binary_units_and_config_and_installs_with_dpkg() {
    let out = tempfile::tempdir().unwrap();
    // The binary the other tests run (debug unless SWITCHYARD_BIN names a release build).
    let profile = if binary().to_string_lossy().contains("/release/") {
        "release"
    } else {
        "dev"
    };
    let deb_dir = out.path().join("deb");
    let (status, stdout, err) = run_command(
        Command::new(cargo_deb()),
        &[
            "--no-build",
            "--profile",
            profile,
            "--fast",
            "-p",
            "switchyard",
            "--manifest-path",
            repo().join("Cargo.toml").to_str().unwrap(),
            "-o",
            deb_dir.to_str().unwrap(),
        ],
    )
    .expect("cargo-deb runs (scripts/setup.sh installs it)");
    assert!(status.success(), "cargo-deb: {stdout}{err}");
    let deb = std::fs::read_dir(&deb_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb");
    let deb_s = deb.to_str().unwrap();

    let (ok, info, err) = sh(&["dpkg-deb", "--info", deb_s]);
    assert!(ok, "{err}");
    assert!(info.contains("Package: switchyard"), "{info}");
    assert!(
        info.contains("postinst") && info.contains("conffiles"),
        "{info}"
    );
    let (ok, contents, _) = sh(&["dpkg-deb", "--contents", deb_s]);
    assert!(ok);
    for path in [
        "./usr/bin/switchyard",
        "./etc/switchyard/switchyard.toml",
        "/systemd/system/switchyard-controller.service",
        "/systemd/system/switchyard-agent.service",
    ] {
        assert!(contents.contains(path), "{path} in the package: {contents}");
    }
    let control = out.path().join("control");
    let (ok, _, err) = sh(&["dpkg-deb", "-e", deb_s, control.to_str().unwrap()]);
    assert!(ok, "{err}");
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(
        postinst.contains("useradd --system"),
        "the dedicated user: {postinst}"
    );
    assert!(
        postinst.contains("deb-systemd-helper") && postinst.contains("switchyard-agent.service"),
        "the units are enabled: {postinst}"
    );
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert!(
        conffiles.contains("/etc/switchyard/switchyard.toml"),
        "{conffiles}"
    );
    let x = out.path().join("x");
    let (ok, _, err) = sh(&["dpkg-deb", "-x", deb_s, x.to_str().unwrap()]);
    assert!(ok, "{err}");
    let (ok, version, err) = sh(&[x.join("usr/bin/switchyard").to_str().unwrap(), "--version"]);
    assert!(ok && version.starts_with("switchyard "), "{version}{err}");
    let conf = std::fs::read_to_string(x.join("etc/switchyard/switchyard.toml")).unwrap();
    assert_eq!(
        conf,
        std::fs::read_to_string(repo().join("deploy/switchyard.toml")).unwrap(),
        "the example config is deploy/switchyard.toml"
    );

    let root = if nix_root() {
        Ok(())
    } else {
        Err("dpkg -i needs root".to_string())
    };
    if !switchyard_e2e::precondition("deploy::dpkg_install", root) {
        return;
    }
    // Install into this machine, check, purge. One at a time (dpkg has one lock).
    let had_user = sh(&["getent", "passwd", "switchyard"]).0;
    let had_cache = Path::new("/var/cache/switchyard").exists();
    let (ok, out_i, err) = sh(&[
        "flock",
        "/tmp/switchyard-dpkg-test.lock",
        "dpkg",
        "-i",
        deb_s,
    ]);
    let installed = || {
        assert!(ok, "dpkg -i: {out_i}{err}");
        let (ok, status, _) = sh(&["dpkg-query", "-W", "-f=${Status}", "switchyard"]);
        assert!(ok && status == "install ok installed", "{status}");
        let (ok, v, _) = sh(&["/usr/bin/switchyard", "--version"]);
        assert!(ok && v.starts_with("switchyard "), "{v}");
        assert!(
            sh(&["getent", "passwd", "switchyard"]).0,
            "the service user exists"
        );
        let units = sh(&["dpkg", "-L", "switchyard"]).1;
        assert!(units.contains("switchyard-agent.service"), "{units}");
        assert!(Path::new("/etc/switchyard/switchyard.toml").is_file());
    };
    let result = std::panic::catch_unwind(installed);
    let (purged, out_p, err_p) = sh(&[
        "flock",
        "/tmp/switchyard-dpkg-test.lock",
        "dpkg",
        "--purge",
        "switchyard",
    ]);
    if !had_user {
        let _ = sh(&["userdel", "switchyard"]);
    }
    if !had_cache {
        let _ = std::fs::remove_dir("/var/cache/switchyard");
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(purged, "dpkg --purge: {out_p}{err_p}");
    assert!(!Path::new("/usr/bin/switchyard").exists(), "removed");
    assert!(
        !Path::new("/etc/switchyard/switchyard.toml").exists(),
        "conffile purged"
    );
}

fn nix_root() -> bool {
    sh(&["id", "-u"]).1.trim() == "0"
}
