//! A FedAdam federation end to end: real coordinator and participants over
//! mutual TLS on 127.0.0.1, secure rounds, then the auditor's replay of
//! the exported log, which must reproduce every model and every optimiser
//! state bit for bit from the log alone; a log whose optimiser state or
//! hyperparameters were changed is refused at that round; and a restarted
//! coordinator continues from exactly the state the log records, refusing
//! a stored state or a `[strategy]` that does not continue it.

mod support;
use support::{copy_dir, rewrite_log};

use std::path::Path;
use std::time::Duration;

use fedsoc_audit::{AuditLog, BlobId, BlobStore};
use fedsoc_coordinator::config::{StrategyName, StrategySection};
use fedsoc_coordinator::kind::RoundKind;
use fedsoc_coordinator::optimizer::ServerOptimizer;
use fedsoc_coordinator::replay::{ReplayError, export_bundle, verify_log};
use fedsoc_coordinator::trail::{self, RoundModel};
use fedsoc_durable::Disk;
use fedsoc_experiments::local::{LocalFederation, LocalFederationSpec};

const PARTICIPANTS: usize = 3;
const PATIENCE: Duration = Duration::from_secs(60);

fn spec(dir: &Path) -> LocalFederationSpec {
    let mut spec = LocalFederationSpec::new(dir, PARTICIPANTS);
    spec.rows = 300;
    spec.hidden = vec![8, 4];
    spec.batch_size = 32;
    spec.min_participants = PARTICIPANTS;
    spec.stage_timeout_s = 10;
    spec.strategy = StrategySection {
        name: StrategyName::FedAdam,
        server_learning_rate: Some(0.05),
        ..StrategySection::default()
    };
    spec
}

