//! The fake's document store: a `Vec` in memory, searched with [`super::fake_vector`]. It
//! exists to test the API layer's shapes and validation, not retrieval.

use std::sync::Mutex;

use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::{
    AddDocumentsRequest, AddDocumentsResponse, CollectionInfo, DeleteDocumentRequest,
    DeleteDocumentResponse, DocumentInfo, DocumentStoreInfoResponse, GetDocumentResponse,
    ListDocumentsRequest, ListDocumentsResponse, RetrievedChunk, SearchDocumentsRequest,
    SearchDocumentsResponse, StageKind,
};

use super::{fake_vector, trace};
use crate::inference::ApiError;

/// Stored documents: (info, text).
#[derive(Default)]
pub struct FakeDocs {
    docs: Mutex<Vec<(DocumentInfo, String)>>,
}

fn collection(name: &str) -> String {
    if name.is_empty() {
        "default".into()
    } else {
        name.into()
    }
}

fn not_found(what: String) -> ApiError {
    ApiError::new(ErrorClass::NotFound, what)
}

impl FakeDocs {
    pub fn add(&self, req: AddDocumentsRequest) -> Result<AddDocumentsResponse, ApiError> {
        let mut docs = self.docs.lock().expect("docs");
        let col = collection(&req.collection);
        let items = req
            .documents
            .into_iter()
            .map(|t| (t, String::new()))
            .chain(req.items.into_iter().map(|d| (d.text, d.source)));
        let mut out = AddDocumentsResponse::default();
        for (text, source) in items {
            let info = DocumentInfo {
                id: 100 + docs.len() as u64,
                collection: col.clone(),
                source,
                chunks: 1,
                bytes: text.len() as u64,
                tokens: text.split_whitespace().count() as u64,
                status: "added".into(),
                ..Default::default()
            };
            out.ids.push(info.id);
            out.documents.push(info.clone());
            docs.push((info, text));
        }
        Ok(out)
    }

    pub fn list(&self, req: ListDocumentsRequest) -> Result<ListDocumentsResponse, ApiError> {
        let docs = self.docs.lock().expect("docs");
        if !req.collection.is_empty() && !docs.iter().any(|d| d.0.collection == req.collection) {
            return Err(not_found(format!(
                "unknown collection '{}'",
                req.collection
            )));
        }
        let documents: Vec<DocumentInfo> = docs
            .iter()
            .filter(|d| req.collection.is_empty() || d.0.collection == req.collection)
            .map(|d| d.0.clone())
            .collect();
        let collections = if documents.is_empty() {
            Vec::new()
        } else {
            vec![CollectionInfo {
                name: "default".into(),
                embed_model: "minilm".into(),
                dimension: 4,
                documents: documents.len() as u64,
                chunks: documents.len() as u64,
            }]
        };
        Ok(ListDocumentsResponse {
            documents,
            collections,
        })
    }

    pub fn get(&self, id: u64) -> Result<GetDocumentResponse, ApiError> {
        let docs = self.docs.lock().expect("docs");
        let (info, text) = docs
            .iter()
            .find(|d| d.0.id == id)
            .cloned()
            .ok_or_else(|| not_found(format!("unknown document {id}")))?;
        Ok(GetDocumentResponse {
            document: Some(info),
            text,
        })
    }

    pub fn delete(&self, req: DeleteDocumentRequest) -> Result<DeleteDocumentResponse, ApiError> {
        let mut docs = self.docs.lock().expect("docs");
        let before = docs.len();
        if req.id != 0 {
            docs.retain(|d| d.0.id != req.id);
            if docs.len() == before {
                return Err(not_found(format!("unknown document {}", req.id)));
            }
        } else {
            docs.retain(|d| d.0.collection != req.collection);
        }
        Ok(DeleteDocumentResponse {
            deleted: (before - docs.len()) as u64,
        })
    }

    pub fn search(&self, req: SearchDocumentsRequest) -> Result<SearchDocumentsResponse, ApiError> {
        let docs = self.docs.lock().expect("docs");
        let col = collection(&req.collection);
        let q = fake_vector(&req.query);
        let mut chunks: Vec<RetrievedChunk> = docs
            .iter()
            .filter(|d| d.0.collection == col)
            .map(|(info, text)| RetrievedChunk {
                document_id: info.id,
                chunk: 0,
                score: fake_vector(text).iter().zip(&q).map(|(a, b)| a * b).sum(),
                text: text.clone(),
                source: info.source.clone(),
                collection: col.clone(),
            })
            .filter(|c| c.score >= req.min_score.unwrap_or(-1.0))
            .collect();
        chunks.sort_by(|a, b| b.score.total_cmp(&a.score));
        chunks.truncate(if req.k == 0 { 5 } else { req.k as usize });
        let mut t = trace(StageKind::Embed, "minilm");
        t.retrieved = chunks
            .iter()
            .map(|c| RetrievedChunk {
                text: String::new(),
                ..c.clone()
            })
            .collect();
        Ok(SearchDocumentsResponse {
            chunks,
            trace: Some(t),
        })
    }

    pub fn info(&self) -> DocumentStoreInfoResponse {
        DocumentStoreInfoResponse {
            collections: self
                .list(ListDocumentsRequest::default())
                .map(|l| l.collections)
                .unwrap_or_default(),
            embed_model: "minilm".into(),
            dimension: 4,
            chunk_tokens: 128,
            overlap_tokens: 16,
            max_document_bytes: 1 << 20,
        }
    }
}
