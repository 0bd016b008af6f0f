//! The built-in default data source: synthetic SOC telemetry.
//!
//! Eight national SOCs ([`countries`]) see benign traffic with different
//! service mixes, volumes, durations and day/night profiles (the non-IID
//! structure a federation has to cope with), and attack campaigns that hit
//! some SOCs and not others, so no single SOC has seen every attack.
//!
//! # Campaign → countries
//!
//! | family         | campaign                                               | hits           |
//! |----------------|--------------------------------------------------------|----------------|
//! | `scan`         | internet-wide reconnaissance of exposed infrastructure | de, nl, pl, ee |
//! | `flood`        | hacktivist DDoS against public portals                 | fr, nl, se, ee |
//! | `bruteforce`   | credential stuffing against exposed SSH and RDP        | de, it, es, pl |
//! | `exfiltration` | espionage data theft over HTTPS and DNS tunnels        | fr, it, se     |
//! | `c2`           | implant beaconing to command-and-control servers       | de, es, se, ee |
//!
//! So by country: de scan+bruteforce+c2, fr flood+exfiltration, it
//! bruteforce+exfiltration, es bruteforce+c2, nl scan+flood, pl
//! scan+bruteforce, se flood+exfiltration+c2, ee scan+flood+c2. The table is
//! [`campaigns`] in code; a test checks the generator against it.
//!
//! # Determinism
//!
//! Every random draw comes from a ChaCha8 stream keyed by (seed, site,
//! purpose): a site's benign rows, each of its campaigns, the test set and
//! the public reference sample use disjoint streams. Adding contamination
//! (`attack_fraction > 0`) therefore leaves the benign stream unchanged.

mod campaign;
mod country;
mod sample;
mod service;

use rand::seq::SliceRandom;

pub use campaign::{AttackFamily, Campaign, campaigns, campaigns_hitting};
pub use country::{Country, countries, country_for_site};
pub use service::Service;

use crate::error::DatasetError;
use crate::record::FlowRecord;
use crate::seed::{Purpose, stream};
use campaign::AttackGenerator;
use service::benign_flow;

/// Largest `rows` accepted, so a typo fails clearly instead of exhausting memory.
pub const MAX_ROWS: usize = 50_000_000;

/// Seed of the public reference sample behind
/// [`EncoderSpec::synthetic_default`](crate::EncoderSpec::synthetic_default).
pub const REFERENCE_SEED: u64 = 0x0FED_50C0_0000_0001;

/// Benign rows per country in the public reference sample.
pub const REFERENCE_ROWS_PER_COUNTRY: usize = 2_000;

/// C2 implants per campaign in the test set (a site's campaign has one).
const TEST_IMPLANTS: usize = 4;

/// How much synthetic telemetry to generate, and from which seed.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    pub seed: u64,
    /// Rows per site (or in the test set).
    pub rows: usize,
    /// Share of attack rows, in [0, 1]. Training data of an anomaly detector
    /// is benign-heavy, so the default is 0; a small value simulates
    /// contamination.
    pub attack_fraction: f64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            seed: 0,
            rows: 4000,
            attack_fraction: 0.0,
        }
    }
}

impl SyntheticConfig {
    /// Checks the ranges of `rows` and `attack_fraction`.
    pub fn validate(&self) -> Result<(), DatasetError> {
        if !(self.attack_fraction.is_finite() && (0.0..=1.0).contains(&self.attack_fraction)) {
            return Err(DatasetError::InvalidConfig {
                field: "attack_fraction",
                value: self.attack_fraction.to_string(),
                expected: "use a share between 0.0 and 1.0, e.g. 0.2",
            });
        }
        if self.rows > MAX_ROWS {
            return Err(DatasetError::InvalidConfig {
                field: "rows",
                value: self.rows.to_string(),
                expected: "at most 50000000 rows per call; generate in several calls or sites",
            });
        }
        Ok(())
    }

