//! Hostile participants: a federation of honest agents over mutual TLS
//! with one scripted participant that misbehaves in one way per test.
//! Each test asserts the specific refusal, and that the honest members'
//! round still completes without the hostile input in it.

use std::time::Duration;

use fedsoc_coordinator::RoundReport;
use fedsoc_experiments::local::{LocalFederation, LocalFederationSpec};
use fedsoc_participant::secure::SecureTask;
use fedsoc_proto::chunk::{self, Assembler};
use fedsoc_proto::v1::federation_client::FederationClient;
use fedsoc_proto::v1::{
    CoordinatorMessage, Hello, ParticipantMessage, SecAggChunk, UpdateHeader, coordinator_message,
    participant_message,
};
use fedsoc_proto::{MAX_MESSAGE_BYTES, PROTOCOL_VERSION, secagg_stage};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

/// The one way the scripted participant misbehaves.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Tamper {
    /// Its masked input is one word short of the model's vector.
    ShortVector,
    /// It signs its key advertisement for another round id.
    WrongRoundId,
    /// In round 2 it replays its round-1 advertisement under the new task.
    ReplayPreviousRound,
    /// It sends its share-keys message twice.
    ReplayWithinStage,
    /// It sends a stage-1 message while stage 0 is still collecting.
    OutOfOrder,
    /// A chunk announcing a message far larger than the stage allows.
    OversizeChunk,
    /// One gRPC message above the 8 MiB limit.
    OversizeMessage,
    /// Thousands of messages as fast as it can.
    Flood,
    /// It advertises but never reveals its graph-seed nonce.
    WithholdNonce,
    /// Plaintext round: an update holding NaN.
    NanUpdate,
    /// Plaintext round: an update announcing one value too few.
    ShortPlainUpdate,
}

fn spec(dir: &std::path::Path, secure: bool) -> LocalFederationSpec {
    let mut spec = LocalFederationSpec::new(dir, 4);
    spec.rows = 300;
    spec.hidden = vec![16, 8];
    spec.batch_size = 32;
    spec.stage_timeout_s = 3;
    spec.min_participants = 3;
    spec.secure = secure;
    spec
}

