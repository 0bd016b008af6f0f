//! The auditor's side of the audit trail: verify a log and replay every
//! round from its entries and blobs.
//!
//! [`verify_log`] trusts nothing the coordinator wrote except what the
//! federation CA vouches for. It pins the CA (or, without one, takes the
//! log's and says so), checks the coordinator's certificate against it,
//! has fedsoc-audit check every hash, signature, checkpoint and blob with
//! the coordinator's key, and then re-runs each round: the SecAgg+ server
//! state machine is fed the logged messages exactly as the coordinator fed
//! them (plaintext rounds are summed the same way), and the unmasked sum,
//! the server optimiser's step and the new model's hash must come out as
//! logged. A stateful optimiser (FedAvgM, FedAdam) is replayed from the log
//! alone: its state starts at zeros, each training round steps it with the
//! logged hyperparameters (the same in every round of a log), and the
//! state each `round.model` names must be the replayed one bit for bit. A
//! coordinator that logged one aggregate and applied another, changed a
//! participant's message, or logged another optimiser state or
//! hyperparameters than it stepped with, is caught at the entry where the
//! story breaks.
//!
//! Certificates are checked at the time of the entry that names them, not
//! now: an audit of last year's rounds must not fail because a
//! participant's certificate has since expired.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use fedsoc_audit::{
    AuditError, AuditLog, BlobId, BlobStore, CosignatureRecord, Entry, RepairedFile,
    SignedCheckpoint, Verifier,
};
use fedsoc_pki::{Identity, Role};
use fedsoc_proto::secagg_stage as stage;
use fedsoc_secagg::messages::{
    AdvertiseKeys, ConsistencySignature, MaskedInput, SeedReveal, ShareKeys, UnmaskShares,
};
use fedsoc_secagg::weighted::WeightedEncoding;
use fedsoc_secagg::{
    Aggregate, Message, ParticipantId, Quantizer, Ring, RoundConfig, SecAggError, Server,
    ServerCollectingKeys, ServerCollectingMasked, ServerCollectingReveals, ServerCollectingShares,
    ServerCollectingSignatures, ServerCollectingUnmask,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;
use x509_parser::prelude::{ASN1Time, FromDer, X509Certificate};

use crate::aggregate::{PlaintextSum, WeightedSum};
use crate::federation::InForce;
use crate::kind::{self as round_kind, Conclusion, Query, SumRound, SumState};
use crate::optimizer::{self, OptimizerState, ServerOptimizer};
use crate::round::model_sha256;
use crate::strategy;
use crate::trail::{
    self, CoordinatorStarted, FederationCreated, PLAINTEXT_UPDATES_STAGE, RoundAborted,
    RoundAggregated, RoundMetrics, RoundModel, RoundOpened, SecAggRecord, StageClosed, kind,
};

/// The first reason a log does not verify, and where it is.
#[derive(Debug, Error)]
pub enum ReplayError {
    #[error(
        "{} holds no audit log: expected entries.log in it, or in its audit/ folder (a coordinator storage folder)",
        .0.display()
    )]
    NotALog(PathBuf),
    /// Damage to the files, a bad signature or a bad blob, as fedsoc-audit
    /// found it (it names the entry or checkpoint).
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("the audit log {} is empty: it has no federation.created entry yet", .0.display())]
    Empty(PathBuf),
    #[error("the CA you trust holds no PEM CERTIFICATE block: pass the federation's ca.pem")]
    BadTrustedCa,
    #[error(
        "the log's CA is not the CA you trust: the log names CA sha256 {logged}, you trust sha256 {trusted}; the log belongs to another federation, or its CA was replaced"
    )]
    UntrustedCa { logged: String, trusted: String },
    /// An entry whose content does not hold up.
    #[error("entry {index} ({kind}{}): {reason}", round_suffix(.round))]
    Entry {
        index: u64,
        kind: String,
        round: Option<u64>,
        reason: String,
    },
    #[error("could not {action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A request the log cannot answer (an entry it lacks, a busy folder).
    #[error("{0}")]
    Request(String),
    /// `--min-cosigners` not met by the latest checkpoint.
    #[error(
        "the latest checkpoint (size {tree_size}) is cosigned by {found} distinct participant(s) certified by the federation CA {cosigners:?}, fewer than the {need} required{}: the view was not confirmed by enough members (a checkpoint is cosigned once participants receive it after a round; a coordinator restart signs a new one)",
        newest_enough_text(.newest_enough)
    )]
    TooFewCosigners {
        need: usize,
        found: usize,
        tree_size: u64,
        cosigners: Vec<String>,
        newest_enough: Option<u64>,
    },
}

fn round_suffix(round: &Option<u64>) -> String {
    round.map(|r| format!(", round {r}")).unwrap_or_default()
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ReplayError {
    let path = path.to_path_buf();
    move |source| ReplayError::Io {
        action,
        path,
        source,
    }
}

/// What a successful verification established.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayReport {
    pub ok: bool,
    /// The log directory that was verified.
    pub dir: PathBuf,
    pub origin: String,
    pub federation: String,
    /// Completed rounds (the last round number).
    pub rounds: u64,
    /// Rounds whose model was recomputed from the logged messages.
    pub rounds_replayed: u64,
    pub secure_rounds: u64,
    pub plaintext_rounds: u64,
    /// Round attempts opened or aborted, completed or not.
    pub attempts: u64,
    pub aborted: u64,
    /// Attempts cut short by a coordinator restart.
    pub interrupted: u64,
    /// A round still running when the log was read.
    pub in_progress: Option<u64>,
    pub entries: u64,
    pub checkpoints: usize,
    /// Entries after the newest signed checkpoint (not yet signed).
    pub unsigned_entries: u64,
    pub blobs_checked: usize,
    /// Hex root of the whole log.
    pub root: String,
    /// Whether the CA was given by the caller (else taken from the log).
    pub ca_pinned: bool,
    /// SHA-256 of the CA certificate (DER), hex.
    pub ca_sha256: String,
    /// Key id of the coordinator key that signs the checkpoints.
    pub coordinator_key_id: String,
    /// The global model after the last completed round.
    pub model_sha256: String,
    /// The server optimiser of the log's training rounds, with its
    /// hyperparameters (FedAvg for a log with none).
    pub strategy: ServerOptimizer,
    /// SHA-256 of the optimiser's state after the last training round,
    /// reproduced bit for bit (absent for FedAvg).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimizer_state_sha256: Option<String>,
    /// Per stored checkpoint, oldest first, the participants (certified
    /// by the CA checked against) whose cosignature over it the log holds.
    pub cosigned: Vec<CosignedCheckpoint>,
}

/// One signed checkpoint and who cosigned it.
#[derive(Clone, Debug, Serialize)]
pub struct CosignedCheckpoint {
    pub tree_size: u64,
    pub timestamp_ms: u64,
    /// Hex root.
    pub root: String,
    /// Witness names (participant ids), sorted, one per distinct key.
    pub cosigners: Vec<String>,
}

impl ReplayReport {
    /// The latest checkpoint's cosigners: `--min-cosigners n` passes only
    /// if at least `n` distinct participants certified by the federation
    /// CA cosigned the latest signed checkpoint, that is, saw this view of
    /// the log and checked it against what they held. The error names how
    /// many were found, and the newest checkpoint that has enough, if any.
    pub fn require_cosigners(&self, n: usize) -> Result<(), ReplayError> {
        let Some(latest) = self.cosigned.last() else {
            return Err(ReplayError::TooFewCosigners {
                need: n,
                found: 0,
                tree_size: 0,
                cosigners: Vec::new(),
                newest_enough: None,
            });
        };
        if latest.cosigners.len() >= n {
            return Ok(());
        }
        Err(ReplayError::TooFewCosigners {
            need: n,
            found: latest.cosigners.len(),
            tree_size: latest.tree_size,
            cosigners: latest.cosigners.clone(),
            newest_enough: self
                .cosigned
                .iter()
                .rev()
                .find(|c| c.cosigners.len() >= n)
                .map(|c| c.tree_size),
        })
    }
}

