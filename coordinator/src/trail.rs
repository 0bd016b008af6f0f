//! The audit trail: what the coordinator writes to the auditors' log
//! (fedsoc-audit) and in which shape. Every entry is a `kind` and a JSON
//! body below; large items (models, certificates, the messages of each
//! stage, the aggregate) go to the log's blob store and are named by their
//! SHA-256. An auditor replays every round from these entries and blobs
//! alone (see `replay`), seeing exactly what the coordinator saw: masked
//! vectors, encrypted shares and revealed shares, never one update.
//!
//! Per round attempt the log holds, in order: `round.opened`, one
//! `round.stage` per stage (the messages the coordinator accepted and who
//! dropped), then `round.aggregated` and `round.model`, or `round.aborted`;
//! `round.metrics` when an evaluation is reported. A checkpoint is signed
//! after every round attempt and sent to every participant.
//!
//! Participants cosign the checkpoints they verified (see
//! [`fedsoc_audit::cosignature`]); each checked cosignature becomes a
//! `checkpoint.cosigned` entry. They are held in memory when they arrive
//! and written at fixed points (before a round opens, before a checkpoint
//! is signed, and when the round loop is idle), so the log's persistence
//! points within a round do not depend on when a cosignature arrived.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use fedsoc_audit::{AuditLog, BlobId, SignedCheckpoint};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::CoordinatorError;
use crate::federation::InForce;
use crate::kind::{Conclusion, Query, RoundKind, SumState};
use crate::round::Dropout;
use fedsoc_datasets::statistics::Moments;

/// Entry kinds.
pub mod kind {
    pub const FEDERATION_CREATED: &str = "federation.created";
    pub const COORDINATOR_STARTED: &str = "coordinator.started";
    pub const ROUND_OPENED: &str = "round.opened";
    pub const ROUND_STAGE: &str = "round.stage";
    pub const ROUND_AGGREGATED: &str = "round.aggregated";
    pub const ROUND_MODEL: &str = "round.model";
    pub const ROUND_METRICS: &str = "round.metrics";
    pub const ROUND_ABORTED: &str = "round.aborted";
    /// Pass 1 of a statistics round: rows, means, vocabulary coverage and
    /// family counts ([`super::MomentsSummed`]).
    pub const STATISTICS_MOMENTS: &str = "statistics.moments";
    /// Pass 2: the federation's new encoder ([`super::EncoderFitted`]).
    pub const ENCODER_FITTED: &str = fedsoc_bundle::kind::ENCODER_FITTED;
    /// A calibrate round's threshold ([`super::ThresholdCalibrated`]).
    pub const THRESHOLD_CALIBRATED: &str = fedsoc_bundle::kind::THRESHOLD_CALIBRATED;
    /// A participant's cosignature over a checkpoint
    /// ([`fedsoc_audit::CosignatureRecord`]).
    pub const CHECKPOINT_COSIGNED: &str = fedsoc_audit::cosignature::KIND;
}

/// Stage numbers of a plaintext round in `round.stage` (secure rounds use
/// `fedsoc_proto::secagg_stage`).
pub const PLAINTEXT_UPDATES_STAGE: u32 = 100;

fn autoencoder_kind() -> String {
    "autoencoder".into()
}

/// `federation.created`: the first entry of a log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FederationCreated {
    pub federation: String,
    /// SHA-256 of the configuration file's text, and the text itself.
    pub config_sha256: String,
    pub config_toml: String,
    pub participants: Vec<String>,
    pub data_scientists: Vec<String>,
    /// "autoencoder" or "classifier" (logs from before classifiers: absent).
    #[serde(default = "autoencoder_kind")]
    pub model_kind: String,
    pub model_input_dim: usize,
    pub model_hidden: Vec<usize>,
    pub encoder_sha256: String,
    pub initial_model: BlobId,
    pub initial_model_sha256: String,
    /// The federation CA and the coordinator's certificate (PEM blobs):
    /// the coordinator's certificate key signs the checkpoints.
    pub ca_certificate: BlobId,
    pub coordinator_certificate: BlobId,
}

/// `coordinator.started`: a (re)start on an existing log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoordinatorStarted {
    pub config_sha256: String,
    pub completed_round: u64,
    pub global_model_sha256: String,
    /// Torn tails a crash left in the log's files, cut at this start:
    /// records that were being written when the process died, never
    /// acknowledged (absent in logs from before this field).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovered: Vec<RecoveredTail>,
    /// SHA-256 of the server optimiser's state the coordinator continues
    /// from (absent: FedAvg, or no training step yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer_state_sha256: Option<String>,
}

