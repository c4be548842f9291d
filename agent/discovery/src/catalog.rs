//! Vendor-published int8 **dense** TOPS and memory per accelerator model, each with its source.
//!
//! Rules: figures are int8 dense (vendors often headline sparse or FP4 figures: those are
//! halved or replaced, and the source string says so). A model that is not in the catalog
//! reports 0 TOPS with source `unknown` — never a guess.

use switchyard_proto::v1::{Tops, TopsSource};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// One catalog row.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogEntry {
    /// Marketing model name as shown in the inventory.
    pub model: &'static str,
    /// int8 dense TOPS.
    pub int8_tops: f64,
    /// Memory of the model, when fixed by the model (used only when the device reports none).
    pub memory_bytes: Option<u64>,
    /// Where the figure comes from.
    pub source: &'static str,
}

/// NVIDIA models, matched by their normalised NVML name (see [`normalize_nvidia_name`]).
const NVIDIA: &[(&[&str], CatalogEntry)] = &[
    (
        &["h200"],
        CatalogEntry {
            model: "NVIDIA H200 SXM",
            int8_tops: 1979.0,
            memory_bytes: Some(141 * 1_000_000_000),
            source: "NVIDIA H200 datasheet: INT8 Tensor Core 3,958 TOPS with sparsity (SXM) -> 1,979 dense",
        },
    ),
    (
        &["h200 nvl"],
        CatalogEntry {
            model: "NVIDIA H200 NVL",
            int8_tops: 1670.5,
            memory_bytes: Some(141 * 1_000_000_000),
            source: "NVIDIA H200 datasheet: INT8 Tensor Core 3,341 TOPS with sparsity (NVL) -> 1,670.5 dense",
        },
    ),
    (
        &["h100"],
        CatalogEntry {
            model: "NVIDIA H100 SXM",
            int8_tops: 1979.0,
            memory_bytes: Some(80 * GIB),
            source: "NVIDIA H100 datasheet: INT8 Tensor Core 3,958 TOPS with sparsity (SXM) -> 1,979 dense",
        },
    ),
    (
        &["h100 pcie"],
        CatalogEntry {
            model: "NVIDIA H100 PCIe",
            int8_tops: 1513.0,
            memory_bytes: Some(80 * GIB),
            source: "NVIDIA H100 datasheet: INT8 Tensor Core 3,026 TOPS with sparsity (PCIe) -> 1,513 dense",
        },
    ),
    (
        &["a100 sxm4", "a100"],
        CatalogEntry {
            model: "NVIDIA A100 SXM4",
            int8_tops: 624.0,
            memory_bytes: None,
            source: "NVIDIA A100 datasheet: INT8 Tensor Core 624 TOPS dense (1,248 with sparsity)",
        },
    ),
    (
        &["a100 pcie"],
        CatalogEntry {
            model: "NVIDIA A100 PCIe",
            int8_tops: 624.0,
            memory_bytes: None,
            source: "NVIDIA A100 datasheet: INT8 Tensor Core 624 TOPS dense (1,248 with sparsity)",
        },
    ),
    (
        &["rtx 3090"],
        CatalogEntry {
            model: "NVIDIA GeForce RTX 3090",
            int8_tops: 284.0,
            memory_bytes: Some(24 * GIB),
            source: "NVIDIA Ampere GA102 whitepaper: RTX 3090 peak INT8 Tensor 284 TOPS dense (568 sparse)",
        },
    ),
    (
        &["rtx 4090"],
        CatalogEntry {
            model: "NVIDIA GeForce RTX 4090",
            int8_tops: 660.6,
            memory_bytes: Some(24 * GIB),
            source: "NVIDIA Ada Lovelace whitepaper: RTX 4090 peak INT8 Tensor 660.6 TOPS dense (1,321.2 sparse)",
        },
    ),
    (
        &["rtx 4070 super"],
        CatalogEntry {
            model: "NVIDIA GeForce RTX 4070 SUPER",
            int8_tops: 284.0,
            memory_bytes: Some(12 * GIB),
            source: "NVIDIA RTX 4070 SUPER specs: 568 AI TOPS is the sparse figure -> 284 INT8 dense",
        },
    ),
    (
        &["rtx 5070 ti"],
        CatalogEntry {
            model: "NVIDIA GeForce RTX 5070 Ti",
            int8_tops: 351.0,
            memory_bytes: Some(16 * GIB),
            source: "NVIDIA Blackwell RTX specs: 1,406 AI TOPS is FP4 sparse -> about 351 INT8 dense",
        },
    ),
    (
        &["rtx 5090"],
        CatalogEntry {
            model: "NVIDIA GeForce RTX 5090",
            int8_tops: 838.0,
            memory_bytes: Some(32 * GIB),
            source: "NVIDIA Blackwell RTX specs: 3,352 AI TOPS is FP4 sparse -> about 838 INT8 dense",
        },
    ),
    (
        &["tesla t4", "t4"],
        CatalogEntry {
            model: "NVIDIA T4",
            int8_tops: 130.0,
            memory_bytes: Some(16 * GIB),
            source: "NVIDIA T4 datasheet: INT8 130 TOPS (Turing, no sparsity)",
        },
    ),
    (
        &["l4"],
        CatalogEntry {
            model: "NVIDIA L4",
            int8_tops: 242.5,
            memory_bytes: Some(24 * GIB),
            source: "NVIDIA L4 datasheet: INT8 Tensor Core 485 TOPS with sparsity -> 242.5 dense",
        },
    ),
];

