//! A whole federation on one machine: a throwaway CA, a coordinator on
//! 127.0.0.1 and N participant agents, every link real mutual TLS. The
//! configuration files it writes are the same ones a real deployment uses,
//! loaded by the same loaders.

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use fedsoc_coordinator::config::StrategySection;
use fedsoc_coordinator::{Coordinator, CoordinatorConfig};
use fedsoc_datasets::{EncoderSpec, Records};
use fedsoc_participant::{Agent, ParticipantConfig, ParticipantError, RandomUpdates};
use fedsoc_pki::{CertificateAuthority, Identity, Role};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::ExperimentError;

/// What to set up.
#[derive(Clone, Debug)]
pub struct LocalFederationSpec {
    /// Folder for PKI, configuration files and coordinator storage.
    pub dir: PathBuf,
    pub participants: usize,
    /// Synthetic telemetry rows per participant.
    pub rows: usize,
    /// Seed of the data and of the model.
    pub seed: u64,
    pub epochs: u32,
    pub batch_size: u32,
    pub learning_rate: f64,
    pub hidden: Vec<usize>,
    pub min_participants: usize,
    pub round_timeout: Duration,
    /// Secure aggregation (the default), or plaintext for comparison.
    pub secure: bool,
    /// Seconds each secure-aggregation stage after training may take.
    pub stage_timeout_s: u64,
    /// SecAgg+ neighbours per participant; 0 lets the coordinator choose.
    pub neighbors: u32,
    /// Benchmarks: participants answer with random updates instead of
    /// training, and the first `vanishing` of them drop out mid-round.
    pub random_updates: Option<RandomUpdatePlan>,
    /// Experiments: each participant's rows, the federation's encoder and
    /// model; `None` is the synthetic telemetry of the demo.
    pub data: Option<FederationData>,
    /// Each participant keeps a copy of its quantised inputs in
    /// `contributions/<id>/`, so tests can check aggregates bit for bit.
    pub keep_contributions: bool,
    /// The coordinator's storage layer (crash tests pass a fault plan).
    pub disk: fedsoc_durable::Disk,
    /// Each participant keeps every completed round's verified bundle in
    /// `bundles/<id>/`.
    pub keep_bundles: bool,
    /// The federation's first encoder when `data` is `None` (e.g. a layout
    /// a statistics round fits); `None` is the synthetic preset.
    pub encoder: Option<EncoderSpec>,
    /// The coordinator's `[strategy]`: its server optimiser (default
    /// FedAvg, written as no section at all).
    pub strategy: StrategySection,
    /// `[metrics] listen` of the coordinator and every participant (port
    /// 0: the system picks one; see [`LocalFederation::metrics_addrs`]);
    /// `None`: no metrics served.
    pub metrics: Option<std::net::SocketAddr>,
}

/// Real data for a local federation: what each participant holds and
/// what the federation trains on it.
#[derive(Clone, Debug)]
pub struct FederationData {
    /// Written to `encoder.json` and named by the coordinator's config.
    pub encoder: EncoderSpec,
    /// Participant `i` trains on `records[i]`.
    pub records: Vec<Arc<Records>>,
    /// "autoencoder" or "classifier".
    pub model_kind: String,
    pub loss: String,
    pub focal_gamma: f64,
    pub proximal_mu: f64,
    /// `[training] class_weight`: the federation-wide attack weight of the
    /// balanced loss.
    pub class_weight: Option<f64>,
}

/// Random updates for a benchmark federation.
#[derive(Clone, Debug)]
pub struct RandomUpdatePlan {
    pub samples: u64,
    pub scale: f32,
    /// How many participants vanish after sharing keys in every round.
    pub vanishing: usize,
}

impl LocalFederationSpec {
    pub fn new(dir: &Path, participants: usize) -> Self {
        LocalFederationSpec {
            dir: dir.to_path_buf(),
            participants,
            rows: 4000,
            seed: 7,
            epochs: 1,
            batch_size: 64,
            learning_rate: 1e-3,
            hidden: vec![64, 32, 8],
            min_participants: participants.div_ceil(2).max(1),
            round_timeout: Duration::from_secs(300),
            secure: true,
            stage_timeout_s: 30,
            neighbors: 0,
            random_updates: None,
            data: None,
            keep_contributions: false,
            disk: fedsoc_durable::Disk::real(),
            encoder: None,
            keep_bundles: false,
            strategy: StrategySection::default(),
            metrics: None,
        }
    }
}

/// The participant id of synthetic site `i`: "soc-" and its country code.
pub fn participant_id(site: usize) -> String {
    let countries = fedsoc_datasets::synthetic::countries();
    let country = &countries[site % countries.len()];
    if site < countries.len() {
        format!("soc-{}", country.code)
    } else {
        format!("soc-{}-{}", country.code, site / countries.len())
    }
}

