//! A fake [`Inference`] for the API layer's own unit tests (request validation, shapes, SSE
//! framing, auth, limits, error mapping). It never stands in for the pipeline elsewhere.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::{
    AddDocumentsRequest, AddDocumentsResponse, Candidate, ClassifyRequest, ClassifyResponse,
    DeleteDocumentRequest, DeleteDocumentResponse, DocumentStoreInfoResponse, EmbedRequest,
    EmbedResponse, Embedding, GenerateChunk, GenerateRequest, GetDocumentResponse,
    ListDocumentsRequest, ListDocumentsResponse, ModelPlacement, ModelStatus, PipelineRequest,
    PipelineResponse, RetrievedChunk, SearchDocumentsRequest, SearchDocumentsResponse,
    StageExplanation, StageKind, StageTrace,
};

use crate::inference::{ApiError, GenerateStream, Inference, KeepAlive};

mod documents;

/// What the fake saw last.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub generate: Option<GenerateRequest>,
    pub pipeline: Option<PipelineRequest>,
    pub embed: Option<EmbedRequest>,
    /// Time left until the deadline when the last call arrived.
    pub budget: Option<Duration>,
    /// Every keep-alive set, in order.
    pub keep_alive: Vec<(String, KeepAlive)>,
    /// Every model preloaded, in order.
    pub preloaded: Vec<String>,
}

/// Models: `minilm` (embed), `router` (classify, pinned), `smollm2` (generate, tier fast;
/// `auto` resolves to it). Special models: `slow` never answers, `full` is
/// ResourceExhausted, `broken` fails after one chunk.
pub struct Fake {
    pub ready: AtomicBool,
    pub seen: Mutex<Seen>,
    docs: documents::FakeDocs,
}

impl Default for Fake {
    fn default() -> Self {
        Fake::new()
    }
}

impl Fake {
    pub fn new() -> Fake {
        Fake {
            ready: AtomicBool::new(true),
            seen: Mutex::new(Seen::default()),
            docs: documents::FakeDocs::default(),
        }
    }

    fn note(&self, deadline: Instant, f: impl FnOnce(&mut Seen)) {
        let mut s = self.seen.lock().expect("lock");
        s.budget = Some(deadline.saturating_duration_since(Instant::now()));
        f(&mut s);
    }
}

fn trace(stage: StageKind, model: &str) -> StageTrace {
    StageTrace {
        stage: stage as i32,
        model: model.into(),
        node: "node-a".into(),
        device_id: "cpu0".into(),
        backend: "ort-cpu".into(),
        queue_ms: 0.25,
        compute_ms: 1.5,
        retries: 0,
        batch_size: 1,
        simulated: false,
        precision: "f32".into(),
        load_ms: 0.0,
        engine_device: String::new(),
        retrieved: Vec::new(),
    }
}

fn unknown(model: &str) -> ApiError {
    ApiError::new(ErrorClass::NotFound, format!("unknown model '{model}'"))
}

async fn special(model: &str) -> Result<(), ApiError> {
    match model {
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
        "full" => Err(ApiError::new(ErrorClass::ResourceExhausted, "queue full")),
        _ => Ok(()),
    }
}