/// A torn tail cut from one of the log's files at a restart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecoveredTail {
    /// "entries.log" or "checkpoints.log".
    pub file: String,
    /// Intact records kept before the cut.
    pub kept_records: u64,
    pub discarded_bytes: u64,
    /// SHA-256 of the cut bytes, saved beside the file as `saved_to`.
    pub discarded_sha256: String,
    pub saved_to: String,
}

impl From<&fedsoc_audit::RepairedFile> for RecoveredTail {
    fn from(r: &fedsoc_audit::RepairedFile) -> Self {
        let name = |p: &std::path::Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        RecoveredTail {
            file: name(&r.path),
            kept_records: r.kept_records,
            discarded_bytes: r.discarded_bytes,
            discarded_sha256: hex::encode(r.discarded_sha256),
            saved_to: name(&r.saved_to),
        }
    }
}

/// A member of a round as the coordinator admitted it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub id: String,
    /// Its certificate (DER blob): identity and Ed25519 signing key.
    pub certificate: BlobId,
}

/// The secure-aggregation protocol version logged with each round: 3 draws
/// the neighbour graph from nonces every advertiser commits to and then
/// reveals (a stage of its own); 2 seeded it from the round id, and 1
/// signed the round id only. Logs of 1 and 2 are not replayed.
pub const SECAGG_PROTOCOL: u32 = 3;

fn secagg_protocol_1() -> u32 {
    1
}

/// The secure-aggregation parameters of a round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecAggRecord {
    /// See [`SECAGG_PROTOCOL`].
    #[serde(default = "secagg_protocol_1")]
    pub protocol: u32,
    /// Hex of the 32-byte round id (binds keys and signatures).
    pub round_id: String,
    pub neighbors: usize,
    pub threshold: usize,
    /// Colluding participants the threshold tolerates (c).
    #[serde(default)]
    pub colluders: usize,
    pub ring_bits: u32,
    pub quant_bits: u32,
    pub clip: f32,
    pub max_samples: u64,
}

/// `round.opened`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundOpened {
    pub round: u64,
    /// 1 for the first attempt at this round, 2 after one abort, …
    pub attempt: u32,
    /// Members in participant-index order (index i is `ParticipantId(i)`).
    pub members: Vec<MemberRecord>,
    /// `None` for an explicitly plaintext round.
    pub secagg: Option<SecAggRecord>,
    pub num_params: usize,
    pub global_model: BlobId,
    pub global_model_sha256: String,
    pub epochs: u32,
    pub batch_size: u32,
    pub learning_rate: f64,
    /// What the round computes (logs from before round kinds: training).
    #[serde(default)]
    pub kind: RoundKind,
    /// A sum round's public query (JSON), which its SecAgg+ context binds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// SHA-256 of the encoder in force, sent with every task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder_sha256: Option<String>,
}

/// `statistics.moments`: what pass 1 of a statistics round summed to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MomentsSummed {
    pub round: u64,
    pub attempt: u32,
    pub moments: Moments,
}

/// `encoder.fitted` and `threshold.calibrated`: defined with the bundle,
/// which carries them as provenance.
pub use fedsoc_bundle::records::{EncoderFitted, ThresholdCalibrated};

/// One message the coordinator accepted in a stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub participant: String,
    /// Its index among the round's members.
    pub index: u32,
    /// SHA-256 (hex) of the message bytes, which sit in the stage blob.
    pub sha256: String,
}

/// `round.stage`: the end of one stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageClosed {
    pub round: u64,
    pub attempt: u32,
    pub stage: u32,
    pub name: String,
    /// The accepted messages, framed (see [`encode_messages`]).
    pub messages: BlobId,
    pub received: Vec<MessageRecord>,
    /// Who dropped out in this stage, and why.
    pub dropped: Vec<Dropout>,
}

/// `round.aggregated`: what the aggregation produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundAggregated {
    pub round: u64,
    pub attempt: u32,
    pub survivors: Vec<String>,
    /// Secure: the unmasked ring sum, u64 little-endian words. Plaintext:
    /// Σ nᵢ·Δᵢ as f64 little-endian.
    pub sum: BlobId,
    pub total_samples: u64,
    pub weighted_loss: f64,
}

