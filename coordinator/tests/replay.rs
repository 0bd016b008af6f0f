//! The auditor's replay against logs written exactly per the trail schema:
//! genuine SecAgg+ rounds (client and server state machines, keys from
//! CA-issued certificates), then the same logs with one thing wrong each.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use fedsoc_audit::{AuditError, AuditLog, BlobId};
use fedsoc_coordinator::aggregate::{PlaintextSum, WeightedSum};
use fedsoc_coordinator::audit_view::{self, render_timeline};
use fedsoc_coordinator::model_sha256;
use fedsoc_coordinator::replay::{self, ReplayError, export_bundle, repair_log, verify_log};
use fedsoc_coordinator::round::Dropout;
use fedsoc_coordinator::strategy;
use fedsoc_coordinator::trail::SECAGG_PROTOCOL;
use fedsoc_coordinator::trail::{
    CoordinatorStarted, FederationCreated, MemberRecord, MessageRecord, PLAINTEXT_UPDATES_STAGE,
    RoundAborted, RoundAggregated, RoundMetrics, RoundModel, RoundOpened, SecAggRecord,
    StageClosed, Trail, encode_messages, encode_plain_update, f32_bytes, kind, sha256_hex,
};
use fedsoc_pki::{CertificateAuthority, Identity, Role, load_certificate_der, load_signing_key};
use fedsoc_proto::secagg_stage as stage;
use fedsoc_secagg::messages::{
    KeyBundle, MaskedInput, SeedCommitments, ShareBundle, SignedSurvivors, SurvivorList,
};
use fedsoc_secagg::weighted::WeightedEncoding;
use fedsoc_secagg::{
    Client, ClientShared, Message, ParticipantId, Quantizer, Ring, RoundConfig, Server,
    ServerCollectingMasked,
};
use rand::Rng;

const D: usize = 40;
const IDS: [&str; 3] = ["soc-ee", "soc-fi", "soc-lv"];
const ORIGIN: &str = "fedsoc.test/replay";
const MAX_SAMPLES: u64 = 1 << 20;

/// One thing wrong in the written log.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Tamper {
    None,
    /// round.model names a model that FedAvg on the aggregate does not give.
    WrongModel,
    /// The masked inputs of members 0 and 1 swap places in the stage blob.
    SwapMasked,
    /// Member 1's masked input is altered in the blob, its hash updated.
    ReplaceMasked,
    /// Only member 0's masked input is logged (hash list to match): too few
    /// for the stage the coordinator went on from.
    HideMasked,
    /// The round is recorded as aggregated with secure-aggregation
    /// protocol 2 (graph seeded by the round id), as logs from before were.
    Protocol2,
}

#[derive(Clone, Debug)]
struct LogPlan {
    rounds: u64,
    tamper: Tamper,
    tamper_round: u64,
    /// This round's first attempt aborts at stage 0.
    abort_first_attempt_of: Option<u64>,
    plaintext: Vec<u64>,
    restart_after: Option<u64>,
}

impl Default for LogPlan {
    fn default() -> Self {
        LogPlan {
            rounds: 2,
            tamper: Tamper::None,
            tamper_round: 0,
            abort_first_attempt_of: None,
            plaintext: Vec::new(),
            restart_after: None,
        }
    }
}

struct Fixture {
    tmp: tempfile::TempDir,
    /// The coordinator's storage folder (holds audit/).
    storage: PathBuf,
    audit: PathBuf,
    ca_pem: String,
    coordinator_key: SigningKey,
}

