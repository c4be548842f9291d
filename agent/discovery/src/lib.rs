//! Accelerator discovery: NVIDIA (NVML), Intel GPU/NPU (Level Zero + sysfs), NCS2 (USB), CPU,
//! with int8 TOPS from a vendor catalog, in one inventory of comparable units.
//!
//! ```no_run
//! use switchyard_discovery::{Discovery, DiscoveryConfig, render_table};
//! let mut d = Discovery::new(DiscoveryConfig::host());
//! let inv = d.scan();
//! println!("{}", render_table(&inv));
//! let live = d.telemetry(&inv);
//! # let _ = live;
//! ```
//!
//! Every sysfs/procfs/devfs path is resolved under [`DiscoveryConfig::root`], so a captured
//! fixture tree runs the same code as the host. Missing drivers and libraries are not errors:
//! they give no devices of that kind and a debug log line.
//!
//! # Device ids
//! NVIDIA: the NVML UUID (`GPU-…`). Intel GPU/NPU: the Level Zero UUID when Level Zero knows
//! the device, else `pci-<address>`. NCS2: `usb-<bus>-<port path>`. CPU: `cpu`.
//!
//! # Telemetry sources (see [`Discovery::telemetry`])
//! | field | NVIDIA | Intel GPU | Intel NPU | NCS2 | CPU |
//! |---|---|---|---|---|---|
//! | free memory | NVML memory info | L0 Sysman `zesMemoryGetState`, else sysfs used, else as scanned | host `MemAvailable` (shared) | catalog (no counter) | `/proc/meminfo` `MemAvailable` |
//! | utilisation | NVML utilisation rates | L0 Sysman `zesEngineGetActivity` delta | sysfs `npu_busy_time_us` delta | — | `/proc/stat` delta |
//! | temperature | NVML GPU sensor | hwmon `temp*_input` under the PCI device | — | — | hwmon coretemp/k10temp, thermal zone |
//! | power | NVML power usage | hwmon `power1_input`, else `energy1_input` delta | — | — | RAPL `energy_uj` delta |

mod access;
pub mod catalog;
mod cpu;
mod environment;
pub mod error;
mod fsutil;
mod intel;
mod intel_sysfs;
mod json;
pub mod level_zero;
mod ncs2;
pub mod nvidia;
mod table;
mod telemetry;
pub mod vulkan;

use std::collections::HashMap;
#[cfg(test)]
use std::path::Path;
use std::path::PathBuf;
use std::time::Instant;

use switchyard_proto::v1::{Device, DeviceHealth, DeviceKind, DeviceTelemetry, HostFacts};

pub use access::{Identity, NodeAccess};
pub use error::DiscoveryError;
pub use json::to_json;
pub use nvidia::{FixtureNvml, NvmlGpu, NvmlSnapshot, NvmlSource, NvmlTelemetry, RealNvml};
pub use table::render_table;

use crate::catalog::{IntelClass, intel_by_pci_id, tops_from};
use crate::fsutil::Root;
use crate::intel_sysfs::IntelPci;
use crate::level_zero::{LevelZero, ZE_DEVICE_TYPE_VPU, ZeDevice};

/// Where NVML answers come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NvmlMode {
    /// The real NVML (`libnvidia-ml.so.1`); no driver means no NVIDIA devices.
    Real,
    /// A recorded JSON snapshot ([`NvmlSnapshot`] shape).
    Fixture(PathBuf),
    /// Do not look for NVIDIA GPUs.
    Disabled,
}

/// What to scan and where.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// `/` normally; a fixture tree root in tests. All sysfs/proc/dev paths resolve under it.
    pub root: PathBuf,
    /// NVML source.
    pub nvml: NvmlMode,
    /// Use the Level Zero loader (`libze_loader.so.1`) for Intel GPUs/NPUs.
    pub level_zero: bool,
    /// True when `root` is a fixture: every device gets `simulated = true`.
    pub simulated: bool,
    /// Identity the device-node permission check evaluates (see [`access`]).
    pub identity: Identity,
    /// `SWITCHYARD_OPENVINO_2022_DIR`: where to look for the MYRIAD plugin first.
    pub openvino_2022_dir: Option<PathBuf>,
    /// Vulkan source.
    pub vulkan: VulkanMode,
    /// `[discovery] software_gpu`: a software Vulkan device (Mesa lavapipe) becomes a
    /// `vulkan_gpu` that placement may use (tests); never by default.
    pub software_gpu: bool,
    /// `[discovery] memory_limit_mib`: at most this much of a device (by id) is Switchyard's —
    /// the rest stays for other programs (a desktop, a game); the device reports the smaller
    /// total and free figures.
    pub memory_limits: std::collections::BTreeMap<String, u64>,
}

