//! Decoder-only language models on any [`Session`]: chat template, KV-cache decode loop,
//! sampling, stop tokens and strings, incremental detokenisation for streaming.
//!
//! I/O names follow the optimum/transformers.js convention: inputs `input_ids`,
//! `attention_mask`, `position_ids`, `past_key_values.{i}.key/.value`; outputs `logits`,
//! `present.{i}.key/.value`.

use tokenizers::Tokenizer;

use crate::sampling::{Rng, sample};
use crate::session::{Session, Tensor, require_io};
use crate::text::{IncrementalDecoder, load_tokenizer, stop_holdback};
use crate::{
    BackendError, FinishReason, GenerateParams, GenerateSummary, LoadedModel, ModelSpec,
    OverflowPolicy, StageKind, TokenEvent,
};

/// A generator with its KV-cache layout.
pub struct DecoderModel {
    spec: ModelSpec,
    tokenizer: Tokenizer,
    session: Box<dyn Session>,
    layers: usize,
    kv_heads: usize,
    head_dim: usize,
    stop_ids: Vec<u32>,
    /// Just `logits`: the KV cache stays inside the session (see `keep`).
    output_names: Vec<String>,
    past_names: Vec<String>,
    /// `(present.{i}.k, past_key_values.{i}.k)` pairs fed back by [`Session::run_keep`].
    keep: Vec<(String, String)>,
}

fn info_usize(spec: &ModelSpec, key: &str) -> Option<usize> {
    spec.info.get(key).and_then(|v| v.parse().ok())
}

impl DecoderModel {
    /// Wraps a session; checks its I/O and reads the KV-cache layout.
    pub fn new(spec: ModelSpec, session: Box<dyn Session>) -> Result<Self, BackendError> {
        require_io(
            &spec.name,
            session.as_ref(),
            &["input_ids", "attention_mask", "position_ids"],
            &["logits"],
        )?;
        let inputs = session.input_names();
        let layers = (0..)
            .take_while(|i| {
                inputs
                    .iter()
                    .any(|n| n == &format!("past_key_values.{i}.key"))
            })
            .count();
        if layers == 0 {
            return Err(BackendError::InvalidModel {
                model: spec.name.clone(),
                reason: "graph has no past_key_values.{i}.key inputs (not a KV-cache decoder)"
                    .into(),
            });
        }
        let dims = session
            .input_dims("past_key_values.0.key")
            .unwrap_or_default();
        let dim = |i: usize, key: &str| -> Result<usize, BackendError> {
            match dims.get(i) {
                Some(&d) if d > 0 => Ok(d as usize),
                _ => info_usize(&spec, key).ok_or_else(|| BackendError::InvalidModel {
                    model: spec.name.clone(),
                    reason: format!(
                        "cannot tell the KV cache's {key}: set info.{key} in the registry"
                    ),
                }),
            }
        };
        let kv_heads = dim(1, "kv_heads")?;
        let head_dim = dim(3, "head_dim")?;
        let tokenizer = load_tokenizer(&spec.name, &spec.tokenizer)?;
        let stop_ids = spec
            .stop_tokens
            .iter()
            .filter_map(|t| tokenizer.token_to_id(t))
            .collect();
        let output_names = vec!["logits".to_string()];
        let mut past_names = Vec::new();
        let mut keep = Vec::new();
        for i in 0..layers {
            for kind in ["key", "value"] {
                past_names.push(format!("past_key_values.{i}.{kind}"));
                keep.push((
                    format!("present.{i}.{kind}"),
                    format!("past_key_values.{i}.{kind}"),
                ));
            }
        }
        let outs = session.output_names();
        if let Some(missing) = keep.iter().map(|(o, _)| o).find(|n| !outs.contains(n)) {
            return Err(BackendError::InvalidModel {
                model: spec.name.clone(),
                reason: format!("graph has no output '{missing}'"),
            });
        }
        Ok(DecoderModel {
            spec,
            tokenizer,
            session,
            layers,
            kv_heads,
            head_dim,
            stop_ids,
            output_names,
            past_names,
            keep,
        })
    }

