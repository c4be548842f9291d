//! Which backends a `llama-server` build has, and the arguments and environment that keep one
//! engine process on the one device it was placed on, chosen by identity (PCI bus id / UUID
//! → the backend's visible-devices variable → the engine's own device name), never by
//! position: CUDA, NVML and Vulkan number devices differently.
//!
//! | device | backend | identity → engine device |
//! |---|---|---|
//! | CPU | ggml CPU | `--device none -ngl 0`, no GPU visible |
//! | NVIDIA GPU | CUDA when built, else Vulkan | `CUDA_VISIBLE_DEVICES=<NVML UUID>` → `CUDA0`; or as Vulkan |
//! | Intel GPU, Vulkan GPU | Vulkan | `GGML_VK_VISIBLE_DEVICES=<index of the PCI bus id in the loader's order>` → `Vulkan0` |
//! | Intel NPU | OpenVINO (when built) | `GGML_OPENVINO_DEVICE=NPU` → `OPENVINO0`, one slot, Q4_0 weights |
//!
//! [`verify`] runs `llama-server --list-devices` under the pin and checks that exactly the
//! expected device shows, with the name discovery found.

use std::path::Path;
use std::time::Duration;

use switchyard_proto::attributes::{SOFTWARE, UUID, VULKAN_INDEX, VULKAN_NAME};
use switchyard_proto::v1::{Device, DeviceKind};

/// The ggml backend an engine computes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// ggml's CPU backend.
    Cpu,
    /// ggml-cuda.
    Cuda,
    /// ggml-vulkan.
    Vulkan,
    /// ggml-openvino (an OpenVINO device: the NPU, or the CPU standing in for it in tests).
    OpenVino,
}

impl Family {
    /// The name in traces and `devices` (`cpu`, `cuda`, `vulkan`).
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Cpu => "cpu",
            Family::Cuda => "cuda",
            Family::Vulkan => "vulkan",
            Family::OpenVino => "openvino",
        }
    }

    /// The prefix of this backend's devices in `--list-devices` (`CUDA0`, `Vulkan0`).
    fn prefix(self) -> &'static str {
        match self {
            Family::Cpu => "CPU",
            Family::Cuda => "CUDA",
            Family::Vulkan => "Vulkan",
            Family::OpenVino => "OPENVINO",
        }
    }
}

/// The environment variable that makes the NPU's engine run on another OpenVINO device
/// (`CPU`): the same code path where no NPU exists (tests), said so in the trace's device.
pub const OPENVINO_DEVICE_OVERRIDE: &str = "SWITCHYARD_OPENVINO_ENGINE_DEVICE";

/// The GPU backends a `llama-server` build offers: the backend libraries beside a
/// `GGML_BACKEND_DL` build (`libggml-vulkan.so`, …), else what `--list-devices` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildDevices {
    /// Has the CUDA backend.
    pub cuda: bool,
    /// Has the Vulkan backend.
    pub vulkan: bool,
    /// Has the SYCL backend.
    pub sycl: bool,
    /// Has the OpenVINO backend.
    pub openvino: bool,
    /// Build notes (`vulkan: shaderc v2023.2 …`) from the `BUILD` file the build script writes.
    pub notes: Vec<String>,
}

/// One device line of `--list-devices`: `Vulkan0` and its description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDevice {
    /// The engine's device name (`Vulkan0`).
    pub name: String,
    /// What it says of it (`llvmpipe (LLVM 15.0.6, 256 bits) (2048 MiB, 2048 MiB free)`).
    pub description: String,
}

/// The device lines of `llama-server --list-devices` output ("Available devices:", then one
/// `  NAME: description` line per device, or `  (none)`).
pub fn listed_devices(out: &str) -> Vec<ListedDevice> {
    let Some((_, list)) = out.split_once("Available devices:") else {
        return Vec::new();
    };
    list.lines()
        .map(str::trim)
        .filter_map(|line| {
            let (name, description) = line.split_once(':')?;
            let family = name.trim_end_matches(|c: char| c.is_ascii_digit());
            (family.len() < name.len() && family.chars().all(|c| c.is_ascii_alphabetic())).then(
                || ListedDevice {
                    name: name.to_string(),
                    description: description.trim().to_string(),
                },
            )
        })
        .collect()
}