struct RunningAgent {
    id: String,
    /// Where its `/metrics` endpoint listens, when served.
    metrics: Option<std::net::SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ParticipantError>>,
}

/// A local federation whose coordinator is stopped (its participants go on
/// and reconnect once one listens again); see
/// [`LocalFederation::stop_coordinator`].
pub struct StoppedFederation {
    parts: Parts,
    port: u16,
}

/// Everything of a local federation but its coordinator.
struct Parts {
    dir: PathBuf,
    ca: CertificateAuthority,
    participant_configs: Vec<ParticipantConfig>,
    agents: Vec<RunningAgent>,
    random_updates: Option<RandomUpdatePlan>,
    records: Option<Vec<Arc<Records>>>,
}

/// A running local federation.
pub struct LocalFederation {
    pub coordinator: Coordinator,
    parts: Parts,
}

impl LocalFederation {
    /// Provisions certificates, writes configs, starts the coordinator and
    /// every participant, and waits until all participants have joined.
    pub async fn start(spec: &LocalFederationSpec) -> Result<Self, ExperimentError> {
        let pki = spec.dir.join("pki");
        std::fs::create_dir_all(&pki).map_err(|e| ExperimentError::io(&pki, e))?;
        let ca = CertificateAuthority::generate("local")?;
        ca.save(&pki)?;
        // As `fedsoc pki init` does: the coordinator requires a CRL.
        fedsoc_pki::PkiDir::new(&pki).sign_crl(fedsoc_pki::crl::CRL_VALIDITY_DAYS, 0)?;
        let hostnames = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        ca.issue(
            &Identity::new(Role::Coordinator, "coordinator")?,
            &hostnames,
        )?
        .save(&pki, "coordinator")?;
        let ids: Vec<String> = (0..spec.participants).map(participant_id).collect();
        for id in &ids {
            ca.issue(&Identity::participant(id.clone())?, &[])?
                .save(&pki, id)?;
        }
        ca.issue(&Identity::new(Role::DataScientist, "analyst")?, &[])?
            .save(&pki, "analyst")?;

        let first_encoder = spec
            .data
            .as_ref()
            .map(|d| &d.encoder)
            .or(spec.encoder.as_ref());
        if let Some(encoder) = first_encoder {
            let path = spec.dir.join("encoder.json");
            let json = serde_json::to_string_pretty(encoder)
                .map_err(|e| ExperimentError::Setup(format!("encoder to JSON: {e}")))?;
            write(&path, &json)?;
        }
        if let Some(data) = &spec.data
            && data.records.len() != spec.participants
        {
            return Err(ExperimentError::Setup(format!(
                "{} record sets for {} participants",
                data.records.len(),
                spec.participants
            )));
        }
        let coordinator_toml = spec.dir.join("coordinator.toml");
        write(&coordinator_toml, &coordinator_config_text(spec, &ids)?)?;
        let config = CoordinatorConfig::load(&coordinator_toml)?;
        let coordinator = Coordinator::start_on(&config, spec.disk.clone()).await?;
        let port = coordinator.local_addr().port();

        let mut participant_configs = Vec::new();
        for (site, id) in ids.iter().enumerate() {
            let path = spec.dir.join(format!("participant-{id}.toml"));
            write(&path, &participant_config_text(spec, id, site, port))?;
            participant_configs.push(ParticipantConfig::load(&path)?);
        }
        let mut federation = LocalFederation {
            coordinator,
            parts: Parts {
                dir: spec.dir.clone(),
                ca,
                participant_configs,
                agents: Vec::new(),
                random_updates: spec.random_updates.clone(),
                records: spec.data.as_ref().map(|d| d.records.clone()),
            },
        };
        for i in 0..spec.participants {
            federation.start_participant(i)?;
        }
        if !federation
            .coordinator
            .wait_for_participants(spec.participants, Duration::from_secs(60))
            .await
        {
            return Err(ExperimentError::Setup(format!(
                "only {:?} of {} participants joined within 60 s",
                federation.coordinator.shared().registry.connected(),
                spec.participants
            )));
        }
        Ok(federation)
    }

    /// The federation's folder (PKI, configuration files, storage).
    pub fn dir(&self) -> &Path {
        &self.parts.dir
    }

    /// The throwaway federation CA.
    pub fn ca(&self) -> &CertificateAuthority {
        &self.parts.ca
    }

    pub fn participant_ids(&self) -> Vec<String> {
        self.parts
            .participant_configs
            .iter()
            .map(|c| c.id.clone())
            .collect()
    }

    pub fn participant_config(&self, index: usize) -> &ParticipantConfig {
        &self.parts.participant_configs[index]
    }

    /// Participant `index`'s configuration, to change before (re)starting it.
    pub fn participant_config_mut(&mut self, index: usize) -> &mut ParticipantConfig {
        &mut self.parts.participant_configs[index]
    }

