//! The data scientist's and auditor's side of the `Admin` service: a
//! client configuration (`control.toml`), the connection, and the status
//! table `fedsoc round status` prints.
//!
//! The caller is its certificate: a data-scientist certificate may start
//! and stop rounds, an auditor's may only read status. The coordinator
//! enforces this; the client only reports its answer.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fedsoc_conf::ConfError;
use fedsoc_pki::TlsFiles;
use fedsoc_proto::v1::admin_client::AdminClient;
use fedsoc_proto::v1::{
    StartRoundsRequest, StatusReply, StatusRequest, StopRoundsReply, StopRoundsRequest,
};
use serde::{Deserialize, Serialize};
use tonic::transport::{Channel, Endpoint};

/// `control.toml`: where the coordinator is and which certificate to use.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// The coordinator's URL, e.g. "https://coordinator.example.eu:7443".
    pub coordinator: String,
    /// Name in the coordinator's certificate; defaults to the URL's host.
    #[serde(default)]
    pub server_name: Option<String>,
    pub tls: ControlTls,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlTls {
    pub ca: PathBuf,
    /// A data-scientist or auditor certificate.
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ControlConfig {
    /// Loads `control.toml`; paths are relative to it.
    pub fn load(path: &Path) -> Result<Self, ConfError> {
        let mut config: ControlConfig = fedsoc_conf::load(path)?;
        for p in [
            &mut config.tls.ca,
            &mut config.tls.cert,
            &mut config.tls.key,
        ] {
            *p = fedsoc_conf::resolve(path, p);
        }
        config.validate(path)?;
        Ok(config)
    }

    pub fn validate(&self, path: &Path) -> Result<(), ConfError> {
        fedsoc_conf::check_coordinator_url(
            path,
            "coordinator",
            &self.coordinator,
            &self.server_name(),
        )?;
        Ok(())
    }

    pub fn server_name(&self) -> String {
        self.server_name
            .clone()
            .unwrap_or_else(|| fedsoc_conf::url_host(&self.coordinator))
    }

    fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            ca: self.tls.ca.clone(),
            cert: self.tls.cert.clone(),
            key: self.tls.key.clone(),
        }
    }
}

/// Why a control command failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Pki(#[from] fedsoc_pki::PkiError),
    #[error("cannot reach the coordinator at {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("the coordinator refused: {0}")]
    Refused(String),
}

impl From<tonic::Status> for ControlError {
    fn from(status: tonic::Status) -> Self {
        ControlError::Refused(format!("{:?}: {}", status.code(), status.message()))
    }
}

/// A mutual-TLS connection to the coordinator's admin service.
pub struct Control {
    client: AdminClient<Channel>,
}

impl Control {
    pub async fn connect(config: &ControlConfig) -> Result<Self, ControlError> {
        let url = config.coordinator.clone();
        let fail = |e: &dyn std::error::Error| ControlError::Connect {
            url: url.clone(),
            detail: error_chain(e),
        };
        let tls = config.tls_files().client_config(&config.server_name())?;
        let channel = Endpoint::from_shared(url.clone())
            .map_err(|e| fail(&e))?
            .tls_config(tls)
            .map_err(|e| fail(&e))?
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
            .map_err(|e| fail(&e))?;
        Ok(Control {
            client: AdminClient::new(channel),
        })
    }

    /// Queues `rounds` more rounds; returns how many are queued now.
    pub async fn start(&mut self, rounds: u32) -> Result<u32, ControlError> {
        let reply = self
            .client
            .start_rounds(StartRoundsRequest { rounds })
            .await?;
        Ok(reply.into_inner().queued)
    }

    pub async fn stop(&mut self, abort_current: bool) -> Result<StopRoundsReply, ControlError> {
        let reply = self
            .client
            .stop_rounds(StopRoundsRequest { abort_current })
            .await?;
        Ok(reply.into_inner())
    }

