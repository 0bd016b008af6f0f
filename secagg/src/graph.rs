//! The public neighbour graph of a round.
//!
//! Derived deterministically from the round's graph seed
//! ([`crate::crypto::graph_seed`]: a hash over every advertiser's nonce,
//! committed in its signed advertisement and revealed only once all
//! commitments are fixed), so every party computes the same graph and
//! nobody, the coordinator included, can choose it: a coordinator that
//! grinds round ids or leaves members out learns nothing about the graph
//! until it can no longer change anything. Complete graph when `k = n - 1`; otherwise a
//! Harary graph H(k, n) over a ChaCha20-seeded permutation of the roster
//! (Bell et al. 2020): each node joined to the ⌊k/2⌋ nearest on each side
//! of a ring and, for odd k, to the node across the ring. That graph is
//! k-regular, except for odd k and odd n (no k-regular graph exists):
//! there one node has k - 1 neighbours.

use std::collections::{BTreeMap, BTreeSet};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha20Rng;

use crate::config::{ParticipantId, RoundConfig};

/// Symmetric neighbour relation: `j in N(i)` iff `i in N(j)`; never `i in N(i)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourGraph {
    adj: BTreeMap<ParticipantId, BTreeSet<ParticipantId>>,
}

impl NeighbourGraph {
    /// Build the graph for a (validated) config and the round's graph seed.
    pub fn new(config: &RoundConfig, seed: &[u8; 32]) -> Self {
        let mut ids: Vec<ParticipantId> = config.participants.clone();
        ids.sort();
        ids.dedup();
        let n = ids.len();
        let k = config.neighbors;
        let mut adj: BTreeMap<ParticipantId, BTreeSet<ParticipantId>> =
            ids.iter().map(|&i| (i, BTreeSet::new())).collect();
        if k + 1 >= n {
            for &i in &ids {
                for &j in &ids {
                    if i != j {
                        adj.entry(i).or_default().insert(j);
                    }
                }
            }
        } else {
            let mut rng = ChaCha20Rng::from_seed(*seed);
            ids.shuffle(&mut rng);
            let mut join = |a: ParticipantId, b: ParticipantId| {
                adj.entry(a).or_default().insert(b);
                adj.entry(b).or_default().insert(a);
            };
            for p in 0..n {
                for d in 1..=k / 2 {
                    join(ids[p], ids[(p + d) % n]);
                }
            }
            if k % 2 == 1 {
                // The diameter: ring distance n/2 > k/2, never a ring edge.
                for p in 0..n / 2 {
                    join(ids[p], ids[p + n / 2]);
                }
            }
        }
        NeighbourGraph { adj }
    }

    /// Neighbours of `i` (empty for an unknown id).
    pub fn neighbours(&self, i: ParticipantId) -> &BTreeSet<ParticipantId> {
        static EMPTY: BTreeSet<ParticipantId> = BTreeSet::new();
        self.adj.get(&i).unwrap_or(&EMPTY)
    }

    /// Is `j` a neighbour of `i`?
    pub fn are_neighbours(&self, i: ParticipantId, j: ParticipantId) -> bool {
        self.neighbours(i).contains(&j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Ring, recommended_neighbours};
    use ed25519_dalek::SigningKey;

    fn cfg(n: u32, k: usize, round: u8) -> RoundConfig {
        let keys = (0..n)
            .map(|i| {
                (
                    ParticipantId(i * 3),
                    SigningKey::from_bytes(&[i as u8; 32]).verifying_key(),
                )
            })
            .collect();
        let mut c = RoundConfig::recommended([round; 32], keys, Ring::U32, 1);
        c.neighbors = k;
        c.threshold = crate::config::threshold_floor(k, 0);
        c
    }

    #[test]
    fn regular_symmetric_deterministic() {
        for n in [5u32, 17, 50, 100] {
            let k = if n == 5 {
                2
            } else {
                recommended_neighbours(n as usize, 0).0
            };
            let c = cfg(n, k, 7);
            c.validate().unwrap();
            let g = NeighbourGraph::new(&c, &[7; 32]);
            assert_eq!(g, NeighbourGraph::new(&c, &[7; 32]));
            for &i in &c.participants {
                assert_eq!(g.neighbours(i).len(), k, "n={n}");
                assert!(!g.are_neighbours(i, i));
                for &j in g.neighbours(i) {
                    assert!(g.are_neighbours(j, i));
                }
            }
            // A different seed gives a different graph.
            if k < n as usize - 1 {
                assert_ne!(g, NeighbourGraph::new(&c, &[8; 32]));
            }
        }
    }

    #[test]
    fn odd_k_adds_the_diameter_and_stays_symmetric() {
        for (n, k) in [(50u32, 7usize), (51, 7), (17, 3), (10, 5), (9, 5)] {
            let c = cfg(n, k, 3);
            c.validate().unwrap();
            let g = NeighbourGraph::new(&c, &[3; 32]);
            let mut short = 0;
            for &i in &c.participants {
                let d = g.neighbours(i).len();
                assert!(d == k || d == k - 1, "n={n} k={k}: degree {d}");
                short += usize::from(d == k - 1);
                for &j in g.neighbours(i) {
                    assert!(g.are_neighbours(j, i) && i != j);
                }
            }
            // Only odd k with odd n leaves one node a neighbour short.
            assert_eq!(short, usize::from(n % 2 == 1), "n={n} k={k}");
        }
    }

    #[test]
    fn full_graph() {
        let c = cfg(6, 5, 1);
        let g = NeighbourGraph::new(&c, &[1; 32]);
        for &i in &c.participants {
            assert_eq!(g.neighbours(i).len(), 5);
        }
    }
}
