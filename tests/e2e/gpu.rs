//! Issue 30: a GPU computes what is placed on it, on a real Vulkan driver. Mesa's lavapipe is
//! a real Vulkan 1.3 device (type CPU) on every machine of ours; with `[discovery]
//! software_gpu = true` it stands in for a GPU: discovery finds it through the Vulkan loader,
//! the agent pins llama-server to it by identity (`GGML_VK_VISIBLE_DEVICES`, checked against
//! the engine's own `--list-devices`), the controller places the generation on it before the
//! CPU, and the engine's load log shows every layer on `Vulkan0`. Generation on lavapipe is
//! slow (shaders run on the CPU): a few tokens only.
//!
//! Needs the engine tree with the Vulkan backend (scripts/build_llama_server.sh) and a Vulkan
//! driver (Debian mesa-vulkan-drivers): skipped without them, failed under `CI=true`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use switchyard_e2e::{
    Proc, UP_ON_LOOPBACK, cache_dir, post, precondition, run_command, wait_for, wait_node_ready,
};

const MODEL: &str = "smollm2-135m-gguf";

/// The engine tree's directory when it has the Vulkan backend.
fn vulkan_engine() -> Result<PathBuf, String> {
    let engines = cache_dir().join("engines");
    std::fs::read_dir(&engines)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("libggml-vulkan.so").is_file() && p.join("llama-server").is_file())
        .ok_or_else(|| {
            format!(
                "no llama.cpp engine tree with libggml-vulkan.so under {}: run scripts/build_llama_server.sh",
                engines.display()
            )
        })
}

/// `switchyard devices -o json` with the software GPU admitted: the lavapipe device.
fn software_gpu() -> Result<Value, String> {
    let mut cmd = std::process::Command::new(switchyard_e2e::binary());
    cmd.env("SWITCHYARD_SOFTWARE_GPU", "1");
    let (status, out, err) =
        run_command(cmd, &["devices", "-o", "json"]).map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("switchyard devices failed: {err}"));
    }
    let v: Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
    let devices = v.as_array().cloned().unwrap_or_default();
    devices
        .into_iter()
        .find(|d| d["kind"] == "vulkan_gpu" && d["attributes"]["software"] == "true")
        .ok_or_else(|| {
            format!("discovery found no software Vulkan device (apt-get install mesa-vulkan-drivers; `vulkaninfo --summary` should list llvmpipe): {out}")
        })
}

fn config(dir: &tempfile::TempDir) -> String {
    // The shipped registry (its routes name its models) plus the GGUF, with one slot and a
    // short context: lavapipe is slow, and one stream is all this test needs.
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/registry.toml");
    let registry = dir.path().join("registry.toml");
    std::fs::write(
        &registry,
        format!(
            "{}\n[[model]]\nname = \"{MODEL}\"\nstage = \"generate\"\nmax_input_tokens = 256\ncontext_tokens = 512\n\
             engine = {{ kind = \"llama_cpp\", gguf = \"smollm2-135m-gguf/SmolLM2-135M-Instruct.Q4_1.gguf\", parallel = 1 }}\n",
            std::fs::read_to_string(shipped).unwrap()
        ),
    )
    .unwrap();
    let cfg = dir.path().join("sy.toml");
    std::fs::write(
        &cfg,
        format!("[models]\nregistry = {registry:?}\n\n[discovery]\nsoftware_gpu = true\n"),
    )
    .unwrap();
    cfg.to_string_lossy().into_owned()
}

/// The lavapipe device (its discovery JSON), or `None` when a precondition is missing (a skip,
/// or a failure under `CI=true`).
fn lavapipe_or_skip(test: &str) -> Option<Value> {
    if !precondition(test, vulkan_engine().map(|_| ())) {
        return None;
    }
    match software_gpu() {
        Ok(d) => Some(d),
        Err(why) => {
            precondition(test, Err(why));
            None
        }
    }
}

/// `switchyard up` (node "gpu") with the lavapipe device admitted and `discovery_extra` added
/// to its `[discovery]` section; with its gRPC and HTTP addresses, once the node is ready.
fn up_with_lavapipe(
    name: &str,
    discovery_extra: &str,
) -> (Proc, String, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(discovery_extra);
    std::fs::write(&cfg, text).unwrap();
    let mut args = vec!["--config", cfg.as_str()];
    args.extend(UP_ON_LOOPBACK);
    args.extend(["--node-name", "gpu"]);
    let up = Proc::start(name, &args).unwrap_or_else(|e| panic!("up: {e}"));
    let grpc = up.field("grpc").unwrap();
    let http = up.field("http").unwrap();
    wait_node_ready(&up, &grpc, "gpu");
    (up, grpc, http, dir)
}

