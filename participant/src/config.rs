//! `participant.toml`: where the coordinator is, who we are, where our
//! telemetry is.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fedsoc_conf::{ConfError, invalid};
use fedsoc_datasets::ReadOptions;
use fedsoc_datasets::read::files::{self, FlowFormat};
use fedsoc_datasets::read::source::FlowSource;
use fedsoc_datasets::read::window::Window;
use fedsoc_pki::TlsFiles;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantConfig {
    /// Our id: must be the id in our certificate.
    pub id: String,
    /// The coordinator's URL, e.g. "https://coordinator.example.eu:7443".
    pub coordinator: String,
    /// Name in the coordinator's certificate; defaults to the URL's host.
    #[serde(default)]
    pub server_name: Option<String>,
    pub tls: TlsSection,
    pub data: DataSource,
    #[serde(default)]
    pub reconnect: ReconnectSection,
    /// A folder where this SOC keeps a copy of every quantised update it
    /// contributes to a secure round (`round-NNNNNN-<round id>.u64`), so
    /// its own auditors can check what it sent. Off by default; the copy
    /// never leaves this machine.
    #[serde(default)]
    pub contributions: Option<PathBuf>,
    /// A folder where the agent keeps the model bundle of every completed
    /// round (`round-NNNNNN/`, the last few), each verified against the
    /// federation CA before it is written: the SOC's detectors load the
    /// newest. Off by default.
    #[serde(default)]
    pub bundles: Option<PathBuf>,
    /// This participant's durable state: the last audit checkpoint it
    /// accepted, so a restart keeps holding the coordinator to its log.
    /// Defaults to `state/<id>` beside this file.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// What this participant demands of every secure round, whatever the
    /// coordinator proposes.
    #[serde(default)]
    pub secure_aggregation: SecureFloor,
    /// Share of the benign rows held out of training, on which a calibrate
    /// round scores the global model (a threshold set on rows the model
    /// trained on would be too low).
    #[serde(default = "default_validation_fraction")]
    pub validation_fraction: f64,
    /// Where Prometheus metrics are served; absent: not served.
    #[serde(default)]
    pub metrics: Option<fedsoc_conf::MetricsSection>,
}

fn default_validation_fraction() -> f64 {
    0.1
}

/// This participant's own floor under the coordinator's secure-aggregation
/// parameters (`[secure_aggregation]` in participant.toml).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecureFloor {
    /// Fewest members a round may have: in a sum of two, each member
    /// learns the other's update. At least 3.
    #[serde(default = "default_min_members")]
    pub min_members: usize,
    /// Members that may collude with a malicious coordinator, which the
    /// round's threshold must tolerate (c; see the README's threat model).
    #[serde(default)]
    pub colluders: usize,
}

fn default_min_members() -> usize {
    3
}

