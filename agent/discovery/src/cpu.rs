//! The CPU as a device: model, cores, ISA flags from `/proc/cpuinfo`, memory from
//! `/proc/meminfo`, and an int8 TOPS estimate from the ISA.
//!
//! # TOPS formula
//! `int8 TOPS = physical cores × GHz × int8 ops/cycle/core / 1000`, with the ops/cycle of the
//! best int8 instruction path the flags advertise (one multiply-add = 2 ops, two vector pipes):
//!
//! | flag          | ops/cycle/core | why |
//! |---------------|---------------:|-----|
//! | `amx_int8`    | 2048 | Intel AMX TMUL: 1024 int8 MACs/cycle (Intel's Sapphire Rapids figure) |
//! | `avx512_vnni` |  256 | VPDPBUSD on 512-bit vectors: 64 MACs × 2 pipes |
//! | `avx_vnni`    |  128 | VPDPBUSD on 256-bit vectors: 32 MACs × 2 pipes |
//! | `avx512bw`    |  128 | VPMADDUBSW+VPMADDWD+VPADDD on 512-bit vectors (≈ half of VNNI) |
//! | `avx2`        |   64 | the same three-instruction sequence on 256-bit vectors |
//!
//! Cores are physical cores (SMT siblings share the vector units). GHz is the base frequency
//! (`cpufreq/base_frequency`), else `cpuinfo_max_freq`, else the highest `cpu MHz` line.
//! The figure is a peak, reported with source `catalog` (a published per-ISA rate applied to
//! this machine) and the full formula in `detail`; without AVX2 or frequency data the source
//! is `unknown` with the reason. `switchyard agent --calibrate` measures the real figure.
//!
//! `max_concurrency` for the CPU is half the logical CPUs (at least 1): each request's runtime
//! uses several threads, so more concurrent requests only add contention.

use std::collections::BTreeSet;

use switchyard_proto::v1::{Device, DeviceHealth, DeviceKind, Tops, TopsSource};

use crate::catalog::unknown_tops;
use crate::fsutil::{Root, read_u64};

/// Facts parsed from `/proc/cpuinfo` and cpufreq.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuInfo {
    /// Vendor (`Intel`, `AMD`, or the raw vendor id).
    pub vendor: String,
    /// Model name.
    pub model: String,
    /// Logical CPUs listed.
    pub logical: u32,
    /// Physical cores (distinct physical id/core id pairs; `logical` when not listed).
    pub physical: u32,
    /// ISA flags of the first processor.
    pub flags: BTreeSet<String>,
    /// Frequency used for the TOPS estimate, GHz, with where it came from.
    pub ghz: Option<(f64, &'static str)>,
}

/// int8 ops per cycle per core by ISA, best first.
pub const INT8_OPS_PER_CYCLE: &[(&str, u32)] = &[
    ("amx_int8", 2048),
    ("avx512_vnni", 256),
    ("avx_vnni", 128),
    ("avx512bw", 128),
    ("avx2", 64),
];

