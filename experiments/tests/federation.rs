//! End-to-end: real gRPC over mutual TLS on 127.0.0.1 with ephemeral ports
//! and real certificates.

use std::time::Duration;

use fedsoc_coordinator::CoordinatorError;
use fedsoc_coordinator::aggregate::PlaintextSum;
use fedsoc_coordinator::strategy::fedavg;
use fedsoc_datasets::EncoderSpec;
use fedsoc_experiments::local::{LocalFederation, LocalFederationSpec};
use fedsoc_participant::{Agent, ParticipantConfig, ParticipantError};
use fedsoc_pki::{CertificateAuthority, Identity};
use fedsoc_proto::v1::federation_client::FederationClient;
use fedsoc_proto::v1::{Hello, ParticipantMessage, coordinator_message, participant_message};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

fn small_spec(dir: &std::path::Path, participants: usize) -> LocalFederationSpec {
    let mut spec = LocalFederationSpec::new(dir, participants);
    // These tests check the round machinery against exact FedAvg; the
    // secure path is checked against the same reference in secure.rs.
    spec.secure = false;
    spec.rows = 600;
    spec.hidden = vec![16, 8];
    spec.batch_size = 32;
    spec
}

/// The model each participant would have trained locally in `round`,
/// recomputed here from its own data, independently of the network path.
fn local_model(
    federation: &LocalFederation,
    index: usize,
    round: u64,
    global: &[f32],
) -> (Vec<f32>, usize) {
    let config = federation.participant_config(index);
    let records = fedsoc_participant::telemetry::load(&config.data).unwrap();
    // The participant trains on what it does not hold out for validation.
    let (records, _) =
        fedsoc_participant::telemetry::split_validation(&records, config.validation_fraction);
    // The autoencoder learns benign traffic: rows labelled as attacks are left out.
    let benign = records.filter(|i| records.family(i) == "normal");
    let data = EncoderSpec::synthetic_default().encode(&benign).unwrap();
    let spec = federation.coordinator.spec();
    let train = spec.train_config(round, &config.id);
    let model = spec.model.clone();
    let out = fedsoc_models::train_local(&model, global, data.view(), None, &train).unwrap();
    (out.weights, out.samples)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_participants_two_rounds_fedavg_is_weighted_mean_of_local_models() {
    let dir = tempfile::tempdir().unwrap();
    let federation = LocalFederation::start(&small_spec(dir.path(), 3))
        .await
        .unwrap();
    let mut global = federation.coordinator.global_model().to_vec();
    for round in 1..=2u64 {
        let report = federation.coordinator.run_next_round().await.unwrap();
        assert_eq!(report.round, round);
        assert_eq!(report.included.len(), 3, "dropped: {:?}", report.dropped);

        let mut total = 0usize;
        let mut expected = vec![0f64; global.len()];
        for i in 0..3 {
            let (local, n) = local_model(&federation, i, round, &global);
            total += n;
            for (e, l) in expected.iter_mut().zip(&local) {
                *e += n as f64 * f64::from(*l);
            }
        }
        assert_eq!(report.samples, total as u64);
        let mut max_diff = 0f32;
        for (got, want) in report.model.iter().zip(&expected) {
            max_diff = max_diff.max((got - (*want / total as f64) as f32).abs());
        }
        assert!(max_diff < 1e-5, "round {round}: max |Δ| = {max_diff}");
        assert_ne!(
            report.model.as_slice(),
            global.as_slice(),
            "the model did not move"
        );
        global = report.model.to_vec();
    }
    // The stored head is the last round's model.
    assert_eq!(
        federation.coordinator.global_model().as_slice(),
        global.as_slice()
    );
    federation.shutdown().await;
}

/// A participant config whose certificate comes from `ca` under `id`.
fn config_with_certificate(
    federation: &LocalFederation,
    ca: &CertificateAuthority,
    id: &str,
) -> ParticipantConfig {
    let mut config = federation.participant_config(0).clone();
    let pki = federation.dir().join("pki");
    ca.issue(&Identity::participant(id).unwrap(), &[])
        .unwrap()
        .save(&pki, &format!("other-{id}"))
        .unwrap();
    config.id = id.to_string();
    config.tls.cert = pki.join(format!("other-{id}.pem"));
    config.tls.key = pki.join(format!("other-{id}.key"));
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_ca_and_unlisted_participants_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let federation = LocalFederation::start(&small_spec(dir.path(), 2))
        .await
        .unwrap();

    let foreign = CertificateAuthority::generate("elsewhere").unwrap();
    let config = config_with_certificate(&federation, &foreign, "soc-de");
    let err = Agent::new(config).unwrap().run_session().await.unwrap_err();
    // Whether the client reads the coordinator's TLS alert or only sees the
    // connection close depends on timing; either way the error says why.
    assert!(
        matches!(
            err,
            ParticipantError::Refused(_) | ParticipantError::Session(_)
        ) && err.to_string().contains("federation CA"),
        "{err}"
    );

    let config = config_with_certificate(&federation, federation.ca(), "soc-xx");
    let agent = Agent::new(config).unwrap();
    let err = agent.run_session().await.unwrap_err();
    assert!(
        matches!(err, ParticipantError::Refused(_))
            && err.to_string().contains("not on the roster"),
        "{err}"
    );
    // A refusal is permanent: `run` gives up instead of retrying forever.
    let err = agent.run(std::future::pending()).await.unwrap_err();
    assert!(err.is_permanent());

    let connected = federation.coordinator.shared().registry.connected();
    assert_eq!(connected, federation.participant_ids());
    federation.shutdown().await;
}

/// A raw session that says Hello as `index`'s participant with `version`.
async fn raw_session(
    federation: &LocalFederation,
    index: usize,
    version: u32,
) -> Result<
    (
        mpsc::Sender<ParticipantMessage>,
        tonic::Streaming<fedsoc_proto::v1::CoordinatorMessage>,
    ),
    tonic::Status,
> {
    let config = federation.participant_config(index);
    let tls = config.tls_files().client_config("localhost").unwrap();
    let channel: Channel = Endpoint::from_shared(config.coordinator.clone())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(16);
    tx.send(ParticipantMessage {
        body: Some(participant_message::Body::Hello(Hello {
            protocol_version: version,
            participant_id: config.id.clone(),
            agent_version: "test".into(),
            last_checkpoint_size: 0,
            wants_bundles: false,
        })),
    })
    .await
    .unwrap();
    let inbound = FederationClient::new(channel)
        .session(ReceiverStream::new(rx))
        .await?
        .into_inner();
    Ok((tx, inbound))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatched_protocol_version_gets_a_clear_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = small_spec(dir.path(), 2);
    spec.min_participants = 1;
    let mut federation = LocalFederation::start(&spec).await.unwrap();
    let id = federation.participant_ids()[1].clone();
    federation.kill(&id);
    let status = raw_session(&federation, 1, 99).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(status.message().contains("protocol version 99"), "{status}");
    federation.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_that_vanish_or_stall_are_dropped_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = small_spec(dir.path(), 4);
    spec.min_participants = 2;
    spec.round_timeout = Duration::from_secs(3);
    let mut federation = LocalFederation::start(&spec).await.unwrap();
    let ids = federation.participant_ids();
    // Participants 2 and 3 are replaced by hand-driven sessions: one hangs
    // up once it has its task, one never answers.
    federation.kill(&ids[2]);
    federation.kill(&ids[3]);
    let (vanishing_tx, mut vanishing) = raw_session(&federation, 2, 1).await.unwrap();
    let (_stalling_tx, _stalling) = raw_session(&federation, 3, 1).await.unwrap();
    assert!(
        federation
            .coordinator
            .wait_for_participants(4, Duration::from_secs(10))
            .await
    );
    let global = federation.coordinator.global_model().to_vec();
    let hang_up = tokio::spawn(async move {
        while let Ok(Some(message)) = vanishing.message().await {
            if let Some(coordinator_message::Body::TrainTask(_)) = message.body {
                break;
            }
        }
        drop(vanishing_tx);
        drop(vanishing);
    });

    let report = federation.coordinator.run_next_round().await.unwrap();
    hang_up.await.unwrap();
    assert_eq!(report.included, vec![ids[0].clone(), ids[1].clone()]);
    let mut reasons: Vec<(&str, &str)> = report
        .dropped
        .iter()
        .map(|d| (d.participant.as_str(), d.reason.as_str()))
        .collect();
    reasons.sort();
    let mut expected = vec![
        (ids[2].as_str(), "disconnected"),
        (ids[3].as_str(), "missed the round deadline"),
    ];
    expected.sort();
    assert_eq!(reasons, expected);

    // The new model is FedAvg over the survivors alone.
    let mut sum = PlaintextSum::new(global.len());
    for i in 0..2 {
        let (local, n) = local_model(&federation, i, 1, &global);
        let delta: Vec<f32> = local.iter().zip(&global).map(|(l, g)| l - g).collect();
        sum.add(n as u64, 0.0, &delta).unwrap();
    }
    let want = fedavg(&global, &sum.finish());
    let max_diff = want
        .iter()
        .zip(report.model.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max_diff < 1e-5, "max |Δ| = {max_diff}");
    federation.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_participants_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = small_spec(dir.path(), 2);
    spec.min_participants = 2;
    let mut federation = LocalFederation::start(&spec).await.unwrap();
    let id = federation.participant_ids()[0].clone();
    federation.kill(&id);
    // Wait until the coordinator has noticed the disconnect.
    for _ in 0..100 {
        if federation.coordinator.shared().registry.connected().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let err = federation.coordinator.run_next_round().await.unwrap_err();
    assert!(
        matches!(
            err,
            CoordinatorError::NotEnoughParticipants {
                got: 1,
                need: 2,
                ..
            }
        ),
        "{err}"
    );
    federation.shutdown().await;
}

#[test]
fn fedavg_reference_matches_plaintext_sum() {
    // Guards the reference used above: FedAvg of deltas equals the
    // weighted mean of the local models.
    let global = [0.0f32, 1.0];
    let mut sum = PlaintextSum::new(2);
    sum.add(2, 0.0, &[1.0, 1.0]).unwrap();
    sum.add(6, 0.0, &[-1.0, 0.0]).unwrap();
    assert_eq!(fedavg(&global, &sum.finish()), vec![-0.5, 1.25]);
}
