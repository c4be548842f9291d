//! `switchyard up`: a controller and a local agent in one process (the single-host default);
//! the controller calls that agent in-process, and other agents may still join over gRPC.
//! On a loopback `--listen` the control path is plaintext (nobody else reaches it); beyond
//! loopback it is a one-host start of a real cluster: mTLS and join tokens, the local agent
//! joining with a single-use token minted here, the first join token printed for other hosts.

use std::time::Duration;

use crate::config::Config;
use anyhow::Result;
use switchyard_pki::{ClusterCa, TokenStore};
use tracing::info;

use super::wait_for_signal;
use crate::config::load_models;
use crate::wiring;

/// A single-use join token (10 minutes) for the local agent of a secure `up`, minted in the
/// controller's token store: the agent joins over mTLS like any other host (it skips the
/// join when it has its certificate from an earlier start). The store and the token id, to
/// revoke it once the agent is up.
fn local_join_token(config: &mut Config) -> Result<(TokenStore, String)> {
    let dir = switchyard_controller::security::pki_dir(&config.controller.data_dir);
    let (ca, _) = ClusterCa::load_or_create(&dir)?;
    let store = TokenStore::new(&dir);
    let token = store.create(&ca.fingerprint(), Some(Duration::from_secs(600)), 1)?;
    config.agent.join_token = Some(token.render());
    Ok((store, token.id))
}

/// Starts the controller, points the agent at it, and runs until either ends or a signal.
pub async fn run(mut config: Config) -> Result<()> {
    crate::api_token::ensure(&mut config)?;
    info!(config = %config.redacted(), "effective configuration");
    let models = load_models(&config)?;
    let controller = switchyard_controller::server::start(&config.server(), models.clone()).await?;
    // The local agent reaches its controller on loopback (the server certificate names it).
    config.agent.controller = format!("http://127.0.0.1:{}", controller.grpc_addr.port());
    let one_time = if config.controller.insecure {
        None
    } else {
        Some(local_join_token(&mut config)?)
    };
    let agent = wiring::start_agent(&config, (*models).clone()).await;
    if let Some((store, id)) = one_time {
        // Used or not, it serves no one else.
        let _ = store.revoke(&id);
    }
    let agent = agent?;
    // One process: the controller calls its agent in-process, not over loopback gRPC.
    controller.pipeline.attach_in_process_agent(
        &config.agent.node_name,
        switchyard_controller::dispatch::in_process(agent.in_process_service()),
    );
    println!(
        "switchyard up: controller grpc={} http={} agent {} data={} control={}",
        controller.grpc_addr,
        controller.http_addr,
        config.agent.node_name,
        agent.data_addr,
        if config.controller.insecure {
            "insecure"
        } else {
            "mtls"
        }
    );
    if let Some(token) = &controller.first_token {
        // As `controller` prints it: for the other hosts (single-use, 24 h).
        eprintln!("join token for another host (shown once, single-use, 24 h): {token}");
    }
    tokio::select! {
        res = agent.wait() => res.map_err(anyhow::Error::from)?,
        _ = wait_for_signal() => {}
    }
    controller.stop().await;
    Ok(())
}
