//! The running coordinator: the gRPC server over mutual TLS, the state it
//! shares with its services, and the loop that runs queued rounds.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fedsoc_proto::MAX_MESSAGE_BYTES;
use fedsoc_proto::v1::admin_server::AdminServer;
use fedsoc_proto::v1::federation_server::FederationServer;
use tokio::sync::{Notify, oneshot};
use tokio_stream::wrappers::TcpListenerStream;

use crate::admin::AdminService;
use crate::config::{AggregationMode, CalibrationSection, CoordinatorConfig, StatisticsSection};
use crate::crl::CrlGate;
use crate::error::CoordinatorError;
use crate::federation::FederationSpec;
use crate::kind::{Conclusion, Query, RoundKind, SumState};
use crate::live::{self, LiveRound, RoundWatch};
use crate::metrics::Metrics;
use crate::optimizer::{OptimizerState, ServerOptimizer};
use crate::registry::Registry;
use crate::round::{Dropout, RoundPolicy, RoundReport, run_round};
use crate::secure_round::{RoundWork, SecureSettings, run_secure_round};
use crate::session::FederationService;
use crate::store::{Queue, RoundRecord, Store, StoredHead, StoredOptimizer};
use crate::trail::{self, Trail};

/// Bytes per bundle message, well below the gRPC message limit.
const BUNDLE_CHUNK: usize = 1 << 20;

/// Rounds kept in memory for `Status`.
const RECENT_ROUNDS: usize = 20;

/// What [`Shared::stop_rounds`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stopped {
    /// Rounds taken off the queue: none of them will run.
    pub dequeued: u32,
    /// The round claimed or open when the stop came, if any: it finishes
    /// (and stays queued until it completes) unless aborted.
    pub running: Option<u64>,
    /// Whether that round was told to abort.
    pub aborted: bool,
}

/// State the services and the round loop share.
pub struct Shared {
    pub spec: Arc<FederationSpec>,
    pub registry: Registry,
    /// The running round, and the switch that stops it.
    pub watch: RoundWatch,
    store: Store,
    progress: Mutex<Progress>,
    queue_changed: Notify,
    /// Whether rounds run over secure aggregation (sum rounds need it).
    pub secure: bool,
    /// What the completed sum rounds established.
    sums: Mutex<SumState>,
}

/// Where the federation stands.
#[derive(Clone, Debug)]
pub struct Progress {
    pub completed_round: u64,
    pub global: Arc<Vec<f32>>,
    /// The server optimiser's state after `completed_round` (`None`:
    /// FedAvg, or no training step yet).
    pub optimizer: Option<Arc<StoredOptimizer>>,
    /// Train until this round is complete (persisted in `queue.json`).
    pub target_round: u64,
    /// Why the queue stopped by itself, if it did.
    pub halted: Option<String>,
    /// Queued rounds that are not training rounds.
    pub kinds: BTreeMap<u64, RoundKind>,
    pub recent: Vec<RoundRecord>,
}

impl Progress {
    /// Rounds still to run.
    pub fn queued(&self) -> u32 {
        self.target_round
            .saturating_sub(self.completed_round)
            .min(u32::MAX as u64) as u32
    }

    fn queue(&self) -> Queue {
        Queue {
            target_round: self.target_round,
            halted: self.halted.clone(),
            kinds: self.kinds.clone(),
        }
    }
}

impl Shared {
    fn progress(&self) -> MutexGuard<'_, Progress> {
        // Every update of Progress is a plain assignment: poison is moot.
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `n` more training rounds (durably); returns how many rounds
    /// are queued now.
    pub fn queue_rounds(&self, n: u32) -> Result<u32, CoordinatorError> {
        self.queue_kinds(&vec![RoundKind::Train; n as usize])
    }

    /// Queues rounds of these kinds, in order (durably); returns how many
    /// rounds are queued now.
    pub fn queue_kinds(&self, kinds: &[RoundKind]) -> Result<u32, CoordinatorError> {
        let queued = {
            let mut p = self.progress();
            let mut next = p.clone();
            let first = p.target_round.max(p.completed_round) + 1;
            next.target_round = first - 1 + kinds.len() as u64;
            next.kinds
                .retain(|round, _| *round > p.completed_round && *round < first);
            for (i, kind) in kinds.iter().enumerate() {
                if *kind != RoundKind::Train {
                    next.kinds.insert(first + i as u64, *kind);
                }
            }
            next.halted = None;
            self.store.save_queue(&next.queue())?;
            *p = next;
            p.queued()
        };
        self.queue_changed.notify_waiters();
        Ok(queued)
    }

    /// Empties the queue (durably). A running round, claimed by the round
    /// loop or already open, finishes unless `abort_running`. Exact: a
    /// round counted as taken off never runs, since the loop claims a
    /// round under the same lock (see [`Self::claim_next_round`]).
    pub fn stop_rounds(&self, abort_running: bool) -> Result<Stopped, CoordinatorError> {
        let stopped = {
            let mut p = self.progress();
            // A claimed round whose completion is already recorded is done.
            let running = self
                .watch
                .running_round()
                .filter(|round| *round > p.completed_round);
            let before = p.queued();
            let keep = u64::from(running.is_some() && !abort_running);
            let mut next = p.clone();
            next.target_round = p.completed_round + keep.min(before as u64);
            let target = next.target_round;
            next.kinds.retain(|round, _| *round <= target);
            self.store.save_queue(&next.queue())?;
            *p = next;
            let aborted = abort_running && running.is_some() && self.watch.request_abort();
            Stopped {
                dequeued: before - p.queued(),
                running,
                aborted,
            }
        };
        self.queue_changed.notify_waiters();
        Ok(stopped)
    }

