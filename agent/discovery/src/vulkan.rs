//! Vulkan discovery: every physical device the Vulkan loader lists, in its
//! `vkEnumeratePhysicalDevices` order (the index `GGML_VK_VISIBLE_DEVICES` takes), with its PCI
//! bus id (`VK_EXT_pci_bus_info`), device type, device-local memory and driver. The loader is
//! opened at run time (ash's `loaded`); without one there are no Vulkan devices. Fixture trees
//! carry a recorded `vulkan.json` instead.
//!
//! [`merge`] gives each NVIDIA / Intel GPU its Vulkan identity by PCI bus id, never by position,
//! and turns the rest (AMD Radeon, other vendors) into `vulkan_gpu` devices. A software device
//! (Mesa lavapipe: device type CPU) becomes one only when configuration admits it.

// ash's calls are `unsafe fn`s over the C Vulkan API; each call here passes handles ash just
// returned and structures it built, and the instance is destroyed before returning.
#![allow(unsafe_code)]

use std::path::Path;

use serde::{Deserialize, Serialize};
use switchyard_proto::attributes::{
    PCI_BUS_ID, SOFTWARE, VULKAN_DRIVER, VULKAN_INDEX, VULKAN_NAME, pci_bus_id,
};
use switchyard_proto::v1::{Device, DeviceHealth, DeviceKind, Tops, TopsSource};

use crate::error::DiscoveryError;

/// `VkPhysicalDeviceType`, as discovery reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VkDeviceType {
    /// A discrete GPU.
    Discrete,
    /// An integrated GPU.
    Integrated,
    /// A virtual GPU (a VM's paravirtual device).
    Virtual,
    /// A device that runs on the host CPU (Mesa lavapipe, SwiftShader).
    Cpu,
    /// Anything else.
    Other,
}

/// One Vulkan physical device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VkPhysical {
    /// Position in `vkEnumeratePhysicalDevices`.
    pub index: u32,
    /// `deviceName`.
    pub name: String,
    /// PCI vendor id (`0x10de` NVIDIA, `0x8086` Intel, `0x1002` AMD, `0x10005` Mesa).
    pub vendor_id: u32,
    /// PCI device id.
    pub device_id: u32,
    /// Device type.
    pub device_type: VkDeviceType,
    /// `dddd:bb:dd.f` from `VK_EXT_pci_bus_info`, when the driver has it.
    #[serde(default)]
    pub pci_bus_id: Option<String>,
    /// Sum of the device-local memory heaps, bytes.
    pub device_local_bytes: u64,
    /// Driver name and info (`llvmpipe`, `NVIDIA 570.124.04`, `Intel open-source Mesa driver`).
    #[serde(default)]
    pub driver: String,
}

impl VkPhysical {
    /// A software device: computes on the host CPU.
    pub fn is_software(&self) -> bool {
        self.device_type == VkDeviceType::Cpu
    }

    /// Vendor name of the PCI vendor id.
    pub fn vendor(&self) -> String {
        match self.vendor_id {
            0x10de => "NVIDIA".into(),
            0x8086 => "Intel".into(),
            0x1002 | 0x1022 => "AMD".into(),
            0x10005 => "Mesa".into(),
            0x13b5 => "ARM".into(),
            0x5143 => "Qualcomm".into(),
            other => format!("0x{other:04x}"),
        }
    }
}

