//! Accelerator discovery: NVIDIA (NVML), Intel GPU/NPU (Level Zero + sysfs), NCS2 (USB), CPU, TOPS catalog
