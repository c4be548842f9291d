//! Intel Neural Compute Stick 2 (Movidius Myriad X) on USB.
//!
//! The stick enumerates as `03e7:2485` until the runtime uploads its firmware, then
//! re-enumerates as `03e7:f63b` (new device number, same port). The id is therefore keyed on
//! the USB port — `usb-<busnum>-<devpath>` — so a rescan after boot or a hot re-plug into the
//! same port gives the same device, never two.
//!
//! Running it needs the legacy OpenVINO 2022.3 LTS MYRIAD plugin (OpenVINO 2023.0 dropped
//! it): `libmyriadPlugin.so` under `$SWITCHYARD_OPENVINO_2022_DIR` or `/opt/intel/openvino_2022*`.

use std::path::{Path, PathBuf};

use crate::fsutil::{Root, read_trim};

/// Movidius USB vendor id.
pub const VENDOR: &str = "03e7";
/// Product id before firmware boot.
pub const PRODUCT_UNBOOTED: &str = "2485";
/// Product id after firmware boot.
pub const PRODUCT_BOOTED: &str = "f63b";

/// One stick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ncs2 {
    /// `usb-<busnum>-<devpath>`.
    pub id: String,
    /// Whether the firmware is booted (`f63b`).
    pub booted: bool,
    /// USB bus number.
    pub busnum: u32,
    /// Port path on the bus (`1.4`).
    pub devpath: String,
    /// Host path of the usbfs node (`/dev/bus/usb/001/004`).
    pub node: Option<String>,
    /// USB serial, when exposed.
    pub serial: Option<String>,
}

/// Sticks under `root`'s `/sys/bus/usb/devices`, one per port.
pub fn scan(root: &Root) -> Vec<Ncs2> {
    let mut out: Vec<Ncs2> = Vec::new();
    for name in root.list("/sys/bus/usb/devices") {
        let dir = root.path(format!("/sys/bus/usb/devices/{name}"));
        let vendor = read_trim(&dir.join("idVendor")).unwrap_or_default();
        let product = read_trim(&dir.join("idProduct")).unwrap_or_default();
        if !vendor.eq_ignore_ascii_case(VENDOR) {
            continue;
        }
        let booted = if product.eq_ignore_ascii_case(PRODUCT_BOOTED) {
            true
        } else if product.eq_ignore_ascii_case(PRODUCT_UNBOOTED) {
            false
        } else {
            continue;
        };
        let busnum: u32 = read_trim(&dir.join("busnum"))
            .and_then(|b| b.parse().ok())
            .or_else(|| name.split('-').next().and_then(|b| b.parse().ok()))
            .unwrap_or(0);
        let devpath = read_trim(&dir.join("devpath"))
            .or_else(|| name.split_once('-').map(|(_, p)| p.to_string()))
            .unwrap_or_else(|| name.clone());
        let devnum: Option<u32> = read_trim(&dir.join("devnum")).and_then(|d| d.parse().ok());
        let id = format!("usb-{busnum}-{devpath}");
        if out.iter().any(|s| s.id == id) {
            continue;
        }
        out.push(Ncs2 {
            id,
            booted,
            busnum,
            devpath,
            node: devnum.map(|d| format!("/dev/bus/usb/{busnum:03}/{d:03}")),
            serial: read_trim(&dir.join("serial")),
        });
    }
    out
}

/// Where the OpenVINO 2022.3 MYRIAD plugin was found, if anywhere.
pub fn find_myriad_runtime(root: &Root, env_dir: Option<&Path>) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = env_dir {
        dirs.push(d.to_path_buf());
    }
    let intel = root.path("/opt/intel");
    for n in root.list("/opt/intel") {
        if n.starts_with("openvino_2022") {
            dirs.push(intel.join(n));
        }
    }
    dirs.iter()
        .find_map(|d| find_file(d, "libmyriadPlugin.so", 5))
}

fn find_file(dir: &Path, name: &str, depth: u32) -> Option<PathBuf> {
    let candidate = dir.join(name);
    if candidate.is_file() {
        return Some(candidate);
    }
    if depth == 0 {
        return None;
    }
    let rd = std::fs::read_dir(dir).ok()?;
    let mut subdirs: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    subdirs.sort();
    subdirs.iter().find_map(|d| find_file(d, name, depth - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_runtime_in_versioned_dir() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir
            .path()
            .join("opt/intel/openvino_2022.3.1/runtime/lib/intel64");
        std::fs::create_dir_all(&lib).unwrap();
        let root = Root::new(dir.path());
        assert_eq!(find_myriad_runtime(&root, None), None);
        std::fs::write(lib.join("libmyriadPlugin.so"), b"").unwrap();
        assert_eq!(
            find_myriad_runtime(&root, None),
            Some(lib.join("libmyriadPlugin.so"))
        );
    }
}