/// Reads a recorded `vulkan.json` (a list of [`VkPhysical`]).
pub fn load_fixture(path: &Path) -> Result<Vec<VkPhysical>, DiscoveryError> {
    let text = std::fs::read_to_string(path).map_err(|source| DiscoveryError::FixtureIo {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| DiscoveryError::FixtureFormat {
        path: path.to_path_buf(),
        source,
    })
}

/// Lists the host's Vulkan physical devices; `Ok(empty)` when there is no Vulkan loader or
/// no driver (the normal case on a host without GPUs), `Err` when the loader is there but
/// fails.
pub fn enumerate() -> Result<Vec<VkPhysical>, String> {
    use ash::vk;
    // SAFETY: loads libvulkan.so.1 by name; ash resolves vkGetInstanceProcAddr from it.
    let Ok(entry) = (unsafe { ash::Entry::load() }) else {
        return Ok(Vec::new());
    };
    let app = vk::ApplicationInfo::default()
        .application_name(c"switchyard-discovery")
        .api_version(vk::make_api_version(0, 1, 1, 0));
    let info = vk::InstanceCreateInfo::default().application_info(&app);
    // SAFETY: `info` and `app` outlive the call.
    let instance = match unsafe { entry.create_instance(&info, None) } {
        Ok(i) => i,
        Err(vk::Result::ERROR_INCOMPATIBLE_DRIVER) => return Ok(Vec::new()),
        Err(e) => return Err(format!("vkCreateInstance failed: {e}")),
    };
    // SAFETY: `instance` is live until destroy_instance below.
    let listed = unsafe { instance.enumerate_physical_devices() };
    let out = listed
        .map_err(|e| format!("vkEnumeratePhysicalDevices failed: {e}"))
        .map(|pds| {
            pds.iter()
                .enumerate()
                .map(|(i, pd)| describe(&instance, *pd, i as u32))
                .collect()
        });
    // SAFETY: no object created from the instance is alive.
    unsafe { instance.destroy_instance(None) };
    out
}

/// One physical device's properties.
fn describe(instance: &ash::Instance, pd: ash::vk::PhysicalDevice, index: u32) -> VkPhysical {
    use ash::vk;
    // SAFETY: `pd` was listed by this live instance.
    let props = unsafe { instance.get_physical_device_properties(pd) };
    // SAFETY: as above.
    let extensions =
        unsafe { instance.enumerate_device_extension_properties(pd) }.unwrap_or_default();
    let has = |name: &std::ffi::CStr| {
        extensions
            .iter()
            .any(|e| e.extension_name_as_c_str() == Ok(name))
    };
    let mut pci = vk::PhysicalDevicePCIBusInfoPropertiesEXT::default();
    let mut driver = vk::PhysicalDeviceDriverProperties::default();
    let has_pci = has(ash::ext::pci_bus_info::NAME);
    let has_driver =
        vk::api_version_minor(props.api_version) >= 2 || has(ash::khr::driver_properties::NAME);
    {
        let mut p2 = vk::PhysicalDeviceProperties2::default();
        if has_pci {
            p2 = p2.push_next(&mut pci);
        }
        if has_driver {
            p2 = p2.push_next(&mut driver);
        }
        // SAFETY: the chain holds only structures the device supports (checked above).
        unsafe { instance.get_physical_device_properties2(pd, &mut p2) };
    }
    // SAFETY: as above.
    let memory = unsafe { instance.get_physical_device_memory_properties(pd) };
    let device_local_bytes = memory.memory_heaps[..memory.memory_heap_count as usize]
        .iter()
        .filter(|h| h.flags.contains(vk::MemoryHeapFlags::DEVICE_LOCAL))
        .map(|h| h.size)
        .sum();
    let text = |r: Result<&std::ffi::CStr, _>| {
        r.map(|c: &std::ffi::CStr| c.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let device_type = match props.device_type {
        vk::PhysicalDeviceType::DISCRETE_GPU => VkDeviceType::Discrete,
        vk::PhysicalDeviceType::INTEGRATED_GPU => VkDeviceType::Integrated,
        vk::PhysicalDeviceType::VIRTUAL_GPU => VkDeviceType::Virtual,
        vk::PhysicalDeviceType::CPU => VkDeviceType::Cpu,
        _ => VkDeviceType::Other,
    };
    let driver = if has_driver {
        let name = text(driver.driver_name_as_c_str());
        let info = text(driver.driver_info_as_c_str());
        if info.is_empty() {
            name
        } else {
            format!("{name} {info}")
        }
    } else {
        String::new()
    };
    VkPhysical {
        index,
        name: text(props.device_name_as_c_str()),
        vendor_id: props.vendor_id,
        device_id: props.device_id,
        device_type,
        pci_bus_id: has_pci.then(|| {
            format!(
                "{:04x}:{:02x}:{:02x}.{:x}",
                pci.pci_domain, pci.pci_bus, pci.pci_device, pci.pci_function
            )
        }),
        device_local_bytes,
        driver,
    }
}

/// Gives `devices` (from NVML and sysfs) their Vulkan identity and adds the Vulkan GPUs no
/// other source found; returns the notes. A software device becomes a `vulkan_gpu` only with
/// `software_gpu`.
pub fn merge(devices: &mut Vec<Device>, vk: &[VkPhysical], software_gpu: bool) -> Vec<String> {
    let mut notes = Vec::new();
    for v in vk {
        let bus = v.pci_bus_id.as_deref().and_then(pci_bus_id);
        let known = bus.as_ref().and_then(|bus| {
            devices.iter_mut().find(|d| {
                d.attributes
                    .get(PCI_BUS_ID)
                    .and_then(|b| pci_bus_id(b))
                    .as_ref()
                    == Some(bus)
            })
        });
        if let Some(d) = known {
            mark(d, v);
            continue;
        }
        if v.is_software() && !software_gpu {
            notes.push(format!(
                "info: software Vulkan device {} ({}) not used: it computes on the CPU; set [discovery] software_gpu = true to place on it (tests do)",
                v.name, v.driver
            ));
            continue;
        }
        if v.vendor_id == 0x10de || (v.vendor_id == 0x8086 && !v.is_software()) {
            notes.push(format!(
                "warn: Vulkan device {} ({}) matches no {} GPU found by {} (PCI bus id {}): not used",
                v.name,
                v.vendor(),
                v.vendor(),
                if v.vendor_id == 0x10de { "NVML" } else { "sysfs / Level Zero" },
                bus.as_deref().unwrap_or("unknown")
            ));
            continue;
        }
        devices.push(device(v, bus));
    }
    notes
}

/// Writes the Vulkan identity of `v` onto `d`.
fn mark(d: &mut Device, v: &VkPhysical) {
    let a = &mut d.attributes;
    a.insert(VULKAN_INDEX.into(), v.index.to_string());
    a.insert(VULKAN_NAME.into(), v.name.clone());
    if !v.driver.is_empty() {
        a.insert(VULKAN_DRIVER.into(), v.driver.clone());
    }
}

/// A `vulkan_gpu` device of a Vulkan GPU no other source knows.
fn device(v: &VkPhysical, bus: Option<String>) -> Device {
    let id = match (&bus, v.is_software()) {
        (Some(b), false) => format!("vk-{b}"),
        _ => format!(
            "vk{}-{}",
            v.index,
            v.name
                .split_whitespace()
                .next()
                .unwrap_or("device")
                .to_ascii_lowercase()
        ),
    };
    let mut d = Device {
        id,
        kind: DeviceKind::VulkanGpu as i32,
        vendor: v.vendor(),
        model: v.name.clone(),
        memory_total_bytes: v.device_local_bytes,
        memory_free_bytes: v.device_local_bytes,
        tops: Some(Tops {
            int8_tops: 0.0,
            source: TopsSource::Unknown as i32,
            detail: "no catalog entry for Vulkan-only GPUs: measure with --calibrate".into(),
        }),
        health: DeviceHealth::Healthy as i32,
        max_concurrency: 4,
        ..Default::default()
    };
    if let Some(b) = bus {
        d.attributes.insert(PCI_BUS_ID.into(), b);
    }
    if v.is_software() {
        d.attributes.insert(SOFTWARE.into(), "true".into());
    }
    d.attributes.insert(
        "vulkan_device_type".into(),
        format!("{:?}", v.device_type).to_lowercase(),
    );
    mark(&mut d, v);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vk(
        index: u32,
        name: &str,
        vendor_id: u32,
        ty: VkDeviceType,
        bus: Option<&str>,
    ) -> VkPhysical {
        VkPhysical {
            index,
            name: name.into(),
            vendor_id,
            device_id: 0,
            device_type: ty,
            pci_bus_id: bus.map(str::to_string),
            device_local_bytes: 8 << 30,
            driver: "driver".into(),
        }
    }

    fn gpu(id: &str, kind: DeviceKind, bus: &str) -> Device {
        let mut d = Device {
            id: id.into(),
            kind: kind as i32,
            ..Default::default()
        };
        d.attributes.insert(PCI_BUS_ID.into(), bus.into());
        d
    }

    #[test]
    fn gpus_get_their_vulkan_index_by_pci_bus_id_not_by_position() {
        // NVML order: 01:00.0 then 02:00.0; the Vulkan loader lists them the other way round.
        let mut devices = vec![
            gpu("GPU-a", DeviceKind::NvidiaGpu, "00000000:01:00.0"),
            gpu("GPU-b", DeviceKind::NvidiaGpu, "00000000:02:00.0"),
        ];
        let list = [
            vk(
                0,
                "RTX 5090",
                0x10de,
                VkDeviceType::Discrete,
                Some("0000:02:00.0"),
            ),
            vk(
                1,
                "RTX 4070",
                0x10de,
                VkDeviceType::Discrete,
                Some("0000:01:00.0"),
            ),
        ];
        let notes = merge(&mut devices, &list, false);
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[0].attributes[VULKAN_INDEX], "1");
        assert_eq!(devices[1].attributes[VULKAN_INDEX], "0");
        assert_eq!(devices[1].attributes[VULKAN_NAME], "RTX 5090");
    }

    #[test]
    fn an_amd_card_becomes_a_vulkan_gpu_and_lavapipe_only_when_asked() {
        let list = [
            vk(
                0,
                "AMD Radeon RX 7800 XT",
                0x1002,
                VkDeviceType::Discrete,
                Some("0000:03:00.0"),
            ),
            vk(
                1,
                "llvmpipe (LLVM 15.0.6, 256 bits)",
                0x10005,
                VkDeviceType::Cpu,
                None,
            ),
        ];
        let mut devices = Vec::new();
        let notes = merge(&mut devices, &list, false);
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].id, "vk-0000:03:00.0");
        assert_eq!(devices[0].kind(), DeviceKind::VulkanGpu);
        assert_eq!(devices[0].vendor, "AMD");
        assert!(notes[0].contains("software_gpu"), "{notes:?}");

        let mut devices = Vec::new();
        merge(&mut devices, &list, true);
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[1].id, "vk1-llvmpipe");
        assert_eq!(devices[1].attributes[SOFTWARE], "true");
        assert_eq!(devices[1].attributes[VULKAN_INDEX], "1");
    }

    #[test]
    fn an_nvidia_vulkan_device_without_its_nvml_gpu_is_not_used() {
        let list = [vk(
            0,
            "RTX 4070",
            0x10de,
            VkDeviceType::Discrete,
            Some("0000:01:00.0"),
        )];
        let mut devices = Vec::new();
        let notes = merge(&mut devices, &list, false);
        assert!(devices.is_empty());
        assert!(
            notes[0].starts_with("warn:") && notes[0].contains("NVML"),
            "{notes:?}"
        );
    }
}
