//! A readable inventory table for `switchyard devices`.

use switchyard_proto::v1::{Device, DeviceHealth, DeviceKind, TopsSource};

use crate::Inventory;

const GIB: f64 = (1u64 << 30) as f64;

fn memory_cell(d: &Device) -> String {
    if d.memory_total_bytes == 0 {
        return "-".to_string();
    }
    let used = d.memory_total_bytes.saturating_sub(d.memory_free_bytes);
    let shared = d
        .attributes
        .get("memory_source")
        .is_some_and(|m| m.starts_with("shared"));
    format!(
        "{:.1}/{:.1} GiB{}",
        used as f64 / GIB,
        d.memory_total_bytes as f64 / GIB,
        if shared { " (shared)" } else { "" }
    )
}

fn tops_cell(d: &Device) -> String {
    let Some(t) = &d.tops else {
        return "-".to_string();
    };
    let src = TopsSource::try_from(t.source)
        .unwrap_or(TopsSource::Unknown)
        .short_name();
    if t.source == TopsSource::Unknown as i32 {
        format!("? ({src})")
    } else if t.int8_tops >= 10.0 {
        format!("{:.0} ({src})", t.int8_tops)
    } else {
        format!("{:.2} ({src})", t.int8_tops)
    }
}

fn notes_cell(d: &Device) -> String {
    let mut parts = Vec::new();
    if d.simulated {
        parts.push("simulated".to_string());
    }
    if !d.health_reason.is_empty() {
        parts.push(d.health_reason.clone());
    }
    if let Some(f) = d.attributes.get("firmware") {
        parts.push(format!("firmware {f}"));
    }
    if let Some(cc) = d.attributes.get("compute_capability") {
        parts.push(format!("cc {cc}"));
    }
    parts.join("; ")
}

/// Renders the inventory as an aligned text table (ID, KIND, MODEL, MEMORY used/total GiB,
/// TOPS (source), HEALTH, NOTES), followed by the inventory notes.
pub fn render_table(inv: &Inventory) -> String {
    let header = ["ID", "KIND", "MODEL", "MEMORY", "TOPS", "HEALTH", "NOTES"];
    let rows: Vec<[String; 7]> = inv
        .devices
        .iter()
        .map(|d| {
            [
                d.id.clone(),
                DeviceKind::try_from(d.kind)
                    .unwrap_or(DeviceKind::Unspecified)
                    .short_name()
                    .to_string(),
                d.model.clone(),
                memory_cell(d),
                tops_cell(d),
                DeviceHealth::try_from(d.health)
                    .unwrap_or(DeviceHealth::Unspecified)
                    .short_name()
                    .to_string(),
                notes_cell(d),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let pad = widths[i] - c.chars().count();
                l.push_str(c);
                l.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header.map(String::from));
    for r in &rows {
        line(r);
    }
    for n in &inv.notes {
        out.push_str("  ");
        out.push_str(n);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_proto::v1::Tops;

    #[test]
    fn table_has_columns_and_rows() {
        let inv = Inventory {
            devices: vec![Device {
                id: "GPU-1".into(),
                kind: DeviceKind::NvidiaGpu as i32,
                model: "NVIDIA GeForce RTX 5090".into(),
                memory_total_bytes: 32 << 30,
                memory_free_bytes: 30 << 30,
                tops: Some(Tops {
                    int8_tops: 838.0,
                    source: TopsSource::Catalog as i32,
                    detail: String::new(),
                }),
                health: DeviceHealth::Healthy as i32,
                ..Default::default()
            }],
            notes: vec!["info: x".into()],
            ..Default::default()
        };
        let t = render_table(&inv);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("ID"), "{t}");
        assert!(lines[0].contains("MEMORY") && lines[0].contains("HEALTH"));
        assert!(lines[1].contains("nvidia_gpu"), "{t}");
        assert!(lines[1].contains("2.0/32.0 GiB"), "{t}");
        assert!(lines[1].contains("838 (catalog)"), "{t}");
        assert!(lines[1].contains("healthy"), "{t}");
        assert_eq!(lines[2], "  info: x");
    }
}
