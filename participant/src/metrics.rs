//! The participant's Prometheus metrics: what a SOC's operator watches to
//! see that its agent takes part, how long local training takes, that it
//! keeps verifying the coordinator's audit checkpoints, and why it was
//! refused or refused something.
//!
//! One [`Metrics`] handle, held by the [`Agent`](crate::Agent) and
//! updated where each event happens. These are this SOC's own numbers,
//! served on its own machine (loopback unless `public = true`): the
//! training volume is a total of rows processed over every round, and
//! nothing here carries a model update, a share or a key.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

type One = [(&'static str, &'static str); 1];

/// The `reason` label values of `refusals_total`.
pub const REFUSAL_REASONS: [&str; 7] = [
    // The coordinator refused our session (certificate, roster, version).
    "coordinator_refused",
    // The coordinator's certificate does not fit our CA or its name.
    "untrusted_coordinator",
    // Another agent with our certificate took our session.
    "replaced",
    // We refused a task: its CRL is stale, older than ours, or revokes
    // the coordinator or a member.
    "task_crl",
    // We refused a secure task our update from this base already served.
    "task_release",
    // We refused the coordinator's audit checkpoint (fork, rewrite).
    "audit",
    // We refused a model bundle (signature, digest, format).
    "bundle",
];

/// The participant's counters, gauges and histogram; cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    rounds_joined: Family<One, Counter>,
    training_seconds: Histogram,
    training_rows: Counter,
    checkpoint_size: Gauge<i64, std::sync::atomic::AtomicI64>,
    checkpoint_verified: Gauge<f64, AtomicU64>,
    reconnects: Counter,
    refusals: Family<One, Counter>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fedsoc_participant");
        let inner = Inner {
            registry: Registry::default(),
            rounds_joined: Family::default(),
            // 10 ms to about 25 minutes.
            training_seconds: Histogram::new(exponential_buckets(0.01, 2.5, 14)),
            training_rows: Counter::default(),
            checkpoint_size: Gauge::default(),
            checkpoint_verified: Gauge::default(),
            reconnects: Counter::default(),
            refusals: Family::default(),
        };
        registry.register(
            "rounds_joined",
            "Round tasks received whole and worked on, by round kind",
            inner.rounds_joined.clone(),
        );
        registry.register_with_unit(
            "training_duration",
            "Wall time of local training per training round",
            Unit::Seconds,
            inner.training_seconds.clone(),
        );
        registry.register(
            "training_rows",
            "Rows processed by local training (rows times epochs), summed over all rounds",
            inner.training_rows.clone(),
        );
        registry.register(
            "last_checkpoint_size",
            "Tree size of the last audit checkpoint this participant verified (0: none yet)",
            inner.checkpoint_size.clone(),
        );
        registry.register_with_unit(
            "last_checkpoint_verified_timestamp",
            "Unix time at which the last audit checkpoint was verified (0: none yet)",
            Unit::Seconds,
            inner.checkpoint_verified.clone(),
        );
        registry.register(
            "reconnects",
            "Sessions re-opened after a lost connection",
            inner.reconnects.clone(),
        );
        registry.register(
            "refusals",
            "Refusals, by reason: by the coordinator of us, or by us of a task, checkpoint or bundle",
            inner.refusals.clone(),
        );
        // Every series exists from the start, at zero.
        for kind in ["train", "moments", "spread", "calibrate", "other"] {
            let _ = inner.rounds_joined.get_or_create(&[("kind", kind)]);
        }
        for reason in REFUSAL_REASONS {
            let _ = inner.refusals.get_or_create(&[("reason", reason)]);
        }
        Metrics(Arc::new(Inner { registry, ..inner }))
    }

    /// A round task of `kind` ("" or "train", "moments", "spread",
    /// "calibrate"; anything else counts as "other").
    pub fn round_joined(&self, kind: &str) {
        let kind = match kind {
            "" | "train" => "train",
            "moments" => "moments",
            "spread" => "spread",
            "calibrate" => "calibrate",
            _ => "other",
        };
        self.0.rounds_joined.get_or_create(&[("kind", kind)]).inc();
    }

    /// Local training of one round took `seconds` over `rows` rows
    /// (rows × epochs).
    pub fn trained(&self, seconds: f64, rows: u64) {
        self.0.training_seconds.observe(seconds);
        self.0.training_rows.inc_by(rows);
    }

    /// An audit checkpoint of `tree_size` entries was verified at
    /// `unix_seconds`.
    pub fn checkpoint_verified(&self, tree_size: u64, unix_seconds: u64) {
        self.0
            .checkpoint_size
            .set(i64::try_from(tree_size).unwrap_or(i64::MAX));
        self.0.checkpoint_verified.set(unix_seconds as f64);
    }

    pub fn reconnect(&self) {
        self.0.reconnects.inc();
    }

    /// `reason` is one of [`REFUSAL_REASONS`].
    pub fn refusal(&self, reason: &'static str) {
        self.0.refusals.get_or_create(&[("reason", reason)]).inc();
    }

    /// The OpenMetrics text exposition, ending in `# EOF`.
    pub fn encode(&self) -> String {
        fedsoc_scrape::encode(&self.0.registry)
    }

    /// Serves these metrics on `addr` (see [`fedsoc_scrape::serve`]).
    pub fn serve(&self, addr: SocketAddr) -> std::io::Result<fedsoc_scrape::MetricsServer> {
        fedsoc_scrape::serve(addr, Arc::new(self.clone()))
    }
}

impl fedsoc_scrape::Exposition for Metrics {
    fn exposition(&self) -> String {
        self.encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_move_their_series() {
        let m = Metrics::new();
        m.round_joined("");
        m.round_joined("calibrate");
        m.round_joined("something new");
        m.trained(0.5, 1200);
        m.checkpoint_verified(17, 1_700_000_000);
        m.reconnect();
        m.refusal("task_crl");
        let text = m.encode();
        for line in [
            "fedsoc_participant_rounds_joined_total{kind=\"train\"} 1",
            "fedsoc_participant_rounds_joined_total{kind=\"calibrate\"} 1",
            "fedsoc_participant_rounds_joined_total{kind=\"other\"} 1",
            "fedsoc_participant_training_duration_seconds_count 1",
            "fedsoc_participant_training_rows_total 1200",
            "fedsoc_participant_last_checkpoint_size 17",
            "fedsoc_participant_last_checkpoint_verified_timestamp_seconds 1700000000.0",
            "fedsoc_participant_reconnects_total 1",
            "fedsoc_participant_refusals_total{reason=\"task_crl\"} 1",
        ] {
            assert!(text.contains(&format!("\n{line}\n")), "{line}:\n{text}");
        }
        assert!(!text.contains("something new"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
