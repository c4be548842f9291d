//! Mapping Switchyard devices to OpenVINO device names, refusing the ones this build cannot
//! drive.

use switchyard_backend_core::{BackendError, DeviceRef, DeviceType};

/// Backend id used in errors and inventories.
pub const BACKEND_ID: &str = "openvino";

/// Environment variable naming an OpenVINO 2022.3 LTS install (the last one with MYRIAD).
pub const LEGACY_2022_DIR_ENV: &str = "SWITCHYARD_OPENVINO_2022_DIR";

fn unsupported(device: &DeviceRef, reason: String) -> BackendError {
    BackendError::DeviceUnsupported {
        backend: BACKEND_ID.into(),
        device: device.id.clone(),
        reason,
    }
}

/// Why an NCS2 cannot run here (with or without a configured 2022.3 install).
pub fn ncs2_reason(legacy_dir: Option<&str>) -> String {
    let base = "the Intel NCS2 (Myriad X) needs the MYRIAD plugin, which OpenVINO dropped in \
                2023.0; only the legacy OpenVINO 2022.3 LTS runtime can drive it";
    match legacy_dir {
        None => format!("{base}, and {LEGACY_2022_DIR_ENV} is not set"),
        Some(dir) => format!(
            "{base}; {LEGACY_2022_DIR_ENV}={dir} is configured, but this build does not link \
             the 2022.3 runtime (the openvino crate 0.11 needs OpenVINO >= 2025.1)"
        ),
    }
}

/// The OpenVINO device name for `device`, chosen among `available` (the names
/// `Core::available_devices` reports). A device the runtime does not list is an error: this
/// backend never silently runs on the CPU instead.
pub fn openvino_name(device: &DeviceRef, available: &[String]) -> Result<String, BackendError> {
    let listed = |name: &str| available.iter().any(|a| a == name);
    let name = match device.device_type {
        DeviceType::Cpu => "CPU".to_string(),
        DeviceType::IntelGpu => {
            let numbered = format!("GPU.{}", device.ordinal);
            if listed(&numbered) || device.ordinal > 0 {
                numbered
            } else {
                // With a single GPU, OpenVINO lists it as plain "GPU".
                "GPU".to_string()
            }
        }
        DeviceType::IntelNpu => "NPU".to_string(),
        DeviceType::Ncs2 => {
            let dir = std::env::var(LEGACY_2022_DIR_ENV)
                .ok()
                .filter(|d| !d.is_empty());
            return Err(unsupported(device, ncs2_reason(dir.as_deref())));
        }
        DeviceType::VulkanGpu => {
            return Err(unsupported(
                device,
                "OpenVINO does not run on Vulkan-only GPUs (generation runs there through llama.cpp's Vulkan backend)".into(),
            ));
        }
        DeviceType::NvidiaGpu => {
            return Err(unsupported(
                device,
                "OpenVINO does not run on NVIDIA GPUs (use the ort-cuda or ort-tensorrt backend)"
                    .into(),
            ));
        }
    };
    if listed(&name) {
        Ok(name)
    } else {
        let hint = match device.device_type {
            DeviceType::IntelGpu => {
                " (the GPU plugin needs the Intel compute runtime: libOpenCL.so.1 and \
                 intel-opencl-icd / Level Zero, and access to /dev/dri)"
            }
            DeviceType::IntelNpu => {
                " (the NPU plugin needs the intel_vpu driver, the NPU user-mode driver and \
                 access to /dev/accel)"
            }
            _ => "",
        };
        Err(unsupported(
            device,
            format!("OpenVINO does not list device {name} (available: {available:?}){hint}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(device_type: DeviceType, ordinal: u32) -> DeviceRef {
        DeviceRef {
            id: format!("{device_type:?}-{ordinal}"),
            device_type,
            ordinal,
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cpu_maps_to_cpu_when_listed() {
        assert_eq!(
            openvino_name(&DeviceRef::cpu(), &names(&["CPU"])).unwrap(),
            "CPU"
        );
    }

    #[test]
    fn gpu_naming_follows_the_runtime_listing() {
        let one = names(&["CPU", "GPU"]);
        assert_eq!(
            openvino_name(&dev(DeviceType::IntelGpu, 0), &one).unwrap(),
            "GPU"
        );
        let two = names(&["CPU", "GPU.0", "GPU.1"]);
        assert_eq!(
            openvino_name(&dev(DeviceType::IntelGpu, 1), &two).unwrap(),
            "GPU.1"
        );
        assert_eq!(
            openvino_name(&dev(DeviceType::IntelGpu, 0), &two).unwrap(),
            "GPU.0"
        );
        // A second GPU when only one is listed is refused, not mapped to the first.
        let err = openvino_name(&dev(DeviceType::IntelGpu, 1), &one).unwrap_err();
        assert!(err.to_string().contains("GPU.1"), "{err}");
    }

    #[test]
    fn unlisted_devices_are_refused_with_a_hint() {
        let cpu_only = names(&["CPU"]);
        let err = openvino_name(&dev(DeviceType::IntelGpu, 0), &cpu_only).unwrap_err();
        assert!(matches!(err, BackendError::DeviceUnsupported { .. }));
        assert!(err.to_string().contains("libOpenCL"), "{err}");
        let err = openvino_name(&dev(DeviceType::IntelNpu, 0), &cpu_only).unwrap_err();
        assert!(err.to_string().contains("NPU"), "{err}");
        let err = openvino_name(&dev(DeviceType::NvidiaGpu, 0), &cpu_only).unwrap_err();
        assert!(err.to_string().contains("NVIDIA"), "{err}");
    }

    #[test]
    fn ncs2_needs_the_2022_runtime() {
        let err = openvino_name(&dev(DeviceType::Ncs2, 0), &names(&["CPU", "MYRIAD"]));
        let err = err.unwrap_err();
        assert!(matches!(err, BackendError::DeviceUnsupported { .. }));
        assert!(err.to_string().contains("2022.3"), "{err}");
        let configured = ncs2_reason(Some("/opt/intel/openvino_2022"));
        assert!(configured.contains("does not link"), "{configured}");
        assert!(ncs2_reason(None).contains(LEGACY_2022_DIR_ENV));
    }
}
