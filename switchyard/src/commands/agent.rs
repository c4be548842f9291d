//! `switchyard agent`: discover devices, register with the controller, run stages.

use crate::config::Config;
use anyhow::Result;
use tracing::info;

use super::wait_for_signal;
use crate::config::load_models;
use crate::wiring;

/// Runs until the session ends for good (e.g. the node name is taken) or Ctrl-C / SIGTERM.
pub async fn run(config: Config) -> Result<()> {
    info!(config = %config.redacted(), "effective configuration");
    let models = load_models(&config)?;
    let handle = wiring::start_agent(&config, (*models).clone()).await?;
    println!(
        "switchyard agent {} data={}",
        config.agent.node_name, handle.data_addr
    );
    let stop = wait_for_signal();
    tokio::pin!(stop);
    let waiter = handle.wait();
    tokio::select! {
        res = waiter => res.map_err(anyhow::Error::from),
        _ = &mut stop => Ok(()),
    }
}