    /// Takes the next queued round for the round loop, under the queue's
    /// lock: `None` if nothing is queued. From here on a stop counts the
    /// round as running (and `abort` aborts it) instead of taking it off.
    /// The loop calls [`Self::release_claim`] when it is done with it.
    pub fn claim_next_round(&self) -> Option<u64> {
        let p = self.progress();
        if p.queued() == 0 {
            return None;
        }
        let round = p.completed_round + 1;
        self.watch.claim(round);
        Some(round)
    }

    /// The round loop is done with its claimed round (completed, failed
    /// and kept queued, or stopped).
    pub fn release_claim(&self) {
        let _queue = self.progress();
        self.watch.release();
    }

    /// Stops the queue after too many failed attempts, saying why.
    fn halt(&self, reason: String) -> Result<(), CoordinatorError> {
        let mut p = self.progress();
        let mut next = p.clone();
        next.target_round = p.completed_round;
        next.kinds.clear();
        next.halted = Some(reason);
        self.store.save_queue(&next.queue())?;
        *p = next;
        Ok(())
    }

    /// The kind of round `round` (queued or running).
    pub fn kind_of(&self, round: u64) -> RoundKind {
        self.progress()
            .kinds
            .get(&round)
            .copied()
            .unwrap_or_default()
    }

