//! Wire conversions between the protocol enums and the runtime-agnostic core types: the one
//! place a stage kind or device kind crosses the wire boundary.

use switchyard_backend_core::{DeviceType, StageKind};

use crate::v1;

impl From<StageKind> for v1::StageKind {
    fn from(stage: StageKind) -> Self {
        match stage {
            StageKind::Classify => v1::StageKind::Classify,
            StageKind::Embed => v1::StageKind::Embed,
            StageKind::Generate => v1::StageKind::Generate,
        }
    }
}

/// The wire value (`i32`) of a core stage kind, as protobuf messages carry it.
pub fn stage_to_wire(stage: StageKind) -> i32 {
    v1::StageKind::from(stage) as i32
}

/// The core stage kind of a wire value; `None` for `STAGE_KIND_UNSPECIFIED` and unknown
/// values (callers refuse those with a message naming the field).
pub fn stage_from_wire(raw: i32) -> Option<StageKind> {
    match v1::StageKind::try_from(raw).ok()? {
        v1::StageKind::Classify => Some(StageKind::Classify),
        v1::StageKind::Embed => Some(StageKind::Embed),
        v1::StageKind::Generate => Some(StageKind::Generate),
        v1::StageKind::Unspecified => None,
    }
}

impl From<v1::DeviceKind> for DeviceType {
    /// The backend-side device family of a protocol device kind (unspecified reads as CPU,
    /// the device every node has).
    fn from(kind: v1::DeviceKind) -> Self {
        match kind {
            v1::DeviceKind::NvidiaGpu => DeviceType::NvidiaGpu,
            v1::DeviceKind::IntelGpu => DeviceType::IntelGpu,
            v1::DeviceKind::IntelNpu => DeviceType::IntelNpu,
            v1::DeviceKind::Ncs2 => DeviceType::Ncs2,
            v1::DeviceKind::VulkanGpu => DeviceType::VulkanGpu,
            v1::DeviceKind::Cpu | v1::DeviceKind::Unspecified => DeviceType::Cpu,
        }
    }
}

impl From<DeviceType> for v1::DeviceKind {
    fn from(kind: DeviceType) -> Self {
        match kind {
            DeviceType::Cpu => v1::DeviceKind::Cpu,
            DeviceType::NvidiaGpu => v1::DeviceKind::NvidiaGpu,
            DeviceType::IntelGpu => v1::DeviceKind::IntelGpu,
            DeviceType::IntelNpu => v1::DeviceKind::IntelNpu,
            DeviceType::Ncs2 => v1::DeviceKind::Ncs2,
            DeviceType::VulkanGpu => v1::DeviceKind::VulkanGpu,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_kinds_round_trip_and_unspecified_is_refused() {
        for s in [StageKind::Classify, StageKind::Embed, StageKind::Generate] {
            assert_eq!(stage_from_wire(stage_to_wire(s)), Some(s));
        }
        assert_eq!(stage_from_wire(0), None);
        assert_eq!(stage_from_wire(99), None);
    }

    #[test]
    fn device_kinds_round_trip_and_unspecified_reads_as_cpu() {
        for t in [
            DeviceType::Cpu,
            DeviceType::NvidiaGpu,
            DeviceType::IntelGpu,
            DeviceType::IntelNpu,
            DeviceType::Ncs2,
            DeviceType::VulkanGpu,
        ] {
            assert_eq!(DeviceType::from(v1::DeviceKind::from(t)), t);
        }
        assert_eq!(
            DeviceType::from(v1::DeviceKind::Unspecified),
            DeviceType::Cpu
        );
    }
}