/// The federation with participant 3 replaced by the scripted one.
async fn federation_with_hostile(
    dir: &std::path::Path,
    secure: bool,
    tamper: Tamper,
) -> (
    LocalFederation,
    tokio::task::JoinHandle<Option<tonic::Status>>,
) {
    let mut federation = LocalFederation::start(&spec(dir, secure)).await.unwrap();
    let hostile_id = federation.participant_ids()[3].clone();
    federation.kill(&hostile_id);
    for _ in 0..200 {
        if federation.coordinator.shared().registry.connected().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let hostile = hostile_participant(&federation, 3, tamper).await;
    assert!(
        federation
            .coordinator
            .wait_for_participants(4, Duration::from_secs(10))
            .await
    );
    (federation, hostile)
}

/// Runs the real client state machine for participant `index`, applying
/// `tamper`; returns the status the coordinator ended the stream with.
async fn hostile_participant(
    federation: &LocalFederation,
    index: usize,
    tamper: Tamper,
) -> tokio::task::JoinHandle<Option<tonic::Status>> {
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
            agent_version: "hostile".into(),
            last_checkpoint_size: 0,
            wants_bundles: false,
        })),
    })
    .await
    .unwrap();
    let mut inbound = FederationClient::new(channel)
        .max_encoding_message_size(4 * MAX_MESSAGE_BYTES)
        .session(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let members =
        fedsoc_pki::MemberVerifier::new(&std::fs::read_to_string(&config.tls.ca).unwrap()).unwrap();
    let key = fedsoc_pki::load_signing_key(&config.tls.key).unwrap();
    tokio::spawn(async move {
        let send_bytes = |stage: u32, task_id: u64, bytes: Vec<u8>| {
            let tx = tx.clone();
            async move {
                for piece in chunk::split_bytes(task_id, stage, &bytes) {
                    let body = participant_message::Body::Secagg(piece);
                    let _ = tx.send(ParticipantMessage { body: Some(body) }).await;
                }
            }
        };
        let send = |body: participant_message::Body| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(ParticipantMessage { body: Some(body) }).await;
            }
        };
        let mut secure: Option<(u64, SecureTask)> = None;
        let mut incoming: Option<Assembler<u8>> = None;
        let mut previous_advert: Option<Vec<u8>> = None;
        loop {
            let body = match inbound.message().await {
                Ok(Some(CoordinatorMessage { body: Some(body) })) => body,
                Ok(_) => return None,
                Err(status) => return Some(status),
            };
            match body {
                coordinator_message::Body::TrainTask(task) => {
                    let n = task.num_params as usize;
                    let Some(mut params) = task.secure.clone() else {
                        // Plaintext round.
                        let mut delta = vec![0.01f32; n];
                        let mut announced = n as u64;
                        match tamper {
                            Tamper::NanUpdate => delta[n / 2] = f32::NAN,
                            Tamper::ShortPlainUpdate => {
                                delta.pop();
                                announced -= 1;
                            }
                            _ => {}
                        }
                        send(participant_message::Body::UpdateHeader(UpdateHeader {
                            task_id: task.task_id,
                            samples: 100,
                            mean_loss: 0.5,
                            num_params: announced,
                        }))
                        .await;
                        for piece in chunk::split(task.task_id, &delta) {
                            send(participant_message::Body::UpdateChunk(piece)).await;
                        }
                        continue;
                    };
                    let mut len = n;
                    if tamper == Tamper::ShortVector {
                        len -= 1;
                    }
                    if tamper == Tamper::WrongRoundId {
                        params.round_id[0] ^= 1;
                    }
                    let delta = vec![0.01f32; len];
                    let (t, advert) = SecureTask::start(
                        &params,
                        &config.id,
                        &members,
                        // A scripted member: the task's CRL is the agent's to check.
                        &fedsoc_pki::RevocationList::empty(),
                        &key,
                        fedsoc_participant::secure::Contribution::Update {
                            delta: &delta,
                            samples: 100,
                            loss: 0.5,
                        },
                        &config.secure_aggregation,
                        None,
                    )
                    .unwrap();
                    secure = Some((task.task_id, t));
                    let first_round = previous_advert.is_none();
                    let advert = match (tamper, previous_advert.take()) {
                        (Tamper::ReplayPreviousRound, Some(old)) => old,
                        _ => advert,
                    };
                    if first_round {
                        previous_advert = Some(advert.clone());
                    }
                    match tamper {
                        Tamper::OversizeChunk => {
                            let piece = SecAggChunk {
                                task_id: task.task_id,
                                stage: secagg_stage::ADVERTISE_KEYS,
                                offset: 0,
                                total_len: 1 << 40,
                                data: vec![0; 16],
                            };
                            send(participant_message::Body::Secagg(piece)).await;
                        }
                        Tamper::OversizeMessage => {
                            let piece = SecAggChunk {
                                task_id: task.task_id,
                                stage: secagg_stage::ADVERTISE_KEYS,
                                offset: 0,
                                total_len: (MAX_MESSAGE_BYTES + 1024) as u64,
                                data: vec![7; MAX_MESSAGE_BYTES + 1024],
                            };
                            send(participant_message::Body::Secagg(piece)).await;
                        }
                        Tamper::Flood => {
                            for _ in 0..10_000 {
                                let piece = SecAggChunk {
                                    task_id: task.task_id,
                                    stage: 99,
                                    ..Default::default()
                                };
                                if tx
                                    .send(ParticipantMessage {
                                        body: Some(participant_message::Body::Secagg(piece)),
                                    })
                                    .await
                                    .is_err()
                                {
                                    break;
                                }
                            }
                        }
                        Tamper::OutOfOrder => {
                            send_bytes(secagg_stage::SHARE_KEYS, task.task_id, advert.clone())
                                .await;
                            send_bytes(secagg_stage::ADVERTISE_KEYS, task.task_id, advert).await;
                        }
                        _ => send_bytes(secagg_stage::ADVERTISE_KEYS, task.task_id, advert).await,
                    }
                }
                coordinator_message::Body::Secagg(piece) => {
                    let stage = piece.stage;
                    let Some((task_id, task)) = secure.as_mut() else {
                        continue;
                    };
                    let asm = match incoming.as_mut() {
                        Some(a) => a,
                        None => {
                            incoming.insert(Assembler::bytes(*task_id, &piece, 1 << 26).unwrap())
                        }
                    };
                    if let Some(bytes) = asm.push_bytes(&piece).unwrap() {
                        incoming = None;
                        let Ok(reply) = task.handle(stage, &bytes) else {
                            continue;
                        };
                        if tamper == Tamper::WithholdNonce && stage == secagg_stage::REVEAL_SEED {
                            continue;
                        }
                        if tamper == Tamper::ReplayWithinStage && stage == secagg_stage::SHARE_KEYS
                        {
                            send_bytes(stage, *task_id, reply.clone()).await;
                        }
                        send_bytes(stage, *task_id, reply).await;
                    }
                }
                _ => {}
            }
        }
    })
}

/// Runs one round; returns its report and why the hostile one dropped.
async fn round_without(federation: &LocalFederation, hostile: &str) -> (RoundReport, String) {
    let report = federation.coordinator.run_next_round().await.unwrap();
    assert_eq!(report.included.len(), 3, "{:?}", report.dropped);
    assert!(!report.included.iter().any(|p| p == hostile));
    let reason = report
        .dropped
        .iter()
        .find(|d| d.participant == hostile)
        .map(|d| d.reason.clone())
        .unwrap_or_default();
    (report, reason)
}

