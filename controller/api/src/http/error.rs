//! Errors as HTTP responses in OpenAI's shape `{"error":{"message","type","param","code"}}`,
//! with the status from the one table in `switchyard_proto::errors`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use switchyard_proto::errors::ErrorClass;

use crate::inference::ApiError;

/// An error response of the HTTP API.
#[derive(Debug, Clone)]
pub struct HttpError {
    /// HTTP status.
    pub status: StatusCode,
    /// OpenAI `error.type`.
    pub kind: &'static str,
    /// OpenAI `error.message`.
    pub message: String,
    /// OpenAI `error.param`.
    pub param: Option<String>,
    /// OpenAI `error.code`.
    pub code: Option<&'static str>,
}

impl HttpError {
    /// An error with an explicit status (for failures outside the class table: 404 route,
    /// 405, 413, 415).
    pub fn with_status(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        HttpError {
            status,
            kind: if status.is_server_error() {
                "server_error"
            } else {
                "invalid_request_error"
            },
            message: message.into(),
            param: None,
            code: Some(code),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

/// OpenAI-style `error.code` of a class (and the parameter at fault).
fn code_of(class: ErrorClass, param: Option<&str>) -> Option<&'static str> {
    Some(match class {
        ErrorClass::NotFound if param == Some("model") => "model_not_found",
        ErrorClass::NotFound => "not_found",
        ErrorClass::InvalidArgument => "invalid_value",
        ErrorClass::AlreadyExists => "already_exists",
        ErrorClass::ResourceExhausted => "rate_limit_exceeded",
        ErrorClass::Unavailable => "unavailable",
        ErrorClass::FailedPrecondition => "failed_precondition",
        ErrorClass::DeadlineExceeded => "timeout",
        ErrorClass::Unauthenticated => "invalid_api_key",
        ErrorClass::PermissionDenied => "insufficient_scope",
        ErrorClass::Internal => "internal_error",
    })
}

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        HttpError {
            status: StatusCode::from_u16(e.class.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            kind: e.class.openai_type(),
            code: code_of(e.class, e.param.as_deref()),
            message: e.message,
            param: e.param,
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), message = %self.message, "HTTP request failed");
        }
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// An error for a request that names a model: an unknown model becomes OpenAI's
/// `model_not_found` on `param = "model"`.
pub(crate) fn for_model(e: ApiError) -> HttpError {
    let mut e = e;
    if e.class == ErrorClass::NotFound && e.param.is_none() {
        e.param = Some("model".into());
    }
    e.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_map_through_the_table() {
        let e: HttpError = ApiError::new(ErrorClass::ResourceExhausted, "queue full").into();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.kind, "rate_limit_error");
        let e = for_model(ApiError::new(ErrorClass::NotFound, "unknown model x"));
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.code, Some("model_not_found"));
        assert_eq!(e.body()["error"]["param"], "model");
        let e: HttpError = ApiError::new(ErrorClass::DeadlineExceeded, "late").into();
        assert_eq!(e.status, StatusCode::GATEWAY_TIMEOUT);
    }
}
