//! A real log directory in a temporary directory, written through the
//! public API, then damaged or rewritten on disk the way a crash or a
//! dishonest coordinator would; each damage must be named precisely.
use std::fs;
use std::path::Path;

use ed25519_dalek::SigningKey;
use fedsoc_audit::checkpoint::{self, CheckpointError};
use fedsoc_audit::merkle::leaf_hash;
use fedsoc_audit::*;
use serde::{Deserialize, Serialize};

const ORIGIN: &str = "fedsoc.test/eu";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Round {
    round: u64,
    model: Option<BlobId>,
}

/// A log of `n` `round.closed` entries at times 1000, 1001, …, with a
/// checkpoint after entry `k - 1` for each k in `checkpoint_at`.
fn build(dir: &Path, n: u64, checkpoint_at: &[u64], tag: &str) -> AuditLog {
    let mut log = AuditLog::open_or_create(dir, ORIGIN, key(1)).unwrap();
    for i in 0..n {
        let model = log
            .blobs()
            .put(format!("{tag} model {i}").as_bytes())
            .unwrap();
        let body = serde_json::to_vec(&Round {
            round: i,
            model: Some(model),
        })
        .unwrap();
        let receipt = log.append_at("round.closed", body, 1000 + i).unwrap();
        assert_eq!(receipt.index, i);
        if checkpoint_at.contains(&(i + 1)) {
            log.checkpoint(5000 + i).unwrap();
        }
    }
    log
}

/// `entries.log` split into its header and its record payloads.
fn records(path: &Path) -> (Vec<u8>, Vec<Vec<u8>>) {
    let bytes = fs::read(path).unwrap();
    let header_len = 14 + u16::from_le_bytes([bytes[12], bytes[13]]) as usize;
    let mut out = Vec::new();
    let mut pos = header_len;
    while pos < bytes.len() {
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        out.push(bytes[pos + 40..pos + 40 + len].to_vec());
        pos += 40 + len;
    }
    (bytes[..header_len].to_vec(), out)
}

/// Writes a record file with valid frames around `payloads`, as a forger
/// who knows the format would.
fn rewrite(path: &Path, header: &[u8], payloads: &[Vec<u8>]) {
    let mut bytes = header.to_vec();
    for p in payloads {
        bytes.extend_from_slice(b"FSR1");
        bytes.extend_from_slice(&(p.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&leaf_hash(p));
        bytes.extend_from_slice(p);
    }
    fs::write(path, bytes).unwrap();
}

fn entries_path(dir: &Path) -> std::path::PathBuf {
    dir.join("entries.log")
}

fn verify(dir: &Path) -> Result<VerifyReport, AuditError> {
    verify_dir(dir, &key(1).verifying_key())
}

fn model_refs(e: &Entry) -> Result<Vec<BlobId>, String> {
    let round: Round = e.body_json().map_err(|e| e.to_string())?;
    Ok(round.model.into_iter().collect())
}

#[test]
fn round_trip_proofs_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), 10, &[4, 10], "a");
    let cp10 = log.latest_checkpoint().unwrap().clone();
    let cp4 = log.checkpoints()[0].clone();
    drop(log);

    let mut log = AuditLog::open_or_create(dir.path(), ORIGIN, key(1)).unwrap();
    assert_eq!(log.len(), 10);
    assert_eq!(log.checkpoints(), &[cp4.clone(), cp10.clone()]);
    let replay: Vec<Entry> = log.entries().collect::<Result<_, _>>().unwrap();
    assert_eq!(replay.len(), 10);
    for (i, e) in replay.iter().enumerate() {
        assert_eq!(e.seq, i as u64);
        assert_eq!(e.body_json::<Round>().unwrap().round, i as u64);
        assert_eq!(log.entry(i as u64).unwrap(), *e);
        // Inclusion in both checkpoints.
        for cp in [&cp4, &cp10] {
            let c = &cp.checkpoint;
            if (i as u64) < c.tree_size {
                let proof = log.inclusion_proof(i as u64, c.tree_size).unwrap();
                verify_inclusion(
                    &e.leaf_hash().unwrap(),
                    i as u64,
                    c.tree_size,
                    &proof,
                    &c.root,
                )
                .unwrap();
            }
        }
    }
    // Extend, sign again, prove the extension.
    let receipt = log
        .append_json(
            "round.opened",
            &Round {
                round: 10,
                model: None,
            },
        )
        .unwrap();
    assert_eq!(receipt.index, 10);
    assert!(receipt.timestamp_ms >= 1009);
    let cp11 = log.checkpoint(now_ms()).unwrap();
    let proof = log.consistency_proof(4, 11).unwrap();
    checkpoint::verify_consistency(&cp4.checkpoint, &cp11.checkpoint, &proof).unwrap();
    let proof = log.inclusion_proof(10, 11).unwrap();
    verify_inclusion(&receipt.leaf_hash, 10, 11, &proof, &cp11.checkpoint.root).unwrap();

    // The auditor's view: everything verifies, entries come back for replay.
    drop(log);
    let report = Verifier::new(key(1).verifying_key())
        .trust([cp4, cp10])
        .blob_refs(model_refs)
        .verify(dir.path())
        .unwrap();
    assert_eq!(report.tree_size(), 11);
    assert_eq!(report.checkpoints.len(), 3);
    assert_eq!(report.trusted_checked, 2);
    assert_eq!(report.blobs_checked, 10);
    assert_eq!(report.root, cp11.checkpoint.root);
    assert_eq!(&report.entries[..10], &replay[..]);
    let ro = AuditLog::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.root(), report.root);
}

