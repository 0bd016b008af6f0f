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
    StartRoundsReply, StartRoundsRequest, StatusReply, StatusRequest, StopRoundsReply,
    StopRoundsRequest,
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

    /// Queues `rounds` more rounds; the reply says how many are queued now
    /// and how many roster participants are online.
    /// Queues `rounds` rounds of `kind` ("train", "statistics" or
    /// "calibrate").
    pub async fn start(
        &mut self,
        rounds: u32,
        kind: &str,
    ) -> Result<StartRoundsReply, ControlError> {
        let reply = self
            .client
            .start_rounds(StartRoundsRequest {
                rounds,
                kind: kind.to_string(),
            })
            .await?;
        Ok(reply.into_inner())
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

fn rounds(n: u64) -> String {
    if n == 1 {
        "1 round".to_string()
    } else {
        format!("{n} rounds")
    }
}

/// What `fedsoc round start` says: what was queued and whether enough
/// participants are online for it to run, and if not, what to do.
pub fn render_started(requested: u32, reply: &StartRoundsReply) -> String {
    let mut out = format!(
        "queued {}; {} in the queue now",
        rounds(requested as u64),
        reply.queued
    );
    // A coordinator from before these fields leaves them at zero.
    if reply.roster_size == 0 {
        return out;
    }
    let online = format!(
        "{} of {} participants online, a round needs {}",
        reply.online, reply.roster_size, reply.min_participants
    );
    if reply.online < reply.min_participants {
        let _ = write!(
            out,
            "\n{online}: start the participants (fedsoc participant run --config participant.toml on each SOC machine); \
             the rounds run once {} are connected",
            reply.min_participants
        );
        if !reply.offline.is_empty() {
            let _ = write!(out, "\noffline: {}", reply.offline.join(", "));
        }
    } else {
        let _ = write!(out, "\n{online}");
    }
    out
}

/// What `fedsoc round stop` says: what was taken off (none of it will
/// run) and what became of the round running at the time.
pub fn render_stopped(reply: &StopRoundsReply) -> String {
    let mut out = format!("took {} off the queue", rounds(reply.dequeued as u64));
    match (reply.running_round, reply.aborted_running) {
        (0, true) => out.push_str("; the running round is being aborted"),
        (0, false) => {}
        (round, true) => {
            let _ = write!(out, "; the running round {round} is being aborted");
        }
        (round, false) => {
            let _ = write!(
                out,
                "; round {round} was already running and finishes \
                 (fedsoc round stop --abort to end it too)"
            );
        }
    }
    out
}

/// One line of `fedsoc round start --follow` without a terminal: where
/// the federation stands, as far as following the queue cares. A new
/// line is printed whenever it changes.
pub fn render_progress(status: &StatusReply) -> String {
    let connected = status
        .roster
        .iter()
        .filter(|id| status.connected.contains(id))
        .count();
    match &status.running {
        Some(live) => format!(
            "round {} (attempt {}): {} with {} participants",
            live.round,
            live.attempt,
            live.stage,
            live.members.len()
        ),
        None if status.queued_rounds == 0 => {
            format!("done: round {} complete", status.completed_rounds)
        }
        None if (connected as u32) < status.min_participants => format!(
            "round {}: waiting for participants, {} of {} online, a round needs {}",
            status.completed_rounds + 1,
            connected,
            status.roster.len(),
            status.min_participants
        ),
        None => format!(
            "round {}: opening, {} of {} participants online ({} queued)",
            status.completed_rounds + 1,
            connected,
            status.roster.len(),
            rounds(status.queued_rounds as u64)
        ),
    }
}

/// The line `--follow` prints for a completed round.
pub fn render_completed(round: &fedsoc_proto::v1::RoundSummary) -> String {
    let mut out = format!(
        "round {} complete: {} participants, {} samples, mean loss {:.5}, model {}",
        round.round,
        round.included.len(),
        round.samples,
        round.mean_loss,
        &round.model_sha256[..round.model_sha256.len().min(16)]
    );
    if !round.dropped.is_empty() {
        let _ = write!(out, "; dropped: {}", round.dropped.join("; "));
    }
    out
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
                "running: round {} ({}, attempt {}), stage {} for {:.1} s, round for {:.1} s",
                live.round,
                if live.kind.is_empty() {
                    "train"
                } else {
                    &live.kind
                },
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
        "\n{:>6}  {:<9}  {:>8}  {:>10}  {:>10}  {:<16}  dropped",
        "round", "kind", "included", "rows", "mean loss", "model"
    );
    for r in &status.recent {
        let _ = writeln!(
            out,
            "{:>6}  {:<9}  {:>8}  {:>10}  {:>10.5}  {:<16}  {}",
            r.round,
            if r.kind.is_empty() { "train" } else { &r.kind },
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
                kind: String::new(),
            }],
            halted: String::new(),
        };
        let table = render_status(&status);
        for needle in [
            "completed 2",
            "queued 3",
            "connected 2/3",
            "offline: soc-it",
            "round 3 (train, attempt 1), stage masked-input",
            "dropped: soc-fr: missed the deadline",
            "0.25000",
        ] {
            assert!(table.contains(needle), "{needle:?} missing in\n{table}");
        }
    }

    #[test]
    fn start_says_who_is_online_and_what_to_do_when_too_few_are() {
        let mut reply = StartRoundsReply {
            queued: 1,
            online: 0,
            roster_size: 3,
            min_participants: 2,
            offline: vec!["soc-de".into(), "soc-fr".into(), "soc-it".into()],
        };
        let said = render_started(1, &reply);
        for needle in [
            "queued 1 round; 1 in the queue now",
            "0 of 3 participants online, a round needs 2: start the participants (fedsoc participant run --config",
            "offline: soc-de, soc-fr, soc-it",
        ] {
            assert!(said.contains(needle), "{needle:?} missing in\n{said}");
        }
        reply.online = 3;
        reply.offline.clear();
        reply.queued = 5;
        let said = render_started(4, &reply);
        assert_eq!(
            said,
            "queued 4 rounds; 5 in the queue now\n3 of 3 participants online, a round needs 2"
        );
        // An older coordinator does not say who is online.
        let said = render_started(
            2,
            &StartRoundsReply {
                queued: 2,
                ..Default::default()
            },
        );
        assert_eq!(said, "queued 2 rounds; 2 in the queue now");
    }

    #[test]
    fn stop_names_the_running_round_it_left_alone_or_aborted() {
        let said = render_stopped(&StopRoundsReply {
            dequeued: 1,
            ..Default::default()
        });
        assert_eq!(said, "took 1 round off the queue");
        let said = render_stopped(&StopRoundsReply {
            dequeued: 4,
            running_round: 7,
            aborted_running: false,
        });
        assert!(
            said.starts_with(
                "took 4 rounds off the queue; round 7 was already running and finishes"
            ) && said.contains("--abort"),
            "{said}"
        );
        let said = render_stopped(&StopRoundsReply {
            dequeued: 5,
            running_round: 7,
            aborted_running: true,
        });
        assert_eq!(
            said,
            "took 5 rounds off the queue; the running round 7 is being aborted"
        );
    }

    #[test]
    fn progress_lines_name_the_stage_or_what_the_round_waits_for() {
        let mut status = StatusReply {
            completed_rounds: 2,
            queued_rounds: 1,
            roster: vec!["soc-de".into(), "soc-fr".into(), "soc-it".into()],
            connected: vec!["soc-de".into()],
            min_participants: 2,
            ..Default::default()
        };
        assert_eq!(
            render_progress(&status),
            "round 3: waiting for participants, 1 of 3 online, a round needs 2"
        );
        status.connected.push("soc-fr".into());
        status.running = Some(LiveRound {
            round: 3,
            attempt: 2,
            stage: "unmask".into(),
            members: status.connected.clone(),
            ..Default::default()
        });
        assert_eq!(
            render_progress(&status),
            "round 3 (attempt 2): unmask with 2 participants"
        );
        status.running = None;
        status.completed_rounds = 3;
        status.queued_rounds = 0;
        assert_eq!(render_progress(&status), "done: round 3 complete");
        let line = render_completed(&RoundSummary {
            round: 3,
            included: vec!["soc-de".into(), "soc-fr".into()],
            dropped: vec!["soc-it: missed the deadline".into()],
            mean_loss: 0.25,
            samples: 800,
            model_sha256: "ab".repeat(32),
            kind: String::new(),
        });
        assert_eq!(
            line,
            "round 3 complete: 2 participants, 800 samples, mean loss 0.25000, model abababababababab; dropped: soc-it: missed the deadline"
        );
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
