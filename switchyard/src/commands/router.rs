//! `switchyard router fit|eval`: a router fitted on the user's own tiers. The prompts are
//! embedded through the controller's Embed RPC (the cluster's embedder, wherever it is
//! placed); fitting and scoring are `switchyard_controller::tier_router`'s.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use switchyard_controller::tier_router::{
    Evaluation, FitOptions, LabelledSet, RouterHead, Tier, evaluate, fit_head, parse_jsonl,
    split_stratified,
};
use switchyard_proto::v1::inference_client::InferenceClient;
use switchyard_proto::v1::{
    EmbedRequest, GetRouterRequest, InstallRouterRequest, RollbackRouterRequest, RouterStatus,
};

use super::{authorized, cluster_client, controller_channel};
use crate::args::{
    ClientArgs, Output, RouterAction, RouterArgs, RouterControllerArgs, RouterEvalArgs,
    RouterFitArgs,
};
use crate::output::{self, table};

/// Prompts per Embed call.
const EMBED_BATCH: usize = 32;

/// Runs a `router` subcommand.
pub async fn run(args: &RouterArgs) -> Result<()> {
    match &args.action {
        RouterAction::Fit(a) => fit(a).await,
        RouterAction::Eval(a) => eval(a).await,
        RouterAction::Install(a) => {
            let text = std::fs::read_to_string(&a.file)
                .with_context(|| format!("reading {}", a.file.display()))?;
            // Checked here too, so a damaged file is refused before the controller is asked.
            RouterHead::from_json(&text).with_context(|| a.file.display().to_string())?;
            let mut c = cluster_client(&a.at.controller).await?;
            let status = c
                .install_router(InstallRouterRequest { router_json: text })
                .await
                .map_err(|s| {
                    anyhow::anyhow!("router install refused ({:?}): {}", s.code(), s.message())
                })?
                .into_inner();
            print_status("installed", &status, &a.at)
        }
        RouterAction::Rollback(a) => {
            let mut c = cluster_client(&a.controller).await?;
            let status = c
                .rollback_router(RollbackRouterRequest {})
                .await
                .map_err(|s| {
                    anyhow::anyhow!("router rollback refused ({:?}): {}", s.code(), s.message())
                })?
                .into_inner();
            print_status("rolled back", &status, a)
        }
        RouterAction::Show(a) => {
            let mut c = cluster_client(&a.controller).await?;
            let status = c
                .get_router(GetRouterRequest {})
                .await
                .map_err(|s| {
                    anyhow::anyhow!("router show failed ({:?}): {}", s.code(), s.message())
                })?
                .into_inner();
            print_status("router", &status, a)
        }
    }
}

fn print_status(what: &str, s: &RouterStatus, a: &RouterControllerArgs) -> Result<()> {
    match a.output {
        Output::Json => output::print_json(&json!({
            "fitted": s.fitted, "model": s.model, "tiers": s.tiers, "embedder": s.embedder,
            "sha256": s.sha256, "previous_sha256": s.previous_sha256,
        })),
        Output::Table => {
            if s.fitted {
                println!(
                    "{what}: fitted router {} (embedder {}; tiers {})",
                    s.sha256,
                    s.embedder,
                    s.tiers.join(", ")
                );
            } else {
                println!(
                    "{what}: the registry's router model '{}' (no fitted router)",
                    s.model
                );
            }
            match s.previous_sha256.as_deref() {
                Some("") => println!(
                    "rollback puts back: the registry's router model '{}'",
                    s.model
                ),
                Some(p) => println!("rollback puts back: fitted router {p}"),
                None => println!("nothing to roll back to"),
            }
            Ok(())
        }
    }
}

fn read_set(path: &std::path::Path, known: Option<&[Tier]>) -> Result<LabelledSet> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_jsonl(&text, known).with_context(|| path.display().to_string())
}

