//! Intel GPUs and NPUs through Level Zero: a small `dlopen` binding of `libze_loader.so.1`
//! (Debian `libze1`). Struct layouts follow `level_zero/ze_api.h` and `zes_api.h` of loader
//! 1.8 (verified with `offsetof` against the installed headers; the unit tests pin the sizes).
//!
//! No loader, or `zeInit` answering `ZE_RESULT_ERROR_UNINITIALIZED` (0x78000001, no Intel
//! driver/device), means no Level Zero devices and a debug log line.
//!
//! Sysman (free memory, engine activity) is used only when `ZES_ENABLE_SYSMAN=1` was in the
//! environment before `zeInit`: with loader 1.8 that is what makes core device handles valid
//! Sysman handles (`zesInit` only exists from loader 1.10). This crate never sets the variable
//! itself (changing the environment of a running multi-threaded agent is unsound).

// A hand-written dlopen binding of a C library: every call into it is `unsafe`.
#![allow(unsafe_code)]

use std::ffi::CStr;

use libloading::{Library, Symbol};

use crate::error::DiscoveryError;

mod ffi;

use ffi::*;
pub use ffi::{ZE_DEVICE_TYPE_GPU, ZE_DEVICE_TYPE_VPU, ZE_RESULT_ERROR_UNINITIALIZED};

/// One Level Zero device.
#[derive(Debug, Clone, PartialEq)]
pub struct ZeDevice {
    /// `ZE_DEVICE_TYPE_GPU` or `ZE_DEVICE_TYPE_VPU` (others are skipped).
    pub device_type: u32,
    /// PCI vendor id.
    pub vendor_id: u32,
    /// PCI device id.
    pub device_id: u32,
    /// Driver's device name.
    pub name: String,
    /// Device UUID formatted `8-4-4-4-12`, `None` when all zero.
    pub uuid: Option<String>,
    /// PCI address `dddd:bb:dd.f` when the PCI extension answers.
    pub pci_address: Option<String>,
    /// Sum of the device-local memory sizes, bytes.
    pub memory_total_bytes: u64,
    /// Integrated with the host (shares host memory).
    pub integrated: bool,
    /// Core clock, MHz.
    pub core_clock_mhz: u32,
    index: usize,
}

#[cfg(test)]
impl ZeDevice {
    /// A device as Level Zero would describe it, for merge tests.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn for_test(
        device_type: u32,
        device_id: u32,
        name: &str,
        uuid: Option<&str>,
        pci_address: Option<&str>,
        memory_total_bytes: u64,
        integrated: bool,
    ) -> Self {
        Self {
            device_type,
            vendor_id: 0x8086,
            device_id,
            name: name.to_string(),
            uuid: uuid.map(str::to_string),
            pci_address: pci_address.map(str::to_string),
            memory_total_bytes,
            integrated,
            core_clock_mhz: 2400,
            index: usize::MAX,
        }
    }
}

/// Sysman live figures of one device.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ZeTelemetry {
    /// Free device memory (sum of memory modules), when Sysman reports it.
    pub memory_free_bytes: Option<u64>,
    /// Engine-group-all activity since the previous call, 0–1.
    pub utilization_ratio: Option<f64>,
}

/// A loaded Level Zero loader with its devices.
pub struct LevelZero {
    lib: Library,
    handles: Vec<Handle>,
    sysman: bool,
    last_activity: Vec<Option<ZesEngineStats>>,
}

impl std::fmt::Debug for LevelZero {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LevelZero")
            .field("devices", &self.handles.len())
            .field("sysman", &self.sysman)
            .finish()
    }
}

// SAFETY: Level Zero handles are thread-safe per the spec ("all API functions are
// thread-safe"), and `LevelZero` is only used through `&mut self`.
unsafe impl Send for LevelZero {}

fn check(call: &'static str, code: u32) -> Result<(), DiscoveryError> {
    if code == ZE_RESULT_SUCCESS {
        Ok(())
    } else {
        Err(DiscoveryError::LevelZero { call, code })
    }
}

/// Formats a 16-byte UUID as `8-4-4-4-12` hex; `None` when all zero.
pub fn format_uuid(b: &[u8; 16]) -> Option<String> {
    if b.iter().all(|x| *x == 0) {
        return None;
    }
    let h: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    ))
}

