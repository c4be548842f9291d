//! The retry loop, written once: place → dispatch → run the attempt within its adaptive
//! timeout → classify the failure → charge and exclude → back off → re-place. Batch stages
//! (classify, embed) and generation streams differ only in their [`Attempt`].

use std::future::Future;
use std::time::{Duration, Instant};

use rand::Rng;
use switchyard_api::ApiError;
use switchyard_backend_core::StageKind;
use switchyard_proto::errors::ErrorClass;
use switchyard_scheduler::{PlacementRequest, RetryPolicy, Sample};
use tracing::{Instrument, info_span, warn};

use super::{AgentPool, Failure};
use crate::placement::{Placer, Target};

/// Time left before `deadline`.
pub fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// The error of a request whose deadline passed during `stage`.
pub fn deadline_error(stage: StageKind) -> ApiError {
    ApiError::new(
        ErrorClass::DeadlineExceeded,
        format!(
            "request deadline passed during the {} stage",
            stage.as_str()
        ),
    )
}

/// What one attempt gets: where it runs and how long it may take.
#[derive(Debug, Clone)]
pub struct AttemptContext {
    /// The placed target.
    pub target: Target,
    /// The target's agent.
    pub client: super::pool::AgentRpc,
    /// The attempt's time budget: the adaptive timeout, cut to the deadline.
    pub budget: Duration,
    /// The whole request's deadline.
    pub deadline: Instant,
    /// Attempts made before this one.
    pub retries: u32,
}

/// A failed attempt: the error for the client and what it means for the cluster.
#[derive(Debug, Clone)]
pub struct Failed {
    /// The error reported if this is the last attempt.
    pub error: ApiError,
    /// Its classification (the one rule).
    pub failure: Failure,
}

impl Failed {
    /// A failure whose message names the stage and target (on an attached engine, scoped
    /// to it: [`Failure::on_engine`]).
    pub fn new(
        failure: Failure,
        what: &str,
        target: &Target,
        message: impl std::fmt::Display,
    ) -> Self {
        let failure = if target.engine {
            failure.on_engine()
        } else {
            failure
        };
        Failed {
            error: ApiError::new(
                failure.class,
                format!("{what} on {}/{}: {message}", target.node, target.device),
            ),
            failure,
        }
    }

    /// A failure from a gRPC status the agent returned.
    pub fn from_status(what: &str, target: &Target, status: &tonic::Status) -> Self {
        Failed::new(Failure::from_status(status), what, target, status.message())
    }
}

/// What a successful attempt observed, beside its output: what metrics and the latency
/// statistics record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The precision the agent reports the stage ran at (`f32`, ...).
    pub precision: String,
    /// A stream: time from dispatch to its first chunk (`None`: a batch call, measured
    /// whole by the loop).
    pub first_token: Option<Duration>,
    /// A stream: the longest wait between two chunks after the first.
    pub longest_gap: Option<Duration>,
    /// The model load the agent reports this attempt waited for, ms (0: it was resident).
    pub load_ms: f64,
    /// A classify/embed call: the inputs of the merged runtime call it rode in (`None`: a
    /// stream).
    pub batch_size: Option<u32>,
}

impl Observed {
    /// The latency sample of an attempt that took `took` for `req`.
    pub fn sample(&self, req: &PlacementRequest, took: Duration) -> Sample {
        match self.first_token {
            Some(first_token) => Sample::Stream {
                first_token,
                longest_gap: self.longest_gap,
            },
            None => Sample::Batch {
                took,
                inputs: req.inputs,
            },
        }
    }
}

/// One try of a stage on one target.
pub trait Attempt {
    /// What a successful attempt yields.
    type Output;
    /// Runs the attempt. It must bound its own waits by `cx.budget` (a batch call) or per
    /// chunk (a stream), and classify what goes wrong.
    fn run(
        &mut self,
        cx: AttemptContext,
    ) -> impl Future<Output = Result<(Self::Output, Observed), Failed>> + Send;

    /// Bulk work (a document import's embed batch): `Some(model calls it takes)`. Its
    /// budget is then the stage's timeout ceiling per call rather than the adaptive timeout
    /// of interactive requests, and its duration is not recorded into their statistics.
    fn bulk_calls(&self) -> Option<u32> {
        None
    }

    /// The failure of an attempt cut short because its target's node was lost (heartbeats
    /// missed, session ended): its work is re-placed without waiting for its timeout. By
    /// default the failure as given (retried on another node).
    fn target_lost(&mut self, failed: Failed) -> Failed {
        failed
    }
}