fn newest_enough_text(size: &Option<u64>) -> String {
    match size {
        Some(size) => format!(
            "; the newest checkpoint with enough cosigners has size {size}, so entries after it are witnessed by fewer"
        ),
        None => "; no checkpoint has that many".into(),
    }
}

/// The log directory for `dir`: `dir` itself when it holds entries.log
/// (a log or an exported bundle), else `dir/audit` (a coordinator's
/// storage folder).
pub fn resolve_log_dir(dir: &Path) -> Result<PathBuf, ReplayError> {
    if dir.join(fedsoc_audit::log::ENTRIES_FILE).is_file() {
        return Ok(dir.to_path_buf());
    }
    let nested = dir.join("audit");
    if nested.join(fedsoc_audit::log::ENTRIES_FILE).is_file() {
        return Ok(nested);
    }
    Err(ReplayError::NotALog(dir.to_path_buf()))
}

/// Verifies the log in `dir` (see [`resolve_log_dir`]) and replays every
/// round. `trusted_ca_pem` pins the federation CA; without it the log's own
/// CA is used (trust on first use, reported in [`ReplayReport::ca_pinned`]).
pub fn verify_log(dir: &Path, trusted_ca_pem: Option<&str>) -> Result<ReplayReport, ReplayError> {
    let dir = resolve_log_dir(dir)?;
    // Opening checks frames, encodings and checkpoint roots; the first
    // entry then names the keys the rest is checked with.
    let log = AuditLog::open_read_only(&dir)?;
    if log.is_empty() {
        return Err(ReplayError::Empty(dir));
    }
    let first = log.entry(0)?;
    let blobs = log.blobs().clone();
    let anchor = Anchor::read(&first, &blobs)?;
    let ca_pinned = match trusted_ca_pem {
        Some(pem) => {
            let trusted =
                fedsoc_pki::first_certificate_der(pem).ok_or(ReplayError::BadTrustedCa)?;
            if trusted != anchor.ca_der {
                return Err(ReplayError::UntrustedCa {
                    logged: trail::sha256_hex(&anchor.ca_der),
                    trusted: trail::sha256_hex(&trusted),
                });
            }
            true
        }
        None => false,
    };

    let verified = Verifier::new(anchor.coordinator_key)
        .blob_refs(blob_refs)
        .verify(&dir)
        .map_err(|e| name_blob_round(&log, e))?;
    if verified.entries.first() != Some(&first) {
        return Err(ReplayError::Request(format!(
            "{} changed while it was being verified: stop the coordinator or verify a copy (fedsoc audit export)",
            dir.display()
        )));
    }

    let mut replay = Replayer::new(&anchor, blobs)?;
    replay.checkpoints = verified.checkpoints.clone();
    for (index, entry) in verified.entries.iter().enumerate() {
        replay.apply(index as u64, entry)?;
    }
    let cosigned = verified
        .checkpoints
        .iter()
        .map(|c| {
            let c = &c.checkpoint;
            let cosigners = replay
                .cosigners
                .get(&(c.tree_size, c.timestamp_ms, c.root))
                .map(|by| {
                    let mut names: Vec<String> = by.values().cloned().collect();
                    names.sort();
                    names
                })
                .unwrap_or_default();
            CosignedCheckpoint {
                tree_size: c.tree_size,
                timestamp_ms: c.timestamp_ms,
                root: hex::encode(c.root),
                cosigners,
            }
        })
        .collect();
    let entries = verified.tree_size();
    let signed = verified
        .latest_checkpoint()
        .map_or(0, |c| c.checkpoint.tree_size);
    Ok(ReplayReport {
        ok: true,
        dir,
        origin: verified.origin,
        federation: anchor.federation.federation.clone(),
        rounds: replay.completed,
        rounds_replayed: replay.secure_rounds + replay.plaintext_rounds,
        secure_rounds: replay.secure_rounds,
        plaintext_rounds: replay.plaintext_rounds,
        attempts: replay.attempts_seen,
        aborted: replay.aborted,
        interrupted: replay.interrupted,
        in_progress: replay.open.as_ref().map(|a| a.round),
        entries,
        checkpoints: verified.checkpoints.len(),
        unsigned_entries: entries.saturating_sub(signed),
        blobs_checked: verified.blobs_checked,
        root: hex::encode(verified.root),
        ca_pinned,
        ca_sha256: trail::sha256_hex(&anchor.ca_der),
        coordinator_key_id: fedsoc_audit::KeyId::of(&anchor.coordinator_key).to_string(),
        model_sha256: replay.global_sha,
        strategy: replay.strategy.map(|(_, s)| s).unwrap_or_default(),
        optimizer_state_sha256: replay.optimizer.as_ref().map(OptimizerState::sha256),
        cosigned,
    })
}

/// A missing or damaged blob as the entry that names it: with its round
/// and, for `round.model`, which of its blobs (the model or the optimiser
/// state), so the error says where the story breaks.
fn name_blob_round(log: &AuditLog, e: AuditError) -> ReplayError {
    let AuditError::EntryBlob {
        index,
        kind: entry_kind,
        source,
    } = e
    else {
        return e.into();
    };
    let Ok(entry) = log.entry(index) else {
        return AuditError::EntryBlob {
            index,
            kind: entry_kind,
            source,
        }
        .into();
    };
    let round = entry
        .body_json::<serde_json::Value>()
        .ok()
        .and_then(|b| b.get("round").and_then(serde_json::Value::as_u64));
    let id = match source.as_ref() {
        AuditError::BlobMissing { id, .. } | AuditError::BlobCorrupt { id, .. } => Some(*id),
        _ => None,
    };
    let what = match (entry.body_json::<RoundModel>().ok(), id) {
        (Some(m), Some(id)) if entry.kind == kind::ROUND_MODEL && m.model == id => "the model: ",
        (Some(m), Some(id))
            if entry.kind == kind::ROUND_MODEL
                && m.optimizer.as_ref().is_some_and(|o| o.state == id) =>
        {
            "the optimiser state (the replay cannot check the step without it): "
        }
        _ => "",
    };
    ReplayError::Entry {
        index,
        kind: entry_kind,
        round,
        reason: format!("{what}{source}"),
    }
}

/// Cuts a torn tail off the log in `dir` (see [`fedsoc_audit::repair`]);
/// returns the log directory and what was cut.
pub fn repair_log(dir: &Path) -> Result<(PathBuf, Vec<RepairedFile>), ReplayError> {
    let dir = resolve_log_dir(dir)?;
    let repaired = fedsoc_audit::repair(&dir)?;
    Ok((dir, repaired))
}

/// What [`export_bundle`] wrote.
#[derive(Clone, Debug, Serialize)]
pub struct ExportReport {
    pub bundle: PathBuf,
    pub files: usize,
    pub bytes: u64,
    /// The verification of the bundle, against the CA it carries.
    pub verified: ReplayReport,
}

/// Text of the README.txt placed in a bundle.
fn bundle_readme(ca_sha256: &str) -> String {
    format!(
        "fedsoc audit bundle\n\
         ===================\n\
         \n\
         This folder is a copy of a fedsoc federation's audit log:\n\
         entries.log (every round, append-only), checkpoints.log (signed by the\n\
         coordinator) and blobs/ (models, certificates, each stage's messages,\n\
         aggregates).\n\
         \n\
         ca.pem is the federation CA as the log names it. Before trusting it,\n\
         compare its fingerprint with the one your federation published:\n\
         \n\
         \x20   sha256 {ca_sha256}\n\
         \n\
         Verify the log and replay every round (unmasking and the server optimiser's step):\n\
         \n\
         \x20   fedsoc audit verify <this folder> --ca ca.pem\n\
         \n\
         Better: pass the ca.pem you received from the federation, not this one.\n\
         \n\
         See the rounds:      fedsoc audit show <this folder>\n\
         Prove one entry:     fedsoc audit prove <this folder> --entry N\n"
    )
}

