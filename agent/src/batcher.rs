//! Dynamic batching for classify/embed: concurrent requests for the same model on the same
//! device are merged into one runtime call of up to `max_batch` inputs, waiting at most
//! `max_wait` for company. The queue is bounded; a full queue refuses new work
//! ([`BackendError::QueueFull`]) instead of growing without bound.

use std::time::{Duration, Instant};

use switchyard_backend_core::worker::ModelWorker;
use switchyard_backend_core::{BackendError, ClassScores, StageKind};
use tokio::sync::{mpsc, oneshot};

/// Per-input results of one batch slice, plus timings.
#[derive(Debug, Clone)]
pub struct BatchReply {
    pub output: BatchOutput,
    pub queue_ms: f64,
    pub compute_ms: f64,
    /// Inputs in the merged runtime call this request rode in.
    pub batch_size: u32,
}

/// The stage-specific part of a reply.
#[derive(Debug, Clone)]
pub enum BatchOutput {
    Embed {
        vectors: Vec<Vec<f32>>,
        token_counts: Vec<u32>,
    },
    Classify(Vec<ClassScores>),
}

struct Pending {
    inputs: Vec<String>,
    enqueued: Instant,
    reply: oneshot::Sender<Result<BatchReply, BackendError>>,
}

/// Handle to the batching task of one model × device.
#[derive(Debug, Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Pending>,
    model: String,
}

impl Batcher {
    /// Starts the batching task in front of `worker`.
    pub fn spawn(worker: ModelWorker, max_wait: Duration, queue_capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(queue_capacity.max(1));
        let model = worker.spec().name.clone();
        tokio::spawn(run(worker, rx, max_wait));
        Batcher { tx, model }
    }

    /// Submits `inputs` and waits for their results.
    pub async fn submit(&self, inputs: Vec<String>) -> Result<BatchReply, BackendError> {
        if inputs.is_empty() {
            return Err(BackendError::InvalidInput("no inputs given".into()));
        }
        let (reply, rx) = oneshot::channel();
        let pending = Pending {
            inputs,
            enqueued: Instant::now(),
            reply,
        };
        self.tx.try_send(pending).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => BackendError::QueueFull(self.model.clone()),
            mpsc::error::TrySendError::Closed(_) => BackendError::NotLoaded(self.model.clone()),
        })?;
        rx.await
            .map_err(|_| BackendError::NotLoaded(self.model.clone()))?
    }
}

async fn run(worker: ModelWorker, mut rx: mpsc::Receiver<Pending>, max_wait: Duration) {
    let max_batch = worker.spec().max_batch.max(1) as usize;
    let stage = worker.spec().stage;
    let mut carry: Option<Pending> = None;
    loop {
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let deadline = first.enqueued + max_wait;
        let mut total = first.inputs.len();
        let mut group = vec![first];
        while total < max_batch {
            let now = Instant::now();
            let next = if now >= deadline {
                rx.try_recv().ok()
            } else {
                tokio::time::timeout(deadline - now, rx.recv())
                    .await
                    .ok()
                    .flatten()
            };
            match next {
                Some(p) if total + p.inputs.len() <= max_batch => {
                    total += p.inputs.len();
                    group.push(p);
                }
                Some(p) => {
                    carry = Some(p);
                    break;
                }
                None => break,
            }
        }
        execute(&worker, stage, max_batch, group).await;
    }
}