/// Writes a log per the trail schema: federation.created, then per round
/// opened, the stages, aggregated, model, metrics, and a checkpoint.
fn build(plan: &LogPlan) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let storage = tmp.path().join("storage");
    let pki = tmp.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let ca = CertificateAuthority::generate("replay-test").unwrap();
    ca.save(&pki).unwrap();
    ca.issue(
        &Identity::new(Role::Coordinator, "coordinator").unwrap(),
        &["localhost".into()],
    )
    .unwrap()
    .save(&pki, "coordinator")
    .unwrap();
    for id in IDS {
        ca.issue(&Identity::participant(id).unwrap(), &[])
            .unwrap()
            .save(&pki, id)
            .unwrap();
    }
    let coordinator_key = load_signing_key(&pki.join("coordinator.key")).unwrap();
    let keys: Vec<SigningKey> = IDS
        .iter()
        .map(|id| load_signing_key(&pki.join(format!("{id}.key"))).unwrap())
        .collect();

    let audit = storage.join("audit");
    let trail =
        Trail::new(AuditLog::open_or_create(&audit, ORIGIN, coordinator_key.clone()).unwrap());
    let mut rng = rand::rng();
    let mut global: Vec<f32> = (0..D).map(|_| rng.random_range(-0.5..0.5)).collect();
    let coordinator_pem = std::fs::read(pki.join("coordinator.pem")).unwrap();
    trail
        .append(
            kind::FEDERATION_CREATED,
            &FederationCreated {
                federation: "replay-test".into(),
                config_sha256: sha256_hex(b"federation = \"replay-test\"\n"),
                config_toml: "federation = \"replay-test\"\n".into(),
                participants: IDS.iter().map(|s| s.to_string()).collect(),
                data_scientists: vec!["analyst".into()],
                model_kind: "autoencoder".into(),
                model_input_dim: 8,
                model_hidden: vec![4],
                encoder_sha256: sha256_hex(b"encoder"),
                initial_model: trail.blob(&f32_bytes(&global)).unwrap(),
                initial_model_sha256: model_sha256(&global),
                ca_certificate: trail.blob(ca.cert_pem().as_bytes()).unwrap(),
                coordinator_certificate: trail.blob(&coordinator_pem).unwrap(),
            },
        )
        .unwrap();
    trail.checkpoint().unwrap();
    let members: Vec<MemberRecord> = IDS
        .iter()
        .map(|id| MemberRecord {
            id: id.to_string(),
            certificate: trail
                .blob(&load_certificate_der(&pki.join(format!("{id}.pem"))).unwrap())
                .unwrap(),
        })
        .collect();

    for round in 1..=plan.rounds {
        if plan.abort_first_attempt_of == Some(round) {
            aborted_attempt(&trail, round, &members, &keys, &global);
            trail.checkpoint().unwrap();
        }
        let tamper = if round == plan.tamper_round {
            plan.tamper
        } else {
            Tamper::None
        };
        global = if plan.plaintext.contains(&round) {
            plaintext_round(&trail, round, &members, &global)
        } else {
            secure_round(&trail, round, &members, &keys, &global, tamper)
        };
        trail.checkpoint().unwrap();
        if plan.restart_after == Some(round) {
            trail
                .append(
                    kind::COORDINATOR_STARTED,
                    &CoordinatorStarted {
                        config_sha256: sha256_hex(b"federation = \"replay-test\"\n"),
                        completed_round: round,
                        global_model_sha256: model_sha256(&global),
                        recovered: Vec::new(),
                        optimizer_state_sha256: None,
                    },
                )
                .unwrap();
        }
    }
    drop(trail);
    Fixture {
        tmp,
        storage,
        audit,
        ca_pem: ca.cert_pem().to_owned(),
        coordinator_key,
    }
}

fn encoding() -> WeightedEncoding {
    WeightedEncoding {
        quantizer: Quantizer {
            clip: 1.0,
            bits: 16,
            ring: Ring::U64,
        },
        max_samples: MAX_SAMPLES,
    }
}

/// Logs round.opened for a secure attempt; returns the round's config.
fn open_secure(
    trail: &Trail,
    round: u64,
    attempt: u32,
    members: &[MemberRecord],
    keys: &[SigningKey],
    global: &[f32],
    protocol: u32,
) -> RoundConfig {
    let round_id: [u8; 32] = rand::rng().random();
    trail
        .append(
            kind::ROUND_OPENED,
            &RoundOpened {
                round,
                attempt,
                members: members.to_vec(),
                secagg: Some(SecAggRecord {
                    protocol,
                    round_id: hex::encode(round_id),
                    neighbors: 2,
                    threshold: 2,
                    colluders: 0,
                    ring_bits: 64,
                    quant_bits: 16,
                    clip: 1.0,
                    max_samples: MAX_SAMPLES,
                }),
                num_params: global.len(),
                global_model: trail.blob(&f32_bytes(global)).unwrap(),
                global_model_sha256: model_sha256(global),
                epochs: 1,
                batch_size: 32,
                learning_rate: 0.01,
                kind: Default::default(),
                query: None,
                encoder_sha256: None,
            },
        )
        .unwrap();
    RoundConfig {
        round_id,
        participants: (0..keys.len() as u32).map(ParticipantId).collect(),
        verifying_keys: keys
            .iter()
            .enumerate()
            .map(|(i, k)| (ParticipantId(i as u32), k.verifying_key()))
            .collect(),
        neighbors: 2,
        threshold: 2,
        colluders: 0,
        ring: Ring::U64,
        vector_len: WeightedEncoding::vector_len(global.len()),
        context: encoding().context(),
    }
}

/// Logs one round.stage: `received` gives the hashes, `blob` the bytes.
#[allow(clippy::too_many_arguments)]
fn log_stage(
    trail: &Trail,
    round: u64,
    attempt: u32,
    stage: u32,
    name: &str,
    received: &[(u32, Vec<u8>)],
    blob: &[(u32, Vec<u8>)],
    dropped: Vec<Dropout>,
) {
    trail
        .append(
            kind::ROUND_STAGE,
            &StageClosed {
                round,
                attempt,
                stage,
                name: name.into(),
                messages: trail.blob(&encode_messages(blob)).unwrap(),
                received: received
                    .iter()
                    .map(|(i, bytes)| MessageRecord {
                        participant: IDS[*i as usize].into(),
                        index: *i,
                        sha256: sha256_hex(bytes),
                    })
                    .collect(),
                dropped,
            },
        )
        .unwrap();
}

