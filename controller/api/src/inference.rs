//! The contract between the client APIs and the controller's pipeline.

use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::Stream;
use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::{
    AddDocumentsRequest, AddDocumentsResponse, ChatMessage, ClassifyRequest, ClassifyResponse,
    DeleteDocumentRequest, DeleteDocumentResponse, DocumentStoreInfoResponse, EmbedRequest,
    EmbedResponse, GenerateChunk, GenerateRequest, GetDocumentResponse, ListDocumentsRequest,
    ListDocumentsResponse, ModelStatus, PipelineRequest, PipelineResponse, SamplingParams,
    SearchDocumentsRequest, SearchDocumentsResponse,
};

/// An error for a client, classed through the one table in `switchyard_proto::errors`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The error's class, which fixes its gRPC and HTTP status codes.
    pub class: ErrorClass,
    /// Human-readable description shown to the client.
    pub message: String,
    /// The request field at fault (OpenAI `error.param`).
    pub param: Option<String>,
}

impl ApiError {
    /// An error of `class`.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        ApiError {
            class,
            message: message.into(),
            param: None,
        }
    }

    /// Names the request field at fault.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// As a gRPC status.
    pub fn to_status(&self) -> tonic::Status {
        self.class.status(self.message.clone())
    }
}

/// How long a model stays resident once idle (Ollama's `keep_alive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// The configured default (`[residency] keep_alive_s`).
    Default,
    /// Unload it as soon as it is idle (once; then the default applies again).
    Unload,
    /// Unload it once it has been idle this long.
    For(Duration),
    /// Never unload it for being idle.
    Forever,
}

/// Generated chunks; the last one carries `finish_reason`, token counts and the trace.
pub type GenerateStream = Pin<Box<dyn Stream<Item = Result<GenerateChunk, ApiError>> + Send>>;

/// What the controller offers clients. Every call takes a deadline (from the HTTP request
/// timeout or gRPC `grpc-timeout`); implementations give up with `DeadlineExceeded` then.
#[tonic::async_trait]
pub trait Inference: Send + Sync + 'static {
    /// Every registered model with its stage, tier and where it is loaded.
    async fn list_models(&self) -> Vec<ModelStatus>;

    /// Embeds `inputs` with `model` (merged with concurrent requests by the agent's batcher).
    async fn embed(&self, req: EmbedRequest, deadline: Instant) -> Result<EmbedResponse, ApiError>;

    /// Classifies `inputs` with `model`.
    async fn classify(
        &self,
        req: ClassifyRequest,
        deadline: Instant,
    ) -> Result<ClassifyResponse, ApiError>;

    /// Generates from chat messages; `model` may be `auto` (the router picks the tier).
    async fn generate(
        &self,
        req: GenerateRequest,
        deadline: Instant,
    ) -> Result<GenerateStream, ApiError>;

    /// classify → [embed + retrieve] → generate, or a dry-run explanation.
    async fn run_pipeline(
        &self,
        req: PipelineRequest,
        deadline: Instant,
    ) -> Result<PipelineResponse, ApiError>;

    /// Chunks, embeds (through the cluster) and stores documents, one transaction each.
    async fn add_documents(
        &self,
        req: AddDocumentsRequest,
        deadline: Instant,
    ) -> Result<AddDocumentsResponse, ApiError>;

    /// Stored documents (of one collection, or all) and the collections.
    async fn list_documents(
        &self,
        req: ListDocumentsRequest,
    ) -> Result<ListDocumentsResponse, ApiError>;

    /// One document with its text (`NotFound` for an unknown id).
    async fn get_document(&self, id: u64) -> Result<GetDocumentResponse, ApiError>;

    /// Deletes a document, or a whole collection.
    async fn delete_document(
        &self,
        req: DeleteDocumentRequest,
    ) -> Result<DeleteDocumentResponse, ApiError>;

    /// The chunks closest to a query (the query is embedded through the cluster).
    async fn search_documents(
        &self,
        req: SearchDocumentsRequest,
        deadline: Instant,
    ) -> Result<SearchDocumentsResponse, ApiError>;

    /// Collections, the embedding model of new ones, chunk size and document size limit.
    async fn document_store_info(&self) -> Result<DocumentStoreInfoResponse, ApiError>;

    /// True when at least one node is ready (for `GET /ready`).
    fn ready(&self) -> bool;

    /// Refuses a keep-alive that cannot be honoured for `model` (`auto`: for any model the
    /// router may choose), e.g. unloading a pinned model; unknown models are `NotFound`.
    fn check_keep_alive(&self, model: &str, keep: KeepAlive) -> Result<(), ApiError>;

    /// Sets how long `model` stays resident once idle, until the next call for it.
    fn set_keep_alive(&self, model: &str, keep: KeepAlive) -> Result<(), ApiError>;

    /// Loads `model` where placement would run it and waits until it is resident (a
    /// no-op when it is already).
    async fn preload(&self, model: &str, deadline: Instant) -> Result<(), ApiError>;

    /// Generates from a plain prompt (`POST /v1/completions`). The default sends the prompt
    /// as one user message, so the model's chat template applies; an implementation that
    /// can feed raw prompts to the agent (`AgentGenerateRequest.prompt`) may override it.
    async fn complete(
        &self,
        model: String,
        prompt: String,
        sampling: SamplingParams,
        deadline: Instant,
    ) -> Result<GenerateStream, ApiError> {
        self.generate(
            GenerateRequest {
                model,
                messages: vec![ChatMessage {
                    role: "user".into(),
                    content: prompt,
                    ..Default::default()
                }],
                sampling: Some(sampling),
                engine_options: None,
                retrieval: None,
            },
            deadline,
        )
        .await
    }
}
