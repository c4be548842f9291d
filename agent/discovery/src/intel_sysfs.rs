//! Intel GPUs and NPUs from sysfs: the fallback when Level Zero is absent and the
//! cross-check when it is present.
//!
//! * GPUs: `/sys/class/drm/card<N>/device` with `vendor` 0x8086 and driver `i915` or `xe`
//!   (from `uevent` `DRIVER=`, else the `driver` link); the render node is the `renderD*`
//!   entry under `device/drm/`.
//! * NPUs: `/sys/class/accel/accel<N>/device` with driver `intel_vpu`; node `/dev/accel/accel<N>`.
//!
//! Memory: the first of `lmem_total_bytes` (Intel's out-of-tree i915),
//! `device/tile0/vram0/physical_vram_size_bytes` (xe), `device/mem_info_vram_total`;
//! otherwise the catalog figure of the model.
//!
//! Telemetry sources: `hwmon/hwmon*/temp*_input` (°C ×1000) and `power1_input`/`energy1_input`
//! under the PCI device (i915/xe hwmon); for NPUs `npu_busy_time_us` (intel_vpu, Linux 6.11+)
//! and `npu_memory_utilization`.

use std::path::PathBuf;

use crate::catalog::{IntelClass, intel_by_pci_id};
use crate::fsutil::{Root, link_basename, list_dir, parse_u64, read_trim, read_u64, uevent_value};

/// An Intel PCI function found in sysfs.
#[derive(Debug, Clone, PartialEq)]
pub struct IntelPci {
    /// GPU or NPU.
    pub class: IntelClass,
    /// PCI address `0000:03:00.0` (empty when sysfs does not show it).
    pub pci_address: String,
    /// PCI device id.
    pub device_id: u16,
    /// Kernel driver (`i915`, `xe`, `intel_vpu`).
    pub driver: String,
    /// Host path of the node to open (`/dev/dri/renderD128`, `/dev/accel/accel0`).
    pub node: Option<String>,
    /// Device-local memory from sysfs, bytes.
    pub memory_total_bytes: Option<u64>,
    /// Used device memory from sysfs, bytes.
    pub memory_used_bytes: Option<u64>,
    /// The PCI device directory under the root (for telemetry files).
    pub device_dir: PathBuf,
    /// The drm card directory (`/sys/class/drm/cardN`) under the root, for GPUs.
    pub card_dir: Option<PathBuf>,
}

fn driver_of(dev: &std::path::Path) -> Option<String> {
    uevent_value(&dev.join("uevent"), "DRIVER").or_else(|| link_basename(&dev.join("driver")))
}

