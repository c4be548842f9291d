//! A loaded model on its own OS thread, fed by a bounded channel (the backend actor).
//!
//! Inference runtimes block; the async agent must not. [`ModelWorker`] owns one
//! [`LoadedModel`] on a dedicated thread and exposes async-friendly calls. A full queue is
//! reported as [`BackendError::QueueFull`] instead of growing without bound.
//!
//! A worker may own several instances of the same model (streams, as OpenVINO's throughput
//! mode and Triton's instance groups run them), each on its own thread and taking the next
//! job from the one shared queue: jobs then run side by side, one per stream. Beside its
//! streams it may own one *wide* instance, on all the inference threads, with a queue of its
//! own ([`Lane::Wide`]): the caller sends it a lone request on an idle device, which a
//! stream's share of the threads would compute more slowly, and never runs both at once.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use tokio::sync::oneshot;
use tracing::Span;

use crate::{
    BackendError, ClassScores, EmbedOutput, GenerateParams, GenerateSummary, LoadedModel,
    ModelSpec, TokenEvent,
};

/// Reply channel of a job.
type Reply<T> = oneshot::Sender<T>;

/// A job as queued: when, the caller's span (so the work on the model thread is traced under
/// the request that asked for it, as TEI's `BackendCommand` carries `Span::current()`), and
/// the job.
type Submitted = (Instant, Span, Job);

enum Job {
    Embed(Vec<String>, Reply<Timed<Result<EmbedOutput, BackendError>>>),
    Classify(
        Vec<String>,
        Reply<Timed<Result<Vec<ClassScores>, BackendError>>>,
    ),
    Generate(
        GenerateParams,
        Box<dyn FnMut(TokenEvent) -> bool + Send>,
        Reply<Timed<Result<GenerateSummary, BackendError>>>,
    ),
}

/// A result with the time it waited in the queue and the time it computed.
#[derive(Debug)]
pub struct Timed<T> {
    /// The job's result.
    pub value: T,
    /// Time the job waited in the queue before the model thread took it, ms.
    pub queue_ms: f64,
    /// Time the model thread spent running the job, ms.
    pub compute_ms: f64,
}

/// Which of a worker's instances runs a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The next free stream.
    Streams,
    /// The wide instance (all the inference threads); the streams when there is none.
    Wide,
}

/// Handle to a model running on its own thread. Cloning shares the same thread.
#[derive(Clone)]
pub struct ModelWorker {
    spec: Arc<ModelSpec>,
    tx: mpsc::SyncSender<Submitted>,
    wide: Option<mpsc::SyncSender<Submitted>>,
    in_flight: Arc<AtomicU32>,
    streams: usize,
}

impl std::fmt::Debug for ModelWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelWorker")
            .field("model", &self.spec.name)
            .field("in_flight", &self.in_flight())
            .field("streams", &self.streams)
            .field("wide", &self.wide.is_some())
            .finish()
    }
}

impl ModelWorker {
    /// Moves `model` onto a new thread named after it. `queue_capacity` bounds waiting jobs.
    pub fn spawn(model: Box<dyn LoadedModel>, queue_capacity: usize) -> Self {
        Self::spawn_streams(vec![model], queue_capacity)
    }

    /// Moves each instance in `streams` (loaded from the same registry entry) onto a thread
    /// of its own; they serve one queue, a job per free instance. `queue_capacity` bounds
    /// waiting jobs.
    ///
    /// # Panics
    /// When `streams` is empty (a caller's bug: there is nothing to run jobs on).
    pub fn spawn_streams(streams: Vec<Box<dyn LoadedModel>>, queue_capacity: usize) -> Self {
        Self::spawn_lanes(streams, None, queue_capacity)
    }

