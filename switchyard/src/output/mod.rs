//! Output rendering: plain-text tables (`table`) and JSON for scripts (`json`). Devices have
//! one row renderer and one JSON shape, used by every command that shows them.

pub mod json;
pub mod table;

#[cfg(test)]
mod tests;

use anyhow::Result;
use serde_json::Value;
use switchyard_proto::v1::{Device, StageKind};

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Short name of a proto stage kind (`classify`, `embed`, `generate`).
pub fn stage_name(raw: i32) -> &'static str {
    StageKind::try_from(raw)
        .unwrap_or(StageKind::Unspecified)
        .short_name()
}

/// Short name of a device's kind (`nvidia_gpu`, `cpu`, ...).
fn kind_name(d: &Device) -> &'static str {
    d.kind().short_name()
}
