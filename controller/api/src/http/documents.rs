//! The document store over HTTP: `POST /v1/documents` (add), `GET /v1/documents` (list,
//! `?collection=`), `GET|DELETE /v1/documents/{id}`, `DELETE /v1/documents?collection=NAME`
//! (a whole collection) and `POST /v1/documents/search`.

use std::collections::HashMap;
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use switchyard_proto::v1::{
    AddDocumentsRequest, CollectionInfo, DeleteDocumentRequest, DocumentInfo, DocumentInput,
    ListDocumentsRequest, RetrievedChunk, SearchDocumentsRequest,
};

use super::error::HttpError;
use super::extract::JsonBody;
use super::{AppState, fields, trace};
use crate::inference::ApiError;
use crate::validate::{self, invalid};

/// A document as JSON.
pub(crate) fn document_json(d: &DocumentInfo) -> Value {
    let mut v = json!({
        "object": "document",
        "id": d.id,
        "collection": d.collection,
        "source": d.source,
        "chunks": d.chunks,
        "bytes": d.bytes,
        "tokens": d.tokens,
        "sha256": d.sha256,
        "created_unix_ms": d.created_unix_ms,
    });
    if !d.status.is_empty() {
        v["status"] = json!(d.status);
    }
    v
}

/// A collection as JSON.
fn collection_json(c: &CollectionInfo) -> Value {
    json!({
        "object": "collection",
        "name": c.name,
        "embed_model": c.embed_model,
        "dimension": c.dimension,
        "documents": c.documents,
        "chunks": c.chunks,
    })
}

/// A retrieved chunk as JSON.
pub(crate) fn chunk_json(c: &RetrievedChunk) -> Value {
    json!({
        "document_id": c.document_id,
        "chunk": c.chunk,
        "score": c.score,
        "text": c.text,
        "source": c.source,
        "collection": c.collection,
    })
}

/// Refuses keys the handler does not act on.
fn only(body: &Map<String, Value>, known: &[&str]) -> Result<(), ApiError> {
    match body.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(invalid(
            k,
            format!("unknown field '{k}' (known: {})", known.join(", ")),
        )),
        None => Ok(()),
    }
}

/// Refuses query parameters the handler does not act on.
fn only_query(q: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match q.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(invalid(k, format!("unknown query parameter '{k}'"))),
        None => Ok(()),
    }
}

/// An optional number as f32.
fn opt_score(body: &Map<String, Value>) -> Result<Option<f32>, ApiError> {
    Ok(fields::opt_f64(body, "min_score")?.map(|x| x as f32))
}

pub(crate) async fn create(
    State(st): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Response, HttpError> {
    only(&body, &["documents", "collection"])?;
    let items = match fields::get(&body, "documents") {
        Some(Value::Array(items)) => items,
        Some(v) => {
            return Err(invalid(
                "documents",
                format!(
                    "documents must be an array of strings or {{\"text\", \"source\"}} objects, got {}",
                    fields::type_name(v)
                ),
            )
            .into());
        }
        None => return Err(invalid("documents", "documents is required").into()),
    };
    let mut docs = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        docs.push(match item {
            Value::String(s) => DocumentInput {
                text: s.clone(),
                source: String::new(),
            },
            Value::Object(o) => {
                only(o, &["text", "source"]).map_err(|e| e.with_param("documents"))?;
                DocumentInput {
                    text: fields::req_string(o, "text").map_err(|e| {
                        invalid("documents", format!("documents[{i}].{}", e.message))
                    })?,
                    source: fields::opt_string(o, "source")
                        .map_err(|e| invalid("documents", format!("documents[{i}].{}", e.message)))?
                        .unwrap_or_default(),
                }
            }
            other => {
                return Err(invalid(
                    "documents",
                    format!(
                        "documents[{i}] must be a string or an object, got {}",
                        fields::type_name(other)
                    ),
                )
                .into());
            }
        });
    }
    let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
    validate::documents(&texts, &st.cfg)?;
    let collection = fields::opt_string(&body, "collection")?.unwrap_or_default();
    validate::collection(&collection)?;
    let deadline = st.deadline();
    let resp = st
        .until(
            deadline,
            st.inf.add_documents(
                AddDocumentsRequest {
                    documents: Vec::new(),
                    collection,
                    items: docs,
                },
                deadline,
            ),
        )
        .await?;
    Ok(Json(json!({
        "object": "list",
        "ids": resp.ids,
        "data": resp.documents.iter().map(document_json).collect::<Vec<_>>(),
    }))
    .into_response())
}

