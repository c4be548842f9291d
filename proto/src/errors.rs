//! The one table that maps Switchyard error classes to gRPC status codes, HTTP status codes
//! and OpenAI error types. Every server (agent data path, controller gRPC, HTTP API) goes
//! through it, so the same failure always looks the same to clients.
//!
//! A status can also say what it is about: an agent that was reached and failed on one of
//! its devices (a model that does not compile there, a runtime error) marks its status with
//! [`SCOPE_KEY`]` = device` ([`ErrorClass::device_status`]). The controller's retry rule then
//! charges that device only; an unmarked `Unavailable` is a transport failure — the agent
//! could not be reached — and concerns the whole node.

use tonic::{Code, Status};

/// Error classes clients can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bad input: fix the request.
    InvalidArgument,
    /// Unknown model, device or node.
    NotFound,
    /// A live node already holds the name.
    AlreadyExists,
    /// Queue full or out of memory: retry later.
    ResourceExhausted,
    /// Device or node down: retryable elsewhere.
    Unavailable,
    /// Model not loaded / not servable in the current state.
    FailedPrecondition,
    /// The request's deadline passed.
    DeadlineExceeded,
    /// Missing or wrong credentials.
    Unauthenticated,
    /// The caller is known but its credential does not cover the call (a token's scope).
    PermissionDenied,
    /// A bug or an unexpected runtime failure.
    Internal,
}

/// One row of the table.
struct Row {
    class: ErrorClass,
    grpc: Code,
    http: u16,
    openai_type: &'static str,
}

const TABLE: &[Row] = &[
    Row {
        class: ErrorClass::InvalidArgument,
        grpc: Code::InvalidArgument,
        http: 400,
        openai_type: "invalid_request_error",
    },
    Row {
        class: ErrorClass::NotFound,
        grpc: Code::NotFound,
        http: 404,
        openai_type: "invalid_request_error",
    },
    Row {
        class: ErrorClass::AlreadyExists,
        grpc: Code::AlreadyExists,
        http: 409,
        openai_type: "invalid_request_error",
    },
    Row {
        class: ErrorClass::ResourceExhausted,
        grpc: Code::ResourceExhausted,
        http: 429,
        openai_type: "rate_limit_error",
    },
    Row {
        class: ErrorClass::Unavailable,
        grpc: Code::Unavailable,
        http: 503,
        openai_type: "server_error",
    },
    Row {
        class: ErrorClass::FailedPrecondition,
        grpc: Code::FailedPrecondition,
        http: 409,
        openai_type: "invalid_request_error",
    },
    Row {
        class: ErrorClass::DeadlineExceeded,
        grpc: Code::DeadlineExceeded,
        http: 504,
        openai_type: "timeout_error",
    },
    Row {
        class: ErrorClass::Unauthenticated,
        grpc: Code::Unauthenticated,
        http: 401,
        openai_type: "authentication_error",
    },
    Row {
        class: ErrorClass::PermissionDenied,
        grpc: Code::PermissionDenied,
        http: 403,
        openai_type: "permission_error",
    },
    Row {
        class: ErrorClass::Internal,
        grpc: Code::Internal,
        http: 500,
        openai_type: "server_error",
    },
];

impl ErrorClass {
    fn row(self) -> &'static Row {
        TABLE
            .iter()
            .find(|r| r.class == self)
            .expect("every class has a row")
    }

    /// gRPC status code.
    pub fn grpc_code(self) -> Code {
        self.row().grpc
    }

    /// HTTP status code.
    pub fn http_status(self) -> u16 {
        self.row().http
    }

    /// OpenAI `error.type`.
    pub fn openai_type(self) -> &'static str {
        self.row().openai_type
    }

    /// A gRPC status of this class.
    pub fn status(self, message: impl Into<String>) -> Status {
        Status::new(self.grpc_code(), message)
    }

    /// A status of this class that says it concerns one device of the sender (see the module
    /// docs): the sender was reached, and another device of the same node may succeed.
    pub fn device_status(self, message: impl Into<String>) -> Status {
        let mut status = self.status(message);
        status.metadata_mut().insert(
            SCOPE_KEY,
            tonic::metadata::MetadataValue::from_static(SCOPE_DEVICE),
        );
        status
    }

    /// The class of a gRPC status received from a peer (unknown codes are `Internal`).
    pub fn from_grpc(code: Code) -> ErrorClass {
        TABLE
            .iter()
            .find(|r| r.grpc == code)
            .map(|r| r.class)
            .unwrap_or(match code {
                Code::Cancelled | Code::Aborted => ErrorClass::Unavailable,
                Code::OutOfRange => ErrorClass::InvalidArgument,
                _ => ErrorClass::Internal,
            })
    }
}

/// Metadata key of a status's scope marker.
pub const SCOPE_KEY: &str = "x-switchyard-scope";
/// Its value on a status about one device.
pub const SCOPE_DEVICE: &str = "device";

/// True when the sender marked `status` as concerning one of its devices.
pub fn is_device_scoped(status: &Status) -> bool {
    status
        .metadata()
        .get(SCOPE_KEY)
        .is_some_and(|v| v.as_bytes() == SCOPE_DEVICE.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent_both_ways() {
        for row in TABLE {
            assert_eq!(ErrorClass::from_grpc(row.grpc), row.class);
        }
        assert_eq!(ErrorClass::ResourceExhausted.http_status(), 429);
        assert_eq!(ErrorClass::NotFound.status("x").code(), Code::NotFound);
        assert_eq!(
            ErrorClass::from_grpc(Code::Cancelled),
            ErrorClass::Unavailable
        );
    }

    #[test]
    fn a_device_status_keeps_its_class_and_carries_the_marker() {
        let s = ErrorClass::Unavailable.device_status("cannot compile");
        assert_eq!(s.code(), Code::Unavailable);
        assert!(is_device_scoped(&s));
        assert!(!is_device_scoped(&ErrorClass::Unavailable.status("x")));
        // The marker travels as gRPC metadata: it survives the header round trip.
        let mut headers = tonic::codegen::http::HeaderMap::new();
        s.add_header(&mut headers).unwrap();
        let back = Status::from_header_map(&headers).unwrap();
        assert!(is_device_scoped(&back), "{back:?}");
    }
}
