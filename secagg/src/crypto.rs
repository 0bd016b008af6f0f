//! Key agreement, key derivation, share encryption and signatures.
//!
//! Every derived key is bound by HKDF-SHA256 (salt = round id) to the
//! protocol label, round id, the two participant ids and the purpose, so a
//! key can never be reused across rounds, pairs, directions or purposes.

use std::collections::BTreeMap;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::config::ParticipantId;
use crate::error::{Result, SecAggError};

/// Domain-separation label of this protocol version.
pub const LABEL: &[u8] = b"fedsoc-secagg/v1";

/// Fresh X25519 keypair from the caller's RNG.
pub fn x25519_keypair<R: CryptoRng + RngCore + ?Sized>(rng: &mut R) -> (StaticSecret, PublicKey) {
    let mut b = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(b.as_mut());
    let sk = StaticSecret::from(*b);
    let pk = PublicKey::from(&sk);
    (sk, pk)
}

/// Fresh Ed25519 signing key from the caller's RNG (for tests and drivers;
/// real identities come from the PKI).
pub fn ed25519_keypair<R: CryptoRng + RngCore + ?Sized>(rng: &mut R) -> SigningKey {
    let mut b = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(b.as_mut());
    SigningKey::from_bytes(&b)
}

/// X25519, refusing a non-contributory (low-order) peer key.
fn dh(sk: &StaticSecret, pk: &[u8; 32], peer: ParticipantId) -> Result<Zeroizing<[u8; 32]>> {
    let shared = sk.diffie_hellman(&PublicKey::from(*pk));
    if !shared.was_contributory() {
        return Err(SecAggError::BadKey {
            participant: peer,
            detail: "low-order X25519 public key".into(),
        });
    }
    Ok(Zeroizing::new(*shared.as_bytes()))
}

fn hkdf32(
    ikm: &[u8],
    round_id: &[u8; 32],
    a: ParticipantId,
    b: ParticipantId,
    purpose: &[u8],
) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(Some(round_id), ikm);
    let mut info = Vec::with_capacity(LABEL.len() + 32 + 8 + purpose.len() + 2);
    info.extend_from_slice(LABEL);
    info.push(0);
    info.extend_from_slice(round_id);
    info.extend_from_slice(&a.0.to_be_bytes());
    info.extend_from_slice(&b.0.to_be_bytes());
    info.extend_from_slice(purpose);
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's 255*32 output limit: cannot fail.
    hk.expand(&info, &mut out)
        .expect("32-byte HKDF output is always valid");
    out
}

/// Direction-specific key for encrypting `sender`'s shares to `receiver`.
pub fn share_key(
    my_c_sk: &StaticSecret,
    their_c_pk: &[u8; 32],
    round_id: &[u8; 32],
    sender: ParticipantId,
    receiver: ParticipantId,
    peer: ParticipantId,
) -> Result<Zeroizing<[u8; 32]>> {
    let shared = agree(my_c_sk, their_c_pk, peer)?;
    Ok(share_key_from(&shared, round_id, sender, receiver))
}

/// The X25519 secret shared with `peer`: computed once per neighbour and
/// used for the shares in both directions (an X25519 costs ~100× an HKDF).
pub fn agree(
    my_sk: &StaticSecret,
    their_pk: &[u8; 32],
    peer: ParticipantId,
) -> Result<Zeroizing<[u8; 32]>> {
    dh(my_sk, their_pk, peer)
}

/// [`share_key`] from an [`agree`]d secret.
pub fn share_key_from(
    shared: &[u8; 32],
    round_id: &[u8; 32],
    sender: ParticipantId,
    receiver: ParticipantId,
) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(hkdf32(
        shared,
        round_id,
        sender,
        receiver,
        b"share-encryption",
    ))
}

