//! ECS alerts as NDJSON lines.
//!
//! One scored flow becomes one JSON object on one line, in the Elastic
//! Common Schema layout (nested objects, not dotted keys), so Filebeat,
//! Vector or Logstash ship it without a pipeline of their own. Fields that
//! are unknown are left out rather than written as `null`, which ECS
//! mappings would reject or index as a value.
//!
//! [`write_line`] runs for every flagged flow, and for every flow with
//! `--all`, so it serialises borrowed fields straight into the caller's
//! reused buffer: no JSON tree and no per-field allocation.

use std::fmt;
use std::net::IpAddr;

use serde::{Serialize, Serializer};
use time::OffsetDateTime;

use fedsoc_datasets::read::live::{LiveFlow, LiveFormat};

use crate::community_id;

/// What a model's score measures, which decides how it maps to a risk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScoreKind {
    /// An autoencoder's reconstruction error: 0 or more, anomalous above
    /// the threshold.
    ReconstructionMse,
    /// A classifier's logit for "attack": any real number, an attack above
    /// the threshold.
    Logit,
}

impl ScoreKind {
    /// The model family, as `fedsoc.model.kind` names it.
    pub fn model_kind(self) -> &'static str {
        match self {
            ScoreKind::ReconstructionMse => "autoencoder",
            ScoreKind::Logit => "classifier",
        }
    }

    /// The score's name, as `fedsoc.model.score` names it.
    pub fn score_name(self) -> &'static str {
        match self {
            ScoreKind::ReconstructionMse => "reconstruction_mse",
            ScoreKind::Logit => "logit",
        }
    }
}

/// The model that scored the flows, stamped on every line so an analyst
/// can tell which federation round raised an alert and check its bundle.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelStamp {
    pub federation: String,
    pub round: u64,
    pub model_sha256: String,
    pub encoder_sha256: String,
    pub kind: ScoreKind,
    pub threshold: f64,
    /// The bundle folder the model was read from.
    pub bundle: String,
    /// Whether the bundle's signatures were verified.
    pub verified: bool,
}

/// Where in the sensor's log a flow's line was, for `log.file.path` and
/// `log.offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineOrigin<'a> {
    /// The log file; `None` when reading standard input.
    pub path: Option<&'a str>,
    /// Byte offset of the line's start.
    pub offset: u64,
}

/// The ECS `event.risk_score`: 0 to 100, exactly 50 at the threshold and
/// rising with the score, `100 * sigmoid(excess)`.
///
/// The excess is `ln(score / threshold)` for a reconstruction error
/// (errors spread over orders of magnitude, so the ratio is what matters)
/// and `score - threshold` for a logit. A reconstruction error at or below
/// 0, or a threshold at or below 0, has no ratio: the risk is then 100
/// above the threshold, 50 at it and 0 below it.
///
/// A NaN score (or threshold) gives 100: a model that cannot score a flow
/// was broken or fed something it was never trained on, and an analyst
/// should look; the caller flags such flows. The result is always finite.
pub fn risk_score(kind: ScoreKind, score: f64, threshold: f64) -> f64 {
    let excess = match kind {
        ScoreKind::ReconstructionMse => {
            if score > 0.0 && threshold > 0.0 {
                // inf/inf is NaN, caught below; finite ratios and 0 or
                // inf ratios give finite or infinite logs, both fine.
                (score / threshold).ln()
            } else {
                match score.partial_cmp(&threshold) {
                    Some(std::cmp::Ordering::Greater) => f64::INFINITY,
                    Some(std::cmp::Ordering::Equal) => 0.0,
                    Some(std::cmp::Ordering::Less) => f64::NEG_INFINITY,
                    None => f64::NAN,
                }
            }
        }
        ScoreKind::Logit => score - threshold,
    };
    if excess.is_nan() {
        return 100.0;
    }
    // exp(-inf) = 0 and exp(inf) = inf keep this within 0..=100.
    100.0 / (1.0 + (-excess).exp())
}

