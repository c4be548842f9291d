//! `docs add`: which files are read (text only: binaries are skipped with a note), one
//! AddDocuments call per document (the controller stores each in one transaction), with a
//! progress bar on a terminal.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tonic::Code;

use super::{add_one, connect, document_json, documents_table, store_info};
use crate::args::{ClientArgs, Output};
use crate::output;

/// One document to send.
struct Input {
    source: String,
    text: String,
}

/// Why a file is not sent.
fn unreadable(bytes: &[u8], max: u64) -> Option<String> {
    if bytes.len() as u64 > max {
        return Some(format!(
            "{} bytes, over the controller's retrieval.max_document_bytes ({max})",
            bytes.len()
        ));
    }
    if bytes.contains(&0) || std::str::from_utf8(bytes).is_err() {
        return Some("binary (not UTF-8 text)".into());
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Some("empty".into());
    }
    None
}

/// The name a file is stored under: its canonical path, so re-adding it from another working
/// directory finds (and replaces or keeps) the same document.
fn source_of(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Files under `dir`, sorted; hidden and git-ignored ones are skipped.
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in ignore::WalkBuilder::new(dir)
        .sort_by_file_name(|a, b| a.cmp(b))
        .build()
    {
        let entry = entry.map_err(|e| anyhow::anyhow!("reading {}: {e}", dir.display()))?;
        if entry.file_type().is_some_and(|t| t.is_file()) {
            files.push(entry.into_path());
        }
    }
    Ok(files)
}

/// Reads the inputs: explicit files and stdin must be text (else an error); files found in
/// directories that are not are skipped with a note.
fn gather(paths: &[PathBuf], texts: &[String], max: u64) -> Result<(Vec<Input>, Vec<String>)> {
    let mut inputs: Vec<Input> = texts
        .iter()
        .map(|t| Input {
            source: String::new(),
            text: t.clone(),
        })
        .collect();
    let mut notes = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        if let Some(why) = unreadable(t.as_bytes(), max) {
            bail!("--text #{}: {why}", i + 1);
        }
    }
    for path in paths {
        if path.as_os_str() == "-" {
            let mut bytes = Vec::new();
            std::io::stdin().read_to_end(&mut bytes)?;
            if let Some(why) = unreadable(&bytes, max) {
                bail!("stdin: {why}");
            }
            inputs.push(Input {
                source: "-".into(),
                text: String::from_utf8(bytes).expect("checked"),
            });
            continue;
        }
        let meta =
            std::fs::metadata(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let (files, explicit) = if meta.is_dir() {
            (walk(path)?, false)
        } else {
            (vec![path.clone()], true)
        };
        for file in files {
            // A file over the limit is not read: its size is enough to refuse it.
            let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            let (bytes, why) = if size > max {
                let why = format!(
                    "{size} bytes, over the controller's retrieval.max_document_bytes ({max})"
                );
                (Vec::new(), Some(why))
            } else {
                let bytes =
                    std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                let why = unreadable(&bytes, max);
                (bytes, why)
            };
            match why {
                Some(why) if explicit => bail!("{}: {why}", file.display()),
                Some(why) => notes.push(format!("skipped {}: {why}", file.display())),
                None => inputs.push(Input {
                    source: source_of(&file),
                    text: String::from_utf8(bytes).expect("checked"),
                }),
            }
        }
    }
    Ok((inputs, notes))
}

fn progress(n: usize) -> ProgressBar {
    let bar = ProgressBar::new(n as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} documents, {elapsed} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// `docs add`.
pub async fn add(
    paths: &[PathBuf],
    texts: &[String],
    collection: Option<&str>,
    client: &ClientArgs,
    out: Output,
) -> Result<()> {
    let collection = collection.unwrap_or_default();
    let mut c = connect(client).await?;
    let max = store_info(&mut c, client).await?;
    let (inputs, notes) = gather(paths, texts, max)?;
    for n in &notes {
        eprintln!("note: {n}");
    }
    if inputs.is_empty() {
        bail!("no text files to add ({} skipped)", notes.len());
    }
    let bar = progress(inputs.len());
    let mut added = Vec::new();
    let mut failed = Vec::new();
    let single = inputs.len() == 1;
    for input in inputs {
        let label = if input.source.is_empty() {
            "(text)".to_string()
        } else {
            input.source.clone()
        };
        bar.set_message(label.clone());
        match add_one(&mut c, client, collection, input.source, input.text).await {
            Ok(d) => added.push(d),
            // A document the controller refuses: name it and go on with the others.
            Err(s) if s.code() == Code::InvalidArgument && !single => {
                bar.suspend(|| eprintln!("error: {label}: {}", s.message()));
                failed.push(json!({"source": label, "error": s.message()}));
            }
            Err(s) => {
                bar.finish_and_clear();
                bail!("adding {label} failed ({:?}): {}", s.code(), s.message());
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let count = |status: &str| added.iter().filter(|d| d.status == status).count();
    let chunks: u32 = added.iter().map(|d| d.chunks).sum();
    match out {
        Output::Json => output::print_json(&json!({
            "documents": added.iter().map(document_json).collect::<Vec<_>>(),
            "skipped": notes,
            "failed": failed,
        }))?,
        Output::Table => {
            print!("{}", documents_table(&added, true));
            println!(
                "added {} document(s), {} unchanged, {} replaced ({chunks} chunks) to collection {}; {} skipped, {} failed",
                count("added"),
                count("unchanged"),
                count("replaced"),
                if collection.is_empty() {
                    "default"
                } else {
                    collection
                },
                notes.len(),
                failed.len()
            );
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} document(s) could not be added (see above)",
            failed.len()
        );
    }
    Ok(())
}
