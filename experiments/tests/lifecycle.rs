//! A federation's whole life through the real coordinator and participants
//! over mutual TLS: a statistics round fits the encoder from secure sums, a
//! training round uses it, a calibrate round sets the threshold; an
//! auditor's replay re-derives every conclusion, and a coordinator that
//! logs another one is caught.

mod support;
use support::rewrite_log;

use std::sync::Arc;

use fedsoc_audit::AuditLog;
use fedsoc_coordinator::kind::RoundKind;
use fedsoc_coordinator::replay::{ReplayError, verify_log};
use fedsoc_datasets::synthetic::{SyntheticConfig, site_telemetry};
use fedsoc_datasets::{EncoderSpec, Records};
use fedsoc_experiments::local::{FederationData, LocalFederation, LocalFederationSpec};
use fedsoc_participant::telemetry::split_validation;

const ROWS: usize = 3000;

/// Site `site`'s synthetic telemetry, as records.
fn site(site: usize) -> Records {
    Records::from_flows(
        &site_telemetry(
            site,
            &SyntheticConfig {
                seed: 11,
                rows: ROWS,
                attack_fraction: 0.02,
            },
        )
        .unwrap(),
    )
}

/// Telemetry none of whose protocol values the federation's vocabulary
/// lists: the wrong sensor, or a format read with the wrong schema.
fn foreign(records: &Records, column: &str) -> Records {
    let at = records
        .categorical_names()
        .iter()
        .position(|n| n == column)
        .unwrap();
    let mut out = Records::new(
        records.numeric_names().to_vec(),
        records.categorical_names().to_vec(),
    );
    for row in 0..records.len() {
        let mut categorical = records.categorical_row(row).to_vec();
        categorical[at] = "sctp".into();
        out.push(
            records.numeric_row(row),
            categorical,
            records.label(row).to_string(),
            records.family(row).to_string(),
        )
        .unwrap();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_train_calibrate_through_the_coordinator_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let layout = EncoderSpec::synthetic_layout();
    let protocol = layout.categorical[0].name.clone();
    let honest: Vec<Records> = (0..3).map(site).collect();
    let mut records: Vec<Arc<Records>> = honest.iter().cloned().map(Arc::new).collect();
    records.push(Arc::new(foreign(&site(3), &protocol)));
    let mut spec = LocalFederationSpec::new(dir.path(), 4);
    spec.min_participants = 3;
    spec.keep_bundles = true;
    spec.data = Some(FederationData {
        // The configuration's encoder: the layout with placeholder moments.
        encoder: layout.clone(),
        records,
        model_kind: "autoencoder".into(),
        loss: "bce".into(),
        focal_gamma: 2.0,
        proximal_mu: 0.0,
        class_weight: None,
    });
    let federation = LocalFederation::start(&spec).await.unwrap();
    let shared = federation.coordinator.shared().clone();
    shared
        .queue_kinds(&[
            RoundKind::Moments,
            RoundKind::Spread,
            RoundKind::Train,
            RoundKind::Calibrate,
        ])
        .unwrap();

    // Statistics: two secure sums. The member whose telemetry has none of
    // the vocabulary's protocols refuses, saying which data and why; the
    // round goes on with the other three.
    let moments = federation.coordinator.run_next_round().await.unwrap();
    assert_eq!(moments.kind, RoundKind::Moments);
    assert_eq!(moments.included.len(), 3, "{:?}", moments.dropped);
    let refusal = &moments.dropped[0];
    assert_eq!(refusal.participant, federation.participant_ids()[3]);
    for word in [
        protocol.as_str(),
        "vocabulary",
        "sctp",
        "synthetic telemetry of site 3",
    ] {
        assert!(
            refusal.reason.contains(word),
            "{word:?} not in {:?}",
            refusal.reason
        );
    }
    let spread = federation.coordinator.run_next_round().await.unwrap();
    assert_eq!(spread.kind, RoundKind::Spread);
    let state = shared.sum_state();
    assert_eq!(
        state.encoder.round, 2,
        "the fitted encoder is the one in force"
    );
    let fitted: EncoderSpec = serde_json::from_str(&state.encoder.json).unwrap();

    // It equals the fit on the pooled training rows of the three members.
    let mut pooled: Option<Records> = None;
    for (i, records) in honest.iter().enumerate() {
        let fraction = federation.participant_config(i).validation_fraction;
        let (training, _) = split_validation(records, fraction);
        match &mut pooled {
            Some(p) => p.append(&training).unwrap(),
            None => pooled = Some(training),
        }
    }
    let pooled = pooled.unwrap();
    // The balanced loss's attack weight is the federation's ratio.
    let families = pooled.family_counts();
    let benign = families["normal"] as f64;
    assert_eq!(
        state.class_weight,
        Some(benign / (pooled.len() as f64 - benign)),
        "{families:?}"
    );
    let want = EncoderSpec::fit(&pooled, &layout).unwrap();
    for (got, want) in fitted.numeric.iter().zip(&want.numeric) {
        assert!(
            (got.mean - want.mean).abs() < 1e-4 && (got.std - want.std).abs() < 1e-4,
            "column {}: federated mean {} std {}, pooled {} {}",
            got.name,
            got.mean,
            got.std,
            want.mean,
            want.std
        );
    }
    assert_eq!(fitted.categorical, want.categorical);

    // Training uses it; calibration sets the threshold on held-out rows.
    let trained = federation.coordinator.run_next_round().await.unwrap();
    assert_eq!(trained.kind, RoundKind::Train);
    let calibrated = federation.coordinator.run_next_round().await.unwrap();
    assert_eq!(calibrated.kind, RoundKind::Calibrate);
    let threshold = shared.sum_state().calibration.expect("a calibration");
    assert_eq!(threshold.model_sha256, trained.model_sha256);
    assert_eq!(threshold.encoder_sha256, state.encoder.sha256);

    // The pooled benign validation scores' quantile is inside the stated
    // interval, and the share above the threshold inside its bounds.
    let model = federation.coordinator.spec().model.clone();
    let global = federation.coordinator.global_model();
    let mut scores = Vec::new();
    for (i, records) in honest.iter().enumerate() {
        let fraction = federation.participant_config(i).validation_fraction;
        let (_, validation) = split_validation(records, fraction);
        let x = fitted.encode(&validation).unwrap();
        scores.extend(fedsoc_models::anomaly_scores(&model, &global, x.view()).unwrap());
    }
    assert_eq!(scores.len() as u64, threshold.benign_rows);
    scores.sort_by(f32::total_cmp);
    let q = 1.0 - threshold.false_alarm_rate;
    let rank = (q * scores.len() as f64).ceil() as usize;
    let exact = f64::from(scores[rank - 1]);
    let [lo, hi] = threshold.score_interval;
    assert!(
        lo <= exact && exact <= hi && lo <= threshold.threshold && threshold.threshold <= hi,
        "pooled quantile {exact}, threshold {}, stated interval [{lo}, {hi}]",
        threshold.threshold
    );
    let above = scores
        .iter()
        .filter(|&&s| f64::from(s) > threshold.threshold)
        .count() as f64
        / scores.len() as f64;
    let [f_lo, f_hi] = threshold.false_alarm_interval;
    assert!(
        f_lo <= above && above <= f_hi,
        "{above} not in [{f_lo}, {f_hi}]"
    );

    // Each member was sent every completed round's bundle and kept it once
    // verified: the calibrated one carries the threshold.
    let kept = dir
        .path()
        .join("bundles")
        .join(&federation.participant_ids()[0])
        .join("round-000004");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !kept.join("provenance.json").exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let bundle = fedsoc_bundle::Bundle::read(&kept).unwrap();
    let verified = bundle
        .verify(&std::fs::read_to_string(federation.dir().join("pki/ca.pem")).unwrap())
        .unwrap();
    assert_eq!(verified.model_sha256, trained.model_sha256);
    assert_eq!(verified.encoder_sha256, state.encoder.sha256);
    let logged = verified.threshold.expect("the calibrated threshold");
    assert_eq!(logged.calibrated, threshold);

    // An auditor replays all four rounds and every conclusion.
    let ca = std::fs::read_to_string(federation.dir().join("pki/ca.pem")).unwrap();
    let audit = federation.dir().join("audit");
    let report = verify_log(&audit, Some(&ca)).unwrap();
    assert_eq!((report.rounds, report.secure_rounds), (4, 4), "{report:?}");
    federation.shutdown().await;

    // A coordinator that logs another encoder than its sums give, signed
    // with its own key, is caught at that entry.
    let forged = dir.path().join("forged");
    rewrite_log(&audit, &forged, dir.path(), |kind, body| {
        if kind == "encoder.fitted" {
            let mut encoder: EncoderSpec =
                serde_json::from_str(body["encoder_json"].as_str().unwrap()).unwrap();
            encoder.numeric[0].std *= 1.5;
            body["encoder_json"] = serde_json::to_string(&encoder).unwrap().into();
        }
    });
    let e = verify_log(&forged, Some(&ca)).unwrap_err();
    assert_entry(&e, "encoder.fitted", 2, "encoder_json");

    // So is one that logs a sum its members' unmasking does not give.
    let forged = dir.path().join("forged-sum");
    let blobs = AuditLog::open_read_only(&audit).unwrap().blobs().clone();
    rewrite_log(&audit, &forged, dir.path(), |kind, body| {
        if kind == "round.aggregated" && body["round"] == 1 {
            let id: fedsoc_audit::BlobId = serde_json::from_value(body["sum"].clone()).unwrap();
            let mut sum = blobs.get(&id).unwrap();
            sum[8] ^= 1; // the first column's sum
            let stored = fedsoc_audit::BlobStore::open(forged_blobs(&forged))
                .unwrap()
                .put(&sum)
                .unwrap();
            body["sum"] = serde_json::to_value(stored).unwrap();
        }
    });
    let e = verify_log(&forged, Some(&ca)).unwrap_err();
    assert_entry(&e, "round.aggregated", 1, "does not give the logged sum");
}

fn forged_blobs(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("blobs")
}

fn assert_entry(e: &ReplayError, kind: &str, round: u64, words: &str) {
    match e {
        ReplayError::Entry {
            kind: k,
            round: r,
            reason,
            ..
        } => assert!(
            k == kind && *r == Some(round) && reason.contains(words),
            "{e}"
        ),
        other => panic!("expected a replay failure at {kind}, got {other}"),
    }
}