/// A deterministic 4-dimensional embedding: letter-class counts, L2-normalised.
pub fn fake_vector(text: &str) -> Vec<f32> {
    let mut v = [0f32; 4];
    for c in text.chars() {
        let i = match c {
            'a'..='f' => 0,
            'g'..='m' => 1,
            'n'..='s' => 2,
            _ => 3,
        };
        v[i] += 1.0;
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.iter().map(|x| x / n).collect()
}

#[tonic::async_trait]
impl Inference for Fake {
    async fn list_models(&self) -> Vec<ModelStatus> {
        let placed = vec![ModelPlacement {
            node: "node-a".into(),
            device_id: "cpu0".into(),
            backend: "ort-cpu".into(),
            device_kind: switchyard_proto::v1::DeviceKind::Cpu as i32,
            expires_in_ms: 60_000,
            layout: String::new(),
        }];
        vec![
            ModelStatus {
                name: "minilm".into(),
                stage: StageKind::Embed as i32,
                tier: String::new(),
                memory_bytes: 23_000_000,
                loaded_on: placed.clone(),
                embedding_dim: 4,
                format: "onnx".into(),
                ..Default::default()
            },
            ModelStatus {
                name: "smollm2".into(),
                stage: StageKind::Generate as i32,
                tier: "fast".into(),
                memory_bytes: 270_000_000,
                context_tokens: 2048,
                format: "onnx".into(),
                ..Default::default()
            },
            ModelStatus {
                name: "router".into(),
                stage: StageKind::Classify as i32,
                memory_bytes: 60_000_000,
                ..Default::default()
            },
        ]
    }

    async fn embed(&self, req: EmbedRequest, deadline: Instant) -> Result<EmbedResponse, ApiError> {
        self.note(deadline, |s| s.embed = Some(req.clone()));
        special(&req.model).await?;
        if req.model != "minilm" {
            return Err(unknown(&req.model));
        }
        Ok(EmbedResponse {
            embeddings: req
                .inputs
                .iter()
                .map(|t| Embedding {
                    values: fake_vector(t),
                })
                .collect(),
            prompt_tokens: req
                .inputs
                .iter()
                .map(|t| t.split_whitespace().count() as u32 + 2)
                .sum(),
            trace: Some(trace(StageKind::Embed, "minilm")),
        })
    }

    async fn classify(
        &self,
        req: ClassifyRequest,
        deadline: Instant,
    ) -> Result<ClassifyResponse, ApiError> {
        self.note(deadline, |_| {});
        special(&req.model).await?;
        if req.model != "router" {
            return Err(unknown(&req.model));
        }
        Ok(ClassifyResponse {
            classifications: req
                .inputs
                .iter()
                .map(|_| switchyard_proto::v1::Classification {
                    label: "fast".into(),
                    score: 0.9,
                    probabilities: vec![0.9, 0.05, 0.05],
                    labels: vec!["fast".into(), "code".into(), "heavy".into()],
                })
                .collect(),
            trace: Some(trace(StageKind::Classify, "router")),
        })
    }

    async fn generate(
        &self,
        req: GenerateRequest,
        deadline: Instant,
    ) -> Result<GenerateStream, ApiError> {
        self.note(deadline, |s| s.generate = Some(req.clone()));
        special(&req.model).await?;
        let model = match req.model.as_str() {
            "auto" | "smollm2" | "broken" => "smollm2",
            other => return Err(unknown(other)),
        };
        let broken = req.model == "broken";
        let prompt = req
            .messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(|m| m.content.clone())
            .unwrap_or_default();
        let sampling = req.sampling.unwrap_or_default();
        let limit = if sampling.max_tokens == 0 {
            16
        } else {
            sampling.max_tokens
        } as usize;
        let words: Vec<String> = std::iter::once("echo:".to_string())
            .chain(prompt.split_whitespace().map(str::to_string))
            .collect();
        let n = words.len().min(limit);
        let finish = if words.len() > limit {
            "length"
        } else {
            "stop"
        };
        let prompt_tokens = prompt.split_whitespace().count() as u32 + 3;
        let mut chunks: Vec<Result<GenerateChunk, ApiError>> = words[..n]
            .iter()
            .enumerate()
            .map(|(i, w)| {
                Ok(GenerateChunk {
                    text: if i == 0 { w.clone() } else { format!(" {w}") },
                    finish_reason: None,
                    prompt_tokens,
                    completion_tokens: i as u32 + 1,
                    trace: None,
                    ..Default::default()
                })
            })
            .collect();
        if broken {
            chunks.truncate(1);
            chunks.push(Err(ApiError::new(ErrorClass::Unavailable, "device lost")));
        } else {
            chunks.push(Ok(GenerateChunk {
                text: String::new(),
                finish_reason: Some(finish.into()),
                prompt_tokens,
                completion_tokens: n as u32,
                trace: Some(trace(StageKind::Generate, model)),
                ..Default::default()
            }));
        }
        Ok(Box::pin(futures::stream::iter(chunks)))
    }

    async fn run_pipeline(
        &self,
        req: PipelineRequest,
        deadline: Instant,
    ) -> Result<PipelineResponse, ApiError> {
        self.note(deadline, |s| s.pipeline = Some(req.clone()));
        if req.explain_only {
            return Ok(PipelineResponse {
                explanation: vec![StageExplanation {
                    stage: StageKind::Generate as i32,
                    model: "smollm2".into(),
                    candidates: vec![
                        Candidate {
                            node: "node-a".into(),
                            device_id: "cpu0".into(),
                            backend: "ort-cpu".into(),
                            score: 1.0,
                            filtered_reason: String::new(),
                            score_detail: "resident".into(),
                        },
                        Candidate {
                            node: "node-b".into(),
                            device_id: "gpu0".into(),
                            backend: "ort-cuda".into(),
                            score: 0.0,
                            filtered_reason: "node lost".into(),
                            score_detail: String::new(),
                        },
                    ],
                }],
                ..Default::default()
            });
        }
        let mut traces = vec![trace(StageKind::Classify, "router")];
        let mut context = Vec::new();
        let mut retrieved = Vec::new();
        if req.retrieve {
            let chunk = RetrievedChunk {
                document_id: 100,
                chunk: 0,
                score: 0.5,
                text: "a document".into(),
                source: "a.md".into(),
                collection: "default".into(),
            };
            let mut t = trace(StageKind::Embed, "minilm");
            t.retrieved = vec![RetrievedChunk {
                text: String::new(),
                ..chunk.clone()
            }];
            traces.push(t);
            context.push(chunk.text.clone());
            retrieved.push(chunk);
        }
        traces.push(trace(StageKind::Generate, "smollm2"));
        Ok(PipelineResponse {
            tier: "fast".into(),
            model: "smollm2".into(),
            text: format!("answer to {}", req.prompt),
            trace: traces,
            context_documents: context,
            explanation: Vec::new(),
            prompt_tokens: 7,
            completion_tokens: 3,
            retrieved,
        })
    }

    async fn add_documents(
        &self,
        req: AddDocumentsRequest,
        deadline: Instant,
    ) -> Result<AddDocumentsResponse, ApiError> {
        self.note(deadline, |_| {});
        self.docs.add(req)
    }

    async fn list_documents(
        &self,
        req: ListDocumentsRequest,
    ) -> Result<ListDocumentsResponse, ApiError> {
        self.docs.list(req)
    }

    async fn get_document(&self, id: u64) -> Result<GetDocumentResponse, ApiError> {
        self.docs.get(id)
    }

    async fn delete_document(
        &self,
        req: DeleteDocumentRequest,
    ) -> Result<DeleteDocumentResponse, ApiError> {
        self.docs.delete(req)
    }

    async fn search_documents(
        &self,
        req: SearchDocumentsRequest,
        deadline: Instant,
    ) -> Result<SearchDocumentsResponse, ApiError> {
        self.note(deadline, |_| {});
        self.docs.search(req)
    }

    async fn document_store_info(&self) -> Result<DocumentStoreInfoResponse, ApiError> {
        Ok(self.docs.info())
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    fn check_keep_alive(&self, model: &str, keep: KeepAlive) -> Result<(), ApiError> {
        match model {
            "router" if keep == KeepAlive::Unload => Err(ApiError::new(
                ErrorClass::InvalidArgument,
                "keep_alive 0 cannot unload model 'router': it is pinned",
            )
            .with_param("keep_alive")),
            "auto" | "minilm" | "router" | "smollm2" | "broken" | "slow" | "full" => Ok(()),
            other => Err(unknown(other)),
        }
    }

    fn set_keep_alive(&self, model: &str, keep: KeepAlive) -> Result<(), ApiError> {
        self.check_keep_alive(model, keep)?;
        let mut s = self.seen.lock().expect("lock");
        s.keep_alive.push((model.to_string(), keep));
        Ok(())
    }

    async fn preload(&self, model: &str, deadline: Instant) -> Result<(), ApiError> {
        self.check_keep_alive(model, KeepAlive::Default)?;
        self.note(deadline, |s| s.preloaded.push(model.to_string()));
        Ok(())
    }
}
