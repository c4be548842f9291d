//! Flags of `switchyard models add|list|rm`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Output;

/// Flags of `models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub action: ModelsAction,
    /// Controller gRPC URL: the controller holds the cluster's model set (in its data
    /// directory) and sends it to every agent.
    #[arg(
        long,
        env = "SWITCHYARD_CONTROLLER",
        default_value = "http://127.0.0.1:50051",
        value_name = "URL",
        global = true
    )]
    pub controller: String,
}

/// `models` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelsAction {
    /// Add a GGUF model to the cluster, served by a llama-server the agents supervise, on
    /// every node where the file exists at this path. Reads the header
    /// (architecture, parameters, layers, KV heads, trained context, quantisation), computes
    /// the memory it needs (weights + KV cache for ctx x parallel + compute buffer) and its
    /// sha256, and hands the entry to the controller, which keeps it across restarts.
    /// Run it where the file is. Examples:
    ///   switchyard models add qwen-coder --gguf ~/models/qwen2.5-coder-7b-q4_k_m.gguf --tier code
    ///   switchyard models add llama3 --ollama llama3.1:8b --ctx 8192 --parallel 2
    #[command(group(clap::ArgGroup::new("source").required(true).args(["gguf", "ollama"])), verbatim_doc_comment)]
    Add {
        /// Name to serve it under (a-z 0-9 . _ : -; what clients send as `model`).
        name: String,
        /// The GGUF file (used in place).
        #[arg(long, value_name = "PATH")]
        gguf: Option<PathBuf>,
        /// A model of the local Ollama store ($OLLAMA_MODELS or ~/.ollama/models), used in
        /// place: its manifest names the GGUF blob.
        #[arg(long, value_name = "MODEL[:TAG]")]
        ollama: Option<String>,
        /// Tier label shown by `models list` (routing follows `[routes]`).
        #[arg(long, value_parser = ["fast", "code", "heavy"])]
        tier: Option<String>,
        /// Context per slot, tokens (default: the trained context, at most 4096).
        #[arg(long, value_name = "N")]
        ctx: Option<u32>,
        /// Concurrent slots (llama-server --parallel).
        #[arg(long, value_name = "N", default_value_t = 4)]
        parallel: u32,
    },
    /// Every model of the cluster: the registry's and the added ones, with engine,
    /// parameters, quantisation, memory estimate, the nodes that have its file and where it
    /// is loaded.
    List {
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Remove an added model from the cluster (its file is left where it is; engines
    /// serving it stop).
    Rm {
        /// The model's name.
        name: String,
    },
}
