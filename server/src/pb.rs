//! The generated protobuf and gRPC code (see `proto/`).

#![allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations
)]

/// The public services (no protobuf package, wire-compatible with the seed system).
pub mod api {
    tonic::include_proto!("_");
}

/// elastickv's cluster services (package `elastickv.v1`).
pub mod cluster {
    tonic::include_proto!("elastickv.v1");
}

/// The encoded descriptors of every service, for gRPC reflection.
pub const DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/elastickv_descriptor.bin"));
