//! Witness cosignatures (C2SP tlog-cosignature style) in the log format:
//! what is signed, the note line, the refusals, and that logs holding
//! `checkpoint.cosigned` entries (and logs from before them) verify.

use ed25519_dalek::SigningKey;
use fedsoc_audit::cosignature::{self, KIND};
use fedsoc_audit::{
    AuditLog, BlobId, Checkpoint, Cosignature, CosignatureError, CosignatureRecord,
};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn checkpoint() -> Checkpoint {
    Checkpoint {
        origin: "fedsoc/eu".into(),
        tree_size: 9,
        root: [0x5a; 32],
        timestamp_ms: 1_700_000_000_123,
    }
}

#[test]
fn the_signed_message_is_cosignature_v1_then_the_checkpoint_text() {
    let text = cosignature::signed_message(&checkpoint(), 1_700_000_001).unwrap();
    assert_eq!(
        text,
        format!(
            "cosignature/v1\ntime 1700000001\nfedsoc-audit checkpoint v1\norigin fedsoc/eu\nsize 9\nroot {}\ntime 1700000000123\n",
            "5a".repeat(32)
        )
    );
    // The C2SP key id: SHA-256(name ‖ "\n" ‖ 0x04 ‖ key)[..4].
    let vk = key(2).verifying_key();
    let mut preimage = b"soc-ee\n\x04".to_vec();
    preimage.extend_from_slice(vk.as_bytes());
    let digest = <sha2::Sha256 as sha2::Digest>::digest(&preimage);
    assert_eq!(cosignature::key_id("soc-ee", &vk), digest[..4]);
}

#[test]
fn cosignatures_verify_round_trip_as_note_lines_and_name_what_is_wrong() {
    let c = checkpoint();
    let cosig = c.cosign("soc-ee", &key(2), 1_700_000_001).unwrap();
    cosig.verify(&c, &key(2).verifying_key()).unwrap();

    let line = cosig.to_line();
    assert!(line.starts_with("\u{2014} soc-ee "), "{line}");
    assert_eq!(Cosignature::from_line(&line).unwrap(), cosig);
    assert!(matches!(
        Cosignature::from_line("— soc-ee AAAA\n"),
        Err(CosignatureError::Malformed(_))
    ));

    // Another witness's key.
    assert!(matches!(
        cosig.verify(&c, &key(3).verifying_key()),
        Err(CosignatureError::WrongKey { .. })
    ));
    // Another checkpoint (a split view: same size, another root).
    let mut other = c.clone();
    other.root[0] ^= 1;
    let err = cosig.verify(&other, &key(2).verifying_key()).unwrap_err();
    assert_eq!(
        err,
        CosignatureError::BadSignature {
            name: "soc-ee".into(),
            tree_size: 9
        }
    );
    // Another time than the one signed.
    let mut moved = cosig.clone();
    moved.timestamp += 1;
    assert!(matches!(
        moved.verify(&c, &key(2).verifying_key()),
        Err(CosignatureError::BadSignature { .. })
    ));
}

#[test]
fn logs_with_cosignature_entries_verify_and_old_logs_still_do() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = key(1);
    let mut log = AuditLog::open_or_create(dir.path(), "fedsoc/eu", coordinator.clone()).unwrap();
    log.append("round.stage", b"{}".to_vec()).unwrap();
    let signed = log.checkpoint(1_700_000_000_000).unwrap();
    // A log from before cosignatures: verifies as it did.
    let old = fedsoc_audit::verify_dir(dir.path(), &coordinator.verifying_key()).unwrap();
    assert_eq!(old.tree_size(), 1);

    let pem = b"-----BEGIN CERTIFICATE-----\n(witness)\n-----END CERTIFICATE-----\n";
    let certificate = log.blobs().put(pem).unwrap();
    assert_eq!(certificate, BlobId::of(pem));
    for (name, seed) in [("soc-ee", 2), ("soc-fi", 3)] {
        let record = CosignatureRecord {
            checkpoint: signed.checkpoint.clone(),
            certificate,
            cosignature: signed
                .checkpoint
                .cosign(name, &key(seed), 1_700_000_001)
                .unwrap(),
        };
        log.append_json(KIND, &record).unwrap();
    }
    log.checkpoint(1_700_000_002_000).unwrap();
    drop(log);

    let report = fedsoc_audit::verify_dir(dir.path(), &coordinator.verifying_key()).unwrap();
    let records: Vec<CosignatureRecord> = report
        .entries
        .iter()
        .filter_map(CosignatureRecord::from_entry)
        .map(Result::unwrap)
        .collect();
    assert_eq!(records.len(), 2);
    for (record, seed) in records.iter().zip([2u8, 3]) {
        assert_eq!(record.checkpoint, signed.checkpoint);
        record
            .cosignature
            .verify(&record.checkpoint, &key(seed).verifying_key())
            .unwrap();
    }
    // The body is canonical JSON of the record: the leaf commits to it.
    let entry = &report.entries[1];
    assert_eq!(entry.kind, "checkpoint.cosigned");
    assert_eq!(
        entry.body,
        serde_json::to_vec(&records[0]).unwrap(),
        "one encoding per record"
    );
}