/// `round.model`: the strategy step and the new global model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundModel {
    pub round: u64,
    pub attempt: u32,
    /// "fedavg", "fedavgm" or "fedadam" (see [`crate::optimizer`]);
    /// "unchanged" for a round that computes no update (sum rounds).
    pub strategy: String,
    pub global_in_sha256: String,
    pub model: BlobId,
    pub model_sha256: String,
    pub mean_loss: f32,
    /// A stateful optimiser's hyperparameters and its state after this
    /// step; absent for FedAvg and sum rounds (and in logs from before
    /// server optimisers), which therefore read and hash as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<OptimizerRecord>,
}

/// A stateful server optimiser's step as `round.model` records it: what
/// an auditor needs to recompute the step and the state it leaves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerRecord {
    /// The optimiser and the hyperparameters the step was computed with,
    /// e.g. `{"name": "fedadam", "server_learning_rate": 0.01, "beta1":
    /// 0.9, "beta2": 0.99, "tau": 0.001}`: the same in every training
    /// round of a log.
    pub hyperparameters: crate::optimizer::ServerOptimizer,
    /// Training rounds that stepped the state, this one included.
    pub steps: u64,
    /// The state after the step: its vectors in order (FedAvgM: v;
    /// FedAdam: m, then v), one f64 little-endian value per parameter.
    pub state: BlobId,
    pub state_sha256: String,
}

/// The newest round a log completed (see [`Trail::last_completed`]).
#[derive(Clone, Debug)]
pub struct CompletedRound {
    pub model: RoundModel,
    pub survivors: Vec<String>,
    pub total_samples: u64,
    pub values: Vec<f32>,
}

/// `round.metrics`: an evaluation of a round's model, as reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundMetrics {
    pub round: u64,
    pub model_sha256: String,
    pub metrics: serde_json::Value,
}

/// `round.aborted`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundAborted {
    pub round: u64,
    pub attempt: u32,
    pub stage: String,
    pub reason: String,
    pub dropped: Vec<Dropout>,
}