#[test]
fn one_writer_and_read_only_rules() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = build(dir.path(), 2, &[], "a");
    assert!(matches!(
        AuditLog::open_or_create(dir.path(), ORIGIN, key(1)),
        Err(AuditError::Locked { .. })
    ));
    let mut ro = AuditLog::open_read_only(dir.path()).unwrap();
    assert!(matches!(
        ro.append("x", vec![]),
        Err(AuditError::ReadOnly { .. })
    ));
    assert!(matches!(ro.checkpoint(1), Err(AuditError::ReadOnly { .. })));
    assert!(matches!(
        ro.blobs().put(b"x"),
        Err(AuditError::ReadOnly { .. })
    ));
    // Entries are numbered and timed by the log.
    assert!(matches!(
        log.append_entry(Entry::new(7, 2000, "k", vec![]).unwrap()),
        Err(AuditError::SeqGap { index: 2, found: 7 })
    ));
    assert!(matches!(
        log.append_at("k", vec![], 5),
        Err(AuditError::TimestampBackwards {
            index: 2,
            previous: 1001,
            found: 5
        })
    ));
    log.append_entry(Entry::json("k", &1u8).unwrap().at(2, 1001))
        .unwrap();
    drop(log);
    assert!(matches!(
        AuditLog::open_or_create(dir.path(), "another.origin", key(1)),
        Err(AuditError::OriginMismatch { .. })
    ));
    assert!(matches!(
        AuditLog::open_read_only(dir.path().join("nowhere")),
        Err(AuditError::MissingFile { .. })
    ));
}

#[test]
fn flipped_byte_in_an_entry_is_named_by_index() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 8, &[8], "a");
    let path = entries_path(dir.path());
    let (header, payloads) = records(&path);
    // Byte 30 of entry 3's payload, which sits after 3 full records.
    let pos = header.len() + payloads[..3].iter().map(|p| 40 + p.len()).sum::<usize>() + 40 + 30;
    let mut bytes = fs::read(&path).unwrap();
    bytes[pos] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    let err = verify(dir.path()).unwrap_err();
    assert!(
        matches!(err, AuditError::CorruptRecord { index: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("record 3"), "{err}");
    assert!(matches!(
        AuditLog::open_or_create(dir.path(), ORIGIN, key(1)),
        Err(AuditError::CorruptRecord { index: 3, .. })
    ));
    // Not a torn tail: repair refuses to cut it.
    assert!(matches!(
        repair(dir.path()),
        Err(AuditError::CorruptRecord { index: 3, .. })
    ));
}

#[test]
fn edited_entry_with_valid_frame_breaks_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 8, &[6], "a");
    let cp = AuditLog::open_read_only(dir.path()).unwrap().checkpoints()[0].clone();
    let path = entries_path(dir.path());
    let (header, mut payloads) = records(&path);
    // A forger edits entry 2's body and recomputes the frame hash.
    let mut e = Entry::decode(&payloads[2]).unwrap();
    e.body = serde_json::to_vec(&Round {
        round: 2,
        model: None,
    })
    .unwrap();
    payloads[2] = e.encode().unwrap();
    rewrite(&path, &header, &payloads);
    assert!(matches!(
        verify(dir.path()),
        Err(AuditError::CheckpointInconsistent {
            index: 0,
            tree_size: 6,
            ..
        })
    ));
    // Even with the stored checkpoints deleted, a checkpoint held by a
    // participant catches it.
    let cps = dir.path().join("checkpoints.log");
    let (cp_header, _) = records(&cps);
    rewrite(&cps, &cp_header, &[]);
    assert!(verify(dir.path()).is_ok());
    let err = Verifier::new(key(1).verifying_key())
        .trust([cp])
        .verify(dir.path())
        .unwrap_err();
    assert!(
        matches!(err, AuditError::HistoryRewritten { tree_size: 6, .. }),
        "{err}"
    );
}