impl Default for SecureFloor {
    fn default() -> Self {
        SecureFloor {
            min_members: default_min_members(),
            colluders: 0,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where the participant's telemetry comes from. It never leaves the
/// participant: only model updates do.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "source", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DataSource {
    /// The built-in synthetic SOC telemetry of one country profile.
    Synthetic {
        /// Country profile index (0 = de, 1 = fr, …; wraps around).
        site: usize,
        #[serde(default)]
        seed: u64,
        #[serde(default = "default_rows")]
        rows: usize,
        /// Share of attack flows mixed into the training telemetry, as a
        /// real SOC's traffic is never perfectly clean.
        #[serde(default = "default_contamination")]
        contamination: f64,
    },
    /// An NSL-KDD file (plain or .gz).
    NslKdd {
        path: PathBuf,
        #[serde(default)]
        skip_bad_rows: bool,
        /// Refused: NSL-KDD rows carry no timestamp (see [`FlowLogs::since`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<String>,
        /// Refused, as `since`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<String>,
    },
    /// Any CSV flow export, described by a schema file (TOML).
    Csv {
        path: PathBuf,
        schema: PathBuf,
        #[serde(default)]
        skip_bad_rows: bool,
        /// Refused: a schema maps no timestamp column, so a time window
        /// could not select rows (see [`FlowLogs::since`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<String>,
        /// Refused, as `since`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<String>,
    },
    /// Zeek conn logs (TSV or JSON lines, plain or .gz).
    Zeek(FlowLogs),
    /// Suricata EVE JSON (flow events; plain or .gz).
    Suricata(FlowLogs),
}

/// A sensor's flow logs: `[data]` with `source = "zeek"` or `"suricata"`.
///
/// A national SOC's sensors write a week of rotated logs larger than any
/// training run needs, so a source names many files, keeps the rows of one
/// time window, and samples at most `max_rows` of them. The files are read
/// as one stream, row by row: with `max_rows`, memory is bounded by the
/// sample, not by the logs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FlowLogs {
    /// One log file; or a directory of rotated logs, searched with its
    /// subfolders for files named `conn.*` (Zeek) or `eve*` (Suricata)
    /// ending in `.log`, `.log.gz`, `.json` or `.json.gz` (Zeek's
    /// `2026-12-01/conn.00:00:00-01:00:00.log.gz` included); or a glob
    /// pattern such as `/var/log/zeek/*/conn.*.log.gz`. Files are read in
    /// sorted path order, plain or gzip, so the same logs give the same
    /// rows.
    pub path: PathBuf,
    /// Count and log malformed rows instead of stopping at the first.
    #[serde(default)]
    pub skip_bad_rows: bool,
    /// Keep rows stamped at or after this RFC 3339 time, e.g.
    /// "2026-12-01T00:00:00Z", by the row's own timestamp (Zeek `ts`;
    /// Suricata `timestamp`, else `flow.start`), not the file's name.
    /// With a window set, a row without a timestamp is malformed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Keep rows stamped before this RFC 3339 time (exclusive, so
    /// consecutive windows never share a row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Train on a uniform random sample of at most this many rows (of
    /// those in the window), so memory stays bounded however large the
    /// logs are. Unset: every row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<usize>,
    /// The sample's seed: the same logs and seed keep the same rows.
    #[serde(default)]
    pub sample_seed: u64,
}

impl FlowLogs {
    /// Flow logs at `path` with every other setting at its default.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        FlowLogs {
            path: path.into(),
            skip_bad_rows: false,
            since: None,
            until: None,
            max_rows: None,
            sample_seed: 0,
        }
    }

    /// What the datasets reader needs; the error names the `[data]` field
    /// at fault (`since`, `max_rows`) and the fix.
    pub fn flow_source(&self, format: FlowFormat) -> Result<FlowSource, (&'static str, String)> {
        let window = Window::parse(self.since.as_deref(), self.until.as_deref()).map_err(|e| {
            let field = if e.starts_with("`until`") {
                "until"
            } else {
                "since"
            };
            (field, e)
        })?;
        if self.max_rows == Some(0) {
            return Err((
                "max_rows",
                "is 0, so nothing would be trained on; set at least 1, or remove it to keep \
                 every row"
                    .into(),
            ));
        }
        Ok(FlowSource {
            format,
            path: self.path.clone(),
            read: ReadOptions {
                skip_bad_rows: self.skip_bad_rows,
            },
            window,
            max_rows: self.max_rows,
            sample_seed: self.sample_seed,
        })
    }
}

impl DataSource {
    /// The files this source reads, for resolving relative paths.
    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        match self {
            DataSource::Synthetic { .. } => Vec::new(),
            DataSource::Csv { path, schema, .. } => vec![path, schema],
            DataSource::NslKdd { path, .. } => vec![path],
            DataSource::Zeek(logs) | DataSource::Suricata(logs) => vec![&mut logs.path],
        }
    }

    /// A flow-log source as the datasets reader takes it; `None` for the
    /// other sources.
    pub fn flow_source(&self) -> Option<Result<FlowSource, (&'static str, String)>> {
        match self {
            DataSource::Zeek(logs) => Some(logs.flow_source(FlowFormat::Zeek)),
            DataSource::Suricata(logs) => Some(logs.flow_source(FlowFormat::Suricata)),
            _ => None,
        }
    }

    /// Refuses a time window on a source whose rows have no timestamp; the
    /// error names the `[data]` field and the fix.
    pub fn check_untimed(&self) -> Result<(), (&'static str, String)> {
        let (kind, since, until) = match self {
            DataSource::NslKdd { since, until, .. } => ("nsl-kdd", since, until),
            DataSource::Csv { since, until, .. } => ("csv", since, until),
            _ => return Ok(()),
        };
        let field = match (since, until) {
            (Some(_), _) => "since",
            (None, Some(_)) => "until",
            (None, None) => return Ok(()),
        };
        Err((
            field,
            format!(
                "a `{kind}` source's rows carry no timestamp, so a time window cannot select \
                 them; remove since/until, or read the sensor's Zeek conn logs or Suricata \
                 EVE JSON, whose rows are time-stamped"
            ),
        ))
    }
}

fn default_rows() -> usize {
    4000
}

fn default_contamination() -> f64 {
    0.01
}

/// Reconnection with jittered exponential backoff.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconnectSection {
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for ReconnectSection {
    fn default() -> Self {
        ReconnectSection {
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
        }
    }
}

impl ReconnectSection {
    /// The pause before attempt `attempt` (0-based): doubling up to the
    /// cap, with ±50 % jitter so participants do not reconnect in lockstep.
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let base = self
            .initial_backoff_ms
            .saturating_mul(1u64 << attempt.min(20))
            .min(self.max_backoff_ms);
        Duration::from_millis((base as f64 * (0.5 + jitter.clamp(0.0, 1.0))) as u64)
    }
}