fn u64_bytes(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Logs round.aggregated, round.model and round.metrics; returns the model.
#[allow(clippy::too_many_arguments)]
fn log_outcome(
    trail: &Trail,
    round: u64,
    attempt: u32,
    global: &[f32],
    sum_blob: BlobId,
    sum: &WeightedSum,
    survivors: Vec<String>,
    tamper: Tamper,
) -> Vec<f32> {
    trail
        .append(
            kind::ROUND_AGGREGATED,
            &RoundAggregated {
                round,
                attempt,
                survivors,
                sum: sum_blob,
                total_samples: sum.total_samples,
                weighted_loss: sum.weighted_loss,
            },
        )
        .unwrap();
    let mut model = strategy::fedavg(global, sum);
    if tamper == Tamper::WrongModel {
        model[3] += 0.001;
    }
    trail
        .append(
            kind::ROUND_MODEL,
            &RoundModel {
                round,
                attempt,
                strategy: "fedavg".into(),
                global_in_sha256: model_sha256(global),
                model: trail.blob(&f32_bytes(&model)).unwrap(),
                model_sha256: model_sha256(&model),
                mean_loss: strategy::mean_loss(sum),
                optimizer: None,
            },
        )
        .unwrap();
    trail
        .append(
            kind::ROUND_METRICS,
            &RoundMetrics {
                round,
                model_sha256: model_sha256(&model),
                metrics: serde_json::json!({ "roc_auc": 0.8 + round as f64 / 100.0, "pr_auc": 0.4 }),
            },
        )
        .unwrap();
    model
}

fn update(i: usize) -> (Vec<f32>, u64, f32) {
    let mut rng = rand::rng();
    let delta = (0..D).map(|_| rng.random_range(-0.05..0.05)).collect();
    (delta, 100 + 10 * i as u64, 0.3 + 0.1 * i as f32)
}

/// A whole SecAgg+ round, every message through its bytes, as the
/// coordinator would log it.
/// Stages 0 to 2 of a secure attempt, every member taking part, each
/// logged as the coordinator logs it: the server and clients ready for the
/// share bundles.
#[allow(clippy::type_complexity)]
fn through_share_keys(
    trail: &Trail,
    round: u64,
    attempt: u32,
    config: &RoundConfig,
    keys: &[SigningKey],
    stage_name: &str,
) -> (
    ServerCollectingMasked,
    Vec<ShareBundle>,
    Vec<Option<ClientShared>>,
) {
    let mut rng = rand::rng();
    let mut server = Server::new(config.clone()).unwrap();
    let mut advertised = Vec::new();
    let mut msgs = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let (c, m) = Client::start(config.clone(), ParticipantId(i as u32), key, &mut rng).unwrap();
        server
            .handle_advertise(
                ParticipantId(i as u32),
                Message::decode(&m.encode()).unwrap(),
            )
            .unwrap();
        advertised.push(c);
        msgs.push((i as u32, m.encode()));
    }
    log_stage(
        trail,
        round,
        attempt,
        stage::ADVERTISE_KEYS,
        stage_name,
        &msgs,
        &msgs,
        vec![],
    );
    let (mut server, commitments) = server.close().unwrap();
    msgs.clear();
    let mut revealed = Vec::new();
    for (i, c) in advertised.into_iter().enumerate() {
        let (c, m) = c
            .handle_commitments(SeedCommitments::decode(&commitments.encode()).unwrap())
            .unwrap();
        server
            .handle_reveal(
                ParticipantId(i as u32),
                Message::decode(&m.encode()).unwrap(),
            )
            .unwrap();
        revealed.push(Some(c));
        msgs.push((i as u32, m.encode()));
    }
    log_stage(
        trail,
        round,
        attempt,
        stage::REVEAL_SEED,
        "graph seed",
        &msgs,
        &msgs,
        vec![],
    );
    let (mut server, bundles) = server.close().unwrap();
    let mut shared: Vec<_> = (0..keys.len()).map(|_| None).collect();
    msgs.clear();
    for b in bundles {
        let i = b.recipient.0 as usize;
        let (c, m) = revealed[i]
            .take()
            .unwrap()
            .handle_key_bundle(KeyBundle::decode(&b.encode()).unwrap(), &mut rng)
            .unwrap();
        server
            .handle_share_keys(b.recipient, Message::decode(&m.encode()).unwrap())
            .unwrap();
        shared[i] = Some(c);
        msgs.push((i as u32, m.encode()));
    }
    log_stage(
        trail,
        round,
        attempt,
        stage::SHARE_KEYS,
        "share keys",
        &msgs,
        &msgs,
        vec![],
    );
    let (server, bundles) = server.close().unwrap();
    (server, bundles, shared)
}

