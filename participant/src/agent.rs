//! The node agent: dials out to the coordinator, holds one stream, trains
//! on each task and sends back its update delta. It reconnects with
//! jittered backoff after a lost connection and stops for good on a
//! refusal, which no retry would change.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fedsoc_models::{
    AutoencoderConfig, ClassifierConfig, ClassifierLoss, ModelConfig, TrainConfig,
};
use fedsoc_proto::chunk::Assembler;
use fedsoc_proto::secagg_stage as stage;
use fedsoc_proto::v1::federation_client::FederationClient;
use fedsoc_proto::v1::{
    CoordinatorMessage, Hello, ParticipantMessage, SecAggChunk, TaskFailed, UpdateHeader, Welcome,
    coordinator_message, participant_message,
};
use fedsoc_proto::{MAX_MESSAGE_BYTES, PROTOCOL_VERSION, chunk, fault, session_end};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::audit::{CheckpointKeeper, Expected, PLAINTEXT_UPDATES_STAGE};
use crate::config::ParticipantConfig;
use crate::error::{ParticipantError, chain};
use crate::metrics::Metrics;
use crate::prepared::Prepared;
use crate::releases::{Release, ReleaseLedger, base_model_sha256};
use crate::revocation::{CrlKeeper, CrlRefusal};
use crate::secure::{Contribution, SecureTask};
use crate::task::{ReadyTask, TaskIntake};
use crate::telemetry;
use crate::workload::{RandomUpdates, Workload};

/// Messages buffered towards the coordinator.
const OUTBOX_DEPTH: usize = 16;

/// A participant with its telemetry and keys loaded.
pub struct Agent {
    config: ParticipantConfig,
    workload: Workload,
    /// Checks the other members of a secure round against the federation CA.
    members: fedsoc_pki::MemberVerifier,
    /// Our certificate's Ed25519 key: signs our secure-aggregation messages.
    signing_key: ed25519_dalek::SigningKey,
    /// The audit checkpoints we accepted, kept across sessions.
    audit: std::sync::Mutex<CheckpointKeeper>,
    /// The base models whose secure sums we unmasked: never a second sum.
    releases: std::sync::Mutex<ReleaseLedger>,
    /// The highest CRL number we accepted, kept across sessions.
    crl: std::sync::Mutex<CrlKeeper>,
    /// The federation CA certificate (PEM): what every CRL must verify against.
    ca_pem: String,
    /// Where our durable writes go (the state folder, contributions).
    disk: fedsoc_durable::Disk,
    /// Counted where things happen; served when `[metrics]` is set.
    metrics: Metrics,
    /// The `/metrics` endpoint; stops when the agent is dropped.
    metrics_server: Option<fedsoc_scrape::MetricsServer>,
}

/// The secure-aggregation attempt in progress and its incoming message.
struct SecureInFlight {
    task_id: u64,
    round: u64,
    /// SHA-256 of the global model our update was trained from.
    base: String,
    task: SecureTask,
    max_message: u64,
    incoming: Option<(u32, Assembler<u8>)>,
}

