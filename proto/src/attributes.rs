//! Well-known keys of `Device.attributes` that more than one crate reads.

/// CUDA ordinal of an NVIDIA GPU: its rank by PCI bus id, the order CUDA uses under
/// `CUDA_DEVICE_ORDER=PCI_BUS_ID` (set by the switchyard binary before CUDA loads). Discovery
/// writes it from NVML's PCI bus ids; the agent addresses the GPU with it.
pub const CUDA_ORDINAL: &str = "cuda_ordinal";

/// The environment variable and value that make CUDA number devices in PCI bus order.
pub const CUDA_DEVICE_ORDER: (&str, &str) = ("CUDA_DEVICE_ORDER", "PCI_BUS_ID");

/// PCI bus id of a GPU, `dddd:bb:dd.f` (lower-case hex, 4-digit domain: [`pci_bus_id`]).
pub const PCI_BUS_ID: &str = "pci_bus_id";

/// The NVML UUID of an NVIDIA GPU (`GPU-…`), which `CUDA_VISIBLE_DEVICES` accepts.
pub const UUID: &str = "uuid";

/// Position of the GPU in the Vulkan loader's `vkEnumeratePhysicalDevices` order, which is
/// the index `GGML_VK_VISIBLE_DEVICES` takes. Discovery writes it after matching the Vulkan
/// device to the GPU by PCI bus id (never by position).
pub const VULKAN_INDEX: &str = "vulkan_index";

/// The Vulkan device name (`VkPhysicalDeviceProperties::deviceName`).
pub const VULKAN_NAME: &str = "vulkan_name";

/// The Vulkan driver (`VkPhysicalDeviceDriverProperties`: name and info).
pub const VULKAN_DRIVER: &str = "vulkan_driver";

/// `"true"` on a software Vulkan device (Mesa lavapipe: device type CPU), which is placed on
/// only when `[discovery] software_gpu = true`.
pub const SOFTWARE: &str = "software";

/// `dddd:bb:dd.f` (4-digit domain, lower-case hex) of a PCI bus id written by NVML
/// (`00000000:01:00.0`), sysfs (`0000:03:00.0`) or Vulkan's fields; `None` when it does not
/// parse.
pub fn pci_bus_id(raw: &str) -> Option<String> {
    let mut parts = raw.trim().rsplitn(3, ':');
    let dev_fn = parts.next()?;
    let bus = parts.next()?;
    let domain = parts.next().unwrap_or("0");
    let (dev, func) = dev_fn.split_once('.')?;
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    Some(format!(
        "{:04x}:{:02x}:{:02x}.{:x}",
        hex(domain)?,
        hex(bus)?,
        hex(dev)?,
        hex(func)?
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn pci_bus_ids_of_every_source_compare_equal() {
        let want = Some("0000:01:00.0".to_string());
        assert_eq!(super::pci_bus_id("00000000:01:00.0"), want); // NVML
        assert_eq!(super::pci_bus_id("0000:01:00.0"), want); // sysfs
        assert_eq!(super::pci_bus_id("01:00.0"), want); // no domain
        assert_eq!(
            super::pci_bus_id("0000:C1:1F.7").as_deref(),
            Some("0000:c1:1f.7")
        );
        assert_eq!(super::pci_bus_id("garbage"), None);
        assert_eq!(super::pci_bus_id("0000:zz:00.0"), None);
    }
}
