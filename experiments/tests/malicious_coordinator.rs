//! A coordinator that proposes secure-aggregation parameters below what a
//! member accepts, against real participant agents over gRPC and mutual
//! TLS. The coordinator picks n, k, t and c; each member holds the round to
//! its own floor from participant.toml (`[secure_aggregation]`), so a
//! coordinator cannot talk it into a round where the split-survivor-list
//! attack works (see `secagg/tests/malicious_server.rs` for the attack on
//! the state machines).
//!
//! Finding 6, revocation gaps (the `revocation_gaps_*` tests): the
//! coordinator refuses to start on a missing, stale or older CRL than it
//! has enforced; participants verify the CRL that comes with the Welcome
//! and every task themselves, keep their own CRL-number floor, and refuse a
//! rolled-back list, a stale one, a revoked coordinator and a revoked
//! member in a secure round's roster.
//!
//! Finding 5, forks after a restart: a participant keeps the checkpoint it
//! accepted across restarts and refuses a log that does not extend it;
//! receipts cover every entry carrying its signed messages; members
//! cosign the checkpoints they verified, and `audit verify
//! --min-cosigners N` counts them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fedsoc_coordinator::trail::Tamper;
use fedsoc_durable::Disk;
use fedsoc_experiments::local::{
    LocalFederation, LocalFederationSpec, RandomUpdatePlan, StoppedFederation,
};
use fedsoc_participant::audit::{CheckpointKeeper, Expected};
use fedsoc_participant::{Agent, ParticipantError, RandomUpdates};
use fedsoc_pki::{PkiDir, RevocationList, RevocationReason};
use fedsoc_proto::secagg_stage;
use fedsoc_proto::v1::AuditCheckpoint;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_refuse_rounds_below_their_own_floor() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = LocalFederationSpec::new(dir.path(), 5);
    spec.rows = 100;
    spec.hidden = vec![8, 4];
    spec.min_participants = 5;
    spec.round_timeout = Duration::from_secs(10);
    spec.random_updates = Some(RandomUpdatePlan {
        samples: 50,
        scale: 0.1,
        vanishing: 0,
    });
    let mut federation = LocalFederation::start(&spec).await.unwrap();
    let ids = federation.participant_ids();
    // Member 0 wants at least six members; member 1 wants one colluder
    // tolerated. The coordinator proposes five members and c = 0.
    federation
        .participant_config_mut(0)
        .secure_aggregation
        .min_members = 6;
    federation
        .participant_config_mut(1)
        .secure_aggregation
        .colluders = 1;
    for (index, id) in ids.iter().enumerate().take(2) {
        assert!(
            federation
                .kill_and_wait_gone(id, Duration::from_secs(60))
                .await
        );
        federation.start_participant(index).unwrap();
    }
    assert!(
        federation
            .coordinator
            .wait_for_participants(5, Duration::from_secs(60))
            .await
    );
    let report = federation.coordinator.run_next_round().await.unwrap();
    let mut included = report.included.clone();
    included.sort();
    let mut want = ids[2..].to_vec();
    want.sort();
    assert_eq!(included, want, "dropped: {:?}", report.dropped);
    let reason = |id: &str| {
        report
            .dropped
            .iter()
            .find(|d| d.participant == id)
            .map(|d| d.reason.clone())
            .unwrap_or_default()
    };
    let r0 = reason(&ids[0]);
    assert!(
        r0.contains("5 members, fewer than the 6") && r0.contains("min_members"),
        "{r0}"
    );
    let r1 = reason(&ids[1]);
    assert!(
        r1.contains("tolerates 0 colluding members, fewer than the 1") && r1.contains("colluders"),
        "{r1}"
    );
    federation.shutdown().await;
}

/// A small federation of four random-update participants; rounds need three.
fn revocation_spec(dir: &std::path::Path) -> LocalFederationSpec {
    let mut spec = LocalFederationSpec::new(dir, 4);
    spec.rows = 100;
    spec.hidden = vec![8, 4];
    spec.min_participants = 3;
    spec.round_timeout = Duration::from_secs(10);
    spec.stage_timeout_s = 10;
    spec.random_updates = Some(RandomUpdatePlan {
        samples: 50,
        scale: 0.1,
        vanishing: 0,
    });
    spec
}