fn secure_round(
    trail: &Trail,
    round: u64,
    members: &[MemberRecord],
    keys: &[SigningKey],
    global: &[f32],
    tamper: Tamper,
) -> Vec<f32> {
    let mut rng = rand::rng();
    let n = keys.len();
    let attempt = trail.next_attempt(round);
    let protocol = match tamper {
        Tamper::Protocol2 => 2,
        _ => SECAGG_PROTOCOL,
    };
    let config = open_secure(trail, round, attempt, members, keys, global, protocol);
    let encoding = encoding();

    let (mut server, bundles, mut shared) =
        through_share_keys(trail, round, attempt, &config, keys, "advertise keys");
    let mut msgs = Vec::new();

    let mut masked: Vec<_> = (0..n).map(|_| None).collect();
    msgs.clear();
    for b in bundles {
        let i = b.recipient.0 as usize;
        let (delta, samples, loss) = update(i);
        let input = encoding.encode(&delta, samples, loss, &mut rng).unwrap();
        let (c, m) = shared[i]
            .take()
            .unwrap()
            .handle_shares(ShareBundle::decode(&b.encode()).unwrap(), &input, &mut rng)
            .unwrap();
        server
            .handle_masked_input(b.recipient, Message::decode(&m.encode()).unwrap())
            .unwrap();
        masked[i] = Some(c);
        msgs.push((i as u32, m.encode()));
    }
    let mut blob = msgs.clone();
    let mut received = msgs.clone();
    match tamper {
        Tamper::SwapMasked => {
            let first = blob[0].1.clone();
            blob[0].1 = blob[1].1.clone();
            blob[1].1 = first;
        }
        Tamper::ReplaceMasked => {
            let mut m = MaskedInput::decode(&blob[1].1).unwrap();
            m.data[0] ^= 1;
            blob[1].1 = m.encode();
            received = blob.clone();
        }
        Tamper::HideMasked => {
            blob.truncate(1);
            received = blob.clone();
        }
        Tamper::None | Tamper::WrongModel | Tamper::Protocol2 => {}
    }
    log_stage(
        trail,
        round,
        attempt,
        stage::MASKED_INPUT,
        "masked input",
        &received,
        &blob,
        vec![],
    );
    let (mut server, list) = server.close().unwrap();

    let mut consistent = Vec::new();
    msgs.clear();
    for (i, c) in masked.into_iter().enumerate() {
        let (c, m) = c
            .unwrap()
            .handle_survivors(SurvivorList::decode(&list.encode()).unwrap())
            .unwrap();
        server
            .handle_consistency(
                ParticipantId(i as u32),
                Message::decode(&m.encode()).unwrap(),
            )
            .unwrap();
        consistent.push(c);
        msgs.push((i as u32, m.encode()));
    }
    log_stage(
        trail,
        round,
        attempt,
        stage::CONSISTENCY,
        "consistency check",
        &msgs,
        &msgs,
        vec![],
    );
    let (mut server, signed) = server.close().unwrap();

    msgs.clear();
    for (i, c) in consistent.into_iter().enumerate() {
        let (_, m) = c
            .handle_consistency(SignedSurvivors::decode(&signed.encode()).unwrap())
            .unwrap();
        server
            .handle_unmask(
                ParticipantId(i as u32),
                Message::decode(&m.encode()).unwrap(),
            )
            .unwrap();
        msgs.push((i as u32, m.encode()));
    }
    log_stage(
        trail,
        round,
        attempt,
        stage::UNMASK,
        "unmask",
        &msgs,
        &msgs,
        vec![],
    );
    let aggregate = server.close().unwrap();

    let total = encoding
        .decode(&aggregate.sum, aggregate.survivors.len())
        .unwrap();
    let sum = WeightedSum {
        weighted_delta: total.weighted_delta,
        total_samples: total.total_weight,
        weighted_loss: total.weighted_loss,
    };
    let sum_blob = trail.blob(&u64_bytes(&aggregate.sum)).unwrap();
    let survivors = aggregate
        .survivors
        .iter()
        .map(|p| IDS[p.0 as usize].to_string())
        .collect();
    log_outcome(
        trail, round, attempt, global, sum_blob, &sum, survivors, tamper,
    )
}

/// An attempt where only the first member sends its masked input: the
/// server cannot close that stage, so (as the coordinator does) the stage is
/// not logged and the attempt ends in round.aborted.
fn aborted_attempt(
    trail: &Trail,
    round: u64,
    members: &[MemberRecord],
    keys: &[SigningKey],
    global: &[f32],
) {
    let mut rng = rand::rng();
    let attempt = trail.next_attempt(round);
    let config = open_secure(
        trail,
        round,
        attempt,
        members,
        keys,
        global,
        SECAGG_PROTOCOL,
    );
    let (mut server, bundles, mut shared) = through_share_keys(
        trail,
        round,
        attempt,
        &config,
        keys,
        "advertise keys (with local work)",
    );
    let first = bundles
        .into_iter()
        .find(|b| b.recipient == ParticipantId(0))
        .unwrap();
    let (delta, samples, loss) = update(0);
    let input = encoding().encode(&delta, samples, loss, &mut rng).unwrap();
    let (_, m) = shared[0]
        .take()
        .unwrap()
        .handle_shares(first, &input, &mut rng)
        .unwrap();
    server
        .handle_masked_input(ParticipantId(0), Message::decode(&m.encode()).unwrap())
        .unwrap();
    let error = server
        .close()
        .err()
        .expect("one masked input cannot carry a round");
    trail
        .append(
            kind::ROUND_ABORTED,
            &RoundAborted {
                round,
                attempt,
                stage: "MaskedInput".into(),
                reason: error.to_string(),
                dropped: IDS[1..]
                    .iter()
                    .map(|id| Dropout {
                        participant: id.to_string(),
                        reason: "missed the deadline of stage 2".into(),
                    })
                    .collect(),
            },
        )
        .unwrap();
}

