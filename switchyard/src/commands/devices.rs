//! `switchyard devices`: this host's accelerators, or every node's with `--controller`.

use anyhow::{Result, bail};
use switchyard_proto::v1::Device;

use super::list_nodes;
use crate::args::{DevicesArgs, Output};
use crate::output::{self, json, table};
use crate::wiring;

/// Lists the devices (local scan or the controller's view) in the one device shape.
pub async fn run(args: &DevicesArgs) -> Result<()> {
    let per_node = match &args.controller {
        Some(url) => remote(url).await?,
        None => local(args)?,
    };
    match args.output {
        Output::Json => output::print_json(&json::devices(&per_node))?,
        Output::Table => print!("{}", table::devices(&per_node)),
    }
    Ok(())
}

/// Each node's devices as the controller last heard them.
async fn remote(url: &str) -> Result<Vec<(String, Vec<Device>)>> {
    Ok(list_nodes(url)
        .await?
        .into_iter()
        .map(|n| {
            let info = n.info.unwrap_or_default();
            (info.node_name, info.devices)
        })
        .collect())
}

/// This host (or a fixture tree), scanned and probed now; prints the calibration table first
/// with `--calibrate` (on stderr with `-o json`), and the discovery notes on stderr in table
/// mode.
fn local(args: &DevicesArgs) -> Result<Vec<(String, Vec<Device>)>> {
    if let Some(f) = &args.fixture
        && !f.is_dir()
    {
        bail!("fixture {} is not a directory", f.display());
    }
    if let Some(dir) = &args.models_dir {
        switchyard_backend_core::paths::set_models_dir(dir);
    }
    let scan = wiring::scan_local(args.fixture.as_deref(), args.calibrate);
    if let Some(rows) = &scan.calibration {
        // JSON output stays one document (each device carries `measured_tops`); the table
        // goes to stderr there.
        let shown = table::calibration(&scan.devices, rows);
        match args.output {
            Output::Table => println!("{shown}"),
            _ => eprintln!("{shown}"),
        }
    }
    if args.output == Output::Table {
        for n in &scan.notes {
            eprintln!("note: {n}");
        }
    }
    Ok(vec![(scan.host.hostname, scan.devices)])
}
