//! Where the pages' facts come from, as views made for showing.
//!
//! Two sources, either or both: the coordinator's `Admin` status, read
//! with the user's own certificate through
//! [`fedsoc_coordinator::control::Control`], and an audit log on disk,
//! read with the auditors' functions ([`audit_view`], [`replay`]). The
//! views copy only what a page shows: never a model update, a share, a
//! key, or a participant's sample count (the `Admin` status and the log
//! carry sample totals; the views leave them out).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use fedsoc_audit::{AuditError, AuditLog};
use fedsoc_coordinator::audit_view::{self, AttemptView, Timeline};
use fedsoc_coordinator::control::{Control, ControlConfig};
use fedsoc_coordinator::replay::{self, ReplayError};
use fedsoc_coordinator::trail::StageClosed;
use fedsoc_proto::v1::StatusReply;
use serde::Serialize;

use crate::frames;

/// The coordinator's admin service, reached on demand; a failed call
/// drops the connection so the next one dials again.
pub struct Live {
    config: ControlConfig,
    conn: tokio::sync::Mutex<Option<Control>>,
}

impl Live {
    pub fn new(config: ControlConfig) -> Self {
        Live {
            config,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// The federation now, or why it cannot be read.
    pub async fn federation(&self) -> Result<FederationView, String> {
        let mut conn = self.conn.lock().await;
        let mut control = match conn.take() {
            Some(c) => c,
            None => Control::connect(&self.config)
                .await
                .map_err(|e| e.to_string())?,
        };
        let status = control.status().await.map_err(|e| e.to_string())?;
        *conn = Some(control);
        Ok(FederationView::from_status(&status, now_ms()))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The federation as `/` and `/api/status` show it.
#[derive(Clone, Debug, Serialize)]
pub struct FederationView {
    pub federation: String,
    pub completed_rounds: u64,
    pub queued_rounds: u32,
    pub min_participants: u32,
    pub roster: Vec<MemberView>,
    pub running: Option<RunningView>,
    /// Why the coordinator halted, if it did.
    pub halted: Option<String>,
    pub recent: Vec<RecentRound>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MemberView {
    pub id: String,
    pub online: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunningView {
    pub round: u64,
    pub attempt: u32,
    pub kind: String,
    pub stage: String,
    /// Seconds in the current stage and in the round, when asked.
    pub stage_age_s: f64,
    pub round_age_s: f64,
    pub members: Vec<String>,
    pub dropped: Vec<String>,
}

/// A completed round as the coordinator's status lists it.
#[derive(Clone, Debug, Serialize)]
pub struct RecentRound {
    pub round: u64,
    pub kind: String,
    pub members: usize,
    pub dropouts: Vec<String>,
    pub mean_loss: f32,
    pub model_sha256: String,
}

fn kind_name(kind: &str) -> String {
    if kind.is_empty() { "train" } else { kind }.to_string()
}

impl FederationView {
    pub fn from_status(s: &StatusReply, now_ms: u64) -> Self {
        let age = |since: u64| now_ms.saturating_sub(since) as f64 / 1000.0;
        FederationView {
            federation: s.federation.clone(),
            completed_rounds: s.completed_rounds,
            queued_rounds: s.queued_rounds,
            min_participants: s.min_participants,
            roster: s
                .roster
                .iter()
                .map(|id| MemberView {
                    id: id.clone(),
                    online: s.connected.contains(id),
                })
                .collect(),
            running: s.running.as_ref().map(|r| RunningView {
                round: r.round,
                attempt: r.attempt,
                kind: kind_name(&r.kind),
                stage: r.stage.clone(),
                stage_age_s: age(r.stage_started_unix_ms),
                round_age_s: age(r.started_unix_ms),
                members: r.members.clone(),
                dropped: r.dropped.clone(),
            }),
            halted: (!s.halted.is_empty()).then(|| s.halted.clone()),
            recent: s
                .recent
                .iter()
                .map(|r| RecentRound {
                    round: r.round,
                    kind: kind_name(&r.kind),
                    members: r.included.len() + r.dropped.len(),
                    dropouts: r.dropped.clone(),
                    mean_loss: r.mean_loss,
                    model_sha256: r.model_sha256.clone(),
                })
                .collect(),
        }
    }
}

/// One row of `/rounds`: a round attempt from the log.
#[derive(Clone, Debug, Serialize)]
pub struct RoundRow {
    pub round: u64,
    pub attempt: u32,
    pub kind: String,
    pub mode: String,
    pub outcome: String,
    pub members: Vec<String>,
    /// "participant (stage): reason".
    pub dropouts: Vec<String>,
    pub mean_loss: Option<f32>,
    /// Numeric validation metrics reported for the round's model.
    pub metrics: Vec<(String, f64)>,
    pub model_sha256: Option<String>,
}

impl RoundRow {
    fn of(a: &AttemptView) -> Self {
        RoundRow {
            round: a.round,
            attempt: a.attempt,
            kind: a.kind.clone(),
            mode: a.mode.clone(),
            outcome: a.outcome.clone(),
            members: a.members.clone(),
            dropouts: dropouts(a),
            mean_loss: a.mean_loss,
            metrics: numeric_metrics(a.metrics.as_ref()),
            model_sha256: a.model_sha256.clone(),
        }
    }

    /// A round whose model the federation kept.
    pub fn completed(&self) -> bool {
        self.outcome == "completed"
    }
}

fn dropouts(a: &AttemptView) -> Vec<String> {
    let mut out: Vec<String> = a
        .stages
        .iter()
        .flat_map(|s| {
            s.dropped
                .iter()
                .map(move |d| format!("{} ({}): {}", d.participant, s.name, d.reason))
        })
        .collect();
    if let Some(abort) = &a.abort {
        out.extend(
            abort
                .dropped
                .iter()
                .map(|d| format!("{} (at the abort): {}", d.participant, d.reason)),
        );
    }
    out
}

/// The numeric fields of a metrics object, by name (nested values and
/// anything not a number are left out).
pub fn numeric_metrics(metrics: Option<&serde_json::Value>) -> Vec<(String, f64)> {
    match metrics {
        Some(serde_json::Value::Object(map)) => map
            .iter()
            .filter(|(k, _)| !k.to_ascii_lowercase().contains("sample"))
            .filter_map(|(k, v)| v.as_f64().map(|v| (k.clone(), v)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The log's rounds for `/rounds`.
#[derive(Clone, Debug, Serialize)]
pub struct RoundsView {
    pub federation: String,
    pub rows: Vec<RoundRow>,
    pub initial_metrics: Vec<(String, f64)>,
}

/// An audit log on disk, read afresh for every page (an exported log does
/// not change; a live storage folder may).
pub struct LogSource {
    pub dir: PathBuf,
    /// The federation CA from control.toml, to pin verification.
    pub ca_pem: Option<String>,
}

fn text(e: ReplayError) -> String {
    e.to_string()
}

impl LogSource {
    pub fn timeline(&self) -> Result<Timeline, String> {
        audit_view::timeline(&self.dir).map_err(text)
    }

    pub fn rounds(&self) -> Result<RoundsView, String> {
        let t = self.timeline()?;
        Ok(RoundsView {
            federation: t.federation.clone(),
            rows: t.attempts.iter().map(RoundRow::of).collect(),
            initial_metrics: numeric_metrics(t.initial_metrics.as_ref()),
        })
    }

    /// Round `round` in detail, `None` if the log never mentions it.
    pub fn round(&self, round: u64) -> Result<Option<RoundDetail>, String> {
        let dir = replay::resolve_log_dir(&self.dir).map_err(text)?;
        let t = audit_view::timeline(&dir).map_err(text)?;
        let cosignatures = t.cosignatures.clone();
        let t = t.only_round(round);
        if t.attempts.is_empty() {
            return Ok(None);
        }
        let log = AuditLog::open_read_only(&dir).map_err(|e| e.to_string())?;
        let mut entries = Vec::new();
        let mut times = std::collections::BTreeMap::new();
        let mut stage_bytes = std::collections::BTreeMap::new();
        for (index, entry) in log.entries().enumerate() {
            let entry = entry.map_err(|e| e.to_string())?;
            let index = index as u64;
            let body: Option<serde_json::Value> = entry.body_json().ok();
            let of_round = body
                .as_ref()
                .and_then(|b| b.get("round"))
                .and_then(serde_json::Value::as_u64)
                == Some(round);
            if !of_round {
                continue;
            }
            times.insert(index, entry.timestamp_ms);
            if let Ok(stage) = entry.body_json::<StageClosed>() {
                let bytes = std::fs::metadata(log.blobs().path(&stage.messages))
                    .map(|m| m.len())
                    .ok();
                stage_bytes.insert(index, bytes);
            }
            entries.push((index, entry.kind));
        }
        let last = entries.last().map_or(0, |(i, _)| *i);
        // The first checkpoint signed after the round's last entry.
        let checkpoint = log
            .checkpoints()
            .iter()
            .find(|c| c.checkpoint.tree_size > last)
            .cloned();
        let mut signed_by = None;
        let checks = entries
            .into_iter()
            .map(|(index, kind)| {
                let proof = match &checkpoint {
                    None => ProofCheck::Unsigned,
                    Some(c) => {
                        match audit_view::prove_entry(&dir, index, Some(c.checkpoint.tree_size)) {
                            Ok(p) => {
                                signed_by = p.signed_by.clone().or(signed_by.take());
                                ProofCheck::Checked {
                                    tree_size: p.tree_size,
                                    hashes: p.proof.len(),
                                }
                            }
                            Err(e) => ProofCheck::Failed(e.to_string()),
                        }
                    }
                };
                EntryCheck {
                    index,
                    kind,
                    timestamp_ms: times.get(&index).copied().unwrap_or(0),
                    proof,
                }
            })
            .collect();
        let checkpoint = checkpoint.map(|c| CheckpointView {
            tree_size: c.checkpoint.tree_size,
            timestamp_ms: c.checkpoint.timestamp_ms,
            root: hex::encode(c.checkpoint.root),
            note: c.to_note().unwrap_or_default(),
            signature_checked: signed_by.is_some(),
            signed_by: signed_by.clone(),
            cosignatures: cosignatures
                .iter()
                .filter(|s| {
                    s.tree_size == c.checkpoint.tree_size
                        && s.checkpoint_time_ms == c.checkpoint.timestamp_ms
                })
                .map(|s| (s.entry, s.witness.clone(), s.line.clone()))
                .collect(),
        });
        let attempts = t
            .attempts
            .iter()
            .map(|a| AttemptDetail::of(a, &times, &stage_bytes))
            .collect();
        Ok(Some(RoundDetail {
            round,
            federation: t.federation,
            attempts,
            entries: checks,
            checkpoint,
        }))
    }

    /// `fedsoc audit verify` on the log, with every entry listed.
    pub fn verify(&self) -> VerifyView {
        let dir = match replay::resolve_log_dir(&self.dir) {
            Ok(d) => d,
            Err(e) => return VerifyView::unreadable(e.to_string()),
        };
        let result = replay::verify_log(&dir, self.ca_pem.as_deref());
        let raw = frames::scan_entries(&dir).unwrap_or_default();
        let fault = result.as_ref().err().map(locate);
        let entries = raw
            .iter()
            .map(|r| VerifyRow {
                index: r.index,
                kind: r.kind.clone().unwrap_or_else(|| "(undecodable)".into()),
                hash_ok: r.hash_ok,
                state: match &fault {
                    None => RowState::Verified,
                    Some(Fault::Entry(i)) if r.index < *i => RowState::Passed,
                    Some(Fault::Entry(i)) if r.index == *i => RowState::Failed,
                    Some(Fault::Entry(_)) => RowState::NotReached,
                    Some(_) => RowState::Unknown,
                },
            })
            .collect();
        VerifyView {
            ok: result.is_ok(),
            report: result
                .as_ref()
                .map(audit_view::render_report)
                .unwrap_or_default(),
            warning: result.as_ref().ok().and_then(audit_view::tofu_warning),
            failure: result.as_ref().err().map(|e| e.to_string()),
            failed_entry: match fault {
                Some(Fault::Entry(i)) => Some(i),
                _ => None,
            },
            failed_checkpoint: match fault {
                Some(Fault::Checkpoint(i)) => Some(i),
                _ => None,
            },
            entries,
        }
    }
}

/// Where a verification failed.
enum Fault {
    Entry(u64),
    Checkpoint(u64),
    Elsewhere,
}

fn locate(e: &ReplayError) -> Fault {
    let in_checkpoints = |path: &Path| {
        path.file_name()
            .is_some_and(|n| n == fedsoc_audit::log::CHECKPOINTS_FILE)
    };
    match e {
        ReplayError::Entry { index, .. } => Fault::Entry(*index),
        ReplayError::Audit(a) => match a {
            AuditError::TornTail { path, index, .. }
            | AuditError::CorruptRecord { path, index, .. } => {
                if in_checkpoints(path) {
                    Fault::Checkpoint(*index)
                } else {
                    Fault::Entry(*index)
                }
            }
            AuditError::EntryUndecodable { index, .. }
            | AuditError::SeqGap { index, .. }
            | AuditError::TimestampBackwards { index, .. }
            | AuditError::EntryBlob { index, .. }
            | AuditError::BlobRefs { index, .. } => Fault::Entry(*index),
            AuditError::CheckpointUnreadable { index, .. }
            | AuditError::CheckpointInvalid { index, .. }
            | AuditError::CheckpointBeyondLog { index, .. }
            | AuditError::CheckpointInconsistent { index, .. }
            | AuditError::CheckpointsOutOfOrder { index, .. } => Fault::Checkpoint(*index),
            _ => Fault::Elsewhere,
        },
        _ => Fault::Elsewhere,
    }
}

/// One round in detail for `/rounds/N`.
#[derive(Clone, Debug, Serialize)]
pub struct RoundDetail {
    pub round: u64,
    pub federation: String,
    pub attempts: Vec<AttemptDetail>,
    /// The round's entries, each with its inclusion proof checked here.
    pub entries: Vec<EntryCheck>,
    /// The checkpoint that first covers the round.
    pub checkpoint: Option<CheckpointView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AttemptDetail {
    pub attempt: u32,
    pub kind: String,
    pub mode: String,
    pub outcome: String,
    pub members: Vec<String>,
    pub stages: Vec<StageRow>,
    pub dropouts: Vec<String>,
    pub abort: Option<String>,
    pub global_in_sha256: Option<String>,
    pub model_sha256: Option<String>,
    pub mean_loss: Option<f32>,
    pub metrics: Vec<(String, f64)>,
    pub conclusion: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StageRow {
    pub stage: u32,
    pub name: String,
    pub entry: u64,
    /// From the previous entry of the attempt (its opening or the stage
    /// before) to this stage's close, by the log's timestamps.
    pub seconds: Option<f64>,
    /// Bytes of the messages the coordinator accepted in the stage.
    pub bytes: Option<u64>,
    pub messages: usize,
    pub dropped: usize,
}

impl AttemptDetail {
    fn of(
        a: &AttemptView,
        times: &std::collections::BTreeMap<u64, u64>,
        bytes: &std::collections::BTreeMap<u64, Option<u64>>,
    ) -> Self {
        let mut previous = a.opened_entry.and_then(|e| times.get(&e).copied());
        let stages = a
            .stages
            .iter()
            .map(|s| {
                let at = times.get(&s.entry).copied();
                let seconds = match (previous, at) {
                    (Some(p), Some(t)) => Some(t.saturating_sub(p) as f64 / 1000.0),
                    _ => None,
                };
                previous = at.or(previous);
                StageRow {
                    stage: s.stage,
                    name: s.name.clone(),
                    entry: s.entry,
                    seconds,
                    bytes: bytes.get(&s.entry).copied().flatten(),
                    messages: s.received.len(),
                    dropped: s.dropped.len(),
                }
            })
            .collect();
        AttemptDetail {
            attempt: a.attempt,
            kind: a.kind.clone(),
            mode: a.mode.clone(),
            outcome: a.outcome.clone(),
            members: a.members.clone(),
            stages,
            dropouts: dropouts(a),
            abort: a
                .abort
                .as_ref()
                .map(|x| format!("at {}: {}", x.stage, x.reason)),
            global_in_sha256: a.global_in_sha256.clone(),
            model_sha256: a.model_sha256.clone(),
            mean_loss: a.mean_loss,
            metrics: numeric_metrics(a.metrics.as_ref()),
            conclusion: a.conclusion.as_ref().map(|(_, line)| line.clone()),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct EntryCheck {
    pub index: u64,
    pub kind: String,
    pub timestamp_ms: u64,
    pub proof: ProofCheck,
}

/// An entry's inclusion proof, checked by the console's server against
/// the signed checkpoint (whose signature is checked too).
#[derive(Clone, Debug, Serialize)]
pub enum ProofCheck {
    Checked {
        tree_size: u64,
        hashes: usize,
    },
    Failed(String),
    /// No signed checkpoint covers the entry yet.
    Unsigned,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckpointView {
    pub tree_size: u64,
    pub timestamp_ms: u64,
    pub root: String,
    /// The signed note (checkpoint text and signature line).
    pub note: String,
    pub signature_checked: bool,
    pub signed_by: Option<String>,
    /// (entry, witness, signature line) of each logged cosignature.
    pub cosignatures: Vec<(u64, String, String)>,
}

/// `/verify`.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyView {
    pub ok: bool,
    pub report: String,
    pub warning: Option<String>,
    pub failure: Option<String>,
    pub failed_entry: Option<u64>,
    pub failed_checkpoint: Option<u64>,
    pub entries: Vec<VerifyRow>,
}

impl VerifyView {
    fn unreadable(failure: String) -> Self {
        VerifyView {
            ok: false,
            report: String::new(),
            warning: None,
            failure: Some(failure),
            failed_entry: None,
            failed_checkpoint: None,
            entries: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct VerifyRow {
    pub index: u64,
    pub kind: String,
    /// The stored leaf hash matches the entry's bytes.
    pub hash_ok: bool,
    pub state: RowState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum RowState {
    /// The whole log verified.
    Verified,
    /// Before the first failure.
    Passed,
    /// The first failure.
    Failed,
    /// After the first failure: verification stopped there.
    NotReached,
    /// The failure is not at an entry (a checkpoint, the CA, a request).
    Unknown,
}
