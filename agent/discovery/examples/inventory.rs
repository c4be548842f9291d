//! Prints the inventory of this host, or of a fixture tree, as JSON and as a table.
//!
//! `cargo run -p switchyard-discovery --example inventory -- [--root <fixture-dir>] [--table]`
//! `... --example inventory -- --record-nvml` prints the real NVML answers in the recorded
//! fixture format (`nvml.json`).

use switchyard_discovery::{
    Discovery, DiscoveryConfig, NvmlSource, RealNvml, render_table, to_json,
};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut cfg = DiscoveryConfig::host();
    let mut table = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--root" => {
                let root = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--root needs a directory"))?;
                anyhow::ensure!(
                    std::path::Path::new(&root).is_dir(),
                    "--root {root}: not a directory"
                );
                cfg = DiscoveryConfig::fixture(root);
            }
            "--table" => table = true,
            "--record-nvml" => {
                let mut nvml = RealNvml::init()?
                    .ok_or_else(|| anyhow::anyhow!("no NVIDIA driver: nothing to record"))?;
                println!("{}", serde_json::to_string_pretty(&nvml.snapshot()?)?);
                return Ok(());
            }
            other => anyhow::bail!(
                "unknown argument {other:?} (use --root <dir>, --table, --record-nvml)"
            ),
        }
    }
    let mut d = Discovery::new(cfg);
    let inv = d.scan();
    if table {
        print!("{}", render_table(&inv));
    } else {
        println!("{}", serde_json::to_string_pretty(&to_json(&inv))?);
    }
    Ok(())
}