#[test]
fn removed_entry_is_a_seq_gap() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 6, &[], "a");
    let path = entries_path(dir.path());
    let (header, mut payloads) = records(&path);
    payloads.remove(2);
    rewrite(&path, &header, &payloads);
    assert!(matches!(
        verify(dir.path()),
        Err(AuditError::SeqGap { index: 2, found: 3 })
    ));
}

#[test]
fn removed_checkpointed_tail_is_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 6, &[3, 6], "a");
    let log = AuditLog::open_read_only(dir.path()).unwrap();
    let cp6 = log.checkpoints()[1].clone();
    drop(log);
    let path = entries_path(dir.path());
    let (header, payloads) = records(&path);
    rewrite(&path, &header, &payloads[..5]);
    assert!(matches!(
        verify(dir.path()),
        Err(AuditError::CheckpointBeyondLog {
            index: 1,
            tree_size: 6,
            log_size: 5
        })
    ));
    // Drop the incriminating stored checkpoint too: the held one remains.
    let cps = dir.path().join("checkpoints.log");
    let (cp_header, cp_payloads) = records(&cps);
    rewrite(&cps, &cp_header, &cp_payloads[..1]);
    assert!(verify(dir.path()).is_ok());
    assert!(matches!(
        Verifier::new(key(1).verifying_key())
            .trust([cp6])
            .verify(dir.path()),
        Err(AuditError::LogRolledBack {
            trusted_size: 6,
            log_size: 5
        })
    ));
}

#[test]
fn swapped_entries_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 6, &[6], "a");
    let path = entries_path(dir.path());
    let (header, payloads) = records(&path);

    let mut swapped = payloads.clone();
    swapped.swap(1, 4);
    rewrite(&path, &header, &swapped);
    assert!(matches!(
        verify(dir.path()),
        Err(AuditError::SeqGap { index: 1, found: 4 })
    ));

    // Renumbered and retimed so every entry-level rule holds: only the
    // signed root can tell.
    let mut renumbered = swapped.clone();
    for (i, p) in renumbered.iter_mut().enumerate() {
        let e = Entry::decode(p).unwrap();
        *p = e.at(i as u64, 1000 + i as u64).encode().unwrap();
    }
    rewrite(&path, &header, &renumbered);
    assert!(matches!(
        verify(dir.path()),
        Err(AuditError::CheckpointInconsistent { tree_size: 6, .. })
    ));

    // Timestamps going backwards.
    let mut retimed = payloads.clone();
    let e = Entry::decode(&retimed[3]).unwrap();
    retimed[3] = e.at(3, 10).encode().unwrap();
    rewrite(&path, &header, &retimed);
    assert!(matches!(
        verify(dir.path()),
        Err(AuditError::TimestampBackwards {
            index: 3,
            previous: 1002,
            found: 10
        })
    ));
}

