//! Dynamic batching for classify/embed: concurrent requests for the same model on the same
//! device are merged into one runtime call of up to `max_batch` inputs.
//!
//! The queue policy is TEI's and Triton's: a request that finds the backend free is
//! dispatched at once, alone if it is alone — an idle device never waits for company. While
//! a batch runs, the requests that arrive are collected, and when it finishes they go as the
//! next batch (everything queued, up to `max_batch` inputs; one batch in flight per stream
//! of the model × device — see [`crate::streams`] — so a device that serves one request at a
//! time gets exactly that, and a model run as two CPU streams computes two batches side by
//! side; a lone request on an idle device goes to the model's wide instance, on all the
//! threads, when it has one — see [`lane`]). Under
//! load the batches form a pipeline: with `s` streams, a free stream waits for its share of
//! the clients — `clients / (s + 1)`, see [`group_share`] — so that while `s` groups compute,
//! one more makes its round trip (HTTP, the controller, back into the queue) and is queued
//! when a stream frees up. The wait is short ([`HoldPolicy`]: at most 15 % of the batch's run
//! time, ≤ 15 ms, or until another stream finishes), so a steady load neither splits into a
//! runt batch and the rest nor leaves the device idle while everyone returns. The queue is
//! bounded: the batcher holds at most one batch ahead, the channel `queue_capacity` more,
//! and a full queue refuses new work ([`BackendError::QueueFull`]) instead of growing
//! without bound.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use switchyard_backend_core::worker::{Lane, ModelWorker};
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
        Self::spawn_with(worker, queue_capacity, HoldPolicy::DEFAULT)
    }

    /// [`Batcher::spawn`] with a given hold after each batch.
    pub fn spawn_with(worker: ModelWorker, queue_capacity: usize, policy: HoldPolicy) -> Self {
        let (tx, rx) = mpsc::channel(queue_capacity.max(1));
        let model = worker.spec().name.clone();
        tokio::spawn(run(worker, rx, policy));
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

/// A reply to deliver: the request's channel and its result.
type Answer = (
    oneshot::Sender<Result<BatchReply, BackendError>>,
    Result<BatchReply, BackendError>,
);

/// A batch in flight; it yields its replies, when it started, how many requests it answers
/// and the lane it ran on. The loop delivers the replies after it has noted the batch's end
/// (so no answered client can come back before that).
type Running = Pin<Box<dyn Future<Output = (Vec<Answer>, Instant, usize, Lane)> + Send>>;

/// How long, after a batch finishes, the batcher may hold a smaller-than-full next batch for
/// the clients it has just answered to come back.
///
/// Under a steady load of `c` clients, sending at once whatever is queued when a batch ends
/// splits them: the first client or two back run as a batch of their own while the rest
/// queue behind it, and a runtime call costs far more per input at batch 1 than at 32 (the
/// trace of such a load alternates batches of 1–7 and 25–31). Waiting for *all* of them is
/// no better: on 2 vCPUs the 32 clients of a MiniLM batch came back together 4 ms after it
/// ended, the device idle meanwhile (a tenth of the cycle). So the hold waits for the
/// group's share ([`group_share`]): with one stream, half of the clients go while the other
/// half returns. The hold is bounded by a fraction of the batch's own run time, so it costs
/// at most that fraction of throughput. A lone client on an idle device answered one request
/// and sends one: its next request goes at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HoldPolicy {
    /// The hold as a fraction of the finished batch's run time…
    pub fraction: f64,
    /// …and never longer than this.
    pub cap: Duration,
}

impl HoldPolicy {
    /// 15 % of the batch's run time, at most 15 ms. Measured on 2 cores (MiniLM on OpenVINO,
    /// 32 closed-loop HTTP clients): the 32 clients of an 80 ms batch are back 6–7 ms after
    /// it ends, so a 5 ms cap ran a batch of the first one or two back (a call of one costs
    /// 10–20 ms there) before the other thirty; this hold collects them all.
    pub const DEFAULT: HoldPolicy = HoldPolicy {
        fraction: 0.15,
        cap: Duration::from_millis(15),
    };

    /// No hold: what is queued goes the moment a batch ends.
    pub const NONE: HoldPolicy = HoldPolicy {
        fraction: 0.0,
        cap: Duration::ZERO,
    };

    /// The hold after a batch of `answered` requests that ran `ran`, with `queued` waiting,
    /// for a group of `share` requests (see [`group_share`]).
    fn after(
        &self,
        answered: usize,
        queued: usize,
        share: usize,
        ran: Duration,
        now: Instant,
    ) -> Hold {
        let secs = (ran.as_secs_f64() * self.fraction).min(self.cap.as_secs_f64());
        Hold {
            expected: (queued + answered).min(share.max(1)),
            until: now + Duration::from_secs_f64(secs.max(0.0)),
        }
    }
}

/// Waiting for the clients of the batch that just finished.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Hold {
    /// The requests to wait for: the group's share, never more than were queued when it
    /// finished plus the requests it answered.
    expected: usize,
    until: Instant,
}

impl Hold {
    /// Whether to keep collecting rather than send what is queued now.
    fn holds(&self, queued: usize, queued_inputs: usize, max_batch: usize, now: Instant) -> bool {
        queued < self.expected && queued_inputs < max_batch && now < self.until
    }
}

