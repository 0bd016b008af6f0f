//! What the `fedsoc audit` commands show: the round timeline of a log, the
//! inclusion proof of one entry, and the human rendering of these and of a
//! verification. Reading only: nothing here judges a log beyond what
//! opening it checks; [`crate::replay::verify_log`] does that.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use fedsoc_audit::{AuditLog, KeyId, RepairedFile, verify_inclusion};
use fedsoc_proto::secagg_stage as stage;
use serde::Serialize;

use crate::replay::{Anchor, ExportReport, ReplayError, ReplayReport, resolve_log_dir};
use crate::round::Dropout;
use crate::trail::{
    CoordinatorStarted, FederationCreated, MessageRecord, PLAINTEXT_UPDATES_STAGE, RoundAborted,
    RoundAggregated, RoundMetrics, RoundModel, RoundOpened, SecAggRecord, StageClosed, kind,
};

/// A log's rounds as they happened, attempt by attempt.
#[derive(Clone, Debug, Serialize)]
pub struct Timeline {
    pub dir: PathBuf,
    pub origin: String,
    pub federation: String,
    pub participants: Vec<String>,
    pub entries: u64,
    pub checkpoints: usize,
    pub root: String,
    /// Entries where the coordinator (re)started, and the round it had.
    pub restarts: Vec<RestartView>,
    pub attempts: Vec<AttemptView>,
    /// Metrics reported for the initial model.
    pub initial_metrics: Option<serde_json::Value>,
    /// Participants' cosignatures over checkpoints, as logged (not checked
    /// here: `fedsoc audit verify` checks each and counts the cosigners).
    pub cosignatures: Vec<CosignatureView>,
}

