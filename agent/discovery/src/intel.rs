//! Intel GPUs and NPUs: Level Zero devices and sysfs PCI devices merged into one inventory
//! entry each (Level Zero gives the UUID and memory; sysfs gives the driver, device nodes and
//! the devices Level Zero cannot see).

use super::*;

impl Discovery {
    pub(crate) fn scan_intel(&mut self, inv: &mut Inventory, host_mem: Option<(u64, u64)>) {
        let zes: Vec<ZeDevice> = match &self.l0 {
            Some(l0) => match l0.devices() {
                Ok(v) => v.into_iter().filter(|d| d.vendor_id == 0x8086).collect(),
                Err(e) => {
                    inv.notes
                        .push(note("warn", format!("Intel Level Zero: {e}")));
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        self.merge_intel(inv, zes, host_mem);
    }

    /// Joins sysfs PCI functions with Level Zero devices (by PCI address, else by a unique
    /// PCI device id); Level Zero devices without a sysfs entry are kept on their own.
    pub(crate) fn merge_intel(
        &mut self,
        inv: &mut Inventory,
        mut zes: Vec<ZeDevice>,
        host_mem: Option<(u64, u64)>,
    ) {
        let pcis = intel_sysfs::scan(&self.root);
        self.intel.clear();
        let mut found: Vec<(IntelClass, Device)> = Vec::new();
        for pci in pcis {
            // Match Level Zero by PCI address, else by device id when only one such device.
            let pos = zes
                .iter()
                .position(|z| z.pci_address.as_deref() == Some(pci.pci_address.as_str()))
                .or_else(|| {
                    let same: Vec<usize> = zes
                        .iter()
                        .enumerate()
                        .filter(|(_, z)| z.device_id == u32::from(pci.device_id))
                        .map(|(i, _)| i)
                        .collect();
                    (same.len() == 1).then(|| same[0])
                });
            let ze = pos.map(|i| zes.remove(i));
            found.push(self.intel_device(Some(pci), ze, host_mem));
        }
        for ze in zes {
            found.push(self.intel_device(None, Some(ze), host_mem));
        }
        found.sort_by_key(|(c, _)| matches!(c, IntelClass::Npu));
        inv.devices.extend(found.into_iter().map(|(_, d)| d));
    }

    pub(crate) fn intel_device(
        &mut self,
        pci: Option<IntelPci>,
        ze: Option<ZeDevice>,
        host_mem: Option<(u64, u64)>,
    ) -> (IntelClass, Device) {
        let class = match (&pci, &ze) {
            (Some(p), _) => p.class,
            (None, Some(z)) if z.device_type == ZE_DEVICE_TYPE_VPU => IntelClass::Npu,
            _ => IntelClass::Gpu,
        };
        let device_id = pci
            .as_ref()
            .map(|p| p.device_id)
            .or_else(|| ze.as_ref().and_then(|z| u16::try_from(z.device_id).ok()))
            .unwrap_or(0);
        let known = intel_by_pci_id(device_id);
        let pci_address = pci
            .as_ref()
            .map(|p| p.pci_address.clone())
            .unwrap_or_default();
        let id = match (
            ze.as_ref().and_then(|z| z.uuid.clone()),
            pci_address.is_empty(),
        ) {
            (Some(u), _) => u,
            (None, false) => format!("pci-{pci_address}"),
            (None, true) => format!("intel-{device_id:04x}"),
        };
        let model = match (known, &ze) {
            (Some(k), _) => k.name.to_string(),
            (None, Some(z)) if !z.name.is_empty() => z.name.clone(),
            _ => intel_sysfs::model_name(class, device_id),
        };
        let integrated = known.map(|k| k.integrated).unwrap_or(false)
            || ze.as_ref().is_some_and(|z| z.integrated)
            || class == IntelClass::Npu;
        let catalog = known.and_then(|k| k.catalog.as_ref());
        let (mem_total, mem_source) = if integrated {
            (
                host_mem.map(|m| m.0).unwrap_or(0),
                "shared with host (MemTotal)",
            )
        } else if let Some(m) = ze.as_ref().map(|z| z.memory_total_bytes).filter(|m| *m > 0) {
            (m, "level_zero")
        } else if let Some(m) = pci.as_ref().and_then(|p| p.memory_total_bytes) {
            (m, "sysfs")
        } else if let Some(m) = catalog.and_then(|c| c.memory_bytes) {
            (m, "catalog")
        } else {
            (0, "unknown")
        };
        let mem_free = if integrated {
            host_mem.map(|m| m.1).unwrap_or(0)
        } else {
            let used = pci.as_ref().and_then(|p| p.memory_used_bytes).unwrap_or(0);
            mem_total.saturating_sub(used)
        };
        let (kind, max_conc) = match class {
            IntelClass::Gpu => (DeviceKind::IntelGpu, nvidia::GPU_MAX_CONCURRENCY),
            IntelClass::Npu => (DeviceKind::IntelNpu, 1),
        };
        let mut d = Device {
            id: id.clone(),
            kind: kind as i32,
            vendor: "Intel".into(),
            model: model.clone(),
            memory_total_bytes: mem_total,
            memory_free_bytes: mem_free,
            tops: Some(tops_from(catalog, &model)),
            health: DeviceHealth::Healthy as i32,
            max_concurrency: max_conc,
            ..Default::default()
        };
        let a = &mut d.attributes;
        a.insert("pci_device_id".into(), format!("0x{device_id:04x}"));
        a.insert("memory_source".into(), mem_source.into());
        if !pci_address.is_empty() {
            a.insert("pci_bus_id".into(), pci_address);
        }
        if let Some(p) = &pci {
            a.insert("driver".into(), p.driver.clone());
            if let Some(n) = &p.node {
                a.insert("node".into(), n.clone());
                let acc = access::check_node(&self.root, n, &self.cfg.identity);
                if let Some(r) = acc.reason() {
                    d.health = DeviceHealth::Degraded as i32;
                    d.health_reason = r;
                }
            }
        }
        if let Some(z) = &ze {
            a.insert("level_zero_name".into(), z.name.clone());
            if let Some(u) = &z.uuid {
                a.insert("uuid".into(), u.clone());
            }
            a.insert("core_clock_mhz".into(), z.core_clock_mhz.to_string());
        }
        self.intel.insert(id, IntelState { pci, ze });
        (class, d)
    }
}
