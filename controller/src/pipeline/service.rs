//! [`PipelineService`]: the pipeline as the client-facing [`Inference`] contract that the
//! HTTP and gRPC APIs serve.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use switchyard_api::console::{RecentRequests, Recording, Route};
use switchyard_api::{ApiError, GenerateStream, Inference, KeepAlive};
use switchyard_backend_core::{ModelSpec, StageKind};
use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::{
    AddDocumentsRequest, AddDocumentsResponse, ChatMessage, ClassifyRequest, ClassifyResponse,
    DeleteDocumentRequest, DeleteDocumentResponse, DocumentStoreInfoResponse, EmbedRequest,
    EmbedResponse, GenerateRequest, GetDocumentResponse, ListDocumentsRequest,
    ListDocumentsResponse, LoadModelRequest, ModelStatus, PipelineRequest, PipelineResponse,
    SearchDocumentsRequest, SearchDocumentsResponse,
};
use tokio_stream::StreamExt;

use super::Pipeline;
use super::prompt::{last_user_message, system_message};
use super::retrieval::{chat_retrieval, with_context};

/// Handle implementing [`Inference`] (the pipeline is shared behind an `Arc`).
#[derive(Debug, Clone)]
pub struct PipelineService(pub Arc<Pipeline>);

impl PipelineService {
    /// The registry entry of `model` (or an attached engine's model), whatever its stage,
    /// or `NotFound`.
    fn known(&self, model: &str) -> Result<Cow<'_, ModelSpec>, ApiError> {
        let stage = self
            .0
            .models()
            .get(model)
            .map_or(StageKind::Generate, |s| s.stage);
        self.0.placer.spec(model, stage)
    }

    /// A chat: route, retrieve if asked, generate; notes the route in `rec`.
    async fn chat(
        &self,
        req: GenerateRequest,
        deadline: Instant,
        rec: &mut Recording,
    ) -> Result<GenerateStream, ApiError> {
        if req.messages.is_empty() {
            return Err(
                ApiError::new(ErrorClass::InvalidArgument, "messages must not be empty")
                    .with_param("messages"),
            );
        }
        let mut traces = Vec::new();
        let prompt = last_user_message(&req.messages);
        let (requested, retrieval) = chat_retrieval(&req.model, req.retrieval);
        let (model, tier) = self
            .0
            .choose_generator(&requested, &prompt, deadline, &mut traces)
            .await?;
        let r = rec.record();
        (r.model, r.tier, r.trace) = (model.clone(), tier.to_string(), traces);
        let retrieval = retrieval
            .or_else(|| self.0.tier_retrieves(&tier).then(Default::default))
            .filter(|r| !r.off);
        let Some(r) = retrieval else {
            return self.0.generate_stream(
                model,
                req.messages,
                req.sampling.unwrap_or_default(),
                req.engine_options,
                deadline,
            );
        };
        let chunks = self.0.chat_context(&r, &prompt, deadline).await?;
        let stream = self.0.generate_stream(
            model,
            with_context(req.messages, &chunks),
            req.sampling.unwrap_or_default(),
            req.engine_options,
            deadline,
        )?;
        // The sources (not their text) come back on the last chunk.
        let sources: Vec<_> = chunks
            .into_iter()
            .map(|c| switchyard_proto::v1::RetrievedChunk {
                text: String::new(),
                ..c
            })
            .collect();
        Ok(Box::pin(stream.map(move |c| {
            c.map(|mut c| {
                if c.finish_reason.is_some() {
                    c.sources = sources.clone();
                    c.retrieval = true;
                }
                c
            })
        })))
    }

    /// A pipeline request: classify, retrieve if asked, generate, collect.
    async fn pipeline(
        &self,
        req: PipelineRequest,
        deadline: Instant,
    ) -> Result<PipelineResponse, ApiError> {
        if req.prompt.trim().is_empty() {
            return Err(
                ApiError::new(ErrorClass::InvalidArgument, "prompt must not be empty")
                    .with_param("prompt"),
            );
        }
        let p = &self.0;
        if req.explain_only {
            return Ok(PipelineResponse {
                explanation: p.explain(),
                ..Default::default()
            });
        }
        let mut traces = Vec::new();
        let (model, tier) = p
            .choose_generator("auto", &req.prompt, deadline, &mut traces)
            .await?;
        let cfg = p.documents().config();
        let top_k = if req.top_k == 0 { cfg.top_k } else { req.top_k } as usize;
        let min_score = req.min_score.unwrap_or(cfg.min_score);
        let mut retrieved = Vec::new();
        if req.retrieve {
            // The default collection may not exist yet: then there is no context. A named
            // one must exist.
            let collection = super::retrieval::collection_name(&req.collection);
            let optional = req.collection.is_empty();
            if let Some((chunks, trace)) = p
                .search(
                    &collection,
                    &req.prompt,
                    top_k,
                    min_score,
                    optional,
                    deadline,
                )
                .await?
            {
                traces.push(trace);
                retrieved = chunks;
            }
        }
        let context: Vec<String> = retrieved.iter().map(|c| c.text.clone()).collect();
        let system_prompt = p.models().get(&model).and_then(|s| s.system_prompt.clone());
        let mut messages: Vec<ChatMessage> = system_message(system_prompt.as_deref(), &context)
            .into_iter()
            .collect();
        messages.push(ChatMessage {
            role: "user".into(),
            content: req.prompt.clone(),
            ..Default::default()
        });
        let mut stream = p.generate_stream(
            model.clone(),
            messages,
            req.sampling.unwrap_or_default(),
            None,
            deadline,
        )?;
        let mut text = String::new();
        let mut out = PipelineResponse {
            tier: tier.as_str().to_string(),
            model,
            context_documents: context,
            retrieved,
            ..Default::default()
        };
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            text.push_str(&chunk.text);
            if chunk.finish_reason.is_some() {
                out.prompt_tokens = chunk.prompt_tokens;
                out.completion_tokens = chunk.completion_tokens;
                traces.extend(chunk.trace);
            }
        }
        out.text = text;
        out.trace = traces;
        Ok(out)
    }
}

