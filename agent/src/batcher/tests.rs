use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use super::*;
use switchyard_backend_core::{EmbedOutput, LoadedModel, ModelSpec, OverflowPolicy};

/// Embeds a text as `[len]`, and records each runtime call's batch size.
struct Recorder(ModelSpec, std::sync::Arc<std::sync::Mutex<Vec<usize>>>);

impl LoadedModel for Recorder {
    fn spec(&self) -> &ModelSpec {
        &self.0
    }
    fn precision(&self) -> switchyard_backend_core::Precision {
        switchyard_backend_core::Precision::F32
    }
    fn embed(&mut self, inputs: &[String]) -> Result<EmbedOutput, BackendError> {
        self.1.lock().unwrap().push(inputs.len());
        std::thread::sleep(Duration::from_millis(20));
        Ok(EmbedOutput {
            vectors: inputs.iter().map(|s| vec![s.len() as f32]).collect(),
            token_counts: inputs.iter().map(|s| s.len() as u32).collect(),
        })
    }
}

fn spec(max_batch: u32) -> ModelSpec {
    ModelSpec {
        name: "rec".into(),
        stage: StageKind::Embed,
        onnx: "x".into(),
        tokenizer: "y".into(),
        sha256: None,
        memory_bytes: 1,
        max_input_tokens: 8,
        overflow: OverflowPolicy::Truncate,
        labels: vec![],
        embedding_dim: Some(1),
        tier: None,
        context_tokens: None,
        chat_template: None,
        system_prompt: None,
        stop_tokens: vec![],
        max_batch,
        streams: None,
        precision: Default::default(),
        also_at: Vec::new(),
        backends: vec![],
        engine: None,
        info: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_merged_and_each_gets_its_own_slice() {
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let worker = ModelWorker::spawn(Box::new(Recorder(spec(8), calls.clone())), 64);
    let batcher = Batcher::spawn(worker, 64);
    let mut handles = Vec::new();
    for i in 0..12 {
        let b = batcher.clone();
        handles.push(tokio::spawn(async move {
            b.submit(vec!["x".repeat(i + 1)]).await
        }));
    }
    for (i, h) in handles.into_iter().enumerate() {
        let reply = h.await.unwrap().unwrap();
        let BatchOutput::Embed { vectors, .. } = reply.output else {
            panic!("embed output")
        };
        assert_eq!(
            vectors,
            vec![vec![(i + 1) as f32]],
            "request {i} got someone else's result"
        );
    }
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.iter().sum::<usize>(), 12);
    assert!(
        calls.iter().all(|&n| n <= 8),
        "max_batch respected: {calls:?}"
    );
    assert!(calls.len() < 12, "requests were merged: {calls:?}");
}

/// Reports each runtime call's inputs, then blocks until the test opens the gate: the test
/// decides when a batch finishes, so what is merged does not depend on timing.
struct Gated {
    spec: ModelSpec,
    started: std::sync::Mutex<std_mpsc::Sender<Vec<String>>>,
    /// Shared by the instances of a model run as several streams.
    gate: std::sync::Arc<std::sync::Mutex<std_mpsc::Receiver<()>>>,
}

impl LoadedModel for Gated {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }
    fn precision(&self) -> switchyard_backend_core::Precision {
        switchyard_backend_core::Precision::F32
    }
    fn embed(&mut self, inputs: &[String]) -> Result<EmbedOutput, BackendError> {
        self.started.lock().unwrap().send(inputs.to_vec()).unwrap();
        self.gate.lock().unwrap().recv().unwrap();
        Ok(EmbedOutput {
            vectors: inputs.iter().map(|s| vec![s.len() as f32]).collect(),
            token_counts: inputs.iter().map(|s| s.len() as u32).collect(),
        })
    }
}