/// Pairwise mask seed of `me` and `peer` (symmetric: ids in ascending order).
pub fn mask_seed(
    my_s_sk: &StaticSecret,
    their_s_pk: &[u8; 32],
    round_id: &[u8; 32],
    me: ParticipantId,
    peer: ParticipantId,
) -> Result<Zeroizing<[u8; 32]>> {
    let s = dh(my_s_sk, their_s_pk, peer)?;
    let (a, b) = if me < peer { (me, peer) } else { (peer, me) };
    Ok(Zeroizing::new(hkdf32(
        s.as_ref(),
        round_id,
        a,
        b,
        b"pairwise-mask",
    )))
}

fn aad(round_id: &[u8; 32], sender: ParticipantId, receiver: ParticipantId) -> Vec<u8> {
    let mut v = Vec::with_capacity(LABEL.len() + 40);
    v.extend_from_slice(LABEL);
    v.extend_from_slice(round_id);
    v.extend_from_slice(&sender.0.to_be_bytes());
    v.extend_from_slice(&receiver.0.to_be_bytes());
    v
}

/// Encrypt with ChaCha20-Poly1305. The zero nonce is safe: each key is
/// unique to (round, sender, receiver) and encrypts exactly one message.
pub fn encrypt(
    key: &[u8; 32],
    round_id: &[u8; 32],
    sender: ParticipantId,
    receiver: ParticipantId,
    pt: &[u8],
) -> Vec<u8> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    let aad = aad(round_id, sender, receiver);
    // Encryption only fails for plaintexts over 256 GiB; ours are < 200 bytes.
    cipher
        .encrypt(
            Nonce::from_slice(&[0u8; 12]),
            Payload { msg: pt, aad: &aad },
        )
        .expect("ChaCha20-Poly1305 encryption of a short message cannot fail")
}

/// Decrypt and authenticate; any failure names the sender.
pub fn decrypt(
    key: &[u8; 32],
    round_id: &[u8; 32],
    sender: ParticipantId,
    receiver: ParticipantId,
    ct: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    let aad = aad(round_id, sender, receiver);
    cipher
        .decrypt(
            Nonce::from_slice(&[0u8; 12]),
            Payload { msg: ct, aad: &aad },
        )
        .map(Zeroizing::new)
        .map_err(|_| SecAggError::DecryptionFailed { from: sender })
}

/// Bytes signed in a key advertisement; `binding` is
/// [`crate::RoundConfig::binding`] (round id, roster, k, t, c, ring, length).
pub fn advert_transcript(
    binding: &[u8; 32],
    sender: ParticipantId,
    c_pk: &[u8; 32],
    s_pk: &[u8; 32],
    seed_commitment: &[u8; 32],
) -> Vec<u8> {
    let mut v = Vec::with_capacity(LABEL.len() + 144);
    v.extend_from_slice(LABEL);
    v.extend_from_slice(b"/advertise");
    v.extend_from_slice(binding);
    v.extend_from_slice(&sender.0.to_be_bytes());
    v.extend_from_slice(c_pk);
    v.extend_from_slice(s_pk);
    v.extend_from_slice(seed_commitment);
    v
}

/// A participant's commitment to its graph-seed nonce: fixed in its
/// advertisement before anyone's nonce is revealed, so nobody (a colluding
/// member included) can pick a nonce after seeing the others.
pub fn seed_commitment(binding: &[u8; 32], sender: ParticipantId, nonce: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update(LABEL)
        .chain_update(b"/seed-commitment")
        .chain_update(binding)
        .chain_update(sender.0.to_be_bytes())
        .chain_update(nonce)
        .finalize()
        .into()
}

/// The neighbour graph's seed: every advertiser's revealed nonce, in id
/// order. Each honest member's fresh nonce makes it unpredictable to a
/// coordinator that fixed the round id and the advertiser set beforehand.
pub fn graph_seed(binding: &[u8; 32], nonces: &BTreeMap<ParticipantId, [u8; 32]>) -> [u8; 32] {
    let mut h = Sha256::new()
        .chain_update(LABEL)
        .chain_update(b"/graph-seed")
        .chain_update(binding)
        .chain_update((nonces.len() as u64).to_be_bytes());
    for (p, nonce) in nonces {
        h.update(p.0.to_be_bytes());
        h.update(nonce);
    }
    h.finalize().into()
}