/// A round in the clear: the updates themselves are logged.
fn plaintext_round(
    trail: &Trail,
    round: u64,
    members: &[MemberRecord],
    global: &[f32],
) -> Vec<f32> {
    let attempt = trail.next_attempt(round);
    trail
        .append(
            kind::ROUND_OPENED,
            &RoundOpened {
                round,
                attempt,
                members: members.to_vec(),
                secagg: None,
                num_params: global.len(),
                global_model: trail.blob(&f32_bytes(global)).unwrap(),
                global_model_sha256: model_sha256(global),
                epochs: 1,
                batch_size: 32,
                learning_rate: 0.01,
                kind: Default::default(),
                query: None,
                encoder_sha256: None,
            },
        )
        .unwrap();
    let mut acc = PlaintextSum::new(global.len());
    let mut msgs = Vec::new();
    for i in [2usize, 0, 1] {
        let (delta, samples, loss) = update(i);
        acc.add(samples, loss, &delta).unwrap();
        msgs.push((i as u32, encode_plain_update(samples, loss, &delta)));
    }
    log_stage(
        trail,
        round,
        attempt,
        PLAINTEXT_UPDATES_STAGE,
        "updates",
        &msgs,
        &msgs,
        vec![],
    );
    let sum = acc.finish();
    let sum_blob = trail.blob(&f64_bytes(&sum.weighted_delta)).unwrap();
    let survivors = IDS.iter().map(|s| s.to_string()).collect();
    log_outcome(
        trail,
        round,
        attempt,
        global,
        sum_blob,
        &sum,
        survivors,
        Tamper::None,
    )
}

/// The error of a log that must not verify.
fn refuse(fixture: &Fixture) -> ReplayError {
    match verify_log(&fixture.storage, Some(&fixture.ca_pem)) {
        Ok(report) => panic!("a bad log verified: {report:?}"),
        Err(e) => e,
    }
}

/// Asserts an entry-level failure of `kind` in `round`, mentioning `words`.
fn assert_entry_error(e: &ReplayError, want_kind: &str, want_round: u64, words: &[&str]) {
    let text = e.to_string();
    match e {
        ReplayError::Entry { kind, round, .. } => {
            assert_eq!(
                (kind.as_str(), *round),
                (want_kind, Some(want_round)),
                "{text}"
            );
        }
        other => panic!("expected an entry error, got {other:?}"),
    }
    for w in words {
        assert!(text.contains(w), "{w:?} missing from: {text}");
    }
}

// Per round: opened, 6 stages, aggregated, model, metrics.
const ENTRIES_PER_SECURE_ROUND: u64 = 10;

#[test]
fn a_genuine_log_verifies_and_every_round_is_replayed() {
    let f = build(&LogPlan::default());
    let report = verify_log(&f.storage, Some(&f.ca_pem)).unwrap();
    assert!(report.ok);
    assert_eq!(report.rounds, 2);
    assert_eq!(report.rounds_replayed, 2);
    assert_eq!(report.secure_rounds, 2);
    assert_eq!(report.attempts, 2);
    assert_eq!(report.entries, 1 + 2 * ENTRIES_PER_SECURE_ROUND);
    assert_eq!(report.checkpoints, 3);
    assert_eq!(report.unsigned_entries, 0);
    assert!(report.ca_pinned);
    let log = AuditLog::open_read_only(&f.audit).unwrap();
    assert_eq!(report.root, hex::encode(log.root()));
    assert_eq!(report.dir, f.audit);
    let text = audit_view::render_report(&report);
    assert!(
        text.starts_with("verified: 2 rounds (2 replayed: unmasking and FedAvg reproduce every model hash), 21 entries, 3 checkpoints, root "),
        "{text}"
    );
    assert!(audit_view::tofu_warning(&report).is_none());

    // The log folder itself works too; without a CA the log's own is used,
    // and the report says so.
    let unpinned = verify_log(&f.audit, None).unwrap();
    assert!(!unpinned.ca_pinned);
    let warning = audit_view::tofu_warning(&unpinned).unwrap();
    assert!(
        warning.contains("trust on first use") && warning.contains("--ca"),
        "{warning}"
    );
    assert_eq!(unpinned.root, report.root);
}

