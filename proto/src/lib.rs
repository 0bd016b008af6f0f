//! The fedsoc wire protocol: the .proto files under `proto/`, their
//! generated tonic/prost code, and the two rules every peer must share
//! about it — the protocol version and how vectors are cut into chunks.
//!
//! # Layout
//!
//! - [`v1`]: generated messages, the `Federation` and `Admin` services.
//! - [`chunk`]: splitting a vector into [`v1::TensorChunk`]s and reassembling
//!   them, refusing gaps, overlaps and foreign tasks.
//! - [`fault`]: stage names, and the fault points process-level tests use.
//! - [`session_end`]: why the coordinator ended a participant's session,
//!   as status metadata the agent acts on.
#![forbid(unsafe_code)]

pub mod chunk;
pub mod fault;

/// Generated from `proto/fedsoc/v1/federation.proto`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("fedsoc.v1");
}

/// Version spoken on the wire; a peer with another one is refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest gRPC message either side accepts.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// Why the coordinator ended a participant's session: carried in the
/// final status's metadata under [`session_end::KEY`], so that the agent
/// acts on the reason without parsing the human-readable message.
pub mod session_end {
    /// Metadata key naming the reason.
    pub const KEY: &str = "fedsoc-session-end";
    /// Another agent with the same certificate opened a session and took
    /// this one's place; reconnecting would only take it back in turn.
    pub const REPLACED: &str = "replaced";
    /// Metadata key with the address the replacing agent connected from,
    /// when the coordinator knows it.
    pub const REPLACED_BY: &str = "fedsoc-replaced-by";
}

/// `SecAggChunk.stage`: participants send their message *of* stage s
/// (0 advertise keys, 1 graph-seed nonce, 2 share keys, 3 masked input,
/// 4 consistency signature, 5 unmasking shares); the coordinator sends the
/// message that *starts* stage s (1 seed commitments, 2 key bundle, 3 share
/// bundle, 4 survivor list, 5 signed survivor list).
pub mod secagg_stage {
    pub const ADVERTISE_KEYS: u32 = 0;
    pub const REVEAL_SEED: u32 = 1;
    pub const SHARE_KEYS: u32 = 2;
    pub const MASKED_INPUT: u32 = 3;
    pub const CONSISTENCY: u32 = 4;
    pub const UNMASK: u32 = 5;
}
