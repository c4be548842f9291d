//! What the web console shows beyond the client API — the cluster's nodes and devices, and
//! the recent requests with their traces — as a narrow trait the controller implements, and
//! the bounded record of recent requests it keeps.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use switchyard_proto::v1::{NodeStatus, ResidentModel, StageTrace};

/// The controller's state the console reads: the same snapshots the API and `status` use.
pub trait ConsoleSource: Send + Sync {
    /// Every node with its devices and telemetry.
    fn nodes(&self) -> Vec<NodeStatus>;
    /// Every resident model copy, with its node.
    fn resident(&self) -> Vec<(String, ResidentModel)>;
    /// The most recent requests, newest first.
    fn recent_requests(&self) -> Vec<RequestRecord>;
}

/// Which API route a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A chat or completion (OpenAI, Ollama, gRPC Generate).
    Chat,
    /// Switchyard's pipeline (`/v1/pipeline`, gRPC RunPipeline).
    Pipeline,
}

impl Route {
    /// `chat` or `pipeline`.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Chat => "chat",
            Route::Pipeline => "pipeline",
        }
    }
}

/// One finished (or abandoned) request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// Sequence number (1, 2, …) since the controller started.
    pub id: u64,
    /// When it started, Unix milliseconds.
    pub started_unix_ms: u64,
    /// The route.
    pub route: Route,
    /// The model that answered (after routing).
    pub model: String,
    /// The tier it was routed to.
    pub tier: String,
    /// Whether it completed.
    pub ok: bool,
    /// Why not, when it did not.
    pub error: String,
    /// Wall time, ms.
    pub duration_ms: f64,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Every stage it ran, in order (classify, embed, generate; retries included).
    pub trace: Vec<StageTrace>,
}

impl RequestRecord {
    /// Tokens per second of the answer, when it produced any.
    pub fn tokens_per_second(&self) -> Option<f64> {
        (self.completion_tokens > 0 && self.duration_ms > 0.0)
            .then(|| f64::from(self.completion_tokens) / (self.duration_ms / 1000.0))
    }
}

/// The last `capacity` requests (a ring: the oldest drops out, so a console left open for
/// hours holds no growing memory here).
#[derive(Debug)]
pub struct RecentRequests {
    capacity: usize,
    next_id: AtomicU64,
    entries: Mutex<VecDeque<RequestRecord>>,
}

impl Default for RecentRequests {
    fn default() -> Self {
        Self::new(500)
    }
}

/// A request being recorded: [`RecentRequests::start`] hands it out, [`Recording::finish`]
/// stores it.
#[derive(Debug)]
pub struct Recording {
    record: RequestRecord,
    started: Instant,
}

impl Recording {
    /// The record so far (to add stages, tokens, the model).
    pub fn record(&mut self) -> &mut RequestRecord {
        &mut self.record
    }
}

impl RecentRequests {
    /// Keeps the last `capacity` requests.
    pub fn new(capacity: usize) -> Self {
        RecentRequests {
            capacity: capacity.max(1),
            next_id: AtomicU64::new(1),
            entries: Mutex::new(VecDeque::new()),
        }
    }

    /// Starts recording a request on `route`.
    pub fn start(&self, route: Route) -> Recording {
        let started_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Recording {
            record: RequestRecord {
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
                started_unix_ms,
                route,
                model: String::new(),
                tier: String::new(),
                ok: false,
                error: String::new(),
                duration_ms: 0.0,
                completion_tokens: 0,
                trace: Vec::new(),
            },
            started: Instant::now(),
        }
    }

    /// Stores a request: `Ok(())` completed, `Err(why)` did not.
    pub fn finish(&self, mut r: Recording, outcome: Result<(), String>) {
        r.record.duration_ms = r.started.elapsed().as_secs_f64() * 1e3;
        match outcome {
            Ok(()) => r.record.ok = true,
            Err(e) => r.record.error = e,
        }
        let mut entries = self.entries.lock().expect("recent requests");
        if entries.len() == self.capacity {
            entries.pop_front();
        }
        entries.push_back(r.record);
    }

    /// Newest first.
    pub fn snapshot(&self) -> Vec<RequestRecord> {
        self.entries
            .lock()
            .expect("recent requests")
            .iter()
            .rev()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_requests_up_to_its_capacity() {
        let recent = RecentRequests::new(2);
        for i in 0..3u32 {
            let mut r = recent.start(Route::Chat);
            r.record().completion_tokens = i;
            recent.finish(r, if i == 1 { Err("boom".into()) } else { Ok(()) });
        }
        let s = recent.snapshot();
        assert_eq!(s.iter().map(|r| r.id).collect::<Vec<_>>(), [3, 2]);
        assert!(s[0].ok && !s[1].ok && s[1].error == "boom");
        assert_eq!(s[0].completion_tokens, 2);
    }
}
