//! Crash consistency at every persistence point.
//!
//! Every durable write of the coordinator goes through the storage layer
//! (`fedsoc_durable::Disk`). These tests first run a scenario with a
//! counting disk to enumerate its persistence points (each write, fsync,
//! rename, truncation and folder sync), then run it again once per point
//! with a disk that crashes there — and, for every write, once more with
//! that write torn mid-way — and then restart the coordinator on a real
//! disk and check, after each crash:
//!
//! - the state opens;
//! - `audit verify` passes (every round replayed from the log and blobs);
//! - a round acknowledged before the crash is not lost, and the rounds a
//!   data scientist queued (and was told so) are still queued or done;
//! - participants, which keep the checkpoints they accepted, accept the
//!   restarted coordinator's log as an extension of what they hold;
//! - the next round completes and every aggregate in the log equals, bit
//!   for bit, the sum of the survivors' own copies of their inputs;
//! - the server optimiser continues from exactly the state the log
//!   records (the coordinator refuses to start otherwise, and the replay
//!   reproduces every state bit for bit).
//!
//! The federation runs FedAdam: its round writes everything a FedAvg
//! round writes, in the same order, plus the optimiser state (its blob
//! before `round.model`, its file in the store before the head), so the
//! FedAvg persistence points are a subset of those crashed here.
//!
//! The number of points covered is printed (run with `--nocapture`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fedsoc_audit::{AuditLog, SignedCheckpoint};
use fedsoc_coordinator::config::{StrategyName, StrategySection};
use fedsoc_coordinator::trail::{self, RoundAggregated, RoundOpened};
use fedsoc_durable::{Disk, Faults, Op, Point};
use fedsoc_experiments::local::{LocalFederation, LocalFederationSpec, RandomUpdatePlan};

const PARTICIPANTS: usize = 3;
const PATIENCE: Duration = Duration::from_secs(60);

fn spec(dir: &Path) -> LocalFederationSpec {
    let mut spec = LocalFederationSpec::new(dir, PARTICIPANTS);
    spec.rows = 100;
    spec.hidden = vec![8, 4];
    spec.stage_timeout_s = 10;
    spec.min_participants = PARTICIPANTS;
    spec.random_updates = Some(RandomUpdatePlan {
        samples: 50,
        scale: 0.1,
        vanishing: 0,
    });
    spec.keep_contributions = true;
    spec.strategy = StrategySection {
        name: StrategyName::FedAdam,
        ..StrategySection::default()
    };
    spec
}

/// What the crashed coordinator told anyone before it died.
#[derive(Debug, Default)]
struct Acknowledged {
    /// `round start` answered: one round queued.
    queued: bool,
    /// The round completed and its checkpoint went out: its model hash.
    round: Option<String>,
}

/// Starts a federation, restarts its coordinator on a disk with `faults`,
/// queues and runs one round, then "kills" it (whatever the crash left
/// on disk stays), and returns the stopped federation.
async fn run_with_faults(
    dir: &Path,
    faults: &Arc<Faults>,
) -> (fedsoc_experiments::local::StoppedFederation, Acknowledged) {
    let federation = LocalFederation::start(&spec(dir)).await.unwrap();
    let stopped = federation.stop_coordinator().await;
    let mut acked = Acknowledged::default();
    let stopped = match stopped
        .start_coordinator(Disk::with_faults(faults.clone()))
        .await
    {
        Ok(federation) => {
            let coordinator = &federation.coordinator;
            assert!(
                coordinator
                    .wait_for_participants(PARTICIPANTS, PATIENCE)
                    .await
            );
            acked.queued = coordinator.shared().queue_rounds(1).is_ok();
            if acked.queued
                && let Ok(report) = coordinator.run_next_round().await
            {
                acked.round = Some(report.model_sha256.clone());
            }
            federation.stop_coordinator().await
        }
        Err((stopped, _)) => stopped,
    };
    (stopped, acked)
}