const ADAM: ServerOptimizer = ServerOptimizer::FedAdam {
    server_learning_rate: 0.05,
    beta1: 0.9,
    beta2: 0.99,
    tau: 1e-3,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fedadam_rounds_replay_bit_for_bit_and_a_tampered_optimiser_state_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("federation");
    let federation = LocalFederation::start(&spec(&dir)).await.unwrap();
    let coordinator = &federation.coordinator;
    let initial = coordinator.global_model().to_vec();
    let mut models = vec![initial.clone()];
    for round in 1..=3u64 {
        let report = coordinator.run_next_round().await.unwrap();
        assert_eq!(report.round, round);
        assert_eq!(report.included.len(), PARTICIPANTS, "{:?}", report.dropped);
        let state = report.optimizer.as_ref().expect("FedAdam keeps a state");
        assert_eq!((state.name.as_str(), state.state.steps), ("fedadam", round));
        // FedAdam's first step moves no coordinate by more than η
        // (m/√v ≤ (1 − β₁)/√(1 − β₂) = 1 from zeros).
        if round == 1 {
            let moved = report
                .model
                .iter()
                .zip(&initial)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(moved > 0.0 && moved <= 0.05 + 1e-6, "moved {moved}");
        }
        models.push(report.model.to_vec());
    }
    let stored_state = std::fs::read(dir.join("models/round-000003.opt")).unwrap();
    assert_eq!(
        stored_state.len(),
        2 * 8 * initial.len(),
        "m and v, f64 each"
    );

    // The auditor's replay from an exported copy: every model hash and the
    // optimiser state after every round come out as logged.
    let bundle = tmp.path().join("bundle");
    let exported = export_bundle(&dir, &bundle).unwrap();
    let ca = std::fs::read_to_string(dir.join("pki/ca.pem")).unwrap();
    let verified = verify_log(&bundle, Some(&ca)).unwrap();
    assert_eq!((verified.rounds, verified.secure_rounds), (3, 3));
    assert!(verified.strategy.same_as(&ADAM), "{:?}", verified.strategy);
    assert_eq!(
        verified.optimizer_state_sha256.as_deref(),
        Some(hex(&stored_state).as_str()),
        "the replayed state is the coordinator's stored state"
    );
    assert_eq!(
        verified.model_sha256,
        fedsoc_coordinator::model_sha256(&models[3])
    );
    assert_eq!(exported.verified.rounds, 3);
    let text = fedsoc_coordinator::audit_view::render_report(&verified);
    assert!(
        text.contains("unmasking and FedAdam reproduce every model hash and optimiser state"),
        "{text}"
    );
    let timeline = fedsoc_coordinator::audit_view::timeline(&bundle).unwrap();
    let shown = fedsoc_coordinator::audit_view::render_timeline(&timeline.only_round(2), true);
    assert!(
        shown.contains("optimiser fedadam (server_learning_rate 0.05, beta1 0.9, beta2 0.99, tau 0.001): 2 steps"),
        "{shown}"
    );
    let logged = round_models(&bundle);
    assert_eq!(logged.len(), 3);
    for (i, m) in logged.iter().enumerate() {
        let record = m.optimizer.as_ref().expect("an optimiser record");
        assert_eq!(m.strategy, "fedadam");
        assert!(record.hyperparameters.same_as(&ADAM));
        assert_eq!(record.steps, i as u64 + 1);
    }

    // A coordinator that logs another state than its step gives (signed
    // with its own key, so only the replay can tell) is caught at round 2.
    let forged = tmp.path().join("forged-state");
    let blobs = AuditLog::open_read_only(&bundle).unwrap().blobs().clone();
    rewrite_log(&bundle, &forged, &dir, |kind, body| {
        if kind == trail::kind::ROUND_MODEL && body["round"] == 2 {
            let id: BlobId = serde_json::from_value(body["optimizer"]["state"].clone()).unwrap();
            let mut state = blobs.get(&id).unwrap();
            state[0] ^= 1; // m[0], one unit in the last place
            let stored = BlobStore::open(forged.join("blobs"))
                .unwrap()
                .put(&state)
                .unwrap();
            body["optimizer"]["state"] = serde_json::to_value(stored).unwrap();
            body["optimizer"]["state_sha256"] = hex(&state).into();
        }
    });
    let e = verify_log(&forged, Some(&ca)).unwrap_err();
    assert_entry(
        &e,
        2,
        &[
            "optimiser state does not follow",
            "vector 0 value 0",
            "replayed",
        ],
    );

    // One that logs other hyperparameters than the state was computed
    // with: at round 2 the switch itself, at round 1 the step.
    let forged = tmp.path().join("forged-beta2");
    rewrite_log(&bundle, &forged, &dir, |kind, body| {
        if kind == trail::kind::ROUND_MODEL && body["round"] == 2 {
            body["optimizer"]["hyperparameters"]["beta2"] = 0.999.into();
        }
    });
    let e = verify_log(&forged, Some(&ca)).unwrap_err();
    assert_entry(&e, 2, &["beta2 0.999, not 0.99", "since round 1"]);
    let forged = tmp.path().join("forged-rate");
    rewrite_log(&bundle, &forged, &dir, |kind, body| {
        if kind == trail::kind::ROUND_MODEL && body["round"] == 1 {
            body["optimizer"]["hyperparameters"]["server_learning_rate"] = 0.5.into();
        }
    });
    let e = verify_log(&forged, Some(&ca)).unwrap_err();
    assert_entry(
        &e,
        1,
        &[
            "the model does not follow",
            "fedadam step",
            "hyperparameters",
        ],
    );

    // A switch to FedAvg mid-log is refused; so is a state left out.
    let forged = tmp.path().join("forged-switch");
    rewrite_log(&bundle, &forged, &dir, |kind, body| {
        if kind == trail::kind::ROUND_MODEL && body["round"] == 3 {
            body["strategy"] = "fedavg".into();
            body.as_object_mut().unwrap().remove("optimizer");
        }
    });
    let e = verify_log(&forged, Some(&ca)).unwrap_err();
    assert_entry(&e, 3, &["steps with fedavg", "used fedadam"]);
    let forged = tmp.path().join("forged-no-state");
    rewrite_log(&bundle, &forged, &dir, |kind, body| {
        if kind == trail::kind::ROUND_MODEL && body["round"] == 3 {
            body.as_object_mut().unwrap().remove("optimizer");
        }
    });
    let e = verify_log(&forged, Some(&ca)).unwrap_err();
    assert_entry(&e, 3, &["records no optimiser"]);

    // The state blob itself damaged or gone in a copy of the log.
    let state_blob = blobs.path(&logged[2].optimizer.as_ref().unwrap().state);
    let copy = tmp.path().join("damaged");
    copy_dir(&bundle, &copy);
    let in_copy = copy.join(state_blob.strip_prefix(&bundle).unwrap());
    let mut bytes = std::fs::read(&in_copy).unwrap();
    bytes[100] ^= 0x40;
    std::fs::write(&in_copy, &bytes).unwrap();
    let e = verify_log(&copy, Some(&ca)).unwrap_err();
    assert_entry(&e, 3, &["optimiser state", "damaged"]);
    std::fs::remove_file(&in_copy).unwrap();
    let e = verify_log(&copy, Some(&ca)).unwrap_err();
    assert_entry(&e, 3, &["optimiser state", "is missing"]);

    // A restarted coordinator refuses a stored state the log does not
    // record, and a [strategy] other than the log's.
    let stopped = federation.stop_coordinator().await;
    let state_file = dir.join("models/round-000003.opt");
    let head_file = dir.join("state.json");
    let head_text = std::fs::read_to_string(&head_file).unwrap();
    let mut tampered = stored_state.clone();
    tampered[8] ^= 1;
    std::fs::write(&state_file, &tampered).unwrap();
    let (stopped, e) = refused(stopped).await;
    assert!(
        e.contains("round-000003.opt") && e.contains("hash recorded in state.json"),
        "{e}"
    );
    // Consistently changed (the head names the changed file's hash): the
    // log still tells.
    std::fs::write(
        &head_file,
        head_text.replace(&hex(&stored_state), &hex(&tampered)),
    )
    .unwrap();
    let (stopped, e) = refused(stopped).await;
    assert!(
        e.contains("is not the state the audit log records after round 3")
            && e.contains(&hex(&tampered))
            && e.contains("restore it from a backup"),
        "{e}"
    );
    std::fs::write(&state_file, &stored_state).unwrap();
    std::fs::write(&head_file, &head_text).unwrap();
    let config = dir.join("coordinator.toml");
    let config_text = std::fs::read_to_string(&config).unwrap();
    assert!(config_text.contains("[strategy]\n"), "{config_text}");
    std::fs::write(
        &config,
        config_text.replace("[strategy]\n", "[strategy]\nbeta2 = 0.999\n"),
    )
    .unwrap();
    let (stopped, e) = refused(stopped).await;
    assert!(
        e.contains("[strategy]")
            && e.contains("beta2 0.999, not 0.99")
            && e.contains("up to round 3"),
        "{e}"
    );
    std::fs::write(&config, &config_text).unwrap();

    // Restored, it continues from exactly the logged state: round 4 replays.
    let federation = match stopped.start_coordinator(Disk::real()).await {
        Ok(f) => f,
        Err((_, e)) => panic!("the restored folder does not start: {e}"),
    };
    assert!(
        federation
            .coordinator
            .wait_for_participants(PARTICIPANTS, PATIENCE)
            .await
    );
    let report = federation.coordinator.run_next_round().await.unwrap();
    assert_eq!(report.round, 4);
    let stepped = report.optimizer.clone().unwrap();
    assert_eq!(stepped.state.steps, 4);

    // A calibrate round (a secure sum, no update) leaves the state as it
    // was; the store carries it to the round.
    federation
        .coordinator
        .shared()
        .queue_kinds(&[RoundKind::Calibrate])
        .unwrap();
    let calibrated = federation.coordinator.run_next_round().await.unwrap();
    assert_eq!(
        (calibrated.round, calibrated.kind),
        (5, RoundKind::Calibrate)
    );
    assert_eq!(calibrated.optimizer, Some(stepped.clone()));
    federation.shutdown().await;
    let round4 = std::fs::read(dir.join("models/round-000004.opt")).unwrap();
    assert_eq!(
        std::fs::read(dir.join("models/round-000005.opt")).unwrap(),
        round4
    );
    let verified = verify_log(&dir, Some(&ca)).unwrap();
    assert_eq!((verified.rounds, verified.secure_rounds), (5, 5));
    assert_eq!(
        verified.optimizer_state_sha256.as_deref(),
        Some(hex(&round4).as_str())
    );
}

