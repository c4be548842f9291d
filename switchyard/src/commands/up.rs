//! `switchyard up`: a controller and a local agent in one process (the single-host default);
//! the controller calls that agent in-process, and other agents may still join over gRPC.

use crate::config::Config;
use anyhow::Result;
use tracing::info;

use super::wait_for_signal;
use crate::config::load_models;
use crate::wiring;

/// Starts the controller, points the agent at it, and runs until either ends or a signal.
pub async fn run(mut config: Config) -> Result<()> {
    crate::api_token::ensure(&mut config)?;
    info!(config = %config.redacted(), "effective configuration");
    let models = load_models(&config)?;
    let controller = switchyard_controller::server::start(&config.server(), models.clone()).await?;
    config.agent.controller = format!("http://{}", controller.grpc_addr);
    let agent = wiring::start_agent(&config, (*models).clone()).await?;
    // One process: the controller calls its agent in-process, not over loopback gRPC.
    controller.pipeline.attach_in_process_agent(
        &config.agent.node_name,
        switchyard_controller::dispatch::in_process(agent.in_process_service()),
    );
    println!(
        "switchyard up: controller grpc={} http={} agent {} data={}",
        controller.grpc_addr, controller.http_addr, config.agent.node_name, agent.data_addr
    );
    tokio::select! {
        res = agent.wait() => res.map_err(anyhow::Error::from)?,
        _ = wait_for_signal() => {}
    }
    controller.stop().await;
    Ok(())
}
