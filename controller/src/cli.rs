//! Command-line interface: subcommands, flags (each with a `SWITCHYARD_*` env twin) and how
//! they override the config file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use switchyard_backend_core::ModelRegistry;
use switchyard_controller::config::Config;
use switchyard_controller::table;
use switchyard_proto::v1::cluster_client::ClusterClient;
use switchyard_proto::v1::{ListNodesRequest, NodeState, NodeStatus};
use tracing::info;

use crate::wiring;

/// Switchyard: accelerator-aware inference across a homelab cluster.
///
/// Copy this one binary to every node. Run `switchyard controller` on one host and
/// `switchyard agent --controller http://CONTROLLER:50051` on the others — or `switchyard up`
/// for a single host (controller + local agent in one process). Then `switchyard status`.
///
/// Settings come from defaults < the TOML file (--config) < SWITCHYARD_* environment
/// variables < flags.
#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// TOML configuration file (sections [controller], [agent], [models], [routes], [api]).
    #[arg(long, global = true, env = "SWITCHYARD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log filter, e.g. `info`, `debug`, `switchyard_agent=debug`.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller: cluster state, placement and the client APIs.
    Controller(ControllerArgs),
    /// Run a node agent: discover devices, register with the controller, run stages.
    Agent(AgentArgs),
    /// Run a controller and a local agent in one process (the single-host default).
    Up(UpArgs),
    /// Show every node of the cluster: state, last heartbeat, devices, memory, TOPS.
    Status(StatusArgs),
    /// Show this host's accelerators (no controller needed), or the cluster's with --controller.
    Devices(DevicesArgs),
    /// Send a prompt through the pipeline (classify → [retrieve] → generate) and print the
    /// answer with its trace: which node, device and backend ran each stage.
    Run(RunArgs),
    /// Dry run: rank the candidate devices for every stage of a prompt, with the reason each
    /// was filtered out or how it was scored. Nothing is executed.
    Explain(ExplainArgs),
    /// Add documents to the controller's retrieval index (used by `run --retrieve`).
    Docs(DocsArgs),
}

/// How a client command (`run`, `explain`, `docs`) reaches the controller.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Controller gRPC URL.
    #[arg(
        long,
        env = "SWITCHYARD_CONTROLLER",
        default_value = "http://127.0.0.1:50051",
        value_name = "URL"
    )]
    pub controller: String,
    /// Bearer token for the controller's client APIs (when `[api] tokens` is set).
    #[arg(
        long,
        env = "SWITCHYARD_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

/// Flags of `docs`.
#[derive(Debug, Args)]
pub struct DocsArgs {
    #[command(subcommand)]
    pub action: DocsAction,
}