/// Copies the log in `dir` into `to` (which must be missing or empty) with
/// the CA as `ca.pem` and a README.txt, then verifies the copy: a bundle
/// is only reported once it verifies on its own.
pub fn export_bundle(dir: &Path, to: &Path) -> Result<ExportReport, ReplayError> {
    let source = resolve_log_dir(dir)?;
    if let Ok(mut listing) = std::fs::read_dir(to)
        && listing.next().is_some()
    {
        return Err(ReplayError::Request(format!(
            "{} is not empty: export into a new or empty folder",
            to.display()
        )));
    }
    std::fs::create_dir_all(to).map_err(io_err("create", to))?;
    let (mut files, mut bytes) = (0usize, 0u64);
    // checkpoints.log first: the entries copied after it then cover every
    // checkpoint even if the coordinator appends meanwhile.
    for name in [
        fedsoc_audit::log::CHECKPOINTS_FILE,
        fedsoc_audit::log::ENTRIES_FILE,
    ] {
        let from = source.join(name);
        bytes += std::fs::copy(&from, to.join(name)).map_err(io_err("copy", &from))?;
        files += 1;
    }
    let (n, b) = copy_blobs(
        &source.join(fedsoc_audit::log::BLOBS_DIR),
        &to.join(fedsoc_audit::log::BLOBS_DIR),
    )?;
    files += n;
    bytes += b;

    let log = AuditLog::open_read_only(to)?;
    if log.is_empty() {
        return Err(ReplayError::Empty(source));
    }
    let anchor = Anchor::read(&log.entry(0)?, log.blobs())?;
    let ca_pem = fedsoc_pki::certificate_pem(&anchor.ca_der);
    let ca_path = to.join("ca.pem");
    std::fs::write(&ca_path, &ca_pem).map_err(io_err("write", &ca_path))?;
    let readme = to.join("README.txt");
    std::fs::write(&readme, bundle_readme(&trail::sha256_hex(&anchor.ca_der)))
        .map_err(io_err("write", &readme))?;
    let verified = verify_log(to, Some(&ca_pem))?;
    Ok(ExportReport {
        bundle: to.to_path_buf(),
        files: files + 2,
        bytes,
        verified,
    })
}

/// Copies the blob store's shard folders, skipping unfinished writes.
fn copy_blobs(from: &Path, to: &Path) -> Result<(usize, u64), ReplayError> {
    std::fs::create_dir_all(to).map_err(io_err("create", to))?;
    let (mut files, mut bytes) = (0, 0);
    let Ok(shards) = std::fs::read_dir(from) else {
        return Ok((0, 0));
    };
    for shard in shards {
        let shard = shard.map_err(io_err("list", from))?;
        if !shard.path().is_dir() {
            continue;
        }
        let target = to.join(shard.file_name());
        std::fs::create_dir_all(&target).map_err(io_err("create", &target))?;
        for blob in std::fs::read_dir(shard.path()).map_err(io_err("list", &shard.path()))? {
            let blob = blob.map_err(io_err("list", &shard.path()))?;
            if blob.file_name().to_string_lossy().starts_with('.') || !blob.path().is_file() {
                continue;
            }
            bytes += std::fs::copy(blob.path(), target.join(blob.file_name()))
                .map_err(io_err("copy", &blob.path()))?;
            files += 1;
        }
    }
    Ok((files, bytes))
}

/// Every blob an entry refers to, by kind (the schema in [`crate::trail`]).
/// An unknown kind is refused: an auditor cannot vouch for what it cannot
/// read.
pub fn blob_refs(entry: &Entry) -> Result<Vec<BlobId>, String> {
    fn body<T: DeserializeOwned>(entry: &Entry) -> Result<T, String> {
        entry.body_json().map_err(|e| e.to_string())
    }
    Ok(match entry.kind.as_str() {
        kind::FEDERATION_CREATED => {
            let b: FederationCreated = body(entry)?;
            vec![b.initial_model, b.ca_certificate, b.coordinator_certificate]
        }
        kind::ROUND_OPENED => {
            let b: RoundOpened = body(entry)?;
            let mut ids: Vec<BlobId> = b.members.iter().map(|m| m.certificate).collect();
            ids.push(b.global_model);
            ids
        }
        kind::ROUND_STAGE => vec![body::<StageClosed>(entry)?.messages],
        kind::ROUND_AGGREGATED => vec![body::<RoundAggregated>(entry)?.sum],
        kind::ROUND_MODEL => {
            let b: RoundModel = body(entry)?;
            let mut ids = vec![b.model];
            ids.extend(b.optimizer.map(|o| o.state));
            ids
        }
        kind::COORDINATOR_STARTED => {
            body::<CoordinatorStarted>(entry)?;
            vec![]
        }
        kind::ROUND_METRICS => {
            body::<RoundMetrics>(entry)?;
            vec![]
        }
        kind::ROUND_ABORTED => {
            body::<RoundAborted>(entry)?;
            vec![]
        }
        kind::CHECKPOINT_COSIGNED => vec![body::<CosignatureRecord>(entry)?.certificate],
        kind::STATISTICS_MOMENTS => {
            body::<trail::MomentsSummed>(entry)?;
            vec![]
        }
        kind::ENCODER_FITTED => {
            body::<trail::EncoderFitted>(entry)?;
            vec![]
        }
        kind::THRESHOLD_CALIBRATED => {
            body::<trail::ThresholdCalibrated>(entry)?;
            vec![]
        }
        other => return Err(format!("unknown entry kind {other:?}: {}", KNOWN_KINDS)),
    })
}

const KNOWN_KINDS: &str = "this build reads federation.created, coordinator.started, round.opened, round.stage, round.aggregated, statistics.moments, encoder.fitted, threshold.calibrated, round.model, round.metrics, round.aborted and checkpoint.cosigned; use the fedsoc release that wrote the log";

/// What the first entry establishes: the federation, its CA and the key
/// that signs the checkpoints.
pub(crate) struct Anchor {
    pub federation: FederationCreated,
    pub ca_der: Vec<u8>,
    pub coordinator_key: VerifyingKey,
}

impl Anchor {
    /// Reads and checks `federation.created` (entry 0).
    pub(crate) fn read(first: &Entry, blobs: &BlobStore) -> Result<Self, ReplayError> {
        let fail = |reason: String| ReplayError::Entry {
            index: 0,
            kind: first.kind.clone(),
            round: None,
            reason,
        };
        if first.kind != kind::FEDERATION_CREATED {
            return Err(fail(
                "a log starts with federation.created: this is not a fedsoc coordinator's log, or its beginning is missing".into(),
            ));
        }
        let federation: FederationCreated = first.body_json().map_err(|e| fail(e.to_string()))?;
        let ca = blobs
            .get(&federation.ca_certificate)
            .map_err(|e| fail(format!("the CA certificate: {e}")))?;
        let ca_der = certificate_der(&ca).map_err(|e| fail(format!("the CA certificate: {e}")))?;
        let coordinator = blobs
            .get(&federation.coordinator_certificate)
            .map_err(|e| fail(format!("the coordinator certificate: {e}")))?;
        let coordinator = certificate_der(&coordinator)
            .map_err(|e| fail(format!("the coordinator certificate: {e}")))?;
        let (_, coordinator_key) =
            check_certificate(&ca_der, &coordinator, first.timestamp_ms, Role::Coordinator)
                .map_err(|e| fail(format!("the coordinator certificate {e}")))?;
        Ok(Anchor {
            federation,
            ca_der,
            coordinator_key,
        })
    }
}

/// DER of a certificate blob, which may hold PEM or DER.
pub(crate) fn certificate_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if bytes.starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(bytes).map_err(|_| "PEM that is not UTF-8".to_string())?;
        fedsoc_pki::first_certificate_der(text)
            .ok_or_else(|| "PEM without a CERTIFICATE block".to_string())
    } else {
        Ok(bytes.to_vec())
    }
}

/// OID of Ed25519 (RFC 8410).
const ED25519_OID: &str = "1.3.101.112";