async fn refused(tamper: Tamper, secure: bool, want: &[&str]) -> Option<tonic::Status> {
    let dir = tempfile::tempdir().unwrap();
    let (federation, hostile) = federation_with_hostile(dir.path(), secure, tamper).await;
    let id = federation.participant_ids()[3].clone();
    let (_, reason) = round_without(&federation, &id).await;
    for needle in want {
        assert!(
            reason.contains(needle),
            "{tamper:?}: reason {reason:?} lacks {needle:?}"
        );
    }
    federation.shutdown().await;
    tokio::time::timeout(Duration::from_secs(10), hostile)
        .await
        .ok()
        .and_then(|r| r.ok())
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_vector_length_is_refused_at_the_advertisement() {
    // The vector length is one of the round parameters every signature
    // covers: a member using another length is refused at stage 0.
    refused(
        Tamper::ShortVector,
        true,
        &["stage 0 message refused", "does not verify"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_withholding_its_graph_seed_nonce_sits_out_the_retry() {
    // Every advertiser must reveal its nonce (a coordinator free to leave
    // nonces out could choose among graphs), so the attempt ends; the
    // member that withheld its nonce sits out the retry, which completes.
    let dir = tempfile::tempdir().unwrap();
    let (federation, hostile) =
        federation_with_hostile(dir.path(), true, Tamper::WithholdNonce).await;
    let id = federation.participant_ids()[3].clone();
    let first = federation
        .coordinator
        .run_next_round()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        first.contains("advertised but did not reveal their graph-seed nonce")
            && first.contains(&format!("dropped: {id} (missed the deadline of stage 1)")),
        "{first}"
    );
    let (report, _) = round_without(&federation, &id).await;
    assert_eq!(report.round, 1);
    federation.shutdown().await;
    hostile.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_round_id_is_refused_at_the_advertisement() {
    refused(Tamper::WrongRoundId, true, &["stage 0 message refused"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_chunk_is_refused_before_any_allocation() {
    refused(Tamper::OversizeChunk, true, &["stage 0 message malformed"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_message_ends_the_session() {
    refused(Tamper::OversizeMessage, true, &["disconnected at stage 0"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_hits_the_rate_limit() {
    let status = refused(Tamper::Flood, true, &["disconnected at stage 0"])
        .await
        .expect("the coordinator ends the stream with a status");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status}");
    assert!(status.message().contains("rate limit"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nan_update_is_refused_in_a_plaintext_round() {
    refused(Tamper::NanUpdate, false, &["update refused", "NaN"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_plaintext_update_is_refused() {
    refused(
        Tamper::ShortPlainUpdate,
        false,
        &["update announces", "the model has"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_previous_round_message_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (federation, _hostile) =
        federation_with_hostile(dir.path(), true, Tamper::ReplayPreviousRound).await;
    let id = federation.participant_ids()[3].clone();
    // Round 1: an honest run, whose advertisement it keeps.
    let first = federation.coordinator.run_next_round().await.unwrap();
    assert!(first.included.contains(&id), "{:?}", first.dropped);
    // Round 2: the old advertisement, bound to round 1's id, is refused.
    let (_, reason) = round_without(&federation, &id).await;
    assert!(reason.contains("stage 0 message refused"), "{reason}");
    federation.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_and_out_of_order_messages_are_ignored_not_counted_twice() {
    for tamper in [Tamper::ReplayWithinStage, Tamper::OutOfOrder] {
        let dir = tempfile::tempdir().unwrap();
        let (federation, _hostile) = federation_with_hostile(dir.path(), true, tamper).await;
        let id = federation.participant_ids()[3].clone();
        let report = federation.coordinator.run_next_round().await.unwrap();
        // The duplicate or early message is refused; the real one counts once.
        assert!(
            report.included.contains(&id),
            "{tamper:?}: {:?}",
            report.dropped
        );
        assert_eq!(report.stats.ignored_messages, 1, "{tamper:?}");
        federation.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_participants_identity_is_refused_at_hello() {
    let dir = tempfile::tempdir().unwrap();
    let federation = LocalFederation::start(&spec(dir.path(), true))
        .await
        .unwrap();
    let ids = federation.participant_ids();
    // soc-3's valid certificate, claiming to be soc-0.
    let config = federation.participant_config(3).clone();
    let tls = config.tls_files().client_config("localhost").unwrap();
    let channel = Endpoint::from_shared(config.coordinator.clone())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.send(ParticipantMessage {
        body: Some(participant_message::Body::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            participant_id: ids[0].clone(),
            agent_version: "hostile".into(),
            last_checkpoint_size: 0,
            wants_bundles: false,
        })),
    })
    .await
    .unwrap();
    let status = FederationClient::new(channel)
        .session(ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status}");
    assert!(
        status.message().contains("but the certificate is for"),
        "{status}"
    );
    // soc-0's own session is untouched.
    assert!(
        federation
            .coordinator
            .shared()
            .registry
            .connected()
            .contains(&ids[0])
    );
    federation.shutdown().await;
}