/// Runs one merged group (in chunks of `max_batch`) and hands every request its slice.
async fn execute(worker: &ModelWorker, stage: StageKind, max_batch: usize, group: Vec<Pending>) {
    let started = Instant::now();
    let all: Vec<String> = group
        .iter()
        .flat_map(|p| p.inputs.iter().cloned())
        .collect();
    let batch_size = all.len() as u32;
    let mut vectors = Vec::new();
    let mut counts = Vec::new();
    let mut classes = Vec::new();
    let mut compute_ms = 0.0;
    let mut worker_queue_ms = 0.0;
    let mut failure = None;
    for chunk in all.chunks(max_batch) {
        let chunk = chunk.to_vec();
        let result = match stage {
            StageKind::Embed => worker.embed(chunk).await.map(|t| {
                vectors.extend(t.value.vectors);
                counts.extend(t.value.token_counts);
                (t.queue_ms, t.compute_ms)
            }),
            StageKind::Classify => worker.classify(chunk).await.map(|t| {
                classes.extend(t.value);
                (t.queue_ms, t.compute_ms)
            }),
            StageKind::Generate => Err(BackendError::WrongStage {
                model: worker.spec().name.clone(),
                stage,
                requested: StageKind::Embed,
            }),
        };
        match result {
            Ok((q, c)) => {
                worker_queue_ms += q;
                compute_ms += c;
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let mut offset = 0;
    for p in group {
        let n = p.inputs.len();
        let reply = match &failure {
            Some(e) => Err(clone_error(e)),
            None => {
                let output = match stage {
                    StageKind::Embed => BatchOutput::Embed {
                        vectors: vectors[offset..offset + n].to_vec(),
                        token_counts: counts
                            .get(offset..offset + n)
                            .map(<[u32]>::to_vec)
                            .unwrap_or_default(),
                    },
                    _ => BatchOutput::Classify(classes[offset..offset + n].to_vec()),
                };
                Ok(BatchReply {
                    output,
                    queue_ms: started.duration_since(p.enqueued).as_secs_f64() * 1e3
                        + worker_queue_ms,
                    compute_ms,
                    batch_size,
                })
            }
        };
        offset += n;
        let _ = p.reply.send(reply);
    }
}

/// Backend errors are not `Clone` (they may wrap sources); every request of a failed batch
/// gets the same message and class.
fn clone_error(e: &BackendError) -> BackendError {
    match e {
        BackendError::InvalidInput(m) => BackendError::InvalidInput(m.clone()),
        BackendError::QueueFull(m) => BackendError::QueueFull(m.clone()),
        BackendError::OutOfMemory(m) => BackendError::OutOfMemory(m.clone()),
        BackendError::NotLoaded(m) => BackendError::NotLoaded(m.clone()),
        BackendError::ModelFileMissing(m) => BackendError::ModelFileMissing(m.clone()),
        BackendError::RuntimeUnavailable(m) => BackendError::RuntimeUnavailable(m.clone()),
        BackendError::InvalidModel { model, reason } => BackendError::InvalidModel {
            model: model.clone(),
            reason: reason.clone(),
        },
        BackendError::DeviceUnsupported {
            backend,
            device,
            reason,
        } => BackendError::DeviceUnsupported {
            backend: backend.clone(),
            device: device.clone(),
            reason: reason.clone(),
        },
        BackendError::WrongStage {
            model,
            stage,
            requested,
        } => BackendError::WrongStage {
            model: model.clone(),
            stage: *stage,
            requested: *requested,
        },
        BackendError::Inference(m) => BackendError::Inference(m.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_backend_core::{EmbedOutput, LoadedModel, ModelSpec, OverflowPolicy};

    /// Embeds a text as `[len]`, and records each runtime call's batch size.
    struct Recorder(ModelSpec, std::sync::Arc<std::sync::Mutex<Vec<usize>>>);

    impl LoadedModel for Recorder {
        fn spec(&self) -> &ModelSpec {
            &self.0
        }
        fn embed(&mut self, inputs: &[String]) -> Result<EmbedOutput, BackendError> {
            self.1.lock().unwrap().push(inputs.len());
            std::thread::sleep(Duration::from_millis(20));
            Ok(EmbedOutput {
                vectors: inputs.iter().map(|s| vec![s.len() as f32]).collect(),
                token_counts: inputs.iter().map(|s| s.len() as u32).collect(),
            })
        }
    }

    fn spec(max_batch: u32) -> ModelSpec {
        ModelSpec {
            name: "rec".into(),
            stage: StageKind::Embed,
            onnx: "x".into(),
            tokenizer: "y".into(),
            sha256: None,
            memory_bytes: 1,
            max_input_tokens: 8,
            overflow: OverflowPolicy::Truncate,
            labels: vec![],
            embedding_dim: Some(1),
            tier: None,
            context_tokens: None,
            chat_template: None,
            system_prompt: None,
            stop_tokens: vec![],
            max_batch,
            info: Default::default(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_are_merged_and_each_gets_its_own_slice() {
        let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let worker = ModelWorker::spawn(Box::new(Recorder(spec(8), calls.clone())), 64);
        let batcher = Batcher::spawn(worker, Duration::from_millis(50), 64);
        let mut handles = Vec::new();
        for i in 0..12 {
            let b = batcher.clone();
            handles.push(tokio::spawn(async move {
                b.submit(vec!["x".repeat(i + 1)]).await
            }));
        }
        for (i, h) in handles.into_iter().enumerate() {
            let reply = h.await.unwrap().unwrap();
            let BatchOutput::Embed { vectors, .. } = reply.output else {
                panic!("embed output")
            };
            assert_eq!(
                vectors,
                vec![vec![(i + 1) as f32]],
                "request {i} got someone else's result"
            );
        }
        let calls = calls.lock().unwrap().clone();
        assert_eq!(calls.iter().sum::<usize>(), 12);
        assert!(
            calls.iter().all(|&n| n <= 8),
            "max_batch respected: {calls:?}"
        );
        assert!(calls.len() < 12, "requests were merged: {calls:?}");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_instead_of_growing() {
        let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let worker = ModelWorker::spawn(Box::new(Recorder(spec(1), calls)), 1);
        let batcher = Batcher::spawn(worker, Duration::from_millis(0), 1);
        let mut results = Vec::new();
        let futs: Vec<_> = (0..20).map(|_| batcher.submit(vec!["a".into()])).collect();
        for r in futures_join(futs).await {
            results.push(r);
        }
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(BackendError::QueueFull(_)))),
            "some requests shed"
        );
        assert!(results.iter().any(|r| r.is_ok()), "some requests served");
        assert!(batcher.submit(vec![]).await.is_err(), "empty input refused");
    }

    async fn futures_join<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
        let mut out = Vec::new();
        let mut pinned: Vec<_> = futs.into_iter().map(Box::pin).collect();
        // Submit all first (try_send happens on first poll), then await in order.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut done: Vec<Option<F::Output>> = pinned
            .iter_mut()
            .map(|f| match f.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
            .collect();
        for (i, f) in pinned.into_iter().enumerate() {
            match done[i].take() {
                Some(v) => out.push(v),
                None => out.push(f.await),
            }
        }
        out
    }
}