/// FedAvgM over plaintext aggregation (the other round path): the replay
/// sums the logged updates and reproduces model and velocity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fedavgm_plaintext_rounds_replay_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("federation");
    let mut spec = spec(&dir);
    spec.secure = false;
    spec.strategy = StrategySection {
        name: StrategyName::FedAvgM,
        momentum: Some(0.5),
        ..StrategySection::default()
    };
    let federation = LocalFederation::start(&spec).await.unwrap();
    let mut last = None;
    for round in 1..=2u64 {
        let report = federation.coordinator.run_next_round().await.unwrap();
        assert_eq!(report.included.len(), PARTICIPANTS, "{:?}", report.dropped);
        let state = report.optimizer.clone().unwrap();
        assert_eq!((state.name.as_str(), state.state.steps), ("fedavgm", round));
        last = Some(state);
    }
    federation.shutdown().await;
    let ca = std::fs::read_to_string(dir.join("pki/ca.pem")).unwrap();
    let verified = verify_log(&dir, Some(&ca)).unwrap();
    assert_eq!((verified.rounds, verified.plaintext_rounds), (2, 2));
    assert!(verified.strategy.same_as(&ServerOptimizer::FedAvgM {
        server_learning_rate: 1.0,
        momentum: 0.5
    }));
    assert_eq!(
        verified.optimizer_state_sha256,
        Some(last.unwrap().state.sha256())
    );
}

/// Starts the stopped coordinator, which must refuse; returns its error.
async fn refused(
    stopped: fedsoc_experiments::local::StoppedFederation,
) -> (fedsoc_experiments::local::StoppedFederation, String) {
    match stopped.start_coordinator(Disk::real()).await {
        Ok(_) => panic!("the coordinator started"),
        Err((stopped, e)) => (stopped, e.to_string()),
    }
}

/// SHA-256 of `bytes`, hex.
fn hex(bytes: &[u8]) -> String {
    trail::sha256_hex(bytes)
}

fn round_models(dir: &Path) -> Vec<RoundModel> {
    let log = AuditLog::open_read_only(dir).unwrap();
    log.entries()
        .map(Result::unwrap)
        .filter(|e| e.kind == trail::kind::ROUND_MODEL)
        .map(|e| e.body_json().unwrap())
        .collect()
}

/// A replay failure at `round.model` of `round` whose reason has `words`.
fn assert_entry(e: &ReplayError, round: u64, words: &[&str]) {
    match e {
        ReplayError::Entry {
            kind,
            round: r,
            reason,
            ..
        } => assert!(
            kind == trail::kind::ROUND_MODEL
                && *r == Some(round)
                && words.iter().all(|w| reason.contains(w)),
            "expected round.model of round {round} with {words:?}: {e}"
        ),
        other => panic!("expected a replay failure at round {round}, got {other}"),
    }
}