async fn fit(a: &RouterFitArgs) -> Result<()> {
    if !(0.0..=0.9).contains(&a.holdout) {
        anyhow::bail!("--holdout must be between 0 and 0.9, got {}", a.holdout);
    }
    let set = read_set(&a.file, None)?;
    let labels = set.label_indices();
    let vectors = embed_all(&a.client, &a.embedder, &set).await?;
    let opts = FitOptions {
        holdout: a.holdout,
        seed: a.seed,
        ..FitOptions::default()
    };
    let (train, test, warnings) = split_stratified(&labels, &set.tiers, opts.holdout, opts.seed);
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let pick = |idx: &[usize]| -> (Vec<Vec<f32>>, Vec<usize>) {
        (
            idx.iter().map(|&i| vectors[i].clone()).collect(),
            idx.iter().map(|&i| labels[i]).collect(),
        )
    };
    let evaluation = if test.is_empty() {
        None
    } else {
        let (tx, ty) = pick(&train);
        let held_out = fit_head(&a.embedder, &set.tiers, &tx, &ty, &opts)?.seal();
        let (hx, hy) = pick(&test);
        Some(evaluate(&held_out, &hx, &hy)?)
    };
    let mut head = fit_head(&a.embedder, &set.tiers, &vectors, &labels, &opts)?;
    head.holdout_accuracy = evaluation.as_ref().map(|e| e.accuracy);
    let head = head.seal();
    std::fs::write(&a.out, head.to_json())
        .with_context(|| format!("writing {}", a.out.display()))?;
    let report = json!({
        "router": a.out.display().to_string(), "embedder": a.embedder, "sha256": head.sha256,
        "prompts": set.items.len(), "trained_on": head.trained_on, "held_out": test.len(),
        "tiers": tier_counts(&set), "warnings": warnings,
        "evaluation": evaluation.as_ref().map(evaluation_json),
    });
    match a.output {
        Output::Json => output::print_json(&report)?,
        Output::Table => {
            println!(
                "router: {} tiers, fitted on {} prompts with {} -> {} (sha256 {})",
                head.tiers.len(),
                head.trained_on,
                a.embedder,
                a.out.display(),
                &head.sha256[..12]
            );
            match &evaluation {
                Some(e) => print!(
                    "held out {} prompts ({:.0} % of each tier):\n{}",
                    test.len(),
                    a.holdout * 100.0,
                    evaluation_table(e)
                ),
                None => println!("nothing held out (--holdout 0): no evaluation"),
            }
        }
    }
    Ok(())
}

async fn eval(a: &RouterEvalArgs) -> Result<()> {
    let head = RouterHead::load(&a.router)?;
    let set = read_set(&a.file, Some(&head.tiers))?;
    let labels: Vec<usize> = set
        .items
        .iter()
        .map(|it| {
            head.tiers
                .iter()
                .position(|t| *t == it.tier)
                .expect("checked by parse")
        })
        .collect();
    let vectors = embed_all(&a.client, &head.embedder, &set).await?;
    let e = evaluate(&head, &vectors, &labels)?;
    match a.output {
        Output::Json => output::print_json(&json!({
            "router": a.router.display().to_string(), "prompts": set.items.len(),
            "evaluation": evaluation_json(&e),
        }))?,
        Output::Table => print!("{} prompts:\n{}", set.items.len(), evaluation_table(&e)),
    }
    Ok(())
}

/// Every prompt's embedding, in order, through the controller.
async fn embed_all(client: &ClientArgs, model: &str, set: &LabelledSet) -> Result<Vec<Vec<f32>>> {
    let mut c = InferenceClient::new(controller_channel(&client.controller).await?)
        .max_decoding_message_size(64 << 20);
    let mut out = Vec::with_capacity(set.items.len());
    for chunk in set.items.chunks(EMBED_BATCH) {
        let req = EmbedRequest {
            model: model.to_owned(),
            inputs: chunk.iter().map(|it| it.prompt.clone()).collect(),
        };
        let resp = c
            .embed(authorized(req, client.token.as_deref())?)
            .await
            .map_err(|s| {
                anyhow::anyhow!(
                    "embedding lines {}-{} with '{model}' failed ({:?}): {}",
                    chunk[0].line,
                    chunk[chunk.len() - 1].line,
                    s.code(),
                    s.message()
                )
            })?
            .into_inner();
        if resp.embeddings.len() != chunk.len() {
            anyhow::bail!(
                "the controller returned {} embeddings for {} prompts",
                resp.embeddings.len(),
                chunk.len()
            );
        }
        out.extend(resp.embeddings.into_iter().map(|e| e.values));
        eprint!(
            "\rrouter: embedded {}/{} prompts",
            out.len(),
            set.items.len()
        );
    }
    eprintln!();
    Ok(out)
}

fn tier_counts(set: &LabelledSet) -> Value {
    set.tiers
        .iter()
        .zip(set.counts())
        .map(|(t, n)| (t.to_string(), json!(n)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn evaluation_json(e: &Evaluation) -> Value {
    json!({
        "accuracy": e.accuracy,
        "per_tier": e.per_tier.iter().map(|s| json!({
            "tier": s.tier, "precision": s.precision, "recall": s.recall, "support": s.support,
        })).collect::<Vec<_>>(),
        "confusion": e.confusion,
    })
}

/// Accuracy, then per tier: precision, recall, support and its confusion row.
fn evaluation_table(e: &Evaluation) -> String {
    let names: Vec<String> = e.per_tier.iter().map(|s| s.tier.to_string()).collect();
    let mut headers = vec!["TIER", "PRECISION", "RECALL", "SUPPORT"];
    headers.extend(names.iter().map(|n| n.as_str()));
    let rows: Vec<Vec<String>> = e
        .per_tier
        .iter()
        .zip(&e.confusion)
        .map(|(s, row)| {
            let mut r = vec![
                s.tier.to_string(),
                s.precision.map_or("-".into(), |p| format!("{:.2}", p)),
                format!("{:.2}", s.recall),
                s.support.to_string(),
            ];
            r.extend(row.iter().map(usize::to_string));
            r
        })
        .collect();
    format!(
        "accuracy {:.1} %\n{}(columns after SUPPORT: the tier each was routed to)\n",
        e.accuracy * 100.0,
        table::render(&headers, &rows)
    )
}