    pub async fn status(&mut self) -> Result<StatusReply, ControlError> {
        Ok(self.client.status(StatusRequest {}).await?.into_inner())
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The status as a table for a terminal: the federation line, the running
/// round with its stage, who is in and who dropped, then recent rounds.
pub fn render_status(status: &StatusReply) -> String {
    let mut out = String::new();
    let connected = status.connected.len();
    let _ = writeln!(
        out,
        "federation {}   completed {}   queued {}   connected {}/{} (a round needs {})",
        status.federation,
        status.completed_rounds,
        status.queued_rounds,
        connected,
        status.roster.len(),
        status.min_participants
    );
    let offline: Vec<&String> = status
        .roster
        .iter()
        .filter(|id| !status.connected.contains(id))
        .collect();
    if !offline.is_empty() {
        let names: Vec<&str> = offline.iter().map(|s| s.as_str()).collect();
        let _ = writeln!(out, "offline: {}", names.join(", "));
    }
    if !status.halted.is_empty() {
        let _ = writeln!(out, "HALTED: {}", status.halted);
    }
    match &status.running {
        Some(live) => {
            let now = now_ms();
            let _ = writeln!(
                out,
                "running: round {} (attempt {}), stage {} for {:.1} s, round for {:.1} s",
                live.round,
                live.attempt,
                live.stage,
                now.saturating_sub(live.stage_started_unix_ms) as f64 / 1000.0,
                now.saturating_sub(live.started_unix_ms) as f64 / 1000.0,
            );
            let _ = writeln!(out, "  in:      {}", live.members.join(", "));
            if !live.dropped.is_empty() {
                let _ = writeln!(out, "  dropped: {}", live.dropped.join("; "));
            }
        }
        None => {
            let _ = writeln!(out, "running: none");
        }
    }
    let _ = writeln!(
        out,
        "\n{:>6}  {:>8}  {:>10}  {:>10}  {:<16}  dropped",
        "round", "included", "samples", "mean loss", "model"
    );
    for r in &status.recent {
        let _ = writeln!(
            out,
            "{:>6}  {:>8}  {:>10}  {:>10.5}  {:<16}  {}",
            r.round,
            r.included.len(),
            r.samples,
            r.mean_loss,
            &r.model_sha256[..r.model_sha256.len().min(16)],
            if r.dropped.is_empty() {
                "-".to_string()
            } else {
                r.dropped.join("; ")
            }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedsoc_proto::v1::{LiveRound, RoundSummary};

    #[test]
    fn status_table_names_stage_members_dropouts_and_offline() {
        let status = StatusReply {
            federation: "eu-soc".into(),
            completed_rounds: 2,
            queued_rounds: 3,
            connected: vec!["soc-de".into(), "soc-fr".into()],
            roster: vec!["soc-de".into(), "soc-fr".into(), "soc-it".into()],
            min_participants: 2,
            running: Some(LiveRound {
                round: 3,
                attempt: 1,
                stage: "masked-input".into(),
                members: vec!["soc-de".into(), "soc-fr".into()],
                dropped: vec!["soc-fr: missed the deadline of stage 2".into()],
                ..Default::default()
            }),
            recent: vec![RoundSummary {
                round: 2,
                included: vec!["soc-de".into(), "soc-fr".into()],
                dropped: vec![],
                mean_loss: 0.25,
                samples: 8000,
                model_sha256: "ab".repeat(32),
            }],
            halted: String::new(),
        };
        let table = render_status(&status);
        for needle in [
            "completed 2",
            "queued 3",
            "connected 2/3",
            "offline: soc-it",
            "round 3 (attempt 1), stage masked-input",
            "dropped: soc-fr: missed the deadline",
            "0.25000",
        ] {
            assert!(table.contains(needle), "{needle:?} missing in\n{table}");
        }
    }

    #[test]
    fn control_config_needs_https() {
        let text = "coordinator = \"http://x:1\"\n[tls]\nca = \"ca.pem\"\ncert = \"a.pem\"\nkey = \"a.key\"\n";
        let path = Path::new("control.toml");
        let config: ControlConfig = fedsoc_conf::parse(path, text).unwrap();
        let err = config.validate(path).unwrap_err().to_string();
        assert!(err.contains("https://"), "{err}");
    }
}
