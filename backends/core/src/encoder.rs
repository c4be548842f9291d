//! Encoder models (embed, classify) on any [`Session`]: tokenise → run → pool / read
//! probabilities.

use crate::session::{Session, Tensor, require_io};
use crate::text::{TextEncoder, TokenBatch};
use crate::{BackendError, ClassScores, EmbedOutput, LoadedModel, ModelSpec, StageKind};

/// An embedding or classification model.
pub struct EncoderModel {
    spec: ModelSpec,
    text: TextEncoder,
    session: Box<dyn Session>,
    wants_token_types: bool,
    output: String,
}

impl EncoderModel {
    /// Wraps a session; checks the graph's inputs/outputs against the stage.
    pub fn new(spec: ModelSpec, session: Box<dyn Session>) -> Result<Self, BackendError> {
        let outputs = session.output_names();
        let output = match spec.stage {
            StageKind::Embed => "last_hidden_state",
            // A classifier exporting raw `logits` gets a softmax here.
            StageKind::Classify
                if !outputs.iter().any(|o| o == "probabilities")
                    && outputs.iter().any(|o| o == "logits") =>
            {
                "logits"
            }
            StageKind::Classify => "probabilities",
            StageKind::Generate => {
                return Err(BackendError::InvalidModel {
                    model: spec.name.clone(),
                    reason: "an encoder cannot generate".into(),
                });
            }
        };
        require_io(
            &spec.name,
            session.as_ref(),
            &["input_ids", "attention_mask"],
            &[output],
        )?;
        let wants_token_types = session.input_names().iter().any(|n| n == "token_type_ids");
        Ok(EncoderModel {
            text: TextEncoder::new(&spec)?,
            spec,
            session,
            wants_token_types,
            output: output.into(),
        })
    }

    fn run(&mut self, batch: &TokenBatch) -> Result<(Vec<usize>, Vec<f32>), BackendError> {
        let shape = vec![batch.batch, batch.seq];
        let mut inputs = vec![
            (
                "input_ids".to_string(),
                Tensor::i64(shape.clone(), batch.input_ids.clone()),
            ),
            (
                "attention_mask".to_string(),
                Tensor::i64(shape.clone(), batch.attention_mask.clone()),
            ),
        ];
        if self.wants_token_types {
            inputs.push((
                "token_type_ids".to_string(),
                Tensor::i64(shape, batch.token_type_ids.clone()),
            ));
        }
        let out = self
            .session
            .run(inputs, std::slice::from_ref(&self.output))?;
        out.into_iter()
            .next()
            .ok_or_else(|| BackendError::Inference("no output".into()))?
            .into_f32(&self.output)
    }
}

/// Numerically stable softmax of one row of logits.
pub fn softmax_row(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

/// Mean of the token vectors under the attention mask, L2-normalised.
pub fn mean_pool_l2(hidden: &[f32], batch: &TokenBatch, dim: usize) -> Vec<Vec<f32>> {
    (0..batch.batch)
        .map(|b| {
            let mut v = vec![0f32; dim];
            let mut n = 0f32;
            for s in 0..batch.seq {
                if batch.attention_mask[b * batch.seq + s] == 0 {
                    continue;
                }
                n += 1.0;
                let row = &hidden[(b * batch.seq + s) * dim..(b * batch.seq + s + 1) * dim];
                for (acc, x) in v.iter_mut().zip(row) {
                    *acc += x;
                }
            }
            let n = n.max(1.0);
            v.iter_mut().for_each(|x| *x /= n);
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|x| *x /= norm);
            v
        })
        .collect()
}

impl LoadedModel for EncoderModel {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn precision(&self) -> crate::Precision {
        self.session.precision()
    }

    fn embed(&mut self, inputs: &[String]) -> Result<EmbedOutput, BackendError> {
        let max = (self.spec.max_batch as usize).max(1);
        if inputs.len() > max {
            // Larger than the model's batch limit: run it in chunks.
            let mut out = EmbedOutput {
                vectors: Vec::with_capacity(inputs.len()),
                token_counts: Vec::with_capacity(inputs.len()),
            };
            for chunk in inputs.chunks(max) {
                let part = self.embed(chunk)?;
                out.vectors.extend(part.vectors);
                out.token_counts.extend(part.token_counts);
            }
            return Ok(out);
        }
        if self.spec.stage != StageKind::Embed {
            return Err(BackendError::WrongStage {
                model: self.spec.name.clone(),
                stage: self.spec.stage,
                requested: StageKind::Embed,
            });
        }
        let batch = self.text.encode(inputs)?;
        let (shape, hidden) = self.run(&batch)?;
        if shape.len() != 3 || shape[0] != batch.batch || shape[1] != batch.seq {
            return Err(BackendError::InvalidModel {
                model: self.spec.name.clone(),
                reason: format!(
                    "last_hidden_state has shape {shape:?}, expected [{}, {}, dim]",
                    batch.batch, batch.seq
                ),
            });
        }
        Ok(EmbedOutput {
            vectors: mean_pool_l2(&hidden, &batch, shape[2]),
            token_counts: batch.lengths,
        })
    }

    fn classify(&mut self, inputs: &[String]) -> Result<Vec<ClassScores>, BackendError> {
        let max = (self.spec.max_batch as usize).max(1);
        if inputs.len() > max {
            let mut out = Vec::with_capacity(inputs.len());
            for chunk in inputs.chunks(max) {
                out.extend(self.classify(chunk)?);
            }
            return Ok(out);
        }
        if self.spec.stage != StageKind::Classify {
            return Err(BackendError::WrongStage {
                model: self.spec.name.clone(),
                stage: self.spec.stage,
                requested: StageKind::Classify,
            });
        }
        let batch = self.text.encode(inputs)?;
        let (shape, probs) = self.run(&batch)?;
        let labels = self.spec.labels.len();
        if shape != [batch.batch, labels] {
            return Err(BackendError::InvalidModel {
                model: self.spec.name.clone(),
                reason: format!(
                    "probabilities have shape {shape:?}, expected [{}, {labels}]",
                    batch.batch
                ),
            });
        }
        let softmax = self.output == "logits";
        Ok(probs
            .chunks(labels)
            .map(|row| {
                let row = if softmax {
                    softmax_row(row)
                } else {
                    row.to_vec()
                };
                let top = row
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(i, _)| i)
                    .unwrap_or(0);
                ClassScores {
                    probabilities: row,
                    top,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let p = softmax_row(&[1000.0, 999.0, -5.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[0] > p[1] && p[1] > p[2]);
    }

    #[test]
    fn mean_pool_ignores_padding_and_normalises() {
        // Two rows, seq 2, dim 2; row 1's second token is padding.
        let batch = TokenBatch {
            batch: 2,
            seq: 2,
            input_ids: vec![1, 2, 3, 0],
            attention_mask: vec![1, 1, 1, 0],
            token_type_ids: vec![0; 4],
            lengths: vec![2, 1],
        };
        let hidden = [3.0, 0.0, 0.0, 4.0, 0.0, 2.0, 100.0, 100.0];
        let v = mean_pool_l2(&hidden, &batch, 2);
        assert!((v[0][0] - 0.6).abs() < 1e-6 && (v[0][1] - 0.8).abs() < 1e-6);
        assert_eq!(v[1], vec![0.0, 1.0]);
    }
}