impl LevelZero {
    /// Loads `libze_loader.so.1` and initialises it. `Ok(None)` when the loader is missing or
    /// no Level Zero driver has a device (`0x78000001`).
    pub fn init() -> Result<Option<Self>, DiscoveryError> {
        // SAFETY: loading the Level Zero loader runs its initialisers, which only register
        // drivers; the library stays loaded as long as `Self`.
        let lib = match unsafe { Library::new("libze_loader.so.1") } {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "Level Zero loader not found: no Level Zero devices");
                return Ok(None);
            }
        };
        let sysman = std::env::var("ZES_ENABLE_SYSMAN").is_ok_and(|v| v == "1");
        let handles = {
            // SAFETY: symbol types match ze_api.h of loader 1.8.
            let init: Symbol<FnInit> = sym(&lib, b"zeInit\0")?;
            let driver_get: Symbol<FnDriverGet> = sym(&lib, b"zeDriverGet\0")?;
            let device_get: Symbol<FnDeviceGet> = sym(&lib, b"zeDeviceGet\0")?;
            // SAFETY: zeInit(0) initialises all driver types; no pointers involved.
            let code = unsafe { init(0) };
            if code == ZE_RESULT_ERROR_UNINITIALIZED {
                tracing::debug!("zeInit: no Level Zero driver/device (0x78000001)");
                return Ok(None);
            }
            check("zeInit", code)?;
            let mut n = 0u32;
            // SAFETY: count query with a null output array, as the API allows.
            check("zeDriverGet", unsafe {
                driver_get(&mut n, std::ptr::null_mut())
            })?;
            let mut drivers: Vec<Handle> = vec![std::ptr::null_mut(); n as usize];
            // SAFETY: `drivers` holds `n` slots.
            check("zeDriverGet", unsafe {
                driver_get(&mut n, drivers.as_mut_ptr())
            })?;
            drivers.truncate(n as usize);
            let mut handles = Vec::new();
            for drv in drivers {
                let mut c = 0u32;
                // SAFETY: count query for a valid driver handle.
                check("zeDeviceGet", unsafe {
                    device_get(drv, &mut c, std::ptr::null_mut())
                })?;
                let mut devs: Vec<Handle> = vec![std::ptr::null_mut(); c as usize];
                // SAFETY: `devs` holds `c` slots.
                check("zeDeviceGet", unsafe {
                    device_get(drv, &mut c, devs.as_mut_ptr())
                })?;
                devs.truncate(c as usize);
                handles.extend(devs);
            }
            handles
        };
        let last_activity = vec![None; handles.len()];
        Ok(Some(Self {
            lib,
            handles,
            sysman,
            last_activity,
        }))
    }

    /// Whether Sysman telemetry is available.
    pub fn sysman(&self) -> bool {
        self.sysman
    }

    /// GPUs and NPUs (sub-devices and other device types are skipped).
    pub fn devices(&self) -> Result<Vec<ZeDevice>, DiscoveryError> {
        let props: Symbol<FnDeviceProps> = sym(&self.lib, b"zeDeviceGetProperties\0")?;
        let mem: Symbol<FnMemProps> = sym(&self.lib, b"zeDeviceGetMemoryProperties\0")?;
        let pci: Option<Symbol<FnPciProps>> = sym(&self.lib, b"zeDevicePciGetPropertiesExt\0").ok();
        let mut out = Vec::new();
        for (index, &h) in self.handles.iter().enumerate() {
            // SAFETY: all-zero is a valid bit pattern for this plain C struct.
            let mut p: ZeDeviceProperties = unsafe { std::mem::zeroed() };
            p.stype = ZE_STRUCTURE_TYPE_DEVICE_PROPERTIES;
            // SAFETY: `h` is a device handle from zeDeviceGet; `p` is a properly typed out-struct.
            check("zeDeviceGetProperties", unsafe { props(h, &mut p) })?;
            if p.flags & ZE_DEVICE_PROPERTY_FLAG_SUBDEVICE != 0
                || !matches!(p.device_type, ZE_DEVICE_TYPE_GPU | ZE_DEVICE_TYPE_VPU)
            {
                continue;
            }
            // SAFETY: the driver NUL-terminates `name` within its 256 bytes; the last byte is
            // forced to NUL to be sure.
            p.name[255] = 0;
            let name = unsafe { CStr::from_ptr(p.name.as_ptr()) }
                .to_string_lossy()
                .trim()
                .to_string();
            let mut count = 0u32;
            // SAFETY: count query.
            let mut total = 0u64;
            if unsafe { mem(h, &mut count, std::ptr::null_mut()) } == ZE_RESULT_SUCCESS && count > 0
            {
                let mut mp: Vec<ZeDeviceMemoryProperties> = (0..count)
                    .map(|_| {
                        // SAFETY: all-zero is valid for this C struct.
                        let mut m: ZeDeviceMemoryProperties = unsafe { std::mem::zeroed() };
                        m.stype = ZE_STRUCTURE_TYPE_DEVICE_MEMORY_PROPERTIES;
                        m
                    })
                    .collect();
                // SAFETY: `mp` holds `count` initialised structs.
                if unsafe { mem(h, &mut count, mp.as_mut_ptr()) } == ZE_RESULT_SUCCESS {
                    total = mp.iter().take(count as usize).map(|m| m.total_size).sum();
                }
            }
            let pci_address = pci.as_ref().and_then(|f| {
                let mut pp = ZePciExtProperties {
                    stype: ZE_STRUCTURE_TYPE_PCI_EXT_PROPERTIES,
                    p_next: std::ptr::null_mut(),
                    address: ZePciAddress::default(),
                    max_speed: ZePciSpeed::default(),
                };
                // SAFETY: typed out-struct for a valid device handle.
                (unsafe { f(h, &mut pp) } == ZE_RESULT_SUCCESS).then(|| {
                    format!(
                        "{:04x}:{:02x}:{:02x}.{:x}",
                        pp.address.domain, pp.address.bus, pp.address.device, pp.address.function
                    )
                })
            });
            out.push(ZeDevice {
                device_type: p.device_type,
                vendor_id: p.vendor_id,
                device_id: p.device_id,
                name,
                uuid: format_uuid(&p.uuid),
                pci_address,
                memory_total_bytes: total,
                integrated: p.flags & ZE_DEVICE_PROPERTY_FLAG_INTEGRATED != 0,
                core_clock_mhz: p.core_clock_rate,
                index,
            });
        }
        Ok(out)
    }

    /// Sysman figures of a device (empty when Sysman is off or does not answer).
    pub fn telemetry(&mut self, dev: &ZeDevice) -> ZeTelemetry {
        if !self.sysman {
            return ZeTelemetry::default();
        }
        let Some(&h) = self.handles.get(dev.index) else {
            return ZeTelemetry::default();
        };
        let mut t = ZeTelemetry::default();
        if let (Ok(enum_mem), Ok(state)) = (
            sym::<FnEnum>(&self.lib, b"zesDeviceEnumMemoryModules\0"),
            sym::<FnMemState>(&self.lib, b"zesMemoryGetState\0"),
        ) {
            let mods = enum_handles(&enum_mem, h);
            let mut free = 0u64;
            let mut any = false;
            for m in mods {
                let mut s = ZesMemState {
                    stype: ZES_STRUCTURE_TYPE_MEM_STATE,
                    p_next: std::ptr::null(),
                    health: 0,
                    free: 0,
                    size: 0,
                };
                // SAFETY: typed out-struct for a memory module handle.
                if unsafe { state(m, &mut s) } == ZE_RESULT_SUCCESS {
                    free += s.free;
                    any = true;
                }
            }
            t.memory_free_bytes = any.then_some(free);
        }
        if let (Ok(enum_eng), Ok(eprops), Ok(activity)) = (
            sym::<FnEnum>(&self.lib, b"zesDeviceEnumEngineGroups\0"),
            sym::<FnEngineProps>(&self.lib, b"zesEngineGetProperties\0"),
            sym::<FnEngineActivity>(&self.lib, b"zesEngineGetActivity\0"),
        ) {
            for e in enum_handles(&enum_eng, h) {
                let mut p = ZesEngineProperties {
                    stype: ZES_STRUCTURE_TYPE_ENGINE_PROPERTIES,
                    p_next: std::ptr::null_mut(),
                    engine_type: u32::MAX,
                    on_subdevice: 0,
                    subdevice_id: 0,
                };
                // SAFETY: typed out-struct for an engine handle.
                if unsafe { eprops(e, &mut p) } != ZE_RESULT_SUCCESS
                    || p.engine_type != ZES_ENGINE_GROUP_ALL
                    || p.on_subdevice != 0
                {
                    continue;
                }
                let mut s = ZesEngineStats::default();
                // SAFETY: typed out-struct for an engine handle.
                if unsafe { activity(e, &mut s) } == ZE_RESULT_SUCCESS {
                    if let Some(prev) = self.last_activity[dev.index] {
                        let dt = s.timestamp.saturating_sub(prev.timestamp);
                        if dt > 0 {
                            let da = s.active_time.saturating_sub(prev.active_time);
                            t.utilization_ratio = Some((da as f64 / dt as f64).clamp(0.0, 1.0));
                        }
                    }
                    self.last_activity[dev.index] = Some(s);
                }
                break;
            }
        }
        t
    }
}