#[test]
fn swapped_or_corrupted_blobs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), 4, &[4], "a");
    let ids: Vec<BlobId> = (0..4)
        .map(|i| model_refs(&log.entry(i).unwrap()).unwrap()[0])
        .collect();
    let (p1, p2) = (log.blobs().path(&ids[1]), log.blobs().path(&ids[2]));
    drop(log);
    let verifier = Verifier::new(key(1).verifying_key()).blob_refs(model_refs);
    assert_eq!(verifier.verify(dir.path()).unwrap().blobs_checked, 4);

    // Swap the files of blobs 1 and 2.
    let (b1, b2) = (fs::read(&p1).unwrap(), fs::read(&p2).unwrap());
    fs::write(&p1, &b2).unwrap();
    fs::write(&p2, &b1).unwrap();
    let err = verifier.verify(dir.path()).unwrap_err();
    match &err {
        AuditError::EntryBlob {
            index: 1, source, ..
        } => match source.as_ref() {
            AuditError::BlobCorrupt { id, path, .. } => assert_eq!((id, path), (&ids[1], &p1)),
            other => panic!("{other}"),
        },
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains(&ids[1].to_string()), "{err}");

    // Restore, then corrupt one byte of blob 3, then delete it.
    fs::write(&p1, &b1).unwrap();
    fs::write(&p2, &b2).unwrap();
    let p3 = BlobStore::open_read_only(dir.path().join("blobs")).path(&ids[3]);
    let mut b3 = fs::read(&p3).unwrap();
    b3[0] ^= 0x20;
    fs::write(&p3, &b3).unwrap();
    assert!(matches!(
        verifier.verify(dir.path()),
        Err(AuditError::EntryBlob { index: 3, .. })
    ));
    fs::remove_file(&p3).unwrap();
    match verifier.verify(dir.path()) {
        Err(AuditError::EntryBlob {
            index: 3, source, ..
        }) => {
            assert!(matches!(*source, AuditError::BlobMissing { .. }))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn checkpoints_signed_by_another_key_or_altered_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), 3, &[3], "a");
    let genuine = log.latest_checkpoint().unwrap().clone();
    drop(log);
    // The wrong verifying key.
    match verify_dir(dir.path(), &key(2).verifying_key()) {
        Err(AuditError::CheckpointInvalid {
            index: 0,
            source: CheckpointError::WrongKey { .. },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // A forged checkpoint, right root, another key, slipped into the file.
    let cps = dir.path().join("checkpoints.log");
    let (cp_header, mut cp_payloads) = records(&cps);
    let forged = genuine.checkpoint.sign(&key(9)).unwrap();
    cp_payloads.push(forged.to_bytes().unwrap());
    rewrite(&cps, &cp_header, &cp_payloads);
    assert!(matches!(
        verify(dir.path()),
        Err(AuditError::CheckpointInvalid {
            index: 1,
            source: CheckpointError::WrongKey { .. },
            ..
        })
    ));
    // A genuine checkpoint whose time was edited after signing.
    let mut edited = genuine.clone();
    edited.checkpoint.timestamp_ms += 1;
    cp_payloads[1] = edited.to_bytes().unwrap();
    rewrite(&cps, &cp_header, &cp_payloads);
    assert!(matches!(
        verify(dir.path()),
        Err(AuditError::CheckpointInvalid {
            index: 1,
            source: CheckpointError::BadSignature { .. },
            ..
        })
    ));
    // A held checkpoint from another key is refused as well.
    rewrite(&cps, &cp_header, &cp_payloads[..1]);
    assert!(matches!(
        Verifier::new(key(1).verifying_key())
            .trust([forged])
            .verify(dir.path()),
        Err(AuditError::TrustedCheckpointInvalid {
            source: CheckpointError::WrongKey { .. },
            ..
        })
    ));
}

#[test]
fn rewritten_history_fails_consistency_against_the_old_checkpoint() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Log A, with a checkpoint at k = 5 that participants keep.
    let mut a = build(a_dir.path(), 5, &[5], "a");
    let held = a.latest_checkpoint().unwrap().clone();
    // Honest extension: consistent.
    for i in 5..9 {
        a.append_at("round.closed", vec![], 2000 + i).unwrap();
    }
    let a9 = a.checkpoint(9000).unwrap();
    checkpoint::verify_consistency(
        &held.checkpoint,
        &a9.checkpoint,
        &a.consistency_proof(5, 9).unwrap(),
    )
    .unwrap();

    // Log B: same origin, same key, same size, a different history (other
    // models in every entry), then extended to 9 entries and signed.
    let mut b = build(b_dir.path(), 5, &[], "b");
    for i in 5..9 {
        b.append_at("round.closed", vec![], 2000 + i).unwrap();
    }
    let b9 = b.checkpoint(9000).unwrap();
    let proof = b.consistency_proof(5, 9).unwrap();
    match checkpoint::verify_consistency(&held.checkpoint, &b9.checkpoint, &proof) {
        Err(CheckpointError::Inconsistent {
            old_size: 5,
            new_size: 9,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // B's own checkpoints all verify on their own...
    drop(b);
    assert!(verify(b_dir.path()).is_ok());
    // ...but not against the checkpoint held from A.
    assert!(matches!(
        Verifier::new(key(1).verifying_key())
            .trust([held.clone()])
            .verify(b_dir.path()),
        Err(AuditError::HistoryRewritten { tree_size: 5, .. })
    ));
    drop(a);
    assert!(
        Verifier::new(key(1).verifying_key())
            .trust([held])
            .verify(a_dir.path())
            .is_ok()
    );
}

#[test]
fn torn_tail_is_reported_to_readers_and_cut_by_the_writer_or_repair() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), 5, &[4], "a");
    let root4 = log.root_at(4).unwrap();
    drop(log);
    let path = entries_path(dir.path());
    let full = fs::read(&path).unwrap();
    let (_, payloads) = records(&path);
    let last_offset = full.len() - 40 - payloads[4].len();
    let cut = full.len() - 3;
    fs::write(&path, &full[..cut]).unwrap();

    // Readers report the torn tail and change nothing.
    let err = AuditLog::open_read_only(dir.path()).unwrap_err();
    match &err {
        AuditError::TornTail {
            index: 4,
            offset,
            tail_len,
            ..
        } => {
            assert_eq!(
                (*offset, *tail_len),
                (last_offset as u64, (cut - last_offset) as u64)
            )
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("repair"), "{err}");
    assert!(matches!(
        verify(dir.path()),
        Err(AuditError::TornTail { index: 4, .. })
    ));
    assert_eq!(fs::read(&path).unwrap(), &full[..cut]);

    // An operator's repair cuts it, keeping a copy.
    let copy = tempfile::tempdir().unwrap();
    for name in ["entries.log", "checkpoints.log"] {
        fs::copy(dir.path().join(name), copy.path().join(name)).unwrap();
    }
    let repaired = repair(copy.path()).unwrap();
    assert_eq!(repaired.len(), 1);
    let r = &repaired[0];
    assert_eq!(
        (r.kept_records, r.discarded_bytes),
        (4, (cut - last_offset) as u64)
    );
    assert_eq!(fs::read(&r.saved_to).unwrap(), &full[last_offset..cut]);
    assert_eq!(repair(copy.path()).unwrap(), vec![]);

    // The writer reopening after the crash cuts it too and says so: the
    // record was never acknowledged (an append returns once flushed).
    let mut log = AuditLog::open_or_create(dir.path(), ORIGIN, key(1)).unwrap();
    assert_eq!((log.len(), log.root()), (4, root4));
    let recovered = log.recovered().to_vec();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].kept_records, 4);
    assert_eq!(
        fs::read(&recovered[0].saved_to).unwrap(),
        &full[last_offset..cut]
    );
    assert_eq!(fs::read(&path).unwrap(), &full[..last_offset]);
    log.append_at("round.closed", vec![], 2000).unwrap();
    drop(log);
    assert_eq!(verify(dir.path()).unwrap().tree_size(), 5);
    // A clean reopen has nothing to recover.
    let log = AuditLog::open_or_create(dir.path(), ORIGIN, key(1)).unwrap();
    assert!(log.recovered().is_empty());
}