/// Frames a stage's messages: per message, u32 LE member index, u32 LE
/// length, the bytes.
pub fn encode_messages(messages: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(messages.iter().map(|(_, m)| m.len() + 8).sum());
    for (index, bytes) in messages {
        out.extend_from_slice(&index.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// Reads what [`encode_messages`] wrote; an error names the offset.
pub fn decode_messages(mut bytes: &[u8]) -> Result<Vec<(u32, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let total = bytes.len();
    while !bytes.is_empty() {
        let offset = total - bytes.len();
        if bytes.len() < 8 {
            return Err(format!("truncated message header at byte {offset}"));
        }
        let index = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        bytes = &bytes[8..];
        if bytes.len() < len {
            return Err(format!(
                "message at byte {offset} claims {len} bytes, {} remain",
                bytes.len()
            ));
        }
        out.push((index, bytes[..len].to_vec()));
        bytes = &bytes[len..];
    }
    Ok(out)
}

/// A plaintext update as logged in its stage blob: samples (u64 LE), mean
/// loss (f32 LE), then the delta (f32 LE each).
pub fn encode_plain_update(samples: u64, mean_loss: f32, delta: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + 4 * delta.len());
    out.extend_from_slice(&samples.to_le_bytes());
    out.extend_from_slice(&mean_loss.to_le_bytes());
    out.extend(delta.iter().flat_map(|v| v.to_le_bytes()));
    out
}

/// Reads what [`encode_plain_update`] wrote: (samples, mean loss, delta).
pub fn decode_plain_update(bytes: &[u8]) -> Result<(u64, f32, Vec<f32>), String> {
    if bytes.len() < 12 || !(bytes.len() - 12).is_multiple_of(4) {
        return Err(format!(
            "a plaintext update of {} bytes is not 12 + 4·D bytes",
            bytes.len()
        ));
    }
    let samples = u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default());
    let loss = f32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    Ok((samples, loss, f32_values(&bytes[12..])?))
}

/// f32 values from little-endian bytes (models, deltas).
pub fn f32_values(bytes: &[u8]) -> Result<Vec<f32>, String> {
    if !bytes.len().is_multiple_of(4) {
        return Err(format!(
            "{} bytes are not a whole number of f32",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Little-endian bytes of f32 values (models).
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The coordinator's handle on its audit log. Appends are durable (fsync)
/// before they return; a round whose record cannot be written fails.
///
/// Large stage blobs are written by one background thread so the round goes
/// on while they reach the disk; the entry that names such a blob waits in
/// `pending` and is appended only once its blob is durable, in order, before
/// any later entry or checkpoint. So no durable entry ever names a blob that
/// a crash could still lose.
pub struct Trail {
    log: Mutex<AuditLog>,
    /// Attempts so far per round.
    attempts: Mutex<HashMap<u64, u32>>,
    pending: Mutex<Pending>,
    /// Checked cosignatures not yet written, with the witness's
    /// certificate (PEM) for the record's blob.
    cosigned: Mutex<Vec<(fedsoc_audit::CosignatureRecord, Vec<u8>)>>,
    /// Test hooks that make the trail lie (see [`Tamper`]).
    tamper: std::sync::RwLock<std::sync::Arc<Tamper>>,
}

/// Changes a stage's message records before they are logged.
pub type StageTamper = dyn Fn(u32, &mut Vec<MessageRecord>) + Send + Sync;
/// Changes the checkpoint message sent to one participant (by id).
pub type CheckpointTamper = dyn Fn(&str, &mut fedsoc_proto::v1::AuditCheckpoint) + Send + Sync;

/// Hooks that make the coordinator lie in its audit trail, for tests that
/// play a malicious coordinator against real participants (see
/// `experiments/tests/malicious_coordinator.rs`). Never set otherwise.
#[derive(Default)]
pub struct Tamper {
    pub stage: Option<Box<StageTamper>>,
    pub checkpoint: Option<Box<CheckpointTamper>>,
}

/// Entries waiting for their blob, oldest first, and the blob writer.
#[derive(Default)]
struct Pending {
    entries: std::collections::VecDeque<PendingEntry>,
    writer: Option<BlobWriter>,
}

struct PendingEntry {
    kind: &'static str,
    body: Vec<u8>,
    blob: std::sync::mpsc::Receiver<Result<BlobId, fedsoc_audit::AuditError>>,
}

/// One thread that stores blobs in the order they are handed over, so the
/// persistence points of a round come in a fixed order.
struct BlobWriter {
    jobs: std::sync::mpsc::Sender<BlobJob>,
}

type BlobJob = (
    Vec<u8>,
    std::sync::mpsc::SyncSender<Result<BlobId, fedsoc_audit::AuditError>>,
);

impl BlobWriter {
    fn start(store: fedsoc_audit::BlobStore) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<BlobJob>();
        std::thread::spawn(move || {
            for (bytes, done) in queue {
                let _ = done.send(store.put(&bytes));
            }
        });
        BlobWriter { jobs }
    }
}

impl std::fmt::Debug for Trail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trail").finish_non_exhaustive()
    }
}

impl Trail {
    pub fn new(log: AuditLog) -> Self {
        Trail {
            log: Mutex::new(log),
            attempts: Mutex::new(HashMap::new()),
            pending: Mutex::new(Pending::default()),
            cosigned: Mutex::new(Vec::new()),
            tamper: Default::default(),
        }
    }

    /// Installs test hooks that make the trail lie (see [`Tamper`]).
    #[doc(hidden)]
    pub fn set_tamper(&self, tamper: Tamper) {
        *self.tamper.write().unwrap_or_else(|p| p.into_inner()) = std::sync::Arc::new(tamper);
    }

    /// The installed test hooks (none outside tests).
    pub(crate) fn tamper(&self) -> std::sync::Arc<Tamper> {
        self.tamper
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Holds a checked cosignature until the next write point (see the
    /// module documentation); `certificate_pem` is stored as its blob.
    pub fn add_cosignature(
        &self,
        record: fedsoc_audit::CosignatureRecord,
        certificate_pem: Vec<u8>,
    ) {
        self.cosigned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((record, certificate_pem));
    }

    /// Writes the cosignatures held so far; returns how many.
    pub fn record_cosignatures(&self) -> Result<usize, CoordinatorError> {
        let mut pending = self.pending();
        self.drain(&mut pending)?;
        self.write_cosignatures()
    }

    /// Writes the held cosignatures (the caller holds `pending`, drained).
    fn write_cosignatures(&self) -> Result<usize, CoordinatorError> {
        let held = std::mem::take(&mut *self.cosigned.lock().unwrap_or_else(|p| p.into_inner()));
        let n = held.len();
        for (record, pem) in held {
            let mut log = self.log();
            let certificate = log.blobs().put(&pem)?;
            debug_assert_eq!(certificate, record.certificate);
            log.append_json(kind::CHECKPOINT_COSIGNED, &record)?;
        }
        Ok(n)
    }

    /// The log, locked. Every write is one append or one checkpoint, so a
    /// panic elsewhere cannot leave it half-updated: poison is moot.
    pub fn log(&self) -> MutexGuard<'_, AuditLog> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a blob.
    pub fn blob(&self, bytes: &[u8]) -> Result<BlobId, CoordinatorError> {
        Ok(self.log().blobs().put(bytes)?)
    }

    /// Appends `kind` with `body` once `bytes`, named in `body` as
    /// `BlobId::of(bytes)`, are durable; the blob is written in the
    /// background meanwhile. Returns the index the entry will have.
    pub fn append_after_blob<T: Serialize>(
        &self,
        kind: &'static str,
        body: &T,
        bytes: Vec<u8>,
    ) -> Result<u64, CoordinatorError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| CoordinatorError::Internal(format!("{kind} entry to JSON: {e}")))?;
        let mut pending = self.pending();
        let (done, blob) = std::sync::mpsc::sync_channel(1);
        if pending.writer.is_none() {
            pending.writer = Some(BlobWriter::start(self.log().blobs().clone()));
        }
        let sent = pending
            .writer
            .as_ref()
            .is_some_and(|w| w.jobs.send((bytes, done)).is_ok());
        if !sent {
            pending.writer = None;
            return Err(CoordinatorError::Internal(
                "the audit blob writer stopped".into(),
            ));
        }
        let index = self.log().len() + pending.entries.len() as u64;
        pending.entries.push_back(PendingEntry { kind, body, blob });
        Ok(index)
    }

    /// Appends the entries waiting for their blobs, in order, each once its
    /// blob is durable. A blob that failed drops its entry and every later
    /// one (they would name evidence that is not there) and fails.
    fn drain(&self, pending: &mut Pending) -> Result<(), CoordinatorError> {
        while let Some(entry) = pending.entries.pop_front() {
            let stored = entry.blob.recv().unwrap_or_else(|_| {
                Err(fedsoc_audit::AuditError::Io {
                    action: "store a blob",
                    path: self.log().blobs().root().to_path_buf(),
                    source: std::io::Error::other("the blob writer stopped"),
                })
            });
            if let Err(e) = stored {
                let dropped = pending.entries.len() + 1;
                pending.entries.clear();
                tracing::error!(error = %e, dropped, "an audit blob was not stored; its entry is not written");
                return Err(e.into());
            }
            self.log().append(entry.kind, entry.body)?;
        }
        Ok(())
    }

    /// Appends one entry after those waiting for their blobs; returns its
    /// index.
    pub fn append<T: Serialize>(&self, kind: &str, body: &T) -> Result<u64, CoordinatorError> {
        let mut pending = self.pending();
        self.drain(&mut pending)?;
        Ok(self.log().append_json(kind, body)?.index)
    }

    /// Reads back the attempts already logged, so that attempt numbers keep
    /// counting across a restart.
    pub fn recall_attempts(&self) -> Result<(), CoordinatorError> {
        #[derive(Deserialize)]
        struct Attempt {
            round: u64,
            attempt: u32,
        }
        let mut recalled = HashMap::new();
        for entry in self.log().entries() {
            let entry = entry?;
            if entry.kind == kind::ROUND_OPENED {
                let a: Attempt = entry.body_json().map_err(fedsoc_audit::AuditError::from)?;
                let n = recalled.entry(a.round).or_insert(0);
                *n = a.attempt.max(*n);
            }
        }
        *self.attempts.lock().unwrap_or_else(|p| p.into_inner()) = recalled;
        Ok(())
    }

    /// The newest round the log completed: its `round.model` entry, its
    /// survivors and total samples, and the model bytes. A coordinator
    /// killed between writing the log and saving its store rolls the store
    /// forward from this, so log and store agree again.
    pub fn last_completed(&self) -> Result<Option<CompletedRound>, CoordinatorError> {
        let log = self.log();
        let mut aggregated: Option<RoundAggregated> = None;
        let mut last = None;
        for entry in log.entries() {
            let entry = entry?;
            match entry.kind.as_str() {
                kind::ROUND_AGGREGATED => {
                    aggregated = Some(entry.body_json().map_err(fedsoc_audit::AuditError::from)?)
                }
                kind::ROUND_MODEL => {
                    let model: RoundModel =
                        entry.body_json().map_err(fedsoc_audit::AuditError::from)?;
                    let agg = aggregated
                        .take()
                        .filter(|a| a.round == model.round && a.attempt == model.attempt);
                    last = Some((model, agg));
                }
                _ => {}
            }
        }
        let Some((model, aggregated)) = last else {
            return Ok(None);
        };
        let bytes = log.blobs().get(&model.model)?;
        let values = f32_values(&bytes).map_err(CoordinatorError::Internal)?;
        Ok(Some(CompletedRound {
            survivors: aggregated
                .as_ref()
                .map(|a| a.survivors.clone())
                .unwrap_or_default(),
            total_samples: aggregated.map(|a| a.total_samples).unwrap_or(0),
            model: model.clone(),
            values,
        }))
    }

    /// The newest training round's `round.model` (a strategy step, not a
    /// sum round's "unchanged"): which server optimiser the log uses and,
    /// for a stateful one, its state now. `None` before the first.
    pub fn last_step(&self) -> Result<Option<RoundModel>, CoordinatorError> {
        let log = self.log();
        let mut last = None;
        for entry in log.entries() {
            let entry = entry?;
            if entry.kind == kind::ROUND_MODEL {
                let model: RoundModel =
                    entry.body_json().map_err(fedsoc_audit::AuditError::from)?;
                if model.strategy != "unchanged" {
                    last = Some(model);
                }
            }
        }
        Ok(last)
    }

    /// What the log's completed sum rounds established, starting from the
    /// configuration's encoder `initial`: a conclusion counts once its
    /// round's `round.model` is written (a crash before that reruns it).
    pub fn sum_state(&self, initial: InForce) -> Result<SumState, CoordinatorError> {
        let log = self.log();
        let mut state = SumState {
            encoder: initial,
            ..SumState::default()
        };
        let mut open: Option<(u64, u32, Option<Query>)> = None;
        let mut concluded: Option<Conclusion> = None;
        let bad = |e: fedsoc_audit::EntryError| CoordinatorError::Audit(e.into());
        for entry in log.entries() {
            let entry = entry?;
            match entry.kind.as_str() {
                kind::ROUND_OPENED => {
                    let b: RoundOpened = entry.body_json().map_err(bad)?;
                    let query = match (&b.query, b.kind.is_sum()) {
                        (Some(json), true) => {
                            Some(Query::parse(b.kind, json).map_err(CoordinatorError::Internal)?)
                        }
                        _ => None,
                    };
                    open = Some((b.round, b.attempt, query));
                    concluded = None;
                }
                kind::STATISTICS_MOMENTS => {
                    concluded = Some(Conclusion::Moments(entry.body_json().map_err(bad)?))
                }
                kind::ENCODER_FITTED => {
                    concluded = Some(Conclusion::Encoder(entry.body_json().map_err(bad)?))
                }
                kind::THRESHOLD_CALIBRATED => {
                    concluded = Some(Conclusion::Threshold(entry.body_json().map_err(bad)?))
                }
                kind::ROUND_MODEL => {
                    let b: RoundModel = entry.body_json().map_err(bad)?;
                    if let (Some((round, attempt, Some(query))), Some(c)) = (&open, &concluded)
                        && *round == b.round
                        && *attempt == b.attempt
                    {
                        c.apply(&mut state, query);
                    }
                    open = None;
                    concluded = None;
                }
                _ => {}
            }
        }
        Ok(state)
    }

    /// The next attempt number for `round`.
    pub fn next_attempt(&self, round: u64) -> u32 {
        let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        let n = attempts.entry(round).or_insert(0);
        *n += 1;
        *n
    }

    /// Signs a checkpoint of the whole log now, once every waiting entry
    /// is written.
    pub fn checkpoint(&self) -> Result<SignedCheckpoint, CoordinatorError> {
        let mut pending = self.pending();
        self.drain(&mut pending)?;
        self.write_cosignatures()?;
        Ok(self.log().checkpoint(fedsoc_audit::now_ms())?)
    }

    pub fn len(&self) -> u64 {
        self.log().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One round attempt being written to the trail.
pub struct RoundLog<'a> {
    trail: &'a Trail,
    pub round: u64,
    pub attempt: u32,
    members: Vec<String>,
    /// Dropouts already written in an earlier stage's entry.
    reported: BTreeSet<String>,
    /// The entry that records each participant's update (masked input in
    /// a secure round): what its receipt proves.
    pub receipt_entry: Option<u64>,
    /// Every `round.stage` entry of the attempt, in order: the receipts a
    /// member gets, one per message it sent.
    pub stage_entries: Vec<u64>,
}

/// What a round needs to open its record.
pub struct Opening<'a> {
    pub round: u64,
    /// (id, certificate DER) in member-index order.
    pub members: Vec<(String, &'a [u8])>,
    pub secagg: Option<SecAggRecord>,
    pub global: &'a [f32],
    pub epochs: u32,
    pub batch_size: u32,
    pub learning_rate: f64,
    pub kind: RoundKind,
    pub query: Option<String>,
    pub encoder_sha256: Option<String>,
}

impl<'a> Opening<'a> {
    /// The opening of a round with `links` as members.
    pub fn new(
        round: u64,
        links: &'a [crate::registry::Link],
        secagg: Option<SecAggRecord>,
        global: &'a [f32],
        training: &crate::config::TrainingSection,
    ) -> Self {
        Opening {
            round,
            members: links
                .iter()
                .map(|l| (l.id.clone(), l.certificate.as_slice()))
                .collect(),
            secagg,
            global,
            epochs: training.epochs,
            batch_size: training.batch_size,
            learning_rate: training.learning_rate,
            kind: RoundKind::Train,
            query: None,
            encoder_sha256: None,
        }
    }
}

impl Trail {
    /// Writes `round.opened` and returns the round's log.
    pub fn open_round(&self, opening: Opening<'_>) -> Result<RoundLog<'_>, CoordinatorError> {
        self.record_cosignatures()?;
        let attempt = self.next_attempt(opening.round);
        let mut members = Vec::with_capacity(opening.members.len());
        for (id, der) in &opening.members {
            members.push(MemberRecord {
                id: id.clone(),
                certificate: self.blob(fedsoc_pki::certificate_pem(der).as_bytes())?,
            });
        }
        let model_bytes = f32_bytes(opening.global);
        let body = RoundOpened {
            round: opening.round,
            attempt,
            members,
            secagg: opening.secagg,
            num_params: opening.global.len(),
            global_model: self.blob(&model_bytes)?,
            global_model_sha256: sha256_hex(&model_bytes),
            epochs: opening.epochs,
            batch_size: opening.batch_size,
            learning_rate: opening.learning_rate,
            kind: opening.kind,
            query: opening.query,
            encoder_sha256: opening.encoder_sha256,
        };
        self.append(kind::ROUND_OPENED, &body)?;
        Ok(RoundLog {
            trail: self,
            round: opening.round,
            attempt,
            members: opening.members.into_iter().map(|(id, _)| id).collect(),
            reported: BTreeSet::new(),
            receipt_entry: None,
            stage_entries: Vec::new(),
        })
    }
}

impl RoundLog<'_> {
    /// Writes `round.stage`: the messages accepted in `stage` (by member
    /// index) and the dropouts among `reasons` not yet written.
    pub fn stage(
        &mut self,
        stage: u32,
        name: &str,
        messages: &[(u32, Vec<u8>)],
        reasons: &BTreeMap<String, String>,
    ) -> Result<u64, CoordinatorError> {
        let mut received: Vec<MessageRecord> = messages
            .iter()
            .map(|(index, bytes)| MessageRecord {
                participant: self
                    .members
                    .get(*index as usize)
                    .cloned()
                    .unwrap_or_default(),
                index: *index,
                sha256: sha256_hex(bytes),
            })
            .collect();
        if let Some(tamper) = &self.trail.tamper().stage {
            tamper(stage, &mut received);
        }
        let dropped = self.new_dropouts(reasons);
        let bytes = encode_messages(messages);
        let body = StageClosed {
            round: self.round,
            attempt: self.attempt,
            stage,
            name: name.to_string(),
            messages: BlobId::of(&bytes),
            received,
            dropped,
        };
        let index = self
            .trail
            .append_after_blob(kind::ROUND_STAGE, &body, bytes)?;
        self.stage_entries.push(index);
        Ok(index)
    }

    fn new_dropouts(&mut self, reasons: &BTreeMap<String, String>) -> Vec<Dropout> {
        reasons
            .iter()
            .filter(|(id, _)| self.reported.insert((*id).clone()))
            .map(|(id, reason)| Dropout {
                participant: id.clone(),
                reason: reason.clone(),
            })
            .collect()
    }

    /// Writes `round.aggregated`.
    pub fn aggregated(
        &self,
        survivors: &[String],
        sum_bytes: &[u8],
        total_samples: u64,
        weighted_loss: f64,
    ) -> Result<u64, CoordinatorError> {
        let body = RoundAggregated {
            round: self.round,
            attempt: self.attempt,
            survivors: survivors.to_vec(),
            sum: self.trail.blob(sum_bytes)?,
            total_samples,
            weighted_loss,
        };
        self.trail.append(kind::ROUND_AGGREGATED, &body)
    }

    /// Writes a sum round's result entry (see [`kind`]).
    pub fn result<T: Serialize>(&self, kind: &str, body: &T) -> Result<u64, CoordinatorError> {
        self.trail.append(kind, body)
    }

    /// Writes `round.model`: the `strategy` step ("fedavg", "fedavgm",
    /// "fedadam", or "unchanged" after a round that computed no update)
    /// from `global_in` to `model`. A stateful optimiser's state after the
    /// step is stored as a blob, durably before the entry that names it.
    pub fn model(
        &self,
        strategy: &str,
        global_in: &[f32],
        model: &[f32],
        mean_loss: f32,
        optimizer: Option<(
            &crate::optimizer::ServerOptimizer,
            &crate::optimizer::OptimizerState,
        )>,
    ) -> Result<u64, CoordinatorError> {
        let bytes = f32_bytes(model);
        let optimizer = match optimizer {
            Some((hyperparameters, state)) => {
                let state_bytes = state.to_bytes();
                Some(OptimizerRecord {
                    hyperparameters: *hyperparameters,
                    steps: state.steps,
                    state: self.trail.blob(&state_bytes)?,
                    state_sha256: sha256_hex(&state_bytes),
                })
            }
            None => None,
        };
        let body = RoundModel {
            round: self.round,
            attempt: self.attempt,
            strategy: strategy.into(),
            global_in_sha256: sha256_hex(&f32_bytes(global_in)),
            model: self.trail.blob(&bytes)?,
            model_sha256: sha256_hex(&bytes),
            mean_loss,
            optimizer,
        };
        self.trail.append(kind::ROUND_MODEL, &body)
    }

    /// Writes `round.aborted` with every dropout of the attempt.
    pub fn aborted(
        &self,
        stage: &str,
        reason: &str,
        reasons: &BTreeMap<String, String>,
    ) -> Result<u64, CoordinatorError> {
        let body = RoundAborted {
            round: self.round,
            attempt: self.attempt,
            stage: stage.to_string(),
            reason: reason.to_string(),
            dropped: reasons
                .iter()
                .map(|(id, why)| Dropout {
                    participant: id.clone(),
                    reason: why.clone(),
                })
                .collect(),
        };
        self.trail.append(kind::ROUND_ABORTED, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_keep_counting_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let open =
            || Trail::new(AuditLog::open_or_create(dir.path(), "fedsoc/t", key.clone()).unwrap());
        let trail = open();
        for _ in 0..2 {
            let opening = Opening {
                round: 4,
                members: vec![],
                secagg: None,
                global: &[0.0, 1.0],
                epochs: 1,
                batch_size: 8,
                learning_rate: 0.1,
                kind: RoundKind::Train,
                query: None,
                encoder_sha256: None,
            };
            trail.open_round(opening).unwrap();
        }
        drop(trail);
        let trail = open();
        assert_eq!(
            trail.next_attempt(4),
            1,
            "before recalling, counting starts over"
        );
        let trail = {
            drop(trail);
            open()
        };
        trail.recall_attempts().unwrap();
        assert_eq!(trail.next_attempt(4), 3);
        assert_eq!(trail.next_attempt(5), 1);
    }

    /// FedAvg and sum rounds write `round.model` as before server
    /// optimisers: same fields, so old readers and hashes are unaffected;
    /// and an old entry reads with no optimiser.
    #[test]
    fn a_fedavg_round_model_has_the_fields_it_always_had() {
        let body = RoundModel {
            round: 1,
            attempt: 1,
            strategy: "fedavg".into(),
            global_in_sha256: "a".into(),
            model: BlobId::of(b"m"),
            model_sha256: "b".into(),
            mean_loss: 0.5,
            optimizer: None,
        };
        let json: serde_json::Value = serde_json::to_value(&body).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "attempt",
                "global_in_sha256",
                "mean_loss",
                "model",
                "model_sha256",
                "round",
                "strategy"
            ]
        );
        let back: RoundModel = serde_json::from_value(json).unwrap();
        assert_eq!(back, body);
    }

    #[test]
    fn plaintext_updates_round_trip() {
        let bytes = encode_plain_update(12, 0.5, &[1.0, -2.5]);
        assert_eq!(
            decode_plain_update(&bytes).unwrap(),
            (12, 0.5, vec![1.0, -2.5])
        );
        assert!(decode_plain_update(&bytes[..13]).is_err());
    }

    #[test]
    fn message_framing_round_trips_and_names_truncation() {
        let messages = vec![(0, vec![1, 2, 3]), (7, vec![]), (2, vec![9; 300])];
        let bytes = encode_messages(&messages);
        assert_eq!(decode_messages(&bytes).unwrap(), messages);
        let err = decode_messages(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(err.contains("claims 300 bytes"), "{err}");
        assert!(decode_messages(&bytes[..5]).unwrap_err().contains("byte 0"));
    }
}
