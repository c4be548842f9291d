//! Nodes removed from the cluster (`revoked.json` in the PKI directory): each entry is a
//! node name and when it was removed; every certificate issued to that name before then is
//! refused on every control-path call. A node that joins again later with a valid token gets
//! a certificate issued after the removal, which is accepted.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use switchyard_pki::files::{read_optional, write_private};
use switchyard_pki::token::now_unix;
use switchyard_pki::{PeerIdentity, PkiError};

/// One removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    /// The node name.
    pub name: String,
    /// When it was removed, Unix seconds.
    pub removed_unix: u64,
}

/// The removal list (read at every check, so `switchyard nodes remove` takes effect on a
/// running controller).
#[derive(Debug, Clone)]
pub struct Revoked {
    path: PathBuf,
}

impl Revoked {
    /// The list in `dir`.
    pub fn new(dir: &Path) -> Revoked {
        Revoked {
            path: dir.join("revoked.json"),
        }
    }

    /// Every removal.
    pub fn list(&self) -> Result<Vec<Removal>, PkiError> {
        match read_optional(&self.path)? {
            None => Ok(Vec::new()),
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| PkiError::Cert(format!("{} is corrupt: {e}", self.path.display()))),
        }
    }

    /// True when `id`'s certificate was issued before its node was removed. An unreadable
    /// list revokes everything (fail closed).
    pub fn revokes(&self, id: &PeerIdentity) -> bool {
        self.list().map_or(true, |l| {
            l.iter()
                .any(|r| r.name == id.name && id.issued_unix <= r.removed_unix)
        })
    }

    /// Revokes every certificate issued to `name` until now.
    pub fn add(&self, name: &str) -> Result<(), PkiError> {
        let mut list = self.list()?;
        list.retain(|r| r.name != name);
        list.push(Removal {
            name: name.to_string(),
            removed_unix: now_unix(),
        });
        let text = serde_json::to_string_pretty(&list).expect("removals serialise");
        write_private(&self.path, text.as_bytes())
    }
}
