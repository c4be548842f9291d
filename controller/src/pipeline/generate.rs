//! A generation stream as one [`Attempt`], resumable across attempts.
//!
//! Chunks are forwarded to the client as they arrive. If the device fails before the answer
//! is complete, the retry loop re-places the request and the next attempt starts over:
//! deterministic sampling (greedy or a seed) regenerates the same text, so the part already
//! sent is skipped; otherwise a failure after the first token ends the stream with the error.

use std::time::{Duration, Instant};

use switchyard_api::ApiError;
use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::{
    AgentGenerateRequest, ChatMessage, EngineOptions, GenerateChunk, SamplingParams,
};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use crate::dispatch::{
    Attempt, AttemptContext, Failed, Failure, Observed, Scope, deadline_error, remaining,
};

/// One generation request and what was already sent to the client.
#[derive(Debug)]
pub struct GenerateAttempt {
    /// The model.
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Sampling settings.
    pub sampling: SamplingParams,
    /// Function calling / structured output (engines only).
    pub engine_options: Option<EngineOptions>,
    /// Where chunks go.
    pub tx: mpsc::Sender<Result<GenerateChunk, ApiError>>,
    /// Text already sent, across attempts.
    pub sent: String,
    /// Tool calls were sent: a re-placed attempt would call them again, so the stream is
    /// not resumed.
    pub sent_tool_calls: bool,
}

/// The request is over for a reason that is not the target's fault (nothing charged).
fn request_over(class: ErrorClass, message: &str) -> Failed {
    Failed {
        error: ApiError::new(class, message),
        failure: Failure {
            class,
            scope: Scope::Request,
            retry: false,
        },
    }
}

impl GenerateAttempt {
    fn deterministic(&self) -> bool {
        self.sampling.temperature <= 0.0 || self.sampling.seed.is_some()
    }

    /// A failure of the target: retried unless text was sent that cannot be regenerated.
    fn target_failed(&self, failed: Failed) -> Failed {
        if self.sent_tool_calls || (!self.sent.is_empty() && !self.deterministic()) {
            return Failed {
                failure: failed.failure.final_(),
                ..failed
            };
        }
        failed
    }

    /// Merges a regenerated chunk with what was sent: returns the part that is new.
    fn new_text(&mut self, regenerated: &str) -> Result<String, Failed> {
        let diverged = || {
            request_over(
                ErrorClass::Unavailable,
                "re-placed generation diverged from the text already sent",
            )
        };
        if regenerated.len() <= self.sent.len() {
            if !self.sent.starts_with(regenerated) {
                return Err(diverged());
            }
            return Ok(String::new());
        }
        if !regenerated.starts_with(&self.sent) {
            return Err(diverged());
        }
        let new = regenerated[self.sent.len()..].to_string();
        self.sent = regenerated.to_string();
        Ok(new)
    }