/// Appends one scored flow to `out` as one NDJSON line ending in `'\n'`.
///
/// `out` is not cleared, so several lines can be batched into one write;
/// the caller clears it after writing. `flagged` decides `event.kind`
/// ("alert" or "event"); `created_nanos` is now, in nanoseconds since the
/// Unix epoch, and stands in for the flow's time when the sensor gave none.
#[allow(clippy::too_many_arguments)] // one call site, every argument a distinct input
pub fn write_line(
    out: &mut Vec<u8>,
    flow: &LiveFlow,
    format: LiveFormat,
    score: f32,
    flagged: bool,
    model: &ModelStamp,
    origin: &LineOrigin<'_>,
    created_nanos: i128,
) {
    let key = &flow.key;
    let record = &flow.record;
    let created = Rfc3339Micros::new(created_nanos);
    let timestamp = key.ts_nanos.and_then(Rfc3339Micros::new).or(created);

    let transport = if key.transport.is_empty() {
        record.protocol.as_str()
    } else {
        key.transport.as_str()
    };
    let icmp = is_icmp(transport);
    let port = |p: Option<u16>| if icmp { None } else { p };

    let id = key.id.as_deref().filter(|id| !id.is_empty());
    let (zeek, suricata) = match format {
        LiveFormat::Zeek => (id.map(|session_id| ZeekFields { session_id }), None),
        LiveFormat::Suricata => (
            None,
            id.map(|id| SuricataFields {
                eve: Eve {
                    flow_id: FlowId::new(id),
                },
            }),
        ),
    };

    let service = record.service.as_str();
    let line = Line {
        timestamp,
        event: Event {
            kind: if flagged { "alert" } else { "event" },
            module: "fedsoc",
            dataset: match format {
                LiveFormat::Zeek => "fedsoc.zeek_conn",
                LiveFormat::Suricata => "fedsoc.suricata_flow",
            },
            category: ["network"],
            kind_type: ["connection"],
            risk_score: risk_score(model.kind, f64::from(score), model.threshold),
            created,
            duration: count(record.duration_s * 1e9),
        },
        source: Endpoint {
            ip: key.src_ip,
            port: port(key.src_port),
            bytes: count(record.bytes_out),
            packets: count(record.packets_out),
        },
        destination: Endpoint {
            ip: key.dst_ip,
            port: port(key.dst_port),
            bytes: count(record.bytes_in),
            packets: count(record.packets_in),
        },
        network: Network {
            transport: Some(transport).filter(|t| !t.is_empty()),
            protocol: Some(service).filter(|s| !s.is_empty() && *s != "other"),
            community_id: community_id::of_flow(key),
        },
        zeek,
        suricata,
        rule: Rule {
            name: Prefixed("fedsoc anomaly model of federation ", &model.federation),
            version: RuleVersion {
                round: model.round,
                model_sha256: &model.model_sha256,
            },
            ruleset: "fedsoc",
            id: &model.model_sha256,
        },
        fedsoc: Fedsoc {
            score: Some(score).filter(|s| s.is_finite()),
            threshold: Some(model.threshold).filter(|t| t.is_finite()),
            flagged,
            model: Model {
                federation: &model.federation,
                round: model.round,
                sha256: &model.model_sha256,
                encoder_sha256: &model.encoder_sha256,
                kind: model.kind.model_kind(),
                score: model.kind.score_name(),
            },
            bundle: Bundle {
                path: &model.bundle,
                verified: model.verified,
            },
        },
        log: Log {
            file: origin.path.map(|path| LogFile { path }),
            offset: origin.offset,
        },
    };

    let start = out.len();
    // Writing into a Vec cannot fail, and every field serialises without
    // error (non-finite floats are filtered out above), so this is a
    // guard only: a half-written line is never left behind.
    if let Err(e) = serde_json::to_writer(&mut *out, &line) {
        out.truncate(start);
        tracing::error!("could not serialise the alert of a flow: {e}");
        return;
    }
    out.push(b'\n');
}

fn is_icmp(transport: &str) -> bool {
    ["icmp", "ipv6-icmp", "icmpv6", "icmp6"]
        .iter()
        .any(|t| transport.eq_ignore_ascii_case(t))
}

