//! Generated code for the `switchyard.v1` gRPC API, plus small conversions shared by
//! every crate (kind names as users type them).

#![allow(clippy::all, missing_docs)]

/// The `switchyard.v1` package.
pub mod v1 {
    tonic::include_proto!("switchyard.v1");

    /// Encoded `FileDescriptorSet` for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/switchyard_descriptor.bin"));
}

pub mod codec;
pub mod errors;
pub mod names;
