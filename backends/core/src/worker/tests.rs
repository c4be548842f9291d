use super::*;
use crate::{OverflowPolicy, StageKind};

/// A deterministic in-memory model: embeds a text as `[len, 1]` normalised.
struct LengthModel(ModelSpec);

impl LoadedModel for LengthModel {
    fn spec(&self) -> &ModelSpec {
        &self.0
    }
    fn precision(&self) -> crate::Precision {
        crate::Precision::F32
    }
    fn embed(&mut self, inputs: &[String]) -> Result<EmbedOutput, BackendError> {
        if inputs.iter().any(|s| s.is_empty()) {
            return Err(BackendError::InvalidInput("empty".into()));
        }
        Ok(EmbedOutput {
            vectors: inputs.iter().map(|s| vec![s.len() as f32, 1.0]).collect(),
            token_counts: inputs.iter().map(|s| s.len() as u32).collect(),
        })
    }
}

fn spec() -> ModelSpec {
    ModelSpec {
        name: "len".into(),
        stage: StageKind::Embed,
        onnx: "x".into(),
        tokenizer: "y".into(),
        sha256: None,
        memory_bytes: 1,
        max_input_tokens: 8,
        overflow: OverflowPolicy::Truncate,
        labels: vec![],
        embedding_dim: Some(2),
        tier: None,
        context_tokens: None,
        chat_template: None,
        system_prompt: None,
        stop_tokens: vec![],
        max_batch: 4,
        streams: None,
        precision: Default::default(),
        also_at: Vec::new(),
        backends: vec![],
        engine: None,
        info: Default::default(),
    }
}

#[tokio::test]
async fn runs_jobs_and_reports_errors_and_wrong_stage() {
    let w = ModelWorker::spawn(Box::new(LengthModel(spec())), 4);
    let out = w.embed(vec!["abc".into(), "de".into()]).await.unwrap();
    assert_eq!(out.value.vectors, vec![vec![3.0, 1.0], vec![2.0, 1.0]]);
    assert!(out.compute_ms >= 0.0 && out.queue_ms >= 0.0);
    let err = w.embed(vec![String::new()]).await.unwrap_err();
    assert!(matches!(err, BackendError::InvalidInput(_)));
    let err = w.classify(vec!["x".into()]).await.unwrap_err();
    assert!(matches!(err, BackendError::WrongStage { .. }), "{err}");
    assert_eq!(w.in_flight(), 0);
}

/// Records, for every `model_job` span, the name of its parent span.
struct ParentOfJobs(Arc<std::sync::Mutex<Vec<Option<String>>>>);

impl<S> tracing_subscriber::Layer<S> for ParentOfJobs
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() == "model_job" {
            let parent = ctx
                .span(id)
                .and_then(|s| s.parent())
                .map(|p| p.name().to_string());
            self.0.lock().unwrap().push(parent);
        }
    }
}

#[tokio::test]
async fn the_model_thread_works_under_the_callers_span() {
    use tracing::Instrument;
    use tracing_subscriber::layer::SubscriberExt;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(ParentOfJobs(seen.clone()));
    // The model thread is another OS thread: only a global subscriber reaches it.
    tracing::subscriber::set_global_default(subscriber).expect("first global subscriber");
    let w = ModelWorker::spawn(Box::new(LengthModel(spec())), 4);
    w.embed(vec!["abc".into()])
        .instrument(tracing::info_span!("stage"))
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![Some("stage".to_string())]);
}

/// Embeds only once `peers` calls are inside `embed` at the same moment (each waits for the
/// others, and gives up with an error after a minute): it proves that calls run side by side.
struct Rendezvous {
    spec: ModelSpec,
    inside: Arc<(std::sync::Mutex<usize>, std::sync::Condvar)>,
    peers: usize,
}