/// One logged cosignature.
#[derive(Clone, Debug, Serialize)]
pub struct CosignatureView {
    pub entry: u64,
    pub tree_size: u64,
    pub checkpoint_time_ms: u64,
    pub witness: String,
    /// Seconds since the Unix epoch when the participant cosigned.
    pub timestamp: u64,
    /// The C2SP note signature line (`— <name> <base64>`).
    pub line: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct RestartView {
    pub entry: u64,
    pub completed_round: u64,
}

/// One round attempt.
#[derive(Clone, Debug, Serialize)]
pub struct AttemptView {
    pub round: u64,
    pub attempt: u32,
    /// "secure", "plaintext", or "-" for an attempt aborted before opening.
    pub mode: String,
    /// "completed", "aborted", "interrupted" (coordinator restart) or "open".
    pub outcome: String,
    pub opened_entry: Option<u64>,
    pub members: Vec<String>,
    pub secagg: Option<SecAggRecord>,
    pub global_in_sha256: Option<String>,
    pub stages: Vec<StageView>,
    pub survivors: Vec<String>,
    pub total_samples: Option<u64>,
    pub mean_loss: Option<f32>,
    pub model_sha256: Option<String>,
    pub model_entry: Option<u64>,
    pub abort: Option<AbortView>,
    pub metrics: Option<serde_json::Value>,
    /// "train", "moments", "spread" or "calibrate".
    pub kind: String,
    /// A sum round's conclusion, in one line, and its entry.
    pub conclusion: Option<(u64, String)>,
    /// A stateful server optimiser's step: its hyperparameters, steps so
    /// far and the state's SHA-256 after the round.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<OptimizerView>,
}

/// A FedAvgM or FedAdam step as `round.model` records it.
#[derive(Clone, Debug, Serialize)]
pub struct OptimizerView {
    pub hyperparameters: crate::optimizer::ServerOptimizer,
    pub steps: u64,
    pub state_sha256: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct StageView {
    pub entry: u64,
    pub stage: u32,
    pub name: String,
    pub received: Vec<MessageRecord>,
    pub dropped: Vec<Dropout>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AbortView {
    pub entry: u64,
    pub stage: String,
    pub reason: String,
    pub dropped: Vec<Dropout>,
}

impl AttemptView {
    fn new(round: u64, attempt: u32) -> Self {
        AttemptView {
            round,
            attempt,
            mode: "-".into(),
            outcome: "open".into(),
            opened_entry: None,
            members: Vec::new(),
            secagg: None,
            global_in_sha256: None,
            stages: Vec::new(),
            survivors: Vec::new(),
            total_samples: None,
            mean_loss: None,
            model_sha256: None,
            model_entry: None,
            abort: None,
            metrics: None,
            kind: "train".into(),
            conclusion: None,
            optimizer: None,
        }
    }
}

/// Reads the timeline of the log in `dir` (opening it checks its files).
pub fn timeline(dir: &Path) -> Result<Timeline, ReplayError> {
    let dir = resolve_log_dir(dir)?;
    let log = AuditLog::open_read_only(&dir)?;
    let mut t = Timeline {
        origin: log.origin().to_owned(),
        federation: String::new(),
        participants: Vec::new(),
        entries: log.len(),
        checkpoints: log.checkpoints().len(),
        root: hex::encode(log.root()),
        restarts: Vec::new(),
        attempts: Vec::new(),
        initial_metrics: None,
        cosignatures: Vec::new(),
        dir,
    };
    for (index, entry) in log.entries().enumerate() {
        let entry = entry?;
        let index = index as u64;
        let fail = |e: fedsoc_audit::EntryError| ReplayError::Entry {
            index,
            kind: entry.kind.clone(),
            round: None,
            reason: e.to_string(),
        };
        match entry.kind.as_str() {
            kind::FEDERATION_CREATED => {
                let b: FederationCreated = entry.body_json().map_err(fail)?;
                t.federation = b.federation;
                t.participants = b.participants;
            }
            kind::COORDINATOR_STARTED => {
                let b: CoordinatorStarted = entry.body_json().map_err(fail)?;
                for a in t.attempts.iter_mut().filter(|a| a.outcome == "open") {
                    a.outcome = "interrupted".into();
                }
                t.restarts.push(RestartView {
                    entry: index,
                    completed_round: b.completed_round,
                });
            }
            kind::ROUND_OPENED => {
                let b: RoundOpened = entry.body_json().map_err(fail)?;
                let a = t.attempt(b.round, b.attempt);
                a.mode = if b.secagg.is_some() {
                    "secure"
                } else {
                    "plaintext"
                }
                .into();
                a.opened_entry = Some(index);
                a.members = b.members.into_iter().map(|m| m.id).collect();
                a.secagg = b.secagg;
                a.global_in_sha256 = Some(b.global_model_sha256);
                a.kind = b.kind.name().into();
            }
            kind::ROUND_STAGE => {
                let b: StageClosed = entry.body_json().map_err(fail)?;
                t.attempt(b.round, b.attempt).stages.push(StageView {
                    entry: index,
                    stage: b.stage,
                    name: b.name,
                    received: b.received,
                    dropped: b.dropped,
                });
            }
            kind::ROUND_AGGREGATED => {
                let b: RoundAggregated = entry.body_json().map_err(fail)?;
                let a = t.attempt(b.round, b.attempt);
                a.survivors = b.survivors;
                a.total_samples = Some(b.total_samples);
            }
            kind::ROUND_MODEL => {
                let b: RoundModel = entry.body_json().map_err(fail)?;
                let a = t.attempt(b.round, b.attempt);
                a.outcome = "completed".into();
                a.mean_loss = Some(b.mean_loss);
                a.model_sha256 = Some(b.model_sha256);
                a.optimizer = b.optimizer.map(|o| OptimizerView {
                    hyperparameters: o.hyperparameters,
                    steps: o.steps,
                    state_sha256: o.state_sha256,
                });
                a.model_entry = Some(index);
            }
            kind::ROUND_METRICS => {
                let b: RoundMetrics = entry.body_json().map_err(fail)?;
                if b.round == 0 {
                    t.initial_metrics = Some(b.metrics);
                } else if let Some(a) = t
                    .attempts
                    .iter_mut()
                    .rev()
                    .find(|a| a.round == b.round && a.outcome == "completed")
                {
                    a.metrics = Some(b.metrics);
                }
            }
            kind::ROUND_ABORTED => {
                let b: RoundAborted = entry.body_json().map_err(fail)?;
                let a = t.attempt(b.round, b.attempt);
                a.outcome = "aborted".into();
                a.abort = Some(AbortView {
                    entry: index,
                    stage: b.stage,
                    reason: b.reason,
                    dropped: b.dropped,
                });
            }
            kind::CHECKPOINT_COSIGNED => {
                let b: fedsoc_audit::CosignatureRecord = entry.body_json().map_err(fail)?;
                t.cosignatures.push(CosignatureView {
                    entry: index,
                    tree_size: b.checkpoint.tree_size,
                    checkpoint_time_ms: b.checkpoint.timestamp_ms,
                    witness: b.cosignature.name.clone(),
                    timestamp: b.cosignature.timestamp,
                    line: b.cosignature.to_line().trim_end().to_owned(),
                });
            }
            kind::STATISTICS_MOMENTS => {
                let b: crate::trail::MomentsSummed = entry.body_json().map_err(fail)?;
                let line = format!(
                    "{} rows; outside the vocabulary: {}; rows per family: {}",
                    b.moments.rows,
                    shares(&b.moments.other_share),
                    counts(&b.moments.label_counts)
                );
                t.attempt(b.round, b.attempt).conclusion = Some((index, line));
            }
            kind::ENCODER_FITTED => {
                let b: crate::trail::EncoderFitted = entry.body_json().map_err(fail)?;
                let line = format!(
                    "encoder sha256 {} fitted on {} rows (in force from here)",
                    b.encoder_sha256, b.rows
                );
                t.attempt(b.round, b.attempt).conclusion = Some((index, line));
            }
            kind::THRESHOLD_CALIBRATED => {
                let b: crate::trail::ThresholdCalibrated = entry.body_json().map_err(fail)?;
                let line = format!(
                    "threshold {:.6} on {} at {} false alarms over {} benign rows; the pooled \
                     quantile lies in [{:.6}, {:.6}], false alarms in [{:.4}, {:.4}]",
                    b.threshold,
                    b.score,
                    b.false_alarm_rate,
                    b.benign_rows,
                    b.score_interval[0],
                    b.score_interval[1],
                    b.false_alarm_interval[0],
                    b.false_alarm_interval[1]
                );
                t.attempt(b.round, b.attempt).conclusion = Some((index, line));
            }
            // Shown by count only; `verify` refuses kinds it cannot read.
            _ => {}
        }
    }
    Ok(t)
}

impl Timeline {
    /// The view of (round, attempt), created on first mention.
    fn attempt(&mut self, round: u64, attempt: u32) -> &mut AttemptView {
        let position = self
            .attempts
            .iter()
            .rposition(|a| a.round == round && a.attempt == attempt)
            .unwrap_or_else(|| {
                self.attempts.push(AttemptView::new(round, attempt));
                self.attempts.len() - 1
            });
        &mut self.attempts[position]
    }

    /// The same timeline with only the attempts of `round`.
    pub fn only_round(mut self, round: u64) -> Self {
        self.attempts.retain(|a| a.round == round);
        self
    }
}

/// One entry with its inclusion proof against a signed tree head.
#[derive(Clone, Debug, Serialize)]
pub struct EntryProof {
    pub index: u64,
    pub kind: String,
    pub timestamp_ms: u64,
    /// The body as JSON (or as text if it is not JSON).
    pub body: serde_json::Value,
    /// The body exactly as logged (the bytes the leaf hash covers).
    pub body_text: String,
    pub leaf_hash: String,
    pub tree_size: u64,
    pub root: String,
    /// Sibling hashes from the leaf up (RFC 9162 §2.1.3).
    pub proof: Vec<String>,
    /// The signed checkpoint of `tree_size`, when the log holds one.
    pub checkpoint_note: Option<String>,
    /// The key that signed it (the coordinator's, from its certificate).
    pub signed_by: Option<String>,
}

/// Proves that entry `index` is in the tree of `size` entries (default:
/// the newest checkpoint's), checking the proof and the checkpoint's
/// signature before returning.
pub fn prove_entry(dir: &Path, index: u64, size: Option<u64>) -> Result<EntryProof, ReplayError> {
    let dir = resolve_log_dir(dir)?;
    let log = AuditLog::open_read_only(&dir)?;
    let tree_size = match (size, log.latest_checkpoint()) {
        (Some(size), _) => size,
        (None, Some(c)) => c.checkpoint.tree_size,
        (None, None) => {
            return Err(ReplayError::Request(
                "the log holds no signed checkpoint yet: pass --size to prove against an unsigned tree head".into(),
            ));
        }
    };
    if tree_size > log.len() || index >= tree_size {
        return Err(ReplayError::Request(format!(
            "cannot prove entry {index} in a tree of {tree_size} entries: the log holds {} entries; pick an entry below the size and a size up to the log's",
            log.len()
        )));
    }
    let entry = log.entry(index)?;
    let fail = |reason: String| ReplayError::Entry {
        index,
        kind: entry.kind.clone(),
        round: None,
        reason,
    };
    let leaf = log
        .tree()
        .leaf(index)
        .ok_or_else(|| fail("it has no leaf in the tree".into()))?;
    let proof = log.inclusion_proof(index, tree_size)?;
    let checkpoint = log
        .checkpoints()
        .iter()
        .rev()
        .find(|c| c.checkpoint.tree_size == tree_size);
    let root = match checkpoint {
        Some(c) => c.checkpoint.root,
        None => log.root_at(tree_size)?,
    };
    verify_inclusion(&leaf, index, tree_size, &proof, &root)
        .map_err(|e| fail(format!("the inclusion proof does not verify: {e}")))?;
    let (checkpoint_note, signed_by) = match checkpoint {
        Some(c) => {
            let anchor = Anchor::read(&log.entry(0)?, log.blobs())?;
            c.verify(&anchor.coordinator_key)
                .map_err(|e| fail(format!("the checkpoint of size {tree_size}: {e}")))?;
            let note = c
                .to_note()
                .map_err(|e| fail(format!("the checkpoint of size {tree_size}: {e}")))?;
            (
                Some(note),
                Some(KeyId::of(&anchor.coordinator_key).to_string()),
            )
        }
        None => (None, None),
    };
    let body = serde_json::from_slice(&entry.body).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&entry.body).into_owned())
    });
    Ok(EntryProof {
        index,
        kind: entry.kind,
        timestamp_ms: entry.timestamp_ms,
        body,
        body_text: String::from_utf8_lossy(&entry.body).into_owned(),
        leaf_hash: hex::encode(leaf),
        tree_size,
        root: hex::encode(root),
        proof: proof.iter().map(hex::encode).collect(),
        checkpoint_note,
        signed_by,
    })
}

