//! Secure rounds end to end over gRPC + mutual TLS on 127.0.0.1: the
//! coordinator learns only the weighted sum, and the model it derives
//! equals plaintext FedAvg of the survivors within the quantisation bound.

use std::time::Duration;

use fedsoc_datasets::EncoderSpec;
use fedsoc_experiments::local::{LocalFederation, LocalFederationSpec};
use fedsoc_participant::secure::SecureTask;
use fedsoc_proto::chunk::{self, Assembler};
use fedsoc_proto::v1::federation_client::FederationClient;
use fedsoc_proto::v1::{
    CoordinatorMessage, Hello, ParticipantMessage, SecAggChunk, coordinator_message,
    participant_message,
};
use fedsoc_proto::{PROTOCOL_VERSION, secagg_stage};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

/// One quantisation step of the default encoding (clip 1, 16 bits): the
/// bound on each coordinate of the weighted mean, plus f32 rounding.
const BOUND: f32 = 2.0 / 65535.0 + 1e-6;

fn spec(dir: &std::path::Path, participants: usize) -> LocalFederationSpec {
    let mut spec = LocalFederationSpec::new(dir, participants);
    spec.rows = 600;
    spec.hidden = vec![16, 8];
    spec.batch_size = 32;
    spec.stage_timeout_s = 5;
    spec
}

/// The local model participant `index` trains in `round` from `global`.
fn local_delta(
    federation: &LocalFederation,
    index: usize,
    round: u64,
    global: &[f32],
) -> (Vec<f32>, u64) {
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
    let delta = out.weights.iter().zip(global).map(|(l, g)| l - g).collect();
    (delta, out.samples as u64)
}

