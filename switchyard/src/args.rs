//! Command-line interface: subcommands and flags (each with a `SWITCHYARD_*` env twin where
//! it has one). How they override the config file is in `config.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod models;
mod router;
pub use models::{ModelsAction, ModelsArgs};
pub use router::{RouterAction, RouterArgs, RouterControllerArgs, RouterEvalArgs, RouterFitArgs};

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
    /// Run a node agent: discover devices, join and register with the controller, run
    /// stages.
    Agent(AgentCmd),
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
    /// The controller's document store (used by `run --retrieve`): add, list, show, rm,
    /// search.
    Docs(DocsArgs),
    /// Join tokens of the controller whose data directory this host holds: create, list,
    /// revoke.
    Token(TokenArgs),
    /// Cluster nodes: `nodes remove NAME` drops a node and revokes its certificates.
    Nodes(NodesArgs),
    /// The cluster's model set, held by the controller and sent to every agent:
    /// `models add NAME --gguf FILE | --ollama MODEL[:TAG]`, `models list`, `models rm NAME`.
    Models(ModelsArgs),
    /// Routers fitted on your own tiers: `router fit FILE.jsonl` (embed, hold out, fit, report,
    /// write), `router eval FILE.jsonl --router router.json`.
    Router(RouterArgs),
}

/// Flags of `nodes`.
#[derive(Debug, Args)]
pub struct NodesArgs {
    #[command(subcommand)]
    pub action: NodesAction,
}

/// What to do with nodes.
#[derive(Debug, Subcommand)]
pub enum NodesAction {
    /// Drop a node from the cluster and revoke every certificate issued to its name so far
    /// (it must join again with a new token). Run on the controller's host with an
    /// https:// URL: it needs the controller's certificate.
    Remove {
        /// The node name.
        name: String,
        /// Controller gRPC URL.
        #[arg(
            long,
            env = "SWITCHYARD_CONTROLLER",
            default_value = "https://127.0.0.1:50051",
            value_name = "URL"
        )]
        controller: String,
    },
}

/// Flags of `agent`.
#[derive(Debug, Args, Clone, Default)]
pub struct AgentCmd {
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Connect to a controller started with --insecure: plaintext, no certificate, and a
    /// data path anyone who reaches it can call. A warning is logged at every start.
    #[arg(long, env = "SWITCHYARD_INSECURE")]
    pub insecure: bool,
}

/// Flags of `token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub action: TokenAction,
    /// The controller's data directory (where its `pki/` lives).
    #[arg(long, env = "SWITCHYARD_DATA_DIR", value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
}

