//! The one table that maps Switchyard error classes to gRPC status codes, HTTP status codes
//! and OpenAI error types. Every server (agent data path, controller gRPC, HTTP API) goes
//! through it, so the same failure always looks the same to clients.

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

    /// The class of a gRPC status received from a peer (unknown codes are `Internal`).
    pub fn from_grpc(code: Code) -> ErrorClass {
        TABLE
            .iter()
            .find(|r| r.grpc == code)
            .map(|r| r.class)
            .unwrap_or(match code {
                Code::Cancelled | Code::Aborted => ErrorClass::Unavailable,
                Code::OutOfRange => ErrorClass::InvalidArgument,
                Code::PermissionDenied => ErrorClass::Unauthenticated,
                _ => ErrorClass::Internal,
            })
    }
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
}
