//! The JSON body extractor: axum's own rejections (bad JSON, wrong content type, body over
//! the limit) come out in OpenAI's error shape.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::AppState;
use super::error::HttpError;

/// A JSON object request body.
pub struct JsonBody(pub Map<String, Value>);

impl FromRequest<AppState> for JsonBody {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match axum::Json::<Value>::from_request(req, state).await {
            Ok(axum::Json(Value::Object(map))) => Ok(JsonBody(map)),
            Ok(axum::Json(other)) => Err(HttpError::with_status(
                StatusCode::BAD_REQUEST,
                "invalid_request_body",
                format!(
                    "the request body must be a JSON object, got {}",
                    super::fields::type_name(&other)
                ),
            )),
            Err(rejection) => Err(map_rejection(rejection, state.cfg.max_body_bytes)),
        }
    }
}

/// Maps one of axum's JSON rejections to an OpenAI-shaped error.
fn map_rejection(r: JsonRejection, max_body_bytes: usize) -> HttpError {
    match r {
        JsonRejection::MissingJsonContentType(_) => HttpError::with_status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/json",
        ),
        JsonRejection::JsonSyntaxError(e) => HttpError::with_status(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the request body is not valid JSON: {}", e.body_text()),
        ),
        JsonRejection::JsonDataError(e) => HttpError::with_status(
            StatusCode::BAD_REQUEST,
            "invalid_request_body",
            e.body_text(),
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => HttpError::with_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("the request body is over the limit max_body_bytes ({max_body_bytes} bytes)"),
        ),
        other => HttpError::with_status(other.status(), "invalid_request_body", other.body_text()),
    }
}