impl BuildDevices {
    /// The backends of `--list-devices` output (a build without loadable backends).
    pub fn parse(out: &str) -> Self {
        let mut b = BuildDevices::default();
        for d in listed_devices(out) {
            match d.name.trim_end_matches(|c: char| c.is_ascii_digit()) {
                "CUDA" => b.cuda = true,
                "Vulkan" => b.vulkan = true,
                "SYCL" => b.sycl = true,
                "OPENVINO" => b.openvino = true,
                _ => {}
            }
        }
        b
    }

    /// The backends of the build at `binary`: its loadable backend libraries when it has any
    /// (every backend is there even when no device of it is), else its `--list-devices`.
    pub fn probe(binary: &Path) -> Self {
        let dir = binary.parent().unwrap_or(Path::new("."));
        let has = |lib: &str| dir.join(lib).is_file();
        if has("libggml-cpu.so") {
            return BuildDevices {
                cuda: has("libggml-cuda.so"),
                vulkan: has("libggml-vulkan.so"),
                sycl: has("libggml-sycl.so"),
                openvino: has("libggml-openvino.so"),
                notes: std::fs::read_to_string(dir.join("BUILD"))
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.starts_with("vulkan:") || l.starts_with("cuda:"))
                    .map(str::to_string)
                    .collect(),
            };
        }
        list_devices(binary, &[])
            .map(|out| BuildDevices::parse(&out))
            .unwrap_or_default()
    }

    /// What this build is, by the GPU backends it has: "cpu build", "CUDA+Vulkan build", …,
    /// with the Vulkan shader compiler or CUDA version when the build recorded them.
    pub fn name(&self) -> String {
        let gpus: Vec<&str> = [
            ("CUDA", self.cuda),
            ("Vulkan", self.vulkan),
            ("SYCL", self.sycl),
            ("OpenVINO", self.openvino),
        ]
        .into_iter()
        .filter(|(_, has)| *has)
        .map(|(family, _)| family)
        .collect();
        let mut name = if gpus.is_empty() {
            "cpu build".to_string()
        } else {
            format!("{} build", gpus.join("+"))
        };
        if !self.notes.is_empty() {
            name.push_str(&format!(" [{}]", self.notes.join("; ")));
        }
        name
    }
}

/// The arguments and environment that keep an engine on one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The backend it computes with.
    pub family: Family,
    /// Extra `llama-server` arguments.
    pub args: Vec<String>,
    /// Environment variables to set.
    pub env: Vec<(String, String)>,
    /// Most parallel slots the device serves (an NPU: one).
    pub max_parallel: Option<u32>,
    /// GGUF quantisations the device runs (an NPU: Q4_0); empty: any.
    pub quantizations: Vec<String>,
    /// `-ngl` when only part of the model fits the device (the rest on the host's CPU);
    /// `None`: every layer.
    pub gpu_layers: Option<u32>,
}

impl Pin {
    /// The engine's name of the device (`Vulkan0`, `CUDA0`), none on the CPU.
    pub fn engine_device(&self) -> Option<String> {
        (self.family != Family::Cpu).then(|| format!("{}0", self.family.prefix()))
    }

    /// `vulkan:Vulkan0`, `cuda:CUDA0`, `cpu`: what the trace says.
    pub fn describe(&self) -> String {
        let on = self
            .env
            .iter()
            .find(|(k, _)| k == "GGML_OPENVINO_DEVICE")
            .map(|(_, d)| format!("@{d}"))
            .unwrap_or_default();
        match self.engine_device() {
            Some(d) => format!("{}:{d}{on}", self.family.as_str()),
            None => self.family.as_str().into(),
        }
    }

    /// The slots to run: the model's, at most the device's.
    pub fn parallel(&self, wanted: u32) -> u32 {
        self.max_parallel.map_or(wanted, |m| wanted.min(m)).max(1)
    }

    fn gpu(family: Family, env: Vec<(String, String)>) -> Pin {
        let device = format!("{}0", family.prefix());
        Pin {
            family,
            args: ["--device", &device, "--n-gpu-layers", "999"]
                .map(String::from)
                .to_vec(),
            env,
            max_parallel: None,
            quantizations: Vec::new(),
            gpu_layers: None,
        }
    }

