//! Client APIs of the controller: the OpenAI-compatible HTTP API and the gRPC `Inference`
//! service. Both are thin layers over [`Inference`], which the controller's pipeline
//! implements; neither talks to agents or backends.
//!
//! Mounting (in the controller):
//! ```text
//! let inf: Arc<dyn switchyard_api::Inference> = ...;
//! let http = switchyard_api::http_router(inf.clone(), api_config.clone());
//! let grpc = switchyard_api::grpc_service(inf, &api_config);
//! tokio::spawn(switchyard_api::report_readiness(health_reporter, inf, tick, shutdown));
//! tonic::transport::Server::builder().add_service(grpc) /* + health, reflection */;
//! axum::serve(listener, http);
//! ```

pub mod config;
pub mod console;
pub mod credentials;
pub mod grpc;
pub mod http;
pub mod inference;
pub mod validate;

/// The fake [`Inference`] of the unit tests, also behind the `fake` feature for the fuzz
/// targets (`fuzz/`), which drive the real HTTP router with it.
#[cfg(any(test, feature = "fake"))]
#[doc(hidden)]
#[allow(missing_docs)]
pub mod fake;

pub use config::ApiConfig;
pub use grpc::{GrpcInference, grpc_service, report_readiness, set_serving};
pub use http::{http_router, http_router_with_console};
pub use inference::{ApiError, GenerateStream, Inference, KeepAlive};
