//! Prometheus metrics of a running watch.
//!
//! A SOC runs `fedsoc watch` unattended next to its sensors; these metrics
//! are how it learns that the watch fell behind the log, that the sensor
//! writes lines the watch cannot read, or that a new model bundle was
//! refused. They are exposed in the OpenMetrics text format, encoded by
//! `prometheus-client`, and served by [`fedsoc_scrape`] (hyper on a thread
//! of its own, so the watch loop stays synchronous).

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

use fedsoc_scrape::Exposition;
pub use fedsoc_scrape::{MetricsServer, OPENMETRICS_CONTENT_TYPE};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// The counters and gauges of one watch. Every method takes `&self` and is
/// lock-free except [`WatchMetrics::set_model`], so the watch loop can share
/// it with the server through an `Arc`.
#[derive(Debug)]
pub struct WatchMetrics {
    registry: Registry,
    flows_read: Counter,
    alerts: Counter,
    malformed: Counter,
    ignored: Counter,
    lag_bytes: Gauge<u64, AtomicU64>,
    lag_seconds: Gauge<f64, AtomicU64>,
    model: Arc<CurrentModel>,
    bundles_loaded: Counter,
    bundles_refused: Counter,
}

impl WatchMetrics {
    /// `format` ("zeek" or "suricata") labels every series, so one
    /// Prometheus can scrape a Zeek watch and a Suricata watch apart.
    pub fn new(format: &str) -> Self {
        let mut registry = Registry::with_prefix_and_labels(
            "fedsoc_watch",
            std::iter::once((Cow::Borrowed("format"), Cow::Owned(format.to_string()))),
        );
        let metrics = WatchMetrics {
            registry: Registry::default(),
            flows_read: Counter::default(),
            alerts: Counter::default(),
            malformed: Counter::default(),
            ignored: Counter::default(),
            lag_bytes: Gauge::default(),
            lag_seconds: Gauge::default(),
            model: Arc::new(CurrentModel::default()),
            bundles_loaded: Counter::default(),
            bundles_refused: Counter::default(),
        };
        // The registry holds clones of the same atomics as the fields.
        registry.register(
            "flows_read",
            "Flows read from the sensor log",
            metrics.flows_read.clone(),
        );
        registry.register(
            "alerts",
            "Flows the model flagged as anomalous",
            metrics.alerts.clone(),
        );
        registry.register(
            "malformed_lines",
            "Lines of the sensor log that could not be parsed",
            metrics.malformed.clone(),
        );
        registry.register(
            "ignored_records",
            "Records that are not flows (EVE events other than flow), passed over",
            metrics.ignored.clone(),
        );
        registry.register_with_unit(
            "lag",
            "Bytes the sensor has written that the watch has not read yet",
            Unit::Bytes,
            metrics.lag_bytes.clone(),
        );
        registry.register_with_unit(
            "lag",
            "Age of the newest flow read, by the sensor's clock",
            Unit::Seconds,
            metrics.lag_seconds.clone(),
        );
        registry.register(
            "bundles_loaded",
            "Model bundles verified and put in use",
            metrics.bundles_loaded.clone(),
        );
        registry.register(
            "bundles_refused",
            "Model bundles refused (bad signature, digest or format); the previous model stays in use",
            metrics.bundles_refused.clone(),
        );
        registry.register_collector(Box::new(Arc::clone(&metrics.model)));
        WatchMetrics {
            registry,
            ..metrics
        }
    }

    pub fn flows_read(&self, n: u64) {
        self.flows_read.inc_by(n);
    }

    pub fn alerts(&self, n: u64) {
        self.alerts.inc_by(n);
    }

    pub fn malformed(&self, n: u64) {
        self.malformed.inc_by(n);
    }

    pub fn ignored(&self, n: u64) {
        self.ignored.inc_by(n);
    }

    /// How far behind the sensor the watch is: unread bytes of the log,
    /// and the age of the newest flow read.
    pub fn set_lag(&self, bytes: u64, seconds: f64) {
        self.lag_bytes.set(bytes);
        self.lag_seconds.set(seconds);
    }

