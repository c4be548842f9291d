//! Static shapes for devices whose plugin compiles nothing else (Intel NPUs).
//!
//! An encoder graph (`input_ids`, `attention_mask`, `token_type_ids`: `[batch, sequence]`) is
//! compiled once per [`Bucket`] of a small plan derived from its registry entry (batch 1 and
//! `max_batch` × a short sequence and `max_input_tokens`). A call runs on the smallest bucket
//! that holds it: its inputs are padded with zeros (a zero attention mask hides the padding
//! from the model), and every output is cut back to the call's own batch and sequence. The
//! results are the ones the dynamic graph gives (tested on the CPU, whose plugin compiles the
//! same static graphs). Decoders (a KV cache growing by one token per step) have no such plan
//! and are refused.

use switchyard_backend_core::session::{Session, Tensor, TensorData};
use switchyard_backend_core::{BackendError, ModelSpec, Precision, StageKind};

use crate::session::OpenVinoSession;

/// One static shape a graph is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bucket {
    /// Rows.
    pub batch: usize,
    /// Tokens per row.
    pub seq: usize,
}

/// Shortest sequence bucket: most inputs (a sentence, a prompt to route) are short.
const SHORT_SEQ: usize = 32;

/// The buckets `spec` is compiled for on a static-shape device, smallest first; `None` for
/// a model that cannot be made static (a generator).
pub fn plan(spec: &ModelSpec) -> Option<Vec<Bucket>> {
    if spec.stage == StageKind::Generate {
        return None;
    }
    let max_seq = spec.max_input_tokens.max(1) as usize;
    let max_batch = spec.max_batch.max(1) as usize;
    let mut out = Vec::new();
    for batch in [1, max_batch] {
        for seq in [SHORT_SEQ.min(max_seq), max_seq] {
            let b = Bucket { batch, seq };
            if !out.contains(&b) {
                out.push(b);
            }
        }
    }
    out.sort_by_key(|b| (b.batch * b.seq, b.batch));
    Some(out)
}

/// The smallest bucket of `buckets` (sorted smallest first) that holds `batch` × `seq`.
pub fn pick(buckets: &[Bucket], batch: usize, seq: usize) -> Option<Bucket> {
    buckets
        .iter()
        .copied()
        .find(|b| b.batch >= batch && b.seq >= seq)
}

/// `t` (`[batch, seq]`) zero-padded to `[b.batch, b.seq]`.
pub fn pad(t: &Tensor, b: Bucket) -> Result<Tensor, BackendError> {
    let [rows, cols] = t.shape[..] else {
        return Err(BackendError::InvalidInput(format!(
            "a static-shape input must be [batch, sequence], got {:?}",
            t.shape
        )));
    };
    fn grow<T: Copy + Default>(v: &[T], rows: usize, cols: usize, b: Bucket) -> Vec<T> {
        let mut out = vec![T::default(); b.batch * b.seq];
        for r in 0..rows {
            out[r * b.seq..r * b.seq + cols].copy_from_slice(&v[r * cols..(r + 1) * cols]);
        }
        out
    }
    let data = match &t.data {
        TensorData::I64(v) => TensorData::I64(grow(v, rows, cols, b)),
        TensorData::I32(v) => TensorData::I32(grow(v, rows, cols, b)),
        TensorData::F32(v) => TensorData::F32(grow(v, rows, cols, b)),
        TensorData::U8(v) => TensorData::U8(grow(v, rows, cols, b)),
        TensorData::I8(v) => TensorData::I8(grow(v, rows, cols, b)),
    };
    Ok(Tensor {
        shape: vec![b.batch, b.seq],
        data,
    })
}

/// An output of the bucket `b` cut back to the call's `batch` rows (and `seq` tokens when
/// its second dimension is the bucket's sequence): `[B, S, d…]` → `[batch, seq, d…]`,
/// `[B, d…]` → `[batch, d…]`.
pub fn cut(t: Tensor, b: Bucket, batch: usize, seq: usize) -> Result<Tensor, BackendError> {
    let (shape, data) = t.into_f32("output")?;
    if shape.first() != Some(&b.batch) {
        return Err(BackendError::Inference(format!(
            "output of shape {shape:?} does not start with the bucket's batch {}",
            b.batch
        )));
    }
    let with_seq = shape.len() >= 3 && shape[1] == b.seq;
    let inner: usize = shape[if with_seq { 2 } else { 1 }..].iter().product();
    let (seq_in, seq_out) = if with_seq { (b.seq, seq) } else { (1, 1) };
    let mut out = Vec::with_capacity(batch * seq_out * inner);
    for r in 0..batch {
        let row = r * seq_in * inner;
        out.extend_from_slice(&data[row..row + seq_out * inner]);
    }
    let mut new_shape = shape;
    new_shape[0] = batch;
    if with_seq {
        new_shape[1] = seq;
    }
    Ok(Tensor::f32(new_shape, out))
}

/// One compiled model per bucket, run as one [`Session`].
pub struct BucketedSession {
    sessions: Vec<(Bucket, OpenVinoSession)>,
    inputs: Vec<String>,
    outputs: Vec<String>,
    precision: Precision,
}

impl BucketedSession {
    /// The sessions, one per bucket (sorted smallest first), all with the same ports.
    pub fn new(sessions: Vec<(Bucket, OpenVinoSession)>) -> Result<Self, BackendError> {
        let first = sessions
            .first()
            .map(|(_, s)| s)
            .ok_or_else(|| BackendError::Inference("no static shape compiled".into()))?;
        Ok(BucketedSession {
            inputs: first.input_names(),
            outputs: first.output_names(),
            precision: first.precision(),
            sessions,
        })
    }

