//! Backend errors → gRPC status, through the shared table in `switchyard_proto::errors`.
//!
//! The agent answering at all proves it is reachable: every failure of a model or runtime on
//! a device (it does not load or compile there, the runtime or its queue fails) is sent as a
//! device-scoped status ([`ErrorClass::device_status`]), so the controller excludes that
//! device and not the node. Bad requests stay plain request errors.

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

/// Whether an error concerns the device it happened on (rather than the request).
pub fn is_device_failure(err: &BackendError) -> bool {
    !matches!(
        err,
        BackendError::InvalidInput(_) | BackendError::WrongStage { .. }
    )
}

/// A gRPC status for a backend error (device-scoped unless the request is at fault).
pub fn to_status(err: &BackendError) -> Status {
    let class = class_of(err);
    if is_device_failure(err) {
        class.device_status(err.to_string())
    } else {
        class.status(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_proto::errors::is_device_scoped;

    #[test]
    fn a_model_that_does_not_compile_on_a_device_is_a_device_scoped_status() {
        let compile = BackendError::DeviceUnsupported {
            backend: "openvino".into(),
            device: "npu0".into(),
            reason: "cannot compile dynamic shapes".into(),
        };
        let s = to_status(&compile);
        assert_eq!(s.code(), tonic::Code::Unavailable, "clients still see 503");
        assert!(is_device_scoped(&s));
        for e in [
            BackendError::InvalidModel {
                model: "m".into(),
                reason: "bad graph".into(),
            },
            BackendError::ModelFileMissing("m.onnx".into()),
            BackendError::NotLoaded("m".into()),
            BackendError::Inference("boom".into()),
            BackendError::QueueFull("m".into()),
        ] {
            assert!(is_device_scoped(&to_status(&e)), "{e}");
        }
        let bad = to_status(&BackendError::InvalidInput("empty".into()));
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        assert!(
            !is_device_scoped(&bad),
            "the request, not the device, is at fault"
        );
    }
}
