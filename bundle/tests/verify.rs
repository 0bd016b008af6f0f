//! A real audit log (fedsoc-audit, checkpoints signed by a CA-issued coordinator certificate)
//! holding the entries a bundle rests on; the bundle built from it verifies, and each kind of
//! tampering fails with the error that names it.

use std::rc::Rc;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use fedsoc_audit::{AuditLog, now_ms};
use fedsoc_bundle::{Bundle, BundleError, EncoderOrigin, Provenance, kind, sha256_hex};
use fedsoc_datasets::EncoderSpec;
use fedsoc_models::export::flat_sha256;
use fedsoc_models::{AutoencoderConfig, ModelConfig, initial_weights};
use fedsoc_pki::{CertificateAuthority, Identity, Role};
use serde_json::json;

const FEDERATION: &str = "eu-soc";

struct Fixture {
    _dir: tempfile::TempDir,
    ca: Rc<CertificateAuthority>,
    coordinator_pem: String,
    initial_encoder: String,
    fitted_encoder: String,
    log: AuditLog,
}

fn coordinator(ca: &CertificateAuthority) -> (String, SigningKey) {
    let who = Identity::new(Role::Coordinator, "coordinator").unwrap();
    let issued = ca.issue(&who, &["localhost".into()]).unwrap();
    let key = SigningKey::from_pkcs8_pem(&issued.key_pem).unwrap();
    (issued.cert_pem, key)
}

/// A log of federation `federation` with: federation.created (initial encoder), round.model of
/// round 1 and 2 (`seed` varies the weights), encoder.fitted in round 1, threshold.calibrated
/// for round 2's model, and a signed checkpoint.
fn log_with(ca: Rc<CertificateAuthority>, federation: &str, seed: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (coordinator_pem, key) = coordinator(&ca);
    let mut log = AuditLog::open_or_create(
        dir.path().join("audit"),
        &format!("fedsoc/{federation}"),
        key,
    )
    .unwrap();
    let initial_encoder = serde_json::to_string(&EncoderSpec::synthetic_layout()).unwrap();
    let fitted_encoder = serde_json::to_string(&EncoderSpec::synthetic_default()).unwrap();
    let config = ModelConfig::Autoencoder(AutoencoderConfig {
        input_dim: EncoderSpec::synthetic_default().dim(),
        hidden: vec![8, 4],
    });
    log.append_json(
        kind::FEDERATION_CREATED,
        &json!({
            "federation": federation,
            "config_sha256": "00",
            "config_toml": "",
            "participants": ["soc-ee", "soc-fr"],
            "model_kind": "autoencoder",
            "model_input_dim": config.input_dim(),
            "model_hidden": [8, 4],
            "encoder_sha256": sha256_hex(initial_encoder.as_bytes()),
        }),
    )
    .unwrap();
    let mut model_sha = String::new();
    for round in 1..=2u64 {
        if round == 1 {
            log.append_json(
                kind::ENCODER_FITTED,
                &json!({
                    "round": 1, "attempt": 1,
                    "encoder_sha256": sha256_hex(fitted_encoder.as_bytes()),
                    "encoder_json": fitted_encoder,
                    "rows": 1000, "other_share": {"service": 0.01},
                    "label_counts": {"benign": 900, "dos": 100},
                }),
            )
            .unwrap();
        }
        let flat = initial_weights(&config, seed + round).unwrap();
        let bytes: Vec<u8> = flat.iter().flat_map(|v| v.to_le_bytes()).collect();
        let blob = log.blobs().put(&bytes).unwrap();
        model_sha = flat_sha256(&flat);
        log.append_json(
            kind::ROUND_MODEL,
            &json!({
                "round": round, "attempt": 1, "strategy": "fedavg",
                "global_in_sha256": "00", "model": blob.to_string(),
                "model_sha256": model_sha, "mean_loss": 0.5,
            }),
        )
        .unwrap();
    }
    log.append_json(
        kind::THRESHOLD_CALIBRATED,
        &json!({
            "round": 3, "attempt": 1,
            "model_sha256": model_sha,
            "encoder_sha256": sha256_hex(fitted_encoder.as_bytes()),
            "score": "reconstruction_mse", "false_alarm_rate": 0.01,
            "threshold": 0.734_5, "score_interval": [0.7, 0.77],
            "false_alarm_interval": [0.008, 0.012], "benign_rows": 5000,
        }),
    )
    .unwrap();
    log.append_json("round.opened", &json!({"round": 4}))
        .unwrap();
    log.checkpoint(now_ms()).unwrap();
    Fixture {
        _dir: dir,
        ca,
        coordinator_pem,
        initial_encoder,
        fitted_encoder,
        log,
    }
}

fn fixture() -> Fixture {
    log_with(
        Rc::new(CertificateAuthority::generate(FEDERATION).unwrap()),
        FEDERATION,
        7,
    )
}

fn bundle(f: &Fixture, round: Option<u64>) -> Bundle {
    Bundle::from_log(&f.log, round, &f.coordinator_pem, &f.initial_encoder).unwrap()
}