/// Where Vulkan answers come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VulkanMode {
    /// The real loader (`libvulkan.so.1`); none means no Vulkan devices.
    Real,
    /// A recorded JSON list ([`vulkan::VkPhysical`] shape).
    Fixture(PathBuf),
    /// Do not look for Vulkan devices.
    Disabled,
}

impl DiscoveryConfig {
    /// The live host: root `/`, real NVML, Level Zero on.
    pub fn host() -> Self {
        Self {
            root: PathBuf::from("/"),
            nvml: NvmlMode::Real,
            level_zero: true,
            simulated: false,
            identity: Identity::current(),
            openvino_2022_dir: std::env::var_os("SWITCHYARD_OPENVINO_2022_DIR").map(PathBuf::from),
            vulkan: VulkanMode::Real,
            software_gpu: std::env::var("SWITCHYARD_SOFTWARE_GPU")
                .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes")),
            memory_limits: Default::default(),
        }
    }

    /// A captured tree: NVML from `root/nvml.json` when present (else disabled), no Level
    /// Zero, devices marked simulated, mode bits of node stand-ins honoured even for root.
    pub fn fixture(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let nvml_file = root.join("nvml.json");
        let nvml = if nvml_file.is_file() {
            NvmlMode::Fixture(nvml_file)
        } else {
            NvmlMode::Disabled
        };
        let vulkan_file = root.join("vulkan.json");
        let vulkan = if vulkan_file.is_file() {
            VulkanMode::Fixture(vulkan_file)
        } else {
            VulkanMode::Disabled
        };
        Self {
            openvino_2022_dir: None,
            vulkan,
            software_gpu: false,
            memory_limits: Default::default(),
            nvml,
            level_zero: false,
            simulated: true,
            identity: Identity {
                strict: true,
                ..Identity::current()
            },
            root,
        }
    }
}

/// Everything discovery found.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Host facts.
    pub host: HostFacts,
    /// Devices, CPU first, then NVIDIA, Intel GPU, Intel NPU, NCS2.
    pub devices: Vec<Device>,
    /// Human-readable findings, each prefixed with its level: `info: running in LXC`,
    /// `warn: NCS2 needs OpenVINO 2022.3 (not found)`.
    pub notes: Vec<String>,
}

impl Inventory {
    /// Notes at `warn` level.
    pub fn warnings(&self) -> Vec<&str> {
        self.notes
            .iter()
            .filter(|n| n.starts_with("warn:") || n.starts_with("error:"))
            .map(String::as_str)
            .collect()
    }

    /// The device with this id.
    pub fn device(&self, id: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.id == id)
    }

    /// Devices of one kind.
    pub fn of_kind(&self, kind: DeviceKind) -> Vec<&Device> {
        self.devices
            .iter()
            .filter(|d| d.kind == kind as i32)
            .collect()
    }
}

/// Per-device state kept between scans and telemetry calls.
#[derive(Debug, Clone)]
struct IntelState {
    pci: Option<IntelPci>,
    ze: Option<ZeDevice>,
}

/// The discovery engine: holds loaded NVML / Level Zero handles so rescans are cheap, and the
/// previous counter samples that utilisation and power deltas need.
pub struct Discovery {
    cfg: DiscoveryConfig,
    root: Root,
    nvml: Option<Box<dyn NvmlSource>>,
    nvml_note: Option<String>,
    l0: Option<LevelZero>,
    l0_note: Option<String>,
    intel: HashMap<String, IntelState>,
    samples: telemetry::Samples,
    /// The Vulkan devices of the first scan.
    vulkan: Option<Result<Vec<vulkan::VkPhysical>, String>>,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("cfg", &self.cfg)
            .field("nvml", &self.nvml.is_some())
            .field("level_zero", &self.l0)
            .finish()
    }
}