    /// The buckets compiled.
    pub fn buckets(&self) -> Vec<Bucket> {
        self.sessions.iter().map(|(b, _)| *b).collect()
    }

    /// Each bucket's compiled input shapes, read back from OpenVINO.
    pub fn compiled_input_shapes(
        &self,
    ) -> Result<Vec<(Bucket, crate::session::InputShapes)>, String> {
        self.sessions
            .iter()
            .map(|(b, s)| Ok((*b, s.compiled_input_shapes()?)))
            .collect()
    }
}

impl Session for BucketedSession {
    fn input_names(&self) -> Vec<String> {
        self.inputs.clone()
    }

    fn output_names(&self) -> Vec<String> {
        self.outputs.clone()
    }

    fn precision(&self) -> Precision {
        self.precision
    }

    fn run(
        &mut self,
        inputs: Vec<(String, Tensor)>,
        outputs: &[String],
    ) -> Result<Vec<Tensor>, BackendError> {
        let (batch, seq) = match inputs.first().map(|(_, t)| &t.shape[..]) {
            Some(&[b, s]) => (b, s),
            other => {
                return Err(BackendError::InvalidInput(format!(
                    "a static-shape session takes [batch, sequence] inputs, got {other:?}"
                )));
            }
        };
        let buckets = self.buckets();
        let b = pick(&buckets, batch, seq).ok_or_else(|| {
            BackendError::InvalidInput(format!(
                "{batch} × {seq} tokens exceed the largest static shape compiled ({:?})",
                buckets.last()
            ))
        })?;
        let padded = inputs
            .iter()
            .map(|(n, t)| pad(t, b).map(|t| (n.clone(), t)))
            .collect::<Result<Vec<_>, _>>()?;
        let session = &mut self
            .sessions
            .iter_mut()
            .find(|(x, _)| *x == b)
            .expect("picked among them")
            .1;
        session
            .run(padded, outputs)?
            .into_iter()
            .map(|t| cut(t, b, batch, seq))
            .collect()
    }

    fn run_keep(
        &mut self,
        inputs: Vec<(String, Tensor)>,
        outputs: &[String],
        keep: &[(String, String)],
    ) -> Result<Vec<Tensor>, BackendError> {
        if !keep.is_empty() {
            return Err(BackendError::InvalidInput(
                "a static-shape session keeps no state between calls".into(),
            ));
        }
        self.run(inputs, outputs)
    }

    fn clear_kept(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_backend_core::OverflowPolicy;

    fn spec(stage: StageKind, max_batch: u32, max_tokens: u32) -> ModelSpec {
        ModelSpec {
            name: "m".into(),
            stage,
            onnx: "m.onnx".into(),
            tokenizer: "t.json".into(),
            sha256: None,
            memory_bytes: 1,
            max_input_tokens: max_tokens,
            overflow: OverflowPolicy::Truncate,
            labels: vec![],
            embedding_dim: None,
            tier: None,
            context_tokens: None,
            chat_template: None,
            system_prompt: None,
            stop_tokens: vec![],
            max_batch,
            streams: None,
            precision: Precision::F16,
            also_at: Vec::new(),
            backends: vec![],
            engine: None,
            info: Default::default(),
        }
    }

    #[test]
    fn the_plan_covers_every_call_the_model_accepts_and_refuses_generators() {
        let b = |batch, seq| Bucket { batch, seq };
        let p = plan(&spec(StageKind::Embed, 32, 128)).unwrap();
        assert_eq!(p, vec![b(1, 32), b(1, 128), b(32, 32), b(32, 128)]);
        assert_eq!(pick(&p, 1, 7), Some(b(1, 32)));
        assert_eq!(pick(&p, 3, 7), Some(b(32, 32)));
        assert_eq!(pick(&p, 2, 100), Some(b(32, 128)));
        assert_eq!(pick(&p, 32, 128), Some(b(32, 128)), "the largest call fits");
        assert_eq!(pick(&p, 33, 1), None);
        assert_eq!(plan(&spec(StageKind::Embed, 1, 8)).unwrap(), vec![b(1, 8)]);
        assert!(plan(&spec(StageKind::Generate, 1, 1536)).is_none());
    }

    #[test]
    fn padding_and_cutting_round_trip_a_call() {
        let b = Bucket { batch: 4, seq: 5 };
        let ids = Tensor::i64(vec![2, 3], vec![1, 2, 3, 4, 5, 6]);
        let p = pad(&ids, b).unwrap();
        assert_eq!(p.shape, vec![4, 5]);
        assert_eq!(
            p.data,
            TensorData::I64(vec![
                1, 2, 3, 0, 0, 4, 5, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
            ])
        );
        // [B, S, 2] hidden states: row r token s = (r, s).
        let hidden: Vec<f32> = (0..4)
            .flat_map(|r| (0..5).flat_map(move |s| [r as f32, s as f32]))
            .collect();
        let out = cut(Tensor::f32(vec![4, 5, 2], hidden), b, 2, 3).unwrap();
        assert_eq!(out.shape, vec![2, 3, 2]);
        assert_eq!(
            out.data,
            TensorData::F32(vec![0., 0., 0., 1., 0., 2., 1., 0., 1., 1., 1., 2.])
        );
        // [B, labels] probabilities: rows only.
        let probs = Tensor::f32(vec![4, 3], (0..12).map(|x| x as f32).collect());
        let out = cut(probs, b, 2, 3).unwrap();
        assert_eq!(out.shape, vec![2, 3]);
        assert_eq!(out.data, TensorData::F32(vec![0., 1., 2., 3., 4., 5.]));
    }
}
