//! `POST /v1/embeddings`.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Serialize;
use switchyard_proto::v1::EmbedRequest;

use tracing::Instrument;

use super::AppState;
use super::chat::accepted;
use super::error::{HttpError, for_model};
use super::extract::JsonBody;
use super::{fields, trace};
use crate::validate::{self, invalid};

/// The response body, serialised straight from the vectors: each value as the shortest
/// decimal that reads back as the same f32 (a `serde_json::Value` would widen it to f64 and
/// print seventeen digits of noise, twice the bytes).
#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<Item<'a>>,
    model: &'a str,
    usage: Usage,
}

#[derive(Serialize)]
struct Item<'a> {
    object: &'static str,
    index: usize,
    embedding: Vector<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector<'a> {
    Float(&'a [f32]),
    Base64(String),
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u32,
    total_tokens: u32,
}

/// Little-endian f32 bytes, base64 (OpenAI's `encoding_format: "base64"`).
pub(crate) fn encode_base64(values: &[f32]) -> String {
    let mut bytes = Vec::with_capacity(values.len() * 4);
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(crate) async fn create(
    State(st): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Response, HttpError> {
    let started = Instant::now();
    fields::only(
        &body,
        "",
        &["model", "input", "encoding_format", "dimensions", "user"],
        &[],
    )?;
    let model = fields::req_string(&body, "model")?;
    validate::model(&model)?;
    let inputs = fields::text_inputs(&body, "input")?;
    validate::inputs(&inputs, "input", &st.cfg)?;
    let base64 = match fields::opt_string(&body, "encoding_format")?.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(invalid(
                "encoding_format",
                format!("encoding_format must be 'float' or 'base64', got '{other}'"),
            )
            .into());
        }
    };
    let dimensions = fields::opt_positive_u32(&body, "dimensions")?;
    let span = accepted::span("embeddings", &model, &accepted::attribution(&body)?);

    let deadline = st.deadline();
    let resp = st
        .until(
            deadline,
            st.inf.embed(
                EmbedRequest {
                    model: model.clone(),
                    inputs,
                },
                deadline,
            ),
        )
        .instrument(span)
        .await
        .map_err(for_model)?;

    if let (Some(d), Some(first)) = (dimensions, resp.embeddings.first())
        && d as usize != first.values.len()
    {
        return Err(invalid(
            "dimensions",
            format!(
                "model {model} returns {} dimensions and cannot shorten them; drop 'dimensions' or set it to {}",
                first.values.len(),
                first.values.len()
            ),
        )
        .into());
    }

    let used_model = resp
        .trace
        .as_ref()
        .map(|t| t.model.as_str())
        .filter(|m| !m.is_empty())
        .unwrap_or(&model);
    let body = EmbeddingList {
        object: "list",
        data: resp
            .embeddings
            .iter()
            .enumerate()
            .map(|(index, e)| Item {
                object: "embedding",
                index,
                embedding: if base64 {
                    Vector::Base64(encode_base64(&e.values))
                } else {
                    Vector::Float(&e.values)
                },
            })
            .collect(),
        model: used_model,
        usage: Usage {
            prompt_tokens: resp.prompt_tokens,
            total_tokens: resp.prompt_tokens,
        },
    };
    let mut headers = trace::headers(resp.trace.iter());
    trace::put_total(&mut headers, started);
    Ok((headers, Json(body)).into_response())
}
