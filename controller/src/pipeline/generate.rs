//! A generation stream as one [`Attempt`], resumable across attempts.
//!
//! Chunks are forwarded to the client as they arrive. If the device fails before the answer
//! is complete, the retry loop re-places the request and the next attempt resumes it:
//! - deterministic sampling (greedy or a seed) regenerates the same text, so the part already
//!   sent is skipped, and the answer is the one an unbroken run gives;
//! - sampled streams (a temperature, no seed) send the text already sent as the assistant's
//!   partial reply ([`AgentGenerateRequest::continuation`]): the engine continues it and
//!   streams only what follows, with `max_tokens` less the pieces already sent.
//!
//! A stream that already sent tool calls is not resumed (they would be called twice).

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
    /// Text pieces (≈ tokens) sent, across attempts.
    pub sent_pieces: u32,
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

    /// The next attempt continues the text already sent (sampled) instead of regenerating
    /// it (deterministic).
    fn continues(&self) -> bool {
        !self.sent.is_empty() && !self.deterministic()
    }

    /// The sampling settings of the next attempt: a continuation generates what is left of
    /// `max_tokens` (0 = the engine's default stays 0).
    fn attempt_sampling(&self) -> SamplingParams {
        let mut s = self.sampling.clone();
        if self.continues() && s.max_tokens > 0 {
            s.max_tokens = s.max_tokens.saturating_sub(self.sent_pieces).max(1);
        }
        s
    }

    /// A failure of the target: retried unless tool calls were sent.
    fn target_failed(&self, failed: Failed) -> Failed {
        if self.sent_tool_calls {
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
        let continuing = self.continues();
        let pieces_before = self.sent_pieces;
        let open = tokio::time::timeout(
            cx.budget,
            client.generate(AgentGenerateRequest {
                model: self.model.clone(),
                device_id: target.device.clone(),
                backend: target.backend.clone(),
                messages: self.messages.clone(),
                prompt: String::new(),
                sampling: Some(self.attempt_sampling()),
                engine_options: self.engine_options.clone(),
                continuation: if continuing {
                    self.sent.clone()
                } else {
                    String::new()
                },
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
            if continuing {
                self.sent.push_str(&chunk.text);
            } else {
                regenerated.push_str(&chunk.text);
                chunk.text = self.new_text(&regenerated)?;
            }
            if is_last {
                if continuing {
                    chunk.completion_tokens += pieces_before;
                }
                crate::metrics::tokens_generated(&self.model, u64::from(chunk.completion_tokens));
                let mut observed = Observed {
                    first_token,
                    longest_gap,
                    ..Default::default()
                };
                if let Some(t) = chunk.trace.as_mut() {
                    t.retries = cx.retries;
                    observed.precision = t.precision.clone();
                    observed.load_ms = t.load_ms;
                }
                let _ = self.tx.send(Ok(chunk)).await;
                return Ok(observed);
            }
            let calls = !chunk.tool_calls_json.is_empty();
            self.sent_tool_calls |= calls;
            if !chunk.text.is_empty() {
                self.sent_pieces += 1;
            }
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
            sent_pieces: 0,
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
    fn every_stream_is_resumed_except_one_that_sent_tool_calls() {
        let failed = || Failed {
            error: ApiError::new(ErrorClass::Internal, "x"),
            failure: Failure::of_class(ErrorClass::Internal),
        };
        for (t, seed, sent) in [(0.7, None, ""), (0.0, None, "abc"), (0.7, Some(1), "abc")] {
            assert!(attempt(t, seed, sent).target_failed(failed()).failure.retry);
        }
        assert!(
            attempt(0.7, None, "abc")
                .target_failed(failed())
                .failure
                .retry,
            "a sampled stream that sent text continues elsewhere"
        );
        let mut calls = attempt(0.7, None, "");
        calls.sent_tool_calls = true;
        let f = calls.target_failed(failed());
        assert!(!f.failure.retry, "tool calls would be called twice");
        assert_eq!(
            f.failure.scope,
            Scope::Device,
            "still charged to the device"
        );
    }

    #[test]
    fn a_sampled_stream_continues_the_sent_text_with_the_tokens_left() {
        let mut a = attempt(0.7, None, "");
        a.sampling.max_tokens = 50;
        assert!(!a.continues(), "nothing sent: a new reply");
        assert_eq!(a.attempt_sampling().max_tokens, 50);
        a.sent = "1, 2, 3".into();
        a.sent_pieces = 5;
        assert!(a.continues());
        assert_eq!(a.attempt_sampling().max_tokens, 45);
        a.sent_pieces = 80;
        assert_eq!(a.attempt_sampling().max_tokens, 1, "never 0 (= unlimited)");
        a.sampling.max_tokens = 0;
        assert_eq!(a.attempt_sampling().max_tokens, 0, "the engine's default");
        let greedy = attempt(0.0, None, "1, 2, 3");
        assert!(
            !greedy.continues(),
            "deterministic: regenerated, not continued"
        );
        let seeded = attempt(0.9, Some(7), "1, 2, 3");
        assert!(!seeded.continues());
    }
}