fn flip_last_digit(bytes: &mut [u8], after: &str) {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let at = text.find(after).unwrap() + after.len();
    let digit = at + text[at..].find(|c: char| c.is_ascii_digit()).unwrap();
    bytes[digit] = if bytes[digit] == b'9' {
        b'8'
    } else {
        bytes[digit] + 1
    };
}

#[test]
fn a_bundle_from_a_real_log_verifies_and_says_what_it_proved() {
    let f = fixture();
    let b = bundle(&f, None);
    let v = b.verify(f.ca.cert_pem()).unwrap();
    assert_eq!((v.federation.as_str(), v.round), (FEDERATION, 2));
    assert_eq!(v.encoder_sha256, sha256_hex(f.fitted_encoder.as_bytes()));
    assert!(matches!(
        v.encoder_origin,
        EncoderOrigin::Fitted {
            round: 1,
            rows: 1000,
            ..
        }
    ));
    let t = v.threshold.as_ref().unwrap();
    assert_eq!(
        (t.calibrated.threshold, t.calibrated.false_alarm_rate),
        (0.7345, 0.01)
    );
    assert_eq!(v.coordinator, "coordinator");
    assert_eq!(v.contents.weights.len(), v.contents.model.num_params());
    assert_eq!(flat_sha256(&v.contents.weights), v.model_sha256);

    // The same bundle through a folder and through one blob.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bundle");
    b.write(&out).unwrap();
    b.write(&out).unwrap(); // replacing a bundle folder is allowed
    assert_eq!(Bundle::read(&out).unwrap(), b);
    assert_eq!(Bundle::from_bytes(&b.to_bytes()).unwrap(), b);
}

#[test]
fn round_one_has_the_fitted_encoder_but_no_threshold() {
    let f = fixture();
    let v = bundle(&f, Some(1)).verify(f.ca.cert_pem()).unwrap();
    assert_eq!(v.round, 1);
    assert!(v.threshold.is_none());
    assert!(bundle(&f, Some(1)).threshold_json.is_none());
}

#[test]
fn without_a_fitted_encoder_the_configs_encoder_must_match_federation_created() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate(FEDERATION).unwrap();
    let (pem, key) = coordinator(&ca);
    let mut log = AuditLog::open_or_create(dir.path(), "fedsoc/eu-soc", key).unwrap();
    let encoder = serde_json::to_string(&EncoderSpec::synthetic_default()).unwrap();
    let config = ModelConfig::Autoencoder(AutoencoderConfig {
        input_dim: EncoderSpec::synthetic_default().dim(),
        hidden: vec![4],
    });
    log.append_json(
        kind::FEDERATION_CREATED,
        &json!({
            "federation": FEDERATION, "model_input_dim": config.input_dim(), "model_hidden": [4],
            "encoder_sha256": sha256_hex(encoder.as_bytes()),
        }),
    )
    .unwrap();
    let flat = initial_weights(&config, 1).unwrap();
    let bytes: Vec<u8> = flat.iter().flat_map(|v| v.to_le_bytes()).collect();
    let blob = log.blobs().put(&bytes).unwrap();
    log.append_json(
        kind::ROUND_MODEL,
        &json!({
            "round": 1, "attempt": 1, "model": blob.to_string(), "model_sha256": flat_sha256(&flat),
        }),
    )
    .unwrap();
    assert!(matches!(
        Bundle::from_log(&log, None, &pem, &encoder),
        Err(BundleError::NoCheckpoint { index: 1, .. })
    ));
    log.checkpoint(now_ms()).unwrap();
    let other = encoder.replace("tcp", "TCP");
    assert!(matches!(
        Bundle::from_log(&log, None, &pem, &other),
        Err(BundleError::ConfigEncoder { index: 0, .. })
    ));
    let v = Bundle::from_log(&log, None, &pem, &encoder)
        .unwrap()
        .verify(ca.cert_pem())
        .unwrap();
    assert_eq!(v.encoder_origin, EncoderOrigin::Created { index: 0 });
}

