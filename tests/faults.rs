//! Fault injection with real processes: a coordinator and four
//! participants, each a `fedsoc` binary on loopback over mutual TLS. The
//! coordinator is killed with SIGKILL at each protocol stage, a
//! participant is killed at each stage, one participant stalls past a
//! deadline. After each fault every queued round completes, the audit log
//! verifies (replaying every unmasking), and every aggregate equals, bit
//! for bit, the sum of the survivors' own copies of their quantised inputs.
//!
//! Cases run one at a time (each runs five processes).

mod support;

use std::sync::Mutex;
use std::time::Duration;

use fedsoc_proto::fault::stage;
use support::cluster::{Cluster, ClusterSpec};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const ROUNDS: u32 = 3;
/// The round every fault hits.
const FAULT_ROUND: u64 = 2;
const PATIENCE: Duration = Duration::from_secs(180);

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// After a fault: all rounds done, the log verifies, aggregates exact.
fn assert_recovered(cluster: &Cluster) {
    cluster.wait_completed(ROUNDS as u64, PATIENCE);
    let report = cluster.audit_verify();
    assert_eq!(report["rounds"].as_u64(), Some(ROUNDS as u64), "{report}");
    let checked = cluster.assert_aggregates_exact();
    assert_eq!(
        checked, ROUNDS as usize,
        "one aggregate per completed round"
    );
}

fn coordinator_killed_at(stage_name: &str) {
    let _serial = serial();
    let mut cluster = Cluster::new(&ClusterSpec::default());
    let fault = format!("{FAULT_ROUND}:{stage_name}");
    cluster.start_coordinator(Some(&fault));
    cluster.start_all_participants();
    cluster.queue_rounds(ROUNDS);
    cluster.wait_log("coordinator", "fault point reached", PATIENCE);
    cluster.kill_coordinator();

    cluster.start_coordinator(None);
    assert_recovered(&cluster);
    let attempts = cluster.attempts();
    if stage_name == stage::MODEL_UPDATE {
        // The log already held round 2's model: the store is rolled
        // forward and the round is not run again.
        cluster.wait_log("coordinator", "store rolled forward", PATIENCE);
        assert_eq!(attempts[&FAULT_ROUND], 1, "{attempts:?}");
    } else {
        // The interrupted attempt is retried with fresh keys.
        assert!(attempts[&FAULT_ROUND] >= 2, "{attempts:?}");
        let ids: Vec<String> = cluster
            .aggregated_rounds()
            .iter()
            .map(|r| r.round_id.clone())
            .collect();
        let unique: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "a fresh round id per attempt");
    }
}

fn participant_killed_at(stage_name: &str) {
    let _serial = serial();
    let mut cluster = Cluster::new(&ClusterSpec::default());
    cluster.start_coordinator(None);
    let victim = cluster.ids[0].clone();
    let fault = format!("{FAULT_ROUND}:{stage_name}");
    cluster.start_participant(&victim, Some(&fault));
    for id in cluster.ids.clone().iter().skip(1) {
        cluster.start_participant(id, None);
    }
    cluster.queue_rounds(FAULT_ROUND as u32);
    cluster.wait_log(&victim, "fault point reached", PATIENCE);
    cluster.kill_participant(&victim);
    // Restarted at once: a dropout for this round only.
    cluster.start_participant(&victim, None);
    cluster.wait_completed(FAULT_ROUND, PATIENCE);
    // The next round is queued once it is back (a round starts with
    // whoever is connected, and its reconnect may take a moment).
    cluster.wait_connected(&victim, PATIENCE);
    cluster.queue_rounds(ROUNDS - FAULT_ROUND as u32);
    assert_recovered(&cluster);

    let rounds = cluster.aggregated_rounds();
    let in_round = |round: u64| {
        rounds
            .iter()
            .find(|r| r.round == round)
            .map(|r| r.survivors.contains(&victim))
            .unwrap()
    };
    // Killed before its masked input left, it cannot be in the sum; killed
    // later, its input was in and the others' shares unmask it.
    let sent_masked_input = [stage::CONSISTENCY, stage::UNMASK].contains(&stage_name);
    assert_eq!(
        in_round(FAULT_ROUND),
        sent_masked_input,
        "{victim} in round {FAULT_ROUND} after being killed at {stage_name}"
    );
    assert!(in_round(3), "{victim} rejoins for the next round");
}