fn pci_address_of(dev: &std::path::Path) -> String {
    uevent_value(&dev.join("uevent"), "PCI_SLOT_NAME")
        .or_else(|| {
            std::fs::canonicalize(dev)
                .ok()
                .and_then(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
                .filter(|n| n.contains(':'))
        })
        .unwrap_or_default()
}

fn first_u64(paths: &[PathBuf]) -> Option<u64> {
    paths.iter().find_map(|p| read_u64(p))
}

/// Intel GPUs (drm cards) and NPUs (accel devices) under `root`.
pub fn scan(root: &Root) -> Vec<IntelPci> {
    let mut out = Vec::new();
    for card in root.list("/sys/class/drm") {
        // card0, card1 … (not card0-DP-1 connectors, not renderD128)
        let Some(num) = card.strip_prefix("card") else {
            continue;
        };
        if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let card_dir = root.path(format!("/sys/class/drm/{card}"));
        let dev = card_dir.join("device");
        let vendor = read_trim(&dev.join("vendor")).and_then(|v| parse_u64(&v));
        if vendor != Some(0x8086) {
            continue;
        }
        let driver = driver_of(&dev).unwrap_or_default();
        if !matches!(driver.as_str(), "i915" | "xe") {
            continue;
        }
        let Some(device_id) = read_trim(&dev.join("device"))
            .and_then(|v| parse_u64(&v))
            .and_then(|v| u16::try_from(v).ok())
        else {
            continue;
        };
        let render = list_dir(&dev.join("drm"))
            .into_iter()
            .find(|n| n.starts_with("renderD"))
            .map(|n| format!("/dev/dri/{n}"));
        let memory_total_bytes = first_u64(&[
            card_dir.join("lmem_total_bytes"),
            dev.join("tile0/vram0/physical_vram_size_bytes"),
            dev.join("mem_info_vram_total"),
        ]);
        let memory_used_bytes = first_u64(&[dev.join("mem_info_vram_used")]).or_else(|| {
            let total = memory_total_bytes?;
            let avail = read_u64(&card_dir.join("lmem_avail_bytes"))?;
            Some(total.saturating_sub(avail))
        });
        out.push(IntelPci {
            class: IntelClass::Gpu,
            pci_address: pci_address_of(&dev),
            device_id,
            driver,
            node: render,
            memory_total_bytes,
            memory_used_bytes,
            device_dir: dev,
            card_dir: Some(card_dir),
        });
    }
    for accel in root.list("/sys/class/accel") {
        if !accel.starts_with("accel") {
            continue;
        }
        let dev = root.path(format!("/sys/class/accel/{accel}/device"));
        let driver = driver_of(&dev).unwrap_or_default();
        if driver != "intel_vpu" {
            continue;
        }
        let device_id = read_trim(&dev.join("device"))
            .and_then(|v| parse_u64(&v))
            .and_then(|v| u16::try_from(v).ok())
            .unwrap_or(0);
        out.push(IntelPci {
            class: IntelClass::Npu,
            pci_address: pci_address_of(&dev),
            device_id,
            driver,
            node: Some(format!("/dev/accel/{accel}")),
            memory_total_bytes: None,
            memory_used_bytes: read_u64(&dev.join("npu_memory_utilization")),
            device_dir: dev,
            card_dir: None,
        });
    }
    out
}

/// Model name for a PCI id: the catalog name, else `Intel GPU 0x56a0` / `Intel NPU 0x…`.
pub fn model_name(class: IntelClass, device_id: u16) -> String {
    match intel_by_pci_id(device_id) {
        Some(m) => m.name.to_string(),
        None => match class {
            IntelClass::Gpu => format!("Intel GPU 0x{device_id:04x}"),
            IntelClass::Npu => format!("Intel NPU 0x{device_id:04x}"),
        },
    }
}

/// Raw Intel telemetry counters from sysfs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SysfsCounters {
    /// Temperature, °C.
    pub temperature_celsius: Option<f64>,
    /// Instantaneous power, W (`power1_input`).
    pub power_watts: Option<f64>,
    /// Energy counter, µJ (`energy1_input`), for a power delta.
    pub energy_uj: Option<u64>,
    /// NPU busy time, µs, for a utilisation delta.
    pub busy_us: Option<u64>,
    /// Used memory from sysfs, bytes.
    pub memory_used_bytes: Option<u64>,
}

/// Reads telemetry counters of one device.
pub fn counters(dev: &IntelPci) -> SysfsCounters {
    let mut c = SysfsCounters::default();
    for h in list_dir(&dev.device_dir.join("hwmon")) {
        let base = dev.device_dir.join("hwmon").join(&h);
        if c.temperature_celsius.is_none() {
            c.temperature_celsius = list_dir(&base)
                .iter()
                .filter(|n| n.starts_with("temp") && n.ends_with("_input"))
                .find_map(|n| read_u64(&base.join(n)))
                .map(|m| m as f64 / 1000.0);
        }
        if c.power_watts.is_none() {
            c.power_watts = read_u64(&base.join("power1_input")).map(|uw| uw as f64 / 1e6);
        }
        if c.energy_uj.is_none() {
            c.energy_uj = read_u64(&base.join("energy1_input"));
        }
    }
    c.busy_us = read_u64(&dev.device_dir.join("npu_busy_time_us"));
    c.memory_used_bytes = match dev.class {
        IntelClass::Npu => read_u64(&dev.device_dir.join("npu_memory_utilization")),
        IntelClass::Gpu => read_u64(&dev.device_dir.join("mem_info_vram_used")).or_else(|| {
            let card = dev.card_dir.as_ref()?;
            let total = read_u64(&card.join("lmem_total_bytes"))?;
            Some(total.saturating_sub(read_u64(&card.join("lmem_avail_bytes"))?))
        }),
    };
    c
}
