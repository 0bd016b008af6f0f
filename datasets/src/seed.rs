//! Independent random streams per (seed, site, purpose).
//!
//! The 32-byte ChaCha key is the concatenation of the user seed, the site,
//! the purpose and a domain tag, so distinct triples can never share a
//! stream: a participant's training rows, the held-out test set and the
//! public reference sample are statistically independent even for the same
//! user seed.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Bumping the version changes every generated record.
const DOMAIN: &[u8; 8] = b"fedsoc01";

/// What a stream is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A site's benign traffic.
    SiteBenign,
    /// A site's rows of one attack family (index into the family list).
    SiteAttack(u8),
    /// The interleaving of a site's benign and attack rows.
    SiteShuffle,
    /// The test set's benign traffic of one country.
    TestBenign,
    /// The test set's rows of one attack family.
    TestAttack(u8),
    /// The interleaving of the test set.
    TestShuffle,
    /// The public reference sample behind the default encoder statistics.
    Reference,
    /// Partitioning records among participants.
    Partition,
}

impl Purpose {
    fn code(self) -> u64 {
        match self {
            Purpose::SiteBenign => 1,
            Purpose::SiteAttack(f) => 0x100 | u64::from(f),
            Purpose::SiteShuffle => 2,
            Purpose::TestBenign => 3,
            Purpose::TestAttack(f) => 0x200 | u64::from(f),
            Purpose::TestShuffle => 4,
            Purpose::Reference => 5,
            Purpose::Partition => 6,
        }
    }
}

/// The random stream of `(seed, site, purpose)`.
pub(crate) fn stream(seed: u64, site: u64, purpose: Purpose) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&site.to_le_bytes());
    key[16..24].copy_from_slice(&purpose.code().to_le_bytes());
    key[24..].copy_from_slice(DOMAIN);
    ChaCha8Rng::from_seed(key)
}
