//! One training round: hand out tasks, collect updates, aggregate, step.
//!
//! Every participant is served by its own task with its own deadline, so a
//! slow or vanished participant costs the round only its update: it is a
//! dropout, and the round completes if enough updates arrived.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fedsoc_proto::chunk::{self, Assembler};
use fedsoc_proto::v1::{
    CoordinatorMessage, RoundClosed, TrainTask, coordinator_message, participant_message,
};
use prost::Message;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::aggregate::PlaintextSum;
use crate::aggregate::WeightedSum;
use crate::error::CoordinatorError;
use crate::federation::FederationSpec;
use crate::live::{RoundWatch, stage};
use crate::optimizer::{self, ServerOptimizer};
use crate::registry::{Link, Registry};
use crate::stats::RoundStats;
use crate::store::StoredOptimizer;
use crate::strategy;
use crate::trail::{self, Opening, RoundLog, Trail};

/// How rounds are run.
#[derive(Clone, Debug)]
pub struct RoundPolicy {
    pub min_participants: usize,
    pub timeout: Duration,
    /// Secure aggregation settings; `None` only when the configuration
    /// explicitly chose plaintext aggregation.
    pub secure: Option<crate::secure_round::SecureSettings>,
    /// Where the running round reports its stage and hears a stop.
    pub watch: RoundWatch,
    /// Certificates revoked since their session opened are cut off at
    /// the next round.
    pub revocations: Option<Arc<fedsoc_pki::Revocations>>,
    /// The CRL every task carries, checked for freshness and against the
    /// recorded floor at each round (`None` only in tests).
    pub crl: Option<Arc<crate::crl::CrlGate>>,
    /// The server optimiser (`[strategy]`) that steps training rounds.
    pub strategy: ServerOptimizer,
}

impl RoundPolicy {
    /// The signed CRL (DER) for this round's tasks; an error (stale,
    /// missing, older than enforced before, or revoking us) fails the
    /// round before anything is sent or logged.
    pub(crate) fn crl_for_round(&self) -> Result<Arc<Vec<u8>>, CoordinatorError> {
        match &self.crl {
            Some(gate) => gate.for_round(),
            None => Ok(Arc::default()),
        }
    }

    /// The idle links a round may use: a session whose certificate was
    /// revoked while it was open is closed here (dropping the link ends
    /// the stream; the reconnect is refused).
    pub(crate) fn take_members(&self, registry: &Registry) -> Vec<Link> {
        let mut links = registry.take_idle();
        if let Some(revocations) = &self.revocations {
            links.retain(|link| match revocations.check(&link.certificate) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(participant = %link.id, error = %e, "session closed: certificate revoked");
                    let _ = link
                        .outbox
                        .try_send(Err(tonic::Status::permission_denied(e.to_string())));
                    registry.disconnected(&link.id, link.session);
                    false
                }
            });
        }
        links
    }
}

/// Why a round attempt ended when a data scientist stopped it.
pub const STOPPED_REASON: &str = "stopped by a data scientist";

/// A participant that did not contribute to a round, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Dropout {
    pub participant: String,
    pub reason: String,
}

/// What a completed round produced.
#[derive(Clone, Debug)]
pub struct RoundReport {
    pub round: u64,
    pub kind: crate::kind::RoundKind,
    pub included: Vec<String>,
    pub dropped: Vec<Dropout>,
    pub samples: u64,
    pub mean_loss: f32,
    pub model: Arc<Vec<f32>>,
    pub model_sha256: String,
    /// Time and traffic per stage.
    pub stats: RoundStats,
    /// The audit entry recording each included participant's update.
    pub receipt_entry: Option<u64>,
    /// Every stage entry of the round: each member's receipts.
    pub receipts: Vec<u64>,
    /// A sum round's conclusion (its entry is in the log).
    pub conclusion: Option<(crate::kind::Conclusion, crate::kind::Query)>,
    /// The server optimiser's state after the round (a sum round carries
    /// the previous one); `None` for FedAvg, or before the first step.
    pub optimizer: Option<Arc<StoredOptimizer>>,
}