/// What to do with documents.
#[derive(Debug, Subcommand)]
pub enum DocsAction {
    /// Embed and index each TEXT argument.
    Add {
        /// Documents, one per argument.
        #[arg(required = true)]
        texts: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Flags of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The prompt.
    pub prompt: String,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Embed the prompt and prepend the closest documents (added with POST /v1/documents).
    #[arg(long)]
    pub retrieve: bool,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 128)]
    pub max_tokens: u32,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Whole-request deadline in seconds.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Flags of `explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The prompt.
    pub prompt: String,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Flags of the controller role.
#[derive(Debug, Args, Clone, Default)]
pub struct ControllerArgs {
    /// gRPC listen address (registry, cluster and inference services). Port 0 picks one.
    #[arg(long, env = "SWITCHYARD_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// HTTP listen address (OpenAI-compatible API, /health, /metrics).
    #[arg(long, env = "SWITCHYARD_HTTP_LISTEN", value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,
    /// Heartbeat interval told to agents, milliseconds.
    #[arg(long, env = "SWITCHYARD_HEARTBEAT_INTERVAL_MS", value_name = "MS")]
    pub heartbeat_interval_ms: Option<u32>,
    /// Model registry file.
    #[arg(long, env = "SWITCHYARD_MODEL_REGISTRY", value_name = "FILE")]
    pub model_registry: Option<PathBuf>,
}

/// Flags of the agent role.
#[derive(Debug, Args, Clone, Default)]
pub struct AgentArgs {
    /// Controller gRPC URL.
    #[arg(long, env = "SWITCHYARD_CONTROLLER", value_name = "URL")]
    pub controller: Option<String>,
    /// This node's unique name (default: the host name).
    #[arg(long, env = "SWITCHYARD_NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,
    /// Data-path gRPC listen address. Port 0 picks one.
    #[arg(
        id = "agent_listen",
        long = "agent-listen",
        env = "SWITCHYARD_AGENT_LISTEN",
        value_name = "ADDR"
    )]
    pub listen: Option<SocketAddr>,
    /// URL the controller uses to reach this agent (when it differs from the listen address,
    /// e.g. behind NAT or when listening on 0.0.0.0).
    #[arg(long, env = "SWITCHYARD_ADVERTISE", value_name = "URL")]
    pub advertise: Option<String>,
    /// Serve a recorded inventory (fixture tree) instead of this host's devices. Its devices
    /// are labelled simulated and execute on the CPU.
    #[arg(long, env = "SWITCHYARD_FIXTURE", value_name = "DIR")]
    pub fixture: Option<PathBuf>,
    /// Directory of prepared model files (default: ~/.cache/switchyard/models).
    #[arg(long, env = "SWITCHYARD_MODELS_DIR", value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Before registering, run a matmul micro-benchmark through every usable backend on
    /// every device and report the measured int8 TOPS beside the published figure.
    #[arg(long)]
    pub calibrate: bool,
}

/// Flags of `up`.
#[derive(Debug, Args, Clone, Default)]
pub struct UpArgs {
    #[command(flatten)]
    pub controller: ControllerArgs,
    #[command(flatten)]
    pub agent: AgentArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum Output {
    /// Readable table.
    #[default]
    Table,
    /// JSON for scripts.
    Json,
}

/// Flags of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Controller gRPC URL.
    #[arg(
        long,
        env = "SWITCHYARD_CONTROLLER",
        default_value = "http://127.0.0.1:50051",
        value_name = "URL"
    )]
    pub controller: String,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Flags of `devices`.
#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Show the devices of every node from this controller instead of the local host.
    #[arg(long, value_name = "URL")]
    pub controller: Option<String>,
    /// Show a recorded inventory (fixture tree) instead of this host's.
    #[arg(long, value_name = "DIR")]
    pub fixture: Option<PathBuf>,
    /// Measure effective int8 TOPS of every usable backend on every local device.
    #[arg(long)]
    pub calibrate: bool,
    /// Directory of prepared model files, where the backend probe and calibration find their
    /// graphs (default: ~/.cache/switchyard/models).
    #[arg(long, env = "SWITCHYARD_MODELS_DIR", value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Sets up logging to stderr.
pub fn init_logging(filter: &str) {
    // ONNX Runtime's own info logs (allocations, graph passes) are noise for operators.
    let directives = if filter.contains("ort=") {
        filter.to_string()
    } else {
        format!("{filter},ort=warn")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,ort=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// An error and its causes on one line.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

/// Runs the chosen subcommand.
pub async fn run(cli: Cli) -> Result<()> {
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Controller(args) => {
            apply_controller(&mut config, &args);
            config.validate()?;
            run_controller(config).await
        }
        Command::Agent(args) => {
            apply_agent(&mut config, &args);
            config.validate()?;
            run_agent(config).await
        }
        Command::Up(args) => {
            apply_controller(&mut config, &args.controller);
            apply_agent(&mut config, &args.agent);
            config.validate()?;
            run_up(config).await
        }
        Command::Status(args) => status(&args).await,
        Command::Devices(args) => devices(&args).await,
        Command::Run(args) => crate::run_cmd::run(&args).await,
        Command::Explain(args) => crate::run_cmd::explain(&args).await,
        Command::Docs(args) => crate::run_cmd::docs(&args).await,
    }
}

fn apply_controller(config: &mut Config, args: &ControllerArgs) {
    let c = &mut config.controller;
    if let Some(v) = args.listen {
        c.listen = v;
    }
    if let Some(v) = args.http_listen {
        c.http_listen = v;
    }
    if let Some(v) = args.heartbeat_interval_ms {
        c.heartbeat_interval_ms = v;
    }
    if let Some(v) = &args.model_registry {
        config.models.registry = v.clone();
    }
}

fn apply_agent(config: &mut Config, args: &AgentArgs) {
    let a = &mut config.agent;
    if let Some(v) = &args.controller {
        a.controller = v.clone();
    }
    if let Some(v) = &args.node_name {
        a.node_name = v.clone();
    }
    if let Some(v) = args.listen {
        a.listen = v;
    }
    if let Some(v) = &args.advertise {
        a.advertise = Some(v.clone());
    }
    if let Some(v) = &args.fixture {
        a.fixture = Some(v.clone());
    }
    if let Some(v) = &args.models_dir {
        config.models.dir = v.clone();
    }
    if args.calibrate {
        config.agent.calibrate = true;
    }
}

fn load_models(config: &Config) -> Result<Arc<ModelRegistry>> {
    // The backend probe and calibration read their own files from the same directory.
    switchyard_backend_core::paths::set_models_dir(&config.models.dir);
    let reg = ModelRegistry::load(&config.models.registry, &config.models.dir)?;
    Ok(Arc::new(reg))
}

async fn run_controller(config: Config) -> Result<()> {
    info!(config = %config.redacted(), "effective configuration");
    let models = load_models(&config)?;
    let handle = switchyard_controller::server::start(&config, models).await?;
    println!(
        "switchyard controller listening grpc={} http={}",
        handle.grpc_addr, handle.http_addr
    );
    tokio::select! {
        _ = handle_wait_signal() => {}
    }
    handle.stop().await;
    Ok(())
}

async fn run_agent(config: Config) -> Result<()> {
    info!(config = %config.redacted(), "effective configuration");
    let models = load_models(&config)?;
    let handle = wiring::start_agent(&config, (*models).clone()).await?;
    println!(
        "switchyard agent {} data={}",
        config.agent.node_name, handle.data_addr
    );
    let stop = handle_wait_signal();
    tokio::pin!(stop);
    let waiter = handle.wait();
    tokio::select! {
        res = waiter => res.map_err(anyhow::Error::from),
        _ = &mut stop => Ok(()),
    }
}

async fn run_up(mut config: Config) -> Result<()> {
    info!(config = %config.redacted(), "effective configuration");
    let models = load_models(&config)?;
    let controller = switchyard_controller::server::start(&config, models.clone()).await?;
    config.agent.controller = format!("http://{}", controller.grpc_addr);
    let agent = wiring::start_agent(&config, (*models).clone()).await?;
    println!(
        "switchyard up: controller grpc={} http={} agent {} data={}",
        controller.grpc_addr, controller.http_addr, config.agent.node_name, agent.data_addr
    );
    tokio::select! {
        res = agent.wait() => res.map_err(anyhow::Error::from)?,
        _ = handle_wait_signal() => {}
    }
    controller.stop().await;
    Ok(())
}

async fn handle_wait_signal() {
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

/// Connects to the controller with a clear error when it is unreachable.
pub async fn controller_channel(url: &str) -> Result<tonic::transport::Channel> {
    let endpoint =
        switchyard_agent::session::controller_endpoint(url).map_err(anyhow::Error::msg)?;
    endpoint.connect().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach controller at {url}: {} (is `switchyard controller` or `switchyard up` running there?)",
            switchyard_agent::session::error_chain(&e)
        )
    })
}

/// The controller's cluster service.
pub async fn cluster_client(url: &str) -> Result<ClusterClient<tonic::transport::Channel>> {
    Ok(ClusterClient::new(controller_channel(url).await?))
}

async fn list_nodes(url: &str) -> Result<Vec<NodeStatus>> {
    let mut client = cluster_client(url).await?;
    let nodes = tokio::time::timeout(
        Duration::from_secs(5),
        client.list_nodes(ListNodesRequest {}),
    )
    .await
    .with_context(|| format!("controller at {url} did not answer within 5 s"))?
    .map_err(|s| anyhow::anyhow!("controller at {url} refused ListNodes: {}", s.message()))?
    .into_inner()
    .nodes;
    Ok(nodes)
}

async fn status(args: &StatusArgs) -> Result<()> {
    let nodes = list_nodes(&args.controller).await?;
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&wiring::nodes_json(&nodes))?
        ),
        Output::Table => {
            let rows: Vec<Vec<String>> = nodes.iter().map(wiring::node_row).collect();
            print!(
                "{}",
                table::render(
                    &[
                        "NODE",
                        "STATE",
                        "LAST HEARTBEAT",
                        "DEVICES",
                        "MEMORY USED/TOTAL (GiB)",
                        "TOPS (int8)",
                        "MODELS",
                        "ENDPOINT"
                    ],
                    &rows
                )
            );
            let ready = nodes
                .iter()
                .filter(|n| n.state == NodeState::Ready as i32)
                .count();
            println!("{} node(s), {} ready", nodes.len(), ready);
        }
    }
    Ok(())
}

async fn devices(args: &DevicesArgs) -> Result<()> {
    let per_node: Vec<(String, Vec<switchyard_proto::v1::Device>)> = match &args.controller {
        Some(url) => list_nodes(url)
            .await?
            .into_iter()
            .map(|n| {
                let info = n.info.unwrap_or_default();
                (info.node_name, info.devices)
            })
            .collect(),
        None => {
            if let Some(f) = &args.fixture
                && !f.is_dir()
            {
                bail!("fixture {} is not a directory", f.display());
            }
            if let Some(dir) = &args.models_dir {
                switchyard_backend_core::paths::set_models_dir(dir);
            }
            let (host, devices, notes, calibration) =
                wiring::scan_local(args.fixture.as_deref(), args.calibrate);
            if let Some(t) = calibration {
                println!("{t}");
            }
            if args.output == Output::Table {
                for n in &notes {
                    eprintln!("note: {n}");
                }
            }
            vec![(host.hostname, devices)]
        }
    };
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&wiring::devices_json(&per_node))?
        ),
        Output::Table => {
            let rows: Vec<Vec<String>> = per_node
                .iter()
                .flat_map(|(node, devs)| devs.iter().map(move |d| wiring::device_row(node, d)))
                .collect();
            print!(
                "{}",
                table::render(
                    &[
                        "NODE",
                        "DEVICE",
                        "KIND",
                        "MODEL",
                        "MEMORY USED/TOTAL (GiB)",
                        "TOPS (int8)",
                        "SOURCE",
                        "BACKENDS",
                        "HEALTH"
                    ],
                    &rows
                )
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_override_the_file_and_up_takes_both_roles() {
        let cli = Cli::try_parse_from([
            "switchyard",
            "up",
            "--listen",
            "127.0.0.1:1",
            "--agent-listen",
            "127.0.0.1:2",
            "--node-name",
            "n1",
        ])
        .unwrap();
        let Command::Up(args) = cli.command else {
            panic!("up expected")
        };
        let mut config = Config::parse(
            "[agent]\nnode_name = \"from-file\"\n",
            std::path::Path::new("c"),
        )
        .unwrap();
        apply_controller(&mut config, &args.controller);
        apply_agent(&mut config, &args.agent);
        assert_eq!(config.controller.listen.port(), 1);
        assert_eq!(config.agent.listen.port(), 2);
        assert_eq!(config.agent.node_name, "n1");
        let err =
            Cli::try_parse_from(["switchyard", "controller", "--listen", "nope"]).unwrap_err();
        assert!(err.to_string().contains("--listen"), "{err}");
    }
}