    /// The prompt text: the chat template applied to `params.messages`, or `params.prompt`;
    /// then the partial reply to continue (`params.continuation`), left open.
    pub fn render_prompt(&self, params: &GenerateParams) -> String {
        if params.messages.is_empty() {
            return format!("{}{}", params.prompt, params.continuation);
        }
        let mut out = String::new();
        let has_system = params.messages.iter().any(|(r, _)| r == "system");
        if !has_system && let Some(sys) = &self.spec.system_prompt {
            out.push_str(&format!("<|im_start|>system\n{sys}<|im_end|>\n"));
        }
        // A last assistant message is the start of the reply (prefill), left open, as
        // llama-server and Ollama's templates treat it: the answer continues it.
        let (history, prefill) = match params.messages.split_last() {
            Some(((role, content), rest)) if role == "assistant" => (rest, content.as_str()),
            _ => (params.messages.as_slice(), ""),
        };
        for (role, content) in history {
            out.push_str(&format!("<|im_start|>{role}\n{content}<|im_end|>\n"));
        }
        out.push_str("<|im_start|>assistant\n");
        out.push_str(prefill);
        out.push_str(&params.continuation);
        out
    }

    /// Layers in the KV cache.
    pub fn layers(&self) -> usize {
        self.layers
    }
}

impl LoadedModel for DecoderModel {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn precision(&self) -> crate::Precision {
        self.session.precision()
    }