/// Ends the recording of a chat when its stream ends: completed at the chunk with a finish
/// reason, failed at an error, abandoned when the stream is dropped before either.
fn recorded(stream: GenerateStream, rec: Recording, recent: Arc<RecentRequests>) -> GenerateStream {
    struct Guard(Option<Recording>, Arc<RecentRequests>);
    impl Guard {
        fn finish(&mut self, outcome: Result<(), String>) {
            if let Some(r) = self.0.take() {
                self.1.finish(r, outcome);
            }
        }
    }
    impl Drop for Guard {
        fn drop(&mut self) {
            self.finish(Err(
                "ended before the answer was complete (the client went away)".into(),
            ));
        }
    }
    let mut guard = Guard(Some(rec), recent);
    let mut generate_trace = None;
    Box::pin(stream.map(move |item| {
        match &item {
            Ok(c) => {
                if c.trace.is_some() {
                    generate_trace = c.trace.clone();
                }
                if c.finish_reason.is_some() {
                    if let Some(r) = guard.0.as_mut().map(Recording::record) {
                        r.completion_tokens = c.completion_tokens;
                        r.trace.extend(generate_trace.take());
                    }
                    guard.finish(Ok(()));
                }
            }
            Err(e) => guard.finish(Err(e.message.clone())),
        }
        item
    }))
}

impl switchyard_api::console::ConsoleSource for PipelineService {
    fn nodes(&self) -> Vec<switchyard_proto::v1::NodeStatus> {
        self.0.cluster().snapshot()
    }

    fn resident(&self) -> Vec<(String, switchyard_proto::v1::ResidentModel)> {
        self.0.cluster().resident()
    }

    fn recent_requests(&self) -> Vec<switchyard_api::console::RequestRecord> {
        self.0.recent.snapshot()
    }
}

#[tonic::async_trait]
impl Inference for PipelineService {
    async fn list_models(&self) -> Vec<ModelStatus> {
        crate::cluster::cluster_service::model_statuses(
            self.0.cluster(),
            self.0.placer.model_set(),
            &self.0.keep_alives,
        )
    }

    async fn embed(&self, req: EmbedRequest, deadline: Instant) -> Result<EmbedResponse, ApiError> {
        let resp = self
            .0
            .run_batch(StageKind::Embed, &req.model, req.inputs, deadline)
            .await?;
        Ok(EmbedResponse {
            prompt_tokens: resp.input_tokens.iter().sum(),
            embeddings: resp.embeddings,
            trace: resp.trace,
        })
    }

    async fn classify(
        &self,
        req: ClassifyRequest,
        deadline: Instant,
    ) -> Result<ClassifyResponse, ApiError> {
        let resp = self
            .0
            .run_batch(StageKind::Classify, &req.model, req.inputs, deadline)
            .await?;
        Ok(ClassifyResponse {
            classifications: resp.classifications,
            trace: resp.trace,
        })
    }

