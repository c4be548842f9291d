//! Client APIs of the controller: the OpenAI-compatible HTTP API and the gRPC `Inference`
//! service. Both are thin layers over [`Inference`], which the controller's pipeline
//! implements; neither talks to agents or backends.

pub mod inference;

pub use inference::{ApiError, GenerateStream, Inference};