fn note(level: &str, text: impl std::fmt::Display) -> String {
    format!("{level}: {text}")
}

impl Discovery {
    /// Loads the vendor libraries the config asks for (once). Failures become notes of the
    /// first scan, never panics.
    pub fn new(cfg: DiscoveryConfig) -> Self {
        let root = Root::new(cfg.root.clone());
        let (nvml, nvml_note): (Option<Box<dyn NvmlSource>>, Option<String>) = match &cfg.nvml {
            NvmlMode::Disabled => (None, None),
            NvmlMode::Real => match RealNvml::init() {
                Ok(Some(n)) => (Some(Box::new(n)), None),
                Ok(None) => (None, None),
                Err(e) => (None, Some(note("warn", format!("NVIDIA: {e}")))),
            },
            NvmlMode::Fixture(p) => match FixtureNvml::load(p) {
                Ok(n) => (Some(Box::new(n)), None),
                Err(e) => (None, Some(note("error", e))),
            },
        };
        let (l0, l0_note) = if cfg.level_zero {
            match LevelZero::init() {
                Ok(l) => (l, None),
                Err(e) => (None, Some(note("warn", format!("Intel: {e}")))),
            }
        } else {
            (None, None)
        };
        Self {
            cfg,
            root,
            nvml,
            nvml_note,
            l0,
            l0_note,
            intel: HashMap::new(),
            samples: telemetry::Samples::default(),
            vulkan: None,
        }
    }

    /// Scans every device kind and returns the inventory.
    pub fn scan(&mut self) -> Inventory {
        let started = Instant::now();
        let mut inv = Inventory::default();
        inv.notes.extend(self.nvml_note.clone());
        inv.notes.extend(self.l0_note.clone());

        // CPU and host.
        let cpu_info = cpu::parse(&self.root);
        let hypervisor = cpu_info
            .as_ref()
            .is_some_and(|c| c.flags.contains("hypervisor"));
        let env = environment::detect(&self.root, hypervisor);
        inv.host = environment::host_facts(&self.root, &env);
        match env.container.as_str() {
            "" => {}
            "lxc" => inv.notes.push(note("info", "running in an LXC container")),
            other => inv
                .notes
                .push(note("info", format!("running in a {other} container"))),
        }
        if env.virtualization != "bare-metal" {
            inv.notes.push(note(
                "info",
                format!("running in a virtual machine ({})", env.virtualization),
            ));
        }
        let host_mem = cpu::meminfo(&self.root);
        match &cpu_info {
            Some(c) => {
                inv.host.cpu_model = c.model.clone();
                inv.host.cpu_cores = c.logical;
                inv.devices.push(cpu::device(&self.root, c));
            }
            None => inv
                .notes
                .push(note("warn", "/proc/cpuinfo unreadable: no CPU device")),
        }
        inv.host.memory_total_bytes = host_mem.map(|m| m.0).unwrap_or(0);

        self.scan_nvidia(&mut inv);
        self.scan_intel(&mut inv, host_mem);
        self.scan_vulkan(&mut inv);
        self.scan_ncs2(&mut inv);
        self.scan_orphan_nodes(&mut inv);

        for d in &mut inv.devices {
            d.simulated = self.cfg.simulated;
            if let Some(&limit) = self.cfg.memory_limits.get(&d.id) {
                d.memory_total_bytes = d.memory_total_bytes.min(limit);
                d.attributes
                    .insert("memory_limit_bytes".into(), limit.to_string());
            }
        }
        // Initial telemetry snapshot (also primes the delta counters).
        let live = self.telemetry(&inv);
        for (d, t) in inv.devices.iter_mut().zip(live) {
            d.memory_free_bytes = t.memory_free_bytes;
            d.telemetry = Some(t);
        }
        tracing::debug!(
            devices = inv.devices.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "discovery scan"
        );
        inv
    }

