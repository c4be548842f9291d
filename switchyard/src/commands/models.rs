//! `switchyard models add|list|rm`: the cluster's model set, held by the controller (kept in
//! its data directory, sent to every agent). `add` takes a GGUF the user already has (a file,
//! or a model of the local Ollama store, used in place), reads its header here, computes the
//! memory it needs and hands the entry to the controller; a node serves it where the file
//! exists at that path.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;
use sha2::Digest;
use switchyard_backend_core::registry::added::{self, AddRequest};
use switchyard_proto::v1::{
    AddModelRequest, ListModelsRequest, ModelEntry, ModelStatus, RemoveModelRequest,
};

use super::{cluster_client, tls_hint};
use crate::args::{ModelsAction, ModelsArgs, Output};
use crate::output;

const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Runs a models subcommand against the controller at `args.controller`.
pub async fn run(args: &ModelsArgs) -> Result<()> {
    let url = &args.controller;
    match &args.action {
        ModelsAction::Add {
            name,
            gguf,
            ollama,
            tier,
            ctx,
            parallel,
        } => {
            added::check_name(name).map_err(anyhow::Error::msg)?;
            let (file, sha256, origin) = match (gguf, ollama) {
                (Some(path), None) => (path.clone(), None, format!("file {}", path.display())),
                (None, Some(reference)) => {
                    let store = added::ollama_store();
                    let (blob, sha) =
                        added::ollama_blob(&store, reference).map_err(anyhow::Error::msg)?;
                    (blob, Some(sha), format!("ollama {reference}"))
                }
                _ => bail!("give exactly one of --gguf PATH or --ollama MODEL[:TAG]"),
            };
            // Refuse a taken name before hashing what may be tens of GiB.
            if list_models(url).await?.iter().any(|m| &m.name == name) {
                bail!(
                    "a model named {name} exists already (`switchyard models list`): choose another name, or `switchyard models rm {name}` first"
                );
            }
            let req = AddRequest {
                name: name.clone(),
                gguf: file,
                tier: tier.clone(),
                ctx: *ctx,
                parallel: *parallel,
                sha256,
                origin,
            };
            let (model, info, estimate) =
                added::entry(&req, hash_with_progress).map_err(anyhow::Error::msg)?;
            let mut client = cluster_client(url).await?;
            let answer = tokio::time::timeout(
                ANSWER_WITHIN,
                client.add_model(AddModelRequest {
                    model: Some(ModelEntry::from(&model)),
                }),
            )
            .await
            .with_context(|| format!("controller at {url} did not answer within 10 s"))?
            .map_err(|s| {
                anyhow::anyhow!("{name} was not added: {}{}", s.message(), tls_hint(url, &s))
            })?
            .into_inner();
            println!(
                "added {name}: {} {} {}, {} layers, trained context {}; serves {} slot(s) of {} tokens; needs {} (weights {}, KV cache {}, compute {})",
                info.architecture,
                info.size_label.as_deref().unwrap_or("?"),
                info.quantization(),
                info.block_count,
                info.context_length,
                model.engine.parallel,
                model.context_tokens,
                gib(estimate.total()),
                gib(estimate.weights),
                gib(estimate.kv_cache),
                gib(estimate.compute),
            );
            println!(
                "  file {} (sha256 {}); the controller at {url} keeps it in the cluster's model set",
                model.engine.gguf.display(),
                &model.sha256[..12]
            );
            let nodes = answer.model.map(|m| m.available_on).unwrap_or_default();
            if nodes.is_empty() {
                println!(
                    "  no node reports the file yet: a node serves it once the file is at that path there (agents see it within seconds)"
                );
            } else {
                println!("  served on: {}", nodes.join(", "));
            }
            if let Some(t) = tier {
                println!(
                    "  to route the {t} tier to it: [routes] {t} = [\"{name}\", …] in the controller's configuration"
                );
            }
        }
        ModelsAction::List { output } => list(&list_models(url).await?, *output)?,
        ModelsAction::Rm { name } => {
            let mut client = cluster_client(url).await?;
            tokio::time::timeout(
                ANSWER_WITHIN,
                client.remove_model(RemoveModelRequest { name: name.clone() }),
            )
            .await
            .with_context(|| format!("controller at {url} did not answer within 10 s"))?
            .map_err(|s| anyhow::anyhow!("{}{}", s.message(), tls_hint(url, &s)))?;
            println!(
                "removed {name} from the cluster's model set (its file is left where it is; engines serving it stop)"
            );
        }
    }
    Ok(())
}

/// Every model the controller at `url` knows.
async fn list_models(url: &str) -> Result<Vec<ModelStatus>> {
    let mut client = cluster_client(url).await?;
    Ok(
        tokio::time::timeout(ANSWER_WITHIN, client.list_models(ListModelsRequest {}))
            .await
            .with_context(|| format!("controller at {url} did not answer within 10 s"))?
            .map_err(|s| {
                anyhow::anyhow!(
                    "controller at {url} refused ListModels: {}{}",
                    s.message(),
                    tls_hint(url, &s)
                )
            })?
            .into_inner()
            .models,
    )
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// sha256 of `path`, with a progress bar on a terminal (GGUF files run to tens of GiB).
fn hash_with_progress(path: &Path) -> Result<String, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = indicatif::ProgressBar::new(len).with_message(format!("sha256 {}", path.display()));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})")
            .expect("valid template"),
    );
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn list(models: &[ModelStatus], out: Output) -> Result<()> {
    let rows: Vec<serde_json::Value> = models
        .iter()
        .map(|m| {
            let loaded: Vec<String> = m
                .loaded_on
                .iter()
                .map(|p| match p.layout.split_once(' ') {
                    // A partial offload: how many layers are on the device.
                    Some((layers, _)) if !p.layout.is_empty() => {
                        format!("{}/{} ({layers} layers; rest on CPU)", p.node, p.device_id)
                    }
                    _ => format!("{}/{}", p.node, p.device_id),
                })
                .collect();
            json!({
                "name": m.name,
                "stage": output::stage_name(m.stage),
                "tier": Some(&m.tier).filter(|t| !t.is_empty()),
                "engine": m.engine,
                "format": m.format,
                "file": Some(&m.file).filter(|f| !f.is_empty()),
                "parameters": m.info.get("parameter_size"),
                "quantization": m.info.get("quantization"),
                "memory_bytes": m.memory_bytes,
                "source": m.source,
                "sha256": Some(&m.sha256).filter(|s| !s.is_empty()),
                "available_on": m.available_on,
                "loaded_on": loaded,
            })
        })
        .collect();
    if out == Output::Json {
        return output::print_json(&serde_json::Value::Array(rows));
    }
    let cell = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) if a.is_empty() => "-".into(),
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str())
            .collect::<Vec<_>>()
            .join(","),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                cell(&r["name"]),
                cell(&r["stage"]),
                cell(&r["tier"]),
                cell(&r["engine"]),
                cell(&r["parameters"]),
                cell(&r["quantization"]),
                gib(r["memory_bytes"].as_u64().unwrap_or(0)),
                cell(&r["source"]),
                cell(&r["available_on"]),
                cell(&r["loaded_on"]),
                cell(&r["file"]),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table::render(
            &[
                "NAME",
                "STAGE",
                "TIER",
                "ENGINE",
                "PARAMS",
                "QUANT",
                "MEMORY",
                "SOURCE",
                "FILES ON",
                "LOADED ON",
                "FILE"
            ],
            &table
        )
    );
    Ok(())
}