/// A participant's update as it arrived.
struct Update {
    samples: u64,
    mean_loss: f32,
    delta: Vec<f32>,
}

/// Payload bytes exchanged with one participant: (down, up).
type Traffic = (u64, u64);

/// Task ids start at a random point so that ids from before a restart are
/// never mistaken for current ones.
pub(crate) fn next_task_id() -> u64 {
    static NEXT: std::sync::OnceLock<AtomicU64> = std::sync::OnceLock::new();
    NEXT.get_or_init(|| AtomicU64::new(rand::random::<u64>() >> 2))
        .fetch_add(1, Ordering::Relaxed)
}

/// SHA-256 of a model's little-endian f32 bytes, hex.
pub fn model_sha256(model: &[f32]) -> String {
    let mut h = Sha256::new();
    for v in model {
        h.update(v.to_le_bytes());
    }
    hex::encode(h.finalize())
}

/// Runs round `round` from `global` (and the optimiser state after the
/// previous round) with the participants connected now.
pub async fn run_round(
    spec: &FederationSpec,
    registry: &Registry,
    policy: &RoundPolicy,
    round: u64,
    global: Arc<Vec<f32>>,
    optimizer_state: Option<Arc<StoredOptimizer>>,
    trail: &Trail,
) -> Result<RoundReport, CoordinatorError> {
    let crl_der = policy.crl_for_round()?;
    let links = policy.take_members(registry);
    if links.len() < policy.min_participants {
        let got = links.len();
        links.into_iter().for_each(|l| registry.restore(l));
        return Err(CoordinatorError::NotEnoughParticipants {
            round,
            got,
            need: policy.min_participants,
        });
    }
    let opening = Opening::new(round, &links, None, &global, &spec.training);
    let mut log = match trail.open_round(opening) {
        Ok(log) => log,
        Err(e) => {
            links.into_iter().for_each(|l| registry.restore(l));
            return Err(e);
        }
    };
    let member_index: std::collections::HashMap<String, u32> = links
        .iter()
        .enumerate()
        .map(|(i, l)| (l.id.clone(), i as u32))
        .collect();
    policy.watch.begin(
        round,
        log.attempt,
        crate::kind::RoundKind::Train,
        links.iter().map(|l| l.id.clone()).collect(),
    );
    let span = tracing::info_span!("round", round, attempt = log.attempt);
    let _guard = span.enter();
    tracing::info!(participants = links.len(), "round started");
    policy.watch.enter(stage::TRAINING).await;
    let started = Instant::now();
    let mut stats = RoundStats {
        members: links.len(),
        ..RoundStats::default()
    };
    let mut compute = Duration::ZERO;

    let deadline = Instant::now() + policy.timeout;
    let mut tasks = JoinSet::new();
    for link in links {
        let task = spec.train_task(
            round,
            &link.id,
            next_task_id(),
            global.len(),
            policy.timeout,
            None,
            &crl_der,
        );
        tasks.spawn(collect_update(link, task, global.clone(), deadline));
    }

    let mut sum = PlaintextSum::new(global.len());
    let mut included = Vec::new();
    let mut dropped = Vec::new();
    let mut finished = Vec::new();
    let mut accepted = Vec::new();
    loop {
        let joined = tokio::select! {
            joined = tasks.join_next() => joined,
            _ = policy.watch.aborted() => {
                // The lent links go with their tasks: those participants
                // reconnect for the next round.
                tasks.abort_all();
                log.aborted(stage::TRAINING, STOPPED_REASON, &Default::default())?;
                return Err(CoordinatorError::Stopped { round, stage: stage::TRAINING.into() });
            }
        };
        let Some(joined) = joined else { break };
        let (link, task_id, traffic, result) =
            joined.map_err(|e| CoordinatorError::Internal(format!("round task: {e}")))?;
        stats.bytes_down += traffic.0;
        stats.bytes_up += traffic.1;
        policy.watch.metrics().bytes_sent(traffic.0);
        policy.watch.metrics().bytes_received(traffic.1);
        let adding = std::time::Instant::now();
        let outcome = result.and_then(|u| {
            sum.add(u.samples, u.mean_loss, &u.delta)
                .map_err(|e| format!("update refused: {e}"))?;
            accepted.push((
                member_index.get(&link.id).copied().unwrap_or(u32::MAX),
                trail::encode_plain_update(u.samples, u.mean_loss, &u.delta),
            ));
            Ok(())
        });
        compute += adding.elapsed();
        match outcome {
            Ok(()) => included.push(link.id.clone()),
            Err(reason) => {
                tracing::warn!(participant = %link.id, %reason, "dropout");
                policy.watch.dropped(&link.id, &reason);
                dropped.push(Dropout {
                    participant: link.id.clone(),
                    reason,
                });
            }
        }
        finished.push((link, task_id));
    }
    included.sort();
    dropped.sort_by(|a, b| a.participant.cmp(&b.participant));

    let enough = included.len() >= policy.min_participants;
    for (link, task_id) in finished {
        let was_included = enough && included.contains(&link.id);
        let reason = match dropped.iter().find(|d| d.participant == link.id) {
            Some(d) => d.reason.clone(),
            None if !enough => "round aborted: too many dropouts".to_string(),
            None => String::new(),
        };
        let closed = CoordinatorMessage {
            body: Some(coordinator_message::Body::RoundClosed(RoundClosed {
                round,
                task_id,
                included: was_included,
                reason,
            })),
        };
        // A participant that already left is a dropout already recorded.
        let _ = link.outbox.try_send(Ok(closed));
        registry.restore(link);
    }
    let reasons = dropped
        .iter()
        .map(|d| (d.participant.clone(), d.reason.clone()))
        .collect();
    let entry = log.stage(
        trail::PLAINTEXT_UPDATES_STAGE,
        "updates",
        &accepted,
        &reasons,
    )?;
    log.receipt_entry = Some(entry);
    if !enough {
        log.aborted("updates", "too many dropouts", &reasons)?;
        return Err(CoordinatorError::TooManyDropouts {
            round,
            survivors: included.len(),
            need: policy.min_participants,
            dropped: dropped
                .iter()
                .map(|d| format!("{} ({})", d.participant, d.reason))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }

    let finishing = std::time::Instant::now();
    let sum = sum.finish();
    let stepped = server_step(
        &log,
        &policy.strategy,
        &global,
        &sum,
        optimizer_state.as_deref(),
        &reasons,
    )?;
    compute += finishing.elapsed();
    let sum_bytes: Vec<u8> = sum
        .weighted_delta
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    stats.stage("train and upload", started.elapsed(), compute);
    let report = conclude(
        &log,
        &global,
        &sum,
        &sum_bytes,
        &policy.strategy,
        stepped,
        included,
        dropped,
        stats,
    )?;
    tracing::info!(
        included = report.included.len(),
        dropped = report.dropped.len(),
        mean_loss = report.mean_loss,
        "round complete"
    );
    Ok(report)
}

/// A training round's new model and optimiser state.
pub(crate) type Stepped = (Vec<f32>, Option<crate::optimizer::OptimizerState>);

/// The server optimiser's step on the round's sum. A state that does not
/// fit (which the start-up checks rule out) ends the attempt in the log
/// as aborted, never half-recorded.
pub(crate) fn server_step(
    log: &RoundLog<'_>,
    strategy: &ServerOptimizer,
    global: &[f32],
    sum: &WeightedSum,
    state: Option<&StoredOptimizer>,
    reasons: &std::collections::BTreeMap<String, String>,
) -> Result<Stepped, CoordinatorError> {
    let state = state.map(|s| &s.state);
    optimizer::step(strategy, global, sum, state).or_else(|reason| {
        let reason = format!("the {} step: {reason}", strategy.name());
        log.aborted(stage::MODEL_UPDATE, &reason, reasons)?;
        Err(CoordinatorError::Internal(reason))
    })
}

/// The common end of a training round: the aggregate and the server
/// optimiser's step written to the audit trail, then the report.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conclude(
    log: &RoundLog<'_>,
    global: &[f32],
    sum: &WeightedSum,
    sum_bytes: &[u8],
    strategy: &ServerOptimizer,
    (model, state): Stepped,
    included: Vec<String>,
    dropped: Vec<Dropout>,
    stats: RoundStats,
) -> Result<RoundReport, CoordinatorError> {
    let mean_loss = strategy::mean_loss(sum);
    log.aggregated(&included, sum_bytes, sum.total_samples, sum.weighted_loss)?;
    log.model(
        strategy.name(),
        global,
        &model,
        mean_loss,
        state.as_ref().map(|s| (strategy, s)),
    )?;
    Ok(RoundReport {
        optimizer: state.map(|state| {
            Arc::new(StoredOptimizer {
                name: strategy.name().to_string(),
                state,
            })
        }),
        round: log.round,
        kind: crate::kind::RoundKind::Train,
        conclusion: None,
        samples: sum.total_samples,
        mean_loss,
        model_sha256: model_sha256(&model),
        model: Arc::new(model),
        included,
        dropped,
        stats,
        receipt_entry: log.receipt_entry,
        receipts: log.stage_entries.clone(),
    })
}

/// Sends one participant its task and the global model, and waits for its
/// update until the round deadline.
async fn collect_update(
    mut link: Link,
    task: TrainTask,
    global: Arc<Vec<f32>>,
    deadline: Instant,
) -> (Link, u64, Traffic, Result<Update, String>) {
    let task_id = task.task_id;
    let mut traffic = (0, 0);
    let result =
        tokio::time::timeout_at(deadline, exchange(&mut link, task, &global, &mut traffic))
            .await
            .unwrap_or_else(|_| Err("missed the round deadline".to_string()));
    (link, task_id, traffic, result)
}

async fn exchange(
    link: &mut Link,
    task: TrainTask,
    global: &[f32],
    traffic: &mut Traffic,
) -> Result<Update, String> {
    let task_id = task.task_id;
    let mut outgoing = vec![coordinator_message::Body::TrainTask(task)];
    outgoing.extend(chunk::split(task_id, global).map(coordinator_message::Body::ModelChunk));
    for body in outgoing {
        let message = CoordinatorMessage { body: Some(body) };
        traffic.0 += message.encoded_len() as u64;
        link.outbox
            .send(Ok(message))
            .await
            .map_err(|_| "disconnected".to_string())?;
    }

    let mut header = None;
    let mut assembler = Assembler::new(task_id, global.len() as u64);
    loop {
        let message = link.inbox.recv().await.ok_or("disconnected")?;
        traffic.1 += message.encoded_len() as u64;
        match message.body {
            Some(participant_message::Body::UpdateHeader(h)) if h.task_id == task_id => {
                if h.num_params != global.len() as u64 {
                    return Err(format!(
                        "update announces {} values, the model has {}",
                        h.num_params,
                        global.len()
                    ));
                }
                header = Some(h);
            }
            Some(participant_message::Body::UpdateChunk(piece)) if piece.task_id == task_id => {
                let h = header.as_ref().ok_or("update chunk before its header")?;
                if let Some(delta) = assembler.push(piece).map_err(|e| e.to_string())? {
                    return Ok(Update {
                        samples: h.samples,
                        mean_loss: h.mean_loss,
                        delta,
                    });
                }
            }
            Some(participant_message::Body::TaskFailed(f)) if f.task_id == task_id => {
                return Err(format!("training failed: {}", f.reason));
            }
            other => {
                // Stale answers to an earlier task, or a second Hello: never
                // mixed into this round.
                tracing::warn!(participant = %link.id, message = ?other.map(|b| kind(&b)), "ignored message not for this task");
            }
        }
    }
}

fn kind(body: &participant_message::Body) -> &'static str {
    match body {
        participant_message::Body::Hello(_) => "hello",
        participant_message::Body::UpdateHeader(_) => "update_header",
        participant_message::Body::UpdateChunk(_) => "update_chunk",
        participant_message::Body::TaskFailed(_) => "task_failed",
        participant_message::Body::Secagg(_) => "secagg",
        participant_message::Body::Cosignature(_) => "cosignature",
    }
}