    /// This pin with only `layers` of the model on the device (llama.cpp's `-ngl`, counted
    /// from the output layer back), the rest on the host.
    pub fn with_gpu_layers(mut self, layers: u32) -> Pin {
        if let Some(i) = self.args.iter().position(|a| a == "--n-gpu-layers") {
            self.args[i + 1] = layers.to_string();
        }
        self.gpu_layers = Some(layers);
        self
    }

    /// Whether this device runs a GGUF of `quantization` (`Q4_0`), or why not.
    pub fn runs(&self, quantization: &str) -> Result<(), String> {
        if self.quantizations.is_empty()
            || self
                .quantizations
                .iter()
                .any(|q| q.eq_ignore_ascii_case(quantization))
        {
            return Ok(());
        }
        Err(format!(
            "this device runs {} GGUFs only, the model is {}: requantize it (llama-quantize MODEL OUT Q4_0)",
            self.quantizations.join("/"),
            if quantization.is_empty() {
                "of unknown quantisation"
            } else {
                quantization
            }
        ))
    }
}

fn pair(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

/// How to pin an engine of `build` to `device`, or why it cannot run there.
pub fn plan(build: &BuildDevices, device: &Device) -> Result<Pin, String> {
    let attr = |k: &str| device.attributes.get(k).map(String::as_str);
    let vulkan = || -> Result<Pin, String> {
        if !build.vulkan {
            return Err(
                "llama-server has no Vulkan backend: run scripts/build_llama_server.sh (installs glslc, libvulkan-dev, spirv-headers) or set [engines.llama_cpp] server to a Vulkan build".into(),
            );
        }
        let Some(index) = attr(VULKAN_INDEX) else {
            return Err(format!(
                "no Vulkan device matches this GPU's PCI bus id {}: install its Vulkan driver (Intel/AMD: mesa-vulkan-drivers; NVIDIA: the driver's Vulkan ICD) and check `vulkaninfo --summary`",
                attr("pci_bus_id").unwrap_or("(unknown)")
            ));
        };
        let mut env = vec![
            pair("GGML_VK_VISIBLE_DEVICES", index),
            pair("CUDA_VISIBLE_DEVICES", ""),
        ];
        if attr(SOFTWARE) == Some("true") {
            // What llama.cpp's own CI sets for lavapipe.
            env.push(pair("GGML_VK_DISABLE_F16", "1"));
            env.push(pair("GGML_VK_DISABLE_COOPMAT", "1"));
        }
        Ok(Pin::gpu(Family::Vulkan, env))
    };
    match device.kind() {
        DeviceKind::Cpu => Ok(Pin {
            family: Family::Cpu,
            args: ["--device", "none", "--n-gpu-layers", "0"]
                .map(String::from)
                .to_vec(),
            env: vec![pair("CUDA_VISIBLE_DEVICES", "")],
            max_parallel: None,
            quantizations: Vec::new(),
            gpu_layers: None,
        }),
        DeviceKind::NvidiaGpu if build.cuda => {
            let uuid = attr(UUID).unwrap_or(&device.id);
            Ok(Pin::gpu(
                Family::Cuda,
                vec![
                    pair("CUDA_DEVICE_ORDER", "PCI_BUS_ID"),
                    pair("CUDA_VISIBLE_DEVICES", uuid),
                    // Keep Vulkan from initialising the same GPU a second time.
                    pair("GGML_VK_VISIBLE_DEVICES", ""),
                ],
            ))
        }
        DeviceKind::NvidiaGpu => vulkan().map_err(|why| {
            format!("llama-server has no CUDA backend (scripts/build_llama_server.sh --with cuda), and through Vulkan: {why}")
        }),
        DeviceKind::IntelGpu | DeviceKind::VulkanGpu => vulkan(),
        // A simulated NPU (a fixture inventory) executes on the CPU, like every simulated
        // device: OpenVINO's CPU device stands in.
        DeviceKind::IntelNpu if build.openvino => Ok(npu_pin(
            std::env::var(OPENVINO_DEVICE_OVERRIDE)
                .ok()
                .filter(|d| !d.is_empty())
                .or_else(|| device.simulated.then(|| "CPU".to_string())),
        )),
        DeviceKind::IntelNpu => Err(
            "llama-server has no OpenVINO backend: run scripts/build_llama_server.sh --with openvino".into(),
        ),
        DeviceKind::Ncs2 => Err("llama.cpp does not run on an NCS2 stick".into()),
        DeviceKind::Unspecified => Err("unknown device kind".into()),
    }
}

/// The NPU's pin: llama.cpp's OpenVINO backend on `NPU` (or on `stand_in`, an OpenVINO device
/// such as `CPU` that runs the same code where no NPU exists), one slot, Q4_0 weights on the
/// real NPU (its compiler's requirement).
fn npu_pin(stand_in: Option<String>) -> Pin {
    let device = stand_in.clone().unwrap_or_else(|| "NPU".into());
    let mut pin = Pin::gpu(
        Family::OpenVino,
        vec![
            pair("GGML_OPENVINO_DEVICE", &device),
            pair("CUDA_VISIBLE_DEVICES", ""),
            pair("GGML_VK_VISIBLE_DEVICES", ""),
        ],
    );
    pin.max_parallel = Some(1);
    if stand_in.is_none() {
        pin.quantizations = vec!["Q4_0".into()];
    }
    pin
}

/// Runs `binary --list-devices` with `env` (10 s at most): its output, stdout and stderr.
fn list_devices(binary: &Path, env: &[(String, String)]) -> Result<String, String> {
    let mut child = std::process::Command::new(binary)
        .arg("--list-devices")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {} --list-devices: {e}", binary.display()))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            let o = child
                .wait_with_output()
                .map_err(|e| format!("{} --list-devices: {e}", binary.display()))?;
            let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&o.stderr));
            return Ok(text);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    Err(format!(
        "{} --list-devices did not answer within 10 s (a hung GPU driver?)",
        binary.display()
    ))
}