fn fedavg(global: &[f32], updates: &[(Vec<f32>, u64)]) -> Vec<f32> {
    let total: u64 = updates.iter().map(|(_, n)| n).sum();
    (0..global.len())
        .map(|j| {
            let s: f64 = updates
                .iter()
                .map(|(d, n)| *n as f64 * f64::from(d[j]))
                .sum();
            (f64::from(global[j]) + s / total as f64) as f32
        })
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_rounds_match_plaintext_fedavg_within_the_quantisation_bound() {
    let dir = tempfile::tempdir().unwrap();
    let federation = LocalFederation::start(&spec(dir.path(), 3)).await.unwrap();
    let mut global = federation.coordinator.global_model().to_vec();
    for round in 1..=2u64 {
        let report = federation.coordinator.run_next_round().await.unwrap();
        assert_eq!(report.included.len(), 3, "dropped: {:?}", report.dropped);
        let updates: Vec<_> = (0..3)
            .map(|i| local_delta(&federation, i, round, &global))
            .collect();
        assert_eq!(report.samples, updates.iter().map(|(_, n)| n).sum::<u64>());
        let want = fedavg(&global, &updates);
        let diff = max_diff(&want, &report.model);
        assert!(diff <= BOUND, "round {round}: max |Δ| = {diff} > {BOUND}");
        global = report.model.to_vec();
    }
    federation.shutdown().await;
}

/// A participant driven by hand: it joins, sends a fixed update through
/// the real client state machine, and hangs up after its message of
/// `last_stage` — once the coordinator has moved on to the next stage, so
/// that message has certainly arrived (dropping a gRPC call early would
/// cancel what is still in flight).
async fn scripted_participant(
    federation: &LocalFederation,
    index: usize,
    delta_value: f32,
    samples: u64,
    last_stage: u32,
) -> tokio::task::JoinHandle<()> {
    let config = federation.participant_config(index).clone();
    let tls = config.tls_files().client_config("localhost").unwrap();
    let channel = Endpoint::from_shared(config.coordinator.clone())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(64);
    tx.send(ParticipantMessage {
        body: Some(participant_message::Body::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            participant_id: config.id.clone(),
            agent_version: "script".into(),
            last_checkpoint_size: 0,
            wants_bundles: false,
        })),
    })
    .await
    .unwrap();
    let mut inbound = FederationClient::new(channel)
        .session(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let members =
        fedsoc_pki::MemberVerifier::new(&std::fs::read_to_string(&config.tls.ca).unwrap()).unwrap();
    let key = fedsoc_pki::load_signing_key(&config.tls.key).unwrap();
    tokio::spawn(async move {
        let send = |stage: u32, task_id: u64, bytes: Vec<u8>| {
            let tx = tx.clone();
            async move {
                for piece in chunk::split_bytes(task_id, stage, &bytes) {
                    let body = participant_message::Body::Secagg(piece);
                    tx.send(ParticipantMessage { body: Some(body) })
                        .await
                        .unwrap();
                }
            }
        };
        let mut secure: Option<(u64, SecureTask)> = None;
        let mut model: Option<(u64, usize, Assembler)> = None;
        let mut incoming: Option<Assembler<u8>> = None;
        while let Ok(Some(CoordinatorMessage { body: Some(body) })) = inbound.message().await {
            match body {
                coordinator_message::Body::TrainTask(task) => {
                    let params = task.secure.clone().expect("secure round");
                    let n = task.num_params as usize;
                    model = Some((
                        task.task_id,
                        n,
                        Assembler::new(task.task_id, task.num_params),
                    ));
                    let delta = vec![delta_value; n];
                    let (t, advert) = SecureTask::start(
                        &params,
                        &config.id,
                        &members,
                        // A scripted member: the task's CRL is the agent's to check.
                        &fedsoc_pki::RevocationList::empty(),
                        &key,
                        fedsoc_participant::secure::Contribution::Update {
                            delta: &delta,
                            samples,
                            loss: 0.5,
                        },
                        &config.secure_aggregation,
                        None,
                    )
                    .unwrap();
                    secure = Some((task.task_id, t));
                    send(secagg_stage::ADVERTISE_KEYS, task.task_id, advert).await;
                }
                coordinator_message::Body::ModelChunk(c) => {
                    if let Some((_, _, asm)) = model.as_mut() {
                        let _ = asm.push(c);
                    }
                }
                coordinator_message::Body::Secagg(piece) => {
                    let SecAggChunk { stage, .. } = piece;
                    if stage > last_stage {
                        return; // hang up: the stream and channel drop
                    }
                    let (task_id, task) = secure.as_mut().unwrap();
                    let asm = match incoming.as_mut() {
                        Some(a) => a,
                        None => {
                            incoming.insert(Assembler::bytes(*task_id, &piece, 1 << 24).unwrap())
                        }
                    };
                    if let Some(bytes) = asm.push_bytes(&piece).unwrap() {
                        incoming = None;
                        let reply = task.handle(stage, &bytes).unwrap();
                        send(stage, *task_id, reply).await;
                    }
                }
                _ => {}
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_participants_one_dies_after_sharing_one_after_masking() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(dir.path(), 5);
    spec.min_participants = 3;
    let mut federation = LocalFederation::start(&spec).await.unwrap();
    let ids = federation.participant_ids();
    // Participants 3 and 4 are scripted: 3 hangs up right after sharing its
    // keys, 4 right after sending its masked input.
    federation.kill(&ids[3]);
    federation.kill(&ids[4]);
    for _ in 0..100 {
        if federation.coordinator.shared().registry.connected().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after_sharing =
        scripted_participant(&federation, 3, 0.3, 700, secagg_stage::SHARE_KEYS).await;
    let after_masking =
        scripted_participant(&federation, 4, -0.2, 900, secagg_stage::MASKED_INPUT).await;
    assert!(
        federation
            .coordinator
            .wait_for_participants(5, Duration::from_secs(10))
            .await
    );

    let global = federation.coordinator.global_model().to_vec();
    let report = federation.coordinator.run_next_round().await.unwrap();
    after_sharing.await.unwrap();
    after_masking.await.unwrap();

    // 4's masked input is in the sum (it dropped only afterwards, and its
    // self-mask was reconstructed from its neighbours' shares); 3's is not,
    // and its pairwise masks were removed through its shared key.
    let mut included = report.included.clone();
    included.sort();
    let mut want_included = vec![
        ids[0].clone(),
        ids[1].clone(),
        ids[2].clone(),
        ids[4].clone(),
    ];
    want_included.sort();
    assert_eq!(included, want_included, "dropped: {:?}", report.dropped);
    assert!(
        report.dropped.iter().any(|d| d.participant == ids[3]),
        "{:?}",
        report.dropped
    );

    let n = global.len();
    let mut updates: Vec<_> = (0..3)
        .map(|i| local_delta(&federation, i, 1, &global))
        .collect();
    updates.push((vec![-0.2; n], 900));
    let want = fedavg(&global, &updates);
    assert_eq!(report.samples, updates.iter().map(|(_, n)| n).sum::<u64>());
    let diff = max_diff(&want, &report.model);
    assert!(diff <= BOUND, "max |Δ| = {diff} > {BOUND}");
    federation.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_dropouts_abort_cleanly_then_the_retry_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(dir.path(), 3);
    spec.min_participants = 2;
    let mut federation = LocalFederation::start(&spec).await.unwrap();
    let ids = federation.participant_ids();
    federation.kill(&ids[1]);
    federation.kill(&ids[2]);
    for _ in 0..100 {
        if federation.coordinator.shared().registry.connected().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Two scripted members vanish right after advertising: with 3 members
    // and t = 2, the survivor has too few neighbours left.
    let a = scripted_participant(&federation, 1, 0.1, 100, secagg_stage::ADVERTISE_KEYS).await;
    let b = scripted_participant(&federation, 2, 0.1, 100, secagg_stage::ADVERTISE_KEYS).await;
    assert!(
        federation
            .coordinator
            .wait_for_participants(3, Duration::from_secs(10))
            .await
    );
    let err = federation.coordinator.run_next_round().await.unwrap_err();
    a.await.unwrap();
    b.await.unwrap();
    let text = err.to_string();
    assert!(
        text.contains("dropout") || text.contains("Dropout") || text.contains("participants"),
        "{text}"
    );
    assert_eq!(federation.coordinator.shared().status().completed_round, 0);

    // The real agents come back; the retried round uses a fresh round id
    // and fresh keys and completes.
    federation.start_participant(1).unwrap();
    federation.start_participant(2).unwrap();
    assert!(
        federation
            .coordinator
            .wait_for_participants(3, Duration::from_secs(20))
            .await
    );
    let report = federation.coordinator.run_next_round().await.unwrap();
    assert_eq!(report.round, 1);
    assert_eq!(report.included.len(), 3, "{:?}", report.dropped);
    federation.shutdown().await;
}