/// Tokens of NVML names that do not change the chip (memory size, memory type, vendor words).
fn ignorable_token(t: &str) -> bool {
    matches!(
        t,
        "nvidia" | "geforce" | "hbm3" | "hbm2e" | "hbm3e" | "hbm2"
    ) || (t.ends_with("gb") && t[..t.len() - 2].chars().all(|c| c.is_ascii_digit()))
}

/// Normalises an NVML product name: lower case, `-`/`_` as spaces, vendor words and memory
/// sizes dropped. `NVIDIA A100-SXM4-80GB` → `a100 sxm4`, `NVIDIA H100 80GB HBM3` → `h100`.
pub fn normalize_nvidia_name(name: &str) -> String {
    name.to_ascii_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty() && !ignorable_token(t))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Catalog entry for an NVIDIA product name as NVML reports it. Exact match of the normalised
/// name, so `RTX 4070 Ti` never inherits the `RTX 4070 SUPER` figure.
pub fn nvidia_by_name(name: &str) -> Option<&'static CatalogEntry> {
    let norm = normalize_nvidia_name(name);
    NVIDIA
        .iter()
        .find(|(keys, _)| keys.contains(&norm.as_str()))
        .map(|(_, e)| e)
}

/// What an Intel PCI function is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntelClass {
    /// Discrete or integrated GPU.
    Gpu,
    /// NPU (driver intel_vpu).
    Npu,
}

/// One known Intel PCI device id.
#[derive(Debug, Clone)]
pub struct IntelModel {
    /// PCI device id.
    pub pci_device_id: u16,
    /// Marketing name.
    pub name: &'static str,
    /// GPU or NPU.
    pub class: IntelClass,
    /// Shares host memory (iGPU, NPU).
    pub integrated: bool,
    /// TOPS figure, when Intel publishes one (or one is derived from published specs).
    pub catalog: Option<CatalogEntry>,
}

const INTEL: &[IntelModel] = &[
    IntelModel {
        pci_device_id: 0x56a0,
        name: "Intel Arc A770",
        class: IntelClass::Gpu,
        integrated: false,
        catalog: Some(CatalogEntry {
            model: "Intel Arc A770",
            int8_tops: 262.0,
            memory_bytes: Some(16 * GIB),
            source: "derived: 512 XMX engines x 256 int8 ops/clk x 2.0 GHz = 262 TOPS (Intel publishes no int8 figure); 16 GB board",
        }),
    },
    IntelModel {
        pci_device_id: 0x56a1,
        name: "Intel Arc A750",
        class: IntelClass::Gpu,
        integrated: false,
        catalog: None,
    },
    IntelModel {
        pci_device_id: 0x56a5,
        name: "Intel Arc A380",
        class: IntelClass::Gpu,
        integrated: false,
        catalog: None,
    },
    IntelModel {
        pci_device_id: 0xe20b,
        name: "Intel Arc B580",
        class: IntelClass::Gpu,
        integrated: false,
        catalog: Some(CatalogEntry {
            model: "Intel Arc B580",
            int8_tops: 233.0,
            memory_bytes: Some(12 * GIB),
            source: "Intel Arc B580 specifications: 233 int8 TOPS, 12 GB GDDR6",
        }),
    },
    IntelModel {
        pci_device_id: 0xe20c,
        name: "Intel Arc B570",
        class: IntelClass::Gpu,
        integrated: false,
        catalog: None,
    },
    IntelModel {
        pci_device_id: 0x7d55,
        name: "Intel Arc Graphics (Meteor Lake)",
        class: IntelClass::Gpu,
        integrated: true,
        catalog: None,
    },
    IntelModel {
        pci_device_id: 0x64a0,
        name: "Intel Arc 140V/130V Graphics (Lunar Lake)",
        class: IntelClass::Gpu,
        integrated: true,
        catalog: None,
    },
    IntelModel {
        pci_device_id: 0x7d1d,
        name: "Intel AI Boost NPU (Meteor Lake)",
        class: IntelClass::Npu,
        integrated: true,
        catalog: Some(CatalogEntry {
            model: "Intel AI Boost NPU (Meteor Lake)",
            int8_tops: 11.0,
            memory_bytes: None,
            source: "Intel Core Ultra Series 1 (Meteor Lake): NPU up to 11 int8 TOPS",
        }),
    },
    IntelModel {
        pci_device_id: 0xad1d,
        name: "Intel AI Boost NPU (Arrow Lake)",
        class: IntelClass::Npu,
        integrated: true,
        catalog: Some(CatalogEntry {
            model: "Intel AI Boost NPU (Arrow Lake)",
            int8_tops: 13.0,
            memory_bytes: None,
            source: "Intel Core Ultra 200S/H (Arrow Lake): NPU 13 int8 TOPS",
        }),
    },
    IntelModel {
        pci_device_id: 0x643e,
        name: "Intel AI Boost NPU (Lunar Lake)",
        class: IntelClass::Npu,
        integrated: true,
        catalog: Some(CatalogEntry {
            model: "Intel AI Boost NPU (Lunar Lake)",
            int8_tops: 48.0,
            memory_bytes: None,
            source: "Intel Core Ultra 200V (Lunar Lake): NPU 48 int8 TOPS",
        }),
    },
];

