//! Join tokens, k3s-style: `SY10::<sha256 of the CA certificate, hex>::<id>.<secret>`.
//! The prefix versions the format, the hash pins the CA (a joining agent trusts only a
//! controller whose CA matches), the secret proves the holder may join. The store
//! (`tokens.json` in the controller's PKI directory) keeps each token's id, the sha256 of
//! its secret (never the secret), its creation and expiry times.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::files::{read_optional, write_private};
use crate::{PkiError, sha256_hex};

/// The format version prefix.
pub const PREFIX: &str = "SY10";

/// A parsed join token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// sha256 of the CA certificate (DER), lower-case hex.
    pub ca_hash: String,
    /// The token's id (listed and revoked by it).
    pub id: String,
    /// The secret (never log it).
    pub secret: String,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken")
            .field("ca_hash", &self.ca_hash)
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

fn hex(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).expect("hex digit"))
        .collect()
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

impl JoinToken {
    /// Parses `SY10::<64 hex>::<6 hex>.<32 hex>`; the error says which part is wrong.
    pub fn parse(text: &str) -> Result<JoinToken, PkiError> {
        let bad = |why: &str| PkiError::Token(format!("malformed join token: {why}"));
        let mut parts = text.trim().split("::");
        let (Some(prefix), Some(ca_hash), Some(cred), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected SY10::<CA sha256>::<id>.<secret>"));
        };
        if prefix != PREFIX {
            return Err(bad(&format!(
                "unknown version '{prefix}' (expected {PREFIX})"
            )));
        }
        if !is_hex(ca_hash, 64) {
            return Err(bad("the CA hash is not 64 lower-case hex digits"));
        }
        let Some((id, secret)) = cred.split_once('.') else {
            return Err(bad("the credential is not <id>.<secret>"));
        };
        if !is_hex(id, 6) || !is_hex(secret, 32) {
            return Err(bad(
                "the id or secret is not of the expected hex length (6 and 32)",
            ));
        }
        Ok(JoinToken {
            ca_hash: ca_hash.to_string(),
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// The token as operators paste it.
    pub fn render(&self) -> String {
        format!("{PREFIX}::{}::{}.{}", self.ca_hash, self.id, self.secret)
    }
}

/// One stored token: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Its id.
    pub id: String,
    /// sha256 of the secret, hex.
    pub secret_sha256: String,
    /// Creation time, Unix seconds.
    pub created_unix: u64,
    /// Expiry, Unix seconds; `None` never expires.
    pub expires_unix: Option<u64>,
    /// Joins it still allows; `None`: any number (records made before tokens were counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses_left: Option<u32>,
    /// Joins it allowed so far.
    #[serde(default)]
    pub used: u32,
}

impl TokenRecord {
    /// True once `now` is past the expiry.
    pub fn expired(&self, now: u64) -> bool {
        self.expires_unix.is_some_and(|e| now >= e)
    }

    /// True once every allowed join happened.
    pub fn used_up(&self) -> bool {
        self.uses_left == Some(0)
    }
}

/// Serialises the read-modify-write of [`TokenStore::redeem`] within the controller.
static REDEEM: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The token store of a controller's PKI directory.
#[derive(Debug, Clone)]
pub struct TokenStore {
    path: PathBuf,
}

/// Now, Unix seconds.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl TokenStore {
    /// The store in `dir` (`tokens.json`; absent = no tokens).
    pub fn new(dir: &Path) -> TokenStore {
        TokenStore {
            path: dir.join("tokens.json"),
        }
    }

    /// Every stored token, oldest first.
    pub fn list(&self) -> Result<Vec<TokenRecord>, PkiError> {
        match read_optional(&self.path)? {
            None => Ok(Vec::new()),
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| PkiError::Token(format!("{} is corrupt: {e}", self.path.display()))),
        }
    }

    fn save(&self, records: &[TokenRecord]) -> Result<(), PkiError> {
        let text = serde_json::to_string_pretty(records).expect("token records serialise");
        write_private(&self.path, text.as_bytes())
    }

    /// Creates a token for the CA with fingerprint `ca_hash`, valid for `ttl` (`None`:
    /// forever) and `uses` joins (at least 1). The returned token is the only place its
    /// secret exists.
    pub fn create(
        &self,
        ca_hash: &str,
        ttl: Option<Duration>,
        uses: u32,
    ) -> Result<JoinToken, PkiError> {
        if uses == 0 {
            return Err(PkiError::Token("a join token allows at least 1 use".into()));
        }
        let mut records = self.list()?;
        let token = JoinToken {
            ca_hash: ca_hash.to_string(),
            id: loop {
                let id = hex(6);
                if !records.iter().any(|r| r.id == id) {
                    break id;
                }
            },
            secret: hex(32),
        };
        let now = now_unix();
        records.push(TokenRecord {
            id: token.id.clone(),
            secret_sha256: sha256_hex(token.secret.as_bytes()),
            created_unix: now,
            expires_unix: ttl.map(|t| now.saturating_add(t.as_secs())),
            uses_left: Some(uses),
            used: 0,
        });
        self.save(&records)?;
        Ok(token)
    }

    /// Removes the token `id`; false when there was none.
    pub fn revoke(&self, id: &str) -> Result<bool, PkiError> {
        let mut records = self.list()?;
        let before = records.len();
        records.retain(|r| r.id != id);
        if records.len() == before {
            return Ok(false);
        }
        self.save(&records)?;
        Ok(true)
    }