#[test]
fn a_changed_weight_names_the_logged_model_hash() {
    let f = fixture();
    let mut b = bundle(&f, None);
    let last = b.model_safetensors.len() - 1;
    b.model_safetensors[last] ^= 0x01;
    let err = b.verify(f.ca.cert_pem()).unwrap_err();
    assert!(
        matches!(err, BundleError::ModelHashMismatch { round: 2, .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("model.safetensors was changed") && text.contains("round 2"),
        "{text}"
    );
}

#[test]
fn a_changed_encoder_names_the_logged_encoder_hash() {
    let f = fixture();
    let mut b = bundle(&f, None);
    flip_last_digit(&mut b.encoder_json, "\"mean\"");
    let err = b.verify(f.ca.cert_pem()).unwrap_err();
    assert!(
        matches!(
            err,
            BundleError::EncoderHashMismatch {
                kind: kind::ENCODER_FITTED,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("encoder.json was changed"),
        "{err}"
    );
}

#[test]
fn a_changed_threshold_names_the_field() {
    let f = fixture();
    let mut b = bundle(&f, None);
    flip_last_digit(b.threshold_json.as_mut().unwrap(), "\"threshold\"");
    let err = b.verify(f.ca.cert_pem()).unwrap_err();
    assert!(
        matches!(
            err,
            BundleError::ThresholdMismatch {
                field: "threshold",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("threshold.json was changed"),
        "{err}"
    );

    let mut garbled = bundle(&f, None);
    garbled.threshold_json.as_mut().unwrap()[0] ^= 0x01;
    let err = garbled.verify(f.ca.cert_pem()).unwrap_err();
    assert!(err.to_string().contains("threshold.json"), "{err}");

    let mut dropped = bundle(&f, None);
    dropped.threshold_json = None;
    assert!(matches!(
        dropped.verify(f.ca.cert_pem()),
        Err(BundleError::ThresholdFileMissing { .. })
    ));
}

#[test]
fn a_checkpoint_and_proofs_from_another_log_fail_inclusion() {
    let f = fixture();
    // Same CA, same federation name, different history.
    let other = log_with(Rc::clone(&f.ca), FEDERATION, 99);
    let mut ours: Provenance = bundle(&f, None).provenance().unwrap();
    let theirs = bundle(&other, None).provenance().unwrap();
    ours.checkpoint = theirs.checkpoint.clone();
    ours.coordinator_certificate = theirs.coordinator_certificate.clone();
    for (o, t) in ours.entries.iter_mut().zip(&theirs.entries) {
        o.inclusion_proof = t.inclusion_proof.clone();
    }
    let mut b = bundle(&f, None);
    b.provenance_json = serde_json::to_vec(&ours).unwrap();
    let err = b.verify(f.ca.cert_pem()).unwrap_err();
    assert!(matches!(err, BundleError::NotIncluded { .. }), "{err}");
}

#[test]
fn a_wrong_ca_or_a_non_coordinator_certificate_is_refused() {
    let f = fixture();
    let b = bundle(&f, None);
    let stranger = CertificateAuthority::generate("elsewhere").unwrap();
    let err = b.verify(stranger.cert_pem()).unwrap_err();
    assert!(matches!(err, BundleError::Certificate { .. }), "{err}");
    assert!(err.to_string().contains("federation CA"), "{err}");

    let mut p = b.provenance().unwrap();
    p.coordinator_certificate =
        f.ca.issue(&Identity::new(Role::Participant, "soc-ee").unwrap(), &[])
            .unwrap()
            .cert_pem;
    let mut forged = b.clone();
    forged.provenance_json = serde_json::to_vec(&p).unwrap();
    let err = forged.verify(f.ca.cert_pem()).unwrap_err();
    assert!(err.to_string().contains("participant"), "{err}");
}

#[test]
fn an_edited_summary_or_a_dropped_entry_is_named() {
    let f = fixture();
    let b = bundle(&f, None);
    let mut p = b.provenance().unwrap();
    p.round = 1;
    let mut edited = b.clone();
    edited.provenance_json = serde_json::to_vec(&p).unwrap();
    assert!(matches!(
        edited.verify(f.ca.cert_pem()),
        Err(BundleError::SummaryMismatch { field: "round", .. })
    ));

    let mut p = b.provenance().unwrap();
    p.entries.retain(|e| e.kind != kind::ROUND_MODEL);
    let mut dropped = b.clone();
    dropped.provenance_json = serde_json::to_vec(&p).unwrap();
    assert!(matches!(
        dropped.verify(f.ca.cert_pem()),
        Err(BundleError::EntryMissing {
            kind: kind::ROUND_MODEL
        })
    ));
}

#[test]
fn reading_names_the_missing_or_garbled_file_and_writing_spares_other_folders() {
    let f = fixture();
    let b = bundle(&f, None);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b");
    b.write(&out).unwrap();
    std::fs::remove_file(out.join("encoder.json")).unwrap();
    let err = Bundle::read(&out).unwrap_err();
    assert!(err.to_string().contains("encoder.json"), "{err}");

    std::fs::write(out.join("encoder.json"), &b.encoder_json).unwrap();
    std::fs::write(out.join("provenance.json"), b"{not json").unwrap();
    let err = Bundle::read(&out)
        .unwrap()
        .verify(f.ca.cert_pem())
        .unwrap_err();
    assert!(
        matches!(
            err,
            BundleError::Garbled {
                file: "provenance.json",
                ..
            }
        ),
        "{err}"
    );

    let precious = dir.path().join("precious");
    std::fs::create_dir(&precious).unwrap();
    std::fs::write(precious.join("notes.txt"), b"keep").unwrap();
    assert!(matches!(
        b.write(&precious),
        Err(BundleError::NotABundleFolder { .. })
    ));
    assert!(precious.join("notes.txt").exists());
}

#[test]
fn a_malformed_blob_is_refused_never_panics() {
    let f = fixture();
    let bytes = bundle(&f, None).to_bytes();
    for cut in [0, 5, 12, 40, bytes.len() - 1] {
        assert!(Bundle::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        Bundle::from_bytes(&trailing),
        Err(BundleError::Container { .. })
    ));
}