impl Federation {
    fn prepared_now(&self) -> Option<Arc<Prepared>> {
        self.prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl SecureInFlight {
    /// The task and the SHA-256 of each message we sent in it, by stage.
    fn sent(&self) -> (u64, BTreeMap<u32, String>) {
        (self.task_id, self.task.sent().clone())
    }
}

/// What the federation told us when we joined.
struct Federation {
    model: ModelConfig,
    /// The coordinator's certificate (DER), checked against every task's CRL.
    coordinator_certificate: Vec<u8>,
    /// Our telemetry, split and encoded with the encoder in force; `None`
    /// until it is (a failure is each task's reason), and always for
    /// random-update benchmarks.
    prepared: std::sync::Mutex<Option<Arc<Prepared>>>,
    /// The encoder the Welcome carried: tasks without one use it.
    welcome_encoder: String,
}

/// The model a Welcome describes.
fn model_from_spec(spec: &fedsoc_proto::v1::ModelSpec) -> Result<ModelConfig, ParticipantError> {
    let input_dim = spec.input_dim as usize;
    let hidden: Vec<usize> = spec.hidden.iter().map(|&h| h as usize).collect();
    let model = match spec.kind.as_str() {
        "autoencoder" => ModelConfig::Autoencoder(AutoencoderConfig { input_dim, hidden }),
        "classifier" => ModelConfig::Classifier(ClassifierConfig { input_dim, hidden }),
        other => {
            return Err(ParticipantError::Protocol(format!(
                "model kind {other:?} is not supported by this participant (autoencoder, classifier)"
            )));
        }
    };
    model.validate()?;
    Ok(model)
}

/// The classifier loss a task names; unknown names are refused.
fn task_loss(task: &fedsoc_proto::v1::TrainTask) -> Result<ClassifierLoss, ParticipantError> {
    if task.loss == "balanced" && task.class_weight > 0.0 {
        // The federation's ratio, not ours (see the statistics round).
        return Ok(ClassifierLoss::Weighted {
            pos_weight: task.class_weight,
        });
    }
    ClassifierLoss::from_name(&task.loss, task.focal_gamma).ok_or_else(|| {
        ParticipantError::Protocol(format!(
            "the task names loss {:?}, which this participant does not know",
            task.loss
        ))
    })
}

/// A local update, ready to send.
struct LocalUpdate {
    delta: Vec<f32>,
    samples: u64,
    mean_loss: f32,
}

impl Agent {
    /// Loads the telemetry the configuration names.
    pub fn new(config: ParticipantConfig) -> Result<Self, ParticipantError> {
        let records = telemetry::load(&config.data)?;
        tracing::info!(participant = %config.id, rows = records.len(), "telemetry loaded");
        Self::with_workload(config, Workload::Train(Arc::new(records)))
    }

    /// An agent that trains on records already in memory (experiments
    /// split one dataset among participants); the configuration's data
    /// source is not read.
    pub fn with_records(
        config: ParticipantConfig,
        records: Arc<fedsoc_datasets::Records>,
    ) -> Result<Self, ParticipantError> {
        if records.is_empty() {
            return Err(ParticipantError::Data(
                fedsoc_datasets::DatasetError::EmptyInput,
            ));
        }
        Self::with_workload(config, Workload::Train(records))
    }

    /// An agent that answers every task with random updates: for
    /// benchmarks of the aggregation path. The configuration's data source
    /// is not read.
    pub fn with_random_updates(
        config: ParticipantConfig,
        updates: RandomUpdates,
    ) -> Result<Self, ParticipantError> {
        Self::with_workload(config, Workload::Random(updates))
    }

    fn with_workload(
        config: ParticipantConfig,
        workload: Workload,
    ) -> Result<Self, ParticipantError> {
        let ca_pem = std::fs::read_to_string(&config.tls.ca).map_err(|source| {
            fedsoc_pki::PkiError::Read {
                path: config.tls.ca.clone(),
                source,
            }
        })?;
        let members = fedsoc_pki::MemberVerifier::new(&ca_pem)?;
        let signing_key = fedsoc_pki::load_signing_key(&config.tls.key)?;
        let disk = fedsoc_durable::Disk::real();
        let metrics = Metrics::new();
        let metrics_server = match &config.metrics {
            Some(section) => {
                let server = metrics
                    .serve(section.listen)
                    .map_err(ParticipantError::Metrics)?;
                tracing::info!(participant = %config.id, "metrics on http://{}/metrics", server.local_addr());
                Some(server)
            }
            None => None,
        };
        Ok(Agent {
            metrics,
            metrics_server,
            audit: std::sync::Mutex::new(open_keeper(&config, &disk)?),
            releases: std::sync::Mutex::new(open_releases(&config, &disk)?),
            crl: std::sync::Mutex::new(open_crl_keeper(&config, &ca_pem, &disk)?),
            ca_pem,
            config,
            workload,
            members,
            signing_key,
            disk,
        })
    }

    /// The same agent with every durable write going through `disk`
    /// (crash tests pass one with a fault plan); the state is read again.
    pub fn on_disk(mut self, disk: fedsoc_durable::Disk) -> Result<Self, ParticipantError> {
        self.audit = std::sync::Mutex::new(open_keeper(&self.config, &disk)?);
        self.releases = std::sync::Mutex::new(open_releases(&self.config, &disk)?);
        self.crl = std::sync::Mutex::new(open_crl_keeper(&self.config, &self.ca_pem, &disk)?);
        self.disk = disk;
        Ok(self)
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// The address of the `/metrics` endpoint (with the port the system
    /// chose for port 0); `None` without `[metrics]`.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_server.as_ref().map(|s| s.local_addr())
    }

    /// This agent's metrics (served or not).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Takes part until `stop` resolves or the coordinator refuses us.
    pub async fn run(&self, stop: impl Future<Output = ()>) -> Result<(), ParticipantError> {
        tokio::pin!(stop);
        let mut attempt = 0u32;
        loop {
            let outcome = tokio::select! {
                _ = &mut stop => return Ok(()),
                outcome = self.run_session() => outcome,
            };
            match outcome {
                Ok(()) => attempt = 0,
                Err(e) if e.is_permanent() => {
                    let refusal = match &e {
                        ParticipantError::Refused(_) => Some("coordinator_refused"),
                        ParticipantError::UntrustedCoordinator(_) => Some("untrusted_coordinator"),
                        ParticipantError::Replaced(_) => Some("replaced"),
                        ParticipantError::Audit(_) => Some("audit"),
                        _ => None,
                    };
                    if let Some(reason) = refusal {
                        self.metrics.refusal(reason);
                    }
                    tracing::error!(participant = %self.config.id, error = %e, "giving up");
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!(participant = %self.config.id, error = %e, "session lost");
                }
            }
            let pause = self
                .config
                .reconnect
                .backoff(attempt, rand::random::<f64>());
            attempt = attempt.saturating_add(1);
            tracing::info!(participant = %self.config.id, pause_ms = pause.as_millis() as u64, "reconnecting");
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(pause) => {}
            }
            self.metrics.reconnect();
        }
    }

    async fn connect(&self) -> Result<Channel, ParticipantError> {
        let url = self.config.coordinator.clone();
        let connect_err = |detail: String| ParticipantError::Connect {
            url: url.clone(),
            detail,
        };
        let tls = self
            .config
            .tls_files()
            .client_config(&self.config.server_name())?;
        Endpoint::from_shared(url.clone())
            .map_err(|e| connect_err(chain(&e)))?
            .tls_config(tls)
            .map_err(|e| connect_err(chain(&e)))?
            .connect_timeout(Duration::from_secs(10))
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(20))
            .connect()
            .await
            .map_err(|e| {
                let detail = chain(&e);
                self.untrusted_coordinator(&detail)
                    .unwrap_or_else(|| connect_err(detail))
            })
    }

