//! Which devices a `llama-server` build can use (its `--list-devices`), and the arguments and
//! environment that keep one engine process on the device it was placed on.

use std::path::Path;
use std::time::Duration;

use switchyard_proto::v1::DeviceKind;

/// The GPU backends a `llama-server` build offers, counted from `--list-devices`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BuildDevices {
    /// CUDA devices (`CUDA0: NVIDIA …`).
    pub cuda: usize,
    /// Vulkan devices.
    pub vulkan: usize,
    /// SYCL devices.
    pub sycl: usize,
}

impl BuildDevices {
    /// Counts the devices of `llama-server --list-devices` output ("Available devices:", then
    /// one `  NAME: description` line per device, or `  (none)` for a CPU-only build).
    pub fn parse(out: &str) -> Self {
        let mut b = BuildDevices::default();
        for line in out.lines().map(str::trim) {
            let Some((name, _)) = line.split_once(':') else {
                continue;
            };
            let family = name.trim_end_matches(|c: char| c.is_ascii_digit());
            if family.len() == name.len() {
                continue;
            }
            match family {
                "CUDA" => b.cuda += 1,
                "Vulkan" => b.vulkan += 1,
                "SYCL" => b.sycl += 1,
                _ => {}
            }
        }
        b
    }

    /// Runs `binary --list-devices` (10 s at most); a build that does not answer offers no
    /// GPU.
    pub fn probe(binary: &Path) -> Self {
        let mut child = match std::process::Command::new(binary)
            .arg("--list-devices")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(_) => return BuildDevices::default(),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                let out = child.wait_with_output().ok();
                return out.map_or_else(BuildDevices::default, |o| {
                    let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
                    text.push_str(&String::from_utf8_lossy(&o.stderr));
                    BuildDevices::parse(&text)
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        BuildDevices::default()
    }

    /// What this build is, by the GPU backends it has: "cpu build", "CUDA build",
    /// "CUDA+Vulkan build", ….
    pub fn name(&self) -> String {
        let gpus: Vec<&str> = [
            ("CUDA", self.cuda),
            ("Vulkan", self.vulkan),
            ("SYCL", self.sycl),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(family, _)| family)
        .collect();
        if gpus.is_empty() {
            "cpu build".into()
        } else {
            format!("{} build", gpus.join("+"))
        }
    }

    /// Whether this build can serve a model on a device of `kind`, or why not.
    pub fn usable_on(&self, kind: DeviceKind) -> Result<(), String> {
        match kind {
            DeviceKind::Cpu => Ok(()),
            DeviceKind::NvidiaGpu if self.cuda > 0 => Ok(()),
            DeviceKind::NvidiaGpu => Err(
                "llama-server has no CUDA backend: build it with -DGGML_CUDA=ON (README: engines) and set [engines.llama_cpp] server".into(),
            ),
            DeviceKind::IntelGpu if self.vulkan + self.sycl > 0 => Err(
                "placing llama-server on one Intel GPU is not supported yet (its Vulkan/SYCL device order is not matched to discovery's)".into(),
            ),
            DeviceKind::IntelGpu => Err(
                "llama-server has no Vulkan or SYCL backend: build it with -DGGML_VULKAN=ON or -DGGML_SYCL=ON".into(),
            ),
            DeviceKind::IntelNpu => Err("llama.cpp does not run on an Intel NPU".into()),
            DeviceKind::Ncs2 => Err("llama.cpp does not run on an NCS2 stick".into()),
            other => Err(format!("llama.cpp does not run on a {other:?} device")),
        }
    }
}

/// The arguments and environment that keep an engine on one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pin {
    /// Extra `llama-server` arguments.
    pub args: Vec<String>,
    /// Environment variables to set.
    pub env: Vec<(String, String)>,
}

/// How to pin an engine to `device_id` of `kind`: on the CPU no offload at all (a GPU build
/// would otherwise offload by default) and no GPU visible; on an NVIDIA GPU only that GPU,
/// named by UUID in the PCI bus order CUDA uses, every layer offloaded.
pub fn pin(kind: DeviceKind, device_id: &str) -> Pin {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match kind {
        DeviceKind::NvidiaGpu => Pin {
            args: s(&["--n-gpu-layers", "999"]),
            env: vec![
                ("CUDA_DEVICE_ORDER".into(), "PCI_BUS_ID".into()),
                ("CUDA_VISIBLE_DEVICES".into(), device_id.into()),
            ],
        },
        _ => Pin {
            args: s(&["--device", "none", "--n-gpu-layers", "0"]),
            env: vec![("CUDA_VISIBLE_DEVICES".into(), String::new())],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_devices_output_counts_each_gpu_backend() {
        assert_eq!(
            BuildDevices::parse("Available devices:\n  (none)\n"),
            BuildDevices::default()
        );
        // As a CUDA build prints it (two RTX cards), load messages around it ignored.
        let cuda = "ggml_cuda_init: found 2 CUDA devices:\n  Device 0: NVIDIA GeForce RTX 3090, compute capability 8.6\nAvailable devices:\n  CUDA0: NVIDIA GeForce RTX 3090 (24135 MiB, 23811 MiB free)\n  CUDA1: NVIDIA GeForce RTX 3060 (12044 MiB, 11900 MiB free)\n";
        let b = BuildDevices::parse(cuda);
        assert_eq!((b.cuda, b.vulkan, b.sycl), (2, 0, 0));
        let vk = "Available devices:\n  Vulkan0: Intel(R) Arc(tm) A770 Graphics (DG2) (16032 MiB, 16032 MiB free)\n";
        assert_eq!(BuildDevices::parse(vk).vulkan, 1);
        // The name explain shows.
        assert_eq!(BuildDevices::default().name(), "cpu build");
        assert_eq!(b.name(), "CUDA build");
        let both = format!("{cuda}  Vulkan0: Intel(R) Arc(tm) A770 Graphics\n");
        assert_eq!(BuildDevices::parse(&both).name(), "CUDA+Vulkan build");
    }

    #[test]
    fn a_build_is_usable_only_on_devices_it_has_a_backend_for() {
        let cpu_only = BuildDevices::default();
        assert!(cpu_only.usable_on(DeviceKind::Cpu).is_ok());
        let why = cpu_only.usable_on(DeviceKind::NvidiaGpu).unwrap_err();
        assert!(why.starts_with("llama-server has no CUDA backend"), "{why}");
        let cuda = BuildDevices {
            cuda: 1,
            ..Default::default()
        };
        assert!(cuda.usable_on(DeviceKind::NvidiaGpu).is_ok());
        assert!(cuda.usable_on(DeviceKind::IntelNpu).is_err());
        assert!(cuda.usable_on(DeviceKind::IntelGpu).is_err());
    }

    #[test]
    fn an_engine_sees_only_the_gpu_it_was_placed_on_and_none_on_the_cpu() {
        let gpu = pin(
            DeviceKind::NvidiaGpu,
            "GPU-8f6c1a2b-0000-1111-2222-333344445555",
        );
        assert!(gpu.env.contains(&(
            "CUDA_VISIBLE_DEVICES".into(),
            "GPU-8f6c1a2b-0000-1111-2222-333344445555".into()
        )));
        assert!(
            gpu.env
                .contains(&("CUDA_DEVICE_ORDER".into(), "PCI_BUS_ID".into()))
        );
        assert_eq!(gpu.args, ["--n-gpu-layers", "999"]);
        let cpu = pin(DeviceKind::Cpu, "cpu0");
        assert_eq!(cpu.args, ["--device", "none", "--n-gpu-layers", "0"]);
        assert!(
            cpu.env
                .contains(&("CUDA_VISIBLE_DEVICES".into(), String::new()))
        );
    }
}
