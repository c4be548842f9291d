//! `switchyard controller`: cluster state, placement and the client APIs.

use crate::config::Config;
use anyhow::Result;
use tracing::info;

use super::wait_for_signal;
use crate::config::load_models;

/// Serves until Ctrl-C / SIGTERM, then stops the servers.
pub async fn run(mut config: Config) -> Result<()> {
    crate::api_token::ensure(&mut config)?;
    info!(config = %config.redacted(), "effective configuration");
    let models = load_models(&config)?;
    let handle = switchyard_controller::server::start(&config.server(), models).await?;
    let tls = if config.controller.insecure {
        "insecure"
    } else {
        "mtls"
    };
    println!(
        "switchyard controller listening grpc={} http={} control={tls}",
        handle.grpc_addr, handle.http_addr
    );
    if let Some(token) = &handle.first_token {
        // Printed once, at the start that created the cluster CA; only its hash is kept.
        println!("join token (shown once): {token}");
        println!(
            "join a node: switchyard agent --controller http://THIS_HOST:{} --join-token {token}",
            handle.grpc_addr.port()
        );
    }
    wait_for_signal().await;
    handle.stop().await;
    Ok(())
}