    /// What the completed sum rounds established: the encoder in force,
    /// the last calibration.
    pub fn sum_state(&self) -> SumState {
        self.sums.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn status(&self) -> Progress {
        self.progress().clone()
    }

    pub fn running(&self) -> Option<LiveRound> {
        self.watch.snapshot()
    }
}

/// Opens the audit log under the storage folder; a new log starts with
/// `federation.created`, a reopened one records the restart.
/// `head` is the store's latest round, model and optimiser state; a
/// reopened log that completed one more round than the store rolls the
/// store forward first. A start whose `[strategy]` or stored optimiser
/// state does not continue the log is refused before anything is written
/// to the log (see [`check_optimizer`]).
fn open_trail(
    config: &CoordinatorConfig,
    spec: &FederationSpec,
    store: &Store,
    head: &mut StoredHead,
) -> Result<Trail, CoordinatorError> {
    let key = fedsoc_pki::load_signing_key(&config.tls.key)?;
    let dir = config.storage.dir.join("audit");
    let log = fedsoc_audit::AuditLog::open_or_create_on(
        &dir,
        &format!("fedsoc/{}", spec.federation),
        key,
        store.disk().clone(),
    )?;
    let recovered: Vec<trail::RecoveredTail> = log
        .recovered()
        .iter()
        .map(trail::RecoveredTail::from)
        .collect();
    let trail = Trail::new(log);
    let config_toml = toml::to_string(config)
        .map_err(|e| CoordinatorError::Internal(format!("configuration to TOML: {e}")))?;
    let config_sha256 = trail::sha256_hex(config_toml.as_bytes());
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|source| fedsoc_pki::PkiError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    if trail.is_empty() {
        check_optimizer(&trail, store, &config.strategy.optimizer(), head)?;
        let model = trail::f32_bytes(&head.model);
        let created = trail::FederationCreated {
            federation: spec.federation.clone(),
            config_sha256,
            config_toml,
            participants: config.roster.participants.clone(),
            data_scientists: config.roster.data_scientists.clone(),
            model_kind: spec.model.kind().to_string(),
            model_input_dim: spec.model.input_dim(),
            model_hidden: spec.hidden().to_vec(),
            encoder_sha256: trail::sha256_hex(spec.encoder_json.as_bytes()),
            initial_model: trail.blob(&model)?,
            initial_model_sha256: trail::sha256_hex(&model),
            ca_certificate: trail.blob(&read(&config.tls.ca)?)?,
            coordinator_certificate: trail.blob(&read(&config.tls.cert)?)?,
        };
        trail.append(trail::kind::FEDERATION_CREATED, &created)?;
    } else {
        trail.recall_attempts()?;
        roll_forward(&trail, store, head)?;
        check_optimizer(&trail, store, &config.strategy.optimizer(), head)?;
        let started = trail::CoordinatorStarted {
            config_sha256,
            completed_round: head.round,
            global_model_sha256: trail::sha256_hex(&trail::f32_bytes(&head.model)),
            recovered,
            optimizer_state_sha256: head.optimizer.as_ref().map(|o| o.state.sha256()),
        };
        trail.append(trail::kind::COORDINATOR_STARTED, &started)?;
    }
    trail.checkpoint()?;
    Ok(trail)
}

/// Brings the store up to the log after a crash between the log's
/// `round.model` and the store's save: the log holds the model, and the
/// model's input must be the store's head. Anything else is refused.
fn roll_forward(
    trail: &Trail,
    store: &Store,
    head: &mut StoredHead,
) -> Result<(), CoordinatorError> {
    let Some(last) = trail.last_completed()? else {
        return Ok(());
    };
    if last.model.round <= head.round {
        return Ok(());
    }
    let head_sha = crate::round::model_sha256(&head.model);
    if last.model.round != head.round + 1 || last.model.global_in_sha256 != head_sha {
        return Err(CoordinatorError::Storage {
            path: store.dir().to_path_buf(),
            reason: format!(
                "the audit log completed round {} but the store's latest round is {}; \
                 restore the storage folder from a backup taken with its audit/ folder",
                last.model.round, head.round
            ),
        });
    }
    if crate::round::model_sha256(&last.values) != last.model.model_sha256 {
        return Err(CoordinatorError::Storage {
            path: store.dir().to_path_buf(),
            reason: format!(
                "round {}'s model in the audit log does not match its hash",
                last.model.round
            ),
        });
    }
    // The state the log's step left; a sum round carries the store's.
    let optimizer = match &last.model.optimizer {
        Some(record) => Some(Arc::new(logged_state(trail, record, last.values.len())?)),
        None if last.model.strategy == "unchanged" => head.optimizer.clone().map(Arc::new),
        None => None,
    };
    let model = Arc::new(last.values);
    let report = RoundReport {
        round: last.model.round,
        included: last.survivors.clone(),
        dropped: Vec::<Dropout>::new(),
        samples: last.total_samples,
        mean_loss: last.model.mean_loss,
        model_sha256: last.model.model_sha256.clone(),
        model: model.clone(),
        stats: Default::default(),
        receipt_entry: None,
        receipts: Vec::new(),
        kind: Default::default(),
        conclusion: None,
        optimizer: optimizer.clone(),
    };
    store.save_round(&report)?;
    tracing::warn!(
        round = report.round,
        "store rolled forward from the audit log after an interrupted save"
    );
    *head = StoredHead {
        round: report.round,
        model: model.to_vec(),
        optimizer: optimizer.map(|o| o.as_ref().clone()),
    };
    Ok(())
}

/// The optimiser state a `round.model` entry records, read from its blob
/// and checked against the entry.
fn logged_state(
    trail: &Trail,
    record: &trail::OptimizerRecord,
    num_params: usize,
) -> Result<StoredOptimizer, CoordinatorError> {
    let bytes = trail.log().blobs().get(&record.state)?;
    let name = record.hyperparameters.name();
    let state = OptimizerState::from_bytes(
        record.hyperparameters.state_vectors(),
        num_params,
        record.steps,
        &bytes,
    )
    .map_err(|e| CoordinatorError::Internal(format!("the logged {name} state {e}")))?;
    if state.sha256() != record.state_sha256 {
        return Err(CoordinatorError::Internal(format!(
            "the logged {name} state blob does not match its entry's state_sha256"
        )));
    }
    Ok(StoredOptimizer {
        name: name.to_string(),
        state,
    })
}

/// A start must continue the log's optimisation: the configured server
/// optimiser must be the one (with the same hyperparameters, bit for bit)
/// the log's training rounds used, since the audit replay recomputes every
/// round with the logged one and the stored state was computed with it;
/// and the stored state must be, hash for hash, the state the log records
/// after its last training round. Anything else is refused, naming what
/// differs and the fix.
fn check_optimizer(
    trail: &Trail,
    store: &Store,
    configured: &ServerOptimizer,
    head: &StoredHead,
) -> Result<(), CoordinatorError> {
    let refuse = |reason: String| CoordinatorError::Storage {
        path: store.dir().to_path_buf(),
        reason: format!(
            "{reason}; the storage folder was changed outside the coordinator: restore it from \
             a backup taken with its audit/ folder"
        ),
    };
    let stored_file = || store.optimizer_path(head.round).display().to_string();
    let Some(last) = trail.last_step()? else {
        return match &head.optimizer {
            Some(stored) => Err(refuse(format!(
                "the store holds a {} optimiser state ({}) but the audit log records no \
                 training round",
                stored.name,
                stored_file()
            ))),
            None => Ok(()),
        };
    };
    let logged = match (&last.optimizer, last.strategy.as_str()) {
        (Some(record), name) if record.hyperparameters.name() == name => record.hyperparameters,
        (None, "fedavg") => ServerOptimizer::FedAvg,
        (_, name) => {
            return Err(CoordinatorError::Strategy(format!(
                "round {}'s round.model names strategy {name:?} {}; this coordinator cannot \
                 continue it: run the fedsoc release that wrote the log",
                last.round,
                match &last.optimizer {
                    Some(r) => format!("with {} hyperparameters", r.hyperparameters.name()),
                    None => "without its optimiser record".to_string(),
                }
            )));
        }
    };
    if !configured.same_as(&logged) {
        return Err(CoordinatorError::Strategy(format!(
            "this configuration asks for {} but the audit log's training rounds, up to round \
             {}, used {} ({}). A federation keeps its server optimiser and hyperparameters for \
             life: the audit replay recomputes every round with the logged ones, and the stored \
             state was computed with them. Set [strategy] back to {}, or start a new storage \
             folder for the new strategy",
            configured.describe(),
            last.round,
            logged.describe(),
            configured.differences(&logged),
            toml_of(&logged)
        )));
    }
    match (&last.optimizer, &head.optimizer) {
        (None, None) => Ok(()),
        (Some(record), Some(stored)) => {
            let sha = stored.state.sha256();
            if stored.name == logged.name()
                && stored.state.steps == record.steps
                && sha == record.state_sha256
            {
                Ok(())
            } else {
                Err(refuse(format!(
                    "the stored {} optimiser state {} (sha256 {}, {} steps) is not the state \
                     the audit log records after round {} ({}, sha256 {}, {} steps)",
                    stored.name,
                    stored_file(),
                    sha,
                    stored.state.steps,
                    last.round,
                    logged.name(),
                    record.state_sha256,
                    record.steps
                )))
            }
        }
        (Some(record), None) => Err(refuse(format!(
            "the store holds no optimiser state after round {} but the audit log records a {} \
             state (sha256 {}) after round {}",
            head.round,
            logged.name(),
            record.state_sha256,
            last.round
        ))),
        (None, Some(stored)) => Err(refuse(format!(
            "the store holds a {} optimiser state ({}) but the audit log's last training \
             round ({}) used fedavg, which keeps none",
            stored.name,
            stored_file(),
            last.round
        ))),
    }
}

/// `[strategy]` lines that configure `optimizer`, for error messages.
fn toml_of(optimizer: &ServerOptimizer) -> String {
    let mut parts = vec![format!("name = \"{}\"", optimizer.name())];
    parts.extend(
        optimizer
            .hyperparameters()
            .iter()
            .map(|(k, v)| format!("{k} = {v:?}")),
    );
    parts.join(", ")
}

/// A coordinator serving on a socket.
pub struct Coordinator {
    shared: Arc<Shared>,
    policy: RoundPolicy,
    /// Failed attempts in a row after which the queue halts.
    max_retries: u32,
    retry_pause: Duration,
    store: Store,
    trail: Arc<Trail>,
    statistics: StatisticsSection,
    calibration: CalibrationSection,
    /// The roster's size: what one member's statistics may be summed with.
    max_members: usize,
    /// Our certificate (PEM): bundles carry it with the checkpoint it signs.
    certificate_pem: String,
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    metrics: Metrics,
    /// The `/metrics` endpoint when `[metrics]` is set; stops when dropped.
    metrics_server: Option<fedsoc_scrape::MetricsServer>,
}

impl Coordinator {
    /// Loads (or creates) the stored state and starts serving on
    /// `config.listen` (port 0 picks a free port: see [`Self::local_addr`]).
    pub async fn start(config: &CoordinatorConfig) -> Result<Self, CoordinatorError> {
        Self::start_on(config, fedsoc_durable::Disk::real()).await
    }