impl ParticipantConfig {
    pub fn load(path: &Path) -> Result<Self, ConfError> {
        let mut config: ParticipantConfig = fedsoc_conf::load(path)?;
        for p in [
            &mut config.tls.ca,
            &mut config.tls.cert,
            &mut config.tls.key,
        ] {
            *p = fedsoc_conf::resolve(path, p);
        }
        for p in config.data.paths_mut() {
            *p = fedsoc_conf::resolve(path, p);
        }
        if let Some(dir) = &mut config.contributions {
            *dir = fedsoc_conf::resolve(path, dir);
        }
        if let Some(dir) = &mut config.bundles {
            *dir = fedsoc_conf::resolve(path, dir);
        }
        let state = config
            .state_dir
            .take()
            .unwrap_or_else(|| Path::new("state").join(&config.id));
        config.state_dir = Some(fedsoc_conf::resolve(path, &state));
        config.validate(path)?;
        Ok(config)
    }

    pub fn validate(&self, path: &Path) -> Result<(), ConfError> {
        if let Some(metrics) = &self.metrics {
            metrics.check(path)?;
        }
        if !(0.0..0.9).contains(&self.validation_fraction) {
            return Err(invalid(
                path,
                "validation_fraction",
                format!(
                    "{} is not a share between 0 and 0.9 of the benign rows, e.g. 0.1",
                    self.validation_fraction
                ),
            ));
        }
        fedsoc_pki::Identity::participant(self.id.clone())
            .map_err(|e| invalid(path, "id", e.to_string()))?;
        if self.secure_aggregation.min_members < 3 {
            return Err(invalid(
                path,
                "secure_aggregation.min_members",
                format!(
                    "is {}: in a secure round of two, each member learns the other's update; \
                     use 3 or more",
                    self.secure_aggregation.min_members
                ),
            ));
        }
        fedsoc_conf::check_coordinator_url(
            path,
            "coordinator",
            &self.coordinator,
            &self.server_name(),
        )?;
        match &self.data {
            DataSource::Synthetic {
                rows,
                contamination,
                ..
            } => {
                if *rows == 0 {
                    return Err(invalid(path, "data.rows", "must be at least 1"));
                }
                if !(0.0..=0.5).contains(contamination) {
                    return Err(invalid(
                        path,
                        "data.contamination",
                        "must be between 0.0 and 0.5",
                    ));
                }
            }
            DataSource::Zeek(_) | DataSource::Suricata(_) => {
                if let Some(source) = self.data.flow_source() {
                    let source =
                        source.map_err(|(field, e)| invalid(path, &format!("data.{field}"), e))?;
                    files::resolve(source.format, &source.path)
                        .map_err(|e| invalid(path, "data.path", e.to_string()))?;
                }
            }
            other => {
                other
                    .check_untimed()
                    .map_err(|(field, e)| invalid(path, &format!("data.{field}"), e))?;
                let mut other = other.clone();
                for file in other.paths_mut() {
                    if !file.is_file() {
                        return Err(invalid(
                            path,
                            "data.path",
                            format!("{} does not exist or is not a file", file.display()),
                        ));
                    }
                }
            }
        }
        if self.reconnect.initial_backoff_ms == 0
            || self.reconnect.max_backoff_ms < self.reconnect.initial_backoff_ms
        {
            return Err(invalid(
                path,
                "reconnect",
                "initial_backoff_ms must be at least 1 and at most max_backoff_ms",
            ));
        }
        Ok(())
    }

    /// The TLS name to expect on the coordinator's certificate.
    pub fn server_name(&self) -> String {
        if let Some(name) = &self.server_name {
            return name.clone();
        }
        fedsoc_conf::url_host(&self.coordinator)
    }

    pub fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            ca: self.tls.ca.clone(),
            cert: self.tls.cert.clone(),
            key: self.tls.key.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_from_url() {
        let mut c = ParticipantConfig {
            id: "a".into(),
            coordinator: "https://coord.example.eu:7443".into(),
            server_name: None,
            tls: TlsSection {
                ca: "ca".into(),
                cert: "c".into(),
                key: "k".into(),
            },
            data: DataSource::Synthetic {
                site: 0,
                seed: 0,
                rows: 1,
                contamination: 0.0,
            },
            reconnect: ReconnectSection::default(),
            contributions: None,
            bundles: None,
            state_dir: None,
            secure_aggregation: SecureFloor::default(),
            validation_fraction: 0.1,
            metrics: None,
        };
        assert_eq!(c.server_name(), "coord.example.eu");
        c.coordinator = "https://[::1]:7443/".into();
        assert_eq!(c.server_name(), "::1");
        c.server_name = Some("localhost".into());
        assert_eq!(c.server_name(), "localhost");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let r = ReconnectSection {
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
        };
        assert_eq!(r.backoff(0, 0.5), Duration::from_millis(100));
        assert_eq!(r.backoff(3, 0.5), Duration::from_millis(800));
        assert_eq!(r.backoff(10, 0.5), Duration::from_millis(1000));
        assert_eq!(r.backoff(10, 0.0), Duration::from_millis(500));
    }

