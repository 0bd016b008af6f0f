//! The coordinator's Prometheus metrics: what an operator watches to see
//! that rounds run, how long their stages take, who drops out and why,
//! and that the audit log keeps being checkpointed.
//!
//! One [`Metrics`] handle, cloned into the places where things happen: the
//! [`RoundWatch`](crate::live::RoundWatch) (rounds, stages, dropouts,
//! round traffic), the `Federation` service (refused connections); what is
//! state rather than event (members online, audit log size, checkpoint
//! age, CRL number) is read at scrape time from the registry, the trail
//! and the revocation list themselves, so nothing has to keep it in step.
//!
//! What no metric carries, by construction: a participant id (no label
//! takes one), a model update, a share, a key, or any participant's
//! sample count. Labels take only the fixed words of this module (round
//! kinds, stage names, dropout and refusal reasons). Tests:
//! `metrics::tests` here and `experiments/tests/metrics.rs`.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::kind::RoundKind;
use crate::trail::Trail;

/// Label sets: fixed words only (see the module documentation).
type One = [(&'static str, &'static str); 1];
type Two = [(&'static str, &'static str); 2];

/// Buckets of the stage-duration histogram: 10 ms to about 25 minutes.
fn stage_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.5, 14))
}

/// The coordinator's counters and histograms; cheap to clone (one `Arc`).
/// Every coordinator has one; it is served only when `[metrics]` is set.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    rounds_started: Family<One, Counter>,
    rounds_completed: Family<One, Counter>,
    rounds_aborted: Family<One, Counter>,
    stage_seconds: Family<One, Histogram, fn() -> Histogram>,
    dropouts: Family<Two, Counter>,
    bytes_received: Counter,
    bytes_sent: Counter,
    refused: Family<One, Counter>,
    state: Arc<OnceLock<Sources>>,
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
        let mut registry = Registry::with_prefix("fedsoc_coordinator");
        let inner = Inner {
            registry: Registry::default(),
            rounds_started: Family::default(),
            rounds_completed: Family::default(),
            rounds_aborted: Family::default(),
            stage_seconds: Family::new_with_constructor(stage_histogram),
            dropouts: Family::default(),
            bytes_received: Counter::default(),
            bytes_sent: Counter::default(),
            refused: Family::default(),
            state: Arc::default(),
        };
        // The registry holds clones of the same atomics as the fields.
        registry.register(
            "rounds_started",
            "Round attempts opened with their members, by kind (train, moments, spread, calibrate)",
            inner.rounds_started.clone(),
        );
        registry.register(
            "rounds_completed",
            "Rounds completed (model or conclusion stored), by kind",
            inner.rounds_completed.clone(),
        );
        registry.register(
            "rounds_aborted",
            "Round attempts that opened and ended without completing (too many dropouts, stopped, failed), by kind",
            inner.rounds_aborted.clone(),
        );
        registry.register_with_unit(
            "stage_duration",
            "Wall time of each round stage, from entering it to entering the next or the round's end, by stage",
            Unit::Seconds,
            inner.stage_seconds.clone(),
        );
        registry.register(
            "dropouts",
            "Members that dropped out of a round, by the stage they dropped in and a reason class",
            inner.dropouts.clone(),
        );
        registry.register_with_unit(
            "round_received",
            "Protobuf payload bytes received from members in rounds (before TLS framing)",
            Unit::Bytes,
            inner.bytes_received.clone(),
        );
        registry.register_with_unit(
            "round_sent",
            "Protobuf payload bytes sent to members in rounds (before TLS framing)",
            Unit::Bytes,
            inner.bytes_sent.clone(),
        );
        registry.register(
            "refused_connections",
            "Participant sessions refused at admission, by reason",
            inner.refused.clone(),
        );
        registry.register_collector(Box::new(StateCollector(inner.state.clone())));
        // Every series exists from the start, at zero: a rate over a
        // counter's first increment is right, and a dashboard shows 0
        // rather than no data.
        for kind in [
            RoundKind::Train,
            RoundKind::Moments,
            RoundKind::Spread,
            RoundKind::Calibrate,
        ] {
            let label = [("kind", kind.name())];
            let _ = inner.rounds_started.get_or_create(&label);
            let _ = inner.rounds_completed.get_or_create(&label);
            let _ = inner.rounds_aborted.get_or_create(&label);
        }
        for stage in crate::live::stage::ALL {
            let _ = inner.stage_seconds.get_or_create(&[("stage", stage)]);
            for reason in DROPOUT_REASONS {
                let _ = inner
                    .dropouts
                    .get_or_create(&[("stage", stage), ("reason", reason)]);
            }
        }
        for reason in REFUSAL_REASONS {
            let _ = inner.refused.get_or_create(&[("reason", reason)]);
        }
        Metrics(Arc::new(Inner { registry, ..inner }))
    }

    /// Where the scrape-time gauges come from; the first call wins (a
    /// coordinator has one registry, trail and CRL for life). The trail
    /// is held weakly: a handle that outlives its coordinator (in a
    /// connection task still winding down) must not keep the audit log
    /// open, or a restart in the same process finds it locked.
    pub fn observe(
        &self,
        registry: crate::registry::Registry,
        trail: &Arc<Trail>,
        revocations: Arc<fedsoc_pki::Revocations>,
    ) {
        let _ = self.0.state.set(Sources {
            registry,
            trail: Arc::downgrade(trail),
            revocations,
        });
    }

    pub fn round_started(&self, kind: RoundKind) {
        self.0
            .rounds_started
            .get_or_create(&[("kind", kind.name())])
            .inc();
    }

    pub fn round_completed(&self, kind: RoundKind) {
        self.0
            .rounds_completed
            .get_or_create(&[("kind", kind.name())])
            .inc();
    }

    pub fn round_aborted(&self, kind: RoundKind) {
        self.0
            .rounds_aborted
            .get_or_create(&[("kind", kind.name())])
            .inc();
    }

    /// A stage (one of [`crate::live::stage::ALL`]) took `seconds`.
    pub fn stage_done(&self, stage: &'static str, seconds: f64) {
        self.0
            .stage_seconds
            .get_or_create(&[("stage", stage)])
            .observe(seconds);
    }

    /// A member dropped out in `stage`; `reason` is the free text the
    /// round records, reduced here to its class (see [`dropout_reason`]).
    pub fn dropout(&self, stage: &'static str, reason: &str) {
        self.0
            .dropouts
            .get_or_create(&[("stage", stage), ("reason", dropout_reason(reason))])
            .inc();
    }

    pub fn bytes_received(&self, n: u64) {
        self.0.bytes_received.inc_by(n);
    }

    pub fn bytes_sent(&self, n: u64) {
        self.0.bytes_sent.inc_by(n);
    }

    /// A session refused at admission; `reason` is one of
    /// [`REFUSAL_REASONS`].
    pub fn refused(&self, reason: &'static str) {
        self.0.refused.get_or_create(&[("reason", reason)]).inc();
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

/// The `reason` label values of `refused_connections_total`.
/// TLS handshakes rustls rejects (a certificate from another CA, an
/// expired one) never reach the service and are not counted here.
pub const REFUSAL_REASONS: [&str; 6] = [
    "certificate",
    "revoked",
    "role",
    "not_on_roster",
    "no_hello",
    "bad_hello",
];

/// The `reason` label values of `dropouts_total`.
pub const DROPOUT_REASONS: [&str; 5] = [
    "deadline",
    "disconnected",
    "task_failed",
    "refused_message",
    "other",
];

/// The class of a dropout's recorded reason: a fixed word, never the
/// free text (which may quote a participant's own error message).
pub fn dropout_reason(reason: &str) -> &'static str {
    let r = reason.to_ascii_lowercase();
    if r.contains("deadline") {
        "deadline"
    } else if r.contains("disconnected") {
        "disconnected"
    } else if r.starts_with("training failed") {
        "task_failed"
    } else if r.contains("refused") || r.contains("malformed") || r.contains("announces") {
        "refused_message"
    } else {
        "other"
    }
}