    async fn stream(&mut self, cx: &AttemptContext) -> Result<Observed, Failed> {
        let target = &cx.target;
        let mut client = cx.client.clone();
        // The adaptive timeouts bound the wait for the first token (`timeout`, from dispatch)
        // and for each chunk after it (`gap_timeout`); the request deadline bounds the whole.
        // Both waits are measured and become the latency samples of a successful stream.
        let started = Instant::now();
        let open = tokio::time::timeout(
            cx.budget,
            client.generate(AgentGenerateRequest {
                model: self.model.clone(),
                device_id: target.device.clone(),
                backend: target.backend.clone(),
                messages: self.messages.clone(),
                prompt: String::new(),
                sampling: Some(self.sampling.clone()),
                engine_options: self.engine_options.clone(),
            }),
        )
        .await;
        let mut stream = match open {
            Err(_) => {
                return Err(Failed::new(
                    Failure::timed_out(),
                    "generate",
                    target,
                    "did not start in time",
                ));
            }
            Ok(Err(status)) => return Err(Failed::from_status("generate", target, &status)),
            Ok(Ok(stream)) => stream.into_inner(),
        };
        let mut regenerated = String::new();
        let mut last = started;
        let mut first_token: Option<Duration> = None;
        let mut longest_gap: Option<Duration> = None;
        loop {
            let limit = match first_token {
                None => target.timeout,
                Some(_) => target.gap_timeout,
            };
            let wait = limit
                .saturating_sub(last.elapsed())
                .min(remaining(cx.deadline));
            let next = match tokio::time::timeout(wait, stream.next()).await {
                Err(_) if remaining(cx.deadline).is_zero() => {
                    return Err(Failed {
                        error: deadline_error(switchyard_backend_core::StageKind::Generate),
                        failure: Failure::timed_out(),
                    });
                }
                Err(_) => {
                    return Err(Failed::new(
                        Failure::timed_out(),
                        "generate",
                        target,
                        format_args!("stalled for {} ms", wait.as_millis()),
                    ));
                }
                Ok(None) => {
                    return Err(Failed::new(
                        Failure::of_class(ErrorClass::Unavailable),
                        "generate",
                        target,
                        "the stream ended without a final chunk",
                    ));
                }
                Ok(Some(Err(status))) => {
                    return Err(Failed::from_status("generate", target, &status));
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            let waited = last.elapsed();
            match first_token {
                None => first_token = Some(started.elapsed()),
                Some(_) => longest_gap = Some(longest_gap.map_or(waited, |g| g.max(waited))),
            }
            let mut chunk = next;
            let is_last = chunk.finish_reason.is_some();
            regenerated.push_str(&chunk.text);
            chunk.text = self.new_text(&regenerated)?;
            if is_last {
                crate::metrics::tokens_generated(&self.model, u64::from(chunk.completion_tokens));
                let mut observed = Observed {
                    first_token,
                    longest_gap,
                    ..Default::default()
                };
                if let Some(t) = chunk.trace.as_mut() {
                    t.retries = cx.retries;
                    observed.precision = t.precision.clone();
                }
                let _ = self.tx.send(Ok(chunk)).await;
                return Ok(observed);
            }
            let calls = !chunk.tool_calls_json.is_empty();
            self.sent_tool_calls |= calls;
            if (calls || !chunk.text.is_empty()) && self.tx.send(Ok(chunk)).await.is_err() {
                return Err(request_over(
                    ErrorClass::Unavailable,
                    "the client went away",
                ));
            }
            // Time spent handing the chunk to a slow client is not the device's gap.
            last = Instant::now();
        }
    }
}

impl Attempt for GenerateAttempt {
    type Output = ();

    async fn run(&mut self, cx: AttemptContext) -> Result<((), Observed), Failed> {
        match self.stream(&cx).await {
            Ok(observed) => Ok(((), observed)),
            Err(f) if f.failure.scope != Scope::Request => Err(self.target_failed(f)),
            Err(f) => Err(f),
        }
    }

    fn target_lost(&mut self, failed: Failed) -> Failed {
        self.target_failed(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(temperature: f32, seed: Option<u64>, sent: &str) -> GenerateAttempt {
        GenerateAttempt {
            model: "m".into(),
            messages: Vec::new(),
            sampling: SamplingParams {
                temperature,
                seed,
                ..Default::default()
            },
            engine_options: None,
            tx: mpsc::channel(1).0,
            sent: sent.into(),
            sent_tool_calls: false,
        }
    }

    #[test]
    fn a_regenerated_stream_sends_only_what_is_new_and_refuses_divergence() {
        let mut a = attempt(0.0, None, "Hello wor");
        assert_eq!(a.new_text("Hel").unwrap(), "");
        assert_eq!(a.new_text("Hello world").unwrap(), "ld");
        assert_eq!(a.sent, "Hello world");
        assert!(a.new_text("Goodbye, world").is_err());
        assert!(a.new_text("Hx").is_err());
    }

    #[test]
    fn only_a_deterministic_stream_that_sent_text_may_be_resumed() {
        let failed = || Failed {
            error: ApiError::new(ErrorClass::Internal, "x"),
            failure: Failure::of_class(ErrorClass::Internal),
        };
        assert!(attempt(0.7, None, "").target_failed(failed()).failure.retry);
        assert!(
            attempt(0.0, None, "abc")
                .target_failed(failed())
                .failure
                .retry
        );
        assert!(
            attempt(0.7, Some(1), "abc")
                .target_failed(failed())
                .failure
                .retry
        );
        let f = attempt(0.7, None, "abc").target_failed(failed());
        assert!(!f.failure.retry);
        assert_eq!(
            f.failure.scope,
            Scope::Device,
            "still charged to the device"
        );
    }
}
