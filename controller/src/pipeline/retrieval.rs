//! Retrieval: documents are chunked with the embedding model's own tokenizer, embedded
//! through the cluster (the embed stage, in batches, like any request) and kept in the
//! [`DocumentStore`]; a query is embedded the same way and searched there. A collection's
//! vectors all come from one model: when `routes.embed` names another, the collection is
//! refused with a message, never mixed.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use sha2::{Digest, Sha256};
use switchyard_api::ApiError;
use switchyard_backend_core::StageKind;
use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::{ChatMessage, Retrieval, RetrievedChunk, StageTrace};

use super::Pipeline;
use crate::config::RetrievalConfig;
use crate::documents::{
    AddOutcome, Chunker, DEFAULT_COLLECTION, DocumentRecord, DocumentStore, EmbedModel, NewChunk,
    NewDocument, StoreError, TextKind,
};

/// Embed batches in flight at once during an import (so the agent's batcher always has the
/// next batch while it computes one).
const BATCHES_IN_FLIGHT: usize = 2;

/// The pipeline's document store with its settings and (lazily loaded) chunker.
pub struct Documents {
    store: Arc<dyn DocumentStore>,
    config: RetrievalConfig,
    /// Chunks per embed request during imports (the API's `max_inputs`).
    batch: usize,
    chunker: Mutex<Option<Arc<Chunker>>>,
}

impl std::fmt::Debug for Documents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Documents")
            .field("config", &self.config)
            .field("batch", &self.batch)
            .finish()
    }
}

