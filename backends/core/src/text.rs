//! Tokenisation with the `tokenizers` crate: per-batch dynamic padding, truncation or
//! refusal at the registry's `max_input_tokens`.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::{BackendError, ModelSpec, OverflowPolicy};

/// A padded batch of token ids, row-major `[batch, seq]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    /// Number of rows (inputs).
    pub batch: usize,
    /// Padded row length in tokens: the longest row of the batch.
    pub seq: usize,
    /// Token ids, `batch * seq`, padded with 0.
    pub input_ids: Vec<i64>,
    /// 1 for real tokens, 0 for padding, `batch * seq`.
    pub attention_mask: Vec<i64>,
    /// Segment (token type) ids from the tokenizer, `batch * seq`, padded with 0.
    pub token_type_ids: Vec<i64>,
    /// Real (unpadded) tokens per row.
    pub lengths: Vec<u32>,
}

/// Loads a `tokenizer.json`, with padding/truncation switched off (done per batch here).
pub fn load_tokenizer(model: &str, path: &Path) -> Result<Tokenizer, BackendError> {
    if !path.is_file() {
        return Err(BackendError::ModelFileMissing(format!(
            "{} (tokenizer of {model}; run scripts/setup.sh)",
            path.display()
        )));
    }
    let mut tok = Tokenizer::from_file(path).map_err(|e| BackendError::InvalidModel {
        model: model.into(),
        reason: format!("cannot parse tokenizer {}: {e}", path.display()),
    })?;
    tok.with_padding(None);
    tok.with_truncation(None)
        .map_err(|e| BackendError::InvalidModel {
            model: model.into(),
            reason: e.to_string(),
        })?;
    Ok(tok)
}

/// Encodes texts for an encoder model (BERT-style, with special tokens).
#[derive(Debug, Clone)]
pub struct TextEncoder {
    tokenizer: Tokenizer,
    model: String,
    max_tokens: usize,
    overflow: OverflowPolicy,
}

impl TextEncoder {
    /// Loads the tokenizer of `spec`.
    pub fn new(spec: &ModelSpec) -> Result<Self, BackendError> {
        Ok(TextEncoder {
            tokenizer: load_tokenizer(&spec.name, &spec.tokenizer)?,
            model: spec.name.clone(),
            max_tokens: spec.max_input_tokens as usize,
            overflow: spec.overflow,
        })
    }

    /// Tokenises, truncates (keeping the final special token) or refuses, and pads.
    pub fn encode(&self, texts: &[String]) -> Result<TokenBatch, BackendError> {
        if texts.is_empty() {
            return Err(BackendError::InvalidInput("no inputs given".into()));
        }
        let mut rows = Vec::with_capacity(texts.len());
        for (i, t) in texts.iter().enumerate() {
            if t.is_empty() {
                return Err(BackendError::InvalidInput(format!("input {i} is empty")));
            }
            let enc = self.tokenizer.encode(t.as_str(), true).map_err(|e| {
                BackendError::InvalidInput(format!("input {i} cannot be tokenised: {e}"))
            })?;
            let mut ids: Vec<i64> = enc.get_ids().iter().map(|&x| x as i64).collect();
            let mut types: Vec<i64> = enc.get_type_ids().iter().map(|&x| x as i64).collect();
            if ids.len() > self.max_tokens {
                match self.overflow {
                    OverflowPolicy::Refuse => {
                        return Err(BackendError::InvalidInput(format!(
                            "input {i} has {} tokens; model {} accepts at most {}",
                            ids.len(),
                            self.model,
                            self.max_tokens
                        )));
                    }
                    OverflowPolicy::Truncate => {
                        let last = *ids.last().expect("non-empty");
                        ids.truncate(self.max_tokens);
                        types.truncate(self.max_tokens);
                        *ids.last_mut().expect("non-empty") = last;
                    }
                }
            }
            rows.push((ids, types));
        }
        let seq = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let batch = rows.len();
        let mut out = TokenBatch {
            batch,
            seq,
            input_ids: vec![0; batch * seq],
            attention_mask: vec![0; batch * seq],
            token_type_ids: vec![0; batch * seq],
            lengths: Vec::with_capacity(batch),
        };
        for (r, (ids, types)) in rows.iter().enumerate() {
            let base = r * seq;
            out.input_ids[base..base + ids.len()].copy_from_slice(ids);
            out.token_type_ids[base..base + types.len()].copy_from_slice(types);
            out.attention_mask[base..base + ids.len()].fill(1);
            out.lengths.push(ids.len() as u32);
        }
        Ok(out)
    }
}

/// Turns a growing list of generated token ids into text pieces for streaming, decoding only
/// a short window (not the whole answer) per token. A piece is released only once it is
/// complete UTF-8: byte-level BPE splits multi-byte characters across tokens, and a partial
/// sequence decodes to U+FFFD.
#[derive(Debug, Clone, Default)]
pub struct IncrementalDecoder {
    prefix_offset: usize,
    read_offset: usize,
}

impl IncrementalDecoder {
    /// The text that `tokens` (all ids generated so far) adds since the last piece, or
    /// `None` while it is still an incomplete character.
    pub fn next(
        &mut self,
        tokenizer: &Tokenizer,
        tokens: &[u32],
    ) -> Result<Option<String>, BackendError> {
        let decode = |ids: &[u32]| {
            tokenizer
                .decode(ids, true)
                .map_err(|e| BackendError::Inference(format!("cannot detokenise: {e}")))
        };
        let prefix = decode(&tokens[self.prefix_offset..self.read_offset])?;
        let text = decode(&tokens[self.prefix_offset..])?;
        if text.len() > prefix.len() && !text.ends_with('\u{FFFD}') && text.starts_with(&prefix) {
            let piece = text[prefix.len()..].to_string();
            self.prefix_offset = self.read_offset;
            self.read_offset = tokens.len();
            Ok(Some(piece))
        } else {
            Ok(None)
        }
    }
}

/// Bytes at the end of `text` to hold back while streaming: the longest suffix that is a
/// proper prefix of one of `stops`, so that a stop string split across pieces is never
/// partly sent. Always on a character boundary of `text`.
pub fn stop_holdback(text: &str, stops: &[String]) -> usize {
    stops
        .iter()
        .flat_map(|s| {
            s.char_indices()
                .skip(1)
                .map(|(k, _)| k)
                .filter(|&k| text.ends_with(&s[..k]))
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
