//! A coordinator that proposes secure-aggregation parameters below what a
//! member accepts, against real participant agents over gRPC and mutual
//! TLS. The coordinator picks n, k, t and c; each member holds the round to
//! its own floor from participant.toml (`[secure_aggregation]`), so a
//! coordinator cannot talk it into a round where the split-survivor-list
//! attack works (see `secagg/tests/malicious_server.rs` for the attack on
//! the state machines).

use std::time::Duration;

use fedsoc_experiments::local::{LocalFederation, LocalFederationSpec, RandomUpdatePlan};

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

// ---------------------------------------------------------------------
// Finding 5: forks after a participant restart, receipts for every
// signed message, and cosigned checkpoints.
// ---------------------------------------------------------------------

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use fedsoc_coordinator::trail::Tamper;
use fedsoc_participant::ParticipantError;
use fedsoc_participant::audit::{CheckpointKeeper, Expected};
use fedsoc_proto::secagg_stage;
use fedsoc_proto::v1::AuditCheckpoint;

const PATIENCE: Duration = Duration::from_secs(60);

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
    assert!(
        federation
            .wait_participant_exit(&ids[1], Duration::from_secs(2))
            .await
            .is_none(),
        "{} should have accepted the forked log",
        ids[1]
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while federation.coordinator.record_cosignatures().unwrap() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no cosignature");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
        message.contains("no receipt for the entry of stage 3, where we sent a message (sha256"),
        "{message}"
    );
    let message = refusal(&mut federation, &altered).await;
    assert!(
        message.contains(&format!(
            "records a different stage-3 message for us: sha256 {forged} logged, we sent sha256"
        )),
        "{message}"
    );
    assert!(
        federation
            .wait_participant_exit(&ids[2], Duration::from_secs(2))
            .await
            .is_none(),
        "{} got honest receipts and goes on",
        ids[2]
    );

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
    let mut recorded = 0;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while recorded < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{recorded} cosignatures"
        );
        recorded += federation.coordinator.record_cosignatures().unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