    /// [`ModelWorker::spawn_streams`], plus a `wide` instance (of the same entry) on a thread
    /// and a queue of its own, for [`Lane::Wide`] jobs.
    ///
    /// # Panics
    /// When `streams` is empty.
    pub fn spawn_lanes(
        streams: Vec<Box<dyn LoadedModel>>,
        wide: Option<Box<dyn LoadedModel>>,
        queue_capacity: usize,
    ) -> Self {
        let spec = Arc::new(
            streams
                .first()
                .expect("a model worker needs at least one instance")
                .spec()
                .clone(),
        );
        let (tx, rx) = mpsc::sync_channel::<Submitted>(queue_capacity.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let count = streams.len();
        for (i, model) in streams.into_iter().enumerate() {
            let name = if count == 1 {
                format!("model-{}", spec.name)
            } else {
                format!("model-{}-{i}", spec.name)
            };
            let rx = rx.clone();
            thread::Builder::new()
                .name(name)
                .spawn(move || run(model, &rx))
                .expect("spawning a model thread");
        }
        let wide = wide.map(|model| {
            let (tx, rx) = mpsc::sync_channel::<Submitted>(queue_capacity.max(1));
            let rx = Mutex::new(rx);
            thread::Builder::new()
                .name(format!("model-{}-wide", spec.name))
                .spawn(move || run(model, &rx))
                .expect("spawning a model thread");
            tx
        });
        ModelWorker {
            spec,
            tx,
            wide,
            in_flight: Arc::new(AtomicU32::new(0)),
            streams: count,
        }
    }

    /// Whether the worker has a wide instance.
    pub fn has_wide(&self) -> bool {
        self.wide.is_some()
    }

    /// Instances serving the queue: how many jobs run at once.
    pub fn streams(&self) -> usize {
        self.streams
    }

    /// The model's registry entry.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Requests queued or running.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn submit<T: Send + 'static>(
        &self,
        lane: Lane,
        make: impl FnOnce(Reply<Timed<Result<T, BackendError>>>) -> Job,
    ) -> Result<oneshot::Receiver<Timed<Result<T, BackendError>>>, BackendError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let tx = match (lane, &self.wide) {
            (Lane::Wide, Some(wide)) => wide,
            _ => &self.tx,
        };
        match tx.try_send((Instant::now(), Span::current(), make(reply_tx))) {
            Ok(()) => Ok(reply_rx),
            Err(mpsc::TrySendError::Full(_)) => {
                Err(BackendError::QueueFull(self.spec.name.clone()))
            }
            Err(mpsc::TrySendError::Disconnected(_)) => {
                Err(BackendError::NotLoaded(self.spec.name.clone()))
            }
        }
    }

    async fn wait<T: Send + 'static>(
        &self,
        rx: oneshot::Receiver<Timed<Result<T, BackendError>>>,
    ) -> Result<Timed<T>, BackendError> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let name = self.spec.name.clone();
        let out = rx.await.ok();
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let timed = out.ok_or(BackendError::NotLoaded(name))?;
        let value = timed.value?;
        Ok(Timed {
            value,
            queue_ms: timed.queue_ms,
            compute_ms: timed.compute_ms,
        })
    }

    /// Embeds a batch on the next free stream.
    pub async fn embed(&self, inputs: Vec<String>) -> Result<Timed<EmbedOutput>, BackendError> {
        self.embed_on(Lane::Streams, inputs).await
    }

    /// Embeds a batch on `lane`.
    pub async fn embed_on(
        &self,
        lane: Lane,
        inputs: Vec<String>,
    ) -> Result<Timed<EmbedOutput>, BackendError> {
        let rx = self.submit(lane, |r| Job::Embed(inputs, r))?;
        self.wait(rx).await
    }

    /// Classifies a batch on the next free stream.
    pub async fn classify(
        &self,
        inputs: Vec<String>,
    ) -> Result<Timed<Vec<ClassScores>>, BackendError> {
        self.classify_on(Lane::Streams, inputs).await
    }

    /// Classifies a batch on `lane`.
    pub async fn classify_on(
        &self,
        lane: Lane,
        inputs: Vec<String>,
    ) -> Result<Timed<Vec<ClassScores>>, BackendError> {
        let rx = self.submit(lane, |r| Job::Classify(inputs, r))?;
        self.wait(rx).await
    }

    /// Generates on the model thread; `on_token` runs on that thread for every piece and
    /// returning `false` from it stops generation.
    pub async fn generate(
        &self,
        params: GenerateParams,
        on_token: impl FnMut(TokenEvent) -> bool + Send + 'static,
    ) -> Result<Timed<GenerateSummary>, BackendError> {
        let rx = self.submit(Lane::Streams, |r| {
            Job::Generate(params, Box::new(on_token), r)
        })?;
        self.wait(rx).await
    }
}

/// Takes the next job from the shared queue (one instance waits on it at a time; the lock is
/// released before the job runs).
fn next(rx: &Mutex<mpsc::Receiver<Submitted>>) -> Option<Submitted> {
    rx.lock().ok()?.recv().ok()
}

fn run(mut model: Box<dyn LoadedModel>, rx: &Mutex<mpsc::Receiver<Submitted>>) {
    while let Some((queued_at, caller, job)) = next(rx) {
        let started = Instant::now();
        let queue_ms = started.duration_since(queued_at).as_secs_f64() * 1e3;
        let span = tracing::debug_span!(parent: &caller, "model_job", model = %model.spec().name);
        let _g = span.enter();
        macro_rules! finish {
            ($reply:expr, $value:expr) => {{
                let value = $value;
                let compute_ms = started.elapsed().as_secs_f64() * 1e3;
                let _ = $reply.send(Timed {
                    value,
                    queue_ms,
                    compute_ms,
                });
            }};
        }
        match job {
            Job::Embed(inputs, reply) => finish!(reply, model.embed(&inputs)),
            Job::Classify(inputs, reply) => finish!(reply, model.classify(&inputs)),
            Job::Generate(params, mut on_token, reply) => {
                finish!(reply, model.generate(&params, &mut *on_token))
            }
        }
    }
}

#[cfg(test)]
mod tests;