async fn run(worker: ModelWorker, mut rx: mpsc::Receiver<Pending>, policy: HoldPolicy) {
    let max_batch = worker.spec().max_batch.max(1) as usize;
    let stage = worker.spec().stage;
    // Batches in flight at most: one per stream of the model.
    let slots = worker.streams().max(1);
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut queued_inputs = 0usize;
    let mut running: FuturesUnordered<Running> = FuturesUnordered::new();
    // Requests in the running batches, and the requests in the system when a batch last
    // finished (running, queued, and the ones it answered, whose clients come back).
    let mut in_running = 0usize;
    let mut clients = 0usize;
    let mut hold: Option<Hold> = None;
    let mut open = true;
    // A batch on the wide instance runs alone: it has every inference thread.
    let has_wide = worker.has_wide();
    let mut wide_running = false;
    // Takes what already waits in the channel (one batch ahead at most).
    let drain =
        |rx: &mut mpsc::Receiver<Pending>, queue: &mut VecDeque<Pending>, queued: &mut usize| {
            while *queued < max_batch
                && let Ok(p) = rx.try_recv()
            {
                *queued += p.inputs.len();
                queue.push_back(p);
            }
        };
    loop {
        // A free stream takes whatever has arrived now, unless its group's share of the
        // clients is not queued yet: then it holds (bounded; never for a lone client), or,
        // while other streams compute, waits until one of them finishes.
        while running.len() < slots && !wide_running {
            drain(&mut rx, &mut queue, &mut queued_inputs);
            let now = Instant::now();
            if open && hold.is_some_and(|h| h.holds(queue.len(), queued_inputs, max_batch, now)) {
                break;
            }
            if open
                && !running.is_empty()
                && queued_inputs < max_batch
                && queue.len() < group_share(clients, in_running, slots, max_batch)
            {
                break;
            }
            hold = None;
            let Some(group) = next_group(&mut queue, &mut queued_inputs, max_batch) else {
                break;
            };
            let lane = lane(has_wide, running.len(), queue.len(), group.len(), clients);
            wide_running = lane == Lane::Wide;
            let worker = worker.clone();
            let answered = group.len();
            in_running += answered;
            running.push(Box::pin(async move {
                (
                    execute(&worker, stage, max_batch, lane, group).await,
                    now,
                    answered,
                    lane,
                )
            }));
        }
        if !open && running.is_empty() && queue.is_empty() {
            return;
        }
        let until = hold.map(|h| tokio::time::Instant::from_std(h.until));
        tokio::select! {
            // Busy (or holding): collect what arrives meanwhile (one batch ahead at most;
            // the channel holds the rest and sheds beyond its capacity).
            next = rx.recv(), if open && queued_inputs < max_batch => match next {
                Some(p) => {
                    queued_inputs += p.inputs.len();
                    queue.push_back(p);
                }
                None => open = false,
            },
            Some((answers, started, answered, lane)) = running.next(), if !running.is_empty() => {
                if lane == Lane::Wide {
                    wide_running = false;
                }
                // What already waits in the channel is queued, not a returning client.
                drain(&mut rx, &mut queue, &mut queued_inputs);
                in_running -= answered;
                clients = in_running + queue.len() + answered;
                let now = Instant::now();
                let share = group_share(clients, in_running, slots, max_batch);
                hold = Some(policy.after(answered, queue.len(), share, now - started, now));
                for (to, reply) in answers {
                    let _ = to.send(reply);
                }
            }
            () = async { tokio::time::sleep_until(until.expect("guarded")).await }, if running.len() < slots && until.is_some() => {}
        }
    }
}

/// The requests a free stream waits for: an equal part of the `clients` seen when a batch
/// last finished, split into one group per stream plus one more (at least one request, at
/// most a full batch), and never more than can come — the clients not in the `in_running`
/// requests of running batches. The extra group is the pipeline: while `streams` groups
/// compute, it makes its round trip (the HTTP response, the client, the controller, back into
/// the queue), and it is queued when a stream frees up, so the device is not idle while
/// everyone returns. Without it, under a closed-loop load, one stream settles into big
/// batches while another picks off one or two requests at a time (a call costs far more per
/// input at batch 1), or a lone stream waits for all its clients. Measured on 2 vCPUs (MiniLM,
/// OpenVINO, 32 closed-loop HTTP clients): one stream alternates batches of 16, none idle; two
/// streams batches of about 11. A light load (few clients) gets a share of one and goes at
/// once.
fn group_share(clients: usize, in_running: usize, streams: usize, max_batch: usize) -> usize {
    let reachable = clients.saturating_sub(in_running).max(1);
    clients
        .div_ceil(streams.max(1) + 1)
        .clamp(1, max_batch.max(1))
        .min(reachable)
}

/// The lane of a batch of `group` requests, with `running` batches in flight and `queued`
/// requests left behind it, `clients` in the system when a batch last finished: a lone
/// request on an idle device (nothing running, nothing else queued, no other client about to
/// come back) runs on the wide instance, which has every inference thread, so it answers as
/// fast as one instance would; everything else runs on the streams, which compute more per
/// second under load. Without a wide instance, the streams.
fn lane(has_wide: bool, running: usize, queued: usize, group: usize, clients: usize) -> Lane {
    if has_wide && running == 0 && queued == 0 && group == 1 && clients <= 1 {
        Lane::Wide
    } else {
        Lane::Streams
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

/// Runs one merged group (in chunks of `max_batch`) and cuts every request its slice.
async fn execute(
    worker: &ModelWorker,
    stage: StageKind,
    max_batch: usize,
    lane: Lane,
    group: Vec<Pending>,
) -> Vec<Answer> {
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
            StageKind::Embed => worker.embed_on(lane, chunk).await.map(|t| {
                vectors.extend(t.value.vectors);
                counts.extend(t.value.token_counts);
                (t.queue_ms, t.compute_ms)
            }),
            StageKind::Classify => worker.classify_on(lane, chunk).await.map(|t| {
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
    let mut answers = Vec::with_capacity(group.len());
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
        answers.push((p.reply, reply));
    }
    answers
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