    fn scan_nvidia(&mut self, inv: &mut Inventory) {
        let Some(src) = self.nvml.as_mut() else {
            // No NVML: say so if NVIDIA nodes exist (e.g. a container without the library).
            if self.cfg.nvml == NvmlMode::Real
                && self.nvml_note.is_none()
                && self.root.path("/dev/nvidia0").exists()
            {
                let access = access::check_node(&self.root, "/dev/nvidia0", &self.cfg.identity);
                let mut text = "/dev/nvidia0 exists but NVML (libnvidia-ml.so.1) could not be loaded: install the NVIDIA user-space driver matching the host kernel module".to_string();
                if let Some(r) = access.reason() {
                    text.push_str("; ");
                    text.push_str(&r);
                }
                inv.notes.push(note("warn", text));
            }
            return;
        };
        match src.snapshot() {
            Ok(snap) => inv.devices.extend(nvidia::devices(&snap)),
            Err(e) => inv.notes.push(note("warn", format!("NVIDIA: {e}"))),
        }
    }

    /// Vulkan identity for the GPUs found so far, and the Vulkan-only GPUs. The loader is
    /// asked once per process (an instance per scan would cost time and, with some drivers,
    /// memory); a GPU that appears later is seen after a restart.
    fn scan_vulkan(&mut self, inv: &mut Inventory) {
        let listed = match (&self.cfg.vulkan, &self.vulkan) {
            (VulkanMode::Disabled, _) => return,
            (_, Some(cached)) => cached.clone(),
            (VulkanMode::Real, None) => vulkan::enumerate(),
            (VulkanMode::Fixture(p), None) => vulkan::load_fixture(p).map_err(|e| e.to_string()),
        };
        self.vulkan = Some(listed.clone());
        match listed {
            Ok(vk) => {
                let notes = vulkan::merge(&mut inv.devices, &vk, self.cfg.software_gpu);
                inv.notes.extend(notes);
            }
            Err(e) => inv.notes.push(note("warn", format!("Vulkan: {e}"))),
        }
    }

    fn scan_ncs2(&mut self, inv: &mut Inventory) {
        let sticks = ncs2::scan(&self.root);
        if sticks.is_empty() {
            return;
        }
        let runtime = ncs2::find_myriad_runtime(&self.root, self.cfg.openvino_2022_dir.as_deref());
        let entry = catalog::ncs2();
        for s in sticks {
            let mut d = Device {
                id: s.id.clone(),
                kind: DeviceKind::Ncs2 as i32,
                vendor: "Intel".into(),
                model: entry.model.into(),
                memory_total_bytes: entry.memory_bytes.unwrap_or(0),
                memory_free_bytes: entry.memory_bytes.unwrap_or(0),
                tops: Some(tops_from(Some(&entry), entry.model)),
                health: DeviceHealth::Healthy as i32,
                max_concurrency: 1,
                ..Default::default()
            };
            let a = &mut d.attributes;
            a.insert(
                "usb_id".into(),
                format!(
                    "{}:{}",
                    ncs2::VENDOR,
                    if s.booted {
                        ncs2::PRODUCT_BOOTED
                    } else {
                        ncs2::PRODUCT_UNBOOTED
                    }
                ),
            );
            a.insert(
                "firmware".into(),
                if s.booted { "booted" } else { "unbooted" }.into(),
            );
            a.insert("usb_bus".into(), s.busnum.to_string());
            a.insert("usb_port".into(), s.devpath.clone());
            if let Some(sn) = &s.serial {
                a.insert("serial".into(), sn.clone());
            }
            a.insert("runtime".into(), "OpenVINO 2022.3 MYRIAD".into());
            let mut reasons = Vec::new();
            match &runtime {
                Some(p) => {
                    a.insert("runtime_path".into(), p.display().to_string());
                }
                None => {
                    reasons.push(
                        "needs the legacy OpenVINO 2022.3 MYRIAD runtime (libmyriadPlugin.so not found in SWITCHYARD_OPENVINO_2022_DIR or /opt/intel/openvino_2022*)".to_string(),
                    );
                }
            }
            if let Some(n) = &s.node {
                a.insert("node".into(), n.clone());
                if let Some(r) = access::check_node(&self.root, n, &self.cfg.identity).reason() {
                    reasons.push(r);
                }
            }
            if !reasons.is_empty() {
                d.health = DeviceHealth::Degraded as i32;
                d.health_reason = reasons.join("; ");
            }
            inv.devices.push(d);
        }
        inv.notes.push(match &runtime {
            Some(p) => note(
                "info",
                format!(
                    "NCS2 uses OpenVINO 2022.3 MYRIAD runtime at {}",
                    p.display()
                ),
            ),
            None => note("warn", "NCS2 needs OpenVINO 2022.3 (not found)"),
        });
    }

