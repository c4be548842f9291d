//! Optional bearer-token authentication of the `/v1` and `/api` routes. Tokens are never
//! logged.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use switchyard_proto::errors::ErrorClass;

use super::AppState;
use super::error::HttpError;
use crate::inference::ApiError;

/// The token of an `Authorization: Bearer <token>` value.
pub(crate) fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether `req` may pass: always when no tokens are configured, else with one of them.
pub(crate) fn check(st: &AppState, req: &Request) -> Result<(), ApiError> {
    if !st.cfg.auth_required() {
        return Ok(());
    }
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    match presented {
        Some(t) if st.cfg.token_ok(t) => Ok(()),
        Some(_) => Err(ApiError::new(
            ErrorClass::Unauthenticated,
            "invalid API token in the Authorization header",
        )),
        None => Err(ApiError::new(
            ErrorClass::Unauthenticated,
            "missing API token: send 'Authorization: Bearer <token>'",
        )),
    }
}

/// Refuses requests without a configured token when tokens are configured (OpenAI's error
/// shape).
pub(crate) async fn require_token(
    State(st): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    match check(&st, &req) {
        Ok(()) => next.run(req).await,
        Err(e) => HttpError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parses() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
    }
}