/// Waits for the model to report a call (a hang guard, not a timing assertion).
fn next_call(started: &std_mpsc::Receiver<Vec<String>>) -> Vec<String> {
    started
        .recv_timeout(Duration::from_secs(60))
        .expect("the model was called")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_request_is_dispatched_at_once_and_arrivals_during_a_batch_are_merged() {
    let (started_tx, started) = std_mpsc::channel();
    let (gate, gate_rx) = std_mpsc::channel();
    let model = Gated {
        spec: spec(8),
        started: std::sync::Mutex::new(started_tx),
        gate: std::sync::Arc::new(std::sync::Mutex::new(gate_rx)),
    };
    let batcher = Batcher::spawn(ModelWorker::spawn(Box::new(model), 64), 64);

    // Idle device, one request: it reaches the model with nothing else queued and no one
    // else coming — the batcher does not wait for company.
    let b = batcher.clone();
    let lone = tokio::spawn(async move { b.submit(vec!["a".into()]).await });
    assert_eq!(next_call(&started), vec!["a".to_string()]);

    // While that batch runs (gate closed), three requests arrive: each future is polled
    // once, which is when `submit` hands it to the batcher, before the gate opens.
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut later: Vec<_> = ["bb", "ccc", "dddd"]
        .into_iter()
        .map(|text| Box::pin(batcher.submit(vec![text.into()])))
        .collect();
    for f in &mut later {
        assert!(
            f.as_mut().poll(&mut cx).is_pending(),
            "queued, not answered"
        );
    }
    assert!(
        started.try_recv().is_err(),
        "nothing else runs while a batch is in flight"
    );
    gate.send(()).unwrap();
    let reply = lone.await.unwrap().unwrap();
    assert_eq!(reply.batch_size, 1);

    // They go together as the next batch once the first one is done (after the hold for the
    // lone request's client, who does not come back here).
    let merged = next_call(&started);
    assert_eq!(merged, vec!["bb".to_string(), "ccc".into(), "dddd".into()]);
    gate.send(()).unwrap();
    for (f, len) in later.into_iter().zip([2.0, 3.0, 4.0]) {
        let reply = f.await.unwrap();
        assert_eq!(reply.batch_size, 3);
        let BatchOutput::Embed { vectors, .. } = reply.output else {
            panic!("embed output")
        };
        assert_eq!(vectors, vec![vec![len]], "each request gets its own slice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_run_as_two_streams_computes_two_batches_side_by_side() {
    let (started_tx, started) = std_mpsc::channel();
    let (gate, gate_rx) = std_mpsc::channel();
    let gate_rx = std::sync::Arc::new(std::sync::Mutex::new(gate_rx));
    let streams: Vec<Box<dyn LoadedModel>> = (0..2)
        .map(|_| {
            Box::new(Gated {
                spec: spec(8),
                started: std::sync::Mutex::new(started_tx.clone()),
                gate: gate_rx.clone(),
            }) as Box<dyn LoadedModel>
        })
        .collect();
    let worker = ModelWorker::spawn_streams(streams, 64);
    let batcher = Batcher::spawn_with(worker, 64, HoldPolicy::NONE);

    let first = queue_up(&batcher, &["a"]);
    assert_eq!(next_call(&started), strings(&["a"]));
    // The first batch still runs (its gate is closed): the second stream takes the next
    // request at once. With one stream it would wait for the first batch to end.
    let second = queue_up(&batcher, &["bb"]);
    assert_eq!(next_call(&started), strings(&["bb"]));
    // Both streams busy: arrivals queue, and go together when one of them is free.
    let later = queue_up(&batcher, &["ccc", "dddd"]);
    assert!(
        started.try_recv().is_err(),
        "no third batch while two run on two streams"
    );
    gate.send(()).unwrap();
    assert_eq!(next_call(&started), strings(&["ccc", "dddd"]));
    gate.send(()).unwrap();
    gate.send(()).unwrap();
    let sizes: Vec<u32> = futures_join(first.into_iter().chain(second).chain(later).collect())
        .await
        .into_iter()
        .map(|r| r.unwrap().batch_size)
        .collect();
    assert_eq!(sizes, vec![1, 1, 2, 2]);
}

fn gated(
    max_batch: u32,
    policy: HoldPolicy,
) -> (
    Batcher,
    std_mpsc::Receiver<Vec<String>>,
    std_mpsc::Sender<()>,
) {
    let (started_tx, started) = std_mpsc::channel();
    let (gate, gate_rx) = std_mpsc::channel();
    let model = Gated {
        spec: spec(max_batch),
        started: std::sync::Mutex::new(started_tx),
        gate: std::sync::Arc::new(std::sync::Mutex::new(gate_rx)),
    };
    let batcher = Batcher::spawn_with(ModelWorker::spawn(Box::new(model), 64), 64, policy);
    (batcher, started, gate)
}

type Submitted<'a> = Pin<Box<dyn Future<Output = Result<BatchReply, BackendError>> + Send + 'a>>;

/// Submits each text as a request of its own; each is in the batcher's hands on return.
fn queue_up<'a>(batcher: &'a Batcher, texts: &[&str]) -> Vec<Submitted<'a>> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    texts
        .iter()
        .map(|text| {
            let mut f: Submitted<'a> = Box::pin(batcher.submit(vec![text.to_string()]));
            assert!(
                f.as_mut().poll(&mut cx).is_pending(),
                "queued, not answered"
            );
            f
        })
        .collect()
}

fn strings(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| t.to_string()).collect()
}