    /// Device nodes that no discovered device explains: a render node without a PCI device in
    /// sysfs (typical of containers), an accel node likewise.
    fn scan_orphan_nodes(&mut self, inv: &mut Inventory) {
        let claimed: Vec<String> = inv
            .devices
            .iter()
            .filter_map(|d| d.attributes.get("node").cloned())
            .collect();
        let mut nodes: Vec<String> = Vec::new();
        for n in self.root.list("/dev/dri") {
            if n.starts_with("renderD") {
                nodes.push(format!("/dev/dri/{n}"));
            }
        }
        for n in self.root.list("/dev/accel") {
            if n.starts_with("accel") {
                nodes.push(format!("/dev/accel/{n}"));
            }
        }
        for node in nodes {
            if claimed.contains(&node) {
                continue;
            }
            let name = node.rsplit('/').next().unwrap_or_default();
            let class_dir = if node.starts_with("/dev/dri/") {
                format!("/sys/class/drm/{name}/device")
            } else {
                format!("/sys/class/accel/{name}/device")
            };
            if self.root.path(format!("{class_dir}/vendor")).exists() {
                // A known PCI device of another vendor (AMD, NVIDIA's drm node): not ours.
                continue;
            }
            let acc = access::check_node(&self.root, &node, &self.cfg.identity);
            let mut text = format!(
                "{node} exists but sysfs shows no PCI device behind it ({class_dir} missing), so the accelerator cannot be identified here"
            );
            text.push_str(match (self.cfg.level_zero, self.l0.is_some()) {
                (false, _) => "; Level Zero is not used in this configuration",
                (true, false) => {
                    "; Level Zero found no Intel device either: install the loader (libze1) and the Intel compute runtime (libze-intel-gpu1 / intel-level-zero-npu) in this system"
                }
                (true, true) => "; Level Zero does not list it either",
            });
            if let Some(r) = acc.reason() {
                text.push_str("; ");
                text.push_str(&r);
            }
            inv.notes.push(note("warn", text));
        }
    }

    /// Refreshes live figures for every device of `inv`, in the same order.
    pub fn telemetry(&mut self, inv: &Inventory) -> Vec<DeviceTelemetry> {
        inv.devices
            .iter()
            .map(|d| self.device_telemetry(d))
            .collect()
    }

    fn device_telemetry(&mut self, d: &Device) -> DeviceTelemetry {
        let health = DeviceHealth::try_from(d.health).unwrap_or(DeviceHealth::Unspecified);
        let mut t = DeviceTelemetry {
            device_id: d.id.clone(),
            memory_free_bytes: d.memory_free_bytes,
            health: health as i32,
            ..Default::default()
        };
        match DeviceKind::try_from(d.kind).unwrap_or(DeviceKind::Unspecified) {
            DeviceKind::Cpu => telemetry::cpu(&self.root, &mut self.samples, &mut t),
            DeviceKind::NvidiaGpu => match self.nvml.as_mut().map(|n| n.telemetry(&d.id)) {
                Some(Ok(nt)) => t = nvidia::telemetry_of(&d.id, &nt, health),
                Some(Err(e)) => {
                    tracing::warn!(device = %d.id, error = %e, "NVML telemetry failed");
                    t.health = DeviceHealth::Unavailable as i32;
                }
                None => t.health = DeviceHealth::Unavailable as i32,
            },
            DeviceKind::IntelGpu | DeviceKind::IntelNpu => {
                if let Some(state) = self.intel.get(&d.id).cloned() {
                    let zt = match (&mut self.l0, &state.ze) {
                        (Some(l0), Some(z)) => l0.telemetry(z),
                        _ => Default::default(),
                    };
                    telemetry::intel(
                        &self.root,
                        &mut self.samples,
                        d,
                        state.pci.as_ref(),
                        zt,
                        &mut t,
                    );
                }
            }
            // No vendor counters through Vulkan alone: free memory as scanned.
            DeviceKind::Ncs2 | DeviceKind::VulkanGpu | DeviceKind::Unspecified => {}
        }
        if let Some(&limit) = self.cfg.memory_limits.get(&d.id) {
            t.memory_free_bytes = t.memory_free_bytes.min(limit);
        }
        t
    }
}

#[cfg(test)]
mod tests;
