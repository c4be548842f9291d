//! Who may call the client APIs, and for what: the configured tokens (`[api] tokens`,
//! `tokens_file`, the generated one; full access) and the scoped, expiring tokens of the
//! store `switchyard token create --api` writes (`<data_dir>/api-tokens.json`, hashed). The
//! store is re-read when its file changes, so a created or revoked token takes effect
//! without a restart. Comparisons are constant-time; tokens are never logged.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use switchyard_pki::files::{read_optional, write_private};

use crate::config::ct_eq;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Chat, completions, embeddings, pipeline, document search and listing, models.
    Infer,
    /// Everything: also documents add/delete and model load/unload.
    Admin,
}

impl Scope {
    /// `infer` / `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Infer => "infer",
            Scope::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "infer" => Ok(Scope::Infer),
            "admin" => Ok(Scope::Admin),
            other => Err(format!("unknown scope '{other}' (infer or admin)")),
        }
    }
}

/// Why a presented token was refused (what the client is told: nothing about other tokens).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No token was sent.
    #[error("missing API token: send 'Authorization: Bearer <token>'")]
    Missing,
    /// Not a token of this controller (malformed, unknown, revoked, wrong secret).
    #[error("invalid API token")]
    Invalid,
    /// A known token past its expiry.
    #[error("API token {0} has expired")]
    Expired(String),
    /// A valid token whose scope does not cover the call.
    #[error("API token {id} has scope '{has}', this call needs '{needs}'")]
    Scope {
        /// The token's id (`config` for configured tokens).
        id: String,
        /// Its scope.
        has: &'static str,
        /// The scope the call needs.
        needs: &'static str,
    },
}

/// One stored token: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTokenRecord {
    /// Its id (12 hex digits), the part before the dot.
    pub id: String,
    /// sha256 of the whole token, hex.
    pub sha256: String,
    /// What it may do.
    pub scope: Scope,
    /// Creation time, Unix seconds.
    pub created_unix: u64,
    /// Expiry, Unix seconds; `None` never expires.
    pub expires_unix: Option<u64>,
}

/// The store file of scoped tokens.
#[derive(Debug, Clone)]
pub struct ApiTokenStore {
    path: PathBuf,
}

/// Store errors (I/O, a corrupt file).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(String);

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl ApiTokenStore {
    /// The store of the controller data directory `data_dir`.
    pub fn in_data_dir(data_dir: &Path) -> ApiTokenStore {
        Self::at(&data_dir.join("api-tokens.json"))
    }

    /// The store file `path`.
    pub fn at(path: &Path) -> ApiTokenStore {
        ApiTokenStore {
            path: path.to_path_buf(),
        }
    }

    /// Its file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every token, oldest first (none when the file does not exist).
    pub fn list(&self) -> Result<Vec<ApiTokenRecord>, StoreError> {
        match read_optional(&self.path).map_err(|e| StoreError(e.to_string()))? {
            None => Ok(Vec::new()),
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| StoreError(format!("{} is corrupt: {e}", self.path.display()))),
        }
    }

    /// Replaces the file (atomically, mode 0600: the key-material writer of the PKI).
    fn save(&self, records: &[ApiTokenRecord]) -> Result<(), StoreError> {
        let text = serde_json::to_string_pretty(records).expect("records serialise");
        write_private(&self.path, text.as_bytes()).map_err(|e| StoreError(e.to_string()))
    }

    /// A new token of `scope`, valid for `ttl_secs` (`None`: forever); the returned text is
    /// the only place the token exists.
    pub fn create(
        &self,
        scope: Scope,
        ttl_secs: Option<u64>,
    ) -> Result<(ApiTokenRecord, String), StoreError> {
        let mut records = self.list()?;
        let id = loop {
            let id = format!("{:012x}", rand::random::<u64>() >> 16);
            if !records.iter().any(|r| r.id == id) {
                break id;
            }
        };
        let token = format!("sy-{id}.{:032x}", rand::random::<u128>());
        let now = now_unix();
        let record = ApiTokenRecord {
            id,
            sha256: sha256_hex(&token),
            scope,
            created_unix: now,
            expires_unix: ttl_secs.map(|t| now.saturating_add(t)),
        };
        records.push(record.clone());
        self.save(&records)?;
        Ok((record, token))
    }

    /// Removes token `id`; false when there was none.
    pub fn revoke(&self, id: &str) -> Result<bool, StoreError> {
        let mut records = self.list()?;
        let before = records.len();
        records.retain(|r| r.id != id);
        if records.len() == before {
            return Ok(false);
        }
        self.save(&records)?;
        Ok(true)
    }
}

/// (mtime, length) of a file, `None` when it is absent.
type FileStamp = Option<(SystemTime, u64)>;

/// The credentials a controller checks, with the store's records as last read.
#[derive(Debug)]
pub struct Credentials {
    configured: Vec<String>,
    store: Option<ApiTokenStore>,
    /// The file as last read, and its records.
    cache: Mutex<(FileStamp, Vec<ApiTokenRecord>)>,
}

