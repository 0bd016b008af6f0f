//! Prometheus metrics of a real federation (coordinator and participants
//! over mutual TLS on 127.0.0.1): scraped over HTTP before and after a
//! secure round, parsed with a real exposition parser, and held to what
//! they must never show. Also checks `examples/grafana-fedsoc.json`
//! against a real scrape.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use fedsoc_experiments::local::{LocalFederation, LocalFederationSpec};
use prometheus_parse::{LineInfo, Scrape, Value};

fn spec(dir: &std::path::Path) -> LocalFederationSpec {
    let mut spec = LocalFederationSpec::new(dir, 3);
    spec.rows = 600;
    spec.hidden = vec![16, 8];
    spec.batch_size = 32;
    spec.stage_timeout_s = 10;
    spec.metrics = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    spec
}

/// One HTTP/1.1 GET: (status line, headers in lower case, body).
async fn get(addr: SocketAddr, path: &str) -> (String, Vec<String>, String) {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        // A guard against a hung test, not a timing assertion.
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().to_string();
        let headers = lines.map(str::to_ascii_lowercase).collect();
        (status, headers, body.to_string())
    })
    .await
    .unwrap()
}

/// A parsed scrape: the text, and every series `name{labels}` → value
/// (histograms as their `_bucket` series, one per `le`).
struct Scraped {
    text: String,
    series: BTreeMap<String, f64>,
    /// Metric names of the samples (histograms also as `NAME_bucket`).
    names: BTreeSet<String>,
    /// Every (label name, label value) of every sample.
    labels: BTreeSet<(String, String)>,
}

impl Scraped {
    fn value(&self, series: &str) -> f64 {
        *self
            .series
            .get(series)
            .unwrap_or_else(|| panic!("no series {series} in\n{}", self.text))
    }
}

/// Scrapes `/metrics` and parses it with `prometheus-parse`. That parser
/// skips lines it cannot read, so every line is also required to be a
/// comment or a sample it reads, and the text to end in `# EOF`.
async fn scrape(addr: SocketAddr) -> Scraped {
    let (status, headers, text) = get(addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers.contains(&format!("content-type: {}", fedsoc_scrape_content_type())),
        "{headers:?}"
    );
    assert!(text.ends_with("# EOF\n"), "no EOF marker:\n{text}");
    for line in text.lines() {
        if line.starts_with('#') {
            let word = line.split(' ').nth(1).unwrap_or_default();
            assert!(
                ["HELP", "TYPE", "UNIT", "EOF"].contains(&word),
                "unexpected comment: {line}"
            );
            continue;
        }
        assert!(
            matches!(LineInfo::parse(line), LineInfo::Sample { .. }),
            "not a sample line: {line}"
        );
    }
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let mut series = BTreeMap::new();
    let mut names = BTreeSet::new();
    let mut labels = BTreeSet::new();
    for sample in &parsed.samples {
        let mut pairs: Vec<(String, String)> = sample
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pairs.sort();
        labels.extend(pairs.iter().cloned());
        let key = |name: &str, pairs: &[(String, String)]| {
            if pairs.is_empty() {
                name.to_string()
            } else {
                let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{name}{{{}}}", inner.join(","))
            }
        };
        match &sample.value {
            Value::Histogram(buckets) => {
                let name = format!("{}_bucket", sample.metric);
                for b in buckets {
                    let mut with_le = pairs.clone();
                    let le = if b.less_than.is_infinite() {
                        "+Inf".to_string()
                    } else {
                        b.less_than.to_string()
                    };
                    labels.insert(("le".into(), le.clone()));
                    with_le.push(("le".into(), le));
                    with_le.sort();
                    series.insert(key(&name, &with_le), b.count);
                }
                names.insert(name);
            }
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => {
                series.insert(key(&sample.metric, &pairs), *v);
                names.insert(sample.metric.clone());
            }
            Value::Summary(_) => panic!("no summaries are exposed: {}", sample.metric),
        }
    }
    assert!(!series.is_empty(), "nothing parsed from\n{text}");
    Scraped {
        text,
        series,
        names,
        labels,
    }
}

fn fedsoc_scrape_content_type() -> &'static str {
    "application/openmetrics-text; version=1.0.0; charset=utf-8"
}

