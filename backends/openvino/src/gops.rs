//! The device's own throughput figure: OpenVINO's read-only `DEVICE_GOPS` property
//! (`ov::device::gops`, a map from element type to giga-operations per second). The GPU and
//! NPU plugins report it; the CPU plugin does not.

use openvino::{Core, DeviceType as OvDevice, PropertyKey};
use switchyard_backend_core::{BackendError, DeviceTops};

/// Property name of `ov::device::gops`.
pub const DEVICE_GOPS: &str = "DEVICE_GOPS";

/// The int8 GOPS in a `DEVICE_GOPS` value as the C API prints it (`{f16:…,f32:…,i8:…}`),
/// with the precision it was read for: `i8`, else `u8`. `None` when neither is listed (or
/// the figure is not a positive number).
pub fn parse_int8_gops(value: &str) -> Option<(f64, &'static str)> {
    let body = value.trim().trim_start_matches('{').trim_end_matches('}');
    let entries: Vec<(&str, f64)> = body
        .split(',')
        .filter_map(|entry| {
            let (key, number) = entry.split_once(':')?;
            let number: f64 = number.trim().parse().ok()?;
            (number.is_finite() && number > 0.0).then_some((key.trim(), number))
        })
        .collect();
    ["i8", "u8"].into_iter().find_map(|precision| {
        entries
            .iter()
            .find(|(key, _)| *key == precision)
            .map(|(_, gops)| (*gops, precision))
    })
}

/// Reads `DEVICE_GOPS` of the OpenVINO device `name`. A device whose plugin does not
/// support the property gives `Ok(None)`.
pub fn device_tops(core: &Core, name: &str) -> Result<Option<DeviceTops>, BackendError> {
    let value = match core.get_property(
        &OvDevice::from(name),
        &PropertyKey::Other(DEVICE_GOPS.into()),
    ) {
        Ok(v) => v,
        Err(e) => {
            tracing::debug!(device = name, error = %e, "no DEVICE_GOPS");
            return Ok(None);
        }
    };
    Ok(parse_int8_gops(&value).map(|(gops, precision)| DeviceTops {
        int8_tops: gops / 1000.0,
        detail: format!("OpenVINO {DEVICE_GOPS} of {name}: {gops} GOPS ({precision})"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_gops_is_read_from_the_printed_map() {
        // As ov::util::Write<std::map> prints ov::device::gops of a GPU.
        let v = "{f16:23040.000000,f32:11520.000000,i8:46080.000000,u8:46080.000000}";
        assert_eq!(parse_int8_gops(v), Some((46080.0, "i8")));
        assert_eq!(parse_int8_gops("{u8:1000,f32:5}"), Some((1000.0, "u8")));
        // No integer precision, garbage, zero or empty: no figure rather than a guess.
        assert_eq!(parse_int8_gops("{f16:100,f32:50}"), None);
        assert_eq!(parse_int8_gops("{i8:abc}"), None);
        assert_eq!(parse_int8_gops("{i8:0}"), None);
        assert_eq!(parse_int8_gops(""), None);
    }
}
