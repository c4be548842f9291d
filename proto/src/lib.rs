//! Generated code for the `switchyard.v1` gRPC API, the one error table, and the wire
//! conversions shared by every crate (core ↔ protocol kinds, names as users type them).

/// The `switchyard.v1` package (generated; lints for hand-written code do not apply).
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("switchyard.v1");

    /// Encoded `FileDescriptorSet` for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/switchyard_descriptor.bin"));
}

pub mod attributes;
pub mod codec;
pub mod convert;
pub mod endpoint;
pub mod errors;
pub mod model_entry;
pub mod names;