/// Re-signs `list` with the next number, current for one second, as the
/// CRL in force, and waits until that list itself says it is stale (the
/// signer refuses a nextUpdate in the past).
async fn write_stale_crl(pki: &PkiDir, list: RevocationList) {
    let ca = pki.load_ca().unwrap();
    let (_, stale) = list
        .extend_and_sign_with(
            &ca,
            &[],
            RevocationReason::Unspecified,
            time::Duration::seconds(1),
            0,
        )
        .unwrap();
    std::fs::write(pki.crl_path(), &stale).unwrap();
    // As every reader sees it: parsed back from the signed bytes.
    let ca_pem = std::fs::read_to_string(pki.ca_cert_path()).unwrap();
    let written = RevocationList::parse_verified(stale.as_bytes(), &ca_pem).unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while written
        .check_current(time::OffsetDateTime::now_utc(), "test")
        .is_ok()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the CRL stays current"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The error a coordinator start on the stopped federation's folder gives.
async fn refused_start(stopped: StoppedFederation) -> (StoppedFederation, String) {
    match stopped.start_coordinator(Disk::real()).await {
        Ok(_) => panic!("the coordinator started"),
        Err((stopped, e)) => (stopped, e.to_string()),
    }
}

/// A random-update agent for participant `index`, its running agent
/// killed first so the two do not take each other's session.
fn lone_agent(federation: &mut LocalFederation, index: usize) -> Agent {
    let id = federation.participant_ids()[index].clone();
    federation.kill(&id);
    Agent::with_random_updates(
        federation.participant_config(index).clone(),
        RandomUpdates {
            samples: 50,
            scale: 0.1,
            vanish_after_sharing_keys: false,
        },
    )
    .unwrap()
}

/// Before: the CRL-number floor lived only in memory and a missing
/// `crl.pem` meant "nothing revoked", so restoring an older signed CRL (or
/// deleting it) before a restart un-revoked everyone, and a list past its
/// nextUpdate was used as if current. Now the coordinator records the
/// highest CRL number it enforced in its storage folder and refuses to
/// start on an older list, a missing one or a stale one, naming the file,
/// the numbers and the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_gaps_coordinator_refuses_to_start_on_a_missing_stale_or_older_crl() {
    let dir = tempfile::tempdir().unwrap();
    let federation = LocalFederation::start(&revocation_spec(dir.path()))
        .await
        .unwrap();
    let ids = federation.participant_ids();
    let pki = PkiDir::new(dir.path().join("pki"));
    let crl_1 = std::fs::read(pki.crl_path()).unwrap();
    let revoked = pki
        .revoke(&ids[3], RevocationReason::KeyCompromise)
        .unwrap();
    assert_eq!(revoked.crl_number, 2);
    // The running coordinator picks up CRL #2 at the next round and
    // records its number.
    let report = federation.coordinator.run_next_round().await.unwrap();
    assert!(!report.included.contains(&ids[3]), "{:?}", report.included);
    let floor_file = dir.path().join(fedsoc_pki::floor::CRL_FLOOR_FILE);
    let record = std::fs::read_to_string(&floor_file).unwrap();
    assert!(record.contains("\"highest_crl_number\": 2"), "{record}");
    let crl_2 = std::fs::read(pki.crl_path()).unwrap();
    let stopped = federation.stop_coordinator().await;

    // An older signed list restored over the current one.
    std::fs::write(pki.crl_path(), &crl_1).unwrap();
    let (stopped, err) = refused_start(stopped).await;
    assert!(
        err.contains(
            "crl.pem is CRL #1, older than CRL #2 which this coordinator has already enforced"
        ),
        "{err}"
    );
    assert!(
        err.contains("crl-floor.json") && err.contains("--at-least 3"),
        "{err}"
    );

    // The list deleted.
    std::fs::remove_file(pki.crl_path()).unwrap();
    let (stopped, err) = refused_start(stopped).await;
    assert!(
        err.contains("crl.pem does not exist") && err.contains("fedsoc pki init"),
        "{err}"
    );

    // A list past its nextUpdate, even a newer one.
    let ca_pem = std::fs::read_to_string(pki.ca_cert_path()).unwrap();
    let newer = RevocationList::parse_verified(&crl_2, &ca_pem).unwrap();
    write_stale_crl(&pki, newer).await;
    let (stopped, err) = refused_start(stopped).await;
    assert!(
        err.contains("(CRL #3) was current until") && err.contains("stale now"),
        "{err}"
    );
    assert!(err.contains("fedsoc pki crl --dir"), "{err}");

    // The fix the messages name: the newest list, renewed.
    std::fs::write(pki.crl_path(), &crl_2).unwrap();
    assert_eq!(pki.sign_crl(30, 0).unwrap().number, 3);
    let federation = match stopped.start_coordinator(Disk::real()).await {
        Ok(federation) => federation,
        Err((_, e)) => panic!("{e}"),
    };
    assert!(
        federation
            .coordinator
            .wait_for_participants(3, Duration::from_secs(60))
            .await
    );
    let report = federation.coordinator.run_next_round().await.unwrap();
    assert!(!report.included.contains(&ids[3]), "still revoked");
    federation.shutdown().await;
}