impl Credentials {
    /// Configured (full-access) tokens and, optionally, the scoped store.
    pub fn new(configured: Vec<String>, store: Option<ApiTokenStore>) -> Credentials {
        Credentials {
            configured,
            store,
            cache: Mutex::new((None, Vec::new())),
        }
    }

    /// The store's records, re-read when its file changed.
    fn records(&self) -> Vec<ApiTokenRecord> {
        let Some(store) = &self.store else {
            return Vec::new();
        };
        let mtime = std::fs::metadata(store.path())
            .and_then(|m| Ok((m.modified()?, m.len())))
            .ok();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.0 != mtime {
            match store.list() {
                Ok(records) => *cache = (mtime, records),
                Err(e) => {
                    tracing::warn!(error = %e, "API token store unreadable: keeping the tokens read before")
                }
            }
        }
        cache.1.clone()
    }

    /// True when any credential exists: then every call needs one.
    pub fn required(&self) -> bool {
        !self.configured.is_empty() || !self.records().is_empty()
    }

    /// The scope of `presented`, or why it is refused. With no credential at all every call
    /// is allowed ([`Scope::Admin`]).
    pub fn scope_of(&self, presented: Option<&str>) -> Result<Scope, Refusal> {
        let records = self.records();
        if self.configured.is_empty() && records.is_empty() {
            return Ok(Scope::Admin);
        }
        let presented = presented.ok_or(Refusal::Missing)?;
        let mut configured = false;
        for t in &self.configured {
            configured |= ct_eq(t.as_bytes(), presented.as_bytes());
        }
        if configured {
            return Ok(Scope::Admin);
        }
        let id = presented
            .strip_prefix("sy-")
            .and_then(|rest| rest.split_once('.'))
            .map(|(id, _)| id)
            .ok_or(Refusal::Invalid)?;
        let record = records
            .iter()
            .find(|r| r.id == id)
            .ok_or(Refusal::Invalid)?;
        if !ct_eq(record.sha256.as_bytes(), sha256_hex(presented).as_bytes()) {
            return Err(Refusal::Invalid);
        }
        if record.expires_unix.is_some_and(|e| now_unix() >= e) {
            return Err(Refusal::Expired(record.id.clone()));
        }
        Ok(record.scope)
    }

    /// [`Self::scope_of`], then whether that scope covers `needs`.
    pub fn authorize(&self, presented: Option<&str>, needs: Scope) -> Result<Scope, Refusal> {
        let has = self.scope_of(presented)?;
        if has < needs {
            let id = presented
                .and_then(|p| p.strip_prefix("sy-"))
                .and_then(|r| r.split_once('.'))
                .map_or("config", |(id, _)| id);
            return Err(Refusal::Scope {
                id: id.to_string(),
                has: has.as_str(),
                needs: needs.as_str(),
            });
        }
        Ok(has)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_tokens_are_checked_by_hash_scope_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let store = ApiTokenStore::in_data_dir(dir.path());
        let creds = Credentials::new(vec!["configured-secret".into()], Some(store.clone()));
        assert_eq!(
            creds.authorize(Some("configured-secret"), Scope::Admin),
            Ok(Scope::Admin)
        );
        assert_eq!(creds.scope_of(None), Err(Refusal::Missing));
        let (rec, infer) = store.create(Scope::Infer, None).unwrap();
        assert!(
            !std::fs::read_to_string(store.path())
                .unwrap()
                .contains(&infer),
            "hashed"
        );
        assert_eq!(
            creds.authorize(Some(&infer), Scope::Infer),
            Ok(Scope::Infer)
        );
        let e = creds.authorize(Some(&infer), Scope::Admin).unwrap_err();
        assert!(matches!(e, Refusal::Scope { .. }), "{e}");
        assert!(
            e.to_string().contains(&rec.id) && e.to_string().contains("needs 'admin'"),
            "{e}"
        );
        // A wrong secret for a known id, garbage, another id: invalid, and nothing more said.
        let wrong = format!("sy-{}.{}", rec.id, "0".repeat(32));
        for bad in [wrong.as_str(), "garbage", "sy-nothere.x", ""] {
            assert_eq!(creds.scope_of(Some(bad)), Err(Refusal::Invalid), "{bad}");
        }
        // Expired.
        let (old, expired) = store.create(Scope::Admin, Some(0)).unwrap();
        assert_eq!(
            creds.scope_of(Some(&expired)),
            Err(Refusal::Expired(old.id))
        );
        // Revoked: the store is re-read when its file changes.
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(store.revoke(&rec.id).unwrap());
        assert_eq!(creds.scope_of(Some(&infer)), Err(Refusal::Invalid));
        assert!(!store.revoke(&rec.id).unwrap());
    }

    #[test]
    fn with_no_credentials_everything_is_open_and_scopes_parse() {
        let open = Credentials::new(Vec::new(), None);
        assert!(!open.required());
        assert_eq!(open.authorize(None, Scope::Admin), Ok(Scope::Admin));
        assert_eq!("infer".parse::<Scope>(), Ok(Scope::Infer));
        assert!(
            "root"
                .parse::<Scope>()
                .unwrap_err()
                .contains("infer or admin")
        );
    }
}
