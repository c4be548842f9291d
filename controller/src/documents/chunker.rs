//! Cuts a document into chunks the embedding model takes whole: sizes are counted by the
//! model's own tokenizer (special tokens included), so nothing is silently truncated.
//! Boundaries prefer paragraph breaks, then line breaks, then sentence ends, then spaces;
//! code keeps whole lines (a single line longer than a chunk is the only thing cut inside a
//! line). Consecutive chunks overlap by up to `overlap_tokens`, starting on a line (code) or
//! a word (prose).

use tokenizers::{PostProcessor, Tokenizer};

/// How a text is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// Prose, notes, markdown: paragraphs, lines, sentences.
    Prose,
    /// Source code and configuration: whole lines.
    Code,
}

/// Extensions (and file names) read as code.
const CODE: &[&str] = &[
    "rs",
    "py",
    "pyi",
    "js",
    "mjs",
    "cjs",
    "ts",
    "tsx",
    "jsx",
    "go",
    "c",
    "h",
    "cc",
    "cpp",
    "cxx",
    "hpp",
    "hh",
    "java",
    "kt",
    "kts",
    "swift",
    "rb",
    "php",
    "sh",
    "bash",
    "zsh",
    "fish",
    "pl",
    "lua",
    "sql",
    "toml",
    "yaml",
    "yml",
    "json",
    "ini",
    "cfg",
    "conf",
    "xml",
    "html",
    "css",
    "scss",
    "proto",
    "cmake",
    "nix",
    "tf",
    "hs",
    "ml",
    "ex",
    "exs",
    "erl",
    "clj",
    "scala",
    "r",
    "jl",
    "dart",
    "vue",
    "svelte",
    "ps1",
    "bat",
    "mk",
    "gradle",
    "cs",
    "fs",
    "zig",
    "vim",
    "el",
    "makefile",
    "dockerfile",
    "justfile",
];

impl TextKind {
    /// The kind of a document from its source (file name): code by extension, else prose.
    pub fn of_source(source: &str) -> TextKind {
        let name = source
            .rsplit('/')
            .next()
            .unwrap_or(source)
            .to_ascii_lowercase();
        let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or(&name);
        if CODE.contains(&ext) {
            TextKind::Code
        } else {
            TextKind::Prose
        }
    }
}

/// One chunk: its text, where it is in the document, its token count.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// The text (a slice of the document).
    pub text: String,
    /// Byte offset of the slice in the document.
    pub start: usize,
    /// End of the slice (exclusive).
    pub end: usize,
    /// Tokens the model sees, special tokens included; never above the chunk size.
    pub tokens: u32,
}

/// Why a text cannot be chunked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChunkError {
    /// Nothing to embed (empty, or only characters the tokenizer drops).
    #[error("the document has no text to embed")]
    Empty,
    /// The tokenizer failed.
    #[error("cannot tokenise the document: {0}")]
    Tokenizer(String),
}

/// Break quality of the gap before a token: higher is a better place to cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Break {
    None,
    Word,
    Sentence,
    Line,
    Paragraph,
}

/// A chunker for one embedding model.
#[derive(Debug, Clone)]
pub struct Chunker {
    tokenizer: Tokenizer,
    chunk_tokens: usize,
    overlap_tokens: usize,
    specials: usize,
}

impl Chunker {
    /// Chunks of at most `chunk_tokens` tokens (special tokens included) overlapping by up
    /// to `overlap_tokens`. The tokenizer must have truncation and padding off
    /// ([`switchyard_backend_core::text::load_tokenizer`] does that).
    pub fn new(
        tokenizer: Tokenizer,
        chunk_tokens: usize,
        overlap_tokens: usize,
    ) -> Result<Chunker, String> {
        let specials = tokenizer
            .get_post_processor()
            .map(|p| p.added_tokens(false))
            .unwrap_or(0);
        if chunk_tokens < specials + 8 {
            return Err(format!(
                "retrieval.chunk_tokens {chunk_tokens} is too small: the tokenizer adds {specials} special tokens and a chunk needs at least 8 more"
            ));
        }
        if overlap_tokens * 2 > chunk_tokens - specials {
            return Err(format!(
                "retrieval.overlap_tokens {overlap_tokens} must be at most half a chunk ({})",
                (chunk_tokens - specials) / 2
            ));
        }
        Ok(Chunker {
            tokenizer,
            chunk_tokens,
            overlap_tokens,
            specials,
        })
    }

    /// Tokens the model sees for `text`, special tokens included.
    pub fn count(&self, text: &str) -> Result<usize, ChunkError> {
        self.tokenizer
            .encode(text, true)
            .map(|e| e.len())
            .map_err(|e| ChunkError::Tokenizer(e.to_string()))
    }

