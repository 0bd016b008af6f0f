//! Participants' cosignatures over the checkpoints they verified.
//!
//! After a participant accepts a checkpoint (signature, consistency with
//! the one it held, receipts) it sends a `CheckpointCosignature` (C2SP
//! tlog-cosignature style, see [`fedsoc_audit::cosignature`]). The
//! coordinator checks it here — a checkpoint this coordinator signed and
//! stored, the participant's certificate against the federation CA with
//! the participant role and the session's id, the Ed25519 signature — and
//! hands it to the [`Trail`], which stores it as a `checkpoint.cosigned`
//! entry. `fedsoc audit verify --min-cosigners N` counts them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};

use ed25519_dalek::VerifyingKey;
use fedsoc_audit::{BlobId, Cosignature, CosignatureRecord, SignedCheckpoint};
use fedsoc_pki::{MemberVerifier, Role};
use fedsoc_proto::v1::CheckpointCosignature;

use crate::trail::Trail;

/// Checks cosignatures and passes them to the trail.
pub struct Witnesses {
    /// Weak: sessions outlive a stopped coordinator by a moment, and must
    /// not keep its audit log (and the log's lock) open.
    trail: Weak<Trail>,
    members: MemberVerifier,
    /// (witness, tree size, checkpoint time) already taken.
    seen: Mutex<HashSet<(String, u64, u64)>>,
}

impl std::fmt::Debug for Witnesses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witnesses").finish_non_exhaustive()
    }
}

impl Witnesses {
    pub fn new(trail: &Arc<Trail>, members: MemberVerifier) -> Self {
        Witnesses {
            trail: Arc::downgrade(trail),
            members,
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// Checks the cosignature participant `id` sent over its session with
    /// certificate `cert_der`, and keeps it for the log. Returns whether
    /// it was new; an error says why it was refused.
    pub fn receive(
        &self,
        id: &str,
        cert_der: &[u8],
        message: &CheckpointCosignature,
    ) -> Result<bool, String> {
        let signed = SignedCheckpoint::from_bytes(&message.checkpoint)
            .map_err(|e| format!("the cosigned checkpoint: {e}"))?;
        let c = &signed.checkpoint;
        let trail = self
            .trail
            .upgrade()
            .ok_or_else(|| "the coordinator is stopping".to_string())?;
        let ours = trail
            .log()
            .checkpoints()
            .iter()
            .rev()
            .any(|stored| *stored == signed);
        if !ours {
            return Err(format!(
                "the cosigned checkpoint (size {}, time {}) is not one this coordinator signed",
                c.tree_size, c.timestamp_ms
            ));
        }
        let member = self
            .members
            .verify(cert_der)
            .map_err(|e| format!("the witness certificate: {e}"))?;
        if member.identity.role != Role::Participant || member.identity.id != id {
            return Err(format!(
                "only participants cosign checkpoints; the certificate is for {}",
                member.identity
            ));
        }
        let key = VerifyingKey::from_bytes(&member.ed25519_public)
            .map_err(|e| format!("the witness key: {e}"))?;
        let signature: [u8; 64] = message
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| format!("a signature of {} bytes", message.signature.len()))?;
        let cosignature = Cosignature {
            name: id.to_owned(),
            key_id: fedsoc_audit::cosignature::key_id(id, &key),
            timestamp: message.timestamp,
            signature,
        };
        cosignature.verify(c, &key).map_err(|e| format!("{e}"))?;
        let fresh = self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert((
            id.to_owned(),
            c.tree_size,
            c.timestamp_ms,
        ));
        if fresh {
            let pem = fedsoc_pki::certificate_pem(cert_der).into_bytes();
            trail.add_cosignature(
                CosignatureRecord {
                    checkpoint: c.clone(),
                    certificate: BlobId::of(&pem),
                    cosignature,
                },
                pem,
            );
        }
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedsoc_audit::AuditLog;
    use fedsoc_pki::{CertificateAuthority, Identity};

    #[test]
    fn only_checked_participant_cosignatures_of_our_checkpoints_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::generate("t").unwrap();
        let pki = dir.path().join("pki");
        std::fs::create_dir_all(&pki).unwrap();
        let issue = |identity: Identity, stem: &str| {
            ca.issue(&identity, &[]).unwrap().save(&pki, stem).unwrap();
            (
                fedsoc_pki::load_certificate_der(&pki.join(format!("{stem}.pem"))).unwrap(),
                fedsoc_pki::load_signing_key(&pki.join(format!("{stem}.key"))).unwrap(),
            )
        };
        let (soc, soc_key) = issue(Identity::participant("soc-ee").unwrap(), "soc-ee");
        let (analyst, analyst_key) = issue(
            Identity::new(Role::DataScientist, "analyst").unwrap(),
            "analyst",
        );
        let log = AuditLog::open_or_create(
            dir.path().join("audit"),
            "fedsoc/t",
            ed25519_dalek::SigningKey::from_bytes(&[4; 32]),
        )
        .unwrap();
        let trail = Arc::new(Trail::new(log));
        trail
            .append("round.metrics", &serde_json::json!({}))
            .unwrap();
        let signed = trail.checkpoint().unwrap();
        let witnesses = Witnesses::new(&trail, MemberVerifier::new(ca.cert_pem()).unwrap());
        let message = |checkpoint: &SignedCheckpoint, key: &ed25519_dalek::SigningKey, ts| {
            let cosig = checkpoint.checkpoint.cosign("soc-ee", key, ts).unwrap();
            CheckpointCosignature {
                checkpoint: checkpoint.to_bytes().unwrap(),
                timestamp: ts,
                signature: cosig.signature.to_vec(),
            }
        };

        let good = message(&signed, &soc_key, 7);
        assert_eq!(witnesses.receive("soc-ee", &soc, &good), Ok(true));
        assert_eq!(witnesses.receive("soc-ee", &soc, &good), Ok(false));

        let err = witnesses
            .receive("analyst", &analyst, &message(&signed, &analyst_key, 7))
            .unwrap_err();
        assert!(
            err.contains("only participants cosign checkpoints"),
            "{err}"
        );
        let err = witnesses.receive("soc-fi", &soc, &good).unwrap_err();
        assert!(
            err.contains("only participants cosign checkpoints"),
            "{err}"
        );

        let mut moved = good.clone();
        moved.timestamp = 8;
        let err = witnesses.receive("soc-ee", &soc, &moved).unwrap_err();
        assert!(err.contains("does not verify"), "{err}");

        let mut forged = signed.clone();
        forged.checkpoint.root[0] ^= 1;
        let err = witnesses
            .receive("soc-ee", &soc, &message(&forged, &soc_key, 7))
            .unwrap_err();
        assert!(err.contains("not one this coordinator signed"), "{err}");

        assert_eq!(trail.record_cosignatures().unwrap(), 1);
        let log = trail.log();
        let entry = log.entry(log.len() - 1).unwrap();
        let record = CosignatureRecord::from_entry(&entry).unwrap().unwrap();
        assert_eq!(record.checkpoint, signed.checkpoint);
        assert_eq!(record.cosignature.name, "soc-ee");
        log.blobs().check(&record.certificate).unwrap();
    }
}
