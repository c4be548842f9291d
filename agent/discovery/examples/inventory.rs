//! Prints the inventory of this host, or of a fixture tree, as JSON and as a table.
//!
//! `cargo run -p switchyard-discovery --example inventory -- [--root <fixture-dir>] [--table]`

use switchyard_discovery::{Discovery, DiscoveryConfig, render_table, to_json};

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
            other => anyhow::bail!("unknown argument {other:?} (use --root <dir>, --table)"),
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