    /// [`Coordinator::start`], with every durable write going through
    /// `disk` (crash tests pass one with a fault plan).
    pub async fn start_on(
        config: &CoordinatorConfig,
        disk: fedsoc_durable::Disk,
    ) -> Result<Self, CoordinatorError> {
        // Bound first: a metrics address in use stops the start before
        // anything is written, naming the address.
        let metrics = Metrics::new();
        let metrics_server = match &config.metrics {
            Some(section) => {
                let server = metrics
                    .serve(section.listen)
                    .map_err(CoordinatorError::Metrics)?;
                tracing::info!("metrics on http://{}/metrics", server.local_addr());
                Some(server)
            }
            None => None,
        };
        let spec = Arc::new(FederationSpec::from_config(config)?);
        let secure = match config.aggregation.mode {
            AggregationMode::Secure => Some(SecureSettings {
                aggregation: config.aggregation.clone(),
                encoding: config.secure_encoding(),
                members: Arc::new(fedsoc_pki::MemberVerifier::new(
                    &std::fs::read_to_string(&config.tls.ca).map_err(|source| {
                        fedsoc_pki::PkiError::Read {
                            path: config.tls.ca.clone(),
                            source,
                        }
                    })?,
                )?),
                withheld: Arc::default(),
            }),
            AggregationMode::PlaintextInsecure => {
                tracing::warn!(
                    "PLAINTEXT aggregation: the coordinator sees every participant's update; use only for benchmarks and debugging"
                );
                None
            }
        };
        let store = Store::open_on(&config.storage.dir, disk)?;
        // The CRL first: nothing is written for a coordinator that must
        // not start (missing, stale or rolled-back list).
        let ca_pem = std::fs::read_to_string(&config.tls.ca).map_err(|source| {
            fedsoc_pki::PkiError::Read {
                path: config.tls.ca.clone(),
                source,
            }
        })?;
        let revocations = Arc::new(fedsoc_pki::Revocations::watch(&ca_pem, &config.crl_path())?);
        let certificate = Arc::new(fedsoc_pki::load_certificate_der(&config.tls.cert)?);
        let certificate_pem = fedsoc_pki::certificate_pem(&certificate);
        let crl = Arc::new(CrlGate::open(
            revocations.clone(),
            &store,
            certificate.clone(),
        )?);
        let mut head = match store.load_head()? {
            Some(head) if head.model.len() == spec.model.num_params() => head,
            Some(StoredHead { model, .. }) => {
                return Err(CoordinatorError::Storage {
                    path: config.storage.dir.clone(),
                    reason: format!(
                        "the stored model has {} parameters but the configured model has {}; \
                         use a new storage folder for a changed model",
                        model.len(),
                        spec.model.num_params()
                    ),
                });
            }
            None => {
                let initial = spec.initial_model()?;
                store.save_initial(&initial)?;
                StoredHead {
                    round: 0,
                    model: initial,
                    optimizer: None,
                }
            }
        };
        let trail = Arc::new(open_trail(config, &spec, &store, &mut head)?);
        let sums = trail.sum_state(spec.in_force.get())?;
        spec.in_force.set(sums.encoder.clone());
        if sums.encoder.round > 0 {
            tracing::info!(round = sums.encoder.round, sha256 = %sums.encoder.sha256, "encoder in force: fitted by a statistics round");
        }
        let StoredHead {
            round: completed_round,
            model: global,
            optimizer,
        } = head;
        let recent = store.history()?;
        let recent = recent[recent.len().saturating_sub(RECENT_ROUNDS)..].to_vec();
        let queue = match store.load_queue()? {
            Some(queue) => queue,
            None => {
                let planned = match &config.plan {
                    Some(plan) => {
                        let mut kinds = Vec::new();
                        if plan.statistics {
                            kinds.extend([RoundKind::Moments, RoundKind::Spread]);
                        }
                        kinds.extend(vec![RoundKind::Train; plan.train_rounds as usize]);
                        if plan.calibrate {
                            kinds.push(RoundKind::Calibrate);
                        }
                        kinds
                    }
                    None => vec![RoundKind::Train; config.rounds.count as usize],
                };
                let fresh = Queue {
                    target_round: completed_round + planned.len() as u64,
                    halted: None,
                    kinds: (completed_round + 1..)
                        .zip(planned)
                        .filter(|(_, k)| *k != RoundKind::Train)
                        .collect(),
                };
                store.save_queue(&fresh)?;
                fresh
            }
        };
        let registry = Registry::default();
        metrics.observe(registry.clone(), &trail, revocations.clone());
        let watch = RoundWatch::with_metrics(metrics.clone());
        let shared = Arc::new(Shared {
            spec: spec.clone(),
            registry: registry.clone(),
            watch: watch.clone(),
            store: store.clone(),
            progress: Mutex::new(Progress {
                completed_round,
                global: Arc::new(global),
                optimizer: optimizer.map(Arc::new),
                target_round: queue.target_round,
                halted: queue.halted,
                kinds: queue.kinds,
                recent,
            }),
            queue_changed: Notify::new(),
            secure: secure.is_some(),
            sums: Mutex::new(sums),
        });

        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| CoordinatorError::Listen {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| CoordinatorError::Listen {
                addr: config.listen,
                source,
            })?;
        let mut federation = FederationService::new(
            spec.clone(),
            Arc::new(config.roster.participants.clone()),
            registry,
            certificate,
        );
        federation.revocations = Some(revocations.clone());
        federation.crl = Some(crl.clone());
        federation.metrics = metrics.clone();
        federation.witnesses = Some(Arc::new(crate::witness::Witnesses::new(
            &trail,
            fedsoc_pki::MemberVerifier::new(&ca_pem)?,
        )));
        federation.rate_limit = crate::session::RateLimit {
            burst: config.limits.message_burst as f64,
            per_second: config.limits.messages_per_s,
        };
        let admin = AdminService {
            shared: shared.clone(),
            roster: Arc::new(config.roster.clone()),
            min_participants: config.rounds.min_participants,
            revocations: Some(revocations.clone()),
        };
        let (shutdown, stop) = oneshot::channel::<()>();
        let router = tonic::transport::Server::builder()
            .tls_config(config.tls_files().server_config()?)?
            .http2_keepalive_interval(Some(Duration::from_secs(20)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .add_service(
                FederationServer::new(federation)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(AdminServer::new(admin));
        let server = tokio::spawn(router.serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            async {
                let _ = stop.await;
            },
        ));
        tracing::info!(%local_addr, federation = %spec.federation, completed_round, "coordinator listening");
        Ok(Coordinator {
            shared,
            policy: RoundPolicy {
                min_participants: config.rounds.min_participants,
                timeout: Duration::from_secs(config.rounds.round_timeout_s),
                secure,
                watch,
                revocations: Some(revocations.clone()),
                crl: Some(crl),
                strategy: config.strategy.optimizer(),
            },
            max_retries: config.rounds.max_retries,
            retry_pause: Duration::from_secs(config.rounds.retry_pause_s),
            store,
            trail,
            statistics: config.statistics.clone(),
            calibration: config.calibration.clone(),
            max_members: config.roster.participants.len(),
            certificate_pem,
            local_addr,
            shutdown: Some(shutdown),
            server,
            metrics,
            metrics_server,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the `/metrics` endpoint (with the port the system
    /// chose for port 0); `None` without `[metrics]`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_server.as_ref().map(|s| s.local_addr())
    }

    /// This coordinator's metrics (served or not).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn spec(&self) -> &FederationSpec {
        &self.shared.spec
    }

    /// Installs hooks that make this coordinator lie in its audit trail,
    /// for tests that play a malicious coordinator.
    #[doc(hidden)]
    pub fn tamper_audit(&self, tamper: trail::Tamper) {
        self.trail.set_tamper(tamper);
    }

    /// Entries in the audit log now.
    pub fn audit_size(&self) -> u64 {
        self.trail.len()
    }

    /// The current global model.
    pub fn global_model(&self) -> Arc<Vec<f32>> {
        self.shared.progress().global.clone()
    }

    /// Waits until `n` participants are connected; false on timeout.
    pub async fn wait_for_participants(&self, n: usize, timeout: Duration) -> bool {
        self.shared.registry.wait_for(n, timeout).await
    }

    /// Runs the next round now with whoever is connected, stores its model
    /// and makes it the global one.
    pub async fn run_next_round(&self) -> Result<RoundReport, CoordinatorError> {
        let (round, global, optimizer) = {
            let p = self.shared.progress();
            (p.completed_round + 1, p.global.clone(), p.optimizer.clone())
        };
        let kind = self.shared.kind_of(round);
        let state = self.shared.sum_state();
        let outcome = match &self.policy.secure {
            Some(settings) => {
                let query = Query::for_round(
                    kind,
                    &state,
                    &self.shared.spec.model,
                    (&self.statistics, &self.calibration),
                    self.max_members,
                )
                .map_err(|reason| CoordinatorError::Conclusion {
                    round,
                    kind: kind.name(),
                    reason,
                })?;
                let work = RoundWork {
                    kind,
                    query,
                    state,
                    optimizer,
                };
                run_secure_round(
                    &self.shared.spec,
                    &self.shared.registry,
                    &self.policy,
                    settings,
                    round,
                    global,
                    &self.trail,
                    &work,
                )
                .await
            }
            None if kind.is_sum() => Err(CoordinatorError::Conclusion {
                round,
                kind: kind.name(),
                reason: "sum rounds run only over secure aggregation".into(),
            }),
            None => {
                run_round(
                    &self.shared.spec,
                    &self.shared.registry,
                    &self.policy,
                    round,
                    global,
                    optimizer,
                    &self.trail,
                )
                .await
            }
        };
        let report = match outcome {
            Ok(report) => report,
            Err(e) => {
                self.shared.watch.finish();
                // An attempt that opened its record is closed by a checkpoint too.
                if !matches!(
                    e,
                    CoordinatorError::NotEnoughParticipants { .. } | CoordinatorError::Crl(_)
                ) {
                    self.publish_checkpoint(None, &[], &[], &[])?;
                }
                return Err(e);
            }
        };
        // The log holds the new model now; a crash before the store's
        // save is rolled forward at the next start.
        self.shared.watch.enter(live::stage::MODEL_UPDATE).await;
        let saved = self.store.save_round(&report);
        match &saved {
            Ok(()) => self.shared.watch.complete(),
            Err(_) => self.shared.watch.finish(),
        }
        saved?;
        if let Some((conclusion, query)) = &report.conclusion {
            let mut sums = self.shared.sums.lock().unwrap_or_else(|p| p.into_inner());
            conclusion.apply(&mut sums, query);
            if let Conclusion::Encoder(fitted) = conclusion {
                self.shared.spec.in_force.set(sums.encoder.clone());
                tracing::info!(round = fitted.round, sha256 = %fitted.encoder_sha256, rows = fitted.rows, other_share = ?fitted.other_share, "federation encoder fitted");
            }
        }
        {
            let mut p = self.shared.progress();
            p.completed_round = report.round;
            let done = report.round;
            p.kinds.retain(|round, _| *round > done);
            p.global = report.model.clone();
            p.optimizer = report.optimizer.clone();
            p.recent.push(RoundRecord::from(&report));
            if p.recent.len() > RECENT_ROUNDS {
                p.recent.remove(0);
            }
        }
        let members: Vec<String> = report
            .included
            .iter()
            .cloned()
            .chain(report.dropped.iter().map(|d| d.participant.clone()))
            .collect();
        self.publish_checkpoint(
            report.receipt_entry,
            &report.receipts,
            &report.included,
            &members,
        )?;
        self.publish_bundle(report.round);
        Ok(report)
    }

    /// Records an evaluation of `round`'s model in the audit trail.
    pub fn record_metrics(
        &self,
        round: u64,
        model_sha256: &str,
        metrics: serde_json::Value,
    ) -> Result<(), CoordinatorError> {
        self.trail.append(
            trail::kind::ROUND_METRICS,
            &trail::RoundMetrics {
                round,
                model_sha256: model_sha256.to_string(),
                metrics,
            },
        )?;
        Ok(())
    }

    /// Signs a checkpoint and sends it to every connected participant with
    /// a consistency proof from the checkpoint it holds; those in
    /// `receipted` also get the inclusion proof of `receipt` (the entry
    /// recording their update), and every member of the round the
    /// inclusion proofs of all its stage entries (`receipts`): each entry
    /// that records a message the member sent.
    fn publish_checkpoint(
        &self,
        receipt: Option<u64>,
        receipts: &[u64],
        receipted: &[String],
        members: &[String],
    ) -> Result<(), CoordinatorError> {
        let checkpoint = self.trail.checkpoint()?;
        let size = checkpoint.checkpoint.tree_size;
        let note = checkpoint
            .to_bytes()
            .map_err(fedsoc_audit::AuditError::from)?;
        let log = self.trail.log();
        let prove = |index: u64| -> Result<fedsoc_proto::v1::Receipt, CoordinatorError> {
            Ok(fedsoc_proto::v1::Receipt {
                index,
                entry: log
                    .entry(index)?
                    .encode()
                    .map_err(fedsoc_audit::AuditError::from)?,
                proof: log
                    .inclusion_proof(index, size)?
                    .iter()
                    .map(|h| h.to_vec())
                    .collect(),
            })
        };
        let receipt = receipt.map(prove).transpose()?;
        let tamper = self.trail.tamper();
        let stage_receipts = receipts
            .iter()
            .map(|&i| prove(i))
            .collect::<Result<Vec<_>, _>>()?;
        self.shared.registry.for_each_idle(|link| {
            let from = link.audit_size;
            let proof = if from > 0 && from <= size {
                log.consistency_proof(from, size).unwrap_or_default()
            } else {
                Vec::new()
            };
            let mut message = fedsoc_proto::v1::AuditCheckpoint {
                checkpoint: note.clone(),
                from_size: if proof.is_empty() && from != size {
                    0
                } else {
                    from
                },
                consistency_proof: proof.iter().map(|h| h.to_vec()).collect(),
                ..Default::default()
            };
            if let Some(r) = &receipt
                && receipted.contains(&link.id)
            {
                message.receipt_index = r.index;
                message.receipt_entry = r.entry.clone();
                message.receipt_proof = r.proof.clone();
            }
            if members.contains(&link.id) {
                message.receipts = stage_receipts.clone();
            }
            if let Some(tamper) = &tamper.checkpoint {
                tamper(&link.id, &mut message);
            }
            let body = fedsoc_proto::v1::coordinator_message::Body::AuditCheckpoint(message);
            let sent = link
                .outbox
                .try_send(Ok(fedsoc_proto::v1::CoordinatorMessage {
                    body: Some(body),
                }));
            if sent.is_ok() {
                link.audit_size = size;
            }
        });
        Ok(())
    }

    /// Sends the bundle of `round` (just completed, its checkpoint signed)
    /// to the connected participants that asked for bundles. A bundle that
    /// cannot be built is logged, never fatal to the round: the model is
    /// in the store and the log either way.
    fn publish_bundle(&self, round: u64) {
        let mut wanted = false;
        self.shared
            .registry
            .for_each_idle(|link| wanted |= link.wants_bundles);
        if !wanted {
            return;
        }
        let built = fedsoc_bundle::Bundle::from_log(
            &self.trail.log(),
            Some(round),
            &self.certificate_pem,
            &self.shared.spec.encoder_json,
        );
        let bytes = match built {
            Ok(bundle) => bundle.to_bytes(),
            Err(e) => {
                tracing::warn!(round, error = %e, "no bundle for this round");
                return;
            }
        };
        let total_len = bytes.len() as u64;
        self.shared.registry.for_each_idle(|link| {
            if !link.wants_bundles {
                return;
            }
            for (i, piece) in bytes.chunks(BUNDLE_CHUNK).enumerate() {
                let chunk = fedsoc_proto::v1::BundleChunk {
                    round,
                    offset: (i * BUNDLE_CHUNK) as u64,
                    total_len,
                    data: piece.to_vec(),
                };
                let body = fedsoc_proto::v1::coordinator_message::Body::BundleChunk(chunk);
                let message = fedsoc_proto::v1::CoordinatorMessage { body: Some(body) };
                if link.outbox.try_send(Ok(message)).is_err() {
                    tracing::warn!(participant = %link.id, round, "bundle not sent: the session's queue is full");
                    return;
                }
            }
        });
    }

    /// Writes the participants' cosignatures received so far to the audit
    /// log now (the round loop also does so before each round, before
    /// each checkpoint and when idle); returns how many.
    pub fn record_cosignatures(&self) -> Result<usize, CoordinatorError> {
        self.trail.record_cosignatures()
    }

    /// Runs queued rounds as participants allow, until `stop` resolves.
    /// A round that fails (too few participants, too many dropouts) is
    /// logged and retried after a pause; it stays queued.
    ///
    /// A round is claimed from the queue only once enough participants
    /// are connected, right before it opens: a stop while the loop waits
    /// takes the round off for good.
    pub async fn run_queued(&self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut failures = 0u32;
        // Whether the loop was waiting for participants for a queued round.
        let mut waiting = false;
        let mut online_logged = None;
        loop {
            let queued = self.shared.progress().queued();
            if queued == 0 {
                // Idle: cosignatures of the last checkpoint reach the log.
                if let Err(e) = self.trail.record_cosignatures() {
                    tracing::warn!(error = %e, "could not record participants' cosignatures");
                }
                if std::mem::take(&mut waiting) {
                    tracing::info!(
                        "round queue emptied while waiting for participants; no round runs"
                    );
                }
                online_logged = None;
                tokio::select! {
                    _ = &mut stop => return self.interrupted(),
                    _ = self.shared.queue_changed.notified() => continue,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
            waiting = true;
            let online = self.shared.registry.connected().len();
            if online < self.policy.min_participants && online_logged != Some(online) {
                online_logged = Some(online);
                tracing::info!(
                    queued,
                    online,
                    need = self.policy.min_participants,
                    "waiting for participants: {online} online, a round needs {}",
                    self.policy.min_participants
                );
            }
            let ready = tokio::select! {
                _ = &mut stop => return self.interrupted(),
                // A stop (or a start) while waiting: look at the queue again.
                _ = self.shared.queue_changed.notified() => continue,
                ready = self.wait_for_participants(self.policy.min_participants, Duration::from_secs(5)) => ready,
            };
            if !ready {
                continue;
            }
            // Re-checked under the queue's lock right before the round
            // opens: a round stopped while the loop waited does not run.
            let Some(round) = self.shared.claim_next_round() else {
                continue;
            };
            waiting = false;
            online_logged = None;
            let outcome = tokio::select! {
                _ = &mut stop => return self.interrupted(),
                outcome = self.run_next_round() => outcome,
            };
            self.shared.release_claim();
            match outcome {
                Ok(report) => {
                    failures = 0;
                    let queued = self.shared.progress().queued();
                    tracing::info!(round = report.round, mean_loss = report.mean_loss, queued, model = %report.model_sha256, "round stored");
                }
                Err(CoordinatorError::Stopped { round, stage }) => {
                    failures = 0;
                    tracing::warn!(round, %stage, "round stopped by a data scientist");
                }
                Err(e) => {
                    if !matches!(
                        e,
                        CoordinatorError::NotEnoughParticipants { .. } | CoordinatorError::Crl(_)
                    ) {
                        failures += 1;
                    }
                    if failures > self.max_retries {
                        let reason = format!(
                            "halted after {failures} failed attempts in a row; last: {e}. \
                             Start rounds again when the cause is fixed"
                        );
                        tracing::error!(%reason, "round queue halted");
                        if let Err(e) = self.shared.halt(reason) {
                            tracing::error!(error = %e, "could not record the halted queue");
                        }
                        failures = 0;
                        continue;
                    }
                    tracing::warn!(round, error = %e, attempt = failures, max_retries = self.max_retries, "round failed; retrying with fresh keys");
                    tokio::select! {
                        _ = &mut stop => return self.interrupted(),
                        _ = tokio::time::sleep(self.retry_pause) => {}
                    }
                }
            }
        }
    }

    /// Says, when the loop is stopped (SIGINT, SIGTERM), what was cut
    /// short and what the next start does about it.
    fn interrupted(&self) {
        let queued = self.shared.progress().queued();
        match (self.shared.running(), self.shared.watch.running_round()) {
            (Some(live), _) if live.stage == live::stage::MODEL_UPDATE => tracing::warn!(
                round = live.round,
                attempt = live.attempt,
                stage = live.stage,
                queued,
                "shutting down while round {} (attempt {}) was storing its model; the next start completes it from the audit log, or retries it with fresh keys",
                live.round,
                live.attempt
            ),
            (Some(live), _) => tracing::warn!(
                round = live.round,
                attempt = live.attempt,
                stage = live.stage,
                queued,
                "shutting down mid-round: round {} (attempt {}) interrupted at stage {}; it stays queued and is retried with fresh keys at the next start ({queued} queued)",
                live.round,
                live.attempt,
                live.stage
            ),
            (None, Some(round)) => tracing::warn!(
                round,
                queued,
                "shutting down as round {round} was opening; it stays queued and is retried with fresh keys at the next start ({queued} queued)"
            ),
            (None, None) => tracing::info!(
                queued,
                "shutting down; {queued} queued rounds wait for the next start"
            ),
        }
    }

    /// Stops serving and waits for the server to wind down.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Open participant streams would keep a graceful shutdown waiting,
        // and aborting the server leaves their connection tasks running:
        // closing every session's streams ends them, as a dead process would.
        drop(self.shared.registry.take_idle());
        self.server.abort();
        let _ = self.server.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
federation = "claims"
listen = "127.0.0.1:0"
[tls]
ca = "ca.pem"
cert = "coordinator.pem"
key = "coordinator.key"
[roster]
participants = ["soc-a", "soc-b", "soc-c"]
data_scientists = ["analyst"]
auditors = []
[storage]
dir = "state"
"#;

    /// Shared state with `queued` rounds queued and none complete.
    fn shared(dir: &std::path::Path, queued: u64) -> Shared {
        let config: CoordinatorConfig = toml::from_str(CONFIG).unwrap();
        let store = Store::open(dir).unwrap();
        Shared {
            spec: Arc::new(FederationSpec::from_config(&config).unwrap()),
            registry: Registry::default(),
            watch: RoundWatch::default(),
            store,
            progress: Mutex::new(Progress {
                completed_round: 0,
                global: Arc::new(Vec::new()),
                optimizer: None,
                target_round: queued,
                halted: None,
                kinds: BTreeMap::new(),
                recent: Vec::new(),
            }),
            queue_changed: Notify::new(),
            secure: true,
            sums: Mutex::default(),
        }
    }

    fn stored_target(shared: &Shared) -> u64 {
        shared.store.load_queue().unwrap().unwrap().target_round
    }

    /// What the loop does when its claimed round completes.
    fn complete(shared: &Shared, round: u64) {
        shared.watch.finish();
        shared.progress().completed_round = round;
        shared.release_claim();
    }

    #[test]
    fn a_stop_while_the_loop_waits_takes_the_round_off_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path(), 0);
        assert_eq!(shared.queue_rounds(1).unwrap(), 1);
        // The loop waits for participants: nothing is claimed yet.
        let stopped = shared.stop_rounds(false).unwrap();
        assert_eq!(
            stopped,
            Stopped {
                dequeued: 1,
                running: None,
                aborted: false
            }
        );
        assert_eq!(
            stored_target(&shared),
            0,
            "queue.json says nothing is queued"
        );
        // Participants arrive; the loop re-checks before opening the round.
        assert_eq!(
            shared.claim_next_round(),
            None,
            "a stopped round never runs"
        );
        assert_eq!(shared.status().queued(), 0);
    }

    #[test]
    fn a_stop_after_the_claim_reports_the_round_as_running_and_it_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path(), 0);
        shared.queue_rounds(3).unwrap();
        assert_eq!(shared.claim_next_round(), Some(1));
        // Between the claim and the round's first stage.
        let stopped = shared.stop_rounds(false).unwrap();
        assert_eq!(
            stopped,
            Stopped {
                dequeued: 2,
                running: Some(1),
                aborted: false
            }
        );
        assert_eq!(
            shared.status().queued(),
            1,
            "the running round stays queued"
        );
        assert_eq!(stored_target(&shared), 1);
        // It opens and runs; a failed attempt would be retried as round 1.
        shared
            .watch
            .begin(1, 1, RoundKind::Train, vec!["soc-a".into(), "soc-b".into()]);
        complete(&shared, 1);
        assert_eq!(shared.status().queued(), 0);
        assert_eq!(shared.claim_next_round(), None, "rounds 2 and 3 never run");
    }

    #[tokio::test]
    async fn an_abort_between_the_claim_and_the_first_stage_is_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path(), 0);
        shared.queue_rounds(2).unwrap();
        assert_eq!(shared.claim_next_round(), Some(1));
        let stopped = shared.stop_rounds(true).unwrap();
        assert_eq!(
            stopped,
            Stopped {
                dequeued: 2,
                running: Some(1),
                aborted: true
            }
        );
        // The round opens after the abort and sees it at its first wait.
        shared
            .watch
            .begin(1, 1, RoundKind::Train, vec!["soc-a".into(), "soc-b".into()]);
        tokio::time::timeout(Duration::from_secs(5), shared.watch.aborted())
            .await
            .expect("the abort requested before the round opened stands");
        shared.watch.finish();
        shared.release_claim();
        assert_eq!(shared.claim_next_round(), None);
        // The next claimed round starts without the old abort.
        shared.queue_rounds(1).unwrap();
        assert_eq!(shared.claim_next_round(), Some(1));
        shared.watch.begin(1, 2, RoundKind::Train, vec![]);
        let pending = tokio::time::timeout(Duration::from_millis(50), shared.watch.aborted()).await;
        assert!(pending.is_err(), "a new claim clears the old abort");
    }

