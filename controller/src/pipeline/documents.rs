//! The document store's client calls (add, list, get, delete, search, info) in the API's
//! protocol types, over [`super::retrieval`].

use std::time::Instant;

use switchyard_api::ApiError;
use switchyard_backend_core::StageKind;
use switchyard_proto::v1::{
    AddDocumentsRequest, AddDocumentsResponse, CollectionInfo, DeleteDocumentRequest,
    DeleteDocumentResponse, DocumentInfo, DocumentStoreInfoResponse, GetDocumentResponse,
    ListDocumentsRequest, ListDocumentsResponse, SearchDocumentsRequest, SearchDocumentsResponse,
};

use super::Pipeline;
use super::retrieval::{blocking, collection_name};
use crate::documents::{AddOutcome, Collection, DocumentRecord};

fn info(r: DocumentRecord, outcome: Option<AddOutcome>) -> DocumentInfo {
    DocumentInfo {
        id: r.id,
        collection: r.collection,
        source: r.source,
        chunks: r.chunks,
        bytes: r.bytes,
        tokens: r.tokens,
        sha256: r.sha256,
        created_unix_ms: r.created_unix_ms,
        status: outcome.map(|o| o.as_str().to_string()).unwrap_or_default(),
    }
}

fn collection_info(c: Collection) -> CollectionInfo {
    CollectionInfo {
        name: c.name,
        embed_model: c.model.name,
        dimension: c.model.dimension,
        documents: c.documents,
        chunks: c.chunks,
    }
}

impl Pipeline {
    /// Stores every document of `req` in order, one transaction each. A failure stops
    /// there: the documents before it stay stored (re-sending them is a no-op).
    pub(super) async fn add_documents(
        &self,
        req: AddDocumentsRequest,
        deadline: Instant,
    ) -> Result<AddDocumentsResponse, ApiError> {
        let collection = collection_name(&req.collection);
        let items = req
            .documents
            .into_iter()
            .map(|text| (String::new(), text))
            .chain(req.items.into_iter().map(|d| (d.source, d.text)));
        let mut out = AddDocumentsResponse::default();
        for (source, text) in items {
            let (record, outcome) = self.import(&collection, source, text, deadline).await?;
            out.ids.push(record.id);
            out.documents.push(info(record, Some(outcome)));
        }
        Ok(out)
    }

    pub(super) async fn list_documents(
        &self,
        req: ListDocumentsRequest,
    ) -> Result<ListDocumentsResponse, ApiError> {
        let name = (!req.collection.is_empty()).then_some(req.collection);
        blocking(self.documents.store(), move |s| {
            let docs = s.list(name.as_deref())?;
            let cols = s
                .collections()?
                .into_iter()
                .filter(|c| name.as_ref().is_none_or(|n| *n == c.name))
                .map(collection_info)
                .collect();
            Ok(ListDocumentsResponse {
                documents: docs.into_iter().map(|r| info(r, None)).collect(),
                collections: cols,
            })
        })
        .await
    }

    pub(super) async fn get_document(&self, id: u64) -> Result<GetDocumentResponse, ApiError> {
        let (record, text) = blocking(self.documents.store(), move |s| s.get(id)).await?;
        Ok(GetDocumentResponse {
            document: Some(info(record, None)),
            text,
        })
    }

    pub(super) async fn delete_document(
        &self,
        req: DeleteDocumentRequest,
    ) -> Result<DeleteDocumentResponse, ApiError> {
        let deleted = if req.id != 0 {
            blocking(self.documents.store(), move |s| s.delete(req.id)).await?;
            1
        } else {
            let name = req.collection;
            blocking(self.documents.store(), move |s| s.delete_collection(&name)).await?
        };
        Ok(DeleteDocumentResponse { deleted })
    }

    pub(super) async fn search_documents(
        &self,
        req: SearchDocumentsRequest,
        deadline: Instant,
    ) -> Result<SearchDocumentsResponse, ApiError> {
        let cfg = self.documents.config();
        let k = if req.k == 0 { cfg.top_k } else { req.k } as usize;
        let min_score = req.min_score.unwrap_or(cfg.min_score);
        let collection = collection_name(&req.collection);
        let (chunks, trace) = self
            .search(&collection, &req.query, k, min_score, false, deadline)
            .await?
            .unwrap_or_default();
        Ok(SearchDocumentsResponse {
            chunks,
            trace: Some(trace),
        })
    }

    pub(super) async fn document_store_info(&self) -> Result<DocumentStoreInfoResponse, ApiError> {
        let spec = self.placer.spec(&self.routes.embed, StageKind::Embed)?;
        let cfg = self.documents.config().clone();
        let collections = blocking(self.documents.store(), |s| s.collections()).await?;
        Ok(DocumentStoreInfoResponse {
            collections: collections.into_iter().map(collection_info).collect(),
            embed_model: spec.name.clone(),
            dimension: spec.embedding_dim.unwrap_or(0),
            chunk_tokens: cfg.chunk_tokens.unwrap_or(spec.max_input_tokens),
            overlap_tokens: cfg.overlap_tokens,
            max_document_bytes: cfg.max_document_bytes,
        })
    }
}