#[test]
fn aborted_attempts_plaintext_rounds_and_restarts_replay() {
    let f = build(&LogPlan {
        rounds: 3,
        abort_first_attempt_of: Some(2),
        plaintext: vec![3],
        restart_after: Some(1),
        ..LogPlan::default()
    });
    let report = verify_log(&f.storage, Some(&f.ca_pem)).unwrap();
    assert_eq!(
        (
            report.rounds,
            report.rounds_replayed,
            report.secure_rounds,
            report.plaintext_rounds
        ),
        (3, 3, 2, 1)
    );
    assert_eq!((report.attempts, report.aborted), (4, 1));
    // The restart entry sits after the last checkpoint of round 1 only.
    assert_eq!(report.unsigned_entries, 0);

    let timeline = audit_view::timeline(&f.storage).unwrap();
    let outcomes: Vec<(u64, u32, &str, &str)> = timeline
        .attempts
        .iter()
        .map(|a| (a.round, a.attempt, a.mode.as_str(), a.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (1, 1, "secure", "completed"),
            (2, 1, "secure", "aborted"),
            (2, 2, "secure", "completed"),
            (3, 1, "plaintext", "completed"),
        ]
    );
    let text = render_timeline(&timeline, false);
    assert!(
        text.contains("soc-fi dropped: missed the deadline of stage 2"),
        "{text}"
    );
    assert!(
        text.contains("round 2 attempt 1 aborted at MaskedInput"),
        "{text}"
    );
    assert!(text.contains("roc_auc 0.8300"), "{text}");
    assert!(text.contains(" 3/3/3 "), "{text}");
    assert!(text.contains("coordinator (re)started at entry"), "{text}");
}

#[test]
fn a_model_that_does_not_follow_from_the_aggregate_is_named() {
    let f = build(&LogPlan {
        tamper: Tamper::WrongModel,
        tamper_round: 2,
        ..LogPlan::default()
    });
    let e = refuse(&f);
    assert_entry_error(
        &e,
        "round.model",
        2,
        &[
            &format!(
                "entry {} (round.model, round 2)",
                1 + ENTRIES_PER_SECURE_ROUND + 8
            ),
            "the model does not follow from the logged aggregate: replayed sha256",
        ],
    );
}

#[test]
fn a_swapped_masked_input_is_caught_by_its_hash() {
    let f = build(&LogPlan {
        tamper: Tamper::SwapMasked,
        tamper_round: 1,
        ..LogPlan::default()
    });
    let e = refuse(&f);
    // Entry 0 federation, 1 opened, 2..=6 stages 0..4: masked input is 4.
    assert_entry_error(
        &e,
        "round.stage",
        1,
        &[
            "entry 5 (round.stage, round 1)",
            "stage 3 (masked input)",
            "soc-ee",
            "is not the one received",
        ],
    );
}

#[test]
fn a_consistently_replaced_message_changes_the_replayed_sum() {
    let f = build(&LogPlan {
        tamper: Tamper::ReplaceMasked,
        tamper_round: 1,
        ..LogPlan::default()
    });
    let e = refuse(&f);
    assert_entry_error(
        &e,
        "round.aggregated",
        1,
        &[
            "entry 8 (round.aggregated, round 1)",
            "does not give the logged sum: word",
        ],
    );
}