    /// Starts (or restarts) participant `index` as an in-process agent.
    pub fn start_participant(&mut self, index: usize) -> Result<(), ExperimentError> {
        self.start_participant_on(index, fedsoc_durable::Disk::real())
            .map(drop)
    }

    /// Starts participant `index` with its durable writes going through
    /// `disk`; returns the handle that kills it.
    pub fn start_participant_on(
        &mut self,
        index: usize,
        disk: fedsoc_durable::Disk,
    ) -> Result<tokio::task::AbortHandle, ExperimentError> {
        let config = self.parts.participant_configs[index].clone();
        let id = config.id.clone();
        let agent = match (&self.parts.random_updates, &self.parts.records) {
            (None, Some(records)) => Agent::with_records(config, records[index].clone())?,
            (None, None) => Agent::new(config)?,
            (Some(plan), _) => Agent::with_random_updates(
                config,
                RandomUpdates {
                    samples: plan.samples,
                    scale: plan.scale,
                    vanish_after_sharing_keys: index < plan.vanishing,
                },
            )?,
        };
        let agent = agent.on_disk(disk)?;
        let metrics = agent.metrics_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            agent
                .run(async {
                    let _ = stopped.await;
                })
                .await
        });
        let abort = task.abort_handle();
        self.parts.agents.push(RunningAgent {
            id,
            metrics,
            stop: Some(stop),
            task,
        });
        Ok(abort)
    }

    /// Waits, at most `patience`, for participant `id`'s agent to stop by
    /// itself (a refusal it will not retry), and returns how it ended;
    /// `None` if it is still running (or unknown).
    pub async fn wait_participant_exit(
        &mut self,
        id: &str,
        patience: Duration,
    ) -> Option<Result<(), ParticipantError>> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let position = self.parts.agents.iter().position(|a| a.id == id)?;
            if self.parts.agents[position].task.is_finished() {
                let agent = self.parts.agents.remove(position);
                return agent.task.await.ok();
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits, at most `patience`, until `n` participants' cosignatures
    /// over the latest checkpoint have arrived, writing them to the audit
    /// log; returns how many were written.
    pub async fn record_cosignatures(&self, n: usize, patience: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + patience;
        let mut recorded = 0;
        loop {
            match self.coordinator.record_cosignatures() {
                Ok(k) => recorded += k,
                Err(e) => {
                    tracing::warn!(error = %e, "could not record cosignatures");
                    return recorded;
                }
            }
            if recorded >= n || tokio::time::Instant::now() >= deadline {
                return recorded;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The `/metrics` addresses of the coordinator and of participant
    /// `id`'s running agent (its latest start), when `metrics` was set.
    pub fn metrics_addrs(
        &self,
        id: &str,
    ) -> (Option<std::net::SocketAddr>, Option<std::net::SocketAddr>) {
        let participant = self
            .parts
            .agents
            .iter()
            .rev()
            .find(|a| a.id == id)
            .and_then(|a| a.metrics);
        (self.coordinator.metrics_addr(), participant)
    }

    /// Whether participant `id`'s agent is running.
    pub fn participant_running(&self, id: &str) -> bool {
        self.parts
            .agents
            .iter()
            .any(|a| a.id == id && !a.task.is_finished())
    }

    /// Kills a participant abruptly, as a crashed machine would vanish.
    pub fn kill(&mut self, id: &str) {
        for agent in self.parts.agents.iter_mut().filter(|a| a.id == id) {
            agent.task.abort();
        }
        self.parts.agents.retain(|a| a.id != id);
    }

    /// Kills participant `id` and waits, at most `patience`, until the
    /// coordinator has seen its session end, so that "everyone connected"
    /// afterwards means its next session. False if it still shows.
    pub async fn kill_and_wait_gone(&mut self, id: &str, patience: Duration) -> bool {
        self.kill(id);
        let registry = &self.coordinator.shared().registry;
        let deadline = tokio::time::Instant::now() + patience;
        while registry.connected().iter().any(|c| c == id) {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Stops the coordinator as a crash would leave it: state on disk,
    /// participants running. Its storage (and the audit log's lock) is
    /// released when this returns.
    pub async fn stop_coordinator(self) -> StoppedFederation {
        let port = self.coordinator.local_addr().port();
        self.coordinator.shutdown().await;
        StoppedFederation {
            parts: self.parts,
            port,
        }
    }

    /// Stops every participant, then the coordinator.
    pub async fn shutdown(mut self) {
        for agent in &mut self.parts.agents {
            if let Some(stop) = agent.stop.take() {
                let _ = stop.send(());
            }
        }
        for agent in self.parts.agents.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), agent.task).await;
        }
        self.coordinator.shutdown().await;
    }
}

impl StoppedFederation {
    /// Starts a coordinator again on the same folder and port, writing
    /// through `disk`. On failure the federation stays stopped, to be
    /// started again.
    pub async fn start_coordinator(
        self,
        disk: fedsoc_durable::Disk,
    ) -> Result<LocalFederation, (StoppedFederation, ExperimentError)> {
        let mut config = match CoordinatorConfig::load(&self.parts.dir.join("coordinator.toml")) {
            Ok(config) => config,
            Err(e) => return Err((self, e.into())),
        };
        config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        match Coordinator::start_on(&config, disk).await {
            Ok(coordinator) => Ok(LocalFederation {
                coordinator,
                parts: self.parts,
            }),
            Err(e) => Err((self, e.into())),
        }
    }

    /// The federation's folder.
    pub fn dir(&self) -> &Path {
        &self.parts.dir
    }
}

fn write(path: &Path, text: &str) -> Result<(), ExperimentError> {
    std::fs::write(path, text).map_err(|e| ExperimentError::io(path, e))
}

fn coordinator_config_text(
    spec: &LocalFederationSpec,
    ids: &[String],
) -> Result<String, ExperimentError> {
    let strategy = if spec.strategy == StrategySection::default() {
        String::new()
    } else {
        let body = toml::to_string(&spec.strategy)
            .map_err(|e| ExperimentError::Setup(format!("[strategy] to TOML: {e}")))?;
        format!("\n[strategy]\n{body}")
    };
    Ok(format!(
        r#"# Written by fedsoc for a federation on this machine.
federation = "local"
listen = "127.0.0.1:0"

[tls]
ca = "pki/ca.pem"
cert = "pki/coordinator.pem"
key = "pki/coordinator.key"

[roster]
participants = {participants:?}
data_scientists = ["analyst"]

[model]
kind = "{kind}"
hidden = {hidden:?}
seed = {seed}
{features}
[training]
epochs = {epochs}
batch_size = {batch}
learning_rate = {lr:?}
loss = "{loss}"
focal_gamma = {gamma:?}
proximal_mu = {mu:?}
{class_weight}{strategy}
[rounds]
count = 0
min_participants = {min}
round_timeout_s = {timeout}

[aggregation]
mode = "{mode}"
ring_bits = 64
quant_bits = 16
clip = 1.0
max_samples = 1048576
neighbors = {neighbors}
threshold = 0
stage_timeout_s = {stage_timeout}

[storage]
dir = "."
{metrics}"#,
        participants = ids,
        kind = spec
            .data
            .as_ref()
            .map_or("autoencoder", |d| d.model_kind.as_str()),
        features = if spec.data.is_some() || spec.encoder.is_some() {
            "\n[features]\nencoder = \"encoder.json\"\n"
        } else {
            ""
        },
        loss = spec.data.as_ref().map_or("bce", |d| d.loss.as_str()),
        gamma = spec.data.as_ref().map_or(2.0, |d| d.focal_gamma),
        mu = spec.data.as_ref().map_or(0.0, |d| d.proximal_mu),
        class_weight = match spec.data.as_ref().and_then(|d| d.class_weight) {
            Some(w) => format!("class_weight = {w:?}\n"),
            None => String::new(),
        },
        hidden = spec.hidden,
        seed = spec.seed,
        epochs = spec.epochs,
        batch = spec.batch_size,
        lr = spec.learning_rate,
        min = spec.min_participants,
        timeout = spec.round_timeout.as_secs().max(1),
        mode = if spec.secure {
            "secure"
        } else {
            "plaintext-insecure"
        },
        stage_timeout = spec.stage_timeout_s.max(1),
        neighbors = spec.neighbors,
        metrics = metrics_section(spec),
    ))
}

/// `[metrics]` for a configuration file, or nothing.
fn metrics_section(spec: &LocalFederationSpec) -> String {
    match spec.metrics {
        Some(addr) => format!("\n[metrics]\nlisten = \"{addr}\"\n"),
        None => String::new(),
    }
}

fn participant_config_text(spec: &LocalFederationSpec, id: &str, site: usize, port: u16) -> String {
    format!(
        r#"# Written by fedsoc for a federation on this machine.
id = "{id}"
coordinator = "https://localhost:{port}"
{contributions}
[tls]
ca = "pki/ca.pem"
cert = "pki/{id}.pem"
key = "pki/{id}.key"

[data]
source = "synthetic"
site = {site}
seed = {seed}
rows = {rows}

[reconnect]
initial_backoff_ms = 200
max_backoff_ms = 5000
{metrics}"#,
        metrics = metrics_section(spec),
        seed = spec.seed,
        rows = spec.rows,
        contributions = [
            (spec.keep_contributions, "contributions"),
            (spec.keep_bundles, "bundles")
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, key)| format!("{key} = \"{key}/{id}\"\n"))
        .collect::<String>(),
    )
}
