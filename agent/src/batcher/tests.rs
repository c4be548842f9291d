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
        precision: Default::default(),
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
    gate: std::sync::Mutex<std_mpsc::Receiver<()>>,
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
        gate: std::sync::Mutex::new(gate_rx),
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

    // They go together as the next batch, the moment the first one is done.
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
