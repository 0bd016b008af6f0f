//! A federation's signed audit log written directly (no coordinator run),
//! holding an autoencoder model per round with a calibrated threshold, and
//! the verified bundles built from it, for tests of what consumes bundles.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use fedsoc_audit::{AuditLog, now_ms};
use fedsoc_bundle::{Bundle, kind, sha256_hex};
use fedsoc_datasets::EncoderSpec;
use fedsoc_models::export::flat_sha256;
use fedsoc_models::{AutoencoderConfig, ModelConfig, initial_weights};
use fedsoc_pki::{CertificateAuthority, Identity, Role};
use serde_json::json;

/// A federation's log and CA in a temporary folder.
pub struct LoggedFederation {
    pub dir: tempfile::TempDir,
    pub name: String,
    pub ca_pem_path: PathBuf,
    coordinator_pem: String,
    encoder_json: String,
    config: ModelConfig,
    log: AuditLog,
}

impl LoggedFederation {
    pub fn new(name: &str) -> LoggedFederation {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::generate(name).unwrap();
        let ca_pem_path = dir.path().join("ca.pem");
        std::fs::write(&ca_pem_path, ca.cert_pem()).unwrap();
        let who = Identity::new(Role::Coordinator, "coordinator").unwrap();
        let issued = ca.issue(&who, &["localhost".into()]).unwrap();
        let key = SigningKey::from_pkcs8_pem(&issued.key_pem).unwrap();
        let mut log =
            AuditLog::open_or_create(dir.path().join("audit"), &format!("fedsoc/{name}"), key)
                .unwrap();
        let encoder = EncoderSpec::synthetic_default();
        let encoder_json = serde_json::to_string(&encoder).unwrap();
        let config = ModelConfig::Autoencoder(AutoencoderConfig {
            input_dim: encoder.dim(),
            hidden: vec![16, 4],
        });
        log.append_json(
            kind::FEDERATION_CREATED,
            &json!({
                "federation": name,
                "config_sha256": "00",
                "config_toml": "",
                "participants": ["soc-ee", "soc-fr"],
                "model_kind": "autoencoder",
                "model_input_dim": config.input_dim(),
                "model_hidden": [16, 4],
                "encoder_sha256": sha256_hex(encoder_json.as_bytes()),
            }),
        )
        .unwrap();
        LoggedFederation {
            dir,
            name: name.to_string(),
            ca_pem_path,
            coordinator_pem: issued.cert_pem,
            encoder_json,
            config,
            log,
        }
    }

    /// Logs round `round`'s model (weights seeded by `round`) and a
    /// threshold calibrated for it, under a new signed checkpoint; returns
    /// the model's hash.
    pub fn add_round(&mut self, round: u64, threshold: f64) -> String {
        let flat = initial_weights(&self.config, 1000 + round).unwrap();
        let bytes: Vec<u8> = flat.iter().flat_map(|v| v.to_le_bytes()).collect();
        let blob = self.log.blobs().put(&bytes).unwrap();
        let model_sha = flat_sha256(&flat);
        self.log
            .append_json(
                kind::ROUND_MODEL,
                &json!({
                    "round": round, "attempt": 1, "strategy": "fedavg",
                    "global_in_sha256": "00", "model": blob.to_string(),
                    "model_sha256": model_sha, "mean_loss": 0.5,
                }),
            )
            .unwrap();
        self.log
            .append_json(
                kind::THRESHOLD_CALIBRATED,
                &json!({
                    "round": round, "attempt": 1,
                    "model_sha256": model_sha,
                    "encoder_sha256": sha256_hex(self.encoder_json.as_bytes()),
                    "score": "reconstruction_mse", "false_alarm_rate": 0.01,
                    "threshold": threshold,
                    "score_interval": [threshold * 0.9, threshold * 1.1],
                    "false_alarm_interval": [0.008, 0.012], "benign_rows": 5000,
                }),
            )
            .unwrap();
        self.log.checkpoint(now_ms()).unwrap();
        model_sha
    }

    /// Writes round `round`'s verified bundle to `to` (which must not exist).
    pub fn write_bundle(&self, round: u64, to: &Path) {
        let bundle = Bundle::from_log(
            &self.log,
            Some(round),
            &self.coordinator_pem,
            &self.encoder_json,
        )
        .unwrap();
        bundle
            .verify(&std::fs::read_to_string(&self.ca_pem_path).unwrap())
            .unwrap();
        bundle.write(to).unwrap();
    }

    /// Drops round `round`'s bundle into a participant-style drop folder as
    /// `round-NNNNNN/`, atomically (written beside, then renamed).
    pub fn drop_bundle(&self, round: u64, folder: &Path) -> PathBuf {
        std::fs::create_dir_all(folder).unwrap();
        let temp = folder.join(format!(".incoming-{round}"));
        self.write_bundle(round, &temp);
        let dest = folder.join(format!("round-{round:06}"));
        std::fs::rename(&temp, &dest).unwrap();
        dest
    }
}