/// Runs `attempt` for `req` until it succeeds, fails for good, runs out of attempts or
/// passes `deadline`. Each failure is charged to the devices its scope names, which are
/// then excluded from the next placement.
pub async fn run<A: Attempt>(
    placer: &Placer,
    pool: &AgentPool,
    policy: &RetryPolicy,
    mut req: PlacementRequest,
    deadline: Instant,
    attempt: &mut A,
) -> Result<A::Output, ApiError> {
    let stage = req.stage;
    let model = req.model.clone();
    let mut retries = 0u32;
    let mut last_error: Option<ApiError> = None;
    while retries < policy.max_attempts.max(1) {
        req.now = Instant::now();
        let target = match placer.place(&req) {
            Ok(t) => t,
            Err(e) => return Err(last_error.unwrap_or(e)),
        };
        let bulk = attempt.bulk_calls();
        let timeout = match bulk {
            Some(calls) => target
                .timeout
                .max(placer.timeout_ceiling(stage) * calls.max(1)),
            None => target.timeout,
        };
        let budget = timeout.min(remaining(deadline));
        if budget.is_zero() {
            return Err(deadline_error(stage));
        }
        let span = info_span!("stage", stage = stage.as_str(), node = %target.node, device = %target.device, backend = %target.backend, model = %model, retries);
        let _in_flight = placer.dispatch(&target);
        let cx = AttemptContext {
            client: pool.client(&target.node, &target.endpoint)?,
            target: target.clone(),
            budget,
            deadline,
            retries,
        };
        let started = Instant::now();
        let outcome = {
            let run = attempt.run(cx).instrument(span);
            let lost = placer.cluster().until_lost(&target.node);
            tokio::select! {
                r = run => Some(r),
                () = lost => None,
            }
        };
        let outcome = outcome.unwrap_or_else(|| {
            Err(attempt.target_lost(Failed::new(
                Failure::of_class(ErrorClass::Unavailable),
                stage.as_str(),
                &target,
                "the node was lost while the attempt ran",
            )))
        });
        let Failed { error, failure } = match outcome {
            Ok((out, observed)) => {
                let took = started.elapsed();
                crate::metrics::stage_completed(
                    stage.as_str(),
                    &target.node,
                    &target.device,
                    &target.backend,
                    &observed.precision,
                    took,
                );
                if let Some(size) = observed.batch_size {
                    crate::metrics::batch_size(stage.as_str(), &target.node, &target.device, size);
                }
                placer.loaded(&req.model, &target.backend, observed.load_ms);
                placer.succeeded(&req, &target, observed.sample(&req, took), bulk.is_none());
                return Ok(out);
            }
            Err(f) => f,
        };
        // A timeout on a device that answered other requests meanwhile is congestion (the
        // request queued behind them), not a fault: this request leaves the device, its
        // breaker is not charged.
        let congested = failure.class == ErrorClass::DeadlineExceeded
            && placer.answered_since(&target, started);
        let charged = if congested {
            &[]
        } else {
            failure.charged(&target.device, &target.node_devices)
        };
        if !charged.is_empty() {
            crate::metrics::stage_failed(
                stage.as_str(),
                &target.node,
                &target.device,
                &format!("{:?}", failure.class),
            );
        }
        req = placer.failed(&target, charged, req);
        if congested {
            req = req.excluding(target.node.clone(), target.device.clone());
        }
        if !failure.retry {
            return Err(error);
        }
        if remaining(deadline).is_zero() {
            return Err(deadline_error(stage));
        }
        warn!(stage = stage.as_str(), node = %target.node, device = %target.device, error = %error.message, "stage failed; re-placing");
        retries += 1;
        last_error = Some(error);
        let delay = policy.delay(retries, rand::rng().random());
        tokio::time::sleep(delay.min(remaining(deadline))).await;
    }
    Err(last_error.unwrap_or_else(|| ApiError::new(ErrorClass::Unavailable, "no attempt made")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_sampled_by_its_first_token_and_a_batch_by_its_inputs() {
        let req = PlacementRequest::new(StageKind::Embed, "m", 1, Instant::now()).with_inputs(256);
        let took = Duration::from_millis(900);
        assert_eq!(
            Observed::default().sample(&req, took),
            Sample::Batch { took, inputs: 256 }
        );
        let stream = Observed {
            first_token: Some(Duration::from_millis(40)),
            longest_gap: Some(Duration::from_millis(15)),
            ..Default::default()
        };
        let req = PlacementRequest::new(StageKind::Generate, "g", 1, Instant::now());
        // However long the whole stream took (it scales with max_tokens), the sample is the
        // first token and the longest gap.
        assert_eq!(
            stream.sample(&req, Duration::from_secs(30)),
            Sample::Stream {
                first_token: Duration::from_millis(40),
                longest_gap: Some(Duration::from_millis(15)),
            }
        );
    }
}