/// Every aggregate of round `from` on in the log against the survivors'
/// own inputs; returns the rounds checked.
fn assert_aggregates_exact(dir: &Path, from: u64) -> usize {
    let log = AuditLog::open_read_only(dir.join("audit")).unwrap();
    let mut round_ids = BTreeMap::new();
    let mut checked = 0;
    for entry in log.entries() {
        let entry = entry.unwrap();
        match entry.kind.as_str() {
            trail::kind::ROUND_OPENED => {
                let o: RoundOpened = entry.body_json().unwrap();
                round_ids.insert((o.round, o.attempt), o.secagg.unwrap().round_id);
            }
            trail::kind::ROUND_AGGREGATED => {
                let a: RoundAggregated = entry.body_json().unwrap();
                if a.round < from {
                    continue;
                }
                let round_id = &round_ids[&(a.round, a.attempt)];
                let mut want: Vec<u64> = Vec::new();
                for id in &a.survivors {
                    let path = dir.join(format!(
                        "contributions/{id}/round-{:06}-{round_id}.u64",
                        a.round
                    ));
                    let bytes =
                        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    if want.is_empty() {
                        want = vec![0; bytes.len() / 8];
                    }
                    for (w, c) in want.iter_mut().zip(bytes.chunks_exact(8)) {
                        *w = w.wrapping_add(u64::from_le_bytes(c.try_into().unwrap()));
                    }
                }
                let want: Vec<u8> = want.iter().flat_map(|w| w.to_le_bytes()).collect();
                assert!(
                    log.blobs().get(&a.sum).unwrap() == want,
                    "round {} attempt {}: the aggregate is not the survivors' sum",
                    a.round,
                    a.attempt
                );
                checked += 1;
            }
            _ => {}
        }
    }
    checked
}