/// First 12 hex digits, for tables.
fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// The one-line verdict and its details.
pub fn render_report(r: &ReplayReport) -> String {
    let step = r.strategy.title();
    let what = if r.strategy.is_stateful() {
        "every model hash and optimiser state"
    } else {
        "every model hash"
    };
    let how = match (r.secure_rounds, r.plaintext_rounds) {
        (_, 0) => format!("unmasking and {step} reproduce {what}"),
        (0, _) => format!("summing the updates and {step} reproduce {what}"),
        (s, p) => format!(
            "{s} secure, {p} plaintext: unmasking or summing, then {step}, reproduce {what}"
        ),
    };
    let mut out = format!(
        "verified: {} rounds ({} replayed: {how}), {} entries, {} checkpoints, root {}\n",
        r.rounds, r.rounds_replayed, r.entries, r.checkpoints, r.root
    );
    let _ = writeln!(
        out,
        "  federation {:?}, log {} ({}), {} round attempts ({} aborted, {} cut short by a restart), {} blobs checked",
        r.federation,
        r.origin,
        r.dir.display(),
        r.attempts,
        r.aborted,
        r.interrupted,
        r.blobs_checked
    );
    let _ = writeln!(
        out,
        "  checkpoints signed by coordinator key {}; CA sha256 {} ({})",
        r.coordinator_key_id,
        r.ca_sha256,
        if r.ca_pinned {
            "the CA you gave"
        } else {
            "taken from the log"
        }
    );
    let _ = writeln!(out, "  global model now sha256 {}", r.model_sha256);
    if let Some(state) = &r.optimizer_state_sha256 {
        let _ = writeln!(
            out,
            "  server optimiser {}; its state now sha256 {state}",
            r.strategy.describe()
        );
    }
    match r.cosigned.last() {
        Some(latest) => {
            let _ = writeln!(
                out,
                "  latest checkpoint (size {}) cosigned by {} participant(s){}{}",
                latest.tree_size,
                latest.cosigners.len(),
                if latest.cosigners.is_empty() {
                    ""
                } else {
                    ": "
                },
                latest.cosigners.join(", ")
            );
        }
        None => {
            let _ = writeln!(out, "  no signed checkpoint");
        }
    }
    if r.unsigned_entries > 0 {
        let _ = writeln!(
            out,
            "note: the last {} entries are not covered by a signed checkpoint yet",
            r.unsigned_entries
        );
    }
    if let Some(round) = r.in_progress {
        let _ = writeln!(
            out,
            "note: round {round} was still running when the log was read"
        );
    }
    out
}

