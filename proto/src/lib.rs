//! The fedsoc wire protocol: the .proto files under `proto/`, their
//! generated tonic/prost code, and the two rules every peer must share
//! about it — the protocol version and how vectors are cut into chunks.
//!
//! # Layout
//!
//! - [`v1`]: generated messages, the `Federation` and `Admin` services.
//! - [`chunk`]: splitting a vector into [`v1::TensorChunk`]s and reassembling
//!   them, refusing gaps, overlaps and foreign tasks.
#![forbid(unsafe_code)]

pub mod chunk;

/// Generated from `proto/fedsoc/v1/federation.proto`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("fedsoc.v1");
}

/// Version spoken on the wire; a peer with another one is refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest gRPC message either side accepts.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