    /// Cuts `text`; also returns the text's token count (no special tokens).
    pub fn chunks(&self, text: &str, kind: TextKind) -> Result<(Vec<Chunk>, u64), ChunkError> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| ChunkError::Tokenizer(e.to_string()))?;
        // Tokens with a real span (byte offsets into `text`), in order.
        let mut spans: Vec<(usize, usize)> = Vec::with_capacity(enc.len());
        for &(s, e) in enc.get_offsets() {
            let prev_end = spans.last().map_or(0, |p: &(usize, usize)| p.1);
            if e > s && s >= prev_end && e <= text.len() {
                spans.push((s, e));
            }
        }
        if spans.is_empty() {
            return Err(ChunkError::Empty);
        }
        let breaks = breaks(text, &spans);
        let budget = self.chunk_tokens - self.specials;
        let n = spans.len();
        let mut out = Vec::new();
        let mut s = 0;
        while s < n {
            let mut limit = (s + budget).min(n);
            loop {
                let cut = if limit == n {
                    n
                } else {
                    choose_cut(&breaks, s, limit, kind)
                };
                let (start, end) = byte_range(text, &spans, s, cut, kind);
                let piece = &text[start..end];
                let tokens = self.count(piece)?;
                if tokens <= self.chunk_tokens || cut <= s + 1 {
                    out.push(Chunk {
                        text: piece.to_string(),
                        start,
                        end,
                        tokens: tokens as u32,
                    });
                    s = if cut >= n {
                        n
                    } else {
                        self.next_start(&breaks, s, cut, kind)
                    };
                    break;
                }
                // Re-tokenised, the slice came out longer (a word cut differently): shrink.
                limit = (cut - 1)
                    .min(limit.saturating_sub(tokens - self.chunk_tokens))
                    .max(s + 1);
            }
        }
        Ok((out, n as u64))
    }

    /// Where the chunk after `[s, cut)` starts: up to `overlap_tokens` back, on a word
    /// (prose) or line (code) boundary; `cut` when no such boundary is in reach.
    fn next_start(&self, breaks: &[Break], s: usize, cut: usize, kind: TextKind) -> usize {
        if self.overlap_tokens == 0 {
            return cut;
        }
        let need = match kind {
            TextKind::Code => Break::Line,
            TextKind::Prose => Break::Word,
        };
        let from = cut.saturating_sub(self.overlap_tokens).max(s + 1);
        (from..cut).find(|&i| breaks[i] >= need).unwrap_or(cut)
    }
}

/// `breaks[i]`: the quality of cutting just before token `i` (`breaks[0]` is unused).
fn breaks(text: &str, spans: &[(usize, usize)]) -> Vec<Break> {
    let mut out = vec![Break::None; spans.len()];
    for i in 1..spans.len() {
        let gap = &text[spans[i - 1].1..spans[i].0];
        let prev = &text[spans[i - 1].0..spans[i - 1].1];
        out[i] = if gap.contains("\n\n") || gap.contains("\n\r\n") {
            Break::Paragraph
        } else if gap.contains('\n') {
            Break::Line
        } else if !gap.is_empty() && prev.ends_with(['.', '!', '?', '。']) {
            Break::Sentence
        } else if !gap.is_empty() {
            Break::Word
        } else {
            Break::None
        };
    }
    out
}

/// The cut (end token, exclusive) of a chunk starting at `s` that may reach `limit`.
fn choose_cut(breaks: &[Break], s: usize, limit: usize, kind: TextKind) -> usize {
    let half = s + (limit - s) / 2;
    let best_in = |lo: usize, min: Break| -> Option<usize> {
        let mut best: Option<(Break, usize)> = None;
        for (i, &b) in breaks
            .iter()
            .enumerate()
            .take(limit + 1)
            .skip(lo.max(s + 1))
        {
            if b >= min && best.is_none_or(|(q, _)| b >= q) {
                best = Some((b, i));
            }
        }
        best.map(|(_, i)| i)
    };
    let found = match kind {
        // Whole lines: the best line break in the second half, else the last one anywhere.
        TextKind::Code => best_in(half, Break::Line)
            .or_else(|| (s + 1..=limit).rev().find(|&i| breaks[i] >= Break::Line)),
        TextKind::Prose => best_in(half, Break::Word),
    };
    // A line (or a word) longer than a chunk: the best break anywhere, else a hard cut.
    found
        .or_else(|| best_in(s + 1, Break::Word))
        .unwrap_or(limit)
}

/// Bytes of tokens `[s, cut)`; code chunks start at the beginning of their line (keeping
/// indentation).
fn byte_range(
    text: &str,
    spans: &[(usize, usize)],
    s: usize,
    cut: usize,
    kind: TextKind,
) -> (usize, usize) {
    let mut start = spans[s].0;
    let end = spans[cut - 1].1;
    if kind == TextKind::Code {
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        if text[line_start..start].chars().all(char::is_whitespace) {
            start = line_start;
        }
    }
    (start, end)
}

#[cfg(test)]
mod tests;