/// A hold that lasts until the clients are back (the test decides when they are).
const UNTIL_BACK: HoldPolicy = HoldPolicy {
    fraction: 1e9,
    cap: Duration::from_secs(600),
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_of_the_clients_compute_while_the_other_half_returns_so_neither_a_runt_batch_nor_an_idle_device()
 {
    let (batcher, started, gate) = gated(8, UNTIL_BACK);
    // Four clients: one finds the device idle and runs, three queue behind it.
    let mut first = queue_up(&batcher, &["a"]);
    assert_eq!(next_call(&started), strings(&["a"]));
    let queued = queue_up(&batcher, &["b", "c", "d"]);
    gate.send(()).unwrap();
    assert_eq!(first.pop().unwrap().await.unwrap().batch_size, 1);
    // Three of the four clients are queued, more than their half: they go at once, without
    // waiting for "a"'s client (which makes its round trip meanwhile).
    assert_eq!(next_call(&started), strings(&["b", "c", "d"]));
    let mut back = queue_up(&batcher, &["a2"]);
    gate.send(()).unwrap();
    for f in queued {
        assert_eq!(f.await.unwrap().batch_size, 3);
    }
    // One of four is back: a batch of one would cost nearly as much as a batch of two, so
    // the hold waits for the second of the half...
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        started.try_recv().is_err(),
        "a lone returning client of four ran on its own"
    );
    back.extend(queue_up(&batcher, &["b2"]));
    // ...and the half goes the moment it is there, before the other two are back.
    assert_eq!(next_call(&started), strings(&["a2", "b2"]));
    gate.send(()).unwrap();
    for f in back {
        assert_eq!(f.await.unwrap().batch_size, 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_client_is_never_held() {
    // Were its requests held, they would wait the policy's 600 s and `next_call` gives up.
    let (batcher, started, gate) = gated(8, UNTIL_BACK);
    for text in ["x1", "x2", "x3"] {
        let mut one = queue_up(&batcher, &[text]);
        assert_eq!(next_call(&started), strings(&[text]));
        gate.send(()).unwrap();
        assert_eq!(one.pop().unwrap().await.unwrap().batch_size, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_ends_at_its_cap_when_fewer_clients_come_back() {
    let policy = HoldPolicy {
        fraction: 1e9,
        cap: Duration::from_millis(20),
    };
    let (batcher, started, gate) = gated(8, policy);
    let mut first = queue_up(&batcher, &["a"]);
    assert_eq!(next_call(&started), strings(&["a"]));
    let mut queued = queue_up(&batcher, &["bb"]);
    gate.send(()).unwrap();
    first.pop().unwrap().await.unwrap();
    // "a"'s client does not come back: "bb" goes once the hold runs out.
    assert_eq!(next_call(&started), strings(&["bb"]));
    gate.send(()).unwrap();
    assert_eq!(queued.pop().unwrap().await.unwrap().batch_size, 1);
}

#[test]
fn the_hold_is_a_fraction_of_the_batch_run_time_capped_and_expects_the_groups_share() {
    let t0 = Instant::now();
    let policy = HoldPolicy::DEFAULT;
    // 16 answered, 16 queued behind them, a 40 ms batch, a share of 24: wait ≤ 6 ms for 24.
    let h = policy.after(16, 16, 24, Duration::from_millis(40), t0);
    assert_eq!(h.expected, 24);
    let ms = |t: Instant| t.duration_since(t0).as_secs_f64() * 1e3;
    assert!((ms(h.until) - 6.0).abs() < 1e-3, "{}", ms(h.until));
    assert!(h.holds(16, 16, 32, t0));
    assert!(!h.holds(24, 24, 32, t0), "the share is back");
    assert!(!h.holds(20, 32, 32, t0), "a full batch is queued");
    assert!(!h.holds(16, 16, 32, h.until), "the hold ran out");
    // Never more than were queued plus answered.
    assert_eq!(
        policy
            .after(2, 1, 16, Duration::from_millis(40), t0)
            .expected,
        3
    );
    // A long batch: the cap.
    let long = policy.after(1, 0, 1, Duration::from_secs(2), t0);
    assert!((ms(long.until) - 15.0).abs() < 1e-3, "{}", ms(long.until));
    // A lone client: it is its own expected return.
    let lone = policy.after(1, 0, 1, Duration::from_millis(6), t0);
    assert!(!lone.holds(1, 1, 32, t0));
    // No hold at all.
    let none = HoldPolicy::NONE.after(16, 16, 24, Duration::from_millis(40), t0);
    assert!(!none.holds(16, 16, 32, t0));
}

#[tokio::test]
async fn a_full_queue_refuses_instead_of_growing() {
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let worker = ModelWorker::spawn(Box::new(Recorder(spec(1), calls)), 1);
    let batcher = Batcher::spawn(worker, 1);
    let mut results = Vec::new();
    let futs: Vec<_> = (0..20).map(|_| batcher.submit(vec!["a".into()])).collect();
    for r in futures_join(futs).await {
        results.push(r);
    }
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(BackendError::QueueFull(_)))),
        "some requests shed"
    );
    assert!(results.iter().any(|r| r.is_ok()), "some requests served");
    assert!(batcher.submit(vec![]).await.is_err(), "empty input refused");
}

async fn futures_join<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    let mut pinned: Vec<_> = futs.into_iter().map(Box::pin).collect();
    // Submit all first (try_send happens on first poll), then await in order.
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut done: Vec<Option<F::Output>> = pinned
        .iter_mut()
        .map(|f| match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
        .collect();
    for (i, f) in pinned.into_iter().enumerate() {
        match done[i].take() {
            Some(v) => out.push(v),
            None => out.push(f.await),
        }
    }
    out
}

#[test]
fn a_free_stream_waits_for_its_groups_share_of_the_clients_but_never_for_more_than_can_come() {
    // 32 closed-loop clients, one stream: two groups of 16, one computing, one returning.
    assert_eq!(group_share(32, 0, 1, 32), 16);
    // Two streams: three groups of 11 (two computing, one returning).
    assert_eq!(group_share(32, 11, 2, 32), 11);
    // Uneven cohorts (22 running): only 10 can come, so 10 is the share.
    assert_eq!(group_share(32, 22, 2, 32), 10);
    // Never more than a batch, never less than one request.
    assert_eq!(group_share(200, 0, 2, 32), 32);
    assert_eq!(group_share(0, 0, 2, 32), 1);
    // A light load: one or two clients go at once.
    assert_eq!(group_share(1, 0, 1, 32), 1);
    assert_eq!(group_share(2, 0, 1, 32), 1);
    assert_eq!(group_share(3, 0, 3, 8), 1);
}

#[test]
fn a_lone_request_on_an_idle_device_runs_wide_and_everything_else_on_the_streams() {
    assert_eq!(lane(true, 0, 0, 1, 1), Lane::Wide);
    assert_eq!(lane(true, 0, 0, 1, 0), Lane::Wide, "the first request");
    assert_eq!(lane(true, 1, 0, 1, 1), Lane::Streams, "a batch is running");
    assert_eq!(lane(true, 0, 1, 1, 2), Lane::Streams, "another is queued");
    assert_eq!(
        lane(true, 0, 0, 2, 2),
        Lane::Streams,
        "a batch of two requests"
    );
    assert_eq!(
        lane(true, 0, 0, 1, 2),
        Lane::Streams,
        "another client comes back"
    );
    assert_eq!(lane(false, 0, 0, 1, 1), Lane::Streams, "no wide instance");
}

/// Embeds every text as `[id]` after a short sleep, noting when each call ran.
struct Timeline {
    spec: ModelSpec,
    id: f32,
    calls: std::sync::Arc<std::sync::Mutex<Vec<(f32, Instant, Instant)>>>,
}

impl LoadedModel for Timeline {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }
    fn precision(&self) -> switchyard_backend_core::Precision {
        switchyard_backend_core::Precision::F32
    }
    fn embed(&mut self, inputs: &[String]) -> Result<EmbedOutput, BackendError> {
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(3));
        self.calls
            .lock()
            .unwrap()
            .push((self.id, start, Instant::now()));
        Ok(EmbedOutput {
            vectors: inputs.iter().map(|_| vec![self.id]).collect(),
            token_counts: inputs.iter().map(|_| 1).collect(),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wide_instance_answers_a_lone_client_and_never_runs_beside_a_stream() {
    const WIDE: f32 = 9.0;
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let instance = |id| -> Box<dyn LoadedModel> {
        Box::new(Timeline {
            spec: spec(8),
            id,
            calls: calls.clone(),
        })
    };
    let worker =
        ModelWorker::spawn_lanes(vec![instance(0.0), instance(1.0)], Some(instance(WIDE)), 64);
    let batcher = Batcher::spawn(worker, 64);
    let ran_on = |r: BatchReply| match r.output {
        BatchOutput::Embed { vectors, .. } => vectors[0][0],
        _ => panic!("embed output"),
    };
    // A lone client, one request at a time: the wide instance every time.
    for _ in 0..3 {
        let r = batcher.submit(vec!["x".into()]).await.unwrap();
        assert_eq!(ran_on(r), WIDE);
    }
    // Twelve clients at once, three rounds: the streams take the load.
    let mut lanes = Vec::new();
    for _ in 0..3 {
        let replies =
            futures_join((0..12).map(|_| batcher.submit(vec!["y".into()])).collect()).await;
        lanes.extend(replies.into_iter().map(|r| ran_on(r.unwrap())));
    }
    assert!(
        lanes.iter().any(|&l| l != WIDE),
        "the streams served the load: {lanes:?}"
    );
    // The wide instance never overlapped a stream's call.
    let calls = calls.lock().unwrap().clone();
    for &(_, ws, we) in calls.iter().filter(|c| c.0 == WIDE) {
        for &(id, s, e) in calls.iter().filter(|c| c.0 != WIDE) {
            assert!(
                e <= ws || s >= we,
                "stream {id} ran beside the wide instance"
            );
        }
    }
}
