//! One training round through secure aggregation (SecAgg+): the
//! coordinator drives the fedsoc-secagg server state machine and only
//! moves its messages. It never holds a participant's update in the clear:
//! what it decodes is the weighted sum of the survivors' updates.
//!
//! Each stage has a deadline (the first also covers local training). A
//! participant that disconnects, misses a deadline or sends a message the
//! state machine refuses is a dropout at that stage; the round completes
//! whenever the protocol allows, else it aborts with the reason and the
//! caller retries with a fresh round id and fresh keys.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use fedsoc_proto::chunk::{self, Assembler};
use fedsoc_proto::secagg_stage as stage;
use fedsoc_proto::v1::{
    CoordinatorMessage, Member, ParticipantMessage, RoundClosed, SecureAggregation,
    coordinator_message, participant_message,
};
use fedsoc_secagg::messages::{
    AdvertiseKeys, ConsistencySignature, MaskedInput, SeedReveal, ShareKeys, UnmaskShares,
};
use fedsoc_secagg::weighted::WeightedEncoding;
use fedsoc_secagg::{
    Message, ParticipantId, Ring, RoundConfig, SecAggError, Server, config::threshold_floor,
    recommended_neighbours,
};
use prost::Message as _;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::aggregate::WeightedSum;
use crate::config::AggregationSection;
use crate::error::CoordinatorError;
use crate::federation::FederationSpec;
use crate::kind::{self, Conclusion, Query, RoundKind, SumRound, SumState};
use crate::live::{self, RoundWatch};
use crate::registry::{Link, Outbox, Registry};
use crate::round::{Dropout, RoundPolicy, RoundReport, conclude, next_task_id, server_step};
use crate::stats::RoundStats;
use crate::trail::SECAGG_PROTOCOL;
use crate::trail::{Opening, RoundLog, SecAggRecord, Trail};

/// What a secure round needs beyond the plaintext policy.
#[derive(Clone, Debug)]
pub struct SecureSettings {
    pub aggregation: AggregationSection,
    pub encoding: WeightedEncoding,
    /// Reads each member's signing key from its certificate, checked
    /// against the federation CA.
    pub members: Arc<fedsoc_pki::MemberVerifier>,
    /// Members that advertised but did not reveal their graph-seed nonce
    /// in the current round: every advertiser must reveal, so a member that
    /// never does would otherwise end every attempt of the round.
    pub withheld: Arc<std::sync::Mutex<BTreeMap<String, Withheld>>>,
}

/// A member's missing graph-seed nonces in one round.
#[derive(Clone, Copy, Debug, Default)]
pub struct Withheld {
    round: u64,
    times: u32,
    /// It sits out the rest of the round: it withheld while still
    /// connected, or twice (a crash between advertising and revealing
    /// is forgiven once, since that window is milliseconds wide).
    benched: bool,
}