    #[test]
    fn malformed_file_names_file_field_and_problem() {
        let dir = std::env::temp_dir().join(format!("fedsoc-pcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("participant.toml");
        std::fs::write(
            &path,
            "id = \"soc-de\"\ncoordinator = \"https://localhost:7443\"\n\
             [tls]\nca = \"ca.pem\"\ncert = \"c.pem\"\nkey = \"c.key\"\n\
             [data]\nsource = \"synthetic\"\nsite = \"first\"\n",
        )
        .unwrap();
        let err = ParticipantConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("participant.toml"), "{err}");
        assert!(
            err.contains("data") && err.contains("invalid type"),
            "{err}"
        );
        std::fs::write(
            &path,
            "id = \"soc-de\"\ncoordinator = \"http://localhost:7443\"\n\
             [tls]\nca = \"ca.pem\"\ncert = \"c.pem\"\nkey = \"c.key\"\n\
             [data]\nsource = \"synthetic\"\nsite = 1\n",
        )
        .unwrap();
        let err = ParticipantConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("field `coordinator`") && err.contains("https://"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A participant.toml in a fresh folder with this `[data]` section.
    fn config_with_data(dir: &Path, data: &str) -> PathBuf {
        let path = dir.join("participant.toml");
        std::fs::write(
            &path,
            format!(
                "id = \"soc-de\"\ncoordinator = \"https://localhost:7443\"\n\
                 [tls]\nca = \"ca.pem\"\ncert = \"c.pem\"\nkey = \"c.key\"\n[data]\n{data}"
            ),
        )
        .unwrap();
        path
    }

    #[test]
    fn flow_logs_take_a_directory_a_window_and_a_sample() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("zeek/2026-12-01");
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::write(logs.join("conn.00:00:00-01:00:00.log"), "#fields\tts\n").unwrap();
        let path = config_with_data(
            dir.path(),
            "source = \"zeek\"\npath = \"zeek\"\nsince = \"2026-12-01T00:00:00Z\"\n\
             until = \"2026-12-02T00:00:00Z\"\nmax_rows = 1000000\nsample_seed = 3\n",
        );
        let config = ParticipantConfig::load(&path).unwrap();
        let DataSource::Zeek(logs) = &config.data else {
            panic!("{:?}", config.data)
        };
        assert_eq!(logs.path, dir.path().join("zeek"));
        assert_eq!((logs.max_rows, logs.sample_seed), (Some(1_000_000), 3));

        let pattern = "source = \"zeek\"\npath = \"zeek/*/dns.*.log\"\n";
        let e = ParticipantConfig::load(&config_with_data(dir.path(), pattern))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("data.path") && e.contains("dns.*.log") && e.contains("matches no file"),
            "{e}"
        );
        for (data, field, says) in [
            ("since = \"1 Dec 2026\"", "data.since", "RFC 3339"),
            ("until = \"2026-12-01\"", "data.until", "RFC 3339"),
            ("max_rows = 0", "data.max_rows", "at least 1"),
        ] {
            let data = format!("source = \"suricata\"\npath = \"zeek\"\n{data}\n");
            let e = ParticipantConfig::load(&config_with_data(dir.path(), &data))
                .unwrap_err()
                .to_string();
            assert!(e.contains(field) && e.contains(says), "{e}");
        }
    }

    #[test]
    fn a_time_window_on_a_csv_source_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("flows.csv"), "a\n1\n").unwrap();
        std::fs::write(dir.path().join("schema.toml"), "").unwrap();
        let path = config_with_data(
            dir.path(),
            "source = \"csv\"\npath = \"flows.csv\"\nschema = \"schema.toml\"\n\
             since = \"2026-12-01T00:00:00Z\"\n",
        );
        let e = ParticipantConfig::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("data.since")
                && e.contains("no timestamp")
                && e.contains("remove since/until"),
            "{e}"
        );
        let path = config_with_data(
            dir.path(),
            "source = \"nsl-kdd\"\npath = \"flows.csv\"\nuntil = \"2026-12-01T00:00:00Z\"\n",
        );
        let e = ParticipantConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("data.until") && e.contains("`nsl-kdd`"), "{e}");
    }
}