    fn generate(
        &mut self,
        params: &GenerateParams,
        on_token: &mut dyn FnMut(TokenEvent) -> bool,
    ) -> Result<GenerateSummary, BackendError> {
        if params.messages.is_empty() && params.prompt.is_empty() {
            return Err(BackendError::InvalidInput("empty prompt".into()));
        }
        if params.max_tokens == 0 {
            return Err(BackendError::InvalidInput(
                "max_tokens must be at least 1".into(),
            ));
        }
        let text = self.render_prompt(params);
        let enc = self
            .tokenizer
            .encode(text.as_str(), false)
            .map_err(|e| BackendError::InvalidInput(format!("prompt cannot be tokenised: {e}")))?;
        let mut prompt: Vec<i64> = enc.get_ids().iter().map(|&x| x as i64).collect();
        let limit = self.spec.max_input_tokens as usize;
        if prompt.len() > limit {
            match self.spec.overflow {
                OverflowPolicy::Refuse => {
                    return Err(BackendError::InvalidInput(format!(
                        "prompt has {} tokens; model {} accepts at most {limit}",
                        prompt.len(),
                        self.spec.name
                    )));
                }
                OverflowPolicy::Truncate => prompt = prompt.split_off(prompt.len() - limit),
            }
        }
        let prompt_tokens = prompt.len() as u32;
        let vocab_size = self.tokenizer.get_vocab_size(true);
        if let Some((id, _)) = params
            .penalties
            .logit_bias
            .iter()
            .find(|(id, _)| *id as usize >= vocab_size)
        {
            return Err(BackendError::InvalidInput(format!(
                "logit_bias names token id {id}, outside model {}'s vocabulary of {vocab_size} tokens",
                self.spec.name
            )));
        }
        let prompt_ids: Vec<u32> = if params.penalties.is_off() {
            Vec::new()
        } else {
            prompt.iter().map(|&t| t as u32).collect()
        };
        let context = self.spec.context_tokens.unwrap_or(2048) as usize;
        let budget = (params.max_tokens as usize).min(context.saturating_sub(prompt.len()));
        if budget == 0 {
            return Err(BackendError::InvalidInput(format!(
                "prompt has {} tokens and leaves no room in model {}'s context of {context}",
                prompt.len(),
                self.spec.name
            )));
        }
        let mut rng = Rng::new(params.seed.unwrap_or(0x5eed));
        // The first step starts from empty pasts; later steps use the kept `present.*`.
        self.session.clear_kept();
        let mut past: Vec<Tensor> = self
            .past_names
            .iter()
            .map(|_| Tensor::f32(vec![1, self.kv_heads, 0, self.head_dim], Vec::new()))
            .collect();
        let mut past_len = 0usize;
        let mut step_ids = prompt;
        let mut generated: Vec<u32> = Vec::new();
        let mut emitted = String::new();
        // Bytes of `emitted` already passed to `on_token`.
        let mut sent = 0usize;
        let mut detok = IncrementalDecoder::default();
        let max_stop = params.stop.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut finish = FinishReason::Length;
        while generated.len() < budget {
            let n = step_ids.len();
            let mut inputs = vec![
                (
                    "input_ids".to_string(),
                    Tensor::i64(vec![1, n], step_ids.clone()),
                ),
                (
                    "attention_mask".to_string(),
                    Tensor::i64(vec![1, past_len + n], vec![1; past_len + n]),
                ),
                (
                    "position_ids".to_string(),
                    Tensor::i64(
                        vec![1, n],
                        (past_len as i64..(past_len + n) as i64).collect(),
                    ),
                ),
            ];
            for (name, t) in self.past_names.iter().zip(past.drain(..)) {
                inputs.push((name.clone(), t));
            }
            let outs = self
                .session
                .run_keep(inputs, &self.output_names, &self.keep);
            let mut outs = match outs {
                Ok(o) => o.into_iter(),
                Err(e) => {
                    self.session.clear_kept();
                    return Err(e);
                }
            };
            let (shape, mut logits) = outs
                .next()
                .ok_or_else(|| BackendError::Inference("no logits".into()))?
                .into_f32("logits")?;
            past_len += n;
            let vocab = *shape.last().unwrap_or(&0);
            if vocab == 0 || logits.len() < vocab {
                return Err(BackendError::Inference(format!(
                    "logits have shape {shape:?}"
                )));
            }
            let from = logits.len() - vocab;
            let last = &mut logits[from..];
            params.penalties.apply(last, &prompt_ids, &generated);
            let token = sample(
                last,
                params.temperature,
                params.top_p,
                params.top_k,
                &mut rng,
            ) as u32;
            if self.stop_ids.contains(&token) {
                finish = FinishReason::Stop;
                break;
            }
            generated.push(token);
            let Some(piece) = detok.next(&self.tokenizer, &generated)? else {
                step_ids = vec![token as i64];
                continue;
            };
            let before = emitted.len();
            emitted.push_str(&piece);
            // A stop string can only newly match in the tail that this piece touches.
            let mut from = before.saturating_sub(max_stop);
            while !emitted.is_char_boundary(from) {
                from -= 1;
            }
            let stop_at = params
                .stop
                .iter()
                .filter(|s| !s.is_empty())
                .filter_map(|s| emitted[from..].find(s.as_str()).map(|p| p + from))
                .min();
            if let Some(pos) = stop_at {
                // Text that might have begun a stop string was held back, so nothing of
                // the stop string itself has been sent.
                if pos > sent {
                    on_token(TokenEvent {
                        token_id: token,
                        text: emitted[sent..pos].to_string(),
                    });
                }
                sent = emitted.len();
                finish = FinishReason::Stop;
                break;
            }
            let safe = emitted.len() - stop_holdback(&emitted, &params.stop);
            if safe > sent {
                let text = emitted[sent..safe].to_string();
                sent = safe;
                if !on_token(TokenEvent {
                    token_id: token,
                    text,
                }) {
                    finish = FinishReason::Cancelled;
                    break;
                }
            }
            step_ids = vec![token as i64];
        }
        // What was held back as a possible stop string's start, when none followed.
        if finish != FinishReason::Cancelled && sent < emitted.len() {
            on_token(TokenEvent {
                token_id: generated.last().copied().unwrap_or(0),
                text: emitted[sent..].to_string(),
            });
        }
        // Free the KV cache between requests.
        self.session.clear_kept();
        Ok(GenerateSummary {
            prompt_tokens,
            completion_tokens: generated.len() as u32,
            finish_reason: finish,
        })
    }
}

/// Builds the right model logic for a registry entry on top of a session.
pub fn model_for(
    spec: &ModelSpec,
    session: Box<dyn Session>,
) -> Result<Box<dyn LoadedModel>, BackendError> {
    Ok(match spec.stage {
        StageKind::Generate => Box::new(DecoderModel::new(spec.clone(), session)?),
        StageKind::Embed | StageKind::Classify => {
            Box::new(crate::encoder::EncoderModel::new(spec.clone(), session)?)
        }
    })
}