    /// A TLS failure that says the coordinator's certificate does not fit
    /// our configuration, which no reconnect would change.
    fn untrusted_coordinator(&self, detail: &str) -> Option<ParticipantError> {
        let ca = self.config.tls.ca.display();
        if detail.contains("UnknownIssuer") || detail.contains("BadSignature") {
            Some(ParticipantError::UntrustedCoordinator(format!(
                "the coordinator's certificate is not signed by the CA in {ca}: check that \
                 tls.ca in participant.toml is the federation's ca.pem ({detail})"
            )))
        } else if detail.contains("NotValidForName") {
            Some(ParticipantError::UntrustedCoordinator(format!(
                "the coordinator's certificate is not valid for {:?}: the host of `coordinator` \
                 (or `server_name`) in participant.toml must be one of the coordinator \
                 certificate's --host names ({detail})",
                self.config.server_name()
            )))
        } else {
            None
        }
    }

    /// Maps a gRPC status to a refusal (permanent) or a lost session.
    fn refusal(&self, status: Status) -> ParticipantError {
        if status.code() == Code::Aborted
            && status
                .metadata()
                .get(session_end::KEY)
                .is_some_and(|v| v.as_bytes() == session_end::REPLACED.as_bytes())
        {
            return self.replaced(&status);
        }
        let detail = chain(&status);
        self.untrusted_coordinator(&detail)
            .unwrap_or_else(|| refusal(status))
    }

    /// Another agent with our certificate took our session over.
    fn replaced(&self, status: &Status) -> ParticipantError {
        let id = &self.config.id;
        let from = status
            .metadata()
            .get(session_end::REPLACED_BY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("an address the coordinator did not report");
        ParticipantError::Replaced(format!(
            "replaced: another agent with the same certificate (participant {id}) connected \
             to the coordinator from {from} and took over this session; stopping here rather \
             than taking it back, or the two would evict each other in turns. Check for a \
             second agent running with id {id} (on that host, or a leftover process on this \
             one) and stop one of them"
        ))
    }

    /// One session: connect, say Hello, serve tasks until the stream ends.
    pub async fn run_session(&self) -> Result<(), ParticipantError> {
        let channel = self.connect().await?;
        let mut client = FederationClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let (outbox, outbox_rx) = mpsc::channel(OUTBOX_DEPTH);
        let hello = participant_message::Body::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            participant_id: self.config.id.clone(),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            last_checkpoint_size: self.keeper().size(),
            wants_bundles: self.config.bundles.is_some(),
        });
        send(&outbox, hello).await?;
        let mut inbound = client
            .session(ReceiverStream::new(outbox_rx))
            .await
            .map_err(|s| self.refusal(s))?
            .into_inner();

        let welcome = match inbound.message().await.map_err(|s| self.refusal(s))? {
            Some(CoordinatorMessage {
                body: Some(coordinator_message::Body::Welcome(w)),
            }) => w,
            _ => {
                return Err(ParticipantError::Protocol(
                    "the coordinator did not answer Hello with Welcome".into(),
                ));
            }
        };
        let federation = self.join(welcome).await?;
        tracing::info!(participant = %self.config.id, "joined the federation");