fn enum_handles(f: &Symbol<FnEnum>, dev: Handle) -> Vec<Handle> {
    let mut n = 0u32;
    // SAFETY: count query with a null array.
    if unsafe { f(dev, &mut n, std::ptr::null_mut()) } != ZE_RESULT_SUCCESS || n == 0 {
        return Vec::new();
    }
    let mut v: Vec<Handle> = vec![std::ptr::null_mut(); n as usize];
    // SAFETY: `v` holds `n` slots.
    if unsafe { f(dev, &mut n, v.as_mut_ptr()) } != ZE_RESULT_SUCCESS {
        return Vec::new();
    }
    v.truncate(n as usize);
    v
}

fn sym<'l, T>(lib: &'l Library, name: &'static [u8]) -> Result<Symbol<'l, T>, DiscoveryError> {
    // SAFETY: callers name the C signature `T` declared in the Level Zero headers.
    unsafe { lib.get::<T>(name) }.map_err(|e| {
        tracing::debug!(error = %e, "Level Zero symbol missing");
        DiscoveryError::LevelZero {
            call: "dlsym",
            code: u32::MAX,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// Sizes and offsets printed by a C program compiled against loader 1.8's headers.
    #[test]
    fn struct_layouts_match_the_headers() {
        assert_eq!(size_of::<ZeDeviceProperties>(), 368);
        assert_eq!(offset_of!(ZeDeviceProperties, device_type), 16);
        assert_eq!(offset_of!(ZeDeviceProperties, uuid), 96);
        assert_eq!(offset_of!(ZeDeviceProperties, name), 112);
        assert_eq!(size_of::<ZeDeviceMemoryProperties>(), 296);
        assert_eq!(offset_of!(ZeDeviceMemoryProperties, total_size), 32);
        assert_eq!(size_of::<ZePciExtProperties>(), 48);
        assert_eq!(offset_of!(ZePciExtProperties, address), 16);
        assert_eq!(offset_of!(ZePciExtProperties, max_speed), 32);
        assert_eq!(size_of::<ZesMemState>(), 40);
        assert_eq!(offset_of!(ZesMemState, free), 24);
        assert_eq!(size_of::<ZesEngineProperties>(), 32);
        assert_eq!(offset_of!(ZesEngineProperties, subdevice_id), 24);
        assert_eq!(size_of::<ZesEngineStats>(), 16);
    }

    #[test]
    fn uuid_formatting() {
        let mut b = [0u8; 16];
        assert_eq!(format_uuid(&b), None);
        b[0] = 0x86;
        b[1] = 0x80;
        b[2] = 0xa0;
        b[3] = 0x56;
        b[15] = 1;
        assert_eq!(
            format_uuid(&b).unwrap(),
            "8680a056-0000-0000-0000-000000000001"
        );
    }

    /// On a machine without an Intel GPU/NPU (this CI host), init is `Ok(None)` whether the
    /// loader is installed or not — never an error.
    #[test]
    fn init_without_intel_hardware_is_none_or_devices() {
        match LevelZero::init() {
            Ok(None) => {}
            Ok(Some(l0)) => {
                // A real Intel machine: every listed device is a GPU or an NPU.
                for d in l0.devices().unwrap() {
                    assert!(matches!(
                        d.device_type,
                        ZE_DEVICE_TYPE_GPU | ZE_DEVICE_TYPE_VPU
                    ));
                }
            }
            Err(e) => panic!("Level Zero init must not fail without hardware: {e}"),
        }
    }
}
