//! `switchyard nodes remove NAME`: drop a node and revoke its certificates.

use std::time::Duration;

use super::cluster_client;
use crate::args::{NodesAction, NodesArgs};
use anyhow::{Context, Result};
use switchyard_proto::v1::RemoveNodeRequest;

/// Runs a nodes subcommand.
pub async fn run(args: &NodesArgs) -> Result<()> {
    match &args.action {
        NodesAction::Remove { name, controller } => {
            let mut client = cluster_client(controller).await?;
            let resp = tokio::time::timeout(
                Duration::from_secs(5),
                client.remove_node(RemoveNodeRequest {
                    node_name: name.clone(),
                }),
            )
            .await
            .with_context(|| format!("controller at {controller} did not answer within 5 s"))?
            .map_err(|s| anyhow::anyhow!("controller refused to remove {name}: {}", s.message()))?
            .into_inner();
            println!(
                "node {name}: {}{}",
                if resp.was_registered {
                    "removed"
                } else {
                    "was not registered"
                },
                if resp.revoked {
                    "; its certificates are revoked"
                } else {
                    " (insecure controller: no certificates to revoke)"
                }
            );
        }
    }
    Ok(())
}