        let mut intake = TaskIntake::default();
        let mut bundle_intake = crate::bundles::BundleIntake::default();
        let mut secure: Option<SecureInFlight> = None;
        // The secure task of this session and the hashes of what we sent
        // in it, kept after a failure takes us out of the round.
        let mut secure_sent: Option<(u64, BTreeMap<u32, String>)> = None;
        // What we sent in the round just closed, which its receipts must show.
        let mut receipt: Option<Expected> = None;
        let expected_params = federation.model.num_params();
        while let Some(message) = inbound.message().await.map_err(|s| self.refusal(s))? {
            match message.body {
                Some(coordinator_message::Body::TrainTask(task)) => {
                    tracing::debug!(participant = %self.config.id, round = task.round, "task received");
                    fault_point(&self.config.id, task.round, fault::stage::TRAINING).await;
                    secure = None;
                    intake.start(task, expected_params)?;
                }
                Some(coordinator_message::Body::ModelChunk(piece)) => {
                    if let Some(ready) = intake.chunk(piece)? {
                        secure = self.train_and_reply(&federation, ready, &outbox).await?;
                        secure_sent = secure.as_ref().map(SecureInFlight::sent);
                    }
                }
                Some(coordinator_message::Body::Secagg(piece)) => {
                    self.secure_step(&mut secure, piece, &outbox).await?;
                    // Kept when we leave the round: what we sent until then.
                    if let Some(flight) = &secure {
                        secure_sent = Some(flight.sent());
                    }
                }
                Some(coordinator_message::Body::RoundClosed(closed)) => {
                    // What we sent in this task, which its receipts must show.
                    let sent: BTreeMap<u32, Option<String>> = match secure_sent
                        .take()
                        .filter(|(task_id, _)| *task_id == closed.task_id)
                    {
                        Some((_, sent)) => sent
                            .into_iter()
                            .map(|(stage, sha)| (stage, Some(sha)))
                            .collect(),
                        None if closed.included => {
                            BTreeMap::from([(PLAINTEXT_UPDATES_STAGE, None)])
                        }
                        None => BTreeMap::new(),
                    };
                    receipt = Some(Expected {
                        participant: self.config.id.clone(),
                        round: Some(closed.round),
                        included: closed.included,
                        sent,
                    });
                    tracing::info!(
                        participant = %self.config.id,
                        round = closed.round,
                        included = closed.included,
                        reason = %closed.reason,
                        "round closed"
                    );
                }
                Some(coordinator_message::Body::AuditCheckpoint(checkpoint)) => {
                    let cosigned = {
                        let mut keeper = self.keeper();
                        keeper
                            .accept(&checkpoint, receipt.take().as_ref())
                            .map_err(|e| ParticipantError::Audit(e.to_string()))?;
                        tracing::debug!(participant = %self.config.id, size = keeper.size(), "audit checkpoint verified");
                        self.metrics
                            .checkpoint_verified(keeper.size(), unix_seconds());
                        // Verified: we witness it, so a split view needs us.
                        keeper.cosign_last(&self.config.id, &self.signing_key, unix_seconds())
                    };
                    if let Some(cosigned) = cosigned {
                        send(&outbox, participant_message::Body::Cosignature(cosigned)).await?;
                    }
                }
                Some(coordinator_message::Body::BundleChunk(piece)) => {
                    self.bundle_piece(&mut bundle_intake, piece);
                }
                Some(coordinator_message::Body::Welcome(_)) | None => {
                    return Err(ParticipantError::Protocol(
                        "unexpected message from the coordinator".into(),
                    ));
                }
            }
        }
        Err(ParticipantError::Session(
            "the coordinator closed the stream".into(),
        ))
    }

    /// A piece of a round's bundle: once whole, verified and kept in the
    /// `bundles` folder. A bundle that fails is logged, never fatal: the
    /// SOC keeps the last good one.
    fn bundle_piece(
        &self,
        intake: &mut crate::bundles::BundleIntake,
        piece: fedsoc_proto::v1::BundleChunk,
    ) {
        let Some(dir) = &self.config.bundles else {
            return;
        };
        match intake.push(piece) {
            Ok(None) => {}
            Ok(Some((round, bytes))) => {
                match crate::bundles::keep(dir, round, &bytes, &self.ca_pem) {
                    Ok(path) => {
                        tracing::info!(participant = %self.config.id, round, bundle = %path.display(), "model bundle verified and kept")
                    }
                    Err(e) => {
                        self.metrics.refusal("bundle");
                        tracing::warn!(participant = %self.config.id, round, error = %e, "model bundle refused; the last good one stays")
                    }
                }
            }
            Err(e) => {
                self.metrics.refusal("bundle");
                tracing::warn!(participant = %self.config.id, error = %e, "model bundle piece refused")
            }
        }
    }

    fn keeper(&self) -> std::sync::MutexGuard<'_, CheckpointKeeper> {
        // Updates are single assignments: poison is moot.
        self.audit.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn releases(&self) -> std::sync::MutexGuard<'_, ReleaseLedger> {
        // Updates are single assignments: poison is moot.
        self.releases.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The coordinator's checkpoint key, from its certificate checked
    /// against the federation CA.
    fn coordinator_key(&self, der: &[u8]) -> Result<ed25519_dalek::VerifyingKey, ParticipantError> {
        let refused = |why: String| {
            ParticipantError::Refused(format!(
                "the coordinator's certificate in Welcome is refused ({why}); its audit checkpoints cannot be checked"
            ))
        };
        self.members
            .coordinator_key(der)
            .map_err(|e| refused(e.to_string()))
    }

    /// Checks a CRL the coordinator sent (CA signature, nextUpdate, our
    /// floor, which it raises) and that it does not revoke the
    /// coordinator's own certificate. A revoked coordinator is
    /// `UntrustedCoordinator`; any other refusal is returned as is.
    fn admit_crl(
        &self,
        crl_der: &[u8],
        coordinator_der: &[u8],
    ) -> Result<Result<fedsoc_pki::RevocationList, CrlRefusal>, ParticipantError> {
        let list = match self
            .crl
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(crl_der, time::OffsetDateTime::now_utc())
        {
            Ok(list) => list,
            Err(refusal) => return Ok(Err(refusal)),
        };
        list.check_certificate(coordinator_der).map_err(|e| {
            ParticipantError::UntrustedCoordinator(format!(
                "the coordinator's own certificate is revoked on CRL #{} ({e}); its audit \
                 checkpoints and tasks are refused. The federation must give the coordinator a \
                 new certificate (`fedsoc pki issue --role coordinator --force`) before this \
                 participant takes part again",
                list.number
            ))
        })?;
        Ok(Ok(list))
    }

    /// Checks the Welcome and encodes our telemetry for this federation.
    async fn join(&self, welcome: Welcome) -> Result<Federation, ParticipantError> {
        if welcome.protocol_version != PROTOCOL_VERSION {
            return Err(ParticipantError::Refused(format!(
                "the coordinator speaks protocol version {}, this participant {}",
                welcome.protocol_version, PROTOCOL_VERSION
            )));
        }
        let key = self.coordinator_key(&welcome.coordinator_certificate_der)?;
        match self.admit_crl(&welcome.crl_der, &welcome.coordinator_certificate_der)? {
            Ok(_) => {}
            // The coordinator's operator renews a stale list, and a disk
            // that failed may recover: the reconnect tries again.
            Err(refusal @ (CrlRefusal::Stale(_) | CrlRefusal::Storage(_))) => {
                return Err(ParticipantError::Session(refusal.to_string()));
            }
            Err(refusal) => {
                return Err(ParticipantError::UntrustedCoordinator(refusal.to_string()));
            }
        }
        self.keeper().set_key(key);
        let coordinator_certificate = welcome.coordinator_certificate_der;
        let spec = welcome
            .model
            .ok_or_else(|| ParticipantError::Protocol("Welcome without a model spec".into()))?;
        let model = model_from_spec(&spec)?;
        let federation = Federation {
            model,
            coordinator_certificate,
            prepared: std::sync::Mutex::new(None),
            welcome_encoder: welcome.encoder_spec_json,
        };
        if matches!(self.workload, Workload::Train(_)) {
            // Early, so a telemetry the encoder cannot read is said at once;
            // each task says it again as its reason to fail.
            if let Err(e) = self.prepared(&federation, "").await {
                tracing::warn!(participant = %self.config.id, source = %telemetry::describe(&self.config.data), error = %e, "telemetry does not fit the federation's encoder; tasks will be refused");
            }
        }
        Ok(federation)
    }

    /// Our rows encoded with `encoder_json` (empty: the Welcome's), from
    /// the last preparation when the encoder is the same.
    async fn prepared(
        &self,
        federation: &Federation,
        encoder_json: &str,
    ) -> Result<Arc<Prepared>, ParticipantError> {
        let Workload::Train(records) = &self.workload else {
            return Err(ParticipantError::Protocol(
                "no telemetry to answer with: this agent sends random updates".into(),
            ));
        };
        let json = if encoder_json.is_empty() {
            federation.welcome_encoder.clone()
        } else {
            encoder_json.to_string()
        };
        let sha = crate::prepared::encoder_sha256(&json);
        if let Some(p) = federation
            .prepared_now()
            .filter(|p| p.encoder_sha256 == sha)
        {
            return Ok(p);
        }
        let (records, model, fraction) = (
            records.clone(),
            federation.model.clone(),
            self.config.validation_fraction,
        );
        let source = telemetry::describe(&self.config.data);
        let prepared =
            tokio::task::spawn_blocking(move || Prepared::new(&records, fraction, &model, &json))
                .await
                .map_err(|e| ParticipantError::Protocol(format!("encoding task failed: {e}")))?
                .map_err(|e| match e {
                    ParticipantError::Data(e) => ParticipantError::Unanswerable {
                        source_name: source,
                        reason: e.to_string(),
                    },
                    other => other,
                })?;
        let prepared = Arc::new(prepared);
        *federation
            .prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(prepared.clone());
        Ok(prepared)
    }

    /// Our vector for a round that sums over our rows (see [`crate::prepared`]).
    async fn compute_sum(
        &self,
        federation: &Federation,
        task: &fedsoc_proto::v1::TrainTask,
        global: Vec<f32>,
    ) -> Result<Vec<u64>, ParticipantError> {
        let prepared = self.prepared(federation, &task.encoder_spec_json).await?;
        let (kind, query, model) = (
            task.kind.clone(),
            task.query_json.clone(),
            federation.model.clone(),
        );
        let source = telemetry::describe(&self.config.data);
        tokio::task::spawn_blocking(move || {
            crate::prepared::answer(&kind, &query, &prepared, &model, &global, &source)
        })
        .await
        .map_err(|e| ParticipantError::Protocol(format!("answering task failed: {e}")))?
    }

    /// Computes the task's update in the background: local training, or a
    /// random update in benchmarks.
    async fn compute_update(
        &self,
        federation: &Federation,
        task: &fedsoc_proto::v1::TrainTask,
        global: Vec<f32>,
    ) -> Result<LocalUpdate, ParticipantError> {
        if let Workload::Random(random) = &self.workload {
            return Ok(LocalUpdate {
                delta: random.delta(global.len(), task.seed),
                samples: random.samples,
                mean_loss: 0.0,
            });
        }
        let data = self
            .prepared(federation, &task.encoder_spec_json)
            .await?
            .rows
            .clone();
        let train = TrainConfig {
            epochs: task.epochs as usize,
            batch_size: task.batch_size as usize,
            learning_rate: task.learning_rate,
            seed: task.seed,
            proximal_mu: task.proximal_mu,
            loss: task_loss(task)?,
        };
        let model = federation.model.clone();
        let epochs = train.epochs as u64;
        let training = std::time::Instant::now();
        let trained = tokio::task::spawn_blocking(move || {
            let labels = model.needs_labels().then_some(data.attacks.as_slice());
            fedsoc_models::train_local(&model, &global, data.features.view(), labels, &train)
                .map(|outcome| (outcome, global))
        })
        .await
        .map_err(|e| ParticipantError::Protocol(format!("training task failed: {e}")))?;
        let (outcome, global) = trained?;
        self.metrics.trained(
            training.elapsed().as_secs_f64(),
            (outcome.samples as u64).saturating_mul(epochs),
        );
        Ok(LocalUpdate {
            delta: outcome
                .weights
                .iter()
                .zip(&global)
                .map(|(local, global)| local - global)
                .collect(),
            samples: outcome.samples as u64,
            mean_loss: outcome.mean_loss,
        })
    }

    /// Trains on the task and sends the update delta, or the reason it failed.
    async fn train_and_reply(
        &self,
        federation: &Federation,
        ready: ReadyTask,
        outbox: &mpsc::Sender<ParticipantMessage>,
    ) -> Result<Option<SecureInFlight>, ParticipantError> {
        let ReadyTask { task, global } = ready;
        self.metrics.round_joined(&task.kind);
        // The task's CRL before any work: a refusal is the task's reason to
        // fail; a revoked coordinator ends our part in the federation.
        let revoked = match self.admit_crl(&task.crl_der, &federation.coordinator_certificate) {
            Ok(Ok(list)) => list,
            Ok(Err(refusal)) => {
                self.metrics.refusal("task_crl");
                tracing::warn!(participant = %self.config.id, round = task.round, error = %refusal, "task refused");
                let failed = participant_message::Body::TaskFailed(TaskFailed {
                    task_id: task.task_id,
                    reason: refusal.to_string(),
                });
                return send(outbox, failed).await.map(|()| None);
            }
            Err(e) => {
                let failed = participant_message::Body::TaskFailed(TaskFailed {
                    task_id: task.task_id,
                    reason: e.to_string(),
                });
                let _ = send(outbox, failed).await;
                return Err(e);
            }
        };
        let sum = crate::prepared::is_sum(&task.kind);
        let base = if sum {
            crate::prepared::sum_base(task.round, &task.kind, &task.query_json, &global)
        } else {
            base_model_sha256(&global)
        };
        let checked = match &task.secure {
            Some(params) => {
                let members: Vec<String> = params
                    .members
                    .iter()
                    .map(|m| m.participant_id.clone())
                    .collect();
                self.releases().check(task.round, &base, &members)
            }
            None => Ok(None),
        };
        let pinned = match checked {
            Ok(pinned) => pinned,
            Err(refused) => {
                self.metrics.refusal("task_release");
                tracing::warn!(participant = %self.config.id, round = task.round, error = %refused, "secure task refused");
                let failed = participant_message::Body::TaskFailed(TaskFailed {
                    task_id: task.task_id,
                    reason: refused.to_string(),
                });
                return send(outbox, failed).await.map(|()| None);
            }
        };
        let work = if sum {
            match &task.secure {
                Some(_) => self.compute_sum(federation, &task, global).await.map(Err),
                None => Err(ParticipantError::Protocol(format!(
                    "a {} round without secure aggregation: our statistics leave only as \
                     part of a secure sum",
                    task.kind
                ))),
            }
        } else {
            self.compute_update(federation, &task, global).await.map(Ok)
        };
        let work = match work {
            Ok(work) => work,
            Err(e) => {
                tracing::warn!(participant = %self.config.id, round = task.round, kind = %task.kind, error = %e, "task failed");
                let failed = participant_message::Body::TaskFailed(TaskFailed {
                    task_id: task.task_id,
                    reason: e.to_string(),
                });
                return send(outbox, failed).await.map(|()| None);
            }
        };
        let (contribution, len, update) = match &work {
            Ok(update) => {
                tracing::info!(participant = %self.config.id, round = task.round, loss = update.mean_loss, samples = update.samples, "update ready");
                (
                    Contribution::Update {
                        delta: &update.delta,
                        samples: update.samples,
                        loss: update.mean_loss,
                    },
                    update.delta.len(),
                    Some(update),
                )
            }
            Err(words) => {
                tracing::info!(participant = %self.config.id, round = task.round, kind = %task.kind, words = words.len(), "sum ready");
                (
                    Contribution::Words {
                        words: words.clone(),
                        context: fedsoc_secagg::query_context(&task.kind, &task.query_json),
                    },
                    words.len(),
                    None,
                )
            }
        };
        if let Some(params) = &task.secure {
            let started = SecureTask::start(
                params,
                &self.config.id,
                &self.members,
                &revoked,
                &self.signing_key,
                contribution,
                &self.config.secure_aggregation,
                pinned,
            );
            let (secure_task, advert) = match started {
                Ok(started) => started,
                Err(e) => {
                    tracing::warn!(participant = %self.config.id, round = task.round, error = %e, "cannot join the secure round");
                    let failed = participant_message::Body::TaskFailed(TaskFailed {
                        task_id: task.task_id,
                        reason: e.to_string(),
                    });
                    return send(outbox, failed).await.map(|()| None);
                }
            };
            send_secagg(outbox, task.task_id, stage::ADVERTISE_KEYS, &advert).await?;
            if let Some(dir) = &self.config.contributions {
                keep_contribution(
                    &self.disk,
                    dir,
                    task.round,
                    &params.round_id,
                    secure_task.input(),
                );
            }
            return Ok(Some(SecureInFlight {
                task_id: task.task_id,
                round: task.round,
                base,
                task: secure_task,
                max_message: max_secagg_message(len, params.members.len()),
                incoming: None,
            }));
        }
        if self.vanishes() {
            return Err(vanished());
        }
        let Some(LocalUpdate {
            delta,
            samples,
            mean_loss,
        }) = update
        else {
            return Ok(None);
        };
        let header = participant_message::Body::UpdateHeader(UpdateHeader {
            task_id: task.task_id,
            samples: *samples,
            mean_loss: *mean_loss,
            num_params: delta.len() as u64,
        });
        send(outbox, header).await?;
        for piece in chunk::split(task.task_id, delta) {
            send(outbox, participant_message::Body::UpdateChunk(piece)).await?;
        }
        Ok(None)
    }

    /// Whether this benchmark agent plays a crashed machine mid-round.
    fn vanishes(&self) -> bool {
        matches!(&self.workload, Workload::Random(r) if r.vanish_after_sharing_keys)
    }

    /// Feeds a chunk of the coordinator's secure-aggregation message to the
    /// round in flight and sends our answer once the message is complete.
    /// A failure ends our part in this round only (we become a dropout);
    /// the session goes on, unless a benchmark agent plays a crash.
    async fn secure_step(
        &self,
        secure: &mut Option<SecureInFlight>,
        piece: SecAggChunk,
        outbox: &mpsc::Sender<ParticipantMessage>,
    ) -> Result<(), ParticipantError> {
        let Some(flight) = secure.as_mut() else {
            tracing::warn!(participant = %self.config.id, "secure-aggregation message without a round in flight; ignored");
            return Ok(());
        };
        if piece.task_id != flight.task_id {
            tracing::warn!(participant = %self.config.id, task = piece.task_id, "stale secure-aggregation message refused");
            return Ok(());
        }
        let outcome = async {
            let (stage_no, assembler) = match flight.incoming.take() {
                Some((stage_no, asm)) if stage_no == piece.stage => (stage_no, asm),
                Some((stage_no, _)) => {
                    return Err(ParticipantError::Protocol(format!(
                        "stage {} began before stage {stage_no} was complete",
                        piece.stage
                    )));
                }
                None => (
                    piece.stage,
                    Assembler::bytes(flight.task_id, &piece, flight.max_message)
                        .map_err(|e| ParticipantError::Protocol(e.to_string()))?,
                ),
            };
            let mut assembler = assembler;
            match assembler
                .push_bytes(&piece)
                .map_err(|e| ParticipantError::Protocol(e.to_string()))?
            {
                None => {
                    flight.incoming = Some((stage_no, assembler));
                    Ok(())
                }
                Some(bytes) => {
                    // A benchmark crash after sharing keys: the shares
                    // were delivered, the masked input never comes.
                    if stage_no == stage::MASKED_INPUT && self.vanishes() {
                        return Err(vanished());
                    }
                    let round = flight.round;
                    fault_point(&self.config.id, round, fault::stage::of_secagg(stage_no)).await;
                    let reply = flight.task.handle(stage_no, &bytes)?;
                    if stage_no == stage::UNMASK {
                        // From here the coordinator can finish the sum:
                        // our update from this base enters no other.
                        let release = Release {
                            round,
                            round_id: flight.task.round_id_hex(),
                            survivors: flight.task.signed_survivors().unwrap_or_default(),
                        };
                        self.releases()
                            .record(&flight.base, release)
                            .map_err(|e| ParticipantError::Protocol(e.to_string()))?;
                    }
                    send_secagg(outbox, flight.task_id, stage_no, &reply).await
                }
            }
        }
        .await;
        match outcome {
            Ok(()) => Ok(()),
            Err(e @ ParticipantError::Session(_)) => Err(e),
            Err(e) => {
                tracing::warn!(participant = %self.config.id, error = %e, "left the secure round");
                *secure = None;
                Ok(())
            }
        }
    }
}