/// What to do with join tokens (or, with `--api`, client-API tokens).
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Make a token and print it (the only time its secret is shown).
    Create {
        /// A client-API token (HTTP `/v1`, `/api`, gRPC `Inference`) instead of a join token.
        #[arg(long)]
        api: bool,
        /// What an API token may do: `infer` (chat, completions, embeddings, pipeline,
        /// search) or `admin` (also documents add/delete and model load/unload).
        #[arg(long, value_name = "SCOPE", requires = "api")]
        scope: Option<String>,
        /// How long it is valid: 30m, 24h, 7d, or never (join tokens: 24h by default; API
        /// tokens: never).
        #[arg(long, value_name = "TTL")]
        ttl: Option<String>,
        /// How many agents may join with a join token (single-use by default).
        #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "api")]
        uses: u32,
    },
    /// List the tokens: id, created, expires, uses or scope (never their secrets).
    List {
        /// The client-API tokens instead of the join tokens.
        #[arg(long)]
        api: bool,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Revoke a token by id: agents can no longer join with it (joined nodes keep their
    /// certificates); an API token is refused from the next request on.
    Revoke {
        /// A client-API token.
        #[arg(long)]
        api: bool,
        /// The token id (see `token list`).
        id: String,
    },
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
    /// Chunk, embed (through the cluster) and store files: text, markdown and source files;
    /// directories recursively (hidden and git-ignored files skipped, binaries skipped with a
    /// note); `-` reads stdin. Re-adding an unchanged file does nothing; a changed one
    /// replaces its previous version.
    Add {
        /// Files, directories, or `-` for stdin.
        #[arg(value_name = "FILE|DIR|-", required_unless_present = "texts")]
        paths: Vec<PathBuf>,
        /// A document given inline (repeatable), instead of or beside files.
        #[arg(long = "text", value_name = "TEXT")]
        texts: Vec<String>,
        /// Collection to add to (created on first use).
        #[arg(long, value_name = "NAME")]
        collection: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// List the stored documents and collections.
    List {
        /// Only this collection.
        #[arg(long, value_name = "NAME")]
        collection: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Print one document's text.
    Show {
        /// Document id (from `docs list`).
        id: u64,
        #[command(flatten)]
        client: ClientArgs,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Delete documents by id, or a whole collection with --collection.
    Rm {
        /// Document ids.
        #[arg(required_unless_present = "collection", conflicts_with = "collection")]
        ids: Vec<u64>,
        /// Delete this collection and every document in it.
        #[arg(long, value_name = "NAME")]
        collection: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The chunks closest to a query, best first.
    Search {
        /// The query.
        query: String,
        /// Chunks to return (default: the controller's retrieval.top_k).
        #[arg(short = 'k', long = "top-k", value_name = "N")]
        k: Option<u32>,
        /// Collection to search (default: "default").
        #[arg(long, value_name = "NAME")]
        collection: Option<String>,
        /// Drop chunks scoring below this cosine similarity (-1..1).
        #[arg(long, value_name = "SCORE", allow_negative_numbers = true)]
        min_score: Option<f32>,
        #[command(flatten)]
        client: ClientArgs,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

/// Flags of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The prompt.
    pub prompt: String,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Embed the prompt and prepend the closest chunks of the document store (`docs add`).
    #[arg(long)]
    pub retrieve: bool,
    /// Collection to retrieve from (default: "default").
    #[arg(long, value_name = "NAME", requires = "retrieve")]
    pub collection: Option<String>,
    /// Chunks to retrieve (default: the controller's retrieval.top_k).
    #[arg(long, value_name = "N", requires = "retrieve")]
    pub top_k: Option<u32>,
    /// Drop chunks scoring below this cosine similarity (-1..1).
    #[arg(
        long,
        value_name = "SCORE",
        requires = "retrieve",
        allow_negative_numbers = true
    )]
    pub min_score: Option<f32>,
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
    /// Agents on other hosts connect to this controller: a loopback --listen address is
    /// refused (they could not reach it).
    #[arg(long, env = "SWITCHYARD_CLUSTER")]
    pub cluster: bool,
    /// HTTP listen address (OpenAI-compatible API, /health, /metrics).
    #[arg(long, env = "SWITCHYARD_HTTP_LISTEN", value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,
    /// Heartbeat interval told to agents, milliseconds.
    #[arg(long, env = "SWITCHYARD_HEARTBEAT_INTERVAL_MS", value_name = "MS")]
    pub heartbeat_interval_ms: Option<u32>,
    /// Model registry file.
    #[arg(long, env = "SWITCHYARD_MODEL_REGISTRY", value_name = "FILE")]
    pub model_registry: Option<PathBuf>,
    /// Directory for the controller's state (the document store), created on start
    /// (default: ~/.cache/switchyard/controller).
    #[arg(long, env = "SWITCHYARD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Place stages on simulated (fixture) devices too — for a cluster of fixture agents.
    /// Off by default: a simulated device runs on a CPU while claiming to be something else.
    #[arg(long, env = "SWITCHYARD_ALLOW_SIMULATED")]
    pub allow_simulated: bool,
    /// Serve the control path without TLS and without certificates (anyone who reaches the
    /// gRPC port can register a node and receive prompts) and call agents in plaintext. A
    /// warning is logged at every start. `up` on a loopback `--listen` always runs so (nobody
    /// else can reach it); beyond loopback it is mTLS unless this flag is given.
    #[arg(long, env = "SWITCHYARD_INSECURE")]
    pub insecure: bool,
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
    /// Data-path gRPC listen address. Port 0 picks one. Agents serving a controller on
    /// another host listen on 0.0.0.0 (e.g. 0.0.0.0:50061).
    #[arg(
        id = "agent_listen",
        long = "agent-listen",
        env = "SWITCHYARD_AGENT_LISTEN",
        value_name = "ADDR"
    )]
    pub listen: Option<SocketAddr>,
    /// URL the controller uses to reach this agent, when neither the listen address nor (for
    /// a 0.0.0.0 listen address) this host's address on the route to the controller works,
    /// e.g. behind NAT.
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
    /// Join token (SY10::...) from `switchyard controller` or `switchyard token create`:
    /// used when this node has no certificate yet (or to renew it).
    #[arg(
        long,
        env = "SWITCHYARD_JOIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub join_token: Option<String>,
    /// Where the agent keeps its certificate and key (default: ~/.cache/switchyard/agent).
    #[arg(long, env = "SWITCHYARD_AGENT_DATA_DIR", value_name = "DIR")]
    pub agent_data_dir: Option<PathBuf>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_bad_flag_value_names_the_flag() {
        let err =
            Cli::try_parse_from(["switchyard", "controller", "--listen", "nope"]).unwrap_err();
        assert!(err.to_string().contains("--listen"), "{err}");
    }
}