impl Documents {
    /// Documents kept in `store`, chunked per `config`, embedded `batch` chunks at a time.
    pub fn new(store: Arc<dyn DocumentStore>, config: RetrievalConfig, batch: usize) -> Self {
        Documents {
            store,
            config,
            batch: batch.max(1),
            chunker: Mutex::new(None),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn DocumentStore> {
        &self.store
    }

    /// The settings.
    pub fn config(&self) -> &RetrievalConfig {
        &self.config
    }
}

/// A store error for a client, classed through the one table.
pub(super) fn api_error(e: StoreError) -> ApiError {
    let class = match &e {
        StoreError::UnknownCollection(_) | StoreError::UnknownDocument(_) => ErrorClass::NotFound,
        StoreError::ModelMismatch { .. } => ErrorClass::FailedPrecondition,
        StoreError::Invalid(_) => ErrorClass::InvalidArgument,
        StoreError::DataDir { .. } | StoreError::Db(_) => ErrorClass::Internal,
    };
    let param = match &e {
        StoreError::UnknownCollection(_) => Some("collection"),
        StoreError::UnknownDocument(_) => Some("id"),
        _ => None,
    };
    let err = ApiError::new(class, e.to_string());
    match param {
        Some(p) => err.with_param(p),
        None => err,
    }
}

/// Runs a store call off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    store: &Arc<dyn DocumentStore>,
    f: impl FnOnce(&dyn DocumentStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| ApiError::new(ErrorClass::Internal, format!("document store task: {e}")))?
        .map_err(api_error)
}

/// The collection a request names (`default` when empty).
pub(super) fn collection_name(name: &str) -> String {
    if name.is_empty() {
        DEFAULT_COLLECTION.to_string()
    } else {
        name.to_string()
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::new(ErrorClass::InvalidArgument, message).with_param("documents")
}

impl Pipeline {
    /// The chunker of the embed route's model (its tokenizer is loaded on first use, so a
    /// controller without model files still starts; importing then says what is missing).
    fn chunker(&self) -> Result<Arc<Chunker>, ApiError> {
        let mut slot = self
            .documents
            .chunker
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let spec = self.placer.spec(&self.routes.embed, StageKind::Embed)?;
        let precondition = |m: String| {
            ApiError::new(
                ErrorClass::FailedPrecondition,
                format!("cannot chunk documents for {}: {m}", spec.name),
            )
        };
        let tok = switchyard_backend_core::text::load_tokenizer(&spec.name, &spec.tokenizer)
            .map_err(|e| precondition(e.to_string()))?;
        let size = self
            .documents
            .config
            .chunk_tokens
            .unwrap_or(spec.max_input_tokens) as usize;
        let chunker = Arc::new(
            Chunker::new(tok, size, self.documents.config.overlap_tokens as usize)
                .map_err(precondition)?,
        );
        *slot = Some(chunker.clone());
        Ok(chunker)
    }

    /// Refuses (before any embedding) a collection whose vectors come from another model.
    async fn check_model(&self, collection: &str) -> Result<(), ApiError> {
        let name = collection.to_string();
        let Some(c) = blocking(&self.documents.store, move |s| s.collection(&name)).await? else {
            return Ok(());
        };
        if c.model.name != self.routes.embed {
            let current = self.placer.spec(&self.routes.embed, StageKind::Embed)?;
            return Err(api_error(StoreError::ModelMismatch {
                collection: c.name,
                stored: c.model.name,
                stored_dim: c.model.dimension,
                current: current.name.clone(),
                current_dim: current.embedding_dim.unwrap_or(0),
            }));
        }
        Ok(())
    }

    /// Chunks, embeds and stores one document (one transaction); an unchanged document
    /// (same source, same text) is not embedded again.
    pub(super) async fn import(
        &self,
        collection: &str,
        source: String,
        text: String,
        deadline: Instant,
    ) -> Result<(DocumentRecord, AddOutcome), ApiError> {
        let label = if source.is_empty() {
            "(text)"
        } else {
            source.as_str()
        };
        let max = self.documents.config.max_document_bytes;
        if text.len() as u64 > max {
            return Err(invalid(format!(
                "document {label} has {} bytes, over the limit retrieval.max_document_bytes ({max})",
                text.len()
            )));
        }
        if text.contains('\0') {
            return Err(invalid(format!(
                "document {label} looks binary (it contains NUL bytes); only text is indexed"
            )));
        }
        if text.trim().is_empty() {
            return Err(invalid(format!("document {label} is empty")));
        }
        let sha256 = format!("{:x}", Sha256::digest(text.as_bytes()));
        let (c, s, h) = (collection.to_string(), source.clone(), sha256.clone());
        if let Some(r) = blocking(&self.documents.store, move |st| st.find(&c, &s, &h)).await? {
            return Ok((r, AddOutcome::Unchanged));
        }
        self.check_model(collection).await?;
        let chunker = self.chunker()?;
        let kind = TextKind::of_source(&source);
        let (chunks, text) = tokio::task::spawn_blocking(move || {
            let r = chunker.chunks(&text, kind);
            (r, text)
        })
        .await
        .map_err(|e| ApiError::new(ErrorClass::Internal, format!("chunking task: {e}")))?;
        let (chunks, tokens) = chunks.map_err(|e| invalid(format!("document {label}: {e}")))?;
        let embed = self.routes.embed.clone();
        let batches: Vec<Vec<String>> = chunks
            .chunks(self.documents.batch)
            .map(|b| b.iter().map(|c| c.text.clone()).collect())
            .collect();
        let mut replies = futures::stream::iter(batches)
            .map(|inputs| self.run_batch_as(StageKind::Embed, &embed, inputs, deadline, true))
            .buffered(BATCHES_IN_FLIGHT);
        let mut vectors = Vec::with_capacity(chunks.len());
        while let Some(reply) = replies.next().await {
            vectors.extend(reply?.embeddings.into_iter().map(|e| e.values));
        }
        drop(replies);
        if vectors.len() != chunks.len() {
            return Err(ApiError::new(
                ErrorClass::Internal,
                format!(
                    "the embed stage returned {} vectors for {} chunks",
                    vectors.len(),
                    chunks.len()
                ),
            ));
        }
        let model = EmbedModel {
            name: embed,
            dimension: vectors.first().map_or(0, |v| v.len() as u32),
        };
        let doc = NewDocument {
            source,
            text,
            sha256,
            tokens,
            chunks: chunks
                .into_iter()
                .zip(vectors)
                .map(|(c, vector)| NewChunk {
                    text: c.text,
                    start: c.start,
                    end: c.end,
                    tokens: c.tokens,
                    vector,
                })
                .collect(),
        };
        let c = collection.to_string();
        blocking(&self.documents.store, move |st| st.add(&c, &model, doc)).await
    }

    /// The `k` chunks of `collection` closest to `query` (scoring at least `min_score`),
    /// and the query's embed-stage trace listing them. `None` when `optional` and the
    /// collection does not exist (nothing was added yet): no embedding is done then.
    pub(super) async fn search(
        &self,
        collection: &str,
        query: &str,
        k: usize,
        min_score: f32,
        optional: bool,
        deadline: Instant,
    ) -> Result<Option<(Vec<RetrievedChunk>, StageTrace)>, ApiError> {
        let name = collection.to_string();
        if blocking(&self.documents.store, move |s| s.collection(&name))
            .await?
            .is_none()
        {
            if optional {
                return Ok(None);
            }
            return Err(api_error(StoreError::UnknownCollection(
                collection.to_string(),
            )));
        }
        self.check_model(collection).await?;
        let embed = self.routes.embed.clone();
        let resp = self
            .run_batch(StageKind::Embed, &embed, vec![query.to_string()], deadline)
            .await?;
        let vector = resp
            .embeddings
            .into_iter()
            .next()
            .map(|e| e.values)
            .unwrap_or_default();
        let model = EmbedModel {
            name: embed,
            dimension: vector.len() as u32,
        };
        let c = collection.to_string();
        let hits = blocking(&self.documents.store, move |s| {
            s.search(&c, &model, &vector, k, min_score)
        })
        .await?;
        let chunks: Vec<RetrievedChunk> = hits
            .into_iter()
            .map(|h| RetrievedChunk {
                document_id: h.document_id,
                chunk: h.chunk,
                score: h.score,
                text: h.text,
                source: h.source,
                collection: collection.to_string(),
            })
            .collect();
        let mut trace = resp.trace.unwrap_or_default();
        trace.retrieved = chunks
            .iter()
            .map(|c| RetrievedChunk {
                text: String::new(),
                ..c.clone()
            })
            .collect();
        tracing::debug!(collection, hits = ?trace.retrieved.iter().map(|c| (c.document_id, c.chunk, c.score)).collect::<Vec<_>>(), "retrieval");
        Ok(Some((chunks, trace)))
    }
}

/// The suffix of a model name that asks for retrieval (`code+docs`, `auto+docs`).
pub const DOCS_SUFFIX: &str = "+docs";

/// The model a chat names and the retrieval it asks for: the request's own, else the
/// defaults when the name ends in [`DOCS_SUFFIX`].
pub fn chat_retrieval(model: &str, asked: Option<Retrieval>) -> (String, Option<Retrieval>) {
    match model.strip_suffix(DOCS_SUFFIX) {
        Some(base) => (
            base.to_string(),
            asked.or_else(|| Some(Retrieval::default())),
        ),
        None => (model.to_string(), asked),
    }
}

/// `messages` with `chunks` as context in the system message (the conversation's own first
/// system message is kept and extended; otherwise one is put first).
pub fn with_context(mut messages: Vec<ChatMessage>, chunks: &[RetrievedChunk]) -> Vec<ChatMessage> {
    let context: Vec<String> = chunks.iter().map(|c| c.text.clone()).collect();
    if context.is_empty() {
        return messages;
    }
    match messages.first_mut().filter(|m| m.role == "system") {
        Some(first) => {
            if let Some(m) = super::prompt::system_message(Some(&first.content), &context) {
                first.content = m.content;
            }
        }
        None => {
            messages.splice(0..0, super::prompt::system_message(None, &context));
        }
    }
    messages
}

impl Pipeline {
    /// The chunks closest to `query` for a chat's retrieval (text included); none when the
    /// default collection does not exist yet.
    pub(super) async fn chat_context(
        &self,
        r: &Retrieval,
        query: &str,
        deadline: Instant,
    ) -> Result<Vec<RetrievedChunk>, ApiError> {
        let cfg = self.documents().config();
        let top_k = if r.top_k == 0 { cfg.top_k } else { r.top_k } as usize;
        let min_score = r.min_score.unwrap_or(cfg.min_score);
        let collection = collection_name(&r.collection);
        let found = self
            .search(
                &collection,
                query,
                top_k,
                min_score,
                r.collection.is_empty(),
                deadline,
            )
            .await?;
        Ok(found.map(|(chunks, _)| chunks).unwrap_or_default())
    }
}

#[cfg(test)]
mod chat_tests {
    use super::*;

    fn msg(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
            ..Default::default()
        }
    }

    fn chunk(text: &str) -> RetrievedChunk {
        RetrievedChunk {
            text: text.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_docs_suffix_asks_for_retrieval_and_context_joins_the_system_message() {
        assert_eq!(chat_retrieval("code+docs", None).0, "code");
        assert!(chat_retrieval("code+docs", None).1.is_some());
        assert!(chat_retrieval("code", None).1.is_none());
        let asked = Retrieval {
            top_k: 2,
            ..Default::default()
        };
        assert_eq!(chat_retrieval("code", Some(asked.clone())).1, Some(asked));

        let m = with_context(vec![msg("user", "q")], &[chunk("fact")]);
        assert_eq!((m[0].role.as_str(), m.len()), ("system", 2));
        assert!(m[0].content.contains("- fact"));
        let m = with_context(
            vec![msg("system", "Be brief."), msg("user", "q")],
            &[chunk("fact")],
        );
        assert_eq!(m.len(), 2);
        assert!(m[0].content.starts_with("Be brief.") && m[0].content.contains("- fact"));
        let m = with_context(vec![msg("user", "q")], &[]);
        assert_eq!(m.len(), 1, "no context, no system message");
    }
}
