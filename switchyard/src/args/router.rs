//! Flags of `switchyard router fit|eval`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{ClientArgs, Output};

/// Flags of `router`.
#[derive(Debug, Args)]
pub struct RouterArgs {
    #[command(subcommand)]
    pub action: RouterAction,
}

/// `router` subcommands.
#[derive(Debug, Subcommand)]
pub enum RouterAction {
    /// Fit a router on your own tiers: FILE is JSONL, one `{"prompt": …, "tier": …}` per
    /// line (at least 2 tiers, any names; models/router/prompts.jsonl is the example). The
    /// prompts are embedded by the cluster's embedder, a share of each tier is held out to
    /// report accuracy, per-tier precision/recall and the confusion matrix, and the router
    /// (fitted on every prompt) is written with its tier list and a checksum.
    Fit(RouterFitArgs),
    /// Score a router file on a labelled JSONL file (same shape as for `fit`).
    Eval(RouterEvalArgs),
    /// Install a router file into the running cluster without a restart (hot swap: the next
    /// request classifies with it). Every tier it has needs models in [routes]; the one it
    /// replaces is kept for `router rollback`. Needs the controller-role certificate or
    /// SWITCHYARD_ADMIN_TOKEN, like `models add`.
    Install(RouterInstallArgs),
    /// Put back the router the last install replaced.
    Rollback(RouterControllerArgs),
    /// Show which router classifies now.
    Show(RouterControllerArgs),
}

/// Flags of `router install`.
#[derive(Debug, Args)]
pub struct RouterInstallArgs {
    /// The router file (`router fit --out`).
    pub file: PathBuf,
    #[command(flatten)]
    pub at: RouterControllerArgs,
}

/// The controller a router command talks to.
#[derive(Debug, Args)]
pub struct RouterControllerArgs {
    /// Controller gRPC URL.
    #[arg(
        long,
        env = "SWITCHYARD_CONTROLLER",
        default_value = "http://127.0.0.1:50051",
        value_name = "URL"
    )]
    pub controller: String,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

/// Flags of `router fit`.
#[derive(Debug, Args)]
pub struct RouterFitArgs {
    /// Labelled prompts (JSONL).
    pub file: PathBuf,
    /// Where to write the router.
    #[arg(long, default_value = "router.json", value_name = "FILE")]
    pub out: PathBuf,
    /// Share of each tier held out for the evaluation (0 to 0.9; 0 evaluates nothing).
    #[arg(long, default_value_t = 0.2)]
    pub holdout: f64,
    /// Seed of the hold-out shuffle.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Embedding model (a registry name the cluster serves).
    #[arg(long, default_value = "minilm-l6-v2")]
    pub embedder: String,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Output format of the report.
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

/// Flags of `router eval`.
#[derive(Debug, Args)]
pub struct RouterEvalArgs {
    /// Labelled prompts (JSONL).
    pub file: PathBuf,
    /// The router file (`router fit --out`).
    #[arg(long, value_name = "FILE")]
    pub router: PathBuf,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Output format of the report.
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}
