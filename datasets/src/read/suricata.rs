//! Suricata EVE JSON (`eve.json`): one event per line. `flow` events become
//! flows, `alert` events label them, and every other event type (`dns`,
//! `http`, `tls`, `fileinfo`, `anomaly`, `netflow`, `stats`, …) and the
//! alerts themselves are counted in [`ReadReport::ignored`](super::ReadReport).
//!
//! # Mapping to [`FlowRecord`]
//!
//! | EVE field | [`FlowRecord`] field |
//! |---|---|
//! | `flow.end` − `flow.start`; without both, `flow.age` (whole seconds) | `duration_s` |
//! | `flow.bytes_toserver`, `flow.bytes_toclient` | `bytes_out`, `bytes_in` |
//! | `flow.pkts_toserver`, `flow.pkts_toclient` | `packets_out`, `packets_in` |
//! | `proto`, lower case (`ipv6-icmp` → "icmp", as Zeek logs ICMPv6) | `protocol` |
//! | `app_proto` (else `app_proto_ts`, `app_proto_tc`) through [`service_name`] | `service` ("other" when absent) |
//! | `flow.state` and `tcp.tcp_flags_ts`/`tcp_flags_tc`, see below | `conn_state` |
//! | `dest_port`; for ICMP `icmp_code`, as Zeek logs it | `dst_port` |
//!
//! Suricata counts the bytes of whole packets, headers included, where
//! Zeek's `orig_bytes`/`resp_bytes` count payload only: a bare SYN is 0
//! bytes for Zeek and about 60 for Suricata. Byte features of the two
//! sensors are therefore on different scales; train and score on one.
//!
//! Timestamps have EVE's fixed form `2021-06-06T15:59:46.457984+0200`
//! (`Z`, `+02:00` and 1–9 fraction digits are accepted too), parsed by
//! [`parse_timestamp`].
//!
//! # Connection state
//!
//! Zeek derives `conn_state` from each endpoint's TCP state; the EVE flow
//! gives the TCP flags each side sent (`tcp_flags_ts` from the client,
//! `tcp_flags_tc` from the server), from which the nearest Zeek state
//! follows, rules tried in Zeek's own order:
//!
//! | TCP flags seen | state |
//! |---|---|
//! | server RST; client SYN, but no completed handshake (server SYN-ACK and client ACK) | REJ |
//! | server RST; no client SYN | RSTRH |
//! | server RST otherwise | RSTR |
//! | client RST; no server SYN; client SYN without ACK or FIN | RSTOS0 |
//! | client RST; no server SYN otherwise | OTH |
//! | client RST otherwise | RSTO |
//! | FIN both ways | SF |
//! | client FIN only; no server SYN / server SYN | SH / S2 |
//! | server FIN only; no client SYN / client SYN | SHR / S3 |
//! | client SYN, nothing from the server | S0 |
//! | client SYN and ACK, server SYN (established, not closed) | S1 |
//! | anything else (no SYN seen: mid-stream) | OTH |
//!
//! A TCP flow without per-side flags falls back on `flow.state`: `new`
//! with no server packets → S0 (otherwise OTH), `established` → S1,
//! `closed` → SF, anything else → OTH. UDP follows Zeek too: packets both
//! ways → SF, client only → S0, server only → SHR. Other protocols
//! (ICMP included) are OTH, as in Zeek.
//!
//! # Labels
//!
//! A flow is an attack when an `alert` event of the same file has its
//! `flow_id`: its family is that alert's `alert.category` (with several
//! alerts, the most severe — lowest `alert.severity` — and among equals the
//! first in the file). A flow with `flow.alerted: true` but no alert in the
//! file (the alert was logged elsewhere or cut off) is of family
//! [`ALERTED`]. All other flows are unlabelled (benign). Alerts may come
//! before or after their flow: labels are given once the file is read.
//!
//! # Malformed rows
//!
//! A line that is not a JSON object, an event without `event_type`, and a
//! flow event with a missing or invalid packet or byte count, protocol,
//! port, timestamp or TCP flags is a malformed row, reported with file,
//! line and the field at fault (or counted with
//! [`ReadOptions::skip_bad_rows`]).
//!
//! The live parser ([`live`](super::live)) maps `flow` events through the
//! same function, so a flow read live and read from a file are the same.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};

