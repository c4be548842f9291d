//! `switchyard controller`: cluster state, placement and the client APIs.

use crate::config::Config;
use anyhow::Result;
use tracing::info;

use super::wait_for_signal;
use crate::config::load_models;

/// Serves until Ctrl-C / SIGTERM, then stops the servers.
pub async fn run(config: Config) -> Result<()> {
    info!(config = %config.redacted(), "effective configuration");
    let models = load_models(&config)?;
    let handle = switchyard_controller::server::start(&config.server(), models).await?;
    println!(
        "switchyard controller listening grpc={} http={}",
        handle.grpc_addr, handle.http_addr
    );
    wait_for_signal().await;
    handle.stop().await;
    Ok(())
}