/// What the consistency signatures cover: the round's parameters and the
/// graph seed, so members who computed different graphs cannot agree.
pub fn sealed_binding(binding: &[u8; 32], graph_seed: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update(LABEL)
        .chain_update(b"/sealed")
        .chain_update(binding)
        .chain_update(graph_seed)
        .finalize()
        .into()
}

/// Bytes signed in a consistency check: the round's sealed binding (see
/// [`sealed_binding`]) and the sorted survivor set.
pub fn survivors_transcript(binding: &[u8; 32], survivors: &[ParticipantId]) -> Vec<u8> {
    let mut v = Vec::with_capacity(LABEL.len() + 48 + 4 * survivors.len());
    v.extend_from_slice(LABEL);
    v.extend_from_slice(b"/survivors");
    v.extend_from_slice(binding);
    v.extend_from_slice(&(survivors.len() as u64).to_be_bytes());
    for s in survivors {
        v.extend_from_slice(&s.0.to_be_bytes());
    }
    v
}

/// Sign with the long-term key.
pub fn sign(key: &SigningKey, msg: &[u8]) -> [u8; 64] {
    key.sign(msg).to_bytes()
}

/// Strict Ed25519 verification (rejects malleable and small-order forms).
pub fn verify(
    key: &VerifyingKey,
    msg: &[u8],
    sig: &[u8; 64],
    participant: ParticipantId,
) -> Result<()> {
    key.verify_strict(msg, &Signature::from_bytes(sig))
        .map_err(|_| SecAggError::BadSignature { participant })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn keys_agree_and_are_bound() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let (a_sk, a_pk) = x25519_keypair(&mut rng);
        let (b_sk, b_pk) = x25519_keypair(&mut rng);
        let (i, j) = (ParticipantId(1), ParticipantId(2));
        let r = [5u8; 32];
        let s1 = mask_seed(&a_sk, b_pk.as_bytes(), &r, i, j).unwrap();
        let s2 = mask_seed(&b_sk, a_pk.as_bytes(), &r, j, i).unwrap();
        assert_eq!(*s1, *s2);
        assert_ne!(
            *s1,
            *mask_seed(&a_sk, b_pk.as_bytes(), &[6u8; 32], i, j).unwrap()
        );
        let k_ij = share_key(&a_sk, b_pk.as_bytes(), &r, i, j, j).unwrap();
        let k_ij2 = share_key(&b_sk, a_pk.as_bytes(), &r, i, j, i).unwrap();
        assert_eq!(*k_ij, *k_ij2);
        assert_ne!(
            *k_ij,
            *share_key(&a_sk, b_pk.as_bytes(), &r, j, i, j).unwrap()
        );
        let ct = encrypt(&k_ij, &r, i, j, b"hello");
        assert_eq!(&decrypt(&k_ij, &r, i, j, &ct).unwrap()[..], b"hello");
        assert_eq!(
            decrypt(&k_ij, &r, j, i, &ct),
            Err(SecAggError::DecryptionFailed { from: j })
        );
        // Low-order point refused.
        assert!(matches!(
            mask_seed(&a_sk, &[0u8; 32], &r, i, j),
            Err(SecAggError::BadKey { .. })
        ));
    }

    #[test]
    fn signatures() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let k = ed25519_keypair(&mut rng);
        let sig = sign(&k, b"m");
        verify(&k.verifying_key(), b"m", &sig, ParticipantId(0)).unwrap();
        assert_eq!(
            verify(&k.verifying_key(), b"n", &sig, ParticipantId(0)),
            Err(SecAggError::BadSignature {
                participant: ParticipantId(0)
            })
        );
    }
}