use super::reservoir::Reservoir;
use super::window::Window;
use super::zeek::{Cell, count, json_field, json_object, port, service_name, text};
use super::{INVALID_UTF8, Loaded, ReadOptions, ReadReport, RowPolicy, next_line, open_text};
use crate::error::DatasetError;
use crate::record::FlowRecord;
use crate::table::Records;

/// The family of a flow Suricata marked `alerted` whose alert is not in the
/// file.
pub const ALERTED: &str = "alert";

/// Reads a Suricata EVE JSON file (plain or gzip) into flow records.
pub fn read(path: &Path, options: &ReadOptions) -> Result<Loaded, DatasetError> {
    let mut kept = Reservoir::new(None, 0);
    let report = stream(path, options, &Window::default(), &mut kept)?;
    let records: Vec<FlowRecord> = kept.into_items().into_iter().map(|f| f.record).collect();
    Ok(Loaded {
        records: Records::from_flows(&records),
        report,
    })
}

/// Reads a Suricata EVE JSON file event by event, its flows into `sink`:
/// flows outside `window` (by `timestamp`, else `flow.start`) are counted
/// in the report's `outside` and left out. Only the file's alerts are held
/// until its end, when the flows it put in `sink` get their labels.
pub(crate) fn stream(
    path: &Path,
    options: &ReadOptions,
    window: &Window,
    sink: &mut Reservoir<Flow>,
) -> Result<ReadReport, DatasetError> {
    let mut reader = open_text(path)?;
    let mut policy = RowPolicy::new(path, options);
    let mut alerts: HashMap<String, Alert> = HashMap::new();
    let mut buf = String::new();
    let mut line = 0u64;
    let mut rows = 0;
    loop {
        line += 1;
        if !next_line(&mut *reader, &mut buf, path, line)? {
            break;
        }
        let text = buf.trim();
        if text.is_empty() {
            continue;
        }
        if buf == INVALID_UTF8 {
            policy.bad_row(line, "the line is not valid UTF-8".into())?;
            continue;
        }
        match event(text, window.is_set()) {
            Ok(Event::Flow(flow)) if flow.ts.is_some_and(|ts| !window.contains(ts)) => {
                policy.report.outside += 1;
            }
            Ok(Event::Flow(flow)) => {
                rows += 1;
                sink.offer(flow);
            }
            Ok(Event::Alert(flow_id, alert)) => {
                policy.report.ignored += 1;
                if let Some(id) = flow_id {
                    let known = alerts.get(&id);
                    if known.is_none_or(|k| alert.severity < k.severity) {
                        alerts.insert(id, alert);
                    }
                }
            }
            Ok(Event::Other) => policy.report.ignored += 1,
            Err(reason) => policy.bad_row(line, reason)?,
        }
    }
    sink.settle(|flow| {
        flow.record.label = match flow.flow_id.as_ref().and_then(|id| alerts.get(id)) {
            Some(alert) => Some(alert.category.clone()),
            None if flow.alerted => Some(ALERTED.to_string()),
            None => None,
        };
    });
    Ok(policy.finish_rows(rows))
}

/// A flow event; its label is given once its file has been read.
pub(crate) struct Flow {
    pub(crate) record: FlowRecord,
    flow_id: Option<String>,
    alerted: bool,
    /// `timestamp` (else `flow.start`) in nanoseconds since the epoch,
    /// read only when a time window needs it.
    ts: Option<i128>,
}

/// What an alert says about its flow.
struct Alert {
    severity: u64,
    category: String,
}

enum Event {
    Flow(Flow),
    Alert(Option<String>, Alert),
    Other,
}

fn event(line: &str, with_ts: bool) -> Result<Event, String> {
    let obj = json_object(line)?;
    match event_type(&obj)? {
        "flow" => flow_event(&obj, with_ts).map(Event::Flow),
        "alert" => {
            let category = json_field(&obj, "alert.category")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .unwrap_or(ALERTED);
            let severity = json_field(&obj, "alert.severity")
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX);
            Ok(Event::Alert(
                flow_id(&obj),
                Alert {
                    severity,
                    category: category.to_string(),
                },
            ))
        }
        _ => Ok(Event::Other),
    }
}

/// The event's `event_type`.
pub(super) fn event_type(obj: &Map<String, Value>) -> Result<&str, String> {
    match obj.get("event_type") {
        Some(Value::String(t)) => Ok(t),
        _ => {
            Err("field `event_type` is missing or not a string; is this Suricata EVE JSON?".into())
        }
    }
}