/// Before: participants checked the coordinator's key and the roster
/// against the CA only. A coordinator restarted on an older CRL (its own
/// record wiped: it controls its storage) let a revoked participant back
/// in, and a coordinator whose own key was revoked kept signing
/// checkpoints participants accepted. Now each participant verifies the
/// CRL that comes with the Welcome and every task, keeps its own CRL-number
/// floor in its state folder, and refuses an older list, a revoked
/// coordinator and a stale list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_gaps_participants_refuse_a_rolled_back_crl_and_a_revoked_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let federation = LocalFederation::start(&revocation_spec(dir.path()))
        .await
        .unwrap();
    let ids = federation.participant_ids();
    let pki = PkiDir::new(dir.path().join("pki"));
    let crl_1 = std::fs::read(pki.crl_path()).unwrap();
    pki.revoke(&ids[3], RevocationReason::KeyCompromise)
        .unwrap();
    let crl_2 = std::fs::read(pki.crl_path()).unwrap();
    // Round 1's tasks carry CRL #2: each member records it.
    let report = federation.coordinator.run_next_round().await.unwrap();
    assert_eq!(report.included.len(), 3, "{:?}", report.dropped);
    let state_dir = federation.participant_config(0).state_dir.clone().unwrap();
    let record =
        std::fs::read_to_string(state_dir.join(fedsoc_pki::floor::CRL_FLOOR_FILE)).unwrap();
    assert!(record.contains("\"highest_crl_number\": 2"), "{record}");

    // The attack: CRL #1 put back and the coordinator's record removed.
    let stopped = federation.stop_coordinator().await;
    std::fs::write(pki.crl_path(), &crl_1).unwrap();
    std::fs::remove_file(dir.path().join(fedsoc_pki::floor::CRL_FLOOR_FILE)).unwrap();
    let mut federation = match stopped.start_coordinator(Disk::real()).await {
        Ok(federation) => federation,
        Err((_, e)) => panic!("{e}"),
    };
    // The coordinator is fooled: the revoked participant is let back in.
    federation.start_participant(3).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !federation
        .coordinator
        .shared()
        .registry
        .connected()
        .contains(&ids[3])
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} not back",
            ids[3]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A participant is not: it has seen CRL #2.
    let agent = lone_agent(&mut federation, 0);
    let err = agent.run_session().await.unwrap_err();
    assert!(
        matches!(err, ParticipantError::UntrustedCoordinator(_)),
        "{err}"
    );
    assert!(err.is_permanent());
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "the CRL the coordinator sent is CRL #1, older than CRL #2 which participant {} \
             has already enforced",
            ids[0]
        )),
        "{text}"
    );
    assert!(text.contains("crl-floor.json"), "{text}");

    // The true list back, and the coordinator's own certificate revoked.
    std::fs::write(pki.crl_path(), &crl_2).unwrap();
    let outcome = pki
        .revoke("coordinator", RevocationReason::KeyCompromise)
        .unwrap();
    assert_eq!(outcome.crl_number, 3);
    let err = federation.coordinator.run_next_round().await.unwrap_err();
    assert!(
        matches!(
            err,
            fedsoc_coordinator::CoordinatorError::OwnCertificateRevoked(_)
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("fedsoc pki issue --role coordinator --force"),
        "{err}"
    );
    let agent = lone_agent(&mut federation, 1);
    let err = agent.run_session().await.unwrap_err();
    assert!(
        matches!(err, ParticipantError::UntrustedCoordinator(_)),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("the coordinator's own certificate is revoked on CRL #3")
            && text.contains("coordinator coordinator")
            && text.contains("key-compromise"),
        "{text}"
    );

    // A list that runs out while the coordinator runs.
    write_stale_crl(&pki, pki.revocation_list().unwrap()).await;
    let err = federation.coordinator.run_next_round().await.unwrap_err();
    assert!(
        matches!(
            err,
            fedsoc_coordinator::CoordinatorError::Crl(fedsoc_pki::PkiError::StaleCrl {
                number: 4,
                ..
            })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("fedsoc pki crl --dir"), "{err}");
    let agent = lone_agent(&mut federation, 2);
    let err = agent.run_session().await.unwrap_err();
    assert!(matches!(err, ParticipantError::Session(_)), "{err}");
    assert!(!err.is_permanent(), "a renewal fixes it: keep retrying");
    let text = err.to_string();
    assert!(
        text.contains("the CRL the coordinator sent (CRL #4)")
            && text.contains("stale now")
            && text.contains("fedsoc pki crl --dir"),
        "{text}"
    );
    federation.shutdown().await;
}

/// Before: a member checked every certificate in a secure round's roster
/// against the CA only, so a coordinator could seat a revoked member.
/// Now the roster is checked against the CRL that came with the task too,
/// and the member refuses the round, saying who is revoked.
#[test]
fn revocation_gaps_members_refuse_a_revoked_member_in_the_roster() {
    use fedsoc_participant::config::SecureFloor;
    use fedsoc_participant::secure::SecureTask;
    use fedsoc_proto::v1::{Member, SecureAggregation};

    let dir = tempfile::tempdir().unwrap();
    fedsoc_pki::CertificateAuthority::generate("roster")
        .unwrap()
        .save(dir.path())
        .unwrap();
    let pki = PkiDir::new(dir.path());
    pki.sign_crl(30, 0).unwrap();
    let ids = ["soc-a", "soc-b", "soc-c", "soc-d"];
    let members: Vec<Member> = ids
        .iter()
        .map(|id| {
            let issued = pki
                .issue(
                    &fedsoc_pki::Identity::participant(*id).unwrap(),
                    &[],
                    30,
                    false,
                )
                .unwrap();
            Member {
                participant_id: id.to_string(),
                certificate_der: fedsoc_pki::load_certificate_der(&issued.cert).unwrap(),
            }
        })
        .collect();
    pki.revoke("soc-d", RevocationReason::KeyCompromise)
        .unwrap();
    let ca_pem = std::fs::read_to_string(pki.ca_cert_path()).unwrap();
    let crl =
        RevocationList::parse_verified(&std::fs::read(pki.crl_path()).unwrap(), &ca_pem).unwrap();
    let (neighbors, _) = fedsoc_secagg::recommended_neighbours(ids.len(), 0);
    let params = SecureAggregation {
        round_id: vec![7; 32],
        members,
        neighbors: neighbors as u32,
        threshold: fedsoc_secagg::config::threshold_floor(neighbors, 0) as u32,
        colluders: 0,
        ring_bits: 64,
        quant_bits: 16,
        clip: 1.0,
        max_samples: 1000,
    };
    let verifier = fedsoc_pki::MemberVerifier::new(&ca_pem).unwrap();
    let key = fedsoc_pki::load_signing_key(&dir.path().join("soc-a.key")).unwrap();
    let delta = vec![0.01f32; 10];
    let start = |revoked: &RevocationList| {
        SecureTask::start(
            &params,
            "soc-a",
            &verifier,
            revoked,
            &key,
            fedsoc_participant::secure::Contribution::Update {
                delta: &delta,
                samples: 50,
                loss: 0.5,
            },
            &SecureFloor::default(),
            None,
        )
        .map(drop)
    };
    // Checked against the CA only, the revoked member is seated.
    start(&RevocationList::empty()).unwrap();
    let err = start(&crl).unwrap_err();
    assert!(matches!(err, ParticipantError::Protocol(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("member \"soc-d\" of the secure round is revoked on CRL #2")
            && text.contains("key-compromise")
            && text.contains("may be compromised"),
        "{text}"
    );
}

// ---------------------------------------------------------------------
// Finding 5: forks after a participant restart, receipts for every
// signed message, and cosigned checkpoints.
// ---------------------------------------------------------------------

const PATIENCE: Duration = Duration::from_secs(60);

/// Fails unless participant `id` is still taking part two seconds on.
async fn still_running(federation: &mut LocalFederation, id: &str, why: &str) {
    let exit = federation
        .wait_participant_exit(id, Duration::from_secs(2))
        .await;
    assert!(exit.is_none(), "{id} {why}, but stopped: {exit:?}");
}

fn quick_spec(dir: &Path, n: usize) -> LocalFederationSpec {
    let mut spec = LocalFederationSpec::new(dir, n);
    spec.rows = 100;
    spec.hidden = vec![8, 4];
    spec.min_participants = n;
    spec.round_timeout = Duration::from_secs(20);
    spec.stage_timeout_s = 10;
    spec.random_updates = Some(RandomUpdatePlan {
        samples: 50,
        scale: 0.1,
        vanishing: 0,
    });
    spec
}

/// Waits until participant `id` keeps (durably) a checkpoint of `size`.
async fn wait_held(dir: &Path, id: &str, size: u64) {
    let state = dir.join("state").join(id);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let held = fedsoc_participant::audit::read_held(&state)
            .ok()
            .flatten()
            .map(|c| c.checkpoint.tree_size);
        if held == Some(size) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} holds {held:?}, expected {size}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The audit error a participant stopped with.
async fn refusal(federation: &mut LocalFederation, id: &str) -> String {
    match federation.wait_participant_exit(id, PATIENCE).await {
        Some(Err(ParticipantError::Audit(message))) => message,
        other => panic!("{id} should have stopped on an audit violation, got {other:?}"),
    }
}

/// The stage number of a `round.stage` entry, from its encoding.
fn stage_of(entry: &[u8]) -> Option<u32> {
    let entry = fedsoc_audit::Entry::decode(entry).ok()?;
    let body: serde_json::Value = entry.body_json().ok()?;
    (entry.kind == "round.stage").then(|| body["stage"].as_u64().map(|s| s as u32))?
}

/// A coordinator restarted on a rewritten log (same keys, fresh history)
/// is refused by a participant that was restarted too: it kept its
/// checkpoint in its state folder, says so in Hello, and the new log does
/// not extend it. Before (checkpoints in memory only, played here by a
/// participant without a state folder), a restart forgot the checkpoint,
/// Hello said size 0, and the forked log was accepted and even cosigned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_a_participant_refuses_a_log_that_does_not_extend_its_kept_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut federation = LocalFederation::start(&quick_spec(dir.path(), 3))
        .await
        .unwrap();
    let ids = federation.participant_ids();
    federation.coordinator.run_next_round().await.unwrap();
    let size = federation.coordinator.audit_size();
    wait_held(dir.path(), &ids[0], size).await;

    // Both restart; participant 1 as participants did before: no state.
    federation.participant_config_mut(1).state_dir = None;
    for id in &ids[..2] {
        assert!(federation.kill_and_wait_gone(id, PATIENCE).await);
    }
    // The coordinator comes back with another history: a fresh log, in
    // another folder, under the same keys and certificates.
    let stopped = federation.stop_coordinator().await;
    let toml_path = dir.path().join("coordinator.toml");
    let toml = std::fs::read_to_string(&toml_path).unwrap();
    std::fs::write(&toml_path, toml.replace("dir = \".\"", "dir = \"fork\"")).unwrap();
    let mut federation = match stopped
        .start_coordinator(fedsoc_durable::Disk::real())
        .await
    {
        Ok(f) => f,
        Err((_, e)) => panic!("the forked coordinator does not start: {e}"),
    };
    federation.start_participant(0).unwrap();
    federation.start_participant(1).unwrap();
    assert!(
        federation
            .coordinator
            .wait_for_participants(3, PATIENCE)
            .await
    );
    federation.coordinator.run_next_round().await.unwrap();

    let message = refusal(&mut federation, &ids[0]).await;
    assert!(
        message.contains("does not extend the checkpoint we hold")
            && message.contains(&format!("size {size}")),
        "{message}"
    );
    // The participant without a state folder took the fork, and cosigned it.
    still_running(
        &mut federation,
        &ids[1],
        "should have accepted the forked log",
    )
    .await;
    assert!(
        federation.record_cosignatures(1, PATIENCE).await >= 1,
        "no cosignature"
    );
    federation.shutdown().await;
}

/// A coordinator that leaves out the receipt for a participant's
/// consistency signature (its signature over the survivor list), or logs
/// a different one for it, is refused by that participant. Before, only
/// the masked-input entry was receipted: the same messages pass a check of
/// that receipt alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_missing_or_not_matching_our_consistency_signature_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut federation = LocalFederation::start(&quick_spec(dir.path(), 3))
        .await
        .unwrap();
    let ids = federation.participant_ids();
    let (missing, altered) = (ids[0].clone(), ids[1].clone());
    let forged = "00".repeat(32);
    let sent: Arc<Mutex<HashMap<String, AuditCheckpoint>>> = Arc::default();
    {
        let (missing, altered, forged, sent) = (
            missing.clone(),
            altered.clone(),
            forged.clone(),
            sent.clone(),
        );
        federation.coordinator.tamper_audit(Tamper {
            stage: Some(Box::new(move |stage, records| {
                if stage == secagg_stage::CONSISTENCY {
                    for r in records.iter_mut().filter(|r| r.participant == altered) {
                        r.sha256 = forged.clone();
                    }
                }
            })),
            checkpoint: Some(Box::new(move |id, message| {
                if id == missing {
                    message
                        .receipts
                        .retain(|r| stage_of(&r.entry) != Some(secagg_stage::CONSISTENCY));
                }
                sent.lock().unwrap().insert(id.to_owned(), message.clone());
            })),
        });
    }
    let report = federation.coordinator.run_next_round().await.unwrap();
    assert_eq!(report.included.len(), 3, "dropped: {:?}", report.dropped);

    let message = refusal(&mut federation, &missing).await;
    assert!(
        message.contains(&format!(
            "no receipt for the entry of stage {}, where we sent a message (sha256",
            secagg_stage::CONSISTENCY
        )),
        "{message}"
    );
    let message = refusal(&mut federation, &altered).await;
    assert!(
        message.contains(&format!(
            "records a different stage-{} message for us: sha256 {forged} logged, we sent sha256",
            secagg_stage::CONSISTENCY
        )),
        "{message}"
    );
    still_running(&mut federation, &ids[2], "got honest receipts and goes on").await;

    // Before: a participant checked the masked-input receipt only.
    let ca = std::fs::read_to_string(dir.path().join("pki/ca.pem")).unwrap();
    let der = fedsoc_pki::load_certificate_der(&dir.path().join("pki/coordinator.pem")).unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(
        &fedsoc_pki::verify_member(&ca, &der).unwrap().ed25519_public,
    )
    .unwrap();
    let sent = sent.lock().unwrap().clone();
    for id in [&missing, &altered] {
        let message = &sent[id.as_str()];
        let masked = message
            .receipts
            .iter()
            .find(|r| stage_of(&r.entry) == Some(secagg_stage::MASKED_INPUT))
            .map(|r| {
                let body: serde_json::Value = fedsoc_audit::Entry::decode(&r.entry)
                    .unwrap()
                    .body_json()
                    .unwrap();
                body["received"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|m| m["participant"] == id.as_str())
                    .unwrap()["sha256"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .unwrap();
        let mut keeper = CheckpointKeeper::default();
        keeper.set_key(key);
        let old_check = Expected {
            participant: id.clone(),
            round: Some(1),
            included: true,
            sent: BTreeMap::from([(secagg_stage::MASKED_INPUT, Some(masked))]),
        };
        keeper
            .accept(message, Some(&old_check))
            .unwrap_or_else(|e| panic!("the masked-input receipt alone passed before: {e}"));
    }
    federation.shutdown().await;
}

/// Every participant cosigns the checkpoint it verified; the coordinator
/// logs the cosignatures, and `audit verify --min-cosigners N` passes with
/// the N members that cosigned the latest checkpoint and fails with N + 1,
/// naming how many it found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_min_cosigners_passes_with_the_cosigners_and_fails_with_one_more() {
    let dir = tempfile::tempdir().unwrap();
    let federation = LocalFederation::start(&quick_spec(dir.path(), 3))
        .await
        .unwrap();
    let ids = federation.participant_ids();
    federation.coordinator.run_next_round().await.unwrap();
    let size = federation.coordinator.audit_size();
    let recorded = federation.record_cosignatures(3, PATIENCE).await;
    assert!(recorded >= 3, "{recorded} cosignatures");
    federation.shutdown().await;

    let ca = std::fs::read_to_string(dir.path().join("pki/ca.pem")).unwrap();
    let report = fedsoc_coordinator::replay::verify_log(&dir.path().join("audit"), Some(&ca))
        .unwrap_or_else(|e| panic!("audit verify: {e}"));
    let latest = report.cosigned.last().unwrap();
    assert_eq!(latest.tree_size, size);
    let mut want = ids.clone();
    want.sort();
    assert_eq!(latest.cosigners, want);
    report.require_cosigners(3).unwrap();
    let err = report.require_cosigners(4).unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "the latest checkpoint (size {size}) is cosigned by 3 distinct participant(s)"
        )) && err.contains("fewer than the 4 required"),
        "{err}"
    );
    // `audit show` lists them.
    let timeline = fedsoc_coordinator::audit_view::timeline(dir.path()).unwrap();
    assert_eq!(timeline.cosignatures.len(), 3);
    assert!(timeline.cosignatures.iter().all(|c| c.tree_size == size));
}
