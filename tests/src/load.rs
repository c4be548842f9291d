//! Client load for the fault cases: concurrent clients that each send embedding requests
//! over the controller's gRPC Inference API, one after another, and record every outcome —
//! when it started and ended, which node answered or what the error was. No client retries:
//! a failure the cluster does not hide is counted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_proto::v1::EmbedRequest;
use switchyard_proto::v1::inference_client::InferenceClient;
use tonic::transport::Endpoint;

/// One request's outcome.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was sent.
    pub start: Instant,
    /// When its answer (or error) came.
    pub end: Instant,
    /// The node that answered, or the error.
    pub result: Result<String, String>,
}

/// Clients running in the background until [`Load::stop`].
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Load {
    /// Starts `clients` clients against the controller at `grpc` (`ip:port`, plaintext).
    pub fn embed(grpc: &str, clients: usize) -> Load {
        Self::embed_on(
            Endpoint::from_shared(format!("http://{grpc}")).expect("controller URL"),
            clients,
        )
    }

    /// Starts `clients` clients against the controller `endpoint` (TLS configured on it
    /// when the cluster runs under mTLS).
    pub fn embed_on(endpoint: Endpoint, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let url = endpoint;
        let (flag, out) = (stop.clone(), samples.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("client runtime");
            rt.block_on(run(url, clients, flag, out))
        });
        Load {
            stop,
            samples,
            thread,
        }
    }

    /// The outcomes so far, by start time.
    pub fn snapshot(&self) -> Vec<Sample> {
        let mut all = self.samples.lock().expect("samples").clone();
        all.sort_by_key(|s| s.start);
        all
    }

    /// Stops the clients (each finishes its request in flight) and returns every outcome,
    /// by start time.
    pub fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        let Load {
            samples, thread, ..
        } = self;
        thread.join().expect("load thread");
        let mut all = samples.lock().expect("samples").clone();
        all.sort_by_key(|s| s.start);
        all
    }
}

async fn run(url: Endpoint, clients: usize, stop: Arc<AtomicBool>, out: Arc<Mutex<Vec<Sample>>>) {
    let channel = url.connect_timeout(Duration::from_secs(1)).connect_lazy();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let mut client = InferenceClient::new(channel.clone());
            let stop = stop.clone();
            let out = out.clone();
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let mut request = crate::with_token(
                        EmbedRequest {
                            model: "minilm-l6-v2".into(),
                            inputs: vec![format!("load client {c} request {i}: a short sentence")],
                        },
                        crate::NETNS_API_TOKEN,
                    );
                    request.set_timeout(Duration::from_secs(30));
                    let start = Instant::now();
                    let result = match client.embed(request).await {
                        Ok(r) => Ok(r.into_inner().trace.map(|t| t.node).unwrap_or_default()),
                        Err(s) => Err(format!("{:?}: {}", s.code(), s.message())),
                    };
                    let failed = result.is_err();
                    out.lock().expect("samples").push(Sample {
                        start,
                        end: Instant::now(),
                        result,
                    });
                    if failed {
                        // Don't spin while the controller is away.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
}

/// Figures of a run of samples around an event at `at` (a kill, a partition).
#[derive(Debug, Clone, PartialEq)]
pub struct AroundEvent {
    /// Requests in all.
    pub total: usize,
    /// Requests that failed.
    pub failed: usize,
    /// Requests in flight at the event (sent before, answered after).
    pub in_flight: usize,
    /// Longest time from the event to the answer of a request in flight at it.
    pub replaced_within: Duration,
    /// Nodes that answered requests sent after the event, with their counts.
    pub after: Vec<(String, usize)>,
}

/// Summarises `samples` around `at`.
pub fn around(samples: &[Sample], at: Instant) -> AroundEvent {
    let in_flight: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.start < at && s.end >= at)
        .collect();
    let mut after: Vec<(String, usize)> = Vec::new();
    for s in samples.iter().filter(|s| s.start >= at) {
        if let Ok(node) = &s.result {
            match after.iter_mut().find(|(n, _)| n == node) {
                Some((_, c)) => *c += 1,
                None => after.push((node.clone(), 1)),
            }
        }
    }
    after.sort();
    AroundEvent {
        total: samples.len(),
        failed: samples.iter().filter(|s| s.result.is_err()).count(),
        in_flight: in_flight.len(),
        replaced_within: in_flight
            .iter()
            .map(|s| s.end.duration_since(at))
            .max()
            .unwrap_or_default(),
        after,
    }
}

/// The node that answered the latest request sent before `at`.
pub fn last_node_before(samples: &[Sample], at: Instant) -> Option<String> {
    samples
        .iter()
        .filter(|s| s.start < at)
        .filter_map(|s| s.result.as_ref().ok())
        .next_back()
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_around_an_event_count_in_flight_and_where_traffic_went() {
        let t0 = Instant::now();
        let at = t0 + Duration::from_millis(100);
        let ms = |n| t0 + Duration::from_millis(n);
        let s = |a, b, r: Result<&str, &str>| Sample {
            start: ms(a),
            end: ms(b),
            result: r.map(str::to_string).map_err(str::to_string),
        };
        let samples = vec![
            s(0, 50, Ok("a")),
            s(60, 400, Ok("b")),
            s(90, 130, Ok("b")),
            s(120, 150, Ok("b")),
            s(160, 170, Err("Unavailable")),
        ];
        let f = around(&samples, at);
        assert_eq!(f.total, 5);
        assert_eq!(f.failed, 1);
        assert_eq!(f.in_flight, 2);
        assert_eq!(f.replaced_within, Duration::from_millis(300));
        assert_eq!(f.after, vec![("b".to_string(), 1)]);
        assert_eq!(last_node_before(&samples, at).as_deref(), Some("b"));
    }
}
