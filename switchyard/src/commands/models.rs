//! `switchyard models add|list|rm`: the models this host serves. `add` takes a GGUF the user
//! already has (a file, or a model of the local Ollama store, used in place), reads its
//! header, computes the memory it needs and records it in `<models dir>/added.toml`, which
//! the controller and agent on this host read beside the registry.

use std::io::Read;
use std::path::Path;

use anyhow::{Result, bail};
use serde_json::json;
use sha2::Digest;
use switchyard_backend_core::ModelRegistry;
use switchyard_backend_core::registry::added::{self, AddRequest};

use crate::args::{ModelsAction, ModelsArgs, Output};
use crate::config::{self, Config};
use crate::output;

/// Runs a models subcommand with `config` (the file) and the flags.
pub fn run(mut config: Config, args: &ModelsArgs) -> Result<()> {
    if let Some(dir) = &args.models_dir {
        config.models.dir = dir.clone();
    }
    let dir = config.models.dir.clone();
    match &args.action {
        ModelsAction::Add {
            name,
            gguf,
            ollama,
            tier,
            ctx,
            parallel,
        } => {
            let registry = config::load_models(&config)?;
            if registry.get(name).is_some() {
                bail!(
                    "a model named {name} exists already (`switchyard models list`): choose another name, or `switchyard models rm {name}` first"
                );
            }
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
            let mut all = added::load(&dir)?;
            all.push(model.clone());
            added::save(&dir, &all)?;
            // The saved set must load as a registry: refuse (and undo) anything it rejects.
            if let Err(e) = config::load_models(&config) {
                all.pop();
                added::save(&dir, &all)?;
                bail!("{name} was not added: {e}");
            }
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
                "  file {} (sha256 {})",
                model.engine.gguf.display(),
                &model.sha256[..12]
            );
            if let Some(t) = tier {
                println!(
                    "  to route the {t} tier to it: [routes] {t} = [\"{name}\", …] in the configuration"
                );
            }
        }
        ModelsAction::List { output } => {
            let registry = config::load_models(&config)?;
            let added: Vec<String> = added::load(&dir)?.into_iter().map(|m| m.name).collect();
            list(&registry, &added, *output)?;
        }
        ModelsAction::Rm { name } => {
            let mut all = added::load(&dir)?;
            let before = all.len();
            all.retain(|m| &m.name != name);
            if all.len() == before {
                let registry = config::load_models(&config)?;
                if registry.get(name).is_some() {
                    bail!(
                        "{name} comes from the model registry, not from `models add`: edit the registry file to remove it"
                    );
                }
                bail!("no added model named {name} (`switchyard models list`)");
            }
            added::save(&dir, &all)?;
            println!("removed {name} (its file is left where it is)");
        }
    }
    Ok(())
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

fn list(registry: &ModelRegistry, added: &[String], out: Output) -> Result<()> {
    let rows: Vec<serde_json::Value> = registry
        .iter()
        .map(|s| {
            let (engine, file) = match &s.engine {
                Some(e) => (e.kind.as_str().to_string(), e.gguf.clone()),
                None if s.backends.is_empty() => ("onnx".to_string(), s.onnx.clone()),
                None => (s.backends.join(","), s.onnx.clone()),
            };
            json!({
                "name": s.name,
                "stage": format!("{:?}", s.stage).to_lowercase(),
                "tier": s.tier,
                "engine": engine,
                "file": file.display().to_string(),
                "present": file.is_file(),
                "parameters": s.info.get("parameter_size"),
                "quantization": s.info.get("quantization"),
                "memory_bytes": s.memory_bytes,
                "source": if added.contains(&s.name) { "added" } else { "registry" },
            })
        })
        .collect();
    if out == Output::Json {
        return output::print_json(&serde_json::Value::Array(rows));
    }
    let cell = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
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
                if r["present"] == true {
                    cell(&r["file"])
                } else {
                    format!("{} (missing)", cell(&r["file"]))
                },
            ]
        })
        .collect();
    print!(
        "{}",
        output::table::render(
            &[
                "NAME", "STAGE", "TIER", "ENGINE", "PARAMS", "QUANT", "MEMORY", "SOURCE", "FILE"
            ],
            &table
        )
    );
    Ok(())
}