    #[test]
    fn a_stop_after_the_round_completed_but_before_release_takes_all_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path(), 0);
        shared.queue_rounds(3).unwrap();
        assert_eq!(shared.claim_next_round(), Some(1));
        shared.watch.begin(1, 1, RoundKind::Train, vec![]);
        shared.watch.finish();
        shared.progress().completed_round = 1;
        // The loop has not released its claim yet.
        let stopped = shared.stop_rounds(false).unwrap();
        assert_eq!(
            stopped,
            Stopped {
                dequeued: 2,
                running: None,
                aborted: false
            }
        );
        shared.release_claim();
        assert_eq!(shared.claim_next_round(), None);
    }

    #[test]
    fn a_stop_racing_the_claim_either_removes_the_round_or_sees_it_running() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Arc::new(shared(dir.path(), 0));
        let (mut removed, mut running) = (0, 0);
        for _ in 0..100 {
            shared.queue_rounds(1).unwrap();
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let claimer = {
                let (shared, barrier) = (shared.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    shared.claim_next_round()
                })
            };
            barrier.wait();
            let stopped = shared.stop_rounds(false).unwrap();
            let claimed = claimer.join().unwrap();
            match claimed {
                None => {
                    assert_eq!((stopped.dequeued, stopped.running), (1, None));
                    removed += 1;
                }
                Some(round) => {
                    assert_eq!(
                        (stopped.dequeued, stopped.running),
                        (0, Some(round)),
                        "a claimed round is reported running, never as taken off"
                    );
                    // It runs and completes; nothing is left queued.
                    complete(&shared, round);
                    running += 1;
                }
            }
            assert_eq!(shared.status().queued(), 0);
            assert_eq!(shared.claim_next_round(), None);
        }
        assert_eq!(removed + running, 100);
    }
}