/// Checks `cert_der` against the CA as it stood at `at_ms` (when the
/// entry naming it was written) and returns who it is and its Ed25519 key.
/// Errors read after "the certificate …".
pub(crate) fn check_certificate(
    ca_der: &[u8],
    cert_der: &[u8],
    at_ms: u64,
    role: Role,
) -> Result<(Identity, VerifyingKey), String> {
    let (_, ca) = X509Certificate::from_der(ca_der)
        .map_err(|e| format!("cannot be checked: the CA certificate does not parse: {e}"))?;
    let (_, cert) =
        X509Certificate::from_der(cert_der).map_err(|e| format!("does not parse: {e}"))?;
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|_| "is not signed by the federation CA".to_string())?;
    if cert.tbs_certificate.issuer != ca.tbs_certificate.subject {
        return Err("names an issuer other than the federation CA".into());
    }
    let at_s = i64::try_from(at_ms / 1000).unwrap_or(i64::MAX);
    let at = ASN1Time::from_timestamp(at_s)
        .map_err(|_| format!("cannot be checked at time {at_ms} ms"))?;
    if !ca.validity().is_valid_at(at) {
        return Err("is checked against a CA that was not valid when the entry was written".into());
    }
    if !cert.validity().is_valid_at(at) {
        return Err(format!(
            "was not valid when the entry was written (valid {} to {})",
            cert.validity().not_before,
            cert.validity().not_after
        ));
    }
    let spki = cert.public_key();
    if spki.algorithm.algorithm.to_id_string() != ED25519_OID {
        return Err("does not carry an Ed25519 key".into());
    }
    let key: [u8; 32] = spki
        .subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| "carries a malformed Ed25519 key".to_string())?;
    let key = VerifyingKey::from_bytes(&key)
        .map_err(|e| format!("carries an invalid Ed25519 key: {e}"))?;
    let identity =
        fedsoc_pki::identity_from_der(cert_der).map_err(|e| format!("names no identity: {e}"))?;
    if identity.role != role {
        return Err(format!(
            "is a {} certificate ({}), not a {role} certificate",
            identity.role, identity.id
        ));
    }
    Ok((identity, key))
}

/// The SecAgg+ server of one replayed round, stage by stage.
enum Machine {
    Keys(ServerCollectingKeys),
    Reveals(ServerCollectingReveals),
    Shares(ServerCollectingShares),
    Masked(ServerCollectingMasked),
    Signatures(ServerCollectingSignatures),
    Unmask(ServerCollectingUnmask),
    Done(Aggregate),
    /// Between stages, or after a stage failed to replay.
    Spent,
}

/// Why a logged stage does not replay.
enum FeedError {
    /// The server refuses message `k` of the stage.
    Refused(usize, SecAggError),
    /// The server cannot close the stage, though the coordinator did.
    Close(SecAggError),
}

impl Machine {
    /// The stage whose messages come next.
    fn expects(&self) -> Option<u32> {
        match self {
            Machine::Keys(_) => Some(stage::ADVERTISE_KEYS),
            Machine::Reveals(_) => Some(stage::REVEAL_SEED),
            Machine::Shares(_) => Some(stage::SHARE_KEYS),
            Machine::Masked(_) => Some(stage::MASKED_INPUT),
            Machine::Signatures(_) => Some(stage::CONSISTENCY),
            Machine::Unmask(_) => Some(stage::UNMASK),
            Machine::Done(_) | Machine::Spent => None,
        }
    }

    /// Feeds one stage's messages in their logged order, then closes the
    /// stage, as the coordinator's driver does. The coordinator logs a
    /// stage only once the server accepted its messages and closed it, so
    /// a refusal or a failed close here means the log is not what happened.
    fn feed(self, messages: &[(u32, Vec<u8>)]) -> Result<Machine, FeedError> {
        fn each<M: Message>(
            messages: &[(u32, Vec<u8>)],
            mut handle: impl FnMut(ParticipantId, M) -> fedsoc_secagg::Result<()>,
        ) -> Result<(), FeedError> {
            for (k, (index, bytes)) in messages.iter().enumerate() {
                M::decode(bytes)
                    .and_then(|m| handle(ParticipantId(*index), m))
                    .map_err(|e| FeedError::Refused(k, e))?;
            }
            Ok(())
        }
        Ok(match self {
            Machine::Keys(mut s) => {
                each::<AdvertiseKeys>(messages, |p, m| s.handle_advertise(p, m))?;
                Machine::Reveals(s.close().map_err(FeedError::Close)?.0)
            }
            Machine::Reveals(mut s) => {
                each::<SeedReveal>(messages, |p, m| s.handle_reveal(p, m))?;
                Machine::Shares(s.close().map_err(FeedError::Close)?.0)
            }
            Machine::Shares(mut s) => {
                each::<ShareKeys>(messages, |p, m| s.handle_share_keys(p, m))?;
                Machine::Masked(s.close().map_err(FeedError::Close)?.0)
            }
            Machine::Masked(mut s) => {
                each::<MaskedInput>(messages, |p, m| s.handle_masked_input(p, m))?;
                Machine::Signatures(s.close().map_err(FeedError::Close)?.0)
            }
            Machine::Signatures(mut s) => {
                each::<ConsistencySignature>(messages, |p, m| s.handle_consistency(p, m))?;
                Machine::Unmask(s.close().map_err(FeedError::Close)?.0)
            }
            Machine::Unmask(mut s) => {
                each::<UnmaskShares>(messages, |p, m| s.handle_unmask(p, m))?;
                Machine::Done(s.close().map_err(FeedError::Close)?)
            }
            done @ (Machine::Done(_) | Machine::Spent) => done,
        })
    }
}

/// How a replayed attempt aggregates.
enum Plan {
    Secure {
        /// `None` in a sum round: its words are not an update.
        encoding: Option<WeightedEncoding>,
        machine: Box<Machine>,
    },
    Plain(PlainState),
}

/// A plaintext round's sum: collecting updates, then summed.
enum PlainState {
    Collecting(PlaintextSum),
    Summed {
        sum: WeightedSum,
        /// Member indices, in the order their updates were added.
        senders: Vec<u32>,
    },
}

/// A round attempt between `round.opened` and its end.
struct Attempt {
    round: u64,
    attempt: u32,
    members: Vec<String>,
    num_params: usize,
    plan: Plan,
    /// Set by `round.aggregated`, once it matched the replay.
    aggregated: Option<WeightedSum>,
    /// A sum round's query, its unmasked words (once aggregated) and its
    /// conclusion (once its entry matched the replay's).
    query: Option<Query>,
    words: Option<Vec<u64>>,
    conclusion: Option<Conclusion>,
}

struct Replayer {
    blobs: BlobStore,
    ca_der: Vec<u8>,
    global: Vec<f32>,
    global_sha: String,
    completed: u64,
    /// The last attempt number seen per round.
    attempts: HashMap<u64, u32>,
    /// Set by a restart: attempt numbers may start again from 1.
    restarted: bool,
    open: Option<Attempt>,
    /// Each round's model hash (0: the initial model), for metrics.
    models: BTreeMap<u64, String>,
    attempts_seen: u64,
    aborted: u64,
    interrupted: u64,
    secure_rounds: u64,
    plaintext_rounds: u64,
    /// The stored checkpoints (verified), which cosignatures must name.
    checkpoints: Vec<SignedCheckpoint>,
    /// (size, time, root) of a checkpoint → witness key → witness name.
    cosigners: HashMap<(u64, u64, fedsoc_audit::Hash), BTreeMap<[u8; 32], String>>,
    /// The federation's model, for what calibrations conclude.
    model: fedsoc_models::ModelConfig,
    /// What the replayed sum rounds established.
    sums: SumState,
    /// The server optimiser of the log's training rounds and the first
    /// round that used it: every later one must use the same.
    strategy: Option<(u64, ServerOptimizer)>,
    /// Its state after the last training round (`None`: zeros, or FedAvg).
    optimizer: Option<OptimizerState>,
}

/// Hex prefix for messages.
fn short(hash: &str) -> &str {
    hash.get(..16).unwrap_or(hash)
}

