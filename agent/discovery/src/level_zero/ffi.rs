//! The C side of the Level Zero binding: result and structure-type codes, `#[repr(C)]`
//! struct layouts of loader 1.8's `ze_api.h` / `zes_api.h`, and the entry points' types.

use std::ffi::{c_char, c_void};

pub(super) type Handle = *mut c_void;

pub(super) const ZE_RESULT_SUCCESS: u32 = 0;
/// `ZE_RESULT_ERROR_UNINITIALIZED`: what `zeInit` answers without an Intel driver.
pub const ZE_RESULT_ERROR_UNINITIALIZED: u32 = 0x7800_0001;
pub(super) const ZE_STRUCTURE_TYPE_DEVICE_PROPERTIES: u32 = 0x3;
pub(super) const ZE_STRUCTURE_TYPE_DEVICE_MEMORY_PROPERTIES: u32 = 0x7;
pub(super) const ZE_STRUCTURE_TYPE_PCI_EXT_PROPERTIES: u32 = 0x10008;
pub(super) const ZES_STRUCTURE_TYPE_ENGINE_PROPERTIES: u32 = 0x5;
pub(super) const ZES_STRUCTURE_TYPE_MEM_STATE: u32 = 0x1e;
/// `ZE_DEVICE_TYPE_GPU`.
pub const ZE_DEVICE_TYPE_GPU: u32 = 1;
/// `ZE_DEVICE_TYPE_VPU`: an NPU.
pub const ZE_DEVICE_TYPE_VPU: u32 = 5;
pub(super) const ZE_DEVICE_PROPERTY_FLAG_INTEGRATED: u32 = 1;
pub(super) const ZE_DEVICE_PROPERTY_FLAG_SUBDEVICE: u32 = 2;
pub(super) const ZES_ENGINE_GROUP_ALL: u32 = 0;

/// `ze_device_properties_t` (368 bytes on x86-64).
#[repr(C)]
pub(super) struct ZeDeviceProperties {
    pub(super) stype: u32,
    pub(super) p_next: *mut c_void,
    pub(super) device_type: u32,
    pub(super) vendor_id: u32,
    pub(super) device_id: u32,
    pub(super) flags: u32,
    pub(super) subdevice_id: u32,
    pub(super) core_clock_rate: u32,
    pub(super) max_mem_alloc_size: u64,
    pub(super) max_hardware_contexts: u32,
    pub(super) max_command_queue_priority: u32,
    pub(super) num_threads_per_eu: u32,
    pub(super) physical_eu_simd_width: u32,
    pub(super) num_eus_per_subslice: u32,
    pub(super) num_subslices_per_slice: u32,
    pub(super) num_slices: u32,
    pub(super) timer_resolution: u64,
    pub(super) timestamp_valid_bits: u32,
    pub(super) kernel_timestamp_valid_bits: u32,
    pub(super) uuid: [u8; 16],
    pub(super) name: [c_char; 256],
}

/// `ze_device_memory_properties_t` (296 bytes).
#[repr(C)]
pub(super) struct ZeDeviceMemoryProperties {
    pub(super) stype: u32,
    pub(super) p_next: *mut c_void,
    pub(super) flags: u32,
    pub(super) max_clock_rate: u32,
    pub(super) max_bus_width: u32,
    pub(super) total_size: u64,
    pub(super) name: [c_char; 256],
}

/// `ze_pci_address_ext_t`.
#[repr(C)]
#[derive(Default)]
pub(super) struct ZePciAddress {
    pub(super) domain: u32,
    pub(super) bus: u32,
    pub(super) device: u32,
    pub(super) function: u32,
}

/// `ze_pci_speed_ext_t`.
#[repr(C)]
#[derive(Default)]
pub(super) struct ZePciSpeed {
    pub(super) gen_version: i32,
    pub(super) width: i32,
    pub(super) max_bandwidth: i64,
}

/// `ze_pci_ext_properties_t` (48 bytes).
#[repr(C)]
pub(super) struct ZePciExtProperties {
    pub(super) stype: u32,
    pub(super) p_next: *mut c_void,
    pub(super) address: ZePciAddress,
    pub(super) max_speed: ZePciSpeed,
}

/// `zes_mem_state_t` (40 bytes).
#[repr(C)]
pub(super) struct ZesMemState {
    pub(super) stype: u32,
    pub(super) p_next: *const c_void,
    pub(super) health: u32,
    pub(super) free: u64,
    pub(super) size: u64,
}

/// `zes_engine_properties_t` (32 bytes).
#[repr(C)]
pub(super) struct ZesEngineProperties {
    pub(super) stype: u32,
    pub(super) p_next: *mut c_void,
    pub(super) engine_type: u32,
    pub(super) on_subdevice: u8,
    pub(super) subdevice_id: u32,
}

/// `zes_engine_stats_t` (16 bytes).
#[repr(C)]
#[derive(Default, Clone, Copy)]
pub(super) struct ZesEngineStats {
    pub(super) active_time: u64,
    pub(super) timestamp: u64,
}

pub(super) type FnInit = unsafe extern "C" fn(u32) -> u32;
pub(super) type FnDriverGet = unsafe extern "C" fn(*mut u32, *mut Handle) -> u32;
pub(super) type FnDeviceGet = unsafe extern "C" fn(Handle, *mut u32, *mut Handle) -> u32;
pub(super) type FnDeviceProps = unsafe extern "C" fn(Handle, *mut ZeDeviceProperties) -> u32;
pub(super) type FnMemProps =
    unsafe extern "C" fn(Handle, *mut u32, *mut ZeDeviceMemoryProperties) -> u32;
pub(super) type FnPciProps = unsafe extern "C" fn(Handle, *mut ZePciExtProperties) -> u32;
pub(super) type FnEnum = unsafe extern "C" fn(Handle, *mut u32, *mut Handle) -> u32;
pub(super) type FnMemState = unsafe extern "C" fn(Handle, *mut ZesMemState) -> u32;
pub(super) type FnEngineProps = unsafe extern "C" fn(Handle, *mut ZesEngineProperties) -> u32;
pub(super) type FnEngineActivity = unsafe extern "C" fn(Handle, *mut ZesEngineStats) -> u32;