/// The warning for a verification that trusted the log's own CA.
pub fn tofu_warning(r: &ReplayReport) -> Option<String> {
    (!r.ca_pinned).then(|| {
        format!(
            "warning: the CA was taken from the log itself (trust on first use, CA sha256 {}): a log forged under another CA would pass too. Pin the federation's CA: fedsoc audit verify {} --ca ca.pem",
            r.ca_sha256,
            r.dir.display()
        )
    })
}

fn stage_label(stage_no: u32) -> &'static str {
    match stage_no {
        stage::ADVERTISE_KEYS => "keys",
        stage::REVEAL_SEED => "seed",
        stage::SHARE_KEYS => "shares",
        stage::MASKED_INPUT => "masked",
        stage::CONSISTENCY => "consistency",
        stage::UNMASK => "unmask",
        PLAINTEXT_UPDATES_STAGE => "updates",
        _ => "stage",
    }
}

/// The headline metrics of a round (ROC-AUC and PR-AUC when present).
fn metrics_cell(metrics: Option<&serde_json::Value>) -> String {
    let Some(serde_json::Value::Object(map)) = metrics else {
        return "-".into();
    };
    let picked: Vec<String> = ["roc_auc", "pr_auc"]
        .iter()
        .filter_map(|want| {
            map.iter()
                .find(|(k, v)| k.to_ascii_lowercase().contains(want) && v.is_number())
                .and_then(|(k, v)| v.as_f64().map(|v| format!("{k} {v:.4}")))
        })
        .collect();
    if picked.is_empty() {
        map.iter()
            .filter_map(|(k, v)| v.as_f64().map(|v| format!("{k} {v:.4}")))
            .take(2)
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        picked.join(", ")
    }
}

