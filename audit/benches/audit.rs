//! Criterion benches: durable append of a 1 KiB entry (fsync included),
//! checkpoint signing (alone, and signed + stored), and offline
//! verification of a 1000-entry log. Run:
//! `cargo bench -p fedsoc-audit -- --warm-up-time 1 --measurement-time 2`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use fedsoc_audit::{AuditLog, Checkpoint, verify_dir};

const ORIGIN: &str = "fedsoc.bench/eu";

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut log = AuditLog::open_or_create(dir.path(), ORIGIN, key()).expect("log");
    let body = vec![b'x'; 1024];
    c.bench_function("append/1KiB+fsync", |b| {
        b.iter(|| {
            log.append("round.closed", black_box(body.clone()))
                .expect("append")
        })
    });
}

fn checkpoint(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut log = AuditLog::open_or_create(dir.path(), ORIGIN, key()).expect("log");
    for i in 0..1000u32 {
        log.append("round.closed", i.to_le_bytes().to_vec())
            .expect("append");
    }
    let unsigned = Checkpoint {
        origin: ORIGIN.into(),
        tree_size: log.len(),
        root: log.root(),
        timestamp_ms: 1,
    };
    let signing_key = key();
    c.bench_function("checkpoint/sign", |b| {
        b.iter(|| black_box(&unsigned).sign(&signing_key).expect("sign"))
    });
    c.bench_function("checkpoint/sign+store+fsync", |b| {
        b.iter(|| log.checkpoint(black_box(2)).expect("checkpoint"))
    });
}

fn verify(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut log = AuditLog::open_or_create(dir.path(), ORIGIN, key()).expect("log");
    let body = vec![b'y'; 1024];
    for i in 0..1000 {
        log.append("round.closed", body.clone()).expect("append");
        if i % 100 == 99 {
            log.checkpoint(i).expect("checkpoint");
        }
    }
    drop(log);
    let vk = key().verifying_key();
    c.bench_function("verify/1000x1KiB+10cp", |b| {
        b.iter(|| verify_dir(dir.path(), black_box(&vk)).expect("verify"))
    });
}

criterion_group!(benches, append, checkpoint, verify);
criterion_main!(benches);
