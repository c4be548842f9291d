//! The retry loop, written once: place → dispatch → run the attempt within its adaptive
//! timeout → classify the failure → charge and exclude → back off → re-place. Batch stages
//! (classify, embed) and generation streams differ only in their [`Attempt`].

use std::future::Future;
use std::time::{Duration, Instant};

use rand::Rng;
use switchyard_api::ApiError;
use switchyard_backend_core::StageKind;
use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::agent_client::AgentClient;
use switchyard_scheduler::{PlacementRequest, RetryPolicy};
use tonic::transport::Channel;
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
    pub client: AgentClient<Channel>,
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

/// One try of a stage on one target.
pub trait Attempt {
    /// What a successful attempt yields.
    type Output;
    /// Runs the attempt. It must bound its own waits by `cx.budget` (a batch call) or per
    /// chunk (a stream), and classify what goes wrong.
    fn run(
        &mut self,
        cx: AttemptContext,
    ) -> impl Future<Output = Result<Self::Output, Failed>> + Send;
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
        let budget = target.timeout.min(remaining(deadline));
        if budget.is_zero() {
            return Err(deadline_error(stage));
        }
        let span = info_span!("stage", stage = stage.as_str(), node = %target.node, device = %target.device, backend = %target.backend, model = %model, retries);
        let _in_flight = placer.dispatch(&target);
        let cx = AttemptContext {
            client: pool.client(&target.endpoint)?,
            target: target.clone(),
            budget,
            deadline,
            retries,
        };
        let started = Instant::now();
        let Failed { error, failure } = match attempt.run(cx).instrument(span).await {
            Ok(out) => {
                let took = started.elapsed();
                crate::metrics::stage_completed(
                    stage.as_str(),
                    &target.node,
                    &target.device,
                    &target.backend,
                    took,
                );
                placer.succeeded(stage, &model, &target, took);
                return Ok(out);
            }
            Err(f) => f,
        };
        let charged = failure.charged(&target.device, &target.node_devices);
        if !charged.is_empty() {
            crate::metrics::stage_failed(
                stage.as_str(),
                &target.node,
                &target.device,
                &format!("{:?}", failure.class),
            );
        }
        req = placer.failed(&target, charged, req);
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