/// Stops dead or stalls here if a process-level test asked for it (see
/// [`fedsoc_proto::fault`]).
async fn fault_point(me: &str, round: u64, stage_name: &str) {
    match fault::pause_at(round, stage_name) {
        None => {}
        Some(fault::Pause::Forever) => {
            tracing::warn!(participant = %me, round, stage = stage_name, "fault point reached; pausing");
            std::future::pending::<()>().await;
        }
        Some(fault::Pause::For(pause)) => {
            tracing::warn!(participant = %me, round, stage = stage_name, pause_ms = pause.as_millis() as u64, "fault point reached; stalling");
            tokio::time::sleep(pause).await;
        }
    }
}

/// Writes our quantised update to `dir` for our own records (atomically;
/// a failure is logged, never fatal to the round).
fn keep_contribution(
    disk: &fedsoc_durable::Disk,
    dir: &std::path::Path,
    round: u64,
    round_id: &[u8],
    input: &[u64],
) {
    let path = dir.join(format!("round-{round:06}-{}.u64", hex::encode(round_id)));
    let bytes: Vec<u8> = input.iter().flat_map(|w| w.to_le_bytes()).collect();
    let written = disk
        .create_dir_all(dir)
        .and_then(|()| disk.replace(&path, &bytes));
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "could not keep a copy of our contribution");
    }
}