/// The timeline as a table (all rounds) or in detail (`detail`: one round).
pub fn render_timeline(t: &Timeline, detail: bool) -> String {
    let mut out = format!(
        "federation {:?}, log {} ({}): {} entries, {} checkpoints, root {}\n",
        t.federation,
        t.origin,
        t.dir.display(),
        t.entries,
        t.checkpoints,
        short(&t.root)
    );
    if let Some(m) = &t.initial_metrics {
        let _ = writeln!(out, "initial model: {}", metrics_cell(Some(m)));
    }
    if t.attempts.is_empty() {
        out.push_str("no rounds\n");
        render_cosignatures(&mut out, t);
        return out;
    }
    if detail {
        for a in &t.attempts {
            render_attempt(&mut out, a);
        }
        render_cosignatures(&mut out, t);
        return out;
    }
    let _ = writeln!(
        out,
        "\n{:>5} {:>3} {:<9} {:<11} {:>7} {:<22} {:>9} {:>8} {:>9} {:<12}  metrics",
        "round",
        "att",
        "mode",
        "outcome",
        "members",
        "messages per stage",
        "survivors",
        "samples",
        "mean loss",
        "model"
    );
    let mut notes = Vec::new();
    for a in &t.attempts {
        let stages = if a.stages.is_empty() {
            "-".to_string()
        } else {
            a.stages
                .iter()
                .map(|s| s.received.len().to_string())
                .collect::<Vec<_>>()
                .join("/")
        };
        let _ = writeln!(
            out,
            "{:>5} {:>3} {:<9} {:<11} {:>7} {:<22} {:>9} {:>8} {:>9} {:<12}  {}",
            a.round,
            a.attempt,
            a.mode,
            a.outcome,
            a.members.len(),
            stages,
            if a.outcome == "completed" {
                a.survivors.len().to_string()
            } else {
                "-".into()
            },
            a.total_samples.map_or("-".into(), |n| n.to_string()),
            a.mean_loss.map_or("-".into(), |l| format!("{l:.4}")),
            a.model_sha256.as_deref().map_or("-", short),
            metrics_cell(a.metrics.as_ref()),
        );
        for s in &a.stages {
            for d in &s.dropped {
                notes.push(format!(
                    "  round {} attempt {}, {} ({}): {} dropped: {}",
                    a.round,
                    a.attempt,
                    s.name,
                    stage_label(s.stage),
                    d.participant,
                    d.reason
                ));
            }
        }
        if let Some(abort) = &a.abort {
            notes.push(format!(
                "  round {} attempt {} aborted at {}: {}",
                a.round, a.attempt, abort.stage, abort.reason
            ));
            for d in &abort.dropped {
                notes.push(format!(
                    "  round {} attempt {}, at the abort: {} dropped: {}",
                    a.round, a.attempt, d.participant, d.reason
                ));
            }
        }
    }
    if !notes.is_empty() {
        out.push_str("\ndropouts and aborts:\n");
        for n in notes {
            out.push_str(&n);
            out.push('\n');
        }
    }
    for r in &t.restarts {
        let _ = writeln!(
            out,
            "coordinator (re)started at entry {} after round {}",
            r.entry, r.completed_round
        );
    }
    render_cosignatures(&mut out, t);
    out
}

