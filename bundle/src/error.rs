//! [`BundleError`]: each way a bundle can fail to build, read or verify, naming what is wrong
//! and what to do about it.

use std::path::PathBuf;

use crate::format::FORMAT_VERSION;

const EXPORT_AGAIN: &str =
    "do not deploy this bundle; export it again with `fedsoc model export --format bundle`";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    // Files and folders.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the bundle {dir} has no {file}: a bundle folder holds model.safetensors, encoder.json, provenance.json and optionally threshold.json; copy the whole folder"
    )]
    MissingFile { dir: PathBuf, file: &'static str },
    #[error("the bundle's {file} is garbled ({reason}); {EXPORT_AGAIN}")]
    Garbled { file: &'static str, reason: String },
    #[error(
        "the bundle's {file} has format version {found}; this fedsoc reads versions 1 to {FORMAT_VERSION}: upgrade fedsoc"
    )]
    UnsupportedVersion { file: &'static str, found: u32 },
    #[error(
        "{dir} exists and is not a model bundle ({reason}); refusing to overwrite it: choose another --out"
    )]
    NotABundleFolder { dir: PathBuf, reason: String },
    #[error("the bundle blob is malformed: {reason}; ask the sender to send it again")]
    Container { reason: String },

    // Building from the audit log.
    #[error("reading the audit log: {0}")]
    Log(#[from] fedsoc_audit::AuditError),
    #[error(
        "the audit log has no federation.created entry: it is not a fedsoc coordinator's log, or its beginning is missing"
    )]
    NoFederation,
    #[error(
        "the audit log records no model for {which}: run the round first, or pick a round `fedsoc audit show` lists"
    )]
    NoRoundModel { which: String },
    #[error(
        "round 0 is the initial, untrained model: a bundle carries a trained round's model; pass --round 1 or later"
    )]
    InitialModel,
    #[error(
        "no signed checkpoint covers entry {index} yet (newest checkpoint: {newest}); the coordinator signs one after each round attempt: wait for it and export again"
    )]
    NoCheckpoint { index: u64, newest: String },
    #[error(
        "the log entry {index} ({kind}) has a body this fedsoc cannot read ({reason}); the log is damaged or from an incompatible fedsoc"
    )]
    EntryBody {
        index: u64,
        kind: &'static str,
        reason: String,
    },
    #[error(
        "the model blob of round {round} (entry {index}) {reason}; the storage folder is damaged: restore the audit log's blobs from a backup"
    )]
    ModelBlob {
        round: u64,
        index: u64,
        reason: String,
    },
    #[error(
        "the encoder in coordinator.toml hashes to {config_sha256}, but federation.created (entry {index}) records {logged_sha256}: pass the coordinator.toml of the federation that wrote this log"
    )]
    ConfigEncoder {
        index: u64,
        config_sha256: String,
        logged_sha256: String,
    },
    #[error(
        "the encoder.fitted entry {index} records encoder_sha256 {logged} but its encoder_json hashes to {actual}: the coordinator wrote an inconsistent entry; report it"
    )]
    FittedEncoderInconsistent {
        index: u64,
        logged: String,
        actual: String,
    },
    #[error("exporting the weights: {0}")]
    Model(#[from] fedsoc_models::ModelError),

    // Verification: the chain of trust.
    #[error(
        "the bundle's coordinator certificate is not trusted: {reason}; check --ca is the federation's CA, or do not deploy this bundle"
    )]
    Certificate { reason: String },
    #[error("the bundle's checkpoint is malformed ({reason}); {EXPORT_AGAIN}")]
    CheckpointUnreadable { reason: String },
    #[error(
        "the bundle's checkpoint is not signed by its coordinator certificate ({reason}): the checkpoint or the certificate was changed; do not deploy this bundle"
    )]
    CheckpointSignature { reason: String },
    #[error(
        "the checkpoint is of log {origin:?} but the entries are of federation {federation:?} (log {expected:?}): the bundle mixes two federations; do not deploy it"
    )]
    OriginMismatch {
        origin: String,
        federation: String,
        expected: String,
    },
    #[error(
        "provenance entry {position} (said to be log index {index}) is not a canonical audit entry ({reason}); {EXPORT_AGAIN}"
    )]
    EntryUndecodable {
        position: usize,
        index: u64,
        reason: String,
    },
    #[error(
        "provenance entry {position} says log index {index} but the entry's own sequence number is {seq}: the provenance was edited; do not deploy this bundle"
    )]
    EntryIndexMismatch {
        position: usize,
        index: u64,
        seq: u64,
    },
    #[error(
        "entry {index} ({kind}) is not in the signed checkpoint's log (size {tree_size}): {reason}. The entry, its proof or the checkpoint was changed or comes from another log; do not deploy this bundle"
    )]
    NotIncluded {
        index: u64,
        kind: String,
        tree_size: u64,
        reason: String,
    },
    #[error("the provenance has no {kind} entry; every bundle needs one: {EXPORT_AGAIN}")]
    EntryMissing { kind: &'static str },
    #[error(
        "the provenance has {kind} more than once (entries {first} and {second}); a bundle rests on one of each: {EXPORT_AGAIN}"
    )]
    EntryDuplicate {
        kind: String,
        first: u64,
        second: u64,
    },
    #[error(
        "the provenance holds entry {index} of kind {kind:?}, which a bundle does not use: {EXPORT_AGAIN}"
    )]
    EntryUnexpected { index: u64, kind: String },
    #[error(
        "provenance.json says {field} is {stated:?} but the signed entries say {logged:?}: the summary was edited; do not deploy this bundle"
    )]
    SummaryMismatch {
        field: &'static str,
        stated: String,
        logged: String,
    },

    // Verification: the files against the entries.
    #[error(
        "the weights do not match the model hash logged in round {round} (entry {index}): they hash to {actual}, the log records {logged}; the bundle's model.safetensors was changed, do not deploy it"
    )]
    ModelHashMismatch {
        round: u64,
        index: u64,
        logged: String,
        actual: String,
    },
    #[error(
        "the bundle's model.safetensors is unreadable ({reason}); it was changed or truncated: {EXPORT_AGAIN}"
    )]
    ModelUnreadable { reason: String },
    #[error(
        "the model architecture in model.safetensors ({found}) is not the federation's ({logged}, federation.created entry {index}); the bundle's model.safetensors was changed, do not deploy it"
    )]
    ArchitectureMismatch {
        index: u64,
        logged: String,
        found: String,
    },
    #[error(
        "model.safetensors' metadata says {field} is {found:?} but the signed entries say {logged:?}; the bundle's model.safetensors was changed, do not deploy it"
    )]
    ModelMetadataMismatch {
        field: &'static str,
        found: String,
        logged: String,
    },
    #[error(
        "the encoder does not match the encoder hash logged in {kind} (entry {index}): encoder.json hashes to {actual}, the log records {logged}; the bundle's encoder.json was changed, do not deploy it"
    )]
    EncoderHashMismatch {
        kind: &'static str,
        index: u64,
        logged: String,
        actual: String,
    },
    #[error(
        "the encoder was fitted in round {encoder_round} (entry {index}), after the model's round {model_round}: the model was not trained on it; {EXPORT_AGAIN}"
    )]
    EncoderAfterModel {
        index: u64,
        encoder_round: u64,
        model_round: u64,
    },
    #[error(
        "the bundle's encoder.json cannot encode rows for this model: {reason}; {EXPORT_AGAIN}"
    )]
    EncoderUnusable { reason: String },
    #[error(
        "threshold.json's {field} is not the value logged in threshold.calibrated (round {round}, entry {index}): the bundle's threshold.json was changed, do not deploy it"
    )]
    ThresholdMismatch {
        field: &'static str,
        round: u64,
        index: u64,
    },
    #[error(
        "the threshold calibrated in round {round} (entry {index}) is for {which} {logged}, not this bundle's {actual}: it does not apply to this model; {EXPORT_AGAIN}"
    )]
    ThresholdForOther {
        round: u64,
        index: u64,
        which: &'static str,
        logged: String,
        actual: String,
    },
    #[error(
        "the provenance holds a threshold.calibrated entry ({index}) but the bundle has no threshold.json: copy the whole bundle folder"
    )]
    ThresholdFileMissing { index: u64 },
    #[error(
        "the bundle has a threshold.json but no threshold.calibrated entry proves it: its threshold was added by hand; remove threshold.json or export the bundle again"
    )]
    ThresholdUnlogged,
}

impl BundleError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| BundleError::Io {
            action,
            path,
            source,
        }
    }
}