/// The checkpoint keeper of `config`'s state folder (in memory without one).
fn open_keeper(
    config: &ParticipantConfig,
    disk: &fedsoc_durable::Disk,
) -> Result<CheckpointKeeper, ParticipantError> {
    match &config.state_dir {
        Some(dir) => CheckpointKeeper::open(dir, disk.clone())
            .map_err(|e| ParticipantError::Audit(e.to_string())),
        None => Ok(CheckpointKeeper::default()),
    }
}

/// The release ledger of `config`'s state folder (in memory without one).
fn open_releases(
    config: &ParticipantConfig,
    disk: &fedsoc_durable::Disk,
) -> Result<ReleaseLedger, ParticipantError> {
    match &config.state_dir {
        Some(dir) => ReleaseLedger::open(dir, disk.clone())
            .map_err(|e| ParticipantError::Protocol(e.to_string())),
        None => Ok(ReleaseLedger::default()),
    }
}

/// The CRL keeper of `config`'s state folder (in memory without one).
fn open_crl_keeper(
    config: &ParticipantConfig,
    ca_pem: &str,
    disk: &fedsoc_durable::Disk,
) -> Result<CrlKeeper, ParticipantError> {
    Ok(CrlKeeper::open(
        ca_pem,
        config.state_dir.as_deref(),
        disk.clone(),
        &config.id,
    )?)
}