#[test]
fn coordinator_killed_at_training() {
    coordinator_killed_at(stage::TRAINING);
}

#[test]
fn coordinator_killed_at_share_keys() {
    coordinator_killed_at(stage::SHARE_KEYS);
}

#[test]
fn coordinator_killed_at_masked_input() {
    coordinator_killed_at(stage::MASKED_INPUT);
}

#[test]
fn coordinator_killed_at_consistency() {
    coordinator_killed_at(stage::CONSISTENCY);
}

#[test]
fn coordinator_killed_at_unmask() {
    coordinator_killed_at(stage::UNMASK);
}

#[test]
fn coordinator_killed_at_model_update() {
    coordinator_killed_at(stage::MODEL_UPDATE);
}

#[test]
fn participant_killed_at_training() {
    participant_killed_at(stage::TRAINING);
}

#[test]
fn participant_killed_at_share_keys() {
    participant_killed_at(stage::SHARE_KEYS);
}

#[test]
fn participant_killed_at_masked_input() {
    participant_killed_at(stage::MASKED_INPUT);
}

#[test]
fn participant_killed_at_consistency() {
    participant_killed_at(stage::CONSISTENCY);
}

#[test]
fn participant_killed_at_unmask() {
    participant_killed_at(stage::UNMASK);
}

#[test]
fn participant_stalled_past_the_deadline_is_a_dropout_for_that_round_only() {
    let _serial = serial();
    let spec = ClusterSpec {
        stage_timeout_s: 3,
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::new(&spec);
    cluster.start_coordinator(None);
    let victim = cluster.ids[0].clone();
    // Stalls 8 s on receiving round 2's key bundle; the stage allows 3 s.
    let fault = format!("{FAULT_ROUND}:{}:8", stage::SHARE_KEYS);
    cluster.start_participant(&victim, Some(&fault));
    for id in cluster.ids.clone().iter().skip(1) {
        cluster.start_participant(id, None);
    }
    cluster.queue_rounds(ROUNDS);
    assert_recovered(&cluster);
    let rounds = cluster.aggregated_rounds();
    let round2 = rounds.iter().find(|r| r.round == FAULT_ROUND).unwrap();
    assert!(!round2.survivors.contains(&victim), "{round2:?}");
    let round3 = rounds.iter().find(|r| r.round == 3).unwrap();
    assert!(round3.survivors.contains(&victim), "{round3:?}");
    // The coordinator said why.
    let log = std::fs::read_to_string(cluster.log("coordinator")).unwrap();
    let missed = format!(
        "missed the deadline of stage {}",
        fedsoc_proto::secagg_stage::SHARE_KEYS
    );
    assert!(log.contains(&missed), "deadline dropout not logged");
}

#[test]
fn stop_halts_the_queue_and_abort_ends_the_running_round() {
    let _serial = serial();
    let mut cluster = Cluster::new(&ClusterSpec::default());
    // The coordinator stalls 30 s at round 1's share-keys stage: a round
    // that is surely running when the data scientist stops it.
    cluster.start_coordinator(Some("1:share-keys:30"));
    cluster.start_all_participants();
    cluster.queue_rounds(5);
    cluster.wait_log("coordinator", "fault point reached", PATIENCE);
    let out = cluster.round_command("analyst", &["stop", "--abort"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("took 5 rounds off") && said.contains("aborted"),
        "{said}"
    );
    cluster.wait_log("coordinator", "round stopped by a data scientist", PATIENCE);
    let status = cluster.status().unwrap();
    assert_eq!(status["queued_rounds"], 0, "{status}");
    assert_eq!(status["completed_rounds"], 0, "{status}");

    // The queue survives a restart: still empty after SIGKILL.
    cluster.kill_coordinator();
    cluster.start_coordinator(None);
    let status = cluster.wait_status(PATIENCE);
    assert_eq!(status["queued_rounds"], 0, "{status}");
    // And the aborted attempt is in the log, which verifies.
    cluster.queue_rounds(1);
    cluster.wait_completed(1, PATIENCE);
    let report = cluster.audit_verify();
    assert_eq!(report["rounds"].as_u64(), Some(1), "{report}");
    assert_eq!(
        cluster.attempts()[&1],
        2,
        "the aborted attempt and the retry"
    );
}