/// The event's `flow_id`, as text (a number in EVE, but kept exact).
pub(super) fn flow_id(obj: &Map<String, Value>) -> Option<String> {
    match obj.get("flow_id") {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn flow_event(obj: &Map<String, Value>, with_ts: bool) -> Result<Flow, String> {
    let field = |key: &str| Cell::json(json_field(obj, key));
    let ts = if with_ts {
        Some(event_time(&field)?.ok_or(
            "the flow has neither `timestamp` nor `flow.start`, so it cannot be placed in the \
             time window (since/until)",
        )?)
    } else {
        None
    };
    Ok(Flow {
        record: flow_record(obj)?,
        flow_id: flow_id(obj),
        alerted: matches!(json_field(obj, "flow.alerted"), Some(Value::Bool(true))),
        ts,
    })
}

/// The flow of one `flow` event, unlabelled: the mapping both the file
/// reader and the live parser use.
pub(super) fn flow_record(obj: &Map<String, Value>) -> Result<FlowRecord, String> {
    let field = |key: &str| Cell::json(json_field(obj, key));
    let count_of = |key: &str| count(field(key), key);
    let packets_out = count_of("flow.pkts_toserver")?;
    let packets_in = count_of("flow.pkts_toclient")?;
    let bytes_out = count_of("flow.bytes_toserver")?;
    let bytes_in = count_of("flow.bytes_toclient")?;
    let protocol = match text(field("proto"), "proto")?.trim().to_ascii_lowercase() {
        p if p.is_empty() => return Err("field `proto` is empty".into()),
        p if p == "ipv6-icmp" || p == "icmpv6" => "icmp".to_string(),
        p => p,
    };
    let dst_port = match protocol.as_str() {
        "icmp" => port(field("icmp_code"), "icmp_code")?,
        "tcp" | "udp" | "sctp" => port(field("dest_port"), "dest_port")?,
        _ => match field("dest_port") {
            Cell::Unset => 0,
            cell => port(cell, "dest_port")?,
        },
    };
    let service = ["app_proto", "app_proto_ts", "app_proto_tc"]
        .into_iter()
        .find_map(|key| match field(key) {
            Cell::Unset => None,
            cell => Some(text(cell, key)),
        })
        .transpose()?
        .map_or("other", |name| service_name(name, dst_port));
    let conn_state = match protocol.as_str() {
        "tcp" => tcp_state(obj, packets_in)?,
        "udp" => match (packets_out > 0.0, packets_in > 0.0) {
            (true, true) => "SF",
            (true, false) => "S0",
            (false, true) => "SHR",
            (false, false) => "OTH",
        },
        _ => "OTH",
    };
    Ok(FlowRecord {
        duration_s: duration(&field)?,
        bytes_out,
        bytes_in,
        packets_out,
        packets_in,
        protocol,
        service: service.to_string(),
        conn_state: conn_state.to_string(),
        dst_port,
        label: None,
    })
}

/// When the flow happened: the event's `timestamp`, else `flow.start`;
/// `None` without either.
pub(super) fn event_time<'a>(field: &impl Fn(&str) -> Cell<'a>) -> Result<Option<i128>, String> {
    match (field("timestamp"), field("flow.start")) {
        (Cell::Unset, Cell::Unset) => Ok(None),
        (Cell::Unset, start) => timestamp(start, "flow.start").map(Some),
        (at, _) => timestamp(at, "timestamp").map(Some),
    }
}

/// `flow.end − flow.start` in seconds, else `flow.age`.
fn duration<'a>(field: &impl Fn(&str) -> Cell<'a>) -> Result<f64, String> {
    match (field("flow.start"), field("flow.end")) {
        (Cell::Unset, _) | (_, Cell::Unset) => match field("flow.age") {
            Cell::Unset => Err(
                "the flow has neither `flow.start` and `flow.end` nor `flow.age`, so no duration"
                    .into(),
            ),
            cell => count(cell, "flow.age"),
        },
        (start, end) => {
            let start = timestamp(start, "flow.start")?;
            let end = timestamp(end, "flow.end")?;
            if end < start {
                return Err("field `flow.end` is before `flow.start`".into());
            }
            // Whole seconds and nanoseconds apart, so no precision is lost
            // to the size of an epoch timestamp.
            let nanos = end - start;
            Ok((nanos / 1_000_000_000) as f64 + (nanos % 1_000_000_000) as f64 / 1e9)
        }
    }
}