/// The cosignatures, per checkpoint (size and time), as logged.
fn render_cosignatures(out: &mut String, t: &Timeline) {
    if t.cosignatures.is_empty() {
        out.push_str("\nno checkpoint cosignatures logged\n");
        return;
    }
    out.push_str("\ncheckpoint cosignatures (checked by `fedsoc audit verify`):\n");
    let mut groups: Vec<(u64, u64, Vec<&CosignatureView>)> = Vec::new();
    for c in &t.cosignatures {
        match groups
            .iter_mut()
            .find(|(size, time, _)| *size == c.tree_size && *time == c.checkpoint_time_ms)
        {
            Some((_, _, v)) => v.push(c),
            None => groups.push((c.tree_size, c.checkpoint_time_ms, vec![c])),
        }
    }
    for (size, time, cosigs) in groups {
        let mut names: Vec<&str> = cosigs.iter().map(|c| c.witness.as_str()).collect();
        names.sort();
        names.dedup();
        let _ = writeln!(
            out,
            "  checkpoint size {size} (time {time} ms): {} cosigner(s): {}",
            names.len(),
            names.join(", ")
        );
        for c in cosigs {
            let _ = writeln!(out, "    entry {}: {}", c.entry, c.line);
        }
    }
}

fn render_attempt(out: &mut String, a: &AttemptView) {
    let mode = match &a.secagg {
        Some(s) => format!(
            "secure (SecAgg+ k={} t={}, ring {} bits, {}-bit quantisation, clip {}, weights capped at {} samples, round id {})",
            s.neighbors,
            s.threshold,
            s.ring_bits,
            s.quant_bits,
            s.clip,
            s.max_samples,
            short(&s.round_id)
        ),
        None => a.mode.clone(),
    };
    let _ = writeln!(
        out,
        "\nround {} ({}), attempt {}: {} — {}",
        a.round, a.kind, a.attempt, a.outcome, mode
    );
    if let Some((entry, line)) = &a.conclusion {
        let _ = writeln!(out, "  concluded (entry {entry}): {line}");
    }
    if let Some(entry) = a.opened_entry {
        let _ = writeln!(
            out,
            "  opened at entry {entry} from global model {}",
            a.global_in_sha256.as_deref().unwrap_or("-")
        );
    }
    if !a.members.is_empty() {
        let members: Vec<String> = a
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| format!("#{i} {m}"))
            .collect();
        let _ = writeln!(out, "  members: {}", members.join(", "));
    }
    for s in &a.stages {
        let _ = writeln!(
            out,
            "  stage {} {} (entry {}): {} messages, {} dropped",
            s.stage,
            s.name,
            s.entry,
            s.received.len(),
            s.dropped.len()
        );
        for m in &s.received {
            let _ = writeln!(
                out,
                "    #{:<3} {:<20} sha256 {}",
                m.index, m.participant, m.sha256
            );
        }
        for d in &s.dropped {
            let _ = writeln!(out, "    dropped {}: {}", d.participant, d.reason);
        }
    }
    if let Some(samples) = a.total_samples {
        let _ = writeln!(
            out,
            "  aggregated: {} survivors ({}), {samples} samples",
            a.survivors.len(),
            a.survivors.join(", ")
        );
    }
    if let (Some(sha), Some(entry)) = (&a.model_sha256, a.model_entry) {
        let _ = writeln!(
            out,
            "  model (entry {entry}): sha256 {sha}, mean training loss {}",
            a.mean_loss.map_or("-".into(), |l| format!("{l:.4}"))
        );
    }
    if let Some(o) = &a.optimizer {
        let _ = writeln!(
            out,
            "  optimiser {}: {} steps, state sha256 {}",
            o.hyperparameters.describe(),
            o.steps,
            o.state_sha256
        );
    }
    if let Some(m) = &a.metrics {
        let _ = writeln!(out, "  metrics: {m}");
    }
    if let Some(abort) = &a.abort {
        let _ = writeln!(
            out,
            "  aborted (entry {}) at {}: {}",
            abort.entry, abort.stage, abort.reason
        );
        for d in &abort.dropped {
            let _ = writeln!(out, "    dropped {}: {}", d.participant, d.reason);
        }
    }
}