impl LoadedModel for Rendezvous {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }
    fn precision(&self) -> crate::Precision {
        crate::Precision::F32
    }
    fn embed(&mut self, inputs: &[String]) -> Result<EmbedOutput, BackendError> {
        let (count, cv) = &*self.inside;
        let mut n = count.lock().unwrap();
        *n += 1;
        cv.notify_all();
        let (n, wait) = cv
            .wait_timeout_while(n, std::time::Duration::from_secs(60), |n| *n < self.peers)
            .unwrap();
        if wait.timed_out() {
            return Err(BackendError::Inference(format!(
                "only {} of {} calls ever ran at once",
                *n, self.peers
            )));
        }
        Ok(EmbedOutput {
            vectors: inputs.iter().map(|_| vec![1.0]).collect(),
            token_counts: inputs.iter().map(|_| 1).collect(),
        })
    }
}

// The jobs run on the model threads: a current-thread runtime only waits for them.
#[tokio::test]
async fn two_streams_run_two_jobs_at_once_from_one_queue() {
    let inside = Arc::new((std::sync::Mutex::new(0), std::sync::Condvar::new()));
    let streams: Vec<Box<dyn LoadedModel>> = (0..2)
        .map(|_| {
            Box::new(Rendezvous {
                spec: spec(),
                inside: inside.clone(),
                peers: 2,
            }) as Box<dyn LoadedModel>
        })
        .collect();
    let w = ModelWorker::spawn_streams(streams, 4);
    assert_eq!(w.streams(), 2);
    // Each job returns only while the other one runs too: on one thread the first would
    // wait for the second forever (here: fail after a minute).
    let (a, b) = tokio::join!(w.embed(vec!["a".into()]), w.embed(vec!["b".into()]));
    assert_eq!(a.unwrap().value.vectors, vec![vec![1.0]]);
    assert_eq!(b.unwrap().value.vectors, vec![vec![1.0]]);
    assert_eq!(*inside.0.lock().unwrap(), 2);
}

#[tokio::test]
async fn one_instance_is_one_stream() {
    let w = ModelWorker::spawn(Box::new(LengthModel(spec())), 4);
    assert_eq!(w.streams(), 1);
}

/// Embeds every text as `[id]`: which instance ran the job.
struct Tagged(ModelSpec, f32);

impl LoadedModel for Tagged {
    fn spec(&self) -> &ModelSpec {
        &self.0
    }
    fn precision(&self) -> crate::Precision {
        crate::Precision::F32
    }
    fn embed(&mut self, inputs: &[String]) -> Result<EmbedOutput, BackendError> {
        Ok(EmbedOutput {
            vectors: inputs.iter().map(|_| vec![self.1]).collect(),
            token_counts: inputs.iter().map(|_| 1).collect(),
        })
    }
}

async fn ran_on(w: &ModelWorker, lane: Lane) -> f32 {
    w.embed_on(lane, vec!["x".into()])
        .await
        .unwrap()
        .value
        .vectors[0][0]
}

#[tokio::test]
async fn a_wide_job_runs_on_the_wide_instance_and_a_stream_job_on_a_stream() {
    let w = ModelWorker::spawn_lanes(
        vec![Box::new(Tagged(spec(), 0.0)), Box::new(Tagged(spec(), 1.0))],
        Some(Box::new(Tagged(spec(), 9.0))),
        8,
    );
    assert!(w.has_wide());
    assert_eq!(w.streams(), 2, "the wide instance is not a stream");
    for _ in 0..4 {
        assert_eq!(ran_on(&w, Lane::Wide).await, 9.0);
        assert!([0.0, 1.0].contains(&ran_on(&w, Lane::Streams).await));
    }
    // Without a wide instance, a wide job runs on a stream.
    let plain = ModelWorker::spawn_streams(vec![Box::new(Tagged(spec(), 0.0))], 8);
    assert!(!plain.has_wide());
    assert_eq!(ran_on(&plain, Lane::Wide).await, 0.0);
}
