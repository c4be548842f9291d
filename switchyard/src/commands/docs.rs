//! `switchyard docs add|list|show|rm|search`: the controller's document store.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use switchyard_proto::v1::inference_client::InferenceClient;
use switchyard_proto::v1::{
    AddDocumentsRequest, DeleteDocumentRequest, DocumentInfo, DocumentStoreInfoRequest,
    GetDocumentRequest, ListDocumentsRequest, RetrievedChunk, SearchDocumentsRequest,
};
use tonic::transport::Channel;

use super::{authorized, controller_channel};
use crate::args::{ClientArgs, DocsAction, DocsArgs, Output};
use crate::output::{self, table};

mod files;

type Client = InferenceClient<Channel>;

async fn connect(client: &ClientArgs) -> Result<Client> {
    Ok(
        InferenceClient::new(controller_channel(&client.controller).await?)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20),
    )
}

/// A controller refusal as one line.
fn refused(what: &str, s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{what} failed ({:?}): {}", s.code(), s.message())
}

/// A document as JSON (the same shape as the HTTP API's).
pub fn document_json(d: &DocumentInfo) -> Value {
    let mut v = json!({
        "id": d.id, "collection": d.collection, "source": d.source, "chunks": d.chunks,
        "bytes": d.bytes, "tokens": d.tokens, "sha256": d.sha256,
        "created_unix_ms": d.created_unix_ms,
    });
    if !d.status.is_empty() {
        v["status"] = json!(d.status);
    }
    v
}

/// A retrieved chunk as JSON.
pub fn chunk_json(c: &RetrievedChunk) -> Value {
    json!({"document_id": c.document_id, "chunk": c.chunk, "score": c.score, "text": c.text,
           "source": c.source, "collection": c.collection})
}

fn documents_table(docs: &[DocumentInfo], with_status: bool) -> String {
    let rows: Vec<Vec<String>> = docs
        .iter()
        .map(|d| {
            let mut row = vec![
                d.id.to_string(),
                d.collection.clone(),
                if d.source.is_empty() {
                    "(text)".into()
                } else {
                    d.source.clone()
                },
                d.chunks.to_string(),
                d.tokens.to_string(),
                d.bytes.to_string(),
            ];
            if with_status {
                row.push(d.status.clone());
            }
            row
        })
        .collect();
    let mut headers = vec!["ID", "COLLECTION", "SOURCE", "CHUNKS", "TOKENS", "BYTES"];
    if with_status {
        headers.push("STATUS");
    }
    table::render(&headers, &rows)
}

/// Retrieved chunks as a table: document, chunk, score, source, the text's first line.
pub fn chunks_table(chunks: &[RetrievedChunk]) -> String {
    let rows: Vec<Vec<String>> = chunks
        .iter()
        .map(|c| {
            let first: String = c
                .text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .chars()
                .take(60)
                .collect();
            vec![
                c.document_id.to_string(),
                c.chunk.to_string(),
                format!("{:.3}", c.score),
                if c.source.is_empty() {
                    "(text)".into()
                } else {
                    c.source.clone()
                },
                first,
            ]
        })
        .collect();
    table::render(&["DOC", "CHUNK", "SCORE", "SOURCE", "TEXT"], &rows)
}

