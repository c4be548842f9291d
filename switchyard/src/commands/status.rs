//! `switchyard status`: every node of the cluster.

use anyhow::Result;

use super::list_nodes;
use crate::args::{Output, StatusArgs};
use crate::output::{self, json, table};

/// Lists the nodes as a table (one row per node, then a count) or as JSON.
pub async fn run(args: &StatusArgs) -> Result<()> {
    let nodes = list_nodes(&args.controller).await?;
    match args.output {
        Output::Json => output::print_json(&json::nodes(&nodes))?,
        Output::Table => print!("{}", table::nodes(&nodes)),
    }
    Ok(())
}