/// A count or nanosecond duration as an integer; `None` when the value is
/// not a finite non-negative number.
fn count(v: f64) -> Option<u64> {
    // `as` saturates at u64::MAX.
    (v.is_finite() && v >= 0.0).then(|| v.round() as u64)
}

/// RFC 3339 UTC with microseconds, `2024-05-01T12:00:00.123456Z`, written
/// straight into the output.
#[derive(Clone, Copy)]
struct Rfc3339Micros(OffsetDateTime);

impl Rfc3339Micros {
    /// `None` outside the years RFC 3339 can write (0000 to 9999).
    fn new(nanos: i128) -> Option<Self> {
        let t = OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
        (0..=9999).contains(&t.year()).then_some(Rfc3339Micros(t))
    }
}

impl fmt::Display for Rfc3339Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.microsecond()
        )
    }
}

impl Serialize for Rfc3339Micros {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A string made of a fixed prefix and a value, serialised without
/// building it first.
struct Prefixed<T>(&'static str, T);

impl<T: fmt::Display> fmt::Display for Prefixed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)?;
        self.1.fmt(f)
    }
}

impl<T: fmt::Display> Serialize for Prefixed<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(rename = "@timestamp", skip_serializing_if = "Option::is_none")]
    timestamp: Option<Rfc3339Micros>,
    event: Event,
    source: Endpoint,
    destination: Endpoint,
    network: Network<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    zeek: Option<ZeekFields<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    suricata: Option<SuricataFields<'a>>,
    rule: Rule<'a>,
    fedsoc: Fedsoc<'a>,
    log: Log<'a>,
}

#[derive(Serialize)]
struct Event {
    kind: &'static str,
    module: &'static str,
    dataset: &'static str,
    category: [&'static str; 1],
    #[serde(rename = "type")]
    kind_type: [&'static str; 1],
    risk_score: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<Rfc3339Micros>,
    /// Nanoseconds, as ECS defines it.
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<u64>,
}

#[derive(Serialize)]
struct Endpoint {
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    packets: Option<u64>,
}

#[derive(Serialize)]
struct Network<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    transport: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    community_id: Option<String>,
}

#[derive(Serialize)]
struct ZeekFields<'a> {
    session_id: &'a str,
}

#[derive(Serialize)]
struct SuricataFields<'a> {
    eve: Eve<'a>,
}

#[derive(Serialize)]
struct Eve<'a> {
    flow_id: FlowId<'a>,
}

/// EVE's `flow_id` is a number; the Filebeat Suricata module indexes it as
/// one, so it stays one unless it is not a decimal `u64`.
#[derive(Serialize)]
#[serde(untagged)]
enum FlowId<'a> {
    Number(u64),
    Text(&'a str),
}

impl<'a> FlowId<'a> {
    fn new(id: &'a str) -> Self {
        match id.bytes().all(|b| b.is_ascii_digit()) {
            true => id.parse().map_or(FlowId::Text(id), FlowId::Number),
            false => FlowId::Text(id),
        }
    }
}

#[derive(Serialize)]
struct Rule<'a> {
    name: Prefixed<&'a str>,
    version: RuleVersion<'a>,
    ruleset: &'static str,
    id: &'a str,
}

/// `rule.version`: the round and the model's hash (its first 12 hex
/// digits; `rule.id` holds all of it), so a SIEM rule table tells models
/// apart at a glance.
struct RuleVersion<'a> {
    round: u64,
    model_sha256: &'a str,
}

impl fmt::Display for RuleVersion<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = self.model_sha256.get(..12).unwrap_or(self.model_sha256);
        write!(f, "round {}, model {short}", self.round)
    }
}

impl Serialize for RuleVersion<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Serialize)]
struct Fedsoc<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threshold: Option<f64>,
    flagged: bool,
    model: Model<'a>,
    bundle: Bundle<'a>,
}

#[derive(Serialize)]
struct Model<'a> {
    federation: &'a str,
    round: u64,
    sha256: &'a str,
    encoder_sha256: &'a str,
    kind: &'static str,
    score: &'static str,
}

#[derive(Serialize)]
struct Bundle<'a> {
    path: &'a str,
    verified: bool,
}