/// An entry and its proof, for `fedsoc audit prove`.
pub fn render_proof(p: &EntryProof) -> String {
    let mut out = format!(
        "entry {}: {} (timestamp {} ms)\n{}\n\nleaf hash  {}\ntree size  {}\nroot       {}\ninclusion proof ({} hashes, leaf to root):\n",
        p.index,
        p.kind,
        p.timestamp_ms,
        p.body_text,
        p.leaf_hash,
        p.tree_size,
        p.root,
        p.proof.len()
    );
    for h in &p.proof {
        let _ = writeln!(out, "  {h}");
    }
    match (&p.checkpoint_note, &p.signed_by) {
        (Some(note), Some(key)) => {
            let _ = write!(
                out,
                "the proof verifies against the checkpoint of size {} signed by coordinator key {key}:\n{note}",
                p.tree_size
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "the proof verifies against the tree head of size {} computed from the log; no signed checkpoint has that size",
                p.tree_size
            );
        }
    }
    out
}

/// What `fedsoc audit repair` did.
pub fn render_repair(dir: &Path, repaired: &[RepairedFile]) -> String {
    if repaired.is_empty() {
        return format!("{}: nothing to repair (no torn tail)\n", dir.display());
    }
    let mut out = String::new();
    for r in repaired {
        let _ = writeln!(
            out,
            "{}: kept {} intact records, cut {} torn bytes (saved to {})",
            r.path.display(),
            r.kept_records,
            r.discarded_bytes,
            r.saved_to.display()
        );
    }
    let _ = writeln!(
        out,
        "now run: fedsoc audit verify {} --ca ca.pem",
        dir.display()
    );
    out
}

/// What `fedsoc audit export` wrote.
pub fn render_export(e: &ExportReport) -> String {
    format!(
        "exported {} files ({} bytes) to {}; the bundle verifies: {} rounds replayed, {} entries, root {}\nsend the folder; the auditor runs: fedsoc audit verify {} --ca <federation ca.pem>\n",
        e.files,
        e.bytes,
        e.bundle.display(),
        e.verified.rounds_replayed,
        e.verified.entries,
        e.verified.root,
        e.bundle.display()
    )
}

/// `column share, …` of the share of values outside each vocabulary.
fn shares(of: &std::collections::BTreeMap<String, f64>) -> String {
    of.iter()
        .map(|(k, v)| format!("{k} {:.1}%", 100.0 * v))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `name count, …`.
fn counts(of: &std::collections::BTreeMap<String, u64>) -> String {
    of.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