fn timestamp(cell: Cell<'_>, field: &str) -> Result<i128, String> {
    let value = text(cell, field)?;
    parse_timestamp(value).ok_or_else(|| {
        format!(
            "field `{field}`: {:?} is not a timestamp like 2021-06-06T15:59:46.457984+0200",
            value.chars().take(40).collect::<String>()
        )
    })
}

/// Nanoseconds since the Unix epoch of an EVE timestamp,
/// `YYYY-MM-DDTHH:MM:SS[.f…][Z|±HHMM|±HH:MM|±HH]` (a space may stand for
/// the `T`; no zone means UTC). `None` if it is not one.
pub fn parse_timestamp(text: &str) -> Option<i128> {
    let b = text.trim().as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let d = b.get(from..from + len)?;
        d.iter().try_fold(0i64, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let at = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(at(4, b"-") && at(7, b"-") && at(10, b"T ") && at(13, b":") && at(16, b":")) {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if at(i, b".") {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let len = i - start;
        if !(1..=9).contains(&len) {
            return None;
        }
        nanos = digits(start, len)? * 10i64.pow(9 - len as u32);
    }
    let offset_minutes = match b.get(i) {
        None => 0,
        Some(b'Z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let hours = digits(i + 1, 2)?;
            let rest = b.get(i + 3..)?;
            let minutes = match rest {
                [] => 0,
                [_, _] => digits(i + 3, 2)?,
                [b':', _, _] => digits(i + 4, 2)?,
                _ => return None,
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let total = hours * 60 + minutes;
            if sign == b'-' { -total } else { total }
        }
        Some(_) => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(i128::from(seconds) * 1_000_000_000 + i128::from(nanos))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// The Zeek state of a TCP flow event (see the module docs).
fn tcp_state(obj: &Map<String, Value>, packets_in: f64) -> Result<&'static str, String> {
    let flags = |field: &str| -> Result<Option<u8>, String> {
        match Cell::json(json_field(obj, field)) {
            Cell::Unset => Ok(None),
            cell => {
                let hex = text(cell, field)?;
                u8::from_str_radix(hex.trim(), 16)
                    .map(Some)
                    .map_err(|_| format!("field `{field}`: {hex:?} is not hexadecimal TCP flags"))
            }
        }
    };
    match (flags("tcp.tcp_flags_ts")?, flags("tcp.tcp_flags_tc")?) {
        (Some(client), Some(server)) => Ok(zeek_tcp_state(client, server)),
        _ => Ok(
            match json_field(obj, "flow.state").and_then(Value::as_str) {
                Some("new") if packets_in == 0.0 => "S0",
                Some("established") => "S1",
                Some("closed") => "SF",
                _ => "OTH",
            },
        ),
    }
}

/// The nearest Zeek `conn_state` of a TCP flow from the flags each side
/// sent, in the order of Zeek's `Conn::conn_state`.
fn zeek_tcp_state(client: u8, server: u8) -> &'static str {
    let has = |flags: u8, flag: u8| flags & flag != 0;
    let client_syn = has(client, SYN);
    let server_syn = has(server, SYN);
    let handshake = client_syn && server_syn && has(client, ACK);
    if has(server, RST) {
        if client_syn && !handshake {
            "REJ"
        } else if !client_syn {
            "RSTRH"
        } else {
            "RSTR"
        }
    } else if has(client, RST) {
        if server_syn {
            "RSTO"
        } else if client_syn && !has(client, ACK | FIN) {
            "RSTOS0"
        } else {
            "OTH"
        }
    } else if has(client, FIN) && has(server, FIN) {
        "SF"
    } else if has(client, FIN) {
        if server_syn { "S2" } else { "SH" }
    } else if has(server, FIN) {
        if client_syn { "S3" } else { "SHR" }
    } else if client_syn && server == 0 {
        "S0"
    } else if handshake {
        "S1"
    } else {
        "OTH"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn flow_line(id: u64, extra_flow: &str, tcp: &str) -> String {
        format!(
            "{{\"timestamp\":\"2021-06-06T15:57:37.272281+0200\",\"flow_id\":{id},\"event_type\":\"flow\",\"src_ip\":\"10.0.0.1\",\"src_port\":40000,\"dest_ip\":\"10.0.0.2\",\"dest_port\":443,\"proto\":\"TCP\",\"app_proto\":\"tls\",\"flow\":{{\"pkts_toserver\":3,\"pkts_toclient\":2,\"bytes_toserver\":180,\"bytes_toclient\":120,\"start\":\"2021-06-06T16:38:55.855844+0200\",\"end\":\"2021-06-06T16:38:57.963027+0200\",\"age\":2,\"state\":\"closed\",\"reason\":\"timeout\"{extra_flow}}}{tcp}}}"
        )
    }

    fn alert_line(id: u64, category: &str, severity: u64) -> String {
        format!(
            "{{\"timestamp\":\"2021-06-06T15:59:46.457984+0200\",\"flow_id\":{id},\"event_type\":\"alert\",\"proto\":\"TCP\",\"alert\":{{\"signature_id\":1,\"category\":\"{category}\",\"severity\":{severity}}}}}"
        )
    }

    const TCP_SF: &str = ",\"tcp\":{\"tcp_flags\":\"1b\",\"tcp_flags_ts\":\"1b\",\"tcp_flags_tc\":\"1b\",\"syn\":true,\"fin\":true,\"ack\":true}";

    fn column(loaded: &Loaded, name: &str) -> Vec<String> {
        let at = loaded
            .records
            .categorical_names()
            .iter()
            .position(|n| n == name)
            .unwrap();
        (0..loaded.records.len())
            .map(|i| loaded.records.categorical_row(i)[at].clone())
            .collect()
    }

    fn numeric(loaded: &Loaded, row: usize, name: &str) -> f64 {
        let at = loaded
            .records
            .numeric_names()
            .iter()
            .position(|n| n == name)
            .unwrap();
        loaded.records.numeric_row(row)[at]
    }

    #[test]
    fn flows_alert_labels_and_ignored_events_gzip() {
        let lines = [
            alert_line(1, "Misc Attack", 2),
            flow_line(1, ",\"alerted\":true", TCP_SF),
            // Flow 2: two alerts; the more severe wins, whatever the order.
            alert_line(2, "Potentially Bad Traffic", 2),
            flow_line(2, ",\"alerted\":true", TCP_SF),
            alert_line(2, "Attempted Administrator Privilege Gain", 1),
            alert_line(2, "Misc Attack", 1),
            // Flow 3: alerted, but its alert is not in the file.
            flow_line(3, ",\"alerted\":true", TCP_SF),
            // Flow 4: no alert.
            flow_line(4, ",\"alerted\":false", TCP_SF),
            "{\"event_type\":\"dns\",\"flow_id\":4,\"dns\":{\"type\":\"query\"}}".to_string(),
            String::new(),
            "{\"event_type\":\"stats\",\"stats\":{}}".to_string(),
            // Flow 5: an alert naming it but no `alerted` flag.
            alert_line(5, "", 3),
            flow_line(5, "", TCP_SF),
        ];
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("eve.json.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        enc.write_all(lines.join("\n").as_bytes()).unwrap();
        enc.finish().unwrap();
        let loaded = read(&gz, &ReadOptions::default()).unwrap();
        assert_eq!(loaded.report.rows, 5);
        assert_eq!(loaded.report.ignored, 7);
        assert_eq!(
            loaded.records.families(),
            [
                "Misc Attack",
                "Attempted Administrator Privilege Gain",
                ALERTED,
                "normal",
                ALERTED
            ]
        );
        assert_eq!(column(&loaded, "protocol"), ["tcp"; 5]);
        assert_eq!(column(&loaded, "service"), ["https"; 5]);
        assert_eq!(column(&loaded, "conn_state"), ["SF"; 5]);
        assert!((numeric(&loaded, 0, "duration") - 2.107183).abs() < 1e-9);
        assert_eq!(numeric(&loaded, 0, "bytes_out"), 180.0);
        assert_eq!(numeric(&loaded, 0, "bytes_in"), 120.0);
        assert_eq!(numeric(&loaded, 0, "packets_out"), 3.0);
        assert_eq!(numeric(&loaded, 0, "packets_in"), 2.0);
    }

    #[test]
    fn udp_icmp_age_and_state_fallback() {
        let lines = [
            "{\"event_type\":\"flow\",\"proto\":\"UDP\",\"dest_port\":53,\"app_proto\":\"dns\",\"flow\":{\"pkts_toserver\":1,\"pkts_toclient\":1,\"bytes_toserver\":70,\"bytes_toclient\":90,\"age\":3}}",
            "{\"event_type\":\"flow\",\"proto\":\"UDP\",\"dest_port\":1900,\"app_proto\":\"failed\",\"flow\":{\"pkts_toserver\":4,\"pkts_toclient\":0,\"bytes_toserver\":70,\"bytes_toclient\":0,\"age\":0}}",
            "{\"event_type\":\"flow\",\"proto\":\"IPv6-ICMP\",\"icmp_type\":128,\"icmp_code\":0,\"flow\":{\"pkts_toserver\":1,\"pkts_toclient\":1,\"bytes_toserver\":70,\"bytes_toclient\":70,\"age\":0}}",
            "{\"event_type\":\"flow\",\"proto\":\"TCP\",\"dest_port\":22,\"flow\":{\"pkts_toserver\":1,\"pkts_toclient\":0,\"bytes_toserver\":60,\"bytes_toclient\":0,\"age\":0,\"state\":\"new\"}}",
            "{\"event_type\":\"flow\",\"proto\":\"TCP\",\"dest_port\":22,\"app_proto\":\"ssh\",\"flow\":{\"pkts_toserver\":9,\"pkts_toclient\":9,\"bytes_toserver\":600,\"bytes_toclient\":900,\"age\":5,\"state\":\"established\"}}",
            "{\"event_type\":\"flow\",\"proto\":\"GRE\",\"flow\":{\"pkts_toserver\":1,\"pkts_toclient\":0,\"bytes_toserver\":60,\"bytes_toclient\":0,\"age\":0}}",
        ];
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("eve.json");
        std::fs::write(&p, lines.join("\r\n")).unwrap();
        let loaded = read(&p, &ReadOptions::default()).unwrap();
        assert_eq!(loaded.report.rows, 6);
        assert_eq!(
            column(&loaded, "protocol"),
            ["udp", "udp", "icmp", "tcp", "tcp", "gre"]
        );
        assert_eq!(
            column(&loaded, "service"),
            ["dns", "other", "other", "other", "ssh", "other"]
        );
        assert_eq!(
            column(&loaded, "conn_state"),
            ["SF", "S0", "OTH", "S0", "S1", "OTH"]
        );
        assert_eq!(numeric(&loaded, 0, "duration"), 3.0);
        assert_eq!(loaded.records.families(), ["normal"; 6]);
    }

    #[test]
    fn malformed_events_name_line_and_field() {
        let good = flow_line(1, "", TCP_SF);
        let cases: [(String, &str); 9] = [
            ("{\"event_type\":\"flow\"".into(), "bad JSON"),
            ("[1]".into(), "not a JSON object"),
            ("{\"flow_id\":1}".into(), "field `event_type` is missing"),
            (
                good.replace("\"pkts_toclient\":2,", ""),
                "field `flow.pkts_toclient` is missing",
            ),
            (
                good.replace("\"bytes_toserver\":180", "\"bytes_toserver\":-1"),
                "field `flow.bytes_toserver`: -1 is negative",
            ),
            (
                good.replace("\"dest_port\":443,", ""),
                "field `dest_port` is missing",
            ),
            (
                good.replace("16:38:57.963027", "16:38:54.963027"),
                "field `flow.end` is before `flow.start`",
            ),
            (
                good.replace("2021-06-06T16:38:55", "2021-06-31T16:38:55"),
                "field `flow.start`: \"2021-06-31T16:38:55.855844+0200\" is not a timestamp",
            ),
            (
                good.replace("\"tcp_flags_tc\":\"1b\"", "\"tcp_flags_tc\":\"zz\""),
                "field `tcp.tcp_flags_tc`: \"zz\" is not hexadecimal",
            ),
        ];
        let mut body = good.clone();
        for (line, _) in &cases {
            body.push('\n');
            body.push_str(line);
        }
        body.push('\n');
        body.push_str(&good);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.json");
        let mut bytes = body.into_bytes();
        bytes.extend_from_slice(b"\n{\"event_type\":\"fl\xffw\"}\n");
        std::fs::write(&p, bytes).unwrap();

        let e = read(&p, &ReadOptions::default()).unwrap_err().to_string();
        assert!(
            e.contains("bad.json:2: bad JSON") && e.contains("enable skip_bad_rows"),
            "{e}"
        );
        let loaded = read(
            &p,
            &ReadOptions {
                skip_bad_rows: true,
            },
        )
        .unwrap();
        assert_eq!(loaded.report.rows, 2);
        assert_eq!(loaded.report.skipped, 10);
        for (i, (_, want)) in cases.iter().enumerate() {
            let (line, reason) = &loaded.report.first_skips[i];
            assert_eq!(*line, i as u64 + 2, "{reason}");
            assert!(reason.contains(want), "line {line}: {reason} lacks {want}");
        }
        assert_eq!(
            loaded.report.first_skips[9],
            (12, "the line is not valid UTF-8".to_string())
        );
    }

    #[test]
    fn timestamps_parse_like_eve_writes_them() {
        let base = parse_timestamp("2021-06-06T13:59:46Z").unwrap();
        assert_eq!(base, 1_622_987_986 * 1_000_000_000);
        for same in [
            "2021-06-06T15:59:46+0200",
            "2021-06-06T15:59:46+02:00",
            "2021-06-06T15:59:46+02",
            "2021-06-06T11:29:46-0230",
            "2021-06-06 13:59:46",
            " 2021-06-06T13:59:46.000000Z ",
        ] {
            assert_eq!(parse_timestamp(same), Some(base), "{same}");
        }
        assert_eq!(
            parse_timestamp("2021-06-06T15:59:46.457984+0200"),
            Some(base + 457_984_000)
        );
        assert_eq!(
            parse_timestamp("2021-06-06T15:59:46.4+0200"),
            Some(base + 400_000_000)
        );
        assert_eq!(
            parse_timestamp("2021-06-06T15:59:46.123456789+0200"),
            Some(base + 123_456_789)
        );
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_timestamp("1969-12-31T23:59:59Z"),
            Some(-1_000_000_000)
        );
        assert_eq!(
            parse_timestamp("2000-02-29T00:00:00Z"),
            Some(951_782_400 * 1_000_000_000)
        );
        for bad in [
            "",
            "2021",
            "2021-06-06",
            "2021-13-06T15:59:46Z",
            "2021-02-29T15:59:46Z",
            "1900-02-29T00:00:00Z",
            "2021-06-00T15:59:46Z",
            "2021-06-06T24:00:00Z",
            "2021-06-06T15:60:46Z",
            "2021-06-06T15:59:46.Z",
            "2021-06-06T15:59:46.1234567890Z",
            "2021-06-06T15:59:46+2",
            "2021-06-06T15:59:46+02000",
            "2021-06-06T15:59:46+24:00",
            "2021-06-06T15:59:46Zjunk",
            "2021-06-06T15:59:46 +0200",
            "2021-06-06x15:59:46Z",
            "2021-0é-06T15:59:46Z",
            "２０２１-06-06T15:59:46Z",
            "+021-06-06T15:59:46Z",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn tcp_flags_give_zeek_states() {
        let s = SYN;
        let sa = SYN | ACK;
        let cases = [
            (s, RST | ACK, "REJ"),
            (s | 0xc0, RST | ACK, "REJ"),
            (s | RST, RST, "REJ"),
            (ACK, RST, "RSTRH"),
            (sa | FIN | RST | 0x08, sa | RST, "RSTR"),
            (s | RST, sa, "RSTO"),
            (sa | RST | 0x08, sa, "RSTO"),
            (s | RST, 0, "RSTOS0"),
            (ACK | RST, 0, "OTH"),
            (sa | FIN, sa | FIN, "SF"),
            (sa | FIN, sa, "S2"),
            (s | FIN, 0, "SH"),
            (sa, sa | FIN, "S3"),
            (ACK, sa | FIN, "SHR"),
            (s, 0, "S0"),
            (sa, sa, "S1"),
            (s, sa, "OTH"),
            (0, 0, "OTH"),
            (ACK, ACK, "OTH"),
        ];
        for (client, server, want) in cases {
            assert_eq!(
                zeek_tcp_state(client, server),
                want,
                "client {client:02x} server {server:02x}"
            );
        }
    }
}
