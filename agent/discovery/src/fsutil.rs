//! Reading sysfs/procfs/devfs files under a configurable root, so a captured fixture tree
//! and the live host go through exactly the same code.

use std::path::{Path, PathBuf};

/// A filesystem root: `/` on the host, a fixture directory in tests.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    base: PathBuf,
}

impl Root {
    /// A root at `base`.
    pub(crate) fn new(base: impl Into<PathBuf>) -> Self {
        Self { base: base.into() }
    }

    /// Resolves an absolute host path (`/sys/class/drm`) under this root.
    pub(crate) fn path(&self, host_path: impl AsRef<Path>) -> PathBuf {
        let p = host_path.as_ref();
        let rel = p.strip_prefix("/").unwrap_or(p);
        self.base.join(rel)
    }

    /// Reads a host path under the root, trimmed; `None` when missing or unreadable.
    pub(crate) fn read(&self, host_path: impl AsRef<Path>) -> Option<String> {
        read_trim(&self.path(host_path))
    }

    /// Sorted entry names of a host directory under the root (empty when missing).
    pub(crate) fn list(&self, host_path: impl AsRef<Path>) -> Vec<String> {
        list_dir(&self.path(host_path))
    }
}

/// Reads a file and trims whitespace; `None` when missing, unreadable or not UTF-8.
pub(crate) fn read_trim(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Reads a file holding one unsigned integer (decimal or `0x` hex).
pub(crate) fn read_u64(path: &Path) -> Option<u64> {
    parse_u64(&read_trim(path)?)
}

/// Parses a decimal or `0x`-prefixed hex unsigned integer.
pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Sorted entry names of a directory (empty when missing).
pub(crate) fn list_dir(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(path) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort_by(|a, b| natural_cmp(a, b));
    names
}

/// Orders `card2` before `card10`: digit runs compare by value.
pub(crate) fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(s: &str) -> (&str, Option<u64>) {
        let idx = s
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_digit())
            .last()
            .map(|(i, _)| i);
        match idx {
            Some(i) => (&s[..i], s[i..].parse().ok()),
            None => (s, None),
        }
    }
    let (pa, na) = split(a);
    let (pb, nb) = split(b);
    pa.cmp(pb).then(na.cmp(&nb)).then(a.cmp(b))
}

/// `KEY=VALUE` lines of a sysfs `uevent` file.
pub(crate) fn uevent_value(path: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k == key).then(|| v.trim().to_string())
    })
}

/// Basename of a symlink's target (sysfs `driver` links); `None` when not a link.
pub(crate) fn link_basename(path: &Path) -> Option<String> {
    let target = std::fs::read_link(path).ok()?;
    target
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hex_and_decimal() {
        assert_eq!(parse_u64("0x8086"), Some(0x8086));
        assert_eq!(parse_u64(" 42\n"), Some(42));
        assert_eq!(parse_u64("zz"), None);
    }

    #[test]
    fn natural_order_of_numbered_names() {
        let mut v = vec!["card10", "card2", "renderD128", "card1"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["card1", "card2", "card10", "renderD128"]);
    }

    #[test]
    fn root_resolves_host_paths() {
        let r = Root::new("/tmp/fx");
        assert_eq!(
            r.path("/sys/class/drm"),
            PathBuf::from("/tmp/fx/sys/class/drm")
        );
        assert_eq!(r.path("proc/stat"), PathBuf::from("/tmp/fx/proc/stat"));
    }
}