/// Parses `/proc/cpuinfo` text plus cpufreq under `root`.
pub fn parse(root: &Root) -> Option<CpuInfo> {
    let text = root.read("/proc/cpuinfo")?;
    let mut logical = 0u32;
    let mut cores = BTreeSet::new();
    let mut model = None;
    let mut vendor = None;
    let mut flags = None;
    let mut max_mhz: Option<f64> = None;
    let mut phys_id = String::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => {
                logical += 1;
                phys_id.clear();
            }
            "model name" | "Model" if model.is_none() && !v.is_empty() => {
                model = Some(v.to_string())
            }
            "vendor_id" | "CPU implementer" if vendor.is_none() => vendor = Some(v.to_string()),
            "flags" | "Features" if flags.is_none() => {
                flags = Some(v.split_whitespace().map(str::to_string).collect())
            }
            "physical id" => phys_id = v.to_string(),
            "core id" => {
                cores.insert((phys_id.clone(), v.to_string()));
            }
            "cpu MHz" => {
                if let Ok(mhz) = v.parse::<f64>() {
                    max_mhz = Some(max_mhz.map_or(mhz, |m: f64| m.max(mhz)));
                }
            }
            _ => {}
        }
    }
    if logical == 0 {
        return None;
    }
    let vendor = match vendor.as_deref() {
        Some("GenuineIntel") => "Intel".to_string(),
        Some("AuthenticAMD") => "AMD".to_string(),
        Some(v) => v.to_string(),
        None => "unknown".to_string(),
    };
    let cpufreq =
        |f: &str| read_u64(&root.path(format!("/sys/devices/system/cpu/cpu0/cpufreq/{f}")));
    let ghz = if let Some(khz) = cpufreq("base_frequency").filter(|k| *k > 0) {
        Some((khz as f64 / 1e6, "cpufreq base_frequency"))
    } else if let Some(khz) = cpufreq("cpuinfo_max_freq").filter(|k| *k > 0) {
        Some((khz as f64 / 1e6, "cpufreq cpuinfo_max_freq"))
    } else {
        max_mhz
            .filter(|m| *m > 0.0)
            .map(|m| (m / 1000.0, "/proc/cpuinfo cpu MHz"))
    };
    let physical = if cores.is_empty() {
        logical
    } else {
        cores.len() as u32
    };
    Some(CpuInfo {
        vendor,
        model: model.unwrap_or_else(|| "unknown CPU".to_string()),
        logical,
        physical,
        flags: flags.unwrap_or_default(),
        ghz,
    })
}

/// The int8 TOPS estimate (see the module docs for the formula).
pub fn estimate_tops(info: &CpuInfo) -> Tops {
    let Some((flag, ops)) = INT8_OPS_PER_CYCLE
        .iter()
        .find(|(f, _)| info.flags.contains(*f))
    else {
        return unknown_tops(
            "CPU flags list none of amx_int8/avx512_vnni/avx_vnni/avx512bw/avx2: int8 rate not estimated",
        );
    };
    let Some((ghz, ghz_src)) = info.ghz else {
        return unknown_tops(
            "CPU frequency unknown (no cpufreq, no cpu MHz): int8 rate not estimated",
        );
    };
    let tops = f64::from(info.physical) * ghz * f64::from(*ops) / 1000.0;
    Tops {
        int8_tops: (tops * 1000.0).round() / 1000.0,
        source: TopsSource::Catalog as i32,
        detail: format!(
            "ISA formula: {} cores x {ghz:.3} GHz ({ghz_src}) x {ops} int8 ops/cycle/core ({flag}) = {tops:.3} TOPS peak",
            info.physical
        ),
    }
}

/// `MemTotal` and `MemAvailable` from `/proc/meminfo`, in bytes.
pub fn meminfo(root: &Root) -> Option<(u64, u64)> {
    let text = root.read("/proc/meminfo")?;
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
            Some(kb * 1024)
        })
    };
    let total = field("MemTotal")?;
    let avail = field("MemAvailable")
        .or_else(|| field("MemFree"))
        .unwrap_or(0);
    Some((total, avail))
}

/// The CPU device.
pub fn device(root: &Root, info: &CpuInfo) -> Device {
    let (total, avail) = meminfo(root).unwrap_or((0, 0));
    let mut d = Device {
        id: "cpu".to_string(),
        kind: DeviceKind::Cpu as i32,
        vendor: info.vendor.clone(),
        model: info.model.clone(),
        memory_total_bytes: total,
        memory_free_bytes: avail,
        tops: Some(estimate_tops(info)),
        health: DeviceHealth::Healthy as i32,
        max_concurrency: (info.logical / 2).max(1),
        ..Default::default()
    };
    d.attributes
        .insert("logical_cpus".into(), info.logical.to_string());
    d.attributes
        .insert("physical_cores".into(), info.physical.to_string());
    let isa: Vec<&str> = INT8_OPS_PER_CYCLE
        .iter()
        .map(|(f, _)| *f)
        .filter(|f| info.flags.contains(*f))
        .collect();
    d.attributes.insert("int8_isa".into(), isa.join(","));
    if let Some((ghz, _)) = info.ghz {
        d.attributes.insert("ghz".into(), format!("{ghz:.3}"));
    }
    d
}