/// Checks `pin` against the engine itself: under the pin's environment `--list-devices`
/// shows exactly one device of the pin's backend, named as the pin expects, and its
/// description carries the name discovery found (`expect`). The listed device on success.
pub fn check(out: &str, pin: &Pin, expect: &str) -> Result<ListedDevice, String> {
    let Some(want) = pin.engine_device() else {
        return Ok(ListedDevice {
            name: "CPU".into(),
            description: String::new(),
        });
    };
    let of_family: Vec<ListedDevice> = listed_devices(out)
        .into_iter()
        .filter(|d| d.name.trim_end_matches(|c: char| c.is_ascii_digit()) == pin.family.prefix())
        .collect();
    let [one] = of_family.as_slice() else {
        let seen: Vec<&str> = of_family.iter().map(|d| d.name.as_str()).collect();
        let last = out
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!(
            "llama-server shows {} {} device(s) under {:?} (want exactly {want}){}",
            of_family.len(),
            pin.family.as_str(),
            pin.env,
            if seen.is_empty() {
                format!(": the backend found no device ({})", last.trim())
            } else {
                format!(": {}", seen.join(", "))
            }
        ));
    };
    if one.name != want {
        return Err(format!(
            "llama-server names the device {} (want {want})",
            one.name
        ));
    }
    let norm = |s: &str| s.to_ascii_lowercase().replace(['(', ')'], "");
    let key = norm(expect.trim_start_matches("NVIDIA ").trim());
    if !key.is_empty() && !norm(&one.description).contains(&key) {
        return Err(format!(
            "llama-server's {want} is \"{}\", but discovery expected \"{expect}\": device identity mismatch, not placing on it",
            one.description
        ));
    }
    Ok(one.clone())
}

/// [`plan`] then [`check`] against the real binary: the pin of `device`, or why it is
/// unusable for generation.
pub fn pin_device(binary: &Path, build: &BuildDevices, device: &Device) -> Result<Pin, String> {
    let pin = plan(build, device)?;
    if pin.family == Family::Cpu {
        return Ok(pin);
    }
    let expect = match pin.family {
        Family::Vulkan => device.attributes.get(VULKAN_NAME).cloned(),
        // OPENVINO0 is the runtime ("OpenVINO Runtime"); GGML_OPENVINO_DEVICE picks the device.
        Family::OpenVino => None,
        _ => Some(device.model.clone()),
    }
    .unwrap_or_default();
    let out = list_devices(binary, &pin.env)?;
    check(&out, &pin, &expect)?;
    Ok(pin)
}

#[cfg(test)]
mod tests;