/// Runs one `docs` action.
pub async fn run(args: &DocsArgs) -> Result<()> {
    match &args.action {
        DocsAction::Add {
            paths,
            texts,
            collection,
            client,
            output,
        } => files::add(paths, texts, collection.as_deref(), client, *output).await,
        DocsAction::List {
            collection,
            client,
            output,
        } => {
            let mut c = connect(client).await?;
            let resp = c
                .list_documents(authorized(
                    ListDocumentsRequest {
                        collection: collection.clone().unwrap_or_default(),
                    },
                    client.token.as_deref(),
                )?)
                .await
                .map_err(|s| refused("listing documents", s))?
                .into_inner();
            match output {
                Output::Json => output::print_json(&json!({
                    "documents": resp.documents.iter().map(document_json).collect::<Vec<_>>(),
                    "collections": resp.collections.iter().map(|c| json!({
                        "name": c.name, "embed_model": c.embed_model, "dimension": c.dimension,
                        "documents": c.documents, "chunks": c.chunks,
                    })).collect::<Vec<_>>(),
                }))?,
                Output::Table => {
                    print!("{}", documents_table(&resp.documents, false));
                    for c in &resp.collections {
                        println!(
                            "collection {}: {} document(s), {} chunk(s), {} ({} dimensions)",
                            c.name, c.documents, c.chunks, c.embed_model, c.dimension
                        );
                    }
                }
            }
            Ok(())
        }
        DocsAction::Show { id, client, output } => {
            let mut c = connect(client).await?;
            let resp = c
                .get_document(authorized(
                    GetDocumentRequest { id: *id },
                    client.token.as_deref(),
                )?)
                .await
                .map_err(|s| refused("fetching the document", s))?
                .into_inner();
            match output {
                Output::Json => {
                    let mut v = resp
                        .document
                        .as_ref()
                        .map(document_json)
                        .unwrap_or_default();
                    v["text"] = json!(resp.text);
                    output::print_json(&v)?;
                }
                Output::Table => print!("{}", resp.text),
            }
            Ok(())
        }
        DocsAction::Rm {
            ids,
            collection,
            client,
        } => {
            let mut c = connect(client).await?;
            if let Some(name) = collection {
                let n = c
                    .delete_document(authorized(
                        DeleteDocumentRequest {
                            id: 0,
                            collection: name.clone(),
                        },
                        client.token.as_deref(),
                    )?)
                    .await
                    .map_err(|s| refused("deleting the collection", s))?
                    .into_inner()
                    .deleted;
                println!("deleted collection {name} ({n} document(s))");
                return Ok(());
            }
            for &id in ids {
                if id == 0 {
                    bail!("document ids start at 1");
                }
                c.delete_document(authorized(
                    DeleteDocumentRequest {
                        id,
                        collection: String::new(),
                    },
                    client.token.as_deref(),
                )?)
                .await
                .map_err(|s| refused(&format!("deleting document {id}"), s))?;
                println!("deleted document {id}");
            }
            Ok(())
        }
        DocsAction::Search {
            query,
            k,
            collection,
            min_score,
            client,
            output,
        } => {
            let mut c = connect(client).await?;
            let resp = c
                .search_documents(authorized(
                    SearchDocumentsRequest {
                        query: query.clone(),
                        k: k.unwrap_or(0),
                        collection: collection.clone().unwrap_or_default(),
                        min_score: *min_score,
                    },
                    client.token.as_deref(),
                )?)
                .await
                .map_err(|s| refused("search", s))?
                .into_inner();
            match output {
                Output::Json => output::print_json(&json!({
                    "chunks": resp.chunks.iter().map(chunk_json).collect::<Vec<_>>(),
                    "trace": resp.trace.as_ref().map(|t| json!({
                        "model": t.model, "node": t.node, "device": t.device_id,
                        "backend": t.backend, "compute_ms": t.compute_ms,
                    })),
                }))?,
                Output::Table => print!("{}", chunks_table(&resp.chunks)),
            }
            Ok(())
        }
    }
}

/// The store's limits, for `docs add` to check files before sending them.
async fn store_info(c: &mut Client, client: &ClientArgs) -> Result<u64> {
    let info = c
        .document_store_info(authorized(
            DocumentStoreInfoRequest {},
            client.token.as_deref(),
        )?)
        .await
        .map_err(|s| refused("reading the document store's limits", s))
        .context("is the controller a version with the document store?")?
        .into_inner();
    Ok(info.max_document_bytes)
}

/// Adds one document; the controller's answer.
async fn add_one(
    c: &mut Client,
    client: &ClientArgs,
    collection: &str,
    source: String,
    text: String,
) -> Result<DocumentInfo, tonic::Status> {
    let req = AddDocumentsRequest {
        documents: Vec::new(),
        collection: collection.to_string(),
        items: vec![switchyard_proto::v1::DocumentInput { text, source }],
    };
    let request = authorized(req, client.token.as_deref())
        .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
    let mut docs = c.add_documents(request).await?.into_inner().documents;
    docs.pop()
        .ok_or_else(|| tonic::Status::internal("the controller returned no document"))
}