#[test]
fn a_generation_placed_on_the_lavapipe_vulkan_device_runs_there_through_llama_server_vulkan() {
    let Some(lavapipe) = lavapipe_or_skip("gpu::lavapipe_generation") else {
        return;
    };
    let device_id = lavapipe["id"].as_str().unwrap().to_string();
    assert!(
        lavapipe["attributes"]["vulkan_index"].is_string(),
        "discovery gives the Vulkan index: {lavapipe}"
    );
    let (up, grpc, http, _dir) = up_with_lavapipe("gpu", "");

    // The agent checked the pin against the engine: llama_cpp usable on the Vulkan device.
    let (status, out, err) = switchyard_e2e::run_cli(&[
        "devices",
        "--controller",
        &format!("http://{grpc}"),
        "-o",
        "json",
    ])
    .unwrap();
    assert!(status.success(), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let dev = v
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == device_id.as_str())
        .unwrap_or_else(|| panic!("{device_id} not in the node's devices: {out}"))
        .clone();
    let llama = dev["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["backend"] == "llama_cpp")
        .unwrap_or_else(|| panic!("no llama_cpp backend on {device_id}: {dev}"));
    assert_eq!(llama["usable"], true, "{llama}\n{}", up.stderr());
    let build = llama["engine_build"].as_str().unwrap();
    assert!(
        build.contains("Vulkan")
            && build.contains(" build")
            && build.ends_with(", on vulkan:Vulkan0"),
        "{build}"
    );
    assert!(
        build.contains("shaderc") || build.contains("VULKAN_SDK"),
        "glslc named: {build}"
    );

    // A real generation, placed on the Vulkan device before the CPU, a few tokens.
    let body = serde_json::json!({
        "model": MODEL, "max_tokens": 3, "temperature": 0,
        "messages": [{"role": "user", "content": "Capital of France?"}],
    });
    let (code, raw) = post(&http, "/v1/chat/completions", &body).unwrap();
    assert_eq!(code, 200, "{raw}\n{}", up.stderr());
    let v: Value = serde_json::from_str(&raw).unwrap();
    let text = v["choices"][0]["message"]["content"].as_str().unwrap_or("");
    assert!(!text.trim().is_empty(), "no text: {raw}");
    assert_eq!(v["usage"]["completion_tokens"], 3, "{raw}");
    let trace = &v["switchyard"]["trace"][0];
    assert_eq!(trace["device"], device_id.as_str(), "{raw}");
    assert_eq!(trace["backend"], "llama_cpp", "{raw}");
    assert_eq!(trace["engine_device"], "vulkan:Vulkan0", "{raw}");

    // llama-server's own load log put every layer on Vulkan0 (the agent read and checked it).
    let (line, _) = wait_for(Duration::from_secs(5), || {
        strip_ansi(&up.stderr())
            .lines()
            .find(|l| l.contains("llama-server computes on its pinned device"))
            .map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no offload check in the log:\n{}", up.stderr()));
    assert!(line.contains("device=Vulkan0"), "{line}");
    let layers = line
        .split("layers=")
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_default();
    let (n, m) = layers.split_once('/').unwrap_or_default();
    assert!(!n.is_empty() && n == m, "every layer on Vulkan0: {line}");
}

/// The log without its colour escapes.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The engine tree's directory when it has llama.cpp's OpenVINO backend.
fn openvino_engine() -> Result<PathBuf, String> {
    let dir = vulkan_engine().map_err(|_| {
        format!(
            "no llama.cpp engine tree under {}",
            cache_dir().join("engines").display()
        )
    })?;
    dir.join("libggml-openvino.so")
        .is_file()
        .then_some(dir.clone())
        .ok_or_else(|| {
            format!(
                "no libggml-openvino.so in {}: run scripts/build_llama_server.sh --with openvino",
                dir.display()
            )
        })
}

#[test]
fn a_generation_placed_on_an_npu_runs_llama_cpp_openvino_on_its_cpu_stand_in_recorded_fixture() {
    let test = "gpu::npu_generation_openvino_cpu_stand_in";
    if !precondition(test, openvino_engine().map(|_| ())) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    // Generation on the NPU only, so the placement has to pick it.
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text = text.replace("[discovery]\nsoftware_gpu = true\n", "");
    text.push_str("\n[scheduler.policy.stage_preferences]\ngenerate = [\"intel_npu\"]\n");
    std::fs::write(&cfg, text).unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/discovery/arc-npu-ncs2"
    );
    let mut args = vec!["--config", cfg.as_str()];
    args.extend(UP_ON_LOOPBACK);
    args.extend(["--node-name", "npu", "--fixture", fixture]);
    // The recorded Meteor Lake host: its NPU is a fixture device; llama.cpp's OpenVINO
    // backend runs what is placed on it on OpenVINO's CPU device (the same code path).
    let up = Proc::start_with_env(
        "npu",
        &args,
        &[("SWITCHYARD_OPENVINO_ENGINE_DEVICE", "CPU")],
    )
    .unwrap_or_else(|e| panic!("up: {e}"));
    let grpc = up.field("grpc").unwrap();
    let http = up.field("http").unwrap();
    wait_node_ready(&up, &grpc, "npu");
    let body = serde_json::json!({
        "model": MODEL, "max_tokens": 4, "temperature": 0,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
    });
    let (code, raw) = post(&http, "/v1/chat/completions", &body).unwrap();
    assert_eq!(code, 200, "{raw}\n{}", up.stderr());
    let v: Value = serde_json::from_str(&raw).unwrap();
    let answer = v["choices"][0]["message"]["content"].as_str().unwrap_or("");
    assert!(!answer.trim().is_empty(), "{raw}");
    let trace = &v["switchyard"]["trace"][0];
    assert_eq!(
        trace["device"], "pci-0000:00:0b.0",
        "placed on the NPU: {raw}"
    );
    assert_eq!(trace["backend"], "llama_cpp", "{raw}");
    assert_eq!(trace["engine_device"], "openvino:OPENVINO0@CPU", "{raw}");
    // One slot on an NPU, whatever the registry asks (it asks for 1 here too, so check the
    // argument itself is what the pin set).
    let engines = switchyard_e2e::engines_of(up.child.id());
    assert_eq!(engines.len(), 1, "{engines:?}");
    let argv = std::fs::read(format!("/proc/{}/cmdline", engines[0].0)).unwrap();
    let argv: Vec<String> = argv
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let at = argv.iter().position(|a| a == "--parallel").unwrap();
    assert_eq!(argv[at + 1], "1", "{argv:?}");
    assert!(
        argv.windows(2)
            .any(|w| w[0] == "--device" && w[1] == "OPENVINO0"),
        "{argv:?}"
    );
    let log = strip_ansi(&up.stderr());
    assert!(
        log.lines()
            .any(|l| l.contains("llama-server computes on its pinned device")
                && l.contains("device=OPENVINO0")),
        "{log}"
    );
}

/// `llama-fit-params` on the pinned lavapipe device for the GGUF at 2048 tokens, one slot.
fn fit_params(
    fit: &std::path::Path,
    gguf: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    std::process::Command::new(fit)
        .env("GGML_VK_VISIBLE_DEVICES", "0")
        .args([
            "-m",
            &gguf.to_string_lossy(),
            "-c",
            "2048",
            "-np",
            "1",
            "--device",
            "Vulkan0",
        ])
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", fit.display()))
}

/// The device memory llama.cpp sees on the pinned lavapipe device, MiB (from its fit log).
fn lavapipe_free_mib(fit: &std::path::Path, gguf: &std::path::Path) -> u64 {
    let out = fit_params(fit, gguf, &["-fitt", "0", "-lv", "4"]);
    let log = String::from_utf8_lossy(&out.stderr);
    log.lines()
        .find_map(|l| {
            let rest = l.split(" MiB of device memory vs. ").nth(1)?;
            rest.split(' ').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("llama-fit-params printed no free device memory: {log}"))
}

/// Issue 31: the offload plan Switchyard makes from the GGUF header alone agrees with
/// llama.cpp's own fit (`llama-fit-params` of the same engine tree, same model, context and
/// slots, same memory target on the same lavapipe device) within one layer, for budgets that
/// hold a part of the model.
#[test]
fn the_offload_plan_from_the_header_agrees_with_llama_cpps_fit_within_one_layer() {
    let test = "the_offload_plan_from_the_header_agrees_with_llama_cpps_fit_within_one_layer";
    let Ok(engine) = vulkan_engine() else {
        precondition(test, vulkan_engine().map(|_| ()));
        return;
    };
    let fit = engine.join("llama-fit-params");
    let gguf = switchyard_backend_core::paths::models_dir()
        .join("smollm2-135m-gguf/SmolLM2-135M-Instruct.Q4_1.gguf");
    let info = switchyard_backend_core::gguf::GgufInfo::read(&gguf).unwrap();
    let free = lavapipe_free_mib(&fit, &gguf);
    let mut seen = Vec::new();
    for budget in [140u64, 160, 180, 200, 230] {
        let out = fit_params(&fit, &gguf, &["-fitt", &(free - budget).to_string()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let theirs: i64 = stdout
            .split("-ngl ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no -ngl in llama-fit-params' answer: {stdout}"));
        let ours = info.plan_offload(2048, 1, budget << 20);
        assert!(
            !ours.whole() && ours.gpu_layers > 0,
            "budget {budget} MiB holds a part"
        );
        seen.push((budget, i64::from(ours.gpu_layers), theirs));
    }
    eprintln!("(budget MiB, Switchyard's -ngl, llama-fit-params' -ngl): {seen:?}");
    assert!(
        seen.iter()
            .all(|(_, ours, theirs)| (ours - theirs).abs() <= 1),
        "(budget MiB, ours, llama.cpp's): {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0].1 < w[1].1),
        "more memory, more layers: {seen:?}"
    );
}

/// Issue 31: a model bigger than the device runs partly on it. The lavapipe device is capped
/// at 200 MiB (`[discovery] memory_limit_mib`), less than the model needs whole (weights, KV
/// cache, compute buffer: about 250 MiB): the controller still places it there (the scheduler
/// admits a partial offload for engine models and scores the share), the agent starts
/// llama-server with the `-ngl` its offload plan gives for the device's free memory, the
/// engine's own load log shows that many layers on Vulkan0 (the rest on the CPU), and the
/// answer comes back.
#[test]
fn a_model_bigger_than_the_capped_lavapipe_device_runs_partly_there_the_rest_on_the_cpu() {
    let Some(lavapipe) = lavapipe_or_skip("gpu::lavapipe_partial_offload") else {
        return;
    };
    let device_id = lavapipe["id"].as_str().unwrap().to_string();
    let cap = format!("memory_limit_mib = {{ {device_id:?} = 200 }}\n");
    let (up, _grpc, http, _dir) = up_with_lavapipe("gpu-partial", &cap);

    let body = serde_json::json!({
        "model": MODEL, "max_tokens": 3, "temperature": 0,
        "messages": [{"role": "user", "content": "Capital of France?"}],
    });
    let (code, raw) = post(&http, "/v1/chat/completions", &body).unwrap();
    assert_eq!(code, 200, "{raw}\n{}", up.stderr());
    let v: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 3, "{raw}");
    let trace = &v["switchyard"]["trace"][0];
    assert_eq!(
        trace["device"],
        device_id.as_str(),
        "placed on the capped GPU: {raw}"
    );
    assert_eq!(trace["engine_device"], "vulkan:Vulkan0", "{raw}");

    let log = strip_ansi(&up.stderr());
    let planned = log
        .lines()
        .find(|l| l.contains("partial offload: the rest of the model runs on the host's CPU"))
        .unwrap_or_else(|| panic!("no partial-offload plan in the log:\n{log}"));
    let layers = |line: &str| -> (u32, u32) {
        let l = line
            .split("layers=")
            .nth(1)
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_default();
        let (n, m) = l.split_once('/').unwrap_or_default();
        (n.parse().unwrap_or(0), m.parse().unwrap_or(0))
    };
    let (n, m) = layers(planned);
    assert!(
        n > 1 && n < m && m == 31,
        "part of the 31 layers: {planned}"
    );
    // The engine did what was planned: its load log, read by the agent.
    let (checked, _) = wait_for(Duration::from_secs(5), || {
        strip_ansi(&up.stderr())
            .lines()
            .find(|l| l.contains("llama-server computes on its pinned device"))
            .map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no offload check in the log:\n{}", up.stderr()));
    assert_eq!(layers(&checked), (n, m), "{checked}");
    // Where it is loaded says so: the layout beside the device.
    let layout = format!("{n} layers (from the output back) on Vulkan0, the rest on the host CPU");
    wait_for(Duration::from_secs(10), || {
        let (_, models) = switchyard_e2e::get(&http, "/v1/models", None).ok()?;
        models.contains(&layout).then_some(())
    })
    .unwrap_or_else(|| panic!("/v1/models never showed {layout:?}"));
    let argv_ngl = format!("--n-gpu-layers {n}");
    assert!(
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(&argv_ngl)
            })
        }),
        "a llama-server with {argv_ngl}"
    );
}