/// Seconds since the Unix epoch (0 before it).
fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The session end a benchmark agent plays when it vanishes mid-round.
fn vanished() -> ParticipantError {
    ParticipantError::Session("vanished mid-round (benchmark dropout)".into())
}

/// Largest secure-aggregation message we accept: the masked vector
/// dominates; key and share bundles grow with the members.
fn max_secagg_message(num_params: usize, members: usize) -> u64 {
    let vector = 8 * (num_params as u64 + 2);
    vector + 4096 * members as u64 + 64 * 1024
}

async fn send_secagg(
    outbox: &mpsc::Sender<ParticipantMessage>,
    task_id: u64,
    stage_no: u32,
    bytes: &[u8],
) -> Result<(), ParticipantError> {
    for piece in chunk::split_bytes(task_id, stage_no, bytes) {
        send(outbox, participant_message::Body::Secagg(piece)).await?;
    }
    Ok(())
}

async fn send(
    outbox: &mpsc::Sender<ParticipantMessage>,
    body: participant_message::Body,
) -> Result<(), ParticipantError> {
    outbox
        .send(ParticipantMessage { body: Some(body) })
        .await
        .map_err(|_| ParticipantError::Session("the stream to the coordinator closed".into()))
}

/// Maps a gRPC status to a refusal (permanent) or a lost session, from
/// its code and the TLS alert it carries.
fn refusal(status: Status) -> ParticipantError {
    match status.code() {
        Code::PermissionDenied
        | Code::Unauthenticated
        | Code::FailedPrecondition
        | Code::InvalidArgument => ParticipantError::Refused(status.message().to_string()),
        _ => {
            let detail = chain(&status);
            // With TLS 1.3 a rejected client certificate surfaces here, on
            // the first call: as the coordinator's alert when we read it in
            // time, else as a connection it closed under us.
            if detail.contains("CertificateExpired") {
                ParticipantError::Refused(format!(
                    "our certificate has expired ({detail}); ask the federation CA for a new \
                     one (`fedsoc pki issue --force`)"
                ))
            } else if detail.contains("CertificateRevoked") {
                ParticipantError::Refused(format!(
                    "our certificate has been revoked ({detail}); ask the federation CA for a new one"
                ))
            } else if detail.contains("alert") {
                ParticipantError::Refused(format!(
                    "the TLS handshake was rejected ({detail}); the participant certificate \
                     must be issued by the federation CA and still valid"
                ))
            } else {
                ParticipantError::Session(format!(
                    "{detail}; if this persists, check that the participant certificate is \
                     issued by the federation CA and still valid"
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_balanced_task_uses_the_federation_weight_when_it_has_one() {
        let task = |loss: &str, class_weight: f64| fedsoc_proto::v1::TrainTask {
            loss: loss.into(),
            class_weight,
            ..Default::default()
        };
        assert_eq!(
            task_loss(&task("balanced", 9.0)).unwrap(),
            ClassifierLoss::Weighted { pos_weight: 9.0 }
        );
        assert_eq!(
            task_loss(&task("balanced", 0.0)).unwrap(),
            ClassifierLoss::Balanced
        );
        assert_eq!(task_loss(&task("bce", 9.0)).unwrap(), ClassifierLoss::Bce);
        assert!(task_loss(&task("hinge", 0.0)).is_err());
    }
}
