//! Backend errors → gRPC status, through the shared table in `switchyard_proto::errors`.

use switchyard_backend_core::BackendError;
use switchyard_proto::errors::ErrorClass;
use tonic::Status;

/// The error class of a backend error.
pub fn class_of(err: &BackendError) -> ErrorClass {
    match err {
        BackendError::InvalidInput(_) | BackendError::WrongStage { .. } => {
            ErrorClass::InvalidArgument
        }
        BackendError::ModelFileMissing(_) | BackendError::InvalidModel { .. } => {
            ErrorClass::FailedPrecondition
        }
        BackendError::QueueFull(_) | BackendError::OutOfMemory(_) => ErrorClass::ResourceExhausted,
        BackendError::RuntimeUnavailable(_)
        | BackendError::DeviceUnsupported { .. }
        | BackendError::NotLoaded(_) => ErrorClass::Unavailable,
        BackendError::Inference(_) => ErrorClass::Internal,
    }
}

/// A gRPC status for a backend error.
pub fn to_status(err: &BackendError) -> Status {
    class_of(err).status(err.to_string())
}