/// Scrapes `addr` until `done` holds for the scrape, at most a minute.
async fn scrape_until(addr: SocketAddr, what: &str, done: impl Fn(&Scraped) -> bool) -> Scraped {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let scraped = scrape(addr).await;
        if done(&scraped) {
            return scraped;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never happened; last scrape:\n{}",
            scraped.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A federation with metrics on, and the addresses of the coordinator's
/// and the first participant's endpoints.
async fn start(dir: &std::path::Path) -> (LocalFederation, SocketAddr, SocketAddr, String) {
    let federation = LocalFederation::start(&spec(dir)).await.unwrap();
    let id = federation.participant_ids()[0].clone();
    let (coordinator, participant) = federation.metrics_addrs(&id);
    (
        federation,
        coordinator.expect("the coordinator serves metrics"),
        participant.expect("the participant serves metrics"),
        id,
    )
}

/// Runs one secure training round and waits for the first participant to
/// verify the checkpoint that closes it; returns both scrapes after it.
async fn after_a_round(
    federation: &LocalFederation,
    coordinator: SocketAddr,
    participant: SocketAddr,
) -> (Scraped, Scraped) {
    let size = "fedsoc_participant_last_checkpoint_size";
    let before = scrape(participant).await.value(size);
    let report = federation.coordinator.run_next_round().await.unwrap();
    assert_eq!(report.included.len(), 3, "{:?}", report.dropped);
    let p = scrape_until(participant, "the round's checkpoint verified", |s| {
        s.value(size) > before
            && s.value("fedsoc_participant_last_checkpoint_verified_timestamp_seconds") > 0.0
    })
    .await;
    (scrape(coordinator).await, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secure_round_moves_coordinator_and_participant_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (federation, coordinator, participant, _) = start(dir.path()).await;

    // Everyone joined before start returned.
    let before = scrape_until(coordinator, "3 members online", |s| {
        s.value("fedsoc_coordinator_members_online") == 3.0
    })
    .await;
    let p_before = scrape(participant).await;
    let completed = "fedsoc_coordinator_rounds_completed_total{kind=train}";
    let started = "fedsoc_coordinator_rounds_started_total{kind=train}";
    assert_eq!(before.value(completed), 0.0);
    assert_eq!(before.value(started), 0.0);
    assert_eq!(
        p_before.value("fedsoc_participant_rounds_joined_total{kind=train}"),
        0.0
    );
    assert!(before.value("fedsoc_coordinator_crl_number") >= 1.0);
    let entries_before = before.value("fedsoc_coordinator_audit_log_entries");
    assert!(entries_before >= 1.0);
    assert!(before.value("fedsoc_coordinator_last_checkpoint_age_seconds") >= 0.0);

    let (after, p_after) = after_a_round(&federation, coordinator, participant).await;

    // Rounds, by kind.
    assert_eq!(after.value(completed), 1.0);
    assert_eq!(after.value(started), 1.0);
    assert_eq!(
        after.value("fedsoc_coordinator_rounds_aborted_total{kind=train}"),
        0.0
    );
    assert_eq!(
        after.value("fedsoc_coordinator_rounds_completed_total{kind=calibrate}"),
        0.0
    );
    // Traffic both ways.
    for bytes in [
        "fedsoc_coordinator_round_sent_bytes_total",
        "fedsoc_coordinator_round_received_bytes_total",
    ] {
        assert!(after.value(bytes) > before.value(bytes), "{bytes}");
    }
    // Every stage of a secure round was timed once.
    for stage in [
        "training",
        "graph-seed",
        "share-keys",
        "masked-input",
        "consistency",
        "unmask",
        "model-update",
    ] {
        let count = format!("fedsoc_coordinator_stage_duration_seconds_count{{stage={stage}}}");
        assert_eq!(before.value(&count), 0.0, "{stage}");
        assert_eq!(after.value(&count), 1.0, "{stage}");
        let inf =
            format!("fedsoc_coordinator_stage_duration_seconds_bucket{{le=+Inf,stage={stage}}}");
        assert_eq!(after.value(&inf), 1.0, "{stage}");
    }
    // Nobody dropped out, nobody was refused.
    let dropouts: f64 = after
        .series
        .iter()
        .filter(|(k, _)| k.starts_with("fedsoc_coordinator_dropouts_total"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(dropouts, 0.0);
    // The log grew and was checkpointed.
    assert!(after.value("fedsoc_coordinator_audit_log_entries") > entries_before);
    assert_eq!(after.value("fedsoc_coordinator_members_online"), 3.0);

    // The participant's side of the same round.
    assert_eq!(
        p_after.value("fedsoc_participant_rounds_joined_total{kind=train}"),
        1.0
    );
    assert_eq!(
        p_after.value("fedsoc_participant_training_duration_seconds_count"),
        1.0
    );
    assert!(p_after.value("fedsoc_participant_training_rows_total") > 0.0);
    assert_eq!(p_after.value("fedsoc_participant_reconnects_total"), 0.0);
    assert!(
        p_after.value("fedsoc_participant_last_checkpoint_size")
            > p_before.value("fedsoc_participant_last_checkpoint_size")
    );
    assert!(
        p_after.value("fedsoc_participant_last_checkpoint_size")
            <= after.value("fedsoc_coordinator_audit_log_entries")
    );

    // `/metrics` only.
    for path in ["/", "/metrics/x", "/status"] {
        for addr in [coordinator, participant] {
            let (status, _, _) = get(addr, path).await;
            assert_eq!(status, "HTTP/1.1 404 Not Found", "{addr}{path}");
        }
    }
    federation.shutdown().await;
}

/// What a coordinator's label may say: fixed words only.
fn allowed_coordinator_label(name: &str, value: &str) -> bool {
    let kinds = ["train", "moments", "spread", "calibrate"];
    match name {
        "kind" => kinds.contains(&value),
        "stage" => fedsoc_coordinator::live::stage::ALL.contains(&value),
        "reason" => {
            fedsoc_coordinator::metrics::DROPOUT_REASONS.contains(&value)
                || fedsoc_coordinator::metrics::REFUSAL_REASONS.contains(&value)
        }
        "le" => true,
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_metric_exposes_an_update_a_share_a_key_a_sample_count_or_a_participant_id() {
    let dir = tempfile::tempdir().unwrap();
    let (federation, coordinator, participant, _) = start(dir.path()).await;
    let (c, p) = after_a_round(&federation, coordinator, participant).await;

    // No metric is about updates, shares, keys, masks or sample counts.
    for scraped in [&c, &p] {
        for name in &scraped.names {
            for word in [
                "update", "share", "key", "mask", "delta", "weight", "sample", "secret", "seed",
            ] {
                assert!(!name.contains(word), "{name} names {word:?}");
            }
        }
    }
    // The coordinator's labels are fixed words: no participant id, no
    // free text, nothing per participant.
    for (name, value) in &c.labels {
        assert!(
            allowed_coordinator_label(name, value),
            "coordinator label {name}={value:?}"
        );
    }
    for id in federation.participant_ids() {
        assert!(!c.text.contains(&id), "the coordinator's metrics name {id}");
    }
    // The participant's labels too: its own metrics name nobody.
    for (name, _) in &p.labels {
        assert!(["kind", "reason", "le"].contains(&name.as_str()), "{name}");
    }
    for id in federation.participant_ids() {
        assert!(!p.text.contains(&id), "the participant's metrics name {id}");
    }
    // No coordinator series carries any participant's sample count (each
    // trained one epoch, so its own rows counter is its sample count), nor
    // their total.
    let mut counts = Vec::new();
    for id in federation.participant_ids() {
        let (_, addr) = federation.metrics_addrs(&id);
        let own = scrape_until(addr.unwrap(), "training recorded", |s| {
            s.value("fedsoc_participant_training_rows_total") > 0.0
        })
        .await;
        counts.push(own.value("fedsoc_participant_training_rows_total"));
    }
    counts.push(counts.iter().sum());
    for (series, value) in &c.series {
        assert!(
            !counts.contains(value),
            "{series} = {value} is a sample count ({counts:?})"
        );
    }
    federation.shutdown().await;
}

/// Metric names a PromQL expression refers to.
fn referenced(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("fedsoc_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

fn exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "query", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_queries_only_metrics_a_real_scrape_exposes() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/grafana-fedsoc.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert!(dashboard["title"].is_string());
    assert!(
        dashboard["panels"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "no panels"
    );
    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    let mut names: BTreeSet<String> = queries.iter().flat_map(|q| referenced(q)).collect();
    // Template variables query label values of a metric too.
    assert!(!names.is_empty());

    let dir = tempfile::tempdir().unwrap();
    let (federation, coordinator, participant, _) = start(dir.path()).await;
    let (c, p) = after_a_round(&federation, coordinator, participant).await;
    let exposed: BTreeSet<String> = c.names.union(&p.names).cloned().collect();
    names.retain(|n| !exposed.contains(n));
    assert!(
        names.is_empty(),
        "the dashboard queries metrics no scrape has: {names:?}\nexposed: {exposed:?}"
    );
    // What the dashboard is for is all there.
    for needed in [
        "fedsoc_coordinator_rounds_completed_total",
        "fedsoc_coordinator_stage_duration_seconds_bucket",
        "fedsoc_coordinator_dropouts_total",
        "fedsoc_coordinator_members_online",
        "fedsoc_coordinator_round_sent_bytes_total",
        "fedsoc_coordinator_last_checkpoint_age_seconds",
        "fedsoc_participant_training_duration_seconds_bucket",
    ] {
        assert!(
            queries.iter().any(|q| q.contains(needed)),
            "no panel queries {needed}"
        );
    }
    federation.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_address_in_use_stops_the_coordinator_before_it_writes_anything() {
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(dir.path());
    spec.metrics = Some(addr);
    let err = match LocalFederation::start(&spec).await {
        Ok(_) => panic!("started with its metrics address taken"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("[metrics] listen"), "{err}");
    assert!(err.contains(&addr.to_string()), "{err}");
    assert!(
        !dir.path().join("audit").exists(),
        "the audit log was opened for a coordinator that did not start"
    );
}
