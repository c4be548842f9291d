//! Short, stable, user-facing names of the protocol enums (`cpu`, `nvidia_gpu`, `classify`,
//! `ready`, ...), used in tables, JSON output, config files and metric labels.

use crate::v1::{DeviceHealth, DeviceKind, NodeState, StageKind, TopsSource};

macro_rules! short_names {
    ($ty:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// The short name users see and type.
            pub fn short_name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)*
                }
            }

            /// Parses a short name (case-insensitive). Returns `None` for unknown names.
            pub fn from_short_name(s: &str) -> Option<Self> {
                let s = s.to_ascii_lowercase();
                match s.as_str() {
                    $($name => Some($ty::$variant),)*
                    _ => None,
                }
            }

            /// Every short name, for error messages.
            pub fn all_short_names() -> &'static [&'static str] {
                &[$($name),*]
            }
        }
    };
}

short_names!(DeviceKind {
    Unspecified => "unspecified",
    Cpu => "cpu",
    NvidiaGpu => "nvidia_gpu",
    IntelGpu => "intel_gpu",
    IntelNpu => "intel_npu",
    Ncs2 => "ncs2",
    VulkanGpu => "vulkan_gpu",
});

short_names!(TopsSource {
    Unknown => "unknown",
    Catalog => "catalog",
    DeviceProperty => "device_property",
    Measured => "measured",
});

short_names!(StageKind {
    Unspecified => "unspecified",
    Classify => "classify",
    Embed => "embed",
    Generate => "generate",
});

short_names!(NodeState {
    Unspecified => "unspecified",
    Ready => "ready",
    Lost => "lost",
    Draining => "draining",
});

short_names!(DeviceHealth {
    Unspecified => "unspecified",
    Healthy => "healthy",
    Degraded => "degraded",
    Unavailable => "unavailable",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_round_trip() {
        for name in DeviceKind::all_short_names() {
            let kind = DeviceKind::from_short_name(name).expect("known name");
            assert_eq!(kind.short_name(), *name);
        }
        assert_eq!(
            DeviceKind::from_short_name("NVIDIA_GPU"),
            Some(DeviceKind::NvidiaGpu)
        );
        assert_eq!(DeviceKind::from_short_name("tpu"), None);
        assert_eq!(StageKind::from_short_name("embed"), Some(StageKind::Embed));
    }
}