/// Busy and total jiffies of all CPUs from `/proc/stat`.
pub fn stat_sample(root: &Root) -> Option<(u64, u64)> {
    let text = root.read("/proc/stat")?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    if v.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest fields are already in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// CPU package temperature: hwmon `coretemp`/`k10temp`/`zenpower` `temp1_input`, else a
/// thermal zone of type `x86_pkg_temp`/`cpu-thermal`; degrees Celsius.
pub fn temperature(root: &Root) -> Option<f64> {
    for h in root.list("/sys/class/hwmon") {
        let base = root.path(format!("/sys/class/hwmon/{h}"));
        let name = crate::fsutil::read_trim(&base.join("name")).unwrap_or_default();
        if matches!(name.as_str(), "coretemp" | "k10temp" | "zenpower")
            && let Some(m) = read_u64(&base.join("temp1_input"))
        {
            return Some(m as f64 / 1000.0);
        }
    }
    for z in root.list("/sys/class/thermal") {
        let base = root.path(format!("/sys/class/thermal/{z}"));
        let ty = crate::fsutil::read_trim(&base.join("type")).unwrap_or_default();
        if matches!(ty.as_str(), "x86_pkg_temp" | "cpu-thermal" | "cpu_thermal")
            && let Some(m) = read_u64(&base.join("temp"))
        {
            return Some(m as f64 / 1000.0);
        }
    }
    None
}

/// RAPL package energy counter in microjoules (readable only with privileges on most hosts).
pub fn rapl_energy_uj(root: &Root) -> Option<u64> {
    read_u64(&root.path("/sys/class/powercap/intel-rapl:0/energy_uj"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(flags: &[&str], physical: u32, ghz: Option<f64>) -> CpuInfo {
        CpuInfo {
            vendor: "Intel".into(),
            model: "x".into(),
            logical: physical * 2,
            physical,
            flags: flags.iter().map(|s| s.to_string()).collect(),
            ghz: ghz.map(|g| (g, "test")),
        }
    }

    #[test]
    fn formula_picks_best_isa() {
        let t = estimate_tops(&info(
            &["avx2", "avx512bw", "avx512_vnni", "amx_int8"],
            8,
            Some(2.0),
        ));
        assert_eq!(t.int8_tops, 32.768);
        assert!(t.detail.contains("amx_int8"), "{}", t.detail);
        let t = estimate_tops(&info(&["avx2"], 2, Some(2.5)));
        assert_eq!(t.int8_tops, 0.32);
        assert_eq!(t.source, TopsSource::Catalog as i32);
    }

    #[test]
    fn no_isa_or_frequency_is_unknown() {
        let t = estimate_tops(&info(&["sse4_2"], 4, Some(3.0)));
        assert_eq!(t.source, TopsSource::Unknown as i32);
        assert_eq!(t.int8_tops, 0.0);
        let t = estimate_tops(&info(&["avx2"], 4, None));
        assert_eq!(t.source, TopsSource::Unknown as i32);
    }

    #[test]
    fn parses_cpuinfo_with_smt() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        let mut text = String::new();
        for (p, core) in [(0, 0), (1, 1), (2, 0), (3, 1)] {
            text.push_str(&format!(
                "processor\t: {p}\nvendor_id\t: GenuineIntel\nmodel name\t: Test CPU\nphysical id\t: 0\ncore id\t\t: {core}\ncpu MHz\t\t: {}\nflags\t\t: fpu avx2 avx_vnni\n\n",
                1000 + p * 100
            ));
        }
        std::fs::write(dir.path().join("proc/cpuinfo"), text).unwrap();
        let i = parse(&Root::new(dir.path())).unwrap();
        assert_eq!((i.logical, i.physical), (4, 2));
        assert_eq!(i.vendor, "Intel");
        assert_eq!(i.ghz, Some((1.3, "/proc/cpuinfo cpu MHz")));
        assert!(i.flags.contains("avx_vnni"));
    }
}