fn same_f64(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

impl Replayer {
    fn new(anchor: &Anchor, blobs: BlobStore) -> Result<Self, ReplayError> {
        let fed = &anchor.federation;
        let fail = |reason: String| ReplayError::Entry {
            index: 0,
            kind: kind::FEDERATION_CREATED.into(),
            round: None,
            reason,
        };
        let bytes = blobs
            .get(&fed.initial_model)
            .map_err(|e| fail(format!("the initial model: {e}")))?;
        let global =
            trail::f32_values(&bytes).map_err(|e| fail(format!("the initial model: {e}")))?;
        let global_sha = model_sha256(&global);
        if global_sha != fed.initial_model_sha256 {
            return Err(fail(format!(
                "the initial model blob hashes to {}, the entry says {}",
                short(&global_sha),
                short(&fed.initial_model_sha256)
            )));
        }
        Ok(Replayer {
            blobs,
            ca_der: anchor.ca_der.clone(),
            models: BTreeMap::from([(0, global_sha.clone())]),
            global,
            global_sha,
            completed: 0,
            attempts: HashMap::new(),
            restarted: false,
            open: None,
            attempts_seen: 0,
            aborted: 0,
            interrupted: 0,
            secure_rounds: 0,
            plaintext_rounds: 0,
            checkpoints: Vec::new(),
            cosigners: HashMap::new(),
            model: model_config(fed).map_err(fail)?,
            sums: SumState {
                encoder: InForce {
                    sha256: fed.encoder_sha256.clone(),
                    ..InForce::default()
                },
                ..SumState::default()
            },
            strategy: None,
            optimizer: None,
        })
    }

    fn apply(&mut self, index: u64, entry: &Entry) -> Result<(), ReplayError> {
        let fail = |round: Option<u64>, reason: String| ReplayError::Entry {
            index,
            kind: entry.kind.clone(),
            round,
            reason,
        };
        fn body<T: DeserializeOwned>(
            entry: &Entry,
            fail: impl Fn(Option<u64>, String) -> ReplayError,
        ) -> Result<T, ReplayError> {
            entry.body_json().map_err(|e| fail(None, e.to_string()))
        }
        match entry.kind.as_str() {
            kind::FEDERATION_CREATED if index == 0 => Ok(()),
            kind::FEDERATION_CREATED => Err(fail(
                None,
                "a second federation.created: a log records one federation".into(),
            )),
            kind::COORDINATOR_STARTED => {
                let b: CoordinatorStarted = body(entry, fail)?;
                self.started(&b).map_err(|r| fail(None, r))
            }
            kind::ROUND_OPENED => {
                let b: RoundOpened = body(entry, fail)?;
                self.opened(&b, entry.timestamp_ms)
                    .map_err(|r| fail(Some(b.round), r))
            }
            kind::ROUND_STAGE => {
                let b: StageClosed = body(entry, fail)?;
                self.stage(&b).map_err(|r| fail(Some(b.round), r))
            }
            kind::ROUND_AGGREGATED => {
                let b: RoundAggregated = body(entry, fail)?;
                self.aggregated(&b).map_err(|r| fail(Some(b.round), r))
            }
            kind::STATISTICS_MOMENTS | kind::ENCODER_FITTED | kind::THRESHOLD_CALIBRATED => {
                #[derive(serde::Deserialize)]
                struct Names {
                    round: u64,
                    attempt: u32,
                }
                let names: Names = body(entry, fail)?;
                let logged: serde_json::Value = body(entry, fail)?;
                self.concluded(&entry.kind, names.round, names.attempt, &logged)
                    .map_err(|r| fail(Some(names.round), r))
            }
            kind::ROUND_MODEL => {
                let b: RoundModel = body(entry, fail)?;
                self.model(&b).map_err(|r| fail(Some(b.round), r))
            }
            kind::ROUND_METRICS => {
                let b: RoundMetrics = body(entry, fail)?;
                self.metrics(&b).map_err(|r| fail(Some(b.round), r))
            }
            kind::ROUND_ABORTED => {
                let b: RoundAborted = body(entry, fail)?;
                self.aborted(&b).map_err(|r| fail(Some(b.round), r))
            }
            kind::CHECKPOINT_COSIGNED => {
                let b: CosignatureRecord = body(entry, fail)?;
                self.cosigned(&b, entry.timestamp_ms)
                    .map_err(|r| fail(None, r))
            }
            other => Err(fail(
                None,
                format!("unknown entry kind {other:?}: {KNOWN_KINDS}"),
            )),
        }
    }

    /// A participant's cosignature: over a checkpoint the coordinator
    /// signed and stored, by a participant certificate of the federation
    /// CA (valid when the entry was written) naming the witness.
    fn cosigned(&mut self, b: &CosignatureRecord, at_ms: u64) -> Result<(), String> {
        let c = &b.checkpoint;
        if !self.checkpoints.iter().any(|s| s.checkpoint == *c) {
            return Err(format!(
                "a cosignature by {:?} over a checkpoint (size {}, time {}) that is not among the log's signed checkpoints",
                b.cosignature.name, c.tree_size, c.timestamp_ms
            ));
        }
        let pem = self
            .blobs
            .get(&b.certificate)
            .map_err(|e| format!("the witness certificate: {e}"))?;
        let der = certificate_der(&pem).map_err(|e| format!("the witness certificate: {e}"))?;
        let (identity, key) = check_certificate(&self.ca_der, &der, at_ms, Role::Participant)
            .map_err(|e| format!("the witness certificate {e}"))?;
        if identity.id != b.cosignature.name {
            return Err(format!(
                "the cosignature names witness {:?} but its certificate is for {:?}",
                b.cosignature.name, identity.id
            ));
        }
        b.cosignature.verify(c, &key).map_err(|e| e.to_string())?;
        self.cosigners
            .entry((c.tree_size, c.timestamp_ms, c.root))
            .or_default()
            .insert(key.to_bytes(), identity.id);
        Ok(())
    }

    fn started(&mut self, b: &CoordinatorStarted) -> Result<(), String> {
        if b.global_model_sha256 != self.global_sha {
            return Err(format!(
                "the coordinator restarted from global model {}, but the log's current global model is {}",
                short(&b.global_model_sha256),
                short(&self.global_sha)
            ));
        }
        if b.completed_round != self.completed {
            return Err(format!(
                "the coordinator restarted after round {}, but the log completes round {}",
                b.completed_round, self.completed
            ));
        }
        let replayed = self.optimizer.as_ref().map(OptimizerState::sha256);
        if b.optimizer_state_sha256 != replayed {
            let show = |s: &Option<String>| {
                s.as_deref()
                    .map_or("none".to_string(), |h| short(h).to_string())
            };
            return Err(format!(
                "the coordinator restarted from optimiser state {}, but the log's state after its last training round is {}",
                show(&b.optimizer_state_sha256),
                show(&replayed)
            ));
        }
        if self.open.take().is_some() {
            self.interrupted += 1;
        }
        self.restarted = true;
        Ok(())
    }

    /// Checks that (round, attempt) is the next attempt and records it.
    fn next_attempt(&mut self, round: u64, attempt: u32) -> Result<(), String> {
        if let Some(open) = &self.open {
            return Err(format!(
                "attempt {} of round {} is still open (it has no round.model or round.aborted)",
                open.attempt, open.round
            ));
        }
        if round != self.completed + 1 {
            return Err(format!(
                "round {round} follows round {}: rounds go up by one per completed round",
                self.completed
            ));
        }
        let expected = self.attempts.get(&round).copied().unwrap_or(0) + 1;
        if attempt != expected && !(self.restarted && attempt == 1) {
            return Err(format!(
                "attempt {attempt}, but the next attempt at round {round} is {expected}"
            ));
        }
        self.restarted = false;
        self.attempts.insert(round, attempt);
        self.attempts_seen += 1;
        Ok(())
    }

    fn opened(&mut self, b: &RoundOpened, at_ms: u64) -> Result<(), String> {
        self.next_attempt(b.round, b.attempt)?;
        if b.global_model.to_string() != self.global_sha || b.global_model_sha256 != self.global_sha
        {
            return Err(format!(
                "the round starts from global model {} (blob {}), but the current global model is {}",
                short(&b.global_model_sha256),
                short(&b.global_model.to_string()),
                short(&self.global_sha)
            ));
        }
        if b.num_params != self.global.len() {
            return Err(format!(
                "{} parameters, the global model has {}",
                b.num_params,
                self.global.len()
            ));
        }
        if b.members.is_empty() {
            return Err("the round has no members".into());
        }
        let mut keys = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for (i, member) in b.members.iter().enumerate() {
            if !seen.insert(member.id.as_str()) {
                return Err(format!("member {} is listed twice", member.id));
            }
            let bytes = self
                .blobs
                .get(&member.certificate)
                .map_err(|e| format!("member {}: {e}", member.id))?;
            let der = certificate_der(&bytes).map_err(|e| format!("member {}: {e}", member.id))?;
            let (identity, key) =
                check_certificate(&self.ca_der, &der, at_ms, Role::Participant)
                    .map_err(|e| format!("the certificate of member {} {e}", member.id))?;
            if identity.id != member.id {
                return Err(format!(
                    "member {} presents the certificate of {}",
                    member.id, identity.id
                ));
            }
            keys.insert(ParticipantId(i as u32), key);
        }
        if let Some(sha) = &b.encoder_sha256
            && *sha != self.sums.encoder.sha256
        {
            return Err(format!(
                "the round's tasks carry encoder {}, but the encoder in force is {}",
                short(sha),
                short(&self.sums.encoder.sha256)
            ));
        }
        let query = match (b.kind.is_sum(), &b.query) {
            (false, None) => None,
            (true, Some(json)) => Some(Query::parse(b.kind, json)?),
            (true, None) => return Err(format!("a {} round without its query", b.kind.name())),
            (false, Some(_)) => return Err("a training round with a sum query".into()),
        };
        let plan = match &b.secagg {
            Some(s) => secure_plan(s, keys, b.num_params, query.as_ref())?,
            None if query.is_some() => {
                return Err("a sum round without secure aggregation".into());
            }
            None => Plan::Plain(PlainState::Collecting(PlaintextSum::new(b.num_params))),
        };
        self.open = Some(Attempt {
            round: b.round,
            attempt: b.attempt,
            members: b.members.iter().map(|m| m.id.clone()).collect(),
            num_params: b.num_params,
            plan,
            aggregated: None,
            query,
            words: None,
            conclusion: None,
        });
        Ok(())
    }

    /// The open attempt, if `round`/`attempt` name it.
    fn attempt(&mut self, round: u64, attempt: u32) -> Result<&mut Attempt, String> {
        match self.open.as_ref() {
            Some(a) if a.round == round && a.attempt == attempt => {}
            Some(a) => {
                return Err(format!(
                    "it names attempt {attempt} of round {round}, but the open attempt is {} of round {}",
                    a.attempt, a.round
                ));
            }
            None => {}
        }
        self.open.as_mut().ok_or_else(|| {
            format!("it names attempt {attempt} of round {round}, but no round.opened precedes it")
        })
    }

    fn stage(&mut self, b: &StageClosed) -> Result<(), String> {
        let blob = self
            .blobs
            .get(&b.messages)
            .map_err(|e| format!("stage {} messages: {e}", b.stage))?;
        let a = self.attempt(b.round, b.attempt)?;
        let messages = trail::decode_messages(&blob)
            .map_err(|e| format!("stage {} ({}): the message blob: {e}", b.stage, b.name))?;
        if messages.len() != b.received.len() {
            return Err(format!(
                "stage {} ({}): the entry lists {} messages, the blob holds {}",
                b.stage,
                b.name,
                b.received.len(),
                messages.len()
            ));
        }
        let mut indices = BTreeSet::new();
        for (k, ((index, bytes), record)) in messages.iter().zip(&b.received).enumerate() {
            let member = a.members.get(*index as usize);
            if *index != record.index || member != Some(&record.participant) {
                return Err(format!(
                    "stage {} ({}): message {k} of the blob is from member index {index} ({}), the entry says {} (index {})",
                    b.stage,
                    b.name,
                    member.map_or("not a member", String::as_str),
                    record.participant,
                    record.index
                ));
            }
            let actual = trail::sha256_hex(bytes);
            if actual != record.sha256 {
                return Err(format!(
                    "stage {} ({}): the message of {} in the blob hashes to {}, the entry says {}: the logged message is not the one received",
                    b.stage,
                    b.name,
                    record.participant,
                    short(&actual),
                    short(&record.sha256)
                ));
            }
            if !indices.insert(*index) {
                return Err(format!(
                    "stage {} ({}): {} has two messages",
                    b.stage, b.name, record.participant
                ));
            }
        }
        if let Some(d) = b
            .dropped
            .iter()
            .find(|d| !a.members.contains(&d.participant))
        {
            return Err(format!(
                "stage {} ({}): dropout {} is not a member of the round",
                b.stage, b.name, d.participant
            ));
        }
        let name = |index: u32| {
            a.members
                .get(index as usize)
                .cloned()
                .unwrap_or_else(|| format!("index {index}"))
        };
        match &mut a.plan {
            Plan::Secure { machine, .. } => {
                match machine.expects() {
                    Some(e) if e == b.stage => {}
                    Some(e) => {
                        return Err(format!(
                            "stage {} ({}) is logged where stage {e} comes next",
                            b.stage, b.name
                        ));
                    }
                    None => {
                        return Err(format!(
                            "stage {} ({}) is logged after the last stage",
                            b.stage, b.name
                        ));
                    }
                }
                let current = std::mem::replace(machine.as_mut(), Machine::Spent);
                **machine = current.feed(&messages).map_err(|e| match e {
                    FeedError::Refused(k, e) => {
                        let who = messages.get(k).map_or_else(String::new, |(i, _)| name(*i));
                        format!(
                            "stage {} ({}): the SecAgg+ server refuses the logged message of {who}: {e}",
                            b.stage, b.name
                        )
                    }
                    FeedError::Close(e) => format!(
                        "stage {} ({}): the logged messages cannot close the stage, yet the coordinator went on: {e}",
                        b.stage, b.name
                    ),
                })?;
            }
            Plan::Plain(state) => {
                if b.stage != PLAINTEXT_UPDATES_STAGE {
                    return Err(format!(
                        "stage {} ({}) in a plaintext round, whose one stage is {PLAINTEXT_UPDATES_STAGE}",
                        b.stage, b.name
                    ));
                }
                let PlainState::Collecting(acc) = state else {
                    return Err("a second stage of plaintext updates".into());
                };
                for (index, bytes) in &messages {
                    let (samples, loss, delta) = trail::decode_plain_update(bytes)
                        .map_err(|e| format!("the update of {}: {e}", name(*index)))?;
                    acc.add(samples, loss, &delta)
                        .map_err(|e| format!("the update of {} is refused: {e}", name(*index)))?;
                }
                let acc = std::mem::replace(acc, PlaintextSum::new(0));
                *state = PlainState::Summed {
                    sum: acc.finish(),
                    senders: messages.iter().map(|(i, _)| *i).collect(),
                };
            }
        }
        Ok(())
    }

    fn aggregated(&mut self, b: &RoundAggregated) -> Result<(), String> {
        let blob = self
            .blobs
            .get(&b.sum)
            .map_err(|e| format!("the sum: {e}"))?;
        let a = self.attempt(b.round, b.attempt)?;
        if a.aggregated.is_some() {
            return Err("a second round.aggregated for this attempt".into());
        }
        let (sum, survivors) = match &a.plan {
            Plan::Secure { encoding, machine } => {
                let aggregate = match machine.as_ref() {
                    Machine::Done(aggregate) => aggregate,
                    Machine::Spent => {
                        return Err(
                            "an aggregate is logged for a round whose stages did not replay".into(),
                        );
                    }
                    other => {
                        return Err(format!(
                            "an aggregate is logged before the protocol's last stage (stage {} comes next)",
                            other.expects().unwrap_or_default()
                        ));
                    }
                };
                if blob.len() % 8 != 0 {
                    return Err(format!(
                        "the sum blob of {} bytes is not u64 words",
                        blob.len()
                    ));
                }
                let logged: Vec<u64> = blob
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect();
                if logged.len() != aggregate.sum.len() {
                    return Err(format!(
                        "the logged sum has {} words, the replayed unmasking gives {}",
                        logged.len(),
                        aggregate.sum.len()
                    ));
                }
                if let Some(k) = (0..logged.len()).find(|&k| logged[k] != aggregate.sum[k]) {
                    return Err(format!(
                        "the replayed unmasking does not give the logged sum: word {k} is {:#x} replayed, {:#x} logged",
                        aggregate.sum[k], logged[k]
                    ));
                }
                if a.query.is_some() {
                    // A sum round's words are its result: no update to decode.
                    a.words = Some(aggregate.sum.clone());
                    let survivors: Vec<u32> = aggregate.survivors.iter().map(|p| p.0).collect();
                    (
                        WeightedSum {
                            weighted_delta: Vec::new(),
                            total_samples: b.total_samples,
                            weighted_loss: b.weighted_loss,
                        },
                        survivors,
                    )
                } else {
                    let Some(encoding) = encoding else {
                        return Err("a training round replayed without its encoding".into());
                    };
                    let total = encoding
                        .decode(&aggregate.sum, aggregate.survivors.len())
                        .map_err(|e| format!("the unmasked sum does not decode: {e}"))?;
                    let survivors: Vec<u32> = aggregate.survivors.iter().map(|p| p.0).collect();
                    (
                        WeightedSum {
                            weighted_delta: total.weighted_delta,
                            total_samples: total.total_weight,
                            weighted_loss: total.weighted_loss,
                        },
                        survivors,
                    )
                }
            }
            Plan::Plain(state) => {
                let PlainState::Summed { sum, senders } = state else {
                    return Err("an aggregate is logged before the plaintext updates".into());
                };
                let sum = sum.clone();
                if blob.len() != 8 * sum.weighted_delta.len() {
                    return Err(format!(
                        "the sum blob holds {} bytes, {} f64 values need {}",
                        blob.len(),
                        sum.weighted_delta.len(),
                        8 * sum.weighted_delta.len()
                    ));
                }
                let logged = blob
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
                if let Some((k, (l, r))) = logged
                    .zip(&sum.weighted_delta)
                    .enumerate()
                    .find(|(_, (l, r))| l.to_bits() != r.to_bits())
                {
                    return Err(format!(
                        "the replayed sum of the updates does not give the logged sum: value {k} is {r} replayed, {l} logged"
                    ));
                }
                (sum, senders.clone())
            }
        };
        let mut replayed: Vec<&str> = survivors
            .iter()
            .filter_map(|&i| a.members.get(i as usize).map(String::as_str))
            .collect();
        let mut logged: Vec<&str> = b.survivors.iter().map(String::as_str).collect();
        replayed.sort_unstable();
        logged.sort_unstable();
        if replayed != logged {
            return Err(format!(
                "the logged survivors are [{}], the replay gives [{}]",
                logged.join(", "),
                replayed.join(", ")
            ));
        }
        if sum.total_samples != b.total_samples {
            return Err(format!(
                "{} samples logged, the replayed sum counts {}",
                b.total_samples, sum.total_samples
            ));
        }
        if !same_f64(sum.weighted_loss, b.weighted_loss) {
            return Err(format!(
                "weighted loss {} logged, the replayed sum gives {}",
                b.weighted_loss, sum.weighted_loss
            ));
        }
        if a.query.is_some() {
            a.aggregated = Some(sum);
            return Ok(());
        }
        if sum.weighted_delta.len() != a.num_params {
            return Err(format!(
                "the sum has {} values, the model {}",
                sum.weighted_delta.len(),
                a.num_params
            ));
        }
        a.aggregated = Some(sum);
        Ok(())
    }

    fn model(&mut self, b: &RoundModel) -> Result<(), String> {
        let blob = self
            .blobs
            .get(&b.model)
            .map_err(|e| format!("the model: {e}"))?;
        let global_sha = self.global_sha.clone();
        let a = self.attempt(b.round, b.attempt)?;
        let Some(sum) = a.aggregated.clone() else {
            return Err("a model is logged before its round.aggregated".into());
        };
        let secure = matches!(a.plan, Plan::Secure { .. });
        if let Some(query) = a.query.clone() {
            let Some(conclusion) = a.conclusion.clone() else {
                return Err(format!(
                    "a {} round completes without its conclusion entry",
                    query.kind().name()
                ));
            };
            if b.strategy != "unchanged"
                || b.model_sha256 != global_sha
                || blob != trail::f32_bytes(&self.global)
            {
                return Err(format!(
                    "a {} round computes no update, but its round.model changes the global model (strategy {:?}, model {})",
                    query.kind().name(),
                    b.strategy,
                    short(&b.model_sha256)
                ));
            }
            conclusion.apply(&mut self.sums, &query);
            self.secure_rounds += 1;
            self.open = None;
            self.completed = b.round;
            self.models.insert(b.round, global_sha);
            return Ok(());
        }
        let optimizer = logged_optimizer(b)?;
        if let Some((since, used)) = &self.strategy
            && !used.same_as(&optimizer)
        {
            return Err(format!(
                "this round steps with {}, but the log's training rounds used {} since round {since} ({}): a federation keeps its server optimiser and hyperparameters for life, and the state this round continues was computed with the earlier ones. The log was changed, or written by a coordinator whose [strategy] changed mid-federation (which fedsoc refuses at start)",
                optimizer.describe(),
                used.describe(),
                optimizer.differences(used)
            ));
        }
        if b.global_in_sha256 != global_sha {
            return Err(format!(
                "the strategy step starts from global model {}, but the current global model is {}",
                short(&b.global_in_sha256),
                short(&global_sha)
            ));
        }
        let (model, state) =
            optimizer::step(&optimizer, &self.global, &sum, self.optimizer.as_ref())
                .map_err(|e| format!("the {} step cannot be replayed: {e}", optimizer.name()))?;
        let replayed = model_sha256(&model);
        if replayed != b.model_sha256 {
            return Err(format!(
                "the model does not follow from the logged aggregate{}: replayed sha256 {}…, logged {}…",
                if optimizer.is_stateful() {
                    format!(
                        " and the {} step (with the logged hyperparameters, from the replayed state)",
                        optimizer.name()
                    )
                } else {
                    String::new()
                },
                short(&replayed),
                short(&b.model_sha256)
            ));
        }
        if let (Some(state), Some(record)) = (&state, &b.optimizer) {
            self.check_state(state, record, &optimizer)?;
        }
        if blob != trail::f32_bytes(&model) {
            return Err(format!(
                "the model blob {} is not the model whose sha256 the entry names",
                short(&b.model.to_string())
            ));
        }
        let mean = strategy::mean_loss(&sum);
        if !(mean == b.mean_loss
            || (mean - b.mean_loss).abs() <= 1e-5 * mean.abs().max(1.0)
            || (mean.is_nan() && b.mean_loss.is_nan()))
        {
            return Err(format!(
                "mean loss {} logged, the replayed sum gives {mean}",
                b.mean_loss
            ));
        }
        if secure {
            self.secure_rounds += 1;
        } else {
            self.plaintext_rounds += 1;
        }
        self.open = None;
        self.completed = b.round;
        self.models.insert(b.round, replayed.clone());
        self.global = model;
        self.global_sha = replayed;
        self.strategy.get_or_insert((b.round, optimizer));
        self.optimizer = state;
        Ok(())
    }

    /// The state a `round.model` names must be the replayed one, bit for
    /// bit, and its step count the replayed count.
    fn check_state(
        &self,
        state: &OptimizerState,
        record: &trail::OptimizerRecord,
        optimizer: &ServerOptimizer,
    ) -> Result<(), String> {
        let name = optimizer.name();
        let logged = self
            .blobs
            .get(&record.state)
            .map_err(|e| format!("the {name} optimiser state: {e}"))?;
        if trail::sha256_hex(&logged) != record.state_sha256 {
            return Err(format!(
                "the {name} optimiser state blob {} is not the state whose sha256 ({}…) the entry names",
                short(&record.state.to_string()),
                short(&record.state_sha256)
            ));
        }
        let bytes = state.to_bytes();
        if logged != bytes || record.steps != state.steps {
            let detail = match OptimizerState::from_bytes(
                optimizer.state_vectors(),
                self.global.len(),
                record.steps,
                &logged,
            ) {
                Ok(logged) => state
                    .first_difference(&logged)
                    .map(|d| {
                        d.replace(" here,", " replayed,")
                            .replace(" there", " logged")
                    })
                    .unwrap_or_default(),
                Err(e) => format!("the logged state {e}"),
            };
            return Err(format!(
                "the {name} optimiser state does not follow from the previous state and the logged aggregate: replayed sha256 {}…, logged {}…; {detail}. The coordinator logged another state than its step gives: do not trust the models after this round",
                short(&trail::sha256_hex(&bytes)),
                short(&record.state_sha256)
            ));
        }
        Ok(())
    }

    /// A sum round's conclusion entry: it must be what the replayed sum
    /// concludes, word for word of its JSON body.
    fn concluded(
        &mut self,
        entry_kind: &str,
        round: u64,
        attempt: u32,
        logged: &serde_json::Value,
    ) -> Result<(), String> {
        let global_sha = self.global_sha.clone();
        let (sums, model) = (self.sums.clone(), self.model.clone());
        let a = self.attempt(round, attempt)?;
        let (Some(query), Some(words)) = (&a.query, &a.words) else {
            return Err(format!(
                "{entry_kind} is logged for a round that has no aggregated sum query"
            ));
        };
        if a.conclusion.is_some() {
            return Err(format!(
                "a second conclusion ({entry_kind}) for this attempt"
            ));
        }
        let at = SumRound {
            round,
            attempt,
            model: &model,
            model_sha256: &global_sha,
        };
        let replayed = round_kind::conclude(query, words, &sums, at)
            .map_err(|e| format!("the replayed sum concludes nothing: {e}"))?;
        let (kind, body) = replayed.entry();
        if kind != entry_kind {
            return Err(format!(
                "a {} round concludes with {kind}, the log says {entry_kind}",
                query.kind().name()
            ));
        }
        if body != *logged {
            let field = body
                .as_object()
                .and_then(|o| o.iter().find(|(k, v)| logged.get(k.as_str()) != Some(*v)))
                .map(|(k, _)| k.clone())
                .unwrap_or_default();
            return Err(format!(
                "{entry_kind} does not follow from the replayed sum: field {field:?} is {} replayed, {} logged",
                body.get(&field).map(|v| v.to_string()).unwrap_or_default(),
                logged
                    .get(&field)
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            ));
        }
        a.conclusion = Some(replayed);
        Ok(())
    }

    fn metrics(&mut self, b: &RoundMetrics) -> Result<(), String> {
        match self.models.get(&b.round) {
            Some(sha) if *sha == b.model_sha256 => Ok(()),
            Some(sha) => Err(format!(
                "metrics of model {}, but round {}'s model is {}",
                short(&b.model_sha256),
                b.round,
                short(sha)
            )),
            None => Err(format!(
                "metrics of round {}, which has no model yet",
                b.round
            )),
        }
    }

    fn aborted(&mut self, b: &RoundAborted) -> Result<(), String> {
        match &self.open {
            Some(a) if a.round == b.round && a.attempt == b.attempt => {
                self.open = None;
            }
            // An attempt may fail before its round.opened (too few members).
            _ => self.next_attempt(b.round, b.attempt)?,
        }
        self.aborted += 1;
        Ok(())
    }
}

/// The server optimiser a training round's `round.model` says it stepped
/// with: a known name, its record present exactly when the optimiser keeps
/// a state, and hyperparameters a configuration would accept.
fn logged_optimizer(b: &RoundModel) -> Result<ServerOptimizer, String> {
    let name = b.strategy.as_str();
    if !optimizer::NAMES.contains(&name) {
        return Err(format!(
            "strategy {name:?} cannot be replayed: this build knows {}; use the fedsoc release that wrote the log",
            optimizer::NAMES.join(", ")
        ));
    }
    let Some(record) = &b.optimizer else {
        if name == "fedavg" {
            return Ok(ServerOptimizer::FedAvg);
        }
        return Err(format!(
            "strategy {name} keeps a state, but the entry records no optimiser (hyperparameters and state): its step cannot be replayed"
        ));
    };
    let logged = record.hyperparameters;
    if logged.name() != name || !logged.is_stateful() {
        return Err(format!(
            "the entry's strategy is {name} but its optimiser record is {}",
            logged.describe()
        ));
    }
    logged
        .check()
        .map_err(|(field, problem)| format!("the logged {name} {field}: {problem}"))?;
    Ok(logged)
}

/// The federation's model as `federation.created` describes it.
fn model_config(fed: &FederationCreated) -> Result<fedsoc_models::ModelConfig, String> {
    use fedsoc_models::{AutoencoderConfig, ClassifierConfig, ModelConfig};
    let (input_dim, hidden) = (fed.model_input_dim, fed.model_hidden.clone());
    match fed.model_kind.as_str() {
        "autoencoder" => Ok(ModelConfig::Autoencoder(AutoencoderConfig {
            input_dim,
            hidden,
        })),
        "classifier" => Ok(ModelConfig::Classifier(ClassifierConfig {
            input_dim,
            hidden,
        })),
        other => Err(format!(
            "model kind {other:?} is unknown (autoencoder, classifier)"
        )),
    }
}

/// The replayed server and encoding of a secure round.
fn secure_plan(
    s: &SecAggRecord,
    verifying_keys: BTreeMap<ParticipantId, VerifyingKey>,
    num_params: usize,
    query: Option<&Query>,
) -> Result<Plan, String> {
    let round_id: [u8; 32] = hex::decode(&s.round_id)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("round id {:?} is not 32 bytes of hex", s.round_id))?;
    let ring = match s.ring_bits {
        32 => Ring::U32,
        64 => Ring::U64,
        other => return Err(format!("ring of {other} bits: SecAgg+ uses 32 or 64")),
    };
    let encoding = WeightedEncoding {
        quantizer: Quantizer {
            clip: s.clip,
            bits: s.quant_bits,
            ring,
        },
        max_samples: s.max_samples,
    };
    if s.protocol != crate::trail::SECAGG_PROTOCOL {
        return Err(format!(
            "this round was aggregated with secure-aggregation protocol {} ({}); this fedsoc \
             replays protocol {} only: verify the log with the fedsoc release that wrote it",
            s.protocol,
            match s.protocol {
                1 => "signatures that do not cover the round parameters",
                2 => "a neighbour graph seeded by the round id",
                _ => "unknown to this release",
            },
            crate::trail::SECAGG_PROTOCOL
        ));
    }
    let n = verifying_keys.len();
    let (vector_len, context) = match query {
        Some(q) => {
            if ring != Ring::U64 {
                return Err("a sum round must add in the 64-bit ring".into());
            }
            (q.vector_len(), q.context())
        }
        None => (WeightedEncoding::vector_len(num_params), encoding.context()),
    };
    let config = RoundConfig {
        round_id,
        participants: (0..n as u32).map(ParticipantId).collect(),
        verifying_keys,
        neighbors: s.neighbors,
        threshold: s.threshold,
        colluders: s.colluders,
        ring,
        vector_len,
        context,
    };
    let capacity = match query {
        Some(_) => Ok(()),
        None => encoding.check_capacity(n),
    };
    let server = capacity
        .and_then(|()| Server::new(config))
        .map_err(|e| format!("the logged SecAgg+ parameters do not make a valid round: {e}"))?;
    Ok(Plan::Secure {
        encoding: query.is_none().then_some(encoding),
        machine: Box::new(Machine::Keys(server)),
    })
}
