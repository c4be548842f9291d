//! A classify or embed batch as one [`Attempt`]: one RunStage call within the budget.

use switchyard_backend_core::StageKind;
use switchyard_proto::v1::{RunStageRequest, RunStageResponse};

use crate::dispatch::{Attempt, AttemptContext, Failed, Failure, Observed};

/// The inputs of one batch stage.
#[derive(Debug)]
pub struct BatchAttempt {
    /// Classify or embed.
    pub stage: StageKind,
    /// The model.
    pub model: String,
    /// The texts.
    pub inputs: Vec<String>,
    /// Bulk work (an import): the number of model calls it takes (inputs / the model's
    /// `max_batch`, rounded up); `None` for interactive requests.
    pub bulk_calls: Option<u32>,
}

impl Attempt for BatchAttempt {
    type Output = RunStageResponse;

    fn bulk_calls(&self) -> Option<u32> {
        self.bulk_calls
    }

    async fn run(&mut self, cx: AttemptContext) -> Result<(RunStageResponse, Observed), Failed> {
        let mut client = cx.client;
        let call = client.run_stage(RunStageRequest {
            stage: switchyard_proto::convert::stage_to_wire(self.stage),
            model: self.model.clone(),
            device_id: cx.target.device.clone(),
            backend: cx.target.backend.clone(),
            inputs: self.inputs.clone(),
        });
        let what = self.stage.as_str();
        match tokio::time::timeout(cx.budget, call).await {
            Ok(Ok(resp)) => {
                let mut resp = resp.into_inner();
                let mut observed = Observed::default();
                if let Some(t) = resp.trace.as_mut() {
                    t.retries = cx.retries;
                    observed.precision = t.precision.clone();
                    observed.load_ms = t.load_ms;
                    observed.batch_size = Some(t.batch_size);
                }
                Ok((resp, observed))
            }
            Ok(Err(status)) => Err(Failed::from_status(what, &cx.target, &status)),
            Err(_) => Err(Failed::new(
                Failure::timed_out(),
                what,
                &cx.target,
                format_args!(
                    "timed out after {} ms (adaptive timeout)",
                    cx.budget.as_millis()
                ),
            )),
        }
    }
}