#[test]
fn a_log_under_another_ca_is_refused() {
    let f = build(&LogPlan::default());
    let other = CertificateAuthority::generate("elsewhere").unwrap();
    let e = verify_log(&f.storage, Some(other.cert_pem())).unwrap_err();
    assert!(matches!(e, ReplayError::UntrustedCa { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("the log's CA is not the CA you trust"),
        "{e}"
    );
    let e = verify_log(&f.storage, Some("not a certificate")).unwrap_err();
    assert!(matches!(e, ReplayError::BadTrustedCa), "{e:?}");
}

/// Byte offset of record `index` in a framed log file.
fn record_offset(bytes: &[u8], index: usize) -> usize {
    let origin_len = u16::from_le_bytes([bytes[12], bytes[13]]) as usize;
    let mut offset = 14 + origin_len;
    for _ in 0..index {
        let len = u32::from_le_bytes(bytes[offset + 4..offset + 8].try_into().unwrap()) as usize;
        offset += 40 + len;
    }
    offset
}

#[test]
fn a_flipped_byte_in_the_entries_surfaces_the_audit_error_with_its_index() {
    let f = build(&LogPlan::default());
    let path = f.audit.join("entries.log");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = record_offset(&bytes, 5) + 40 + 12;
    bytes[at] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let e = refuse(&f);
    assert!(
        matches!(
            e,
            ReplayError::Audit(AuditError::CorruptRecord { index: 5, .. })
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("corrupt at record 5"), "{e}");
}

#[test]
fn a_torn_tail_is_reported_and_repair_restores_the_prefix() {
    let f = build(&LogPlan::default());
    // A coordinator crashing mid-append leaves half an entry after the
    // last checkpoint.
    let mut log = AuditLog::open_or_create(&f.audit, ORIGIN, f.coordinator_key.clone()).unwrap();
    log.append_json(
        kind::COORDINATOR_STARTED,
        &CoordinatorStarted {
            config_sha256: "x".into(),
            completed_round: 2,
            global_model_sha256: "y".into(),
            recovered: Vec::new(),
            optimizer_state_sha256: None,
        },
    )
    .unwrap();
    drop(log);
    let path = f.audit.join("entries.log");
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 7)
        .unwrap();

    let e = refuse(&f);
    assert!(
        matches!(
            e,
            ReplayError::Audit(AuditError::TornTail { index: 21, .. })
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("fedsoc audit repair"), "{e}");

    let (dir, repaired) = repair_log(&f.storage).unwrap();
    assert_eq!(dir, f.audit);
    assert_eq!(repaired.len(), 1);
    assert_eq!(repaired[0].kept_records, 21);
    let text = audit_view::render_repair(&dir, &repaired);
    assert!(text.contains("kept 21 intact records"), "{text}");
    let report = verify_log(&f.storage, Some(&f.ca_pem)).unwrap();
    assert_eq!((report.entries, report.rounds), (21, 2));
}

#[test]
fn an_exported_bundle_verifies_on_its_own() {
    let f = build(&LogPlan::default());
    let bundle = f.tmp.path().join("bundle");
    let export = export_bundle(&f.storage, &bundle).unwrap();
    assert_eq!(export.verified.rounds_replayed, 2);
    let readme = std::fs::read_to_string(bundle.join("README.txt")).unwrap();
    assert!(
        readme.contains("fedsoc audit verify <this folder> --ca ca.pem"),
        "{readme}"
    );
    let ca = std::fs::read_to_string(bundle.join("ca.pem")).unwrap();
    assert_eq!(
        fedsoc_pki::first_certificate_der(&ca),
        fedsoc_pki::first_certificate_der(&f.ca_pem)
    );
    let report = verify_log(&bundle, Some(&f.ca_pem)).unwrap();
    assert_eq!((report.rounds, report.entries), (2, 21));
    assert!(audit_view::render_export(&export).contains("the bundle verifies"));

    let again = export_bundle(&f.storage, &bundle).unwrap_err();
    assert!(again.to_string().contains("is not empty"), "{again}");

    // The bundle needs its blobs: without one, it no longer verifies.
    let shard = std::fs::read_dir(bundle.join("blobs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let blob = std::fs::read_dir(&shard)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(&blob).unwrap();
    let e = verify_log(&bundle, Some(&f.ca_pem)).unwrap_err();
    assert!(e.to_string().contains("is missing"), "{e}");
}

#[test]
fn an_entry_is_proved_against_the_signed_checkpoint() {
    let f = build(&LogPlan::default());
    let proof = audit_view::prove_entry(&f.storage, 4, None).unwrap();
    let log = AuditLog::open_read_only(&f.audit).unwrap();
    assert_eq!(proof.tree_size, 21);
    assert_eq!(proof.kind, "round.stage");
    assert_eq!(proof.leaf_hash, hex::encode(log.tree().leaf(4).unwrap()));
    assert_eq!(proof.root, hex::encode(log.root()));
    assert_eq!(
        proof.proof,
        log.inclusion_proof(4, 21)
            .unwrap()
            .iter()
            .map(hex::encode)
            .collect::<Vec<_>>()
    );
    assert!(
        proof
            .checkpoint_note
            .as_deref()
            .unwrap()
            .contains("size 21\n")
    );
    let text = audit_view::render_proof(&proof);
    assert!(
        text.contains("verifies against the checkpoint of size 21"),
        "{text}"
    );

    // The first round's checkpoint (size 11) proves it too; size 12 has no
    // signed checkpoint, and entry 21 does not exist.
    let earlier = audit_view::prove_entry(&f.storage, 4, Some(11)).unwrap();
    assert!(earlier.checkpoint_note.is_some());
    let unsigned = audit_view::prove_entry(&f.storage, 4, Some(12)).unwrap();
    assert!(unsigned.checkpoint_note.is_none());
    assert!(audit_view::prove_entry(&f.storage, 21, None).is_err());
}

#[test]
fn show_lists_every_stage_and_message() {
    let f = build(&LogPlan::default());
    let timeline = audit_view::timeline(&f.storage).unwrap();
    assert_eq!(timeline.attempts.len(), 2);
    for a in &timeline.attempts {
        let counts: Vec<usize> = a.stages.iter().map(|s| s.received.len()).collect();
        assert_eq!(counts, [3, 3, 3, 3, 3, 3]);
        assert_eq!(a.total_samples, Some(100 + 110 + 120));
    }
    let table = render_timeline(&timeline, false);
    assert!(table.contains("3/3/3/3/3/3"), "{table}");
    let detail = render_timeline(&timeline.clone().only_round(2), true);
    assert!(
        detail.contains("round 2 (train), attempt 1: completed"),
        "{detail}"
    );
    assert!(!detail.contains("round 1, attempt 1"), "{detail}");
    let second_round = &timeline.attempts[1];
    for m in &second_round.stages[3].received {
        assert!(detail.contains(&m.sha256), "{detail}");
    }
    let json = serde_json::to_value(&timeline).unwrap();
    assert_eq!(json["attempts"][1]["metrics"]["roc_auc"], 0.8 + 2.0 / 100.0);
    let _ = replay::resolve_log_dir(Path::new(&f.storage)).unwrap();
}

#[test]
fn a_log_of_an_older_secure_aggregation_protocol_is_refused_by_its_version() {
    let f = build(&LogPlan {
        tamper: Tamper::Protocol2,
        tamper_round: 1,
        ..LogPlan::default()
    });
    let e = refuse(&f);
    assert_entry_error(
        &e,
        "round.opened",
        1,
        &[
            "secure-aggregation protocol 2 (a neighbour graph seeded by the round id)",
            &format!("this fedsoc replays protocol {SECAGG_PROTOCOL} only"),
            "verify the log with the fedsoc release that wrote it",
        ],
    );
}

#[test]
fn a_stage_logged_with_too_few_messages_to_close_is_named() {
    let f = build(&LogPlan {
        tamper: Tamper::HideMasked,
        tamper_round: 1,
        ..LogPlan::default()
    });
    let e = refuse(&f);
    assert_entry_error(
        &e,
        "round.stage",
        1,
        &[
            "entry 5 (round.stage, round 1)",
            "the logged messages cannot close the stage, yet the coordinator went on",
        ],
    );
}

/// Appends a `checkpoint.cosigned` entry by the holder of `stem`'s
/// certificate and key (in the fixture's pki/), over `checkpoint`.
fn log_cosignature(f: &Fixture, stem: &str, name: &str, checkpoint: &fedsoc_audit::Checkpoint) {
    let pki = f.tmp.path().join("pki");
    let key = load_signing_key(&pki.join(format!("{stem}.key"))).unwrap();
    let pem = std::fs::read(pki.join(format!("{stem}.pem"))).unwrap();
    let mut log = AuditLog::open_or_create(&f.audit, ORIGIN, f.coordinator_key.clone()).unwrap();
    let record = fedsoc_audit::CosignatureRecord {
        checkpoint: checkpoint.clone(),
        certificate: log.blobs().put(&pem).unwrap(),
        cosignature: checkpoint.cosign(name, &key, 1_800_000_000).unwrap(),
    };
    log.append_json(kind::CHECKPOINT_COSIGNED, &record).unwrap();
}

fn latest_checkpoint(f: &Fixture) -> fedsoc_audit::Checkpoint {
    AuditLog::open_read_only(&f.audit)
        .unwrap()
        .latest_checkpoint()
        .unwrap()
        .checkpoint
        .clone()
}

#[test]
fn cosignatures_are_counted_per_checkpoint_by_certified_participant() {
    let f = build(&LogPlan::default());
    let latest = latest_checkpoint(&f);
    // Before any cosignature: --min-cosigners 1 fails, naming 0.
    let report = verify_log(&f.storage, Some(&f.ca_pem)).unwrap();
    let err = report.require_cosigners(1).unwrap_err().to_string();
    assert!(
        err.contains("is cosigned by 0 distinct participant(s)"),
        "{err}"
    );

    log_cosignature(&f, IDS[0], IDS[0], &latest);
    log_cosignature(&f, IDS[1], IDS[1], &latest);
    // The same witness twice counts once.
    log_cosignature(&f, IDS[1], IDS[1], &latest);
    let report = verify_log(&f.storage, Some(&f.ca_pem)).unwrap();
    assert_eq!(report.cosigned.len(), 3);
    assert_eq!(report.cosigned[2].cosigners, vec![IDS[0], IDS[1]]);
    assert!(report.cosigned[0].cosigners.is_empty());
    report.require_cosigners(2).unwrap();
    let err = report.require_cosigners(3).unwrap_err();
    assert!(
        matches!(
            err,
            ReplayError::TooFewCosigners {
                need: 3,
                found: 2,
                ..
            }
        ),
        "{err}"
    );
    let text = render_timeline(&audit_view::timeline(&f.storage).unwrap(), false);
    assert!(
        text.contains(&format!("2 cosigner(s): {}, {}", IDS[0], IDS[1])),
        "{text}"
    );
}

#[test]
fn a_logged_cosignature_that_does_not_hold_up_fails_verification() {
    // By a coordinator certificate: only participants witness.
    let f = build(&LogPlan::default());
    log_cosignature(&f, "coordinator", "coordinator", &latest_checkpoint(&f));
    let err = refuse(&f);
    assert!(
        err.to_string()
            .contains("is a coordinator certificate (coordinator), not a participant certificate"),
        "{err}"
    );

    // Over a checkpoint the coordinator never signed (a split view).
    let f = build(&LogPlan::default());
    let mut other = latest_checkpoint(&f);
    other.root[0] ^= 1;
    log_cosignature(&f, IDS[0], IDS[0], &other);
    let err = refuse(&f).to_string();
    assert!(
        err.contains("not among the log's signed checkpoints"),
        "{err}"
    );

    // Under another participant's name.
    let f = build(&LogPlan::default());
    log_cosignature(&f, IDS[0], IDS[1], &latest_checkpoint(&f));
    let err = refuse(&f).to_string();
    assert!(
        err.contains(&format!(
            "the cosignature names witness {:?} but its certificate is for {:?}",
            IDS[1], IDS[0]
        )),
        "{err}"
    );
}
