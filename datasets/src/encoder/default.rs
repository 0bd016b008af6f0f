//! The federation-wide default spec for the synthetic telemetry.
//!
//! Vocabularies are fixed; numeric statistics come from the *public*
//! reference sample ([`crate::synthetic::reference_sample`]), never from a
//! participant, so sharing the spec reveals no participant's distribution.
//! Statistics are rounded to 6 significant digits so the spec reads well in
//! TOML and does not depend on the last bits of a platform's `exp`/`ln`.

use std::sync::OnceLock;

use super::features::{CategoricalFeature, NumericFeature};
use super::{CategoricalColumn, EncoderSpec, NumericColumn};
use crate::synthetic::{Service, reference_sample};

const PROTOCOLS: [&str; 3] = ["tcp", "udp", "icmp"];
/// Zeek's 13 connection states (Suricata flows are mapped onto them).
const CONN_STATES: [&str; 13] = [
    "SF", "S0", "S1", "S2", "S3", "REJ", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH",
];
const PORT_CLASSES: [&str; 3] = ["well_known", "registered", "ephemeral"];

impl EncoderSpec {
    /// The federation-wide spec for the synthetic telemetry: fixed
    /// vocabularies and statistics of the public reference sample.
    /// Computed once per process.
    pub fn synthetic_default() -> Self {
        static DEFAULT: OnceLock<EncoderSpec> = OnceLock::new();
        DEFAULT.get_or_init(fit_reference).clone()
    }

    /// The columns of [`synthetic_default`](Self::synthetic_default) with
    /// placeholder statistics (mean 0, std 1): the layout to [`fit`](Self::fit).
    pub fn synthetic_layout() -> Self {
        let vocab = |values: &[&str]| values.iter().map(|v| v.to_string()).collect();
        // "other" is left out: it shares the extra slot with unknown services.
        let services: Vec<&str> = Service::ALL
            .iter()
            .filter(|s| **s != Service::Other)
            .map(|s| s.name())
            .collect();
        let categorical = |feature: CategoricalFeature, values: &[&str]| CategoricalColumn {
            name: feature.name().to_string(),
            vocabulary: vocab(values),
        };
        EncoderSpec {
            numeric: NumericFeature::ALL
                .iter()
                .map(|f| NumericColumn {
                    name: f.name().to_string(),
                    log1p: true,
                    mean: 0.0,
                    std: 1.0,
                })
                .collect(),
            categorical: vec![
                categorical(CategoricalFeature::Protocol, &PROTOCOLS),
                categorical(CategoricalFeature::Service, &services),
                categorical(CategoricalFeature::ConnState, &CONN_STATES),
                categorical(CategoricalFeature::PortClass, &PORT_CLASSES),
            ],
        }
    }
}

fn fit_reference() -> EncoderSpec {
    let layout = EncoderSpec::synthetic_layout();
    // The generator only emits finite, non-negative values, so fitting
    // cannot fail; the layout's unit statistics are a safe fallback.
    let mut spec = EncoderSpec::fit(&reference_sample(), &layout).unwrap_or(layout);
    for column in &mut spec.numeric {
        column.mean = round_significant(column.mean, 6);
        column.std = round_significant(column.std, 6);
    }
    spec
}

/// `x` rounded to `digits` significant decimal digits.
fn round_significant(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(digits - 1 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}