    /// Checks `token` against the store and the CA fingerprint `ca_hash`: the error is the
    /// one-line reason a joining agent is told.
    pub fn verify(&self, token: &JoinToken, ca_hash: &str, now: u64) -> Result<(), PkiError> {
        if token.ca_hash != ca_hash {
            return Err(PkiError::Token(
                "join token pins another cluster CA (it was made by a different controller)".into(),
            ));
        }
        let records = self.list()?;
        let record = records.iter().find(|r| r.id == token.id).ok_or_else(|| {
            PkiError::Token(format!("join token {} is unknown or revoked", token.id))
        })?;
        if record.secret_sha256 != sha256_hex(token.secret.as_bytes()) {
            return Err(PkiError::Token(format!(
                "join token {} has a wrong secret",
                token.id
            )));
        }
        if record.expired(now) {
            return Err(PkiError::Token(format!(
                "join token {} has expired",
                token.id
            )));
        }
        if record.used_up() {
            return Err(PkiError::Token(format!(
                "join token {} is used up ({} join(s) allowed; make another with `switchyard token create [--uses N]`)",
                token.id, record.used
            )));
        }
        Ok(())
    }

    /// [`Self::verify`], then counts the join: a single-use token is used up after it.
    pub fn redeem(&self, token: &JoinToken, ca_hash: &str, now: u64) -> Result<(), PkiError> {
        let _one = REDEEM.lock().unwrap_or_else(|e| e.into_inner());
        self.verify(token, ca_hash, now)?;
        let mut records = self.list()?;
        if let Some(r) = records.iter_mut().find(|r| r.id == token.id) {
            r.used += 1;
            r.uses_left = r.uses_left.map(|n| n.saturating_sub(1));
        }
        self.save(&records)
    }
}

/// Parses a TTL like `30s`, `15m`, `24h`, `7d`; `0` or `never` means no expiry.
pub fn parse_ttl(text: &str) -> Result<Option<Duration>, String> {
    let t = text.trim();
    if t == "0" || t == "never" {
        return Ok(None);
    }
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid TTL '{text}': expected e.g. 30m, 24h, 7d or never"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "invalid TTL '{text}': the unit must be s, m, h or d"
            ));
        }
    };
    Ok(Some(Duration::from_secs(n.saturating_mul(secs))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let ca = "a".repeat(64);
        let t = store.create(&ca, None, 2).unwrap();
        assert_eq!(JoinToken::parse(&t.render()).unwrap(), t);
        store.verify(&t, &ca, now_unix()).unwrap();
        // The secret is not stored in clear.
        let text = std::fs::read_to_string(dir.path().join("tokens.json")).unwrap();
        assert!(!text.contains(&t.secret), "{text}");
        let wrong = JoinToken {
            secret: "0".repeat(32),
            ..t.clone()
        };
        let e = store.verify(&wrong, &ca, now_unix()).unwrap_err();
        assert!(e.to_string().contains("wrong secret"), "{e}");
        let e = store.verify(&t, &"b".repeat(64), now_unix()).unwrap_err();
        assert!(e.to_string().contains("another cluster CA"), "{e}");
        let short = store.create(&ca, Some(Duration::from_secs(60)), 1).unwrap();
        let later = now_unix() + 61;
        let e = store.verify(&short, &ca, later).unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
        assert!(store.revoke(&t.id).unwrap());
        let e = store.verify(&t, &ca, now_unix()).unwrap_err();
        assert!(e.to_string().contains("unknown or revoked"), "{e}");
        assert!(!store.revoke(&t.id).unwrap());
    }

    #[test]
    fn a_token_allows_as_many_joins_as_it_was_made_for() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let ca = "a".repeat(64);
        let once = store.create(&ca, None, 1).unwrap();
        store.redeem(&once, &ca, now_unix()).unwrap();
        let e = store.redeem(&once, &ca, now_unix()).unwrap_err();
        assert!(e.to_string().contains("used up"), "{e}");
        let twice = store.create(&ca, None, 2).unwrap();
        store.redeem(&twice, &ca, now_unix()).unwrap();
        store.redeem(&twice, &ca, now_unix()).unwrap();
        assert!(store.redeem(&twice, &ca, now_unix()).is_err());
        let listed = store.list().unwrap();
        assert_eq!((listed[1].used, listed[1].uses_left), (2, Some(0)));
        assert!(store.create(&ca, None, 0).is_err());
        // A record from before counting allows any number of joins.
        let mut old = store.list().unwrap();
        old[0].uses_left = None;
        store.save(&old).unwrap();
        store.redeem(&once, &ca, now_unix()).unwrap();
    }

    #[test]
    fn malformed_tokens_say_what_is_wrong() {
        for (text, why) in [
            ("nope", "expected SY10"),
            (
                &format!("K10::{}::abcdef.{}", "a".repeat(64), "b".repeat(32)),
                "unknown version",
            ),
            (
                &format!("SY10::{}::abcdef.{}", "a".repeat(63), "b".repeat(32)),
                "CA hash",
            ),
            (
                &format!("SY10::{}::abcdef{}", "a".repeat(64), "b".repeat(32)),
                "<id>.<secret>",
            ),
            (
                &format!("SY10::{}::abc.{}", "a".repeat(64), "b".repeat(32)),
                "hex length",
            ),
        ] {
            let e = JoinToken::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn ttls_parse() {
        assert_eq!(parse_ttl("24h").unwrap(), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_ttl("90s").unwrap(), Some(Duration::from_secs(90)));
        assert_eq!(parse_ttl("never").unwrap(), None);
        assert!(parse_ttl("3w").unwrap_err().contains("unit"));
        assert!(parse_ttl("h").unwrap_err().contains("invalid TTL"));
    }
}