/// What the scrape-time gauges read.
struct Sources {
    registry: crate::registry::Registry,
    trail: std::sync::Weak<Trail>,
    revocations: Arc<fedsoc_pki::Revocations>,
}

/// Writes the gauges that are state, not events, at each scrape.
struct StateCollector(Arc<OnceLock<Sources>>);

impl fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateCollector").finish_non_exhaustive()
    }
}

fn gauge<T: prometheus_client::encoding::EncodeGaugeValue + Send + Sync + fmt::Debug>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: T,
) -> Result<(), fmt::Error> {
    let gauge = ConstGauge::new(value);
    let metric = encoder.encode_descriptor(name, help, unit, gauge.metric_type())?;
    gauge.encode(metric)
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(sources) = self.0.get() else {
            return Ok(());
        };
        gauge(
            &mut encoder,
            "members_online",
            "Participants connected now",
            None,
            sources.registry.connected().len() as i64,
        )?;
        // Gone only once the coordinator has shut down.
        if let Some(trail) = sources.trail.upgrade() {
            let (entries, last_checkpoint_ms) = {
                let log = trail.log();
                (
                    log.len(),
                    log.latest_checkpoint().map(|c| c.checkpoint.timestamp_ms),
                )
            };
            gauge(
                &mut encoder,
                "audit_log_entries",
                "Entries in the audit log",
                None,
                entries as i64,
            )?;
            if let Some(ms) = last_checkpoint_ms {
                let age = (fedsoc_audit::now_ms().saturating_sub(ms)) as f64 / 1000.0;
                gauge(
                    &mut encoder,
                    "last_checkpoint_age",
                    "Time since the audit log's last signed checkpoint, at this scrape",
                    Some(&Unit::Seconds),
                    age,
                )?;
            }
        }
        gauge(
            &mut encoder,
            "crl_number",
            "Number of the CRL in force (0: none loaded)",
            None,
            sources.revocations.crl_number() as i64,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_carry_only_fixed_words() {
        let m = Metrics::new();
        m.round_started(RoundKind::Train);
        m.round_started(RoundKind::Calibrate);
        m.round_completed(RoundKind::Train);
        m.round_aborted(RoundKind::Calibrate);
        m.stage_done("share-keys", 0.2);
        m.dropout(
            "masked-input",
            "training failed: soc-de's disk at /srv/soc-de is full",
        );
        m.bytes_received(10);
        m.bytes_sent(20);
        m.refused("not_on_roster");
        let text = m.encode();
        for line in [
            "fedsoc_coordinator_rounds_started_total{kind=\"train\"} 1",
            "fedsoc_coordinator_rounds_started_total{kind=\"calibrate\"} 1",
            "fedsoc_coordinator_rounds_completed_total{kind=\"train\"} 1",
            "fedsoc_coordinator_rounds_aborted_total{kind=\"calibrate\"} 1",
            "fedsoc_coordinator_stage_duration_seconds_count{stage=\"share-keys\"} 1",
            "fedsoc_coordinator_dropouts_total{stage=\"masked-input\",reason=\"task_failed\"} 1",
            "fedsoc_coordinator_round_received_bytes_total 10",
            "fedsoc_coordinator_round_sent_bytes_total 20",
            "fedsoc_coordinator_refused_connections_total{reason=\"not_on_roster\"} 1",
        ] {
            assert!(text.contains(&format!("\n{line}\n")), "{line}:\n{text}");
        }
        // The participant's own words stay in the audit log.
        assert!(!text.contains("soc-de"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn dropout_reasons_are_classed() {
        for (reason, class) in [
            ("missed the deadline of stage 2", "deadline"),
            ("missed the round deadline", "deadline"),
            ("disconnected at stage 3", "disconnected"),
            ("disconnected before its task was delivered", "disconnected"),
            ("disconnected", "disconnected"),
            ("training failed: out of memory", "task_failed"),
            ("stage 2 message refused: bad signature", "refused_message"),
            ("stage 2 message malformed: short", "refused_message"),
            ("update refused: wrong length", "refused_message"),
            (
                "update announces 3 values, the model has 4",
                "refused_message",
            ),
            ("dropped", "other"),
        ] {
            assert_eq!(dropout_reason(reason), class, "{reason}");
            assert!(DROPOUT_REASONS.contains(&class));
        }
    }
}