    /// The number of attack rows among `rows`.
    pub fn attack_rows(&self) -> usize {
        ((self.rows as f64 * self.attack_fraction).round() as usize).min(self.rows)
    }
}

/// `total` split into `parts` near-equal counts (the first ones get the remainder).
fn split_even(total: usize, parts: usize) -> Vec<usize> {
    if parts == 0 {
        return Vec::new();
    }
    (0..parts)
        .map(|i| total / parts + usize::from(i < total % parts))
        .collect()
}

/// Telemetry of SOC number `site` (index into [`countries`], wrapping):
/// `rows` flows, of which `attack_rows()` come from the campaigns hitting
/// that country (split evenly among them; none if no campaign hits it),
/// shuffled together. Deterministic by (seed, site).
pub fn site_telemetry(
    site: usize,
    config: &SyntheticConfig,
) -> Result<Vec<FlowRecord>, DatasetError> {
    config.validate()?;
    let site_key = site as u64;
    let country = country_for_site(site);
    let hitting: Vec<&Campaign> = campaigns_hitting(country.code).collect();
    let attack_rows = if hitting.is_empty() {
        0
    } else {
        config.attack_rows()
    };

    let mut rows = Vec::with_capacity(config.rows);
    let mut rng = stream(config.seed, site_key, Purpose::SiteBenign);
    rows.extend((0..config.rows - attack_rows).map(|_| benign_flow(&mut rng, country)));
    for (campaign, n) in hitting.iter().zip(split_even(attack_rows, hitting.len())) {
        let family = campaign.family;
        let mut rng = stream(config.seed, site_key, Purpose::SiteAttack(family.index()));
        let generator = AttackGenerator::new(&mut rng, family, 1);
        rows.extend((0..n).map(|_| generator.flow(&mut rng)));
    }
    if attack_rows > 0 {
        rows.shuffle(&mut stream(config.seed, site_key, Purpose::SiteShuffle));
    }
    Ok(rows)
}

/// A held-out labelled test set: benign traffic of all countries in equal
/// parts plus all attack families in equal parts (attack share
/// `attack_fraction`, e.g. 0.2), shuffled. Its streams are disjoint from
/// every site's, so it never repeats training rows.
pub fn test_set(config: &SyntheticConfig) -> Result<Vec<FlowRecord>, DatasetError> {
    config.validate()?;
    let attack_rows = config.attack_rows();
    let mut rows = Vec::with_capacity(config.rows);
    for (i, (country, n)) in countries()
        .iter()
        .zip(split_even(config.rows - attack_rows, countries().len()))
        .enumerate()
    {
        let mut rng = stream(config.seed, i as u64, Purpose::TestBenign);
        rows.extend((0..n).map(|_| benign_flow(&mut rng, country)));
    }
    for (family, n) in AttackFamily::ALL
        .into_iter()
        .zip(split_even(attack_rows, AttackFamily::ALL.len()))
    {
        let mut rng = stream(config.seed, 0, Purpose::TestAttack(family.index()));
        let generator = AttackGenerator::new(&mut rng, family, TEST_IMPLANTS);
        rows.extend((0..n).map(|_| generator.flow(&mut rng)));
    }
    rows.shuffle(&mut stream(config.seed, 0, Purpose::TestShuffle));
    Ok(rows)
}

/// The public reference sample: [`REFERENCE_ROWS_PER_COUNTRY`] benign rows of
/// every country from [`REFERENCE_SEED`], on a stream no participant uses.
/// Anyone can regenerate it, so statistics fitted on it reveal nothing about
/// any participant.
pub fn reference_sample() -> Vec<FlowRecord> {
    let mut rows = Vec::with_capacity(REFERENCE_ROWS_PER_COUNTRY * countries().len());
    for (i, country) in countries().iter().enumerate() {
        let mut rng = stream(REFERENCE_SEED, i as u64, Purpose::Reference);
        rows.extend((0..REFERENCE_ROWS_PER_COUNTRY).map(|_| benign_flow(&mut rng, country)));
    }
    rows
}
