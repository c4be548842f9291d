//! `switchyard token create|list|revoke`: the join tokens of the controller whose data
//! directory is on this host. They live in its `pki/tokens.json` (hashed), which the
//! controller reads at every join: no restart needed. With `--api`: the scoped client-API
//! tokens of `api-tokens.json` in the same data directory, re-read when it changes.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use switchyard_api::credentials::{ApiTokenStore, Scope};
use switchyard_controller::security::pki_dir;
use switchyard_pki::token::{now_unix, parse_ttl};
use switchyard_pki::{ClusterCa, TokenStore};

use crate::args::{Output, TokenAction, TokenArgs};
use crate::output;

/// The PKI directory of the controller data directory `data_dir` (or the default one);
/// refused when the controller never started there.
fn pki(data_dir: &Option<PathBuf>) -> Result<(ClusterCa, TokenStore)> {
    let data = data_dir
        .clone()
        .unwrap_or_else(switchyard_controller::config::default_data_dir);
    let dir = pki_dir(&data);
    if !dir.join("ca.pem").is_file() {
        bail!(
            "no cluster CA in {}: start `switchyard controller` (without --insecure) once with this data directory, or pass --data-dir",
            dir.display()
        );
    }
    let (ca, _) = ClusterCa::load_or_create(&dir).with_context(|| dir.display().to_string())?;
    Ok((ca, TokenStore::new(&dir)))
}

fn when(unix: u64) -> String {
    jiff::Timestamp::from_second(unix as i64)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|_| unix.to_string())
}

/// Runs a token subcommand.
pub fn run(args: &TokenArgs) -> Result<()> {
    let api = match &args.action {
        TokenAction::Create { api, .. }
        | TokenAction::List { api, .. }
        | TokenAction::Revoke { api, .. } => *api,
    };
    if api {
        return run_api(args);
    }
    let (ca, store) = pki(&args.data_dir)?;
    match &args.action {
        TokenAction::Create { ttl, uses, .. } => {
            let ttl = parse_ttl(ttl.as_deref().unwrap_or("24h")).map_err(anyhow::Error::msg)?;
            let token = store.create(&ca.fingerprint(), ttl, *uses)?;
            println!("{}", token.render());
            eprintln!(
                "token {} for {uses} join(s), {} (shown once; only its hash is stored)",
                token.id,
                match ttl {
                    Some(t) => format!("expires in {}s", t.as_secs()),
                    None => "never expires".into(),
                }
            );
        }
        TokenAction::List { output: format, .. } => list_join(&store, *format)?,
        TokenAction::Revoke { id, .. } => {
            if !store.revoke(id)? {
                bail!("no token with id {id} (see `switchyard token list`)");
            }
            println!("token {id} revoked");
        }
    }
    Ok(())
}

/// `token list`: the join tokens.
fn list_join(store: &TokenStore, format: Output) -> Result<()> {
    let records = store.list()?;
    let now = now_unix();
    match format {
        Output::Json => output::print_json(&serde_json::json!(
            records
                .iter()
                .map(|r| serde_json::json!({
                    "id": r.id,
                    "created_unix": r.created_unix,
                    "expires_unix": r.expires_unix,
                    "expired": r.expired(now),
                    "used": r.used,
                    "uses_left": r.uses_left,
                }))
                .collect::<Vec<_>>()
        ))?,
        Output::Table => {
            println!(
                "{:<8} {:<22} {:<22} {:<10} STATE",
                "ID", "CREATED", "EXPIRES", "USES"
            );
            for r in &records {
                let uses = match r.uses_left {
                    Some(left) => format!("{}/{}", r.used, r.used + left),
                    None => format!("{}/any", r.used),
                };
                let state = if r.expired(now) {
                    "expired"
                } else if r.used_up() {
                    "used up"
                } else {
                    "valid"
                };
                println!(
                    "{:<8} {:<22} {:<22} {:<10} {state}",
                    r.id,
                    when(r.created_unix),
                    r.expires_unix.map_or_else(|| "never".into(), when),
                    uses
                );
            }
            println!("{} token(s)", records.len());
        }
    }
    Ok(())
}

/// `token … --api`: the client-API tokens of the controller data directory (no CA needed;
/// the controller re-reads the store when it changes).
fn run_api(args: &TokenArgs) -> Result<()> {
    let data = args
        .data_dir
        .clone()
        .unwrap_or_else(switchyard_controller::config::default_data_dir);
    let store = ApiTokenStore::in_data_dir(&data);
    match &args.action {
        TokenAction::Create { scope, ttl, .. } => {
            let scope: Scope = scope
                .as_deref()
                .unwrap_or("infer")
                .parse()
                .map_err(anyhow::Error::msg)?;
            let ttl = parse_ttl(ttl.as_deref().unwrap_or("never")).map_err(anyhow::Error::msg)?;
            let (record, token) = store.create(scope, ttl.map(|t| t.as_secs()))?;
            println!("{token}");
            eprintln!(
                "API token {} with scope {}, {} (shown once; only its hash is stored in {})",
                record.id,
                scope.as_str(),
                ttl.map_or_else(
                    || "never expires".into(),
                    |t| format!("expires in {}s", t.as_secs())
                ),
                store.path().display()
            );
        }
        TokenAction::List { output: format, .. } => {
            let records = store.list()?;
            let now = now_unix();
            match format {
                Output::Json => output::print_json(&serde_json::to_value(&records)?)?,
                Output::Table => {
                    println!(
                        "{:<14} {:<7} {:<22} {:<22} STATE",
                        "ID", "SCOPE", "CREATED", "EXPIRES"
                    );
                    for r in &records {
                        let expired = r.expires_unix.is_some_and(|e| now >= e);
                        println!(
                            "{:<14} {:<7} {:<22} {:<22} {}",
                            r.id,
                            r.scope.as_str(),
                            when(r.created_unix),
                            r.expires_unix.map_or_else(|| "never".into(), when),
                            if expired { "expired" } else { "valid" }
                        );
                    }
                    println!("{} API token(s)", records.len());
                }
            }
        }
        TokenAction::Revoke { id, .. } => {
            if !store.revoke(id)? {
                bail!("no API token with id {id} (see `switchyard token list --api`)");
            }
            println!("API token {id} revoked");
        }
    }
    Ok(())
}