#[test]
fn torn_checkpoint_tail_is_reported_too() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 3, &[2, 3], "a");
    let cps = dir.path().join("checkpoints.log");
    let bytes = fs::read(&cps).unwrap();
    fs::write(&cps, &bytes[..bytes.len() - 10]).unwrap();
    assert!(matches!(
        verify(dir.path()),
        Err(AuditError::TornTail { index: 1, .. })
    ));
    let repaired = repair(dir.path()).unwrap();
    assert_eq!(repaired[0].kept_records, 1);
    assert_eq!(verify(dir.path()).unwrap().checkpoints.len(), 1);
}

#[test]
fn entries_changed_after_open_are_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let log = build(dir.path(), 3, &[], "a");
    let path = entries_path(dir.path());
    let (header, mut payloads) = records(&path);
    let e = Entry::decode(&payloads[1]).unwrap();
    payloads[1] = Entry {
        kind: "forged".into(),
        ..e
    }
    .encode()
    .unwrap();
    rewrite(&path, &header, &payloads);
    let replay: Vec<_> = log.entries().collect();
    assert!(replay[0].is_ok());
    assert!(matches!(
        replay[1],
        Err(AuditError::CorruptRecord { index: 1, .. })
    ));
    assert_eq!(replay.len(), 2, "replay stops at the first bad entry");
    assert!(matches!(
        log.entry(1),
        Err(AuditError::CorruptRecord { index: 1, .. })
    ));
    assert!(matches!(
        log.entry(3),
        Err(AuditError::NoSuchEntry { index: 3, size: 3 })
    ));
}