    /// The model now in use: `fedsoc_watch_model_round`, and
    /// `fedsoc_watch_model_info` labelled with its federation and SHA-256.
    /// The previous model's series disappear, so a dashboard never shows
    /// two models as current. Neither metric exists before the first call.
    pub fn set_model(&self, federation: &str, round: u64, sha256: &str) {
        let mut current = self.model.0.lock().unwrap_or_else(PoisonError::into_inner);
        *current = Some(ModelLabels {
            federation: federation.to_string(),
            round,
            sha256: sha256.to_string(),
        });
    }

    pub fn bundle_refused(&self) {
        self.bundles_refused.inc();
    }

    pub fn bundle_loaded(&self) {
        self.bundles_loaded.inc();
    }

    /// The OpenMetrics text exposition, ending in `# EOF`.
    pub fn encode(&self) -> String {
        fedsoc_scrape::encode(&self.registry)
    }
}

#[derive(Clone, Debug)]
struct ModelLabels {
    federation: String,
    round: u64,
    sha256: String,
}

/// The model in use, written out at each scrape so only its series exist.
#[derive(Debug, Default)]
struct CurrentModel(Mutex<Option<ModelLabels>>);

impl Collector for CurrentModel {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let current = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(model) = current.as_ref() else {
            return Ok(());
        };
        let round = ConstGauge::new(model.round);
        let metric = encoder.encode_descriptor(
            "model_round",
            "Federation round of the model in use.",
            None,
            round.metric_type(),
        )?;
        round.encode(metric)?;
        let info = Info::new([
            ("federation", model.federation.as_str()),
            ("sha256", model.sha256.as_str()),
        ]);
        let metric = encoder.encode_descriptor(
            "model",
            "The model in use: its federation and the SHA-256 of its weights.",
            None,
            info.metric_type(),
        )?;
        info.encode(metric)
    }
}

/// Serves `GET /metrics` on `addr` until the returned server is dropped
/// (see [`fedsoc_scrape::serve`]).
pub fn serve(addr: SocketAddr, metrics: Arc<WatchMetrics>) -> std::io::Result<MetricsServer> {
    fedsoc_scrape::serve(addr, metrics)
}

impl Exposition for WatchMetrics {
    fn exposition(&self) -> String {
        self.encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, TcpStream};
    use std::time::Duration;

    /// One HTTP/1.1 exchange over a plain socket: (status line, headers in
    /// lower case, body).
    fn request(addr: SocketAddr, method: &str, path: &str) -> (String, Vec<String>, String) {
        let mut stream = TcpStream::connect(addr).unwrap();
        // A guard against a hung test, not a timing assertion.
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().to_string();
        let headers = lines.map(str::to_ascii_lowercase).collect();
        (status, headers, body.to_string())
    }

    /// The samples of an exposition, `name{labels}` → value, checking the
    /// text's shape on the way: every line is a comment, a sample, or the
    /// final `# EOF`.
    fn samples(text: &str) -> Vec<(String, String)> {
        assert!(text.ends_with("# EOF\n"), "no EOF marker:\n{text}");
        let mut out = Vec::new();
        for line in text.lines() {
            if line.starts_with("# ") {
                let word = line.split(' ').nth(1).unwrap();
                assert!(
                    ["HELP", "TYPE", "UNIT", "EOF"].contains(&word),
                    "unexpected comment: {line}"
                );
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            out.push((series.to_string(), value.to_string()));
        }
        out
    }

    fn value<'a>(samples: &'a [(String, String)], series: &str) -> Option<&'a str> {
        samples
            .iter()
            .find(|(s, _)| s == series)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn encode_names_every_metric_with_its_format_label() {
        let metrics = WatchMetrics::new("suricata");
        metrics.flows_read(10);
        metrics.flows_read(5);
        metrics.alerts(2);
        metrics.malformed(1);
        metrics.ignored(4);
        metrics.set_lag(8192, 1.5);
        metrics.bundle_loaded();
        metrics.bundle_refused();
        metrics.bundle_refused();
        let text = metrics.encode();
        let s = samples(&text);
        let l = r#"{format="suricata"}"#;
        for (name, expected) in [
            ("fedsoc_watch_flows_read_total", "15"),
            ("fedsoc_watch_alerts_total", "2"),
            ("fedsoc_watch_malformed_lines_total", "1"),
            ("fedsoc_watch_ignored_records_total", "4"),
            ("fedsoc_watch_lag_bytes", "8192"),
            ("fedsoc_watch_lag_seconds", "1.5"),
            ("fedsoc_watch_bundles_loaded_total", "1"),
            ("fedsoc_watch_bundles_refused_total", "2"),
        ] {
            assert_eq!(
                value(&s, &format!("{name}{l}")),
                Some(expected),
                "{name}:\n{text}"
            );
        }
        assert!(text.contains("# TYPE fedsoc_watch_flows_read counter\n"));
        assert!(text.contains("# TYPE fedsoc_watch_lag_seconds gauge\n"));
        assert!(text.contains("# UNIT fedsoc_watch_lag_seconds seconds\n"));
        // No model yet: no model series at all.
        assert!(!text.contains("fedsoc_watch_model"), "{text}");
    }

