//! One file per subcommand, the dispatch, and what they share: the signal wait and the
//! controller channel/client helpers.

mod agent;
mod controller;
mod devices;
mod docs;
mod explain;
mod models;
mod nodes;
mod router;
mod run;
mod status;
mod token;
mod up;

use std::time::Duration;

use anyhow::{Context, Result};
use switchyard_proto::v1::cluster_client::ClusterClient;
use switchyard_proto::v1::inference_client::InferenceClient;
use switchyard_proto::v1::{ListNodesRequest, NodeStatus, PipelineRequest, PipelineResponse};
use tonic::transport::Channel;

use crate::args::{Cli, Command};
use crate::config;

/// Runs the chosen subcommand.
pub async fn run(cli: Cli) -> Result<()> {
    // Every command reads the file, so a broken one is reported whatever the command.
    let file = config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Controller(args) => controller::run(config::for_controller(file, &args)?).await,
        Command::Agent(args) => {
            let mut config = config::for_agent(file, &args.agent)?;
            config.agent.insecure |= args.insecure;
            agent::run(config).await
        }
        Command::Up(args) => up::run(config::for_up(file, &args.controller, &args.agent)?).await,
        Command::Status(args) => status::run(&args).await,
        Command::Devices(args) => devices::run(&args).await,
        Command::Run(args) => run::run(&args).await,
        Command::Explain(args) => explain::run(&args).await,
        Command::Docs(args) => docs::run(&args).await,
        Command::Token(args) => token::run(&args),
        Command::Nodes(args) => nodes::run(&args).await,
        Command::Models(args) => models::run(&args).await,
        Command::Router(args) => router::run(&args).await,
    }
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM.
async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// The admin token operators without a cluster certificate present
/// (`[controller] admin_tokens` on the controller).
const ADMIN_TOKEN_ENV: &str = "SWITCHYARD_ADMIN_TOKEN";
/// The cluster CA certificate to verify the controller with when this host has no data
/// directory of the controller (with an admin token).
const CA_FILE_ENV: &str = "SWITCHYARD_CA_FILE";

/// For an `https://` controller URL: TLS verifying the controller against the cluster CA,
/// presenting the controller-role client certificate kept in the controller's data
/// directory on this host (`SWITCHYARD_DATA_DIR` or the default). With
/// `SWITCHYARD_ADMIN_TOKEN` set no client certificate is needed: the CA comes from
/// `SWITCHYARD_CA_FILE` (or that data directory) and the token authorises the calls.
fn operator_tls() -> Result<tonic::transport::ClientTlsConfig> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let data = std::env::var_os("SWITCHYARD_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(switchyard_controller::config::default_data_dir);
    let dir = switchyard_controller::security::pki_dir(&data);
    let read = |path: std::path::PathBuf| {
        std::fs::read_to_string(&path).with_context(|| {
            format!(
                "an https:// controller needs the cluster's certificates: cannot read {} (run this on the controller's host, set SWITCHYARD_DATA_DIR to its data directory, or set {ADMIN_TOKEN_ENV} and {CA_FILE_ENV} to the CA's ca.pem)",
                path.display()
            )
        })
    };
    let admin = std::env::var_os(ADMIN_TOKEN_ENV).is_some();
    let ca = match std::env::var_os(CA_FILE_ENV) {
        Some(f) => read(f.into())?,
        None => read(dir.join("ca.pem"))?,
    };
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name(switchyard_pki::CONTROLLER_NAME);
    if admin {
        return Ok(tls);
    }
    Ok(tls.identity(Identity::from_pem(
        read(dir.join("controller.pem"))?,
        read(dir.join("controller.key"))?,
    )))
}

/// Adds `authorization: Bearer $SWITCHYARD_ADMIN_TOKEN` to every call, when it is set.
#[derive(Clone)]
struct AdminAuth(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for AdminAuth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A Cluster client for the controller at `url`, with the admin token when one is set.
async fn cluster_client(
    url: &str,
) -> Result<ClusterClient<tonic::service::interceptor::InterceptedService<Channel, AdminAuth>>> {
    let token = match std::env::var(ADMIN_TOKEN_ENV) {
        Ok(t) => Some(format!("Bearer {}", t.trim()).parse().map_err(|_| {
            anyhow::anyhow!("{ADMIN_TOKEN_ENV} contains characters not allowed in a header")
        })?),
        Err(_) => None,
    };
    Ok(ClusterClient::with_interceptor(
        controller_channel(url).await?,
        AdminAuth(token),
    ))
}

/// Connects to the controller with a clear error when it is unreachable.
async fn controller_channel(url: &str) -> Result<Channel> {
    let mut endpoint =
        switchyard_agent::session::controller_endpoint(url).map_err(anyhow::Error::msg)?;
    if url.starts_with("https://") {
        endpoint = endpoint.tls_config(operator_tls()?)?;
    }
    endpoint.connect().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach controller at {url}: {} (is `switchyard controller` or `switchyard up` running there?)",
            switchyard_agent::session::error_chain(&e)
        )
    })
}

/// A plaintext call that a TLS port answered with garbage: say what to change.
fn tls_hint(url: &str, status: &tonic::Status) -> &'static str {
    use tonic::Code;
    if url.starts_with("http://")
        && matches!(
            status.code(),
            Code::Unavailable | Code::Unknown | Code::Internal
        )
    {
        " (a controller started without --insecure serves TLS: use an https:// URL on its host)"
    } else {
        ""
    }
}

/// Every node the controller at `url` knows, with its inventory.
async fn list_nodes(url: &str) -> Result<Vec<NodeStatus>> {
    let mut client = cluster_client(url).await?;
    let nodes = tokio::time::timeout(
        Duration::from_secs(5),
        client.list_nodes(ListNodesRequest {}),
    )
    .await
    .with_context(|| format!("controller at {url} did not answer within 5 s"))?
    .map_err(|s| {
        anyhow::anyhow!(
            "controller at {url} refused ListNodes: {}{}",
            s.message(),
            tls_hint(url, &s)
        )
    })?
    .into_inner()
    .nodes;
    Ok(nodes)
}

/// A request carrying `authorization: Bearer <token>` when a token is given.
fn authorized<T>(message: T, token: Option<&str>) -> Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    if let Some(t) = token {
        let value = format!("Bearer {t}")
            .parse()
            .map_err(|_| anyhow::anyhow!("--token contains characters not allowed in a header"))?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

/// Runs (or, with `explain_only`, explains) `req` on the controller's pipeline.
async fn pipeline(
    url: &str,
    req: PipelineRequest,
    timeout: Duration,
    token: Option<&str>,
) -> Result<PipelineResponse> {
    let channel = controller_channel(url).await?;
    let mut client = InferenceClient::new(channel);
    let mut request = authorized(req, token)?;
    request.set_timeout(timeout);
    let resp = client.run_pipeline(request).await.map_err(|s| {
        anyhow::anyhow!(
            "pipeline failed ({:?}): {}{}",
            s.code(),
            s.message(),
            tls_hint(url, &s)
        )
    })?;
    Ok(resp.into_inner())
}
