//! Secure as shipped: a client API that listens beyond loopback needs a credential. With no
//! `[api] tokens` configured, the first such start makes one, keeps it in
//! `<data_dir>/api-token` (mode 0600) and prints it once with how to use it; later starts
//! read it back and say where it is. A loopback-only API stays open, as Ollama's default.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tracing::info;

use crate::config::Config;

/// The file of the generated token.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("api-token")
}

/// Whether a client API on `addr` needs a token (anything but loopback).
pub fn required(addr: SocketAddr) -> bool {
    !addr.ip().is_loopback()
}

/// Adds the generated token to `config.api.tokens` when a client API (HTTP, or gRPC
/// `Inference` on the control port) listens beyond loopback and no token is configured;
/// makes it at the first such start.
pub fn ensure(config: &mut Config) -> Result<()> {
    if let Some(file) = config.api.tokens_file.clone() {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading api.tokens_file {}", file.display()))?;
        let before = config.api.tokens.len();
        config.api.tokens.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
        anyhow::ensure!(
            config.api.tokens.len() > before,
            "api.tokens_file {} holds no token (one per line)",
            file.display()
        );
    }
    let store =
        switchyard_api::credentials::ApiTokenStore::in_data_dir(&config.controller.data_dir);
    config.api.token_store = Some(store.path().to_path_buf());
    let c = &config.controller;
    let Some(listen) = [c.http_listen, c.listen].into_iter().find(|a| required(*a)) else {
        return Ok(());
    };
    // Tokens configured, or made with `token create --api`: nothing to generate.
    if !config.api.tokens.is_empty() || !store.list()?.is_empty() {
        return Ok(());
    }
    let file = path(&config.controller.data_dir);
    let token = match std::fs::read_to_string(&file) {
        Ok(t) if !t.trim().is_empty() => {
            info!(path = %file.display(), "client API on {listen} requires the token kept in this file (no [api] tokens configured)");
            t.trim().to_string()
        }
        _ => {
            let token = create(&file)?;
            eprintln!("{}", banner(&token, &file, listen));
            token
        }
    };
    config.api.tokens.push(token);
    Ok(())
}

/// A new random token written to `file` with mode 0600.
fn create(file: &Path) -> Result<String> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let token = format!(
        "sy-{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    );
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("writing the API token to {}", file.display()))?;
    writeln!(f, "{token}").with_context(|| format!("writing {}", file.display()))?;
    Ok(token)
}

/// What the first start prints (once): the token and how clients send it.
fn banner(token: &str, file: &Path, listen: SocketAddr) -> String {
    format!(
        "\n  The client API listens on {listen}, beyond loopback: it requires a token.\n  \
         Generated one (shown once; kept in {} with mode 0600):\n\n    {token}\n\n  \
         HTTP:    Authorization: Bearer {token}\n  \
         OpenAI:  OPENAI_API_KEY={token}\n  \
         Ollama:  ollama.Client(host=..., headers={{\"Authorization\": \"Bearer {token}\"}})\n  \
         CLI:     SWITCHYARD_API_TOKEN={token}\n  \
         Rotate:  set [api] tokens in the configuration (or delete the file and restart).\n",
        file.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_api_beyond_loopback_needs_a_token() {
        assert!(!required("127.0.0.1:8080".parse().unwrap()));
        assert!(!required("[::1]:8080".parse().unwrap()));
        assert!(required("0.0.0.0:8080".parse().unwrap()));
        assert!(required("192.0.2.7:8080".parse().unwrap()));
    }

    #[test]
    fn the_generated_token_is_kept_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.controller.http_listen = "0.0.0.0:0".parse().unwrap();
        config.controller.data_dir = dir.path().join("data");
        ensure(&mut config).unwrap();
        let file = path(&config.controller.data_dir);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let first = config.api.tokens.clone();
        assert_eq!(first.len(), 1);
        assert!(
            first[0].starts_with("sy-") && first[0].len() == 67,
            "{first:?}"
        );
        let mut again = Config::default();
        again.controller.http_listen = config.controller.http_listen;
        again.controller.data_dir = config.controller.data_dir.clone();
        ensure(&mut again).unwrap();
        assert_eq!(again.api.tokens, first, "the same token on the next start");
        // Configured tokens win: nothing generated.
        let mut own = Config::default();
        own.controller.http_listen = "0.0.0.0:0".parse().unwrap();
        own.controller.data_dir = dir.path().join("other");
        own.api.tokens = vec!["mine".into()];
        ensure(&mut own).unwrap();
        assert_eq!(own.api.tokens, ["mine"]);
        assert!(!path(&own.controller.data_dir).exists());
        // A tokens file (a Kubernetes Secret) adds its lines; an empty one is an error.
        let secret = dir.path().join("tokens");
        std::fs::write(&secret, "# rotated 2026-12\nsecret-a\n\nsecret-b\n").unwrap();
        let mut from_file = Config::default();
        from_file.controller.http_listen = "0.0.0.0:0".parse().unwrap();
        from_file.controller.data_dir = dir.path().join("third");
        from_file.api.tokens_file = Some(secret.clone());
        ensure(&mut from_file).unwrap();
        assert_eq!(from_file.api.tokens, ["secret-a", "secret-b"]);
        std::fs::write(&secret, "\n").unwrap();
        let err = ensure(&mut from_file).unwrap_err().to_string();
        assert!(err.contains("holds no token"), "{err}");
    }
}