/// Known Intel model for a PCI device id.
pub fn intel_by_pci_id(device_id: u16) -> Option<&'static IntelModel> {
    INTEL.iter().find(|m| m.pci_device_id == device_id)
}

/// The Intel Neural Compute Stick 2 (Myriad X).
pub fn ncs2() -> CatalogEntry {
    CatalogEntry {
        model: "Intel Neural Compute Stick 2 (Myriad X)",
        int8_tops: 1.0,
        memory_bytes: Some(512 * MIB),
        source: "Intel Movidius Myriad X: about 1 TOPS on the neural compute engines (4 TOPS is the whole chip, 10 a marketing figure); 4 Gbit LPDDR4",
    }
}

/// A `Tops` from a catalog entry, or 0 / `unknown` when there is none.
pub fn tops_from(entry: Option<&CatalogEntry>, what: &str) -> Tops {
    match entry {
        Some(e) => Tops {
            int8_tops: e.int8_tops,
            source: TopsSource::Catalog as i32,
            detail: e.source.to_string(),
        },
        None => unknown_tops(format!("{what} is not in the TOPS catalog")),
    }
}

/// A 0 / `unknown` TOPS figure with the reason.
pub fn unknown_tops(reason: impl Into<String>) -> Tops {
    Tops {
        int8_tops: 0.0,
        source: TopsSource::Unknown as i32,
        detail: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvml_names_map_to_dense_figures() {
        let e = nvidia_by_name("NVIDIA GeForce RTX 4070 SUPER").unwrap();
        assert_eq!(e.int8_tops, 284.0);
        assert_eq!(
            nvidia_by_name("NVIDIA GeForce RTX 5090").unwrap().int8_tops,
            838.0
        );
        assert_eq!(
            nvidia_by_name("NVIDIA H100 80GB HBM3").unwrap().int8_tops,
            1979.0
        );
        // As NVML named the H200 of the GPU check (scripts/gpu-check.sh, 2026-12-04).
        assert_eq!(nvidia_by_name("NVIDIA H200").unwrap().int8_tops, 1979.0);
        assert_eq!(
            nvidia_by_name("NVIDIA H100 PCIe").unwrap().int8_tops,
            1513.0
        );
        assert_eq!(
            nvidia_by_name("NVIDIA A100-SXM4-80GB").unwrap().int8_tops,
            624.0
        );
        assert_eq!(
            nvidia_by_name("NVIDIA A100 80GB PCIe").unwrap().model,
            "NVIDIA A100 PCIe"
        );
        assert_eq!(nvidia_by_name("Tesla T4").unwrap().int8_tops, 130.0);
        assert_eq!(nvidia_by_name("NVIDIA L4").unwrap().int8_tops, 242.5);
    }

    #[test]
    fn unknown_or_near_miss_models_are_not_guessed() {
        assert!(nvidia_by_name("NVIDIA GeForce RTX 4070 Ti").is_none());
        assert!(nvidia_by_name("NVIDIA GeForce RTX 4070").is_none());
        assert!(nvidia_by_name("NVIDIA H100 NVL").is_none());
        let t = tops_from(nvidia_by_name("NVIDIA B200"), "NVIDIA B200");
        assert_eq!(t.int8_tops, 0.0);
        assert_eq!(t.source, TopsSource::Unknown as i32);
    }

    #[test]
    fn intel_ids_and_ncs2() {
        let a770 = intel_by_pci_id(0x56a0).unwrap();
        assert_eq!(a770.catalog.as_ref().unwrap().int8_tops, 262.0);
        assert_eq!(intel_by_pci_id(0x7d1d).unwrap().class, IntelClass::Npu);
        assert_eq!(
            intel_by_pci_id(0x643e)
                .unwrap()
                .catalog
                .as_ref()
                .unwrap()
                .int8_tops,
            48.0
        );
        assert!(intel_by_pci_id(0x56a1).unwrap().catalog.is_none());
        assert!(intel_by_pci_id(0x1234).is_none());
        assert_eq!(ncs2().int8_tops, 1.0);
    }
}
