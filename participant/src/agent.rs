//! The node agent: dials out to the coordinator, holds one stream, trains
//! on each task and sends back its update delta. It reconnects with
//! jittered backoff after a lost connection and stops for good on a
//! refusal, which no retry would change.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fedsoc_datasets::FlowRecord;
use fedsoc_models::{AutoencoderConfig, TrainConfig};
use fedsoc_proto::v1::federation_client::FederationClient;
use fedsoc_proto::v1::{
    CoordinatorMessage, Hello, ParticipantMessage, TaskFailed, UpdateHeader, Welcome,
    coordinator_message, participant_message,
};
use fedsoc_proto::{MAX_MESSAGE_BYTES, PROTOCOL_VERSION, chunk};
use ndarray::Array2;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::config::ParticipantConfig;
use crate::error::{ParticipantError, chain};
use crate::task::{ReadyTask, TaskIntake};
use crate::telemetry;

/// Messages buffered towards the coordinator.
const OUTBOX_DEPTH: usize = 16;

/// A participant with its telemetry loaded.
pub struct Agent {
    config: ParticipantConfig,
    records: Arc<Vec<FlowRecord>>,
}

/// What the federation told us when we joined.
struct Federation {
    model: AutoencoderConfig,
    data: Arc<Array2<f32>>,
}

impl Agent {
    /// Loads the telemetry the configuration names.
    pub fn new(config: ParticipantConfig) -> Result<Self, ParticipantError> {
        let records = telemetry::load(&config.data)?;
        tracing::info!(participant = %config.id, rows = records.len(), "telemetry loaded");
        Ok(Agent {
            config,
            records: Arc::new(records),
        })
    }

    pub fn id(&self) -> &str {
        &self.config.id
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
            .map_err(|e| connect_err(chain(&e)))
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
        });
        send(&outbox, hello).await?;
        let mut inbound = client
            .session(ReceiverStream::new(outbox_rx))
            .await
            .map_err(refusal)?
            .into_inner();

        let welcome = match inbound.message().await.map_err(refusal)? {
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
        let expected_params = federation.model.num_params();
        while let Some(message) = inbound.message().await.map_err(refusal)? {
            match message.body {
                Some(coordinator_message::Body::TrainTask(task)) => {
                    tracing::debug!(participant = %self.config.id, round = task.round, "task received");
                    intake.start(task, expected_params)?;
                }
                Some(coordinator_message::Body::ModelChunk(piece)) => {
                    if let Some(ready) = intake.chunk(piece)? {
                        self.train_and_reply(&federation, ready, &outbox).await?;
                    }
                }
                Some(coordinator_message::Body::RoundClosed(closed)) => {
                    tracing::info!(
                        participant = %self.config.id,
                        round = closed.round,
                        included = closed.included,
                        reason = %closed.reason,
                        "round closed"
                    );
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

    /// Checks the Welcome and encodes our telemetry for this federation.
    async fn join(&self, welcome: Welcome) -> Result<Federation, ParticipantError> {
        if welcome.protocol_version != PROTOCOL_VERSION {
            return Err(ParticipantError::Refused(format!(
                "the coordinator speaks protocol version {}, this participant {}",
                welcome.protocol_version, PROTOCOL_VERSION
            )));
        }
        let spec = welcome
            .model
            .ok_or_else(|| ParticipantError::Protocol("Welcome without a model spec".into()))?;
        if spec.kind != "autoencoder" {
            return Err(ParticipantError::Protocol(format!(
                "model kind {:?} is not supported by this participant",
                spec.kind
            )));
        }
        let model = AutoencoderConfig {
            input_dim: spec.input_dim as usize,
            hidden: spec.hidden.iter().map(|&h| h as usize).collect(),
        };
        model.validate()?;
        let records = self.records.clone();
        let encoder_json = welcome.encoder_spec_json;
        let data = tokio::task::spawn_blocking(move || telemetry::encode(&records, &encoder_json))
            .await
            .map_err(|e| ParticipantError::Protocol(format!("encoding task failed: {e}")))??;
        if data.ncols() != model.input_dim {
            return Err(ParticipantError::Protocol(format!(
                "the feature encoding yields {} features but the model expects {}",
                data.ncols(),
                model.input_dim
            )));
        }
        Ok(Federation {
            model,
            data: Arc::new(data),
        })
    }

    /// Trains on the task and sends the update delta, or the reason it failed.
    async fn train_and_reply(
        &self,
        federation: &Federation,
        ready: ReadyTask,
        outbox: &mpsc::Sender<ParticipantMessage>,
    ) -> Result<(), ParticipantError> {
        let ReadyTask { task, global } = ready;
        let train = TrainConfig {
            epochs: task.epochs as usize,
            batch_size: task.batch_size as usize,
            learning_rate: task.learning_rate,
            seed: task.seed,
        };
        let model = federation.model.clone();
        let data = federation.data.clone();
        let trained = tokio::task::spawn_blocking(move || {
            fedsoc_models::train_local(&model, &global, data.view(), &train)
                .map(|outcome| (outcome, global))
        })
        .await
        .map_err(|e| ParticipantError::Protocol(format!("training task failed: {e}")))?;
        let (outcome, global) = match trained {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!(participant = %self.config.id, round = task.round, error = %e, "training failed");
                let failed = participant_message::Body::TaskFailed(TaskFailed {
                    task_id: task.task_id,
                    reason: e.to_string(),
                });
                return send(outbox, failed).await;
            }
        };
        let delta: Vec<f32> = outcome
            .weights
            .iter()
            .zip(&global)
            .map(|(local, global)| local - global)
            .collect();
        tracing::info!(participant = %self.config.id, round = task.round, loss = outcome.mean_loss, samples = outcome.samples, "update ready");
        let header = participant_message::Body::UpdateHeader(UpdateHeader {
            task_id: task.task_id,
            samples: outcome.samples as u64,
            mean_loss: outcome.mean_loss,
            num_params: delta.len() as u64,
        });
        send(outbox, header).await?;
        for piece in chunk::split(task.task_id, &delta) {
            send(outbox, participant_message::Body::UpdateChunk(piece)).await?;
        }
        Ok(())
    }
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

/// Maps a gRPC status to a refusal (permanent) or a lost session.
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
            if detail.contains("alert") {
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