    #[test]
    fn only_the_current_model_has_series() {
        let metrics = WatchMetrics::new("zeek");
        metrics.set_model("eu-soc", 3, "aa11");
        metrics.set_model("eu-soc", 4, "bb22");
        let text = metrics.encode();
        let s = samples(&text);
        assert_eq!(
            value(&s, r#"fedsoc_watch_model_round{format="zeek"}"#),
            Some("4"),
            "{text}"
        );
        assert_eq!(
            value(
                &s,
                r#"fedsoc_watch_model_info{format="zeek",federation="eu-soc",sha256="bb22"}"#
            ),
            Some("1"),
            "{text}"
        );
        assert!(!text.contains("aa11"), "{text}");
        assert!(text.contains("# TYPE fedsoc_watch_model info\n"), "{text}");
        assert!(
            text.contains("# TYPE fedsoc_watch_model_round gauge\n"),
            "{text}"
        );
        assert_eq!(s.iter().filter(|(n, _)| n.contains("model")).count(), 2);
    }

    #[test]
    fn serves_metrics_over_http_and_stops_when_dropped() {
        let metrics = Arc::new(WatchMetrics::new("zeek"));
        let server = serve((Ipv4Addr::LOCALHOST, 0).into(), Arc::clone(&metrics)).unwrap();
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);

        metrics.flows_read(7);
        metrics.alerts(3);
        metrics.set_lag(100, 0.25);
        metrics.set_model("eu-soc", 9, "cafe");

        let (status, headers, body) = request(addr, "GET", "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(
            headers.contains(&format!("content-type: {OPENMETRICS_CONTENT_TYPE}")),
            "{headers:?}"
        );
        let s = samples(&body);
        assert_eq!(
            value(&s, r#"fedsoc_watch_flows_read_total{format="zeek"}"#),
            Some("7")
        );
        assert_eq!(
            value(&s, r#"fedsoc_watch_alerts_total{format="zeek"}"#),
            Some("3")
        );
        assert_eq!(
            value(&s, r#"fedsoc_watch_lag_bytes{format="zeek"}"#),
            Some("100")
        );
        assert_eq!(
            value(&s, r#"fedsoc_watch_lag_seconds{format="zeek"}"#),
            Some("0.25")
        );
        assert_eq!(
            value(&s, r#"fedsoc_watch_model_round{format="zeek"}"#),
            Some("9")
        );

        // Counters move between scrapes.
        metrics.flows_read(1);
        let (_, _, body) = request(addr, "GET", "/metrics?x=1");
        assert_eq!(
            value(
                &samples(&body),
                r#"fedsoc_watch_flows_read_total{format="zeek"}"#
            ),
            Some("8")
        );

        let (status, _, _) = request(addr, "GET", "/");
        assert_eq!(status, "HTTP/1.1 404 Not Found");
        let (status, headers, _) = request(addr, "POST", "/metrics");
        assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
        assert!(headers.contains(&"allow: get".to_string()), "{headers:?}");

        drop(server);
        assert!(
            TcpStream::connect(addr).is_err(),
            "the port is closed once the server is dropped"
        );
    }

    #[test]
    fn a_port_in_use_is_an_error_that_names_the_address() {
        let taken = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = taken.local_addr().unwrap();
        let err = serve(addr, Arc::new(WatchMetrics::new("zeek"))).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
