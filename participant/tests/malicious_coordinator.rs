//! A coordinator that differences two sums through a retry, against the
//! participant's real secure-aggregation task and release ledger (sans-IO:
//! the coordinator here is the real SecAgg+ server, driven by hand).
//!
//! The attack: complete a round with members S, call it aborted, rerun it
//! from the same base model with S minus the victim, subtract. Before, a
//! participant took any new task for a round it had contributed to, so the
//! difference was the victim's update. Now every member records, before it
//! releases its unmasking shares, the base model and the survivors it
//! signed; it refuses a later task from that base unless the task's members
//! are exactly those survivors, and then signs no other survivor list. A
//! retry before anyone unmasked stays free.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use fedsoc_durable::Disk;
use fedsoc_participant::config::SecureFloor;
use fedsoc_participant::releases::{Release, ReleaseError, ReleaseLedger, base_model_sha256};
use fedsoc_participant::secure::{Contribution, SecureTask, encoding};
use fedsoc_pki::{CertificateAuthority, Identity, MemberVerifier, first_certificate_der};
use fedsoc_proto::secagg_stage as stage;
use fedsoc_proto::v1::{Member, SecureAggregation};
use fedsoc_secagg::messages::{
    AdvertiseKeys, ConsistencySignature, MaskedInput, SeedReveal, ShareKeys, UnmaskShares,
};
use fedsoc_secagg::{Message, ParticipantId, Server};
use fedsoc_secagg::{Ring, RoundConfig, config::threshold_floor, weighted::WeightedEncoding};

const BASE: [f32; 4] = [0.1, -0.2, 0.3, 0.0];
const IDS: [&str; 4] = ["soc-a", "soc-b", "soc-c", "soc-d"];
const VICTIM: &str = "soc-d";

/// One SOC: its certificate, key, update and release ledger.
struct Soc {
    id: String,
    cert_der: Vec<u8>,
    key: SigningKey,
    update: Vec<f32>,
    ledger: ReleaseLedger,
}

struct Federation {
    verifier: MemberVerifier,
    socs: Vec<Soc>,
    _state: tempfile::TempDir,
}

fn federation() -> Federation {
    let ca = CertificateAuthority::generate("retries").unwrap();
    let state = tempfile::tempdir().unwrap();
    let socs = IDS
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let issued = ca.issue(&Identity::participant(*id).unwrap(), &[]).unwrap();
            Soc {
                id: id.to_string(),
                cert_der: first_certificate_der(&issued.cert_pem).unwrap(),
                key: SigningKey::from_pkcs8_pem(&issued.key_pem).unwrap(),
                update: (0..BASE.len())
                    .map(|j| 0.01 * (i as f32 + 1.0) * (j as f32 - 1.5))
                    .collect(),
                ledger: ReleaseLedger::open(&state.path().join(id), Disk::real()).unwrap(),
            }
        })
        .collect();
    Federation {
        verifier: MemberVerifier::new(ca.cert_pem()).unwrap(),
        socs,
        _state: state,
    }
}

/// How far the malicious coordinator takes an attempt.
#[derive(Clone, Copy, PartialEq)]
enum Until {
    /// Through unmasking: the coordinator gets the sum.
    Sum,
    /// Stops after the consistency signatures: nobody unmasked.
    Consistency,
}

/// What an attempt gave the coordinator.
struct Outcome {
    /// Members that refused the task, with the reason.
    refused: BTreeMap<String, String>,
    /// The decoded weighted sum, when the attempt unmasked.
    sum: Option<Vec<f64>>,
    /// Members that left at the consistency stage, with the reason.
    left: BTreeMap<String, String>,
}

