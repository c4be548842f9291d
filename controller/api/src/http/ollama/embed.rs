//! `POST /api/embed` (`input`: a string or an array of strings → `embeddings`) and the
//! legacy `POST /api/embeddings` (`prompt` → `embedding`).

use std::time::Instant;

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use switchyard_proto::v1::{EmbedRequest, EmbedResponse};

use super::request::{self, only};
use super::{OllamaBody, OllamaError, model_name};
use crate::credentials::Scope;
use crate::http::{AppState, fields, trace};
use crate::inference::{ApiError, KeepAlive};
use crate::validate;
use crate::validate::invalid;

/// Options an embedding honours: none (sampling means nothing here), so any is refused.
fn no_options(body: &Map<String, Value>) -> Result<(), ApiError> {
    match fields::get(body, "options") {
        None => Ok(()),
        Some(Value::Object(o)) if o.is_empty() => Ok(()),
        Some(Value::Object(o)) => {
            let key = o.keys().next().cloned().unwrap_or_default();
            Err(invalid(
                &format!("options.{key}"),
                format!("options.{key} is not supported: embeddings take no options"),
            ))
        }
        Some(v) => Err(invalid(
            "options",
            format!("options must be an object, got {}", fields::type_name(v)),
        )),
    }
}

/// Embeds `inputs` with the model of `requested`, then applies the request's keep-alive.
async fn run(
    st: &AppState,
    body: &Map<String, Value>,
    requested: &str,
    inputs: Vec<String>,
    scope: Option<Scope>,
) -> Result<EmbedResponse, ApiError> {
    let model = model_name(requested).to_string();
    let keep = request::keep_alive(body)?;
    if keep == KeepAlive::Unload {
        crate::http::auth::may_change_residency(scope)?;
    }
    st.inf.check_keep_alive(&model, keep)?;
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
        .await?;
    st.inf.set_keep_alive(&model, keep)?;
    Ok(resp)
}

pub(crate) async fn embed(
    State(st): State<AppState>,
    scope: Option<Extension<Scope>>,
    OllamaBody(body): OllamaBody,
) -> Result<Response, OllamaError> {
    let started = Instant::now();
    only(
        &body,
        "",
        &[
            "model",
            "input",
            "truncate",
            "options",
            "keep_alive",
            "dimensions",
        ],
    )?;
    no_options(&body)?;
    let requested = fields::req_string(&body, "model")?;
    validate::model(&requested)?;
    if fields::opt_bool(&body, "truncate")? == Some(false) {
        return Err(invalid(
            "truncate",
            "truncate false is not supported: each model's registry entry decides what happens to an input over its token limit",
        )
        .into());
    }
    let dimensions = fields::opt_positive_u32(&body, "dimensions")?;
    let inputs = fields::text_inputs(&body, "input")?;
    validate::inputs(&inputs, "input", &st.cfg)?;
    let resp = run(&st, &body, &requested, inputs, scope.map(|e| e.0)).await?;
    if let (Some(d), Some(first)) = (dimensions, resp.embeddings.first())
        && d as usize != first.values.len()
    {
        return Err(invalid(
            "dimensions",
            format!(
                "model {requested} returns {} dimensions and cannot shorten them; drop 'dimensions' or set it to {}",
                first.values.len(),
                first.values.len()
            ),
        )
        .into());
    }
    let load_ns = resp.trace.as_ref().map_or(0.0, |t| t.load_ms * 1e6) as u64;
    // Typed, so each value prints as the shortest decimal of its f32 (see the OpenAI route).
    let out = EmbedBody {
        model: &requested,
        embeddings: resp
            .embeddings
            .iter()
            .map(|e| e.values.as_slice())
            .collect(),
        total_duration: started.elapsed().as_nanos() as u64,
        load_duration: load_ns,
        prompt_eval_count: resp.prompt_tokens,
    };
    let mut headers = trace::headers(resp.trace.iter());
    trace::put_total(&mut headers, started);
    Ok((headers, axum::Json(out)).into_response())
}

/// `/api/embed`'s answer.
#[derive(serde::Serialize)]
struct EmbedBody<'a> {
    model: &'a str,
    embeddings: Vec<&'a [f32]>,
    total_duration: u64,
    load_duration: u64,
    prompt_eval_count: u32,
}

pub(crate) async fn embeddings(
    State(st): State<AppState>,
    scope: Option<Extension<Scope>>,
    OllamaBody(body): OllamaBody,
) -> Result<Response, OllamaError> {
    let started = Instant::now();
    only(&body, "", &["model", "prompt", "options", "keep_alive"])?;
    no_options(&body)?;
    let requested = fields::req_string(&body, "model")?;
    validate::model(&requested)?;
    let prompt = fields::req_string(&body, "prompt")?;
    let inputs = vec![prompt];
    validate::inputs(&inputs, "prompt", &st.cfg)?;
    let resp = run(&st, &body, &requested, inputs, scope.map(|e| e.0)).await?;
    let embedding = resp
        .embeddings
        .into_iter()
        .next()
        .map(|e| e.values)
        .unwrap_or_default();
    let mut headers = trace::headers(resp.trace.iter());
    trace::put_total(&mut headers, started);
    Ok((headers, axum::Json(json!({"embedding": embedding}))).into_response())
}
