//! What a device's OpenVINO plugin needs and offers, decided from its kind and the properties
//! OpenVINO reports for it — the same code on a real device and on recorded properties.

use std::collections::BTreeMap;

use openvino::{Core, DeviceType as OvDevice, PropertyKey};
use switchyard_backend_core::{DeviceType, Precision};

/// Properties read for [`DeviceTraits`] (absent ones are left out).
pub const PROPERTIES: [&str; 4] = [
    "FULL_DEVICE_NAME",
    "OPTIMIZATION_CAPABILITIES",
    "INFERENCE_PRECISION_HINT",
    "DEVICE_ARCHITECTURE",
];

/// A device's needs and capabilities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceTraits {
    /// The plugin compiles static shapes only (Intel NPUs): encoders are compiled per
    /// bucket and padded, generators refused.
    pub static_shapes: bool,
    /// Precisions its `OPTIMIZATION_CAPABILITIES` list (`FP32`, `FP16`, `BF16`).
    pub precisions: Vec<Precision>,
    /// The precision it computes at unless told otherwise.
    pub default_precision: Option<Precision>,
    /// It serves one request at a time.
    pub one_request_at_a_time: bool,
}

impl DeviceTraits {
    /// The traits of a device of `kind` whose plugin reports `props`.
    pub fn from_properties(kind: DeviceType, props: &BTreeMap<String, String>) -> Self {
        let precisions = props
            .get("OPTIMIZATION_CAPABILITIES")
            .map(|caps| {
                caps.split([' ', ',', '[', ']', '\''])
                    .filter_map(|c| match c {
                        "FP32" => Some(Precision::F32),
                        "FP16" => Some(Precision::F16),
                        "BF16" => Some(Precision::Bf16),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let npu = kind == DeviceType::IntelNpu;
        DeviceTraits {
            static_shapes: npu,
            precisions,
            default_precision: props
                .get("INFERENCE_PRECISION_HINT")
                .and_then(|p| p.parse().ok()),
            one_request_at_a_time: npu,
        }
    }
}

/// Reads [`PROPERTIES`] of OpenVINO device `name` (those it does not report are left out).
pub fn read_properties(core: &Core, name: &str) -> BTreeMap<String, String> {
    let device = OvDevice::from(name);
    PROPERTIES
        .iter()
        .filter_map(|key| {
            core.get_property(&device, &PropertyKey::Other((*key).into()))
                .ok()
                .map(|v| (key.to_string(), v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_properties_of_this_kind_of_host_give_a_dynamic_f32_device() {
        let props: BTreeMap<String, String> = [
            ("OPTIMIZATION_CAPABILITIES", "FP32 INT8 BIN EXPORT_IMPORT"),
            ("INFERENCE_PRECISION_HINT", "f32"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let t = DeviceTraits::from_properties(DeviceType::Cpu, &props);
        assert!(!t.static_shapes && !t.one_request_at_a_time);
        assert_eq!(t.precisions, vec![Precision::F32]);
        assert_eq!(t.default_precision, Some(Precision::F32));
    }
}
