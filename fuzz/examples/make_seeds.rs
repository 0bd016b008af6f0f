//! Writes the binary seeds under `fuzz/seeds/` (the protocol and audit
//! ones, which are easier built than typed): honest secure-aggregation
//! messages of every stage, framed gRPC messages, a small signed audit log.
//! Run from `fuzz/`: `cargo run --example make_seeds`.

use std::fs;
use std::path::Path;

use fedsoc_audit::{AuditLog, BlobId, Entry, merkle};
use fedsoc_fuzz::round::{self, DROPPER};
use fedsoc_proto::chunk;
use fedsoc_proto::v1::{
    CoordinatorMessage, ParticipantMessage, TrainTask, coordinator_message, participant_message,
};
use fedsoc_secagg::ParticipantId;
use prost::Message;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("seeds").join(target);
    fs::create_dir_all(&dir).expect("seed folder");
    assert!(
        bytes.len() < 4096,
        "{target}/{name} is {} bytes",
        bytes.len()
    );
    fs::write(dir.join(name), bytes).expect("write seed");
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn secagg() {
    let names = ["advertise", "share", "masked", "consistency", "unmask"];
    for dropout in [false, true] {
        let t = round::record(dropout);
        let sc = u8::from(dropout);
        let p = ParticipantId(1);
        // Client messages, by their type index in secagg_messages.
        for (stage, ty) in [(0, 0u8), (1, 2), (2, 4), (3, 6), (4, 8)] {
            let msg = &t.client[stage][&p];
            write(
                "secagg_messages",
                &format!("{}-{sc}", names[stage]),
                &cat(&[&[ty], msg]),
            );
            write(
                "secagg_server",
                &format!("{}-{sc}", names[stage]),
                &cat(&[&[stage as u8, 1, 0, sc], msg]),
            );
        }
        // The dropout's own unmask never comes; its neighbours reveal its key.
        if dropout {
            let msg = &t.client[4][&ParticipantId(0)];
            write(
                "secagg_server",
                "unmask-key-shares",
                &cat(&[&[4, 0, 0, 1], msg]),
            );
        }
        // Server messages, by their type index and as client input.
        for (stage, ty) in [(1, 1u8), (2, 3), (3, 5), (4, 7)] {
            let msg = &t.server[stage][&p];
            write(
                "secagg_messages",
                &format!("server{stage}-{sc}"),
                &cat(&[&[ty], msg]),
            );
            write(
                "secagg_client",
                &format!("stage{stage}-{sc}"),
                &cat(&[&[stage as u8 - 1, 1, sc], msg]),
            );
        }
        assert!(!t.server[3].contains_key(&DROPPER) || !dropout);
    }
}

fn delimited<M: Message>(msgs: &[M]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        m.encode_length_delimited(&mut out).expect("vec grows");
    }
    out
}

fn proto() {
    let values: Vec<f32> = (0..6).map(|i| i as f32 * 0.25).collect();
    let mut to_participant = vec![CoordinatorMessage {
        body: Some(coordinator_message::Body::TrainTask(TrainTask {
            round: 1,
            task_id: 9,
            epochs: 1,
            batch_size: 32,
            learning_rate: 0.01,
            num_params: values.len() as u64,
            ..Default::default()
        })),
    }];
    to_participant.extend(chunk::split(9, &values).map(|c| CoordinatorMessage {
        body: Some(coordinator_message::Body::ModelChunk(c)),
    }));
    to_participant.extend(
        chunk::split_bytes(9, 1, b"bundle").map(|c| CoordinatorMessage {
            body: Some(coordinator_message::Body::Secagg(c)),
        }),
    );
    write(
        "proto_messages",
        "to-participant",
        &cat(&[&[1, 0, 6], &delimited(&to_participant)]),
    );

    let mut to_coordinator: Vec<ParticipantMessage> = chunk::split(9, &values)
        .map(|c| ParticipantMessage {
            body: Some(participant_message::Body::UpdateChunk(c)),
        })
        .collect();
    to_coordinator.extend(
        chunk::split_bytes(9, 2, b"masked input").map(|c| ParticipantMessage {
            body: Some(participant_message::Body::Secagg(c)),
        }),
    );
    write(
        "proto_messages",
        "to-coordinator",
        &cat(&[&[0, 0, 6], &delimited(&to_coordinator)]),
    );
}

fn audit() {
    let dir = std::env::temp_dir().join(format!("fedsoc-seeds-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let mut log = AuditLog::open_or_create(&dir, "fedsoc.example/fuzz", key).expect("log");
    log.append("round.opened", br#"{"round":1}"#.to_vec())
        .expect("append");
    log.append("round.closed", br#"{"round":1,"n":3}"#.to_vec())
        .expect("append");
    let first = log.checkpoint(1_000).expect("checkpoint");
    log.append("round.opened", br#"{"round":2}"#.to_vec())
        .expect("append");
    let second = log.checkpoint(2_000).expect("checkpoint");
    let entries = fs::read(dir.join("entries.log")).expect("entries");
    let checkpoints = fs::read(dir.join("checkpoints.log")).expect("checkpoints");
    write(
        "audit_log",
        "intact",
        &cat(&[&entries, b"@@ckp@@", &checkpoints]),
    );
    // A write cut off by a crash: the last record half there.
    let torn = &entries[..entries.len() - 10];
    write(
        "audit_log",
        "torn-tail",
        &cat(&[torn, b"@@ckp@@", &checkpoints]),
    );

    let entry = Entry::new(4, 99, "round.opened", br#"{"round":4}"#.to_vec()).expect("entry");
    write(
        "audit_decoders",
        "entry",
        &cat(&[&[0], &entry.encode().expect("encodes")]),
    );
    let text = second.checkpoint.to_text().expect("text");
    write(
        "audit_decoders",
        "checkpoint",
        &cat(&[&[1], text.as_bytes()]),
    );
    write(
        "audit_decoders",
        "note",
        &cat(&[&[2], &second.to_bytes().expect("note")]),
    );
    let id = BlobId::of(b"blob").to_string();
    write("audit_decoders", "blob-id", &cat(&[&[3], id.as_bytes()]));
    let (n, m) = (log.len(), first.checkpoint.tree_size);
    let leaf = log.tree().leaf(1).expect("leaf");
    let proof = log.inclusion_proof(1, n).expect("proof");
    merkle::verify_inclusion(&leaf, 1, n, &proof, &log.root()).expect("valid proof");
    let mut inclusion = vec![4];
    inclusion.extend_from_slice(&1u64.to_le_bytes());
    inclusion.extend_from_slice(&n.to_le_bytes());
    inclusion.extend_from_slice(&leaf);
    inclusion.extend_from_slice(&log.root());
    proof.iter().for_each(|h| inclusion.extend_from_slice(h));
    write("audit_decoders", "inclusion", &inclusion);
    let proof = log.consistency_proof(m, n).expect("proof");
    let mut consistency = vec![5];
    consistency.extend_from_slice(&m.to_le_bytes());
    consistency.extend_from_slice(&n.to_le_bytes());
    consistency.extend_from_slice(&first.checkpoint.root);
    consistency.extend_from_slice(&second.checkpoint.root);
    proof.iter().for_each(|h| consistency.extend_from_slice(h));
    write("audit_decoders", "consistency", &consistency);
    let _ = fs::remove_dir_all(&dir);
}

fn main() {
    secagg();
    proto();
    audit();
}
