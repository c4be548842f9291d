//! The Switchyard controller as a library: cluster state and its services, placement,
//! dispatch to agents, the pipeline behind the client APIs, the residency loop, metrics
//! and the server that starts them. It knows agents only through the gRPC protocol.

pub mod cluster;
pub mod config;
pub mod dispatch;
pub mod documents;
pub mod http_tls;
pub mod metrics;
pub mod models;
pub mod pipeline;
pub mod placement;
pub mod residency;
pub mod security;
pub mod server;
pub mod tier_router;
