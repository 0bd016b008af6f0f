//! The audit-log entry kinds a bundle's provenance is made of. The coordinator writes entries
//! under these names; they are defined here so writer and verifier cannot drift apart.

/// The first entry of a log: the federation, its model architecture and initial encoder.
pub const FEDERATION_CREATED: &str = "federation.created";
/// A round's new global model (its bytes in the log's blob store).
pub const ROUND_MODEL: &str = "round.model";
/// A federated `statistics` round fitted the feature encoder.
pub const ENCODER_FITTED: &str = "encoder.fitted";
/// A federated `calibrate` round set the alarm threshold of one model.
pub const THRESHOLD_CALIBRATED: &str = "threshold.calibrated";