/// One secure attempt from `BASE` with `members`; survivors are the members
/// whose masked input the coordinator keeps (`drop_masked` is withheld).
fn attempt(
    fed: &mut Federation,
    round_id: u8,
    members: &[&str],
    drop_masked: Option<&str>,
    until: Until,
) -> Outcome {
    let base = base_model_sha256(&BASE);
    let roster: Vec<&Soc> = members
        .iter()
        .map(|m| fed.socs.iter().find(|s| s.id == *m).unwrap())
        .collect();
    let n = roster.len();
    let k = n - 1;
    let params = SecureAggregation {
        round_id: vec![round_id; 32],
        members: roster
            .iter()
            .map(|s| Member {
                participant_id: s.id.clone(),
                certificate_der: s.cert_der.clone(),
            })
            .collect(),
        neighbors: k as u32,
        threshold: threshold_floor(k, 0) as u32,
        colluders: 0,
        ring_bits: 64,
        quant_bits: 16,
        clip: 1.0,
        max_samples: 1000,
    };
    let config = RoundConfig {
        round_id: [round_id; 32],
        participants: (0..n as u32).map(ParticipantId).collect(),
        verifying_keys: roster
            .iter()
            .enumerate()
            .map(|(i, s)| (ParticipantId(i as u32), s.key.verifying_key()))
            .collect(),
        neighbors: k,
        threshold: threshold_floor(k, 0),
        colluders: 0,
        ring: Ring::U64,
        vector_len: WeightedEncoding::vector_len(BASE.len()),
        context: encoding(&params).unwrap().context(),
    };
    let mut outcome = Outcome {
        refused: BTreeMap::new(),
        sum: None,
        left: BTreeMap::new(),
    };
    let ids: Vec<String> = members.iter().map(|m| m.to_string()).collect();
    let mut tasks: BTreeMap<u32, SecureTask> = BTreeMap::new();
    let mut server = Server::new(config).unwrap();
    for (i, soc) in roster.iter().enumerate() {
        let pinned = match soc.ledger.check(1, &base, &ids) {
            Ok(pinned) => pinned,
            Err(e) => {
                outcome.refused.insert(soc.id.clone(), e.to_string());
                continue;
            }
        };
        let (task, advert) = SecureTask::start(
            &params,
            &soc.id,
            &fed.verifier,
            &fedsoc_pki::RevocationList::empty(),
            &soc.key,
            Contribution::Update {
                delta: &soc.update,
                samples: 100,
                loss: 0.5,
            },
            &SecureFloor::default(),
            pinned,
        )
        .unwrap();
        let from = ParticipantId(i as u32);
        server
            .handle_advertise(from, AdvertiseKeys::decode(&advert).unwrap())
            .unwrap();
        tasks.insert(i as u32, task);
    }
    let Ok((mut server, commitments)) = server.close() else {
        return outcome;
    };
    for (&i, task) in tasks.iter_mut() {
        let reply = task
            .handle(stage::REVEAL_SEED, &commitments.encode())
            .unwrap();
        server
            .handle_reveal(ParticipantId(i), SeedReveal::decode(&reply).unwrap())
            .unwrap();
    }
    let Ok((mut server, bundles)) = server.close() else {
        return outcome;
    };
    for b in bundles {
        let task = tasks.get_mut(&b.recipient.0).unwrap();
        let reply = task.handle(stage::SHARE_KEYS, &b.encode()).unwrap();
        server
            .handle_share_keys(b.recipient, ShareKeys::decode(&reply).unwrap())
            .unwrap();
    }
    let (mut server, bundles) = server.close().unwrap();
    for b in bundles {
        let task = tasks.get_mut(&b.recipient.0).unwrap();
        let reply = task.handle(stage::MASKED_INPUT, &b.encode()).unwrap();
        if drop_masked != Some(members[b.recipient.0 as usize]) {
            server
                .handle_masked_input(b.recipient, MaskedInput::decode(&reply).unwrap())
                .unwrap();
        }
    }
    let (mut server, list) = server.close().unwrap();
    for p in &list.survivors {
        let task = tasks.get_mut(&p.0).unwrap();
        match task.handle(stage::CONSISTENCY, &list.encode()) {
            Ok(reply) => server
                .handle_consistency(*p, ConsistencySignature::decode(&reply).unwrap())
                .unwrap(),
            Err(e) => {
                outcome
                    .left
                    .insert(members[p.0 as usize].to_string(), e.to_string());
            }
        }
    }
    if until == Until::Consistency {
        return outcome;
    }
    let Ok((mut server, signed)) = server.close() else {
        return outcome;
    };
    for s in &signed.signatures {
        let i = s.signer.0;
        let task = tasks.get_mut(&i).unwrap();
        let reply = task.handle(stage::UNMASK, &signed.encode()).unwrap();
        // What the agent does before the shares leave.
        let soc = fed
            .socs
            .iter_mut()
            .find(|x| x.id == members[i as usize])
            .unwrap();
        let release = Release {
            round: 1,
            round_id: task.round_id_hex(),
            survivors: task.signed_survivors().unwrap(),
        };
        soc.ledger.record(&base, release).unwrap();
        server
            .handle_unmask(s.signer, UnmaskShares::decode(&reply).unwrap())
            .unwrap();
    }
    let aggregate = server.close().unwrap();
    let total = encoding(&params)
        .unwrap()
        .decode(&aggregate.sum, aggregate.survivors.len())
        .unwrap();
    outcome.sum = Some(total.weighted_delta);
    outcome
}