#[derive(Serialize)]
struct Log<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<LogFile<'a>>,
    offset: u64,
}

#[derive(Serialize)]
struct LogFile<'a> {
    path: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedsoc_datasets::read::live::FlowKey;
    use fedsoc_datasets::record::FlowRecord;
    use serde_json::{Value, json};

    fn stamp(kind: ScoreKind, threshold: f64) -> ModelStamp {
        ModelStamp {
            federation: "eu-soc".into(),
            round: 12,
            model_sha256: "ab".repeat(32),
            encoder_sha256: "cd".repeat(32),
            kind,
            threshold,
            bundle: "/var/lib/fedsoc/bundles/round-12".into(),
            verified: true,
        }
    }

    fn record(protocol: &str, service: &str) -> FlowRecord {
        FlowRecord {
            duration_s: 1.5,
            bytes_out: 300.0,
            bytes_in: 4000.0,
            packets_out: 5.0,
            packets_in: 7.0,
            protocol: protocol.into(),
            service: service.into(),
            conn_state: "SF".into(),
            dst_port: 80,
            label: None,
        }
    }

    fn line(
        flow: &LiveFlow,
        format: LiveFormat,
        score: f32,
        flagged: bool,
        model: &ModelStamp,
        origin: &LineOrigin<'_>,
        created: i128,
    ) -> Value {
        let mut out = Vec::new();
        write_line(
            &mut out, flow, format, score, flagged, model, origin, created,
        );
        assert_eq!(out.last(), Some(&b'\n'), "one line ends in a newline");
        assert_eq!(
            out.iter().filter(|&&b| b == b'\n').count(),
            1,
            "exactly one line"
        );
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn zeek_tcp_flow_round_trips_field_by_field() {
        let flow = LiveFlow {
            record: record("tcp", "http"),
            key: FlowKey {
                id: Some("CHhAvVGS1DHFjwGM9".into()),
                // 2024-05-01T12:00:00.123456789Z
                ts_nanos: Some(1_714_564_800_123_456_789),
                src_ip: Some("128.232.110.120".parse().unwrap()),
                dst_ip: Some("66.35.250.204".parse().unwrap()),
                src_port: Some(34855),
                dst_port: Some(80),
                transport: "tcp".into(),
                icmp_type: None,
                icmp_code: None,
            },
        };
        let model = stamp(ScoreKind::ReconstructionMse, 0.5);
        let origin = LineOrigin {
            path: Some("/opt/zeek/logs/current/conn.log"),
            offset: 4096,
        };
        // 2024-05-01T12:00:01Z
        let created = 1_714_564_801_000_000_000;
        let v = line(&flow, LiveFormat::Zeek, 1.0, true, &model, &origin, created);

        assert_eq!(v["@timestamp"], "2024-05-01T12:00:00.123456Z");
        let event = &v["event"];
        assert_eq!(event["kind"], "alert");
        assert_eq!(event["module"], "fedsoc");
        assert_eq!(event["dataset"], "fedsoc.zeek_conn");
        assert_eq!(event["category"], json!(["network"]));
        assert_eq!(event["type"], json!(["connection"]));
        let risk = event["risk_score"].as_f64().unwrap();
        assert!(
            (risk - 100.0 * 2.0 / 3.0).abs() < 1e-9,
            "ln 2 above: {risk}"
        );
        assert_eq!(event["created"], "2024-05-01T12:00:01.000000Z");
        assert_eq!(event["duration"], 1_500_000_000u64);

        assert_eq!(
            v["source"],
            json!({"ip": "128.232.110.120", "port": 34855, "bytes": 300, "packets": 5})
        );
        assert_eq!(
            v["destination"],
            json!({"ip": "66.35.250.204", "port": 80, "bytes": 4000, "packets": 7})
        );
        // The spec's baseline value for this flow (community_id tests).
        assert_eq!(
            v["network"],
            json!({
                "transport": "tcp",
                "protocol": "http",
                "community_id": "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            })
        );
        assert_eq!(v["zeek"], json!({"session_id": "CHhAvVGS1DHFjwGM9"}));
        assert!(v.get("suricata").is_none());

        assert_eq!(
            v["rule"],
            json!({
                "name": "fedsoc anomaly model of federation eu-soc",
                "version": "round 12, model abababababab",
                "ruleset": "fedsoc",
                "id": "ab".repeat(32),
            })
        );
        assert_eq!(
            v["fedsoc"],
            json!({
                "score": 1.0,
                "threshold": 0.5,
                "flagged": true,
                "model": {
                    "federation": "eu-soc",
                    "round": 12,
                    "sha256": "ab".repeat(32),
                    "encoder_sha256": "cd".repeat(32),
                    "kind": "autoencoder",
                    "score": "reconstruction_mse",
                },
                "bundle": {"path": "/var/lib/fedsoc/bundles/round-12", "verified": true},
            })
        );
        assert_eq!(
            v["log"],
            json!({"file": {"path": "/opt/zeek/logs/current/conn.log"}, "offset": 4096})
        );
        let top: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(top.len(), 9, "no other top-level field: {top:?}");
    }

    #[test]
    fn suricata_icmp_flow_has_no_ports_and_a_numeric_flow_id() {
        let flow = LiveFlow {
            record: record("icmp", "other"),
            key: FlowKey {
                id: Some("1712345678901234".into()),
                ts_nanos: None,
                src_ip: Some("1.2.3.4".parse().unwrap()),
                dst_ip: Some("5.6.7.8".parse().unwrap()),
                src_port: None,
                dst_port: None,
                transport: "icmp".into(),
                icmp_type: Some(8),
                icmp_code: Some(0),
            },
        };
        let model = stamp(ScoreKind::Logit, 0.0);
        let origin = LineOrigin {
            path: None,
            offset: 0,
        };
        let v = line(
            &flow,
            LiveFormat::Suricata,
            -2.0,
            false,
            &model,
            &origin,
            1_714_564_801_000_000_000,
        );

        // No flow time: the creation time stands in.
        assert_eq!(v["@timestamp"], "2024-05-01T12:00:01.000000Z");
        assert_eq!(v["event"]["kind"], "event");
        assert_eq!(v["event"]["dataset"], "fedsoc.suricata_flow");
        assert_eq!(
            v["source"],
            json!({"ip": "1.2.3.4", "bytes": 300, "packets": 5})
        );
        assert_eq!(
            v["destination"],
            json!({"ip": "5.6.7.8", "bytes": 4000, "packets": 7})
        );
        // "other" is no application protocol; the echo request's ID is the
        // spec's baseline value.
        assert_eq!(
            v["network"],
            json!({"transport": "icmp", "community_id": "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="})
        );
        assert_eq!(
            v["suricata"],
            json!({"eve": {"flow_id": 1_712_345_678_901_234u64}})
        );
        assert!(v.get("zeek").is_none());
        assert_eq!(v["fedsoc"]["model"]["kind"], "classifier");
        assert_eq!(v["fedsoc"]["model"]["score"], "logit");
        assert_eq!(v["fedsoc"]["flagged"], false);
        assert_eq!(v["log"], json!({"offset": 0}));
        let risk = v["event"]["risk_score"].as_f64().unwrap();
        assert!(risk > 0.0 && risk < 50.0, "{risk}");
    }

    #[test]
    fn unknown_fields_are_left_out_not_null() {
        let mut rec = record("", "");
        rec.duration_s = f64::NAN;
        rec.bytes_in = -1.0;
        let flow = LiveFlow {
            record: rec,
            key: FlowKey {
                id: Some("not-a-number".into()),
                ..FlowKey::default()
            },
        };
        let model = stamp(ScoreKind::ReconstructionMse, f64::NAN);
        let v = line(
            &flow,
            LiveFormat::Suricata,
            f32::NAN,
            true,
            &model,
            &LineOrigin {
                path: None,
                offset: 7,
            },
            i128::MAX,
        );
        let text = v.to_string();
        assert!(!text.contains("null"), "{text}");
        assert!(v.get("@timestamp").is_none());
        assert!(v["event"].get("created").is_none());
        assert!(v["event"].get("duration").is_none());
        assert!(v["destination"].get("bytes").is_none());
        assert_eq!(v["network"], json!({}));
        assert!(v["fedsoc"].get("score").is_none());
        assert!(v["fedsoc"].get("threshold").is_none());
        assert_eq!(v["event"]["risk_score"], 100.0);
        assert_eq!(v["suricata"]["eve"]["flow_id"], "not-a-number");
    }

    #[test]
    fn lines_append_to_the_buffer() {
        let flow = LiveFlow {
            record: record("udp", "dns"),
            key: FlowKey::default(),
        };
        let model = stamp(ScoreKind::Logit, 1.0);
        let origin = LineOrigin {
            path: None,
            offset: 0,
        };
        let mut out = Vec::new();
        for _ in 0..3 {
            write_line(
                &mut out,
                &flow,
                LiveFormat::Zeek,
                0.0,
                false,
                &model,
                &origin,
                0,
            );
        }
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(text.lines().count(), 3);
        for l in text.lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["@timestamp"], "1970-01-01T00:00:00.000000Z");
        }
    }

    #[test]
    fn risk_is_50_at_the_threshold_and_rises_with_the_score() {
        for (kind, threshold) in [
            (ScoreKind::ReconstructionMse, 0.02),
            (ScoreKind::Logit, 1.5),
            (ScoreKind::Logit, -3.0),
        ] {
            assert_eq!(risk_score(kind, threshold, threshold), 50.0, "{kind:?}");
            let (above, below) = match kind {
                ScoreKind::ReconstructionMse => (threshold * 4.0, threshold / 4.0),
                ScoreKind::Logit => (threshold + 1.0, threshold - 1.0),
            };
            assert!(risk_score(kind, above, threshold) > 50.0, "{kind:?}");
            assert!(risk_score(kind, below, threshold) < 50.0, "{kind:?}");
        }
        assert!(
            (risk_score(ScoreKind::Logit, 1.0, 0.0) - 100.0 / (1.0 + (-1f64).exp())).abs() < 1e-12
        );
        assert!(
            (risk_score(ScoreKind::ReconstructionMse, 0.2, 0.1) - 100.0 * 2.0 / 3.0).abs() < 1e-9
        );

        for kind in [ScoreKind::ReconstructionMse, ScoreKind::Logit] {
            let mut last = -1.0;
            for i in -200..=200 {
                let score = match kind {
                    ScoreKind::ReconstructionMse => 0.05 * 1.1f64.powi(i),
                    ScoreKind::Logit => f64::from(i) * 0.1,
                };
                let r = risk_score(kind, score, 0.05);
                assert!((0.0..=100.0).contains(&r), "{kind:?} {score}: {r}");
                assert!(r >= last, "{kind:?} not monotone at {score}: {r} < {last}");
                last = r;
            }
        }
    }

    #[test]
    fn risk_is_finite_for_any_input() {
        let specials = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            -1.0,
            1e-300,
            1e300,
            f64::MAX,
            f64::MIN_POSITIVE,
        ];
        for kind in [ScoreKind::ReconstructionMse, ScoreKind::Logit] {
            for &score in &specials {
                for &threshold in &specials {
                    let r = risk_score(kind, score, threshold);
                    assert!(
                        r.is_finite() && (0.0..=100.0).contains(&r),
                        "{kind:?} score {score} threshold {threshold}: {r}"
                    );
                }
            }
            // A NaN score means the model broke on this flow: look at it.
            assert_eq!(risk_score(kind, f64::NAN, 0.1), 100.0);
            assert_eq!(risk_score(kind, f64::INFINITY, 0.1), 100.0);
        }
        // Reconstruction errors without a ratio: above, at, below.
        assert_eq!(risk_score(ScoreKind::ReconstructionMse, 0.1, 0.0), 100.0);
        assert_eq!(risk_score(ScoreKind::ReconstructionMse, 0.0, 0.0), 50.0);
        assert_eq!(risk_score(ScoreKind::ReconstructionMse, 0.0, 0.1), 0.0);
        assert_eq!(risk_score(ScoreKind::Logit, f64::NEG_INFINITY, 0.0), 0.0);
    }
}
