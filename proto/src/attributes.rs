//! Well-known keys of `Device.attributes` that more than one crate reads.

/// CUDA ordinal of an NVIDIA GPU: its rank by PCI bus id, the order CUDA uses under
/// `CUDA_DEVICE_ORDER=PCI_BUS_ID` (set by the switchyard binary before CUDA loads). Discovery
/// writes it from NVML's PCI bus ids; the agent addresses the GPU with it.
pub const CUDA_ORDINAL: &str = "cuda_ordinal";

/// The environment variable and value that make CUDA number devices in PCI bus order.
pub const CUDA_DEVICE_ORDER: (&str, &str) = ("CUDA_DEVICE_ORDER", "PCI_BUS_ID");
