//! Criterion benches: client masking, server unmasking, and the bare PRG
//! floor. Run: `cargo bench -p fedsoc-secagg`, or a subset, e.g.
//! `cargo bench -p fedsoc-secagg -- 'unmask/N100/D1000000|prg/D1000000'`.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use fedsoc_secagg::messages::ShareBundle;
use fedsoc_secagg::prg::{Sign, expand_into};
use fedsoc_secagg::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const NS: [u32; 3] = [10, 50, 100];
const DS: [usize; 2] = [100_000, 1_000_000];

fn setup(
    n: u32,
    d: usize,
    rng: &mut ChaCha20Rng,
) -> (RoundConfig, BTreeMap<ParticipantId, SigningKey>) {
    let keys: BTreeMap<_, _> = (0..n)
        .map(|i| (ParticipantId(i), crypto::ed25519_keypair(rng)))
        .collect();
    let vks = keys.iter().map(|(p, k)| (*p, k.verifying_key())).collect();
    (
        RoundConfig::recommended([n as u8; 32], vks, Ring::U32, d),
        keys,
    )
}

/// Stages 0-1 for everyone; returns participant 0's stage-1 state and bundle.
fn client_ready(
    cfg: &RoundConfig,
    keys: &BTreeMap<ParticipantId, SigningKey>,
    rng: &mut ChaCha20Rng,
) -> (ClientShared, ShareBundle) {
    let server = Server::new(cfg.clone()).unwrap();
    let mut c0 = BTreeMap::new();
    for (&p, k) in keys {
        c0.insert(p, Client::start(cfg.clone(), p, k, rng).unwrap());
    }
    let (mut server, bundles, mut c0) = fix_graph(server, c0).unwrap();
    let mut c1 = BTreeMap::new();
    for b in bundles {
        let p = b.recipient;
        let (st, m) = c0.remove(&p).unwrap().handle_key_bundle(b, rng).unwrap();
        server.handle_share_keys(p, m).unwrap();
        c1.insert(p, st);
    }
    let (_, bundles) = server.close().unwrap();
    let b = bundles
        .into_iter()
        .find(|b| b.recipient == ParticipantId(0))
        .unwrap();
    (c1.remove(&ParticipantId(0)).unwrap(), b)
}

/// A server ready to unmask (no dropouts), built by running the round.
fn server_ready(
    cfg: &RoundConfig,
    keys: &BTreeMap<ParticipantId, SigningKey>,
    rng: &mut ChaCha20Rng,
) -> ServerCollectingUnmask {
    let input = vec![7u64; cfg.vector_len];
    let server = Server::new(cfg.clone()).unwrap();
    let mut c0 = BTreeMap::new();
    for (&p, k) in keys {
        c0.insert(p, Client::start(cfg.clone(), p, k, rng).unwrap());
    }
    let (mut server, bundles, mut c0) = fix_graph(server, c0).unwrap();
    let mut c1 = BTreeMap::new();
    for b in bundles {
        let p = b.recipient;
        let (st, m) = c0.remove(&p).unwrap().handle_key_bundle(b, rng).unwrap();
        server.handle_share_keys(p, m).unwrap();
        c1.insert(p, st);
    }
    let (mut server, bundles) = server.close().unwrap();
    let mut c2 = Vec::new();
    for b in bundles {
        let p = b.recipient;
        let (st, m) = c1
            .remove(&p)
            .unwrap()
            .handle_shares(b, &input, rng)
            .unwrap();
        server.handle_masked_input(p, m).unwrap();
        c2.push((p, st));
    }
    let (mut server, list) = server.close().unwrap();
    let mut c3 = Vec::new();
    for (p, st) in c2 {
        let (st, m) = st.handle_survivors(list.clone()).unwrap();
        server.handle_consistency(p, m).unwrap();
        c3.push((p, st));
    }
    let (mut server, signed) = server.close().unwrap();
    for (p, st) in c3 {
        let (_, m) = st.handle_consistency(signed.clone()).unwrap();
        server.handle_unmask(p, m).unwrap();
    }
    server
}

fn benches(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);

    let mut g = c.benchmark_group("prg");
    g.sample_size(10);
    for d in DS {
        g.throughput(Throughput::Elements(d as u64));
        let mut v = vec![0u32; d];
        g.bench_function(BenchmarkId::from_parameter(format!("D{d}")), |b| {
            b.iter(|| expand_into(black_box(&[3u8; 32]), &mut v, Sign::Add))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("client_mask");
    g.sample_size(10);
    for n in NS {
        for d in DS {
            let (cfg, keys) = setup(n, d, &mut rng);
            let input = vec![5u64; d];
            g.bench_function(
                BenchmarkId::from_parameter(format!("N{n}/D{d}/k{}", cfg.neighbors)),
                |b| {
                    b.iter_batched(
                        || client_ready(&cfg, &keys, &mut ChaCha20Rng::seed_from_u64(2)),
                        |(st, bundle)| {
                            st.handle_shares(bundle, &input, &mut ChaCha20Rng::seed_from_u64(3))
                                .unwrap()
                        },
                        BatchSize::PerIteration,
                    )
                },
            );
        }
    }
    g.finish();

    let mut g = c.benchmark_group("unmask");
    g.sample_size(10);
    for n in NS {
        for d in DS {
            let (cfg, keys) = setup(n, d, &mut rng);
            let ready = server_ready(&cfg, &keys, &mut rng);
            g.bench_function(BenchmarkId::from_parameter(format!("N{n}/D{d}")), |b| {
                b.iter_batched(
                    || ready.clone(),
                    |s| s.close().unwrap(),
                    BatchSize::PerIteration,
                )
            });
        }
    }
    g.finish();
}

/// Candidate mask generators on the same job: 1M ring words of 64 bits
/// (8 MiB of keystream) from a 256-bit seed.
fn prg_choice(c: &mut Criterion) {
    use aes::cipher::{KeyIvInit, StreamCipher};
    const BYTES: usize = 8 << 20;
    let mut g = c.benchmark_group("prg_choice");
    g.throughput(Throughput::Bytes(BYTES as u64));
    g.sample_size(20);
    let seed = [7u8; 32];
    let mut buf = vec![0u8; BYTES];
    g.bench_function("chacha20", |b| {
        b.iter(|| {
            let mut s = chacha20::ChaCha20::new(&seed.into(), &[0u8; 12].into());
            s.apply_keystream(&mut buf);
        })
    });
    g.bench_function("chacha12", |b| {
        b.iter(|| {
            let mut s = chacha20::ChaCha12::new(&seed.into(), &[0u8; 12].into());
            s.apply_keystream(&mut buf);
        })
    });
    g.bench_function("chacha8", |b| {
        b.iter(|| {
            let mut s = chacha20::ChaCha8::new(&seed.into(), &[0u8; 12].into());
            s.apply_keystream(&mut buf);
        })
    });
    g.bench_function("aes256-ctr", |b| {
        b.iter(|| {
            let mut s = ctr::Ctr64LE::<aes::Aes256>::new(&seed.into(), &[0u8; 16].into());
            s.apply_keystream(&mut buf);
        })
    });
    g.finish();
}

criterion_group!(secagg, benches, prg_choice);
criterion_main!(secagg);
