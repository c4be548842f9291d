//! Dynamic batching for classify/embed: concurrent requests for the same model on the same
//! device are merged into one runtime call of up to `max_batch` inputs.
//!
//! The queue policy is TEI's and Triton's: a request that finds the backend free is
//! dispatched at once, alone if it is alone — an idle device never waits for company. While
//! a batch runs, the requests that arrive are collected, and the moment it finishes they go
//! as the next batch (everything queued, up to `max_batch` inputs; one batch in flight per
//! model × device, so a device that serves one request at a time gets exactly that). The
//! queue is bounded: the batcher holds at most one batch ahead, the channel `queue_capacity`
//! more, and a full queue refuses new work ([`BackendError::QueueFull`]) instead of growing
//! without bound.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use switchyard_backend_core::worker::ModelWorker;
use switchyard_backend_core::{BackendError, ClassScores, StageKind};
use tokio::sync::{mpsc, oneshot};

/// Per-input results of one batch slice, plus timings.
#[derive(Debug, Clone)]
pub struct BatchReply {
    /// This request's slice of the batch results.
    pub output: BatchOutput,
    /// Time waiting for the batch to start plus time in the model worker's queue, ms.
    pub queue_ms: f64,
    /// Runtime time of the whole merged call (all chunks), ms.
    pub compute_ms: f64,
    /// Inputs in the merged runtime call this request rode in.
    pub batch_size: u32,
}

/// The stage-specific part of a reply.
#[derive(Debug, Clone)]
pub enum BatchOutput {
    /// Embed results, one entry per input.
    Embed {
        /// One L2-normalised vector per input.
        vectors: Vec<Vec<f32>>,
        /// Tokens per input after truncation.
        token_counts: Vec<u32>,
    },
    /// Classify results: label probabilities per input.
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
    /// Starts the batching task in front of `worker`; `queue_capacity` requests may wait.
    pub fn spawn(worker: ModelWorker, queue_capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(queue_capacity.max(1));
        let model = worker.spec().name.clone();
        tokio::spawn(run(worker, rx));
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

/// The batch in flight.
type Running = Pin<Box<dyn Future<Output = ()> + Send>>;

async fn run(worker: ModelWorker, mut rx: mpsc::Receiver<Pending>) {
    let max_batch = worker.spec().max_batch.max(1) as usize;
    let stage = worker.spec().stage;
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut queued_inputs = 0usize;
    let mut running: Option<Running> = None;
    let mut open = true;
    loop {
        if running.is_none() {
            // Free: whatever has arrived goes now, without waiting for more.
            while queued_inputs < max_batch
                && let Ok(p) = rx.try_recv()
            {
                queued_inputs += p.inputs.len();
                queue.push_back(p);
            }
            if let Some(group) = next_group(&mut queue, &mut queued_inputs, max_batch) {
                let worker = worker.clone();
                running = Some(Box::pin(async move {
                    execute(&worker, stage, max_batch, group).await
                }));
            } else if !open {
                return;
            }
        }
        tokio::select! {
            // Busy: collect what arrives meanwhile (one batch ahead at most; the channel
            // holds the rest and sheds beyond its capacity).
            next = rx.recv(), if open && queued_inputs < max_batch => match next {
                Some(p) => {
                    queued_inputs += p.inputs.len();
                    queue.push_back(p);
                }
                None => open = false,
            },
            () = async { running.as_mut().expect("guarded").await }, if running.is_some() => {
                running = None;
            }
        }
    }
}

/// The next batch: queued requests in arrival order while they fit in `max_batch` inputs
/// (the first always goes, whatever its size: the model chunks it).
fn next_group(
    queue: &mut VecDeque<Pending>,
    queued_inputs: &mut usize,
    max_batch: usize,
) -> Option<Vec<Pending>> {
    let first = queue.pop_front()?;
    let mut total = first.inputs.len();
    let mut group = vec![first];
    while let Some(p) = queue.front() {
        if total + p.inputs.len() > max_batch {
            break;
        }
        total += p.inputs.len();
        group.push(queue.pop_front().expect("front exists"));
    }
    *queued_inputs = queued_inputs.saturating_sub(total);
    Some(group)
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
mod tests;