pub(crate) async fn list(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, HttpError> {
    only_query(&q, &["collection"])?;
    let collection = q.get("collection").cloned().unwrap_or_default();
    validate::collection(&collection)?;
    let resp = st
        .inf
        .list_documents(ListDocumentsRequest { collection })
        .await?;
    Ok(Json(json!({
        "object": "list",
        "data": resp.documents.iter().map(document_json).collect::<Vec<_>>(),
        "collections": resp.collections.iter().map(collection_json).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// A document id from the path.
fn id(raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>().ok().filter(|&id| id > 0).ok_or_else(|| {
        invalid(
            "id",
            format!("document id must be a positive integer, got '{raw}'"),
        )
    })
}

pub(crate) async fn get(
    State(st): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, HttpError> {
    let resp = st.inf.get_document(id(&raw)?).await?;
    let mut v = resp
        .document
        .as_ref()
        .map(document_json)
        .unwrap_or_default();
    v["text"] = json!(resp.text);
    Ok(Json(v).into_response())
}

pub(crate) async fn delete(
    State(st): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, HttpError> {
    let id = id(&raw)?;
    st.inf
        .delete_document(DeleteDocumentRequest {
            id,
            collection: String::new(),
        })
        .await?;
    Ok(Json(json!({"object": "document", "id": id, "deleted": true})).into_response())
}

pub(crate) async fn delete_collection(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, HttpError> {
    only_query(&q, &["collection"])?;
    let collection = q.get("collection").cloned().unwrap_or_default();
    if collection.is_empty() {
        return Err(invalid(
            "collection",
            "DELETE /v1/documents needs ?collection=NAME (or use /v1/documents/{id})",
        )
        .into());
    }
    validate::collection(&collection)?;
    let resp = st
        .inf
        .delete_document(DeleteDocumentRequest {
            id: 0,
            collection: collection.clone(),
        })
        .await?;
    Ok(Json(json!({
        "object": "collection", "name": collection, "deleted": true, "documents": resp.deleted,
    }))
    .into_response())
}

pub(crate) async fn search(
    State(st): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Response, HttpError> {
    let started = Instant::now();
    only(&body, &["query", "k", "collection", "min_score"])?;
    let query = fields::req_string(&body, "query")?;
    let k = fields::opt_positive_u32(&body, "k")?.unwrap_or(0);
    let collection = fields::opt_string(&body, "collection")?.unwrap_or_default();
    let min_score = opt_score(&body)?;
    validate::search(&query, k, &collection, min_score, &st.cfg)?;
    let deadline = st.deadline();
    let resp = st
        .until(
            deadline,
            st.inf.search_documents(
                SearchDocumentsRequest {
                    query,
                    k,
                    collection,
                    min_score,
                },
                deadline,
            ),
        )
        .await?;
    let mut headers = trace::headers(resp.trace.iter());
    trace::put_total(&mut headers, started);
    Ok((
        headers,
        Json(json!({
            "object": "list",
            "data": resp.chunks.iter().map(chunk_json).collect::<Vec<_>>(),
            "trace": resp.trace.iter().map(trace::json).collect::<Vec<_>>(),
        })),
    )
        .into_response())
}

/// `min_score` of a pipeline request (shared with `/v1/pipeline`).
pub(crate) fn pipeline_min_score(body: &Map<String, Value>) -> Result<Option<f32>, ApiError> {
    let s = opt_score(body)?;
    validate::min_score(s)?;
    Ok(s)
}
