//! Bearer-token authentication of the `/v1` and `/api` routes, with scopes: document
//! changes and model load/unload need `admin`, everything else `infer` (see
//! [`crate::credentials`]). Tokens are never logged; a refusal's reason is, server side.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use switchyard_proto::errors::ErrorClass;

use super::AppState;
use super::error::HttpError;
use crate::credentials::{Refusal, Scope};
use crate::inference::ApiError;

/// The token of an `Authorization: Bearer <token>` value.
pub(crate) fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A refusal as the error the client gets: 401 without a valid token, 403 with one whose
/// scope does not cover the call.
pub(crate) fn refused(r: &Refusal) -> ApiError {
    let class = match r {
        Refusal::Scope { .. } => ErrorClass::PermissionDenied,
        _ => ErrorClass::Unauthenticated,
    };
    ApiError::new(class, r.to_string())
}

/// The scope a route needs: document changes are `admin`.
pub(crate) fn route_scope(method: &Method, path: &str) -> Scope {
    let documents = path == "/v1/documents" || path.starts_with("/v1/documents/");
    let search = path == "/v1/documents/search";
    if documents && !search && (method == Method::POST || method == Method::DELETE) {
        Scope::Admin
    } else {
        Scope::Infer
    }
}

/// The caller's scope, or the error it gets; a refusal is logged with its reason.
pub(crate) fn check(st: &AppState, req: &Request) -> Result<Scope, ApiError> {
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    st.creds
        .authorize(presented, route_scope(req.method(), req.uri().path()))
        .map_err(|r| {
            tracing::info!(path = %req.uri().path(), reason = %r, "API call refused");
            refused(&r)
        })
}

/// Refuses requests without a token that covers them (OpenAI's error shape); the caller's
/// scope goes into the request's extensions for handlers that decide by the body (Ollama's
/// load/unload).
pub(crate) async fn require_token(
    State(st): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    match check(&st, &req) {
        Ok(scope) => {
            req.extensions_mut().insert(scope);
            next.run(req).await
        }
        Err(e) => HttpError::from(e).into_response(),
    }
}

/// Whether `scope` (from the request's extensions) may load or unload models.
pub(crate) fn may_change_residency(scope: Option<Scope>) -> Result<(), ApiError> {
    match scope {
        Some(Scope::Admin) => Ok(()),
        _ => Err(refused(&Refusal::Scope {
            id: "presented".into(),
            has: "infer",
            needs: "admin",
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_changes_need_admin_and_search_does_not() {
        assert_eq!(route_scope(&Method::POST, "/v1/documents"), Scope::Admin);
        assert_eq!(
            route_scope(&Method::DELETE, "/v1/documents/7"),
            Scope::Admin
        );
        assert_eq!(
            route_scope(&Method::POST, "/v1/documents/search"),
            Scope::Infer
        );
        assert_eq!(route_scope(&Method::GET, "/v1/documents"), Scope::Infer);
        assert_eq!(
            route_scope(&Method::POST, "/v1/chat/completions"),
            Scope::Infer
        );
    }

    #[test]
    fn bearer_parses() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
    }
}