impl SecureSettings {
    fn withheld(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Withheld>> {
        // Short updates with no invariant across them: poison is moot.
        self.withheld.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How long sending one message to a participant may block before that
/// participant counts as stalled.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

enum Event {
    Message(ParticipantMessage),
    Gone,
}

/// A round member: its link is lent to a pump task for the round.
struct Member_ {
    id: String,
    task_id: u64,
    outbox: Outbox,
}

/// What a round computes: a model update (training) or a query's integer
/// vector (see [`crate::kind`]), under the encoder in force.
#[derive(Clone, Debug, Default)]
pub struct RoundWork {
    pub kind: RoundKind,
    pub query: Option<Query>,
    /// What earlier sum rounds established (the encoder in force among it).
    pub state: SumState,
    /// The server optimiser's state after the previous round: a training
    /// round steps it, a sum round carries it over unchanged.
    pub optimizer: Option<Arc<crate::store::StoredOptimizer>>,
}

impl RoundWork {
    fn query_json(&self) -> Option<String> {
        self.query.as_ref().map(Query::json)
    }
}

/// Runs a secure round with the participants connected now.
#[allow(clippy::too_many_arguments)]
pub async fn run_secure_round(
    spec: &FederationSpec,
    registry: &Registry,
    policy: &RoundPolicy,
    settings: &SecureSettings,
    round: u64,
    global: Arc<Vec<f32>>,
    trail: &Trail,
    work: &RoundWork,
) -> Result<RoundReport, CoordinatorError> {
    let crl_der = policy.crl_for_round()?;
    let links = policy.take_members(registry);
    let benched: Vec<String> = {
        let mut withheld = settings.withheld();
        withheld.retain(|_, w| w.round == round);
        withheld
            .iter()
            .filter(|(_, w)| w.benched)
            .map(|(id, _)| id.clone())
            .collect()
    };
    let (sitting_out, mut links): (Vec<Link>, Vec<Link>) =
        links.into_iter().partition(|l| benched.contains(&l.id));
    for link in sitting_out {
        tracing::warn!(participant = %link.id, round, "sits this round out: it withheld its graph-seed nonce in an earlier attempt");
        registry.restore(link);
    }
    // Members whose certificate does not yield an Ed25519 key cannot sign;
    // they sit this round out.
    let mut keys = Vec::new();
    links.retain(|link| match settings.members.verify(&link.certificate)
        .map_err(|e| e.to_string())
        .and_then(|m| VerifyingKey::from_bytes(&m.ed25519_public).map_err(|e| e.to_string()))
    {
        Ok(key) => {
            keys.push(key);
            true
        }
        Err(e) => {
            tracing::warn!(participant = %link.id, error = %e, "excluded from the secure round");
            false
        }
    });
    // A secure round needs k >= c + 2 neighbours, so at least c + 3
    // members, whatever min_participants says (members refuse fewer).
    let need = policy
        .min_participants
        .max(settings.aggregation.colluders as usize + 3);
    if links.len() < need {
        let got = links.len();
        links.into_iter().for_each(|l| registry.restore(l));
        return Err(CoordinatorError::NotEnoughParticipants { round, got, need });
    }
    let n = links.len();
    let agg = &settings.aggregation;
    let colluders = agg.colluders as usize;
    let (k_rec, _) = recommended_neighbours(n, colluders);
    let neighbors = if agg.neighbors == 0 {
        k_rec
    } else {
        agg.neighbors as usize
    };
    let threshold = if agg.threshold == 0 {
        threshold_floor(neighbors, colluders)
    } else {
        agg.threshold as usize
    };
    let round_id: [u8; 32] = rand::random();
    // A sum round adds integer words in Z_2^64; its query is the context.
    let (ring, ring_bits, vector_len, context) = match &work.query {
        Some(query) => (Ring::U64, 64, query.vector_len(), query.context()),
        None => (
            settings.encoding.quantizer.ring,
            agg.ring_bits,
            WeightedEncoding::vector_len(global.len()),
            settings.encoding.context(),
        ),
    };
    let config = RoundConfig {
        round_id,
        participants: (0..n as u32).map(ParticipantId).collect(),
        verifying_keys: keys
            .iter()
            .enumerate()
            .map(|(i, k)| (ParticipantId(i as u32), *k))
            .collect(),
        neighbors,
        threshold,
        colluders,
        ring,
        vector_len,
        context,
    };
    let capacity = match work.query {
        Some(_) => Ok(()),
        None => settings.encoding.check_capacity(n),
    };
    let setup = capacity.and_then(|()| Server::new(config));
    let server = match setup {
        Ok(server) => server,
        Err(e) => {
            links.into_iter().for_each(|l| registry.restore(l));
            return Err(CoordinatorError::SecAgg(e));
        }
    };

    let secagg = SecAggRecord {
        protocol: SECAGG_PROTOCOL,
        round_id: hex::encode(round_id),
        neighbors,
        threshold,
        colluders,
        ring_bits,
        quant_bits: agg.quant_bits,
        clip: agg.clip,
        max_samples: agg.max_samples,
    };
    let mut opening = Opening::new(round, &links, Some(secagg), &global, &spec.training);
    opening.kind = work.kind;
    opening.query = work.query_json();
    opening.encoder_sha256 = Some(work.state.encoder.sha256.clone());
    let log = match trail.open_round(opening) {
        Ok(log) => log,
        Err(e) => {
            links.into_iter().for_each(|l| registry.restore(l));
            return Err(e);
        }
    };

    policy.watch.begin(
        round,
        log.attempt,
        work.kind,
        links.iter().map(|l| l.id.clone()).collect(),
    );
    let span = tracing::info_span!("round", round, secure = true, attempt = log.attempt);
    let _guard = span.enter();
    tracing::info!(participants = n, neighbors, threshold, round_id = %hex::encode(round_id), "secure round started");

    let params = SecureAggregation {
        round_id: round_id.to_vec(),
        members: links
            .iter()
            .map(|l| Member {
                participant_id: l.id.clone(),
                certificate_der: l.certificate.clone(),
            })
            .collect(),
        neighbors: neighbors as u32,
        threshold: threshold as u32,
        colluders: colluders as u32,
        ring_bits,
        quant_bits: agg.quant_bits,
        clip: agg.clip,
        max_samples: agg.max_samples,
    };
    let (events_tx, events) = mpsc::channel(256);
    let (stop_tx, stop) = watch::channel(false);
    let mut members = Vec::with_capacity(n);
    let mut pumps = Vec::with_capacity(n);
    for (index, link) in links.into_iter().enumerate() {
        members.push(Member_ {
            id: link.id.clone(),
            task_id: next_task_id(),
            outbox: link.outbox.clone(),
        });
        pumps.push(tokio::spawn(pump(
            index,
            link,
            events_tx.clone(),
            stop.clone(),
        )));
    }
    drop(events_tx);

    let mut driver = Driver {
        stats: RoundStats {
            members: members.len(),
            ..RoundStats::default()
        },
        members,
        events,
        gone: BTreeSet::new(),
        disconnected: BTreeSet::new(),
        reasons: BTreeMap::new(),
        compute: Duration::ZERO,
        log,
        accepted: Vec::new(),
        watch: policy.watch.clone(),
        crl_der,
    };
    let outcome = driver
        .run(spec, policy, settings, round, &global, params, server, work)
        .await;

    // Close the round for everyone, then give the links back.
    let survivors: BTreeSet<String> = match &outcome {
        Ok((included, _, _)) => included.iter().cloned().collect(),
        Err(_) => BTreeSet::new(),
    };
    for m in &driver.members {
        let included = survivors.contains(&m.id);
        let reason = match (&outcome, driver.reasons.get(&m.id)) {
            (_, Some(reason)) => reason.clone(),
            (Err(e), None) => format!("round aborted: {e}"),
            (Ok(_), None) => String::new(),
        };
        let closed = CoordinatorMessage {
            body: Some(coordinator_message::Body::RoundClosed(RoundClosed {
                round,
                task_id: m.task_id,
                included,
                reason,
            })),
        };
        let _ = m.outbox.try_send(Ok(closed));
    }
    let _ = stop_tx.send(true);
    for pump in pumps {
        if let Ok(link) = pump.await {
            registry.restore(link);
        }
    }

    if let Err(e) = &outcome {
        let stage = match e {
            CoordinatorError::SecAgg(SecAggError::TooManyDropouts { stage, .. }) => {
                format!("{stage:?}")
            }
            CoordinatorError::Stopped { stage, .. } => stage.clone(),
            _ => "round".to_string(),
        };
        driver
            .log
            .aborted(&stage, &e.to_string(), &driver.reasons)?;
    }
    let (included, sum, ring_sum) = outcome.map_err(|e| match e {
        CoordinatorError::SecAgg(SecAggError::TooManyDropouts { stage, detail }) => {
            CoordinatorError::SecureAbort {
                round,
                stage: format!("{stage:?}"),
                detail,
                dropped: driver
                    .reasons
                    .iter()
                    .map(|(p, why)| format!("{p} ({why})"))
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        }
        other => other,
    })?;
    let mut dropped: Vec<Dropout> = driver
        .members
        .iter()
        .filter(|m| !included.contains(&m.id))
        .map(|m| Dropout {
            participant: m.id.clone(),
            reason: driver
                .reasons
                .get(&m.id)
                .cloned()
                .unwrap_or_else(|| "dropped".into()),
        })
        .collect();
    dropped.sort_by(|a, b| a.participant.cmp(&b.participant));
    let ring_bytes: Vec<u8> = ring_sum.iter().flat_map(|w| w.to_le_bytes()).collect();
    if let Some(query) = &work.query {
        return conclude_sum(
            spec,
            &driver,
            query,
            work,
            &global,
            &ring_sum,
            &ring_bytes,
            included,
            dropped,
        );
    }
    let stepping = Instant::now();
    let stepped = server_step(
        &driver.log,
        &policy.strategy,
        &global,
        &sum,
        work.optimizer.as_deref(),
        &driver.reasons,
    )?;
    let mut stats = driver.stats;
    stats.stage("model update", stepping.elapsed(), stepping.elapsed());
    let report = conclude(
        &driver.log,
        &global,
        &sum,
        &ring_bytes,
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
        server_compute_s = report.stats.server_compute_s(),
        "secure round complete"
    );
    Ok(report)
}

/// Ends a sum round: its conclusion from the unmasked words, logged after
/// the aggregate and before the unchanged model that completes the round.
/// A sum that concludes nothing (e.g. a quantile beyond the bins) aborts.
#[allow(clippy::too_many_arguments)]
fn conclude_sum(
    spec: &FederationSpec,
    driver: &Driver<'_>,
    query: &Query,
    work: &RoundWork,
    global: &[f32],
    ring_sum: &[u64],
    ring_bytes: &[u8],
    included: Vec<String>,
    dropped: Vec<Dropout>,
) -> Result<RoundReport, CoordinatorError> {
    let log = &driver.log;
    let model_sha256 = crate::round::model_sha256(global);
    let at = SumRound {
        round: log.round,
        attempt: log.attempt,
        model: &spec.model,
        model_sha256: &model_sha256,
    };
    let conclusion = match kind::conclude(query, ring_sum, &work.state, at) {
        Ok(c) => c,
        Err(reason) => {
            log.aborted("conclusion", &reason, &driver.reasons)?;
            return Err(CoordinatorError::Conclusion {
                round: log.round,
                kind: work.kind.name(),
                reason,
            });
        }
    };
    let rows = match &conclusion {
        Conclusion::Moments(m) => m.moments.rows,
        Conclusion::Encoder(e) => e.rows,
        Conclusion::Threshold(t) => t.benign_rows,
    };
    log.aggregated(&included, ring_bytes, rows, 0.0)?;
    let (entry_kind, body) = conclusion.entry();
    log.result(entry_kind, &body)?;
    log.model("unchanged", global, global, 0.0, None)?;
    tracing::info!(
        kind = work.kind.name(),
        included = included.len(),
        rows,
        "sum round complete"
    );
    Ok(RoundReport {
        round: log.round,
        kind: work.kind,
        included,
        dropped,
        samples: rows,
        mean_loss: 0.0,
        model_sha256,
        model: Arc::new(global.to_vec()),
        stats: driver.stats.clone(),
        receipt_entry: log.receipt_entry,
        receipts: log.stage_entries.clone(),
        conclusion: Some((conclusion, query.clone())),
        optimizer: work.optimizer.clone(),
    })
}

/// Forwards one participant's messages to the round until it ends, then
/// hands the link back.
async fn pump(
    index: usize,
    mut link: Link,
    events: mpsc::Sender<(usize, Event)>,
    mut stop: watch::Receiver<bool>,
) -> Link {
    loop {
        tokio::select! {
            _ = stop.changed() => return link,
            message = link.inbox.recv() => match message {
                Some(m) => {
                    if events.send((index, Event::Message(m))).await.is_err() {
                        return link;
                    }
                }
                None => {
                    let _ = events.send((index, Event::Gone)).await;
                    let _ = stop.changed().await;
                    return link;
                }
            }
        }
    }
}

struct Driver<'t> {
    members: Vec<Member_>,
    events: mpsc::Receiver<(usize, Event)>,
    gone: BTreeSet<usize>,
    /// Members whose session ended (a subset of `gone`, which also holds
    /// those that missed a deadline).
    disconnected: BTreeSet<usize>,
    /// Why each dropout dropped.
    reasons: BTreeMap<String, String>,
    stats: RoundStats,
    /// Coordinator compute in the current stage so far.
    compute: Duration,
    /// The round's record in the audit trail.
    log: RoundLog<'t>,
    /// Messages the state machine accepted in the current stage.
    accepted: Vec<(u32, Vec<u8>)>,
    watch: RoundWatch,
    /// The signed CRL every task of this round carries.
    crl_der: Arc<Vec<u8>>,
}

/// What the driver returns: the survivors by id, the decoded sum and the
/// ring sum it was decoded from.
type Outcome = (Vec<String>, WeightedSum, Vec<u64>);

impl Driver<'_> {
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &mut self,
        spec: &FederationSpec,
        policy: &RoundPolicy,
        settings: &SecureSettings,
        round: u64,
        global: &[f32],
        params: SecureAggregation,
        server: fedsoc_secagg::ServerCollectingKeys,
        work: &RoundWork,
    ) -> Result<Outcome, CoordinatorError> {
        let (agg, encoding) = (&settings.aggregation, &settings.encoding);
        let everyone: BTreeSet<usize> = (0..self.members.len()).collect();
        // Tasks and the global model go out first.
        let mut stage_started = Instant::now();
        let mut undelivered = Vec::new();
        let query_json = work.query_json().unwrap_or_default();
        let encoder_json = work.state.encoder.json.to_string();
        for index in 0..self.members.len() {
            let m = &self.members[index];
            let mut task = spec.train_task(
                round,
                &m.id,
                m.task_id,
                global.len(),
                policy.timeout,
                Some(params.clone()),
                &self.crl_der,
            );
            task.kind = work.kind.name().into();
            task.query_json = query_json.clone();
            task.encoder_spec_json = encoder_json.clone();
            if let Some(w) = work.state.class_weight {
                task.class_weight = w;
            }
            let mut messages = vec![coordinator_message::Body::TrainTask(task)];
            messages
                .extend(chunk::split(m.task_id, global).map(coordinator_message::Body::ModelChunk));
            let outbox = m.outbox.clone();
            if !self.deliver(&outbox, messages).await {
                undelivered.push(index);
            }
        }
        for index in undelivered {
            self.drop_member(index, "disconnected before its task was delivered");
        }
        let stage_timeout = Duration::from_secs(agg.stage_timeout_s);
        // The longest vector of the round: an update, or a sum query's words.
        let words = match &work.query {
            Some(query) => query.vector_len() as u64,
            None => global.len() as u64 + 2,
        };
        let max_message = 8 * words + 4096 * self.members.len() as u64 + 65536;

        // Stage 0: advertisements (the deadline covers local training).
        self.watch.enter(live::stage::TRAINING).await;
        let mut server = server;
        let expected = self.live(&everyone);
        self.collect(
            stage::ADVERTISE_KEYS,
            expected,
            Instant::now() + policy.timeout,
            max_message,
            |from, bytes| server.handle_advertise(from, AdvertiseKeys::decode(bytes)?),
        )
        .await?;
        let (mut server, commitments) = self.timed(|| server.close())?;
        self.end_stage(
            stage::ADVERTISE_KEYS,
            "advertise keys (with local work)",
            &mut stage_started,
        )?;
        // Stage 1: every advertiser reveals its graph-seed nonce.
        self.watch.enter(live::stage::GRAPH_SEED).await;
        let encoded = commitments.encode();
        let sent = self
            .send_stage(
                stage::REVEAL_SEED,
                commitments
                    .commitments
                    .iter()
                    .map(|c| (c.participant, encoded.clone())),
            )
            .await;
        self.collect(
            stage::REVEAL_SEED,
            sent,
            Instant::now() + stage_timeout,
            max_message,
            |from, bytes| server.handle_reveal(from, SeedReveal::decode(bytes)?),
        )
        .await?;
        for p in server.unrevealed() {
            let index = p.0 as usize;
            let Some(member) = self.members.get(index) else {
                continue;
            };
            let mut withheld = settings.withheld();
            let w = withheld.entry(member.id.clone()).or_default();
            if w.round != round {
                *w = Withheld {
                    round,
                    ..Withheld::default()
                };
            }
            w.times += 1;
            w.benched |= !self.disconnected.contains(&index) || w.times >= 2;
            tracing::warn!(participant = %member.id, round, sits_out = w.benched, "did not reveal its graph-seed nonce: the attempt ends");
        }
        let (mut server, bundles) = self.timed(|| server.close())?;
        self.end_stage(stage::REVEAL_SEED, "graph seed", &mut stage_started)?;
        self.watch.enter(live::stage::SHARE_KEYS).await;
        let sent = self
            .send_stage(
                stage::SHARE_KEYS,
                bundles.iter().map(|b| (b.recipient, b.encode())),
            )
            .await;

        self.collect(
            stage::SHARE_KEYS,
            sent,
            Instant::now() + stage_timeout,
            max_message,
            |from, bytes| server.handle_share_keys(from, ShareKeys::decode(bytes)?),
        )
        .await?;
        let (mut server, bundles) = self.timed(|| server.close())?;
        self.end_stage(stage::SHARE_KEYS, "share keys", &mut stage_started)?;
        self.watch.enter(live::stage::MASKED_INPUT).await;
        let sent = self
            .send_stage(
                stage::MASKED_INPUT,
                bundles.iter().map(|b| (b.recipient, b.encode())),
            )
            .await;

        self.collect(
            stage::MASKED_INPUT,
            sent,
            Instant::now() + stage_timeout,
            max_message,
            |from, bytes| server.handle_masked_input(from, MaskedInput::decode(bytes)?),
        )
        .await?;
        let (mut server, list) = self.timed(|| server.close())?;
        self.end_stage(stage::MASKED_INPUT, "masked input", &mut stage_started)?;
        self.watch.enter(live::stage::CONSISTENCY).await;
        let encoded = list.encode();
        let sent = self
            .send_stage(
                stage::CONSISTENCY,
                list.survivors.iter().map(|&p| (p, encoded.clone())),
            )
            .await;

        self.collect(
            stage::CONSISTENCY,
            sent,
            Instant::now() + stage_timeout,
            max_message,
            |from, bytes| server.handle_consistency(from, ConsistencySignature::decode(bytes)?),
        )
        .await?;
        let (mut server, signed) = self.timed(|| server.close())?;
        self.end_stage(stage::CONSISTENCY, "consistency check", &mut stage_started)?;
        self.watch.enter(live::stage::UNMASK).await;
        let encoded = signed.encode();
        let signers: Vec<ParticipantId> = signed.signatures.iter().map(|s| s.signer).collect();
        let sent = self
            .send_stage(stage::UNMASK, signers.iter().map(|&p| (p, encoded.clone())))
            .await;

        self.collect(
            stage::UNMASK,
            sent,
            Instant::now() + stage_timeout,
            max_message,
            |from, bytes| server.handle_unmask(from, UnmaskShares::decode(bytes)?),
        )
        .await?;
        let aggregate = self.timed(|| server.close())?;
        self.stats.masks_expanded = aggregate.masks_expanded;
        let total = match work.query {
            // A sum round's words are its result; there is no update to decode.
            Some(_) => fedsoc_secagg::weighted::WeightedTotal::default(),
            None => self.timed(|| encoding.decode(&aggregate.sum, aggregate.survivors.len()))?,
        };
        self.end_stage(stage::UNMASK, "unmask", &mut stage_started)?;
        let survivors = aggregate
            .survivors
            .iter()
            .filter_map(|p| self.members.get(p.0 as usize).map(|m| m.id.clone()))
            .collect();
        Ok((
            survivors,
            WeightedSum {
                weighted_delta: total.weighted_delta,
                total_samples: total.total_weight,
                weighted_loss: total.weighted_loss,
            },
            aggregate.sum,
        ))
    }

    /// Runs coordinator work, counting its time towards the stage.
    fn timed<T>(&mut self, work: impl FnOnce() -> T) -> T {
        let started = std::time::Instant::now();
        let out = work();
        self.compute += started.elapsed();
        out
    }

    /// Closes a stage: its record in the trail (accepted messages, new
    /// dropouts) and its timing.
    fn end_stage(
        &mut self,
        stage_no: u32,
        name: &'static str,
        started: &mut Instant,
    ) -> Result<(), CoordinatorError> {
        let accepted = std::mem::take(&mut self.accepted);
        let entry = self.log.stage(stage_no, name, &accepted, &self.reasons)?;
        if stage_no == stage::MASKED_INPUT {
            self.log.receipt_entry = Some(entry);
        }
        let compute = std::mem::take(&mut self.compute);
        self.stats.stage(name, started.elapsed(), compute);
        *started = Instant::now();
        Ok(())
    }

    /// Sends messages to one participant, counting bytes; false if it is
    /// gone or stalled.
    async fn deliver(&mut self, outbox: &Outbox, bodies: Vec<coordinator_message::Body>) -> bool {
        for body in bodies {
            let message = CoordinatorMessage { body: Some(body) };
            let len = message.encoded_len() as u64;
            self.stats.bytes_down += len;
            self.watch.metrics().bytes_sent(len);
            let sent = tokio::time::timeout(SEND_TIMEOUT, outbox.send(Ok(message))).await;
            if !matches!(sent, Ok(Ok(()))) {
                return false;
            }
        }
        true
    }

    fn live(&self, of: &BTreeSet<usize>) -> BTreeSet<usize> {
        of.difference(&self.gone).copied().collect()
    }

    fn drop_member(&mut self, index: usize, reason: impl Into<String>) {
        self.gone.insert(index);
        if let Some(m) = self.members.get(index) {
            let reason = reason.into();
            tracing::warn!(participant = %m.id, %reason, "dropout");
            self.watch.dropped(&m.id, &reason);
            self.reasons.entry(m.id.clone()).or_insert(reason);
        }
    }

    /// Sends each recipient its message of `stage`; returns who got it.
    async fn send_stage(
        &mut self,
        stage_no: u32,
        messages: impl Iterator<Item = (ParticipantId, Vec<u8>)>,
    ) -> BTreeSet<usize> {
        let mut sent = BTreeSet::new();
        for (recipient, bytes) in messages {
            let index = recipient.0 as usize;
            if self.gone.contains(&index) {
                continue;
            }
            let Some(m) = self.members.get(index) else {
                continue;
            };
            let pieces = chunk::split_bytes(m.task_id, stage_no, &bytes)
                .map(coordinator_message::Body::Secagg)
                .collect();
            let outbox = m.outbox.clone();
            if self.deliver(&outbox, pieces).await {
                sent.insert(index);
            } else {
                self.drop_member(index, format!("disconnected before stage {stage_no}"));
            }
        }
        sent
    }

    /// Collects every expected member's message of `stage` until all have
    /// arrived or the deadline passes, feeding each to `handle`.
    async fn collect(
        &mut self,
        stage_no: u32,
        mut expected: BTreeSet<usize>,
        deadline: Instant,
        max_message: u64,
        mut handle: impl FnMut(ParticipantId, &[u8]) -> Result<(), SecAggError>,
    ) -> Result<(), CoordinatorError> {
        let mut partial: BTreeMap<usize, Assembler<u8>> = BTreeMap::new();
        let watch = self.watch.clone();
        while !expected.is_empty() {
            let next = tokio::select! {
                next = tokio::time::timeout_at(deadline, self.events.recv()) => next,
                _ = watch.aborted() => {
                    let stage = self.watch.snapshot().map(|l| l.stage).unwrap_or("round");
                    return Err(CoordinatorError::Stopped { round: self.log.round, stage: stage.into() });
                }
            };
            let (index, event) = match next {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(_) => {
                    for index in std::mem::take(&mut expected) {
                        self.drop_member(index, format!("missed the deadline of stage {stage_no}"));
                    }
                    break;
                }
            };
            let message = match event {
                Event::Gone => {
                    expected.remove(&index);
                    self.disconnected.insert(index);
                    self.drop_member(index, format!("disconnected at stage {stage_no}"));
                    continue;
                }
                Event::Message(m) => m,
            };
            let len = message.encoded_len() as u64;
            self.stats.bytes_up += len;
            self.watch.metrics().bytes_received(len);
            let Some(task_id) = self.members.get(index).map(|m| m.task_id) else {
                continue;
            };
            match message.body {
                Some(participant_message::Body::Secagg(piece))
                    if piece.task_id == task_id
                        && piece.stage == stage_no
                        && expected.contains(&index) =>
                {
                    let assembled = match partial.remove(&index) {
                        Some(asm) => Ok(asm),
                        None => Assembler::bytes(task_id, &piece, max_message),
                    }
                    .and_then(|mut asm| asm.push_bytes(&piece).map(|done| (asm, done)));
                    match assembled {
                        Ok((asm, None)) => {
                            partial.insert(index, asm);
                        }
                        Ok((_, Some(bytes))) => {
                            expected.remove(&index);
                            let handling = std::time::Instant::now();
                            let handled = handle(ParticipantId(index as u32), &bytes);
                            self.compute += handling.elapsed();
                            if handled.is_ok() {
                                self.accepted.push((index as u32, bytes));
                            }
                            if let Err(e) = handled {
                                self.drop_member(
                                    index,
                                    format!("stage {stage_no} message refused: {e}"),
                                );
                            }
                        }
                        Err(e) => {
                            expected.remove(&index);
                            self.drop_member(
                                index,
                                format!("stage {stage_no} message malformed: {e}"),
                            );
                        }
                    }
                }
                Some(participant_message::Body::TaskFailed(f)) if f.task_id == task_id => {
                    expected.remove(&index);
                    self.drop_member(index, format!("training failed: {}", f.reason));
                }
                _ => {
                    // Late or replayed messages of another stage or task are
                    // refused, never mixed into this one.
                    self.stats.ignored_messages += 1;
                    tracing::warn!(participant = ?self.members.get(index).map(|m| &m.id), stage = stage_no, "message not for this stage ignored");
                }
            }
        }
        Ok(())
    }
}
