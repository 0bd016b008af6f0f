//! A federation of real `fedsoc` processes on loopback for process-level
//! tests: one coordinator and N participants, each a child process with
//! its own log file, killable with SIGKILL and restartable on the same
//! port and folders.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fedsoc_audit::AuditLog;
use fedsoc_coordinator::trail::{RoundAggregated, RoundOpened, kind};
use fedsoc_pki::{CertificateAuthority, Identity, Role};

pub fn fedsoc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fedsoc"))
}

/// Settings of a test federation.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub participants: usize,
    pub min_participants: usize,
    pub stage_timeout_s: u64,
    pub round_timeout_s: u64,
    pub rows: usize,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            participants: 4,
            min_participants: 3,
            stage_timeout_s: 5,
            round_timeout_s: 30,
            rows: 400,
        }
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub ids: Vec<String>,
    pub ca: CertificateAuthority,
    coordinator: Option<Child>,
    participants: HashMap<String, Child>,
    /// Log files written so far, by process name.
    starts: HashMap<String, usize>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// Certificates and configuration files; nothing runs yet.
    pub fn new(spec: &ClusterSpec) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let pki = root.join("pki");
        std::fs::create_dir_all(&pki).unwrap();
        let ca = CertificateAuthority::generate("faults").unwrap();
        ca.save(&pki).unwrap();
        // As `fedsoc pki init` does: the coordinator requires a CRL.
        fedsoc_pki::PkiDir::new(&pki)
            .sign_crl(fedsoc_pki::crl::CRL_VALIDITY_DAYS, 0)
            .unwrap();
        ca.issue(
            &Identity::new(Role::Coordinator, "coordinator").unwrap(),
            &["localhost".to_string(), "127.0.0.1".to_string()],
        )
        .unwrap()
        .save(&pki, "coordinator")
        .unwrap();
        let ids: Vec<String> = (0..spec.participants).map(|i| format!("soc-{i}")).collect();
        for id in &ids {
            ca.issue(&Identity::participant(id.clone()).unwrap(), &[])
                .unwrap()
                .save(&pki, id)
                .unwrap();
        }
        for (role, id) in [(Role::DataScientist, "analyst"), (Role::Auditor, "auditor")] {
            ca.issue(&Identity::new(role, id).unwrap(), &[])
                .unwrap()
                .save(&pki, id)
                .unwrap();
        }
        let port = free_port();
        std::fs::write(
            root.join("coordinator.toml"),
            format!(
                r#"federation = "faults"
listen = "127.0.0.1:{port}"

[tls]
ca = "pki/ca.pem"
cert = "pki/coordinator.pem"
key = "pki/coordinator.key"

[roster]
participants = {ids:?}
data_scientists = ["analyst"]
auditors = ["auditor"]

[model]
hidden = [16, 8]
seed = 3

[rounds]
count = 0
min_participants = {min}
round_timeout_s = {round_timeout}
max_retries = 20
retry_pause_s = 1

[aggregation]
mode = "secure"
ring_bits = 64
quant_bits = 16
clip = 1.0
max_samples = 1048576
neighbors = 0
threshold = 0
stage_timeout_s = {stage_timeout}

[storage]
dir = "state"
"#,
                min = spec.min_participants,
                round_timeout = spec.round_timeout_s,
                stage_timeout = spec.stage_timeout_s,
            ),
        )
        .unwrap();
        for (site, id) in ids.iter().enumerate() {
            std::fs::write(
                root.join(format!("{id}.toml")),
                format!(
                    r#"id = "{id}"
coordinator = "https://localhost:{port}"
contributions = "contributions/{id}"

[tls]
ca = "pki/ca.pem"
cert = "pki/{id}.pem"
key = "pki/{id}.key"

[data]
source = "synthetic"
site = {site}
seed = 5
rows = {rows}

[reconnect]
initial_backoff_ms = 100
max_backoff_ms = 1000
"#,
                    rows = spec.rows
                ),
            )
            .unwrap();
        }
        for who in ["analyst", "auditor", "soc-0"] {
            std::fs::write(
                root.join(format!("control-{who}.toml")),
                format!(
                    "coordinator = \"https://localhost:{port}\"\n[tls]\nca = \"pki/ca.pem\"\ncert = \"pki/{who}.pem\"\nkey = \"pki/{who}.key\"\n"
                ),
            )
            .unwrap();
        }
        Cluster {
            dir,
            port,
            ids,
            ca,
            coordinator: None,
            participants: HashMap::new(),
            starts: HashMap::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A new log file for the next start of `name`.
    fn next_log(&mut self, name: &str) -> PathBuf {
        let n = self.starts.entry(name.to_string()).or_insert(0);
        *n += 1;
        let n = *n;
        self.path().join(format!("{name}-{n}.log"))
    }

    /// The log file of the latest start of `name`.
    pub fn log(&self, name: &str) -> PathBuf {
        let n = self.starts.get(name).copied().unwrap_or(1);
        self.path().join(format!("{name}-{n}.log"))
    }

    fn spawn(&mut self, name: &str, args: &[&str], fault: Option<&str>) -> Child {
        let log = self.next_log(name);
        let file = std::fs::File::create(&log).unwrap();
        let mut command = fedsoc();
        command
            .current_dir(self.path())
            .args(["--log-format", "json", "--log", "info"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(file)
            .env_remove(fedsoc_proto::fault::FAULT_PAUSE_ENV);
        if let Some(fault) = fault {
            command.env(fedsoc_proto::fault::FAULT_PAUSE_ENV, fault);
        }
        command.spawn().unwrap()
    }

    pub fn start_coordinator(&mut self, fault: Option<&str>) {
        assert!(self.coordinator.is_none(), "the coordinator already runs");
        let child = self.spawn(
            "coordinator",
            &["coordinator", "serve", "--config", "coordinator.toml"],
            fault,
        );
        self.coordinator = Some(child);
        self.wait_log(
            "coordinator",
            "coordinator listening",
            Duration::from_secs(60),
        );
    }

    pub fn start_participant(&mut self, id: &str, fault: Option<&str>) {
        assert!(!self.participants.contains_key(id), "{id} already runs");
        let config = format!("{id}.toml");
        let child = self.spawn(id, &["participant", "run", "--config", &config], fault);
        self.participants.insert(id.to_string(), child);
    }

    /// Starts another agent process, logged and tracked as `name`, with
    /// participant `id`'s configuration (same id, same certificate): a
    /// second agent an operator started by mistake.
    pub fn start_participant_as(&mut self, name: &str, id: &str) {
        assert!(!self.participants.contains_key(name), "{name} already runs");
        let config = format!("{id}.toml");
        let child = self.spawn(name, &["participant", "run", "--config", &config], None);
        self.participants.insert(name.to_string(), child);
    }

    /// Whether the process started as `name` is still running.
    pub fn is_running(&mut self, name: &str) -> bool {
        self.participants
            .get_mut(name)
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    pub fn start_all_participants(&mut self) {
        for id in self.ids.clone() {
            self.start_participant(&id, None);
        }
    }

    /// SIGKILL: no destructor, no flush, no goodbye.
    pub fn kill_coordinator(&mut self) {
        let mut child = self.coordinator.take().expect("the coordinator runs");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Sends `signal` (e.g. "TERM", "INT") to the coordinator and waits,
    /// at most `patience`, for it to exit; returns how it exited.
    pub fn signal_coordinator(
        &mut self,
        signal: &str,
        patience: Duration,
    ) -> std::process::ExitStatus {
        let mut child = self.coordinator.take().expect("the coordinator runs");
        let sent = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} failed");
        wait_child(&mut child, patience).unwrap_or_else(|| {
            panic!(
                "the coordinator did not exit within {patience:?} of SIG{signal}:\n{}",
                tail(&std::fs::read_to_string(self.log("coordinator")).unwrap_or_default())
            )
        })
    }

    pub fn kill_participant(&mut self, id: &str) {
        let mut child = self.participants.remove(id).expect("the participant runs");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Waits until participant `id` has exited by itself.
    pub fn wait_exit(&mut self, id: &str, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(child) = self.participants.get_mut(id)
                && let Ok(Some(_)) = child.try_wait()
            {
                self.participants.remove(id);
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    pub fn stop_all(&mut self) {
        for (_, mut child) in self.participants.drain() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut child) = self.coordinator.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until the latest log of `name` contains `needle`.
    pub fn wait_log(&self, name: &str, needle: &str, timeout: Duration) {
        let path = self.log(name);
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.contains(needle) {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "{needle:?} not in {} after {timeout:?}:\n{}",
                path.display(),
                tail(&text)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every roster participant is connected.
    pub fn wait_all_connected(&self, timeout: Duration) {
        for id in &self.ids {
            self.wait_connected(id, timeout);
        }
    }

    /// Runs `fedsoc round …` with `control-WHO.toml`.
    pub fn round_command(&self, who: &str, args: &[&str]) -> std::process::Output {
        let config = format!("control-{who}.toml");
        fedsoc()
            .current_dir(self.path())
            .arg("round")
            .args(args)
            .args(["--config", &config])
            .output()
            .unwrap()
    }

    pub fn queue_rounds(&self, rounds: u32) {
        let out = self.round_command("analyst", &["start", "--rounds", &rounds.to_string()]);
        assert!(
            out.status.success(),
            "round start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn status(&self) -> Option<serde_json::Value> {
        let out = self.round_command("analyst", &["status", "--json"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The status once the coordinator answers.
    pub fn wait_status(&self, timeout: Duration) -> serde_json::Value {
        let start = Instant::now();
        loop {
            if let Some(status) = self.status() {
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "the coordinator did not answer status within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until participant `id` is connected.
    pub fn wait_connected(&self, id: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.status()
                && status["connected"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|p| p == id))
            {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "{id} not connected after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `round` is complete and nothing runs.
    pub fn wait_completed(&self, round: u64, timeout: Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.status()
                && status["completed_rounds"].as_u64().unwrap_or(0) >= round
                && status["running"].is_null()
            {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "round {round} not complete after {timeout:?}; status {:?}\ncoordinator log:\n{}",
                self.status(),
                tail(&std::fs::read_to_string(self.log("coordinator")).unwrap_or_default())
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `fedsoc audit verify` over the coordinator's folder, trusting our CA.
    pub fn audit_verify(&self) -> serde_json::Value {
        let out = fedsoc()
            .current_dir(self.path())
            .args(["audit", "verify", "state", "--ca", "pki/ca.pem", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "audit verify failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Every completed round attempt in the audit log.
    pub fn aggregated_rounds(&self) -> Vec<AggregatedRound> {
        let log = AuditLog::open_read_only(self.path().join("state/audit")).unwrap();
        let mut round_ids = BTreeMap::new();
        let mut out = Vec::new();
        for entry in log.entries() {
            let entry = entry.unwrap();
            match entry.kind.as_str() {
                kind::ROUND_OPENED => {
                    let o: RoundOpened = entry.body_json().unwrap();
                    let id = o.secagg.expect("secure rounds only").round_id;
                    round_ids.insert((o.round, o.attempt), id);
                }
                kind::ROUND_AGGREGATED => {
                    let a: RoundAggregated = entry.body_json().unwrap();
                    out.push(AggregatedRound {
                        round: a.round,
                        attempt: a.attempt,
                        round_id: round_ids[&(a.round, a.attempt)].clone(),
                        survivors: a.survivors,
                        sum: log.blobs().get(&a.sum).unwrap(),
                    });
                }
                _ => {}
            }
        }
        out
    }

    /// Attempts opened per round.
    pub fn attempts(&self) -> BTreeMap<u64, u32> {
        let log = AuditLog::open_read_only(self.path().join("state/audit")).unwrap();
        let mut attempts = BTreeMap::new();
        for entry in log.entries() {
            let entry = entry.unwrap();
            if entry.kind == kind::ROUND_OPENED {
                let o: RoundOpened = entry.body_json().unwrap();
                let n = attempts.entry(o.round).or_insert(0);
                *n = o.attempt.max(*n);
            }
        }
        attempts
    }

    /// Checks every aggregate in the log bit for bit against the sum of
    /// the survivors' own copies of what they contributed; returns the
    /// rounds checked.
    pub fn assert_aggregates_exact(&self) -> usize {
        let rounds = self.aggregated_rounds();
        for r in &rounds {
            let mut expected: Vec<u64> = Vec::new();
            for id in &r.survivors {
                let path = self.path().join(format!(
                    "contributions/{id}/round-{:06}-{}.u64",
                    r.round, r.round_id
                ));
                let bytes =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let words: Vec<u64> = bytes
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                if expected.is_empty() {
                    expected = vec![0; words.len()];
                }
                assert_eq!(words.len(), expected.len(), "{}", path.display());
                for (e, w) in expected.iter_mut().zip(words) {
                    *e = e.wrapping_add(w);
                }
            }
            let expected: Vec<u8> = expected.iter().flat_map(|w| w.to_le_bytes()).collect();
            assert!(
                expected == r.sum,
                "round {} attempt {}: the aggregate is not the sum of the survivors' inputs",
                r.round,
                r.attempt
            );
        }
        rounds.len()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// One `round.aggregated` entry, with the round id of its attempt.
#[derive(Clone, Debug)]
pub struct AggregatedRound {
    pub round: u64,
    pub attempt: u32,
    pub round_id: String,
    pub survivors: Vec<String>,
    pub sum: Vec<u8>,
}

/// Waits, at most `patience`, for `child` to exit; `None` (and the child
/// killed) if it did not.
pub fn wait_child(child: &mut Child, patience: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if start.elapsed() > patience {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