/// Waits until every participant holds (durably) the checkpoint of
/// `size` entries: each accepted the log as an extension of its own.
async fn wait_participants_hold(dir: &Path, ids: &[String], size: u64, what: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    for id in ids {
        let path = dir.join("state").join(id).join("checkpoint.note");
        loop {
            let held = std::fs::read(&path)
                .ok()
                .and_then(|b| SignedCheckpoint::from_bytes(&b).ok())
                .map(|c| c.checkpoint.tree_size);
            if held == Some(size) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: {id} holds a checkpoint of {held:?} entries, the log has {size}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Restarts on a real disk after the crash and checks everything.
async fn assert_recovers(
    stopped: fedsoc_experiments::local::StoppedFederation,
    acked: &Acknowledged,
    what: &str,
) {
    let dir = stopped.dir().to_path_buf();
    let federation = match stopped.start_coordinator(Disk::real()).await {
        Ok(f) => f,
        Err((_, e)) => panic!("{what}: the state does not open: {e}"),
    };
    let coordinator = &federation.coordinator;
    let before = coordinator.shared().status();
    if let Some(model) = &acked.round {
        assert_eq!(before.completed_round, 1, "{what}: acknowledged round lost");
        assert_eq!(
            &fedsoc_coordinator::model_sha256(&before.global),
            model,
            "{what}: acknowledged model lost"
        );
    }
    if acked.queued {
        assert_eq!(before.target_round, 1, "{what}: the queued round was lost");
    }
    // The optimiser state goes with the round: stepped once if round 1
    // is complete, not at all before.
    let steps = before.optimizer.as_ref().map(|o| o.state.steps);
    assert_eq!(
        steps,
        (before.completed_round == 1).then_some(1),
        "{what}: the optimiser state does not match the completed round"
    );
    assert!(before.target_round <= 1 && before.completed_round <= before.target_round.max(1));
    assert!(
        coordinator
            .wait_for_participants(PARTICIPANTS, PATIENCE)
            .await,
        "{what}: participants did not come back"
    );
    let report = coordinator
        .run_next_round()
        .await
        .unwrap_or_else(|e| panic!("{what}: the next round failed: {e}"));
    assert_eq!(report.round, before.completed_round + 1, "{what}");
    assert_eq!(report.included.len(), PARTICIPANTS, "{what}");
    let state = report.optimizer.clone().expect("FedAdam keeps a state");
    assert_eq!(state.state.steps, report.round, "{what}");
    let size = coordinator.audit_size();
    let ids = federation.participant_ids();
    wait_participants_hold(&dir, &ids, size, what).await;
    federation.shutdown().await;

    let ca = std::fs::read_to_string(dir.join("pki/ca.pem")).unwrap();
    let verified = fedsoc_coordinator::replay::verify_log(&dir.join("audit"), Some(&ca))
        .unwrap_or_else(|e| panic!("{what}: audit verify failed: {e}"));
    assert!(verified.rounds >= 1, "{what}");
    assert_eq!(
        verified.optimizer_state_sha256,
        Some(state.state.sha256()),
        "{what}: the replayed optimiser state is not the coordinator's"
    );
    assert!(assert_aggregates_exact(&dir, 0) >= 1, "{what}");
}

/// The points a faultless run reaches.
async fn enumerate() -> Vec<Point> {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::counting());
    let (stopped, acked) = run_with_faults(dir.path(), &faults).await;
    assert!(acked.round.is_some(), "the faultless round must complete");
    assert_recovers(stopped, &acked, "no crash").await;
    faults.trace()
}

fn summary(points: &[Point]) -> String {
    let mut by_op: BTreeMap<Op, usize> = BTreeMap::new();
    let mut by_file: BTreeMap<String, usize> = BTreeMap::new();
    for p in points {
        *by_op.entry(p.op).or_default() += 1;
        *by_file.entry(p.file_kind()).or_default() += 1;
    }
    format!(
        "{} points; by operation {by_op:?}; by file {by_file:?}",
        points.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_every_persistence_point_of_a_round_recovers() {
    let points = enumerate().await;
    eprintln!("restart + queue + secure round: {}", summary(&points));
    assert!(points.len() >= 40, "{}", summary(&points));
    let writes = points.iter().filter(|p| p.op == Op::Write).count();
    let mut runs = 0;
    for point in &points {
        let mut plans = vec![(Arc::new(Faults::crash_at(point.index)), "crash")];
        if point.op == Op::Write {
            // Cut the write at a byte that moves with the point.
            let share = ((point.index * 7919) % 1000) as f64 / 1000.0;
            plans.push((Arc::new(Faults::tear_at(point.index, share)), "torn write"));
        }
        for (faults, how) in plans {
            let dir = tempfile::tempdir().unwrap();
            let (stopped, acked) = run_with_faults(dir.path(), &faults).await;
            assert!(faults.crashed(), "point {point} was not reached again");
            let what = format!("{how} at {point}");
            assert_recovers(stopped, &acked, &what).await;
            runs += 1;
        }
    }
    eprintln!(
        "recovered after {runs} crashes: {} points, {writes} of them writes also torn",
        points.len()
    );
}

/// Creating a federation: the coordinator's first start writes the
/// initial model, the head, the new audit log (`federation.created`, its
/// blobs, the first checkpoint) and the queue. A crash at any of those
/// points, or a write torn there, leaves a folder the next start opens,
/// and whose log verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_every_persistence_point_of_the_first_start_recovers() {
    let first_start = |dir: &Path, faults: &Arc<Faults>| {
        let mut spec = spec(dir);
        spec.disk = Disk::with_faults(faults.clone());
        async move { LocalFederation::start(&spec).await }
    };
    let counted = Arc::new(Faults::counting());
    let dir = tempfile::tempdir().unwrap();
    // Participants write through their own disk: only the coordinator's
    // points are counted.
    first_start(dir.path(), &counted)
        .await
        .unwrap()
        .shutdown()
        .await;
    let points: Vec<Point> = counted.trace();
    eprintln!("first start: {}", summary(&points));
    assert!(points.len() >= 20, "{}", summary(&points));
    for point in &points {
        let mut plans = vec![(Arc::new(Faults::crash_at(point.index)), "crash")];
        if point.op == Op::Write {
            plans.push((Arc::new(Faults::tear_at(point.index, 0.5)), "torn write"));
        }
        for (faults, how) in plans {
            let dir = tempfile::tempdir().unwrap();
            let what = format!("{how} at {point} of the first start");
            let started = first_start(dir.path(), &faults).await;
            assert!(faults.crashed(), "{what}: not reached");
            // Points after the coordinator's start are participants' own.
            if let Ok(federation) = started {
                federation.shutdown().await;
            }
            let config =
                fedsoc_coordinator::CoordinatorConfig::load(&dir.path().join("coordinator.toml"))
                    .unwrap();
            let coordinator = fedsoc_coordinator::Coordinator::start(&config)
                .await
                .unwrap_or_else(|e| panic!("{what}: the state does not open: {e}"));
            let status = coordinator.shared().status();
            assert_eq!(status.completed_round, 0, "{what}");
            coordinator.shutdown().await;
            let ca = std::fs::read_to_string(dir.path().join("pki/ca.pem")).unwrap();
            fedsoc_coordinator::replay::verify_log(&dir.path().join("audit"), Some(&ca))
                .unwrap_or_else(|e| panic!("{what}: audit verify failed: {e}"));
        }
    }
}

/// A participant's own durable writes in a round: its copy of what it
/// contributed and the checkpoint it accepts. Crashed (and torn) at each,
/// the participant restarts on a real disk, its state opens, it still
/// holds the coordinator to the log, and the next round includes it with
/// an exact aggregate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_crashed_at_every_persistence_point_of_a_round_recovers() {
    /// Round 1 with everyone; participant 0 restarted on `faults`; round 2.
    async fn run(dir: &Path, faults: &Arc<Faults>) -> LocalFederation {
        let mut federation = LocalFederation::start(&spec(dir)).await.unwrap();
        federation.coordinator.run_next_round().await.unwrap();
        let ids = federation.participant_ids();
        let size = federation.coordinator.audit_size();
        wait_participants_hold(dir, &ids, size, "round 1").await;
        assert!(federation.kill_and_wait_gone(&ids[0], PATIENCE).await);
        let victim = federation
            .start_participant_on(0, Disk::with_faults(faults.clone()))
            .unwrap();
        // Dies where its disk crashes, as a killed process would.
        faults.on_crash(move || victim.abort());
        assert!(
            federation
                .coordinator
                .wait_for_participants(PARTICIPANTS, PATIENCE)
                .await
        );
        // With the victim gone mid-round the round may fail: either way
        // is fine, what matters is the recovery.
        let _ = federation.coordinator.run_next_round().await;
        federation
    }

    let dir = tempfile::tempdir().unwrap();
    let counted = Arc::new(Faults::counting());
    let federation = run(dir.path(), &counted).await;
    let size = federation.coordinator.audit_size();
    wait_participants_hold(dir.path(), &federation.participant_ids(), size, "round 2").await;
    federation.shutdown().await;
    let points = counted.trace();
    eprintln!("participant in a round: {}", summary(&points));
    assert!(points.len() >= 8, "{}", summary(&points));
    for point in &points {
        let mut plans = vec![(Arc::new(Faults::crash_at(point.index)), "crash")];
        if point.op == Op::Write {
            plans.push((Arc::new(Faults::tear_at(point.index, 0.5)), "torn write"));
        }
        for (faults, how) in plans {
            let what = format!("participant {how} at {point}");
            let dir = tempfile::tempdir().unwrap();
            let mut federation = run(dir.path(), &faults).await;
            // The checkpoint is accepted after the round returns, and a
            // round may start before the restarted victim is back: more
            // rounds until its disk reaches the point.
            for _ in 0..5 {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while !faults.crashed() && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                if faults.crashed() {
                    break;
                }
                let _ = federation.coordinator.run_next_round().await;
            }
            assert!(faults.crashed(), "{what}: not reached");
            let ids = federation.participant_ids();
            assert!(federation.kill_and_wait_gone(&ids[0], PATIENCE).await);
            federation.start_participant(0).unwrap();
            let coordinator = &federation.coordinator;
            assert!(
                coordinator
                    .wait_for_participants(PARTICIPANTS, PATIENCE)
                    .await,
                "{what}: the participant did not come back"
            );
            let report = coordinator
                .run_next_round()
                .await
                .unwrap_or_else(|e| panic!("{what}: the next round failed: {e}"));
            assert_eq!(report.included.len(), PARTICIPANTS, "{what}");
            let size = coordinator.audit_size();
            wait_participants_hold(dir.path(), &ids, size, &what).await;
            let last = report.round;
            federation.shutdown().await;
            let ca = std::fs::read_to_string(dir.path().join("pki/ca.pem")).unwrap();
            fedsoc_coordinator::replay::verify_log(&dir.path().join("audit"), Some(&ca))
                .unwrap_or_else(|e| panic!("{what}: audit verify failed: {e}"));
            assert_eq!(assert_aggregates_exact(dir.path(), last), 1, "{what}");
        }
    }
}