/// The victim's weighted update, as the difference of two sums gives it.
fn difference(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

fn victim_weighted(fed: &Federation) -> Vec<f64> {
    let soc = fed.socs.iter().find(|s| s.id == VICTIM).unwrap();
    soc.update.iter().map(|v| 100.0 * f64::from(*v)).collect()
}

fn close_to(a: &[f64], b: &[f64]) -> bool {
    // Three members' stochastic rounding at 16 bits, weight 100 each.
    a.iter().zip(b).all(|(x, y)| (x - y).abs() < 0.05)
}

#[test]
fn a_retry_without_the_victim_after_unmasking_is_refused_by_every_member() {
    // Before: members kept no record, so the rerun without the victim
    // completed and the difference of the two sums was its update.
    let mut forgetful = federation();
    let all = attempt(&mut forgetful, 1, &IDS, None, Until::Sum);
    for soc in forgetful.socs.iter_mut() {
        soc.ledger = ReleaseLedger::default();
    }
    let without = attempt(&mut forgetful, 2, &IDS[..3], None, Until::Sum);
    let leaked = difference(all.sum.as_ref().unwrap(), without.sum.as_ref().unwrap());
    assert!(
        close_to(&leaked, &victim_weighted(&forgetful)),
        "{leaked:?}"
    );

    // Now: every member of the rerun refuses it, naming both member sets.
    let mut fed = federation();
    let all = attempt(&mut fed, 1, &IDS, None, Until::Sum);
    assert!(all.sum.is_some());
    let rerun = attempt(&mut fed, 2, &IDS[..3], None, Until::Sum);
    assert!(rerun.sum.is_none());
    assert_eq!(rerun.refused.len(), 3, "{:?}", rerun.refused);
    for reason in rerun.refused.values() {
        assert!(
            reason.contains("over [soc-a, soc-b, soc-c, soc-d]")
                && reason.contains("this task's members are [soc-a, soc-b, soc-c]"),
            "{reason}"
        );
    }
    // The refusal survives a restart: the ledger is on disk.
    let dir = fed._state.path().join("soc-a");
    let reopened = ReleaseLedger::open(&dir, Disk::real()).unwrap();
    let ids: Vec<String> = IDS[..3].iter().map(|s| s.to_string()).collect();
    assert!(matches!(
        reopened.check(1, &base_model_sha256(&BASE), &ids),
        Err(ReleaseError::AlreadyReleased { .. })
    ));
}

#[test]
fn a_retry_before_unmasking_is_allowed() {
    let mut fed = federation();
    let stopped = attempt(&mut fed, 1, &IDS, None, Until::Consistency);
    assert!(stopped.sum.is_none() && stopped.left.is_empty());
    let rerun = attempt(&mut fed, 2, &IDS[..3], None, Until::Sum);
    assert!(rerun.refused.is_empty(), "{:?}", rerun.refused);
    assert!(rerun.sum.is_some());
}

#[test]
fn after_unmasking_only_the_same_survivors_are_signed_again() {
    let mut fed = federation();
    attempt(&mut fed, 1, &IDS, None, Until::Sum);
    // Same members (a coordinator restarted after a crash): the rerun is
    // taken, but a survivor list without the victim is signed by nobody.
    let split = attempt(&mut fed, 2, &IDS, Some(VICTIM), Until::Sum);
    assert!(split.refused.is_empty(), "{:?}", split.refused);
    assert!(split.sum.is_none());
    assert_eq!(split.left.len(), 3, "{:?}", split.left);
    for reason in split.left.values() {
        assert!(
            reason.contains("refusing to sign survivors [soc-a, soc-b, soc-c]"),
            "{reason}"
        );
    }
    // The very same survivors: the rerun completes (it can only give the
    // same sum, up to fresh rounding).
    let again = attempt(&mut fed, 3, &IDS, None, Until::Sum);
    assert!(again.sum.is_some(), "{:?}", again.left);
}