    async fn generate(
        &self,
        req: GenerateRequest,
        deadline: Instant,
    ) -> Result<GenerateStream, ApiError> {
        let recent = self.0.recent.clone();
        let mut rec = recent.start(Route::Chat);
        match self.chat(req, deadline, &mut rec).await {
            Ok(stream) => Ok(recorded(stream, rec, recent)),
            Err(e) => {
                recent.finish(rec, Err(e.message.clone()));
                Err(e)
            }
        }
    }

    async fn run_pipeline(
        &self,
        req: PipelineRequest,
        deadline: Instant,
    ) -> Result<PipelineResponse, ApiError> {
        if req.explain_only {
            return self.pipeline(req, deadline).await;
        }
        let mut rec = self.0.recent.start(Route::Pipeline);
        let result = self.pipeline(req, deadline).await;
        let outcome = match &result {
            Ok(out) => {
                let r = rec.record();
                (r.model, r.tier, r.trace) =
                    (out.model.clone(), out.tier.clone(), out.trace.clone());
                r.completion_tokens = out.completion_tokens;
                Ok(())
            }
            Err(e) => Err(e.message.clone()),
        };
        self.0.recent.finish(rec, outcome);
        result
    }

    async fn add_documents(
        &self,
        req: AddDocumentsRequest,
        deadline: Instant,
    ) -> Result<AddDocumentsResponse, ApiError> {
        self.0.add_documents(req, deadline).await
    }

    async fn list_documents(
        &self,
        req: ListDocumentsRequest,
    ) -> Result<ListDocumentsResponse, ApiError> {
        self.0.list_documents(req).await
    }

    async fn get_document(&self, id: u64) -> Result<GetDocumentResponse, ApiError> {
        self.0.get_document(id).await
    }

    async fn delete_document(
        &self,
        req: DeleteDocumentRequest,
    ) -> Result<DeleteDocumentResponse, ApiError> {
        self.0.delete_document(req).await
    }

    async fn search_documents(
        &self,
        req: SearchDocumentsRequest,
        deadline: Instant,
    ) -> Result<SearchDocumentsResponse, ApiError> {
        self.0.search_documents(req, deadline).await
    }

    async fn document_store_info(&self) -> Result<DocumentStoreInfoResponse, ApiError> {
        self.0.document_store_info().await
    }

    fn ready(&self) -> bool {
        self.0.cluster().view().view.nodes().iter().any(|n| n.ready)
    }

    fn check_keep_alive(&self, model: &str, keep: KeepAlive) -> Result<(), ApiError> {
        if model == "auto" {
            return self
                .0
                .tier_models()
                .iter()
                .try_for_each(|m| self.0.keep_alives.check(m, keep));
        }
        self.known(model)?;
        if keep != KeepAlive::Default && self.0.models().get(model).is_none() {
            return Err(ApiError::new(
                ErrorClass::InvalidArgument,
                format!(
                    "keep_alive cannot be honoured for model '{model}': it runs on attached engines, which load and unload their own models"
                ),
            )
            .with_param("keep_alive"));
        }
        self.0.keep_alives.check(model, keep)
    }

    fn set_keep_alive(&self, model: &str, keep: KeepAlive) -> Result<(), ApiError> {
        self.check_keep_alive(model, keep)?;
        self.0.keep_alives.set(model, keep)
    }

    async fn preload(&self, model: &str, deadline: Instant) -> Result<(), ApiError> {
        if model == "auto" {
            return Err(ApiError::new(
                ErrorClass::InvalidArgument,
                "model 'auto' picks a model per request and cannot be preloaded; name a model",
            )
            .with_param("model"));
        }
        let spec = self.known(model)?;
        let placer = &self.0.placer;
        let target = placer.place(&placer.request(&spec))?;
        let mut client = self.0.pool.client(&target.node, &target.endpoint)?;
        let load = client.load_model(LoadModelRequest {
            model: model.to_string(),
            device_id: target.device.clone(),
            backend: target.backend.clone(),
            pin: false,
        });
        match tokio::time::timeout_at(deadline.into(), load).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(ApiError::new(
                ErrorClass::from_grpc(status.code()),
                format!(
                    "loading {model} on {}/{} failed: {}",
                    target.node,
                    target.device,
                    status.message()
                ),
            )),
            Err(_) => Err(ApiError::new(
                ErrorClass::DeadlineExceeded,
                format!("loading {model} ran past the request's deadline"),
            )),
        }
    }
}
