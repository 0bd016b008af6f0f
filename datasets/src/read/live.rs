//! Line-at-a-time parsing of live sensor logs, for detection as the logs are
//! written: Zeek `conn.log` (TSV or JSON lines) and Suricata `eve.json`.
//!
//! Unlike the file readers, a live parser never sees a whole file: it takes
//! one line at a time, keeps only what a format carries from line to line
//! (Zeek's TSV header), and gives each flow with its [`FlowKey`], who talked
//! to whom, which an alert names. Live telemetry is unlabelled, so flows
//! carry no label. The flow fields are mapped exactly as the file readers
//! map them ([`zeek`](super::zeek), [`suricata`](super::suricata)), so a
//! model scores a live flow as it scored the same flow read from a file.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::suricata;
use super::zeek::{self, Cell, Field, LineError, Row, json_field, json_object};
use crate::record::FlowRecord;

/// The live formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LiveFormat {
    /// Zeek `conn.log`: TSV with `#` headers, or JSON lines; told apart by
    /// the first non-empty line of each file.
    Zeek,
    /// Suricata EVE JSON: `flow` events are flows, every other event type is
    /// passed over.
    Suricata,
}

/// Who talked to whom in one flow, as the sensor logged it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowKey {
    /// Zeek `uid` or Suricata `flow_id` (as its decimal text).
    pub id: Option<String>,
    /// Zeek `ts` or EVE `timestamp` (else `flow.start`), nanoseconds since
    /// the Unix epoch.
    pub ts_nanos: Option<i128>,
    pub src_ip: Option<IpAddr>,
    pub dst_ip: Option<IpAddr>,
    /// Originator port; `None` for ICMP (see `icmp_type`) and port-less
    /// protocols.
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    /// The transport as logged, lower case: "tcp", "udp", "icmp",
    /// "ipv6-icmp", "sctp", …
    pub transport: String,
    /// ICMP type and code (Zeek logs them as `id.orig_p` / `id.resp_p`,
    /// EVE as `icmp_type` / `icmp_code`).
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
}

/// One flow of a live log.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveFlow {
    pub record: FlowRecord,
    pub key: FlowKey,
}

/// What one line was.
// A flow is taken apart as soon as it is parsed: boxing it would cost an
// allocation per line for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    Flow(LiveFlow),
    /// A Zeek header line (`#fields`, `#close`, …) or an empty line.
    Header,
    /// A record the format defines as not a flow (an EVE `dns` or `alert`
    /// event).
    Ignored,
}

/// Parses a live log line by line.
///
/// Zeek: the first line of a file that starts with `#` or `{` decides
/// between TSV and JSON; TSV header lines (`#separator`, `#fields`, …) are
/// honoured as the file reader honours them, and a later `#fields` line
/// starts a new layout. Records are mapped by the file reader's own
/// functions, Stratosphere label columns left out. Suricata: `flow` events
/// are flows, other events [`Parsed::Ignored`].
#[derive(Debug)]
pub struct LineParser {
    format: LiveFormat,
    /// The current Zeek file's format and TSV header; `None` until a line
    /// has told.
    zeek: Option<zeek::Format>,
}

impl LineParser {
    pub fn new(format: LiveFormat) -> Self {
        LineParser { format, zeek: None }
    }

    pub fn format(&self) -> LiveFormat {
        self.format
    }

    /// A new file begins: forget what the last one declared (Zeek writes a
    /// header into every file, and may switch between TSV and JSON).
    pub fn new_file(&mut self) {
        self.zeek = None;
    }

    /// Whether the current Zeek file has declared its columns (a TSV
    /// `#fields` line) or is JSON, so its records can be read; always true
    /// for Suricata. A follower that starts in the middle of a TSV file can
    /// use it to read the file's header first.
    pub fn knows_layout(&self) -> bool {
        match (self.format, &self.zeek) {
            (LiveFormat::Suricata, _) | (_, Some(zeek::Format::Json)) => true,
            (_, Some(zeek::Format::Tsv(tsv))) => tsv.has_columns(),
            (_, None) => false,
        }
    }

    /// One line, without its newline (a trailing `\r` is tolerated). `Err`
    /// says why the line is malformed; the parser stays usable.
    pub fn line(&mut self, line: &str) -> Result<Parsed, String> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        // A file's first line may carry a UTF-8 byte-order mark.
        let line = line.strip_prefix('\u{FEFF}').unwrap_or(line);
        if line.trim().is_empty() {
            return Ok(Parsed::Header);
        }
        match self.format {
            LiveFormat::Zeek => self.zeek_line(line),
            LiveFormat::Suricata => eve_line(line),
        }
    }

    fn zeek_line(&mut self, line: &str) -> Result<Parsed, String> {
        let format = match &mut self.zeek {
            Some(format) => format,
            None => {
                let text = line.trim_start();
                if text.starts_with('#') {
                    self.zeek.insert(zeek::Format::Tsv(Default::default()))
                } else if text.starts_with('{') {
                    self.zeek.insert(zeek::Format::Json)
                } else {
                    // Most likely a TSV record of a file whose header was
                    // not seen; the format stays open until a line tells.
                    return Err(zeek::NO_HEADER.into());
                }
            }
        };
        let row = match format.line(line) {
            Ok(None) => return Ok(Parsed::Header),
            Ok(Some(row)) => row,
            Err(LineError::File(reason) | LineError::Row(reason)) => return Err(reason),
        };
        let record = zeek::conn_record(&row)?;
        let key = zeek_key(&row, &record.protocol)?;
        Ok(Parsed::Flow(LiveFlow { record, key }))
    }
}

/// One EVE line: `#` lines (not EVE, but harmless) count as headers.
fn eve_line(line: &str) -> Result<Parsed, String> {
    if line.trim_start().starts_with('#') {
        return Ok(Parsed::Header);
    }
    let obj = json_object(line)?;
    if suricata::event_type(&obj)? != "flow" {
        return Ok(Parsed::Ignored);
    }
    let record = suricata::flow_record(&obj)?;
    let key = eve_key(&obj)?;
    Ok(Parsed::Flow(LiveFlow { record, key }))
}

/// The key of a Zeek record whose `proto` is `transport`.
fn zeek_key(row: &Row<'_>, transport: &str) -> Result<FlowKey, String> {
    let id = match row.get(Field::Uid) {
        Cell::Unset => None,
        cell => Some(zeek::text(cell, "uid")?.trim())
            .filter(|uid| !uid.is_empty())
            .map(str::to_string),
    };
    let ts_nanos = match row.get(Field::Ts) {
        Cell::Unset => None,
        cell => Some(zeek::zeek_ts(cell)?),
    };
    let mut key = FlowKey {
        id,
        ts_nanos,
        src_ip: address(row.get(Field::OrigH), "id.orig_h")?,
        dst_ip: address(row.get(Field::RespH), "id.resp_h")?,
        transport: transport.to_string(),
        ..FlowKey::default()
    };
    // Zeek logs an ICMP message's type and code where ports would be.
    if is_icmp(transport) {
        key.icmp_type = icmp_number(row.get(Field::OrigP), "id.orig_p")?;
        key.icmp_code = icmp_number(row.get(Field::RespP), "id.resp_p")?;
    } else {
        key.src_port = optional_port(row.get(Field::OrigP), "id.orig_p")?;
        key.dst_port = optional_port(row.get(Field::RespP), "id.resp_p")?;
    }
    Ok(key)
}

/// The key of an EVE `flow` event.
fn eve_key(obj: &Map<String, Value>) -> Result<FlowKey, String> {
    let field = |key: &str| Cell::json(json_field(obj, key));
    Ok(FlowKey {
        id: suricata::flow_id(obj),
        ts_nanos: suricata::event_time(&field)?,
        src_ip: address(field("src_ip"), "src_ip")?,
        dst_ip: address(field("dest_ip"), "dest_ip")?,
        src_port: optional_port(field("src_port"), "src_port")?,
        dst_port: optional_port(field("dest_port"), "dest_port")?,
        transport: zeek::text(field("proto"), "proto")?
            .trim()
            .to_ascii_lowercase(),
        icmp_type: icmp_number(field("icmp_type"), "icmp_type")?,
        icmp_code: icmp_number(field("icmp_code"), "icmp_code")?,
    })
}

/// Whether a transport, as Zeek or Suricata log it, is ICMP (v4 or v6).
fn is_icmp(transport: &str) -> bool {
    matches!(transport, "icmp" | "icmp6" | "icmpv6" | "ipv6-icmp")
}

/// An IPv4 or IPv6 address; unset is `None`.
fn address(cell: Cell<'_>, field: &str) -> Result<Option<IpAddr>, String> {
    if let Cell::Unset = cell {
        return Ok(None);
    }
    let text = zeek::text(cell, field)?;
    text.trim().parse().map(Some).map_err(|_| {
        format!(
            "field `{field}`: {} is not an IPv4 or IPv6 address",
            cell.shown()
        )
    })
}

/// A port; unset is `None`.
fn optional_port(cell: Cell<'_>, field: &str) -> Result<Option<u16>, String> {
    match cell {
        Cell::Unset => Ok(None),
        cell => zeek::port(cell, field).map(Some),
    }
}

/// An ICMP type or code, 0–255; unset is `None`.
fn icmp_number(cell: Cell<'_>, field: &str) -> Result<Option<u8>, String> {
    let value = match cell {
        Cell::Unset => return Ok(None),
        Cell::Text(t) => t.trim().parse::<u8>().ok(),
        Cell::Json(v) => v.as_u64().and_then(|n| u8::try_from(n).ok()),
    };
    value.map(Some).ok_or_else(|| {
        format!(
            "field `{field}`: {} is not an ICMP type or code (0 to 255)",
            cell.shown()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::ReadOptions;
    use crate::read::reservoir::Reservoir;
    use crate::read::window::Window;

    const HEADER: &str = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#open\t2026-12-01-00-00-00\n";
    const FIELDS: &str = "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\n";
    const TYPES: &str = "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\n";

    /// Every line of `text` through one parser.
    fn parse_all(parser: &mut LineParser, text: &str) -> Vec<Result<Parsed, String>> {
        text.lines().map(|line| parser.line(line)).collect()
    }

    fn flows(results: &[Result<Parsed, String>]) -> Vec<LiveFlow> {
        results
            .iter()
            .filter_map(|r| match r {
                Ok(Parsed::Flow(flow)) => Some(flow.clone()),
                _ => None,
            })
            .collect()
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    fn record(
        protocol: &str,
        service: &str,
        conn_state: &str,
        dst_port: u16,
        numbers: [f64; 5],
    ) -> FlowRecord {
        FlowRecord {
            duration_s: numbers[0],
            bytes_out: numbers[1],
            bytes_in: numbers[2],
            packets_out: numbers[3],
            packets_in: numbers[4],
            protocol: protocol.into(),
            service: service.into(),
            conn_state: conn_state.into(),
            dst_port,
            label: None,
        }
    }

    #[test]
    fn zeek_tsv_header_then_rows() {
        let text = format!(
            "{HEADER}{FIELDS}{TYPES}\
             1796083200.123456\tCAbc1\t10.0.0.5\t52311\t93.184.216.34\t443\ttcp\tssl\t1.500000\t1596\t4039\tSF\tT\tF\t0\tShADadFf\t14\t2328\t16\t4879\t-\r\n\
             1796083201.000001\tCAbc2\t10.0.0.5\t8\t10.0.0.1\t0\ticmp\t-\t0.001000\t56\t56\tOTH\tT\tT\t0\t-\t1\t84\t1\t84\t-\n\
             1796083202\tCAbc3\t2001:db8::5\t40000\t2001:db8:ffff::1\t53\tudp\tdns\t-\t-\t-\tS0\tT\tF\t0\tD\t1\t76\t0\t0\t-\n\
             -\t-\t-\t-\t-\t22\ttcp\t(empty)\t-\t-\t-\tS0\t-\t-\t-\t-\t1\t-\t0\t-\t(empty)\n\
             #close\t2026-12-01-01-00-00\n"
        );
        let mut parser = LineParser::new(LiveFormat::Zeek);
        assert!(!parser.knows_layout());
        let results = parse_all(&mut parser, &text);
        assert!(parser.knows_layout());
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(
            results.iter().filter(|r| **r == Ok(Parsed::Header)).count(),
            9
        );
        let got = flows(&results);
        assert_eq!(got.len(), 4);

        assert_eq!(
            got[0].key,
            FlowKey {
                id: Some("CAbc1".into()),
                ts_nanos: Some(1_796_083_200_123_456_000),
                src_ip: ip("10.0.0.5"),
                dst_ip: ip("93.184.216.34"),
                src_port: Some(52311),
                dst_port: Some(443),
                transport: "tcp".into(),
                icmp_type: None,
                icmp_code: None,
            }
        );
        assert_eq!(
            got[0].record,
            record("tcp", "https", "SF", 443, [1.5, 1596.0, 4039.0, 14.0, 16.0])
        );
        // ICMP: type and code where Zeek logs them, no ports.
        let icmp = &got[1].key;
        assert_eq!((icmp.icmp_type, icmp.icmp_code), (Some(8), Some(0)));
        assert_eq!((icmp.src_port, icmp.dst_port), (None, None));
        assert_eq!(icmp.transport, "icmp");
        assert_eq!(
            got[1].record,
            record("icmp", "other", "OTH", 0, [0.001, 56.0, 56.0, 1.0, 1.0])
        );
        // IPv6; unset duration and bytes read as 0, as the file reader does.
        assert_eq!(got[2].key.src_ip, ip("2001:db8::5"));
        assert_eq!(got[2].key.dst_ip, ip("2001:db8:ffff::1"));
        assert_eq!(got[2].key.ts_nanos, Some(1_796_083_202_000_000_000));
        assert_eq!(
            got[2].record,
            record("udp", "dns", "S0", 53, [0.0, 0.0, 0.0, 1.0, 0.0])
        );
        // Everything the key could lack is unset.
        assert_eq!(
            got[3].key,
            FlowKey {
                dst_port: Some(22),
                transport: "tcp".into(),
                ..FlowKey::default()
            }
        );
        assert_eq!(got[3].record.service, "other");
    }

    #[test]
    fn zeek_tsv_header_change_mid_stream() {
        let text = format!(
            "{HEADER}{FIELDS}\
             1796083200.5\tC1\t10.0.0.1\t1000\t10.0.0.2\t80\ttcp\thttp\t0.2\t100\t2000\tSF\tT\tT\t0\tShADadFf\t5\t400\t6\t2300\t-\n\
             #separator \\x2c\n\
             #unset_field,?\n\
             #fields,conn_state,resp_pkts,orig_pkts,id.resp_p,proto,uid,id.resp_h,id.orig_h,extra\n\
             S1,3,4,22,tcp,C2,10.0.0.9,10.0.0.8,x\n\
             SF,1,1,53,udp,?,?,?,?\n"
        );
        let mut parser = LineParser::new(LiveFormat::Zeek);
        let results = parse_all(&mut parser, &text);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let got = flows(&results);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].key.id.as_deref(), Some("C1"));
        assert_eq!(got[0].record.service, "http");
        assert_eq!(
            got[1].record,
            record("tcp", "other", "S1", 22, [0.0, 0.0, 0.0, 4.0, 3.0])
        );
        assert_eq!(got[1].key.id.as_deref(), Some("C2"));
        assert_eq!(got[1].key.src_ip, ip("10.0.0.8"));
        assert_eq!(got[1].key.dst_ip, ip("10.0.0.9"));
        assert_eq!(got[1].key.dst_port, Some(22));
        assert_eq!(got[1].key.src_port, None, "no id.orig_p column");
        assert_eq!(got[2].key.id, None, "`?` is now the unset marker");
        assert_eq!(got[2].record.protocol, "udp");
    }

    #[test]
    fn zeek_json_lines() {
        let text = "{\"ts\":1796083200.123456,\"uid\":\"CJ1\",\"id.orig_h\":\"10.0.0.5\",\"id.orig_p\":51000,\"id.resp_h\":\"10.0.0.53\",\"id.resp_p\":53,\"proto\":\"udp\",\"service\":\"dns\",\"duration\":0.01,\"orig_bytes\":40,\"resp_bytes\":80,\"conn_state\":\"SF\",\"orig_pkts\":1,\"resp_pkts\":1}\n\
                    \n\
                    {\"ts\":\"2026-12-01T00:00:01.5Z\",\"uid\":\"CJ2\",\"id\":{\"orig_h\":\"fe80::1\",\"orig_p\":128,\"resp_h\":\"fe80::2\",\"resp_p\":129},\"proto\":\"icmp\",\"conn_state\":\"OTH\",\"orig_pkts\":1,\"resp_pkts\":1,\"service\":null,\"label\":\"Malicious\"}\r\n";
        let mut parser = LineParser::new(LiveFormat::Zeek);
        let results = parse_all(&mut parser, text);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(results[1], Ok(Parsed::Header));
        let got = flows(&results);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].key.ts_nanos, Some(1_796_083_200_123_456_000));
        assert_eq!(got[0].key.src_port, Some(51000));
        assert_eq!(
            got[0].record,
            record("udp", "dns", "SF", 53, [0.01, 40.0, 80.0, 1.0, 1.0])
        );
        assert_eq!(got[1].key.ts_nanos, Some(1_796_083_201_500_000_000));
        assert_eq!(got[1].key.src_ip, ip("fe80::1"));
        assert_eq!(
            (got[1].key.icmp_type, got[1].key.icmp_code),
            (Some(128), Some(129))
        );
        // Live telemetry is unlabelled: the label column is not read.
        assert_eq!(got[1].record.label, None);
    }

    const EVE_FLOW: &str = "{\"timestamp\":\"2026-12-01T01:00:00.250000+0100\",\"flow_id\":1249374286410547,\"in_iface\":\"eth0\",\"event_type\":\"flow\",\"src_ip\":\"10.0.0.5\",\"src_port\":40000,\"dest_ip\":\"93.184.216.34\",\"dest_port\":443,\"proto\":\"TCP\",\"app_proto\":\"tls\",\"flow\":{\"pkts_toserver\":3,\"pkts_toclient\":2,\"bytes_toserver\":180,\"bytes_toclient\":120,\"start\":\"2026-12-01T01:00:00.250000+0100\",\"end\":\"2026-12-01T01:00:02.750000+0100\",\"age\":2,\"state\":\"closed\",\"reason\":\"timeout\",\"alerted\":true},\"tcp\":{\"tcp_flags\":\"1b\",\"tcp_flags_ts\":\"1b\",\"tcp_flags_tc\":\"1b\",\"syn\":true,\"fin\":true,\"psh\":true,\"ack\":true}}";

    #[test]
    fn eve_flows_dns_and_alerts() {
        let lines = [
            EVE_FLOW.to_string(),
            "{\"timestamp\":\"2026-12-01T00:00:00.3Z\",\"flow_id\":1249374286410547,\"event_type\":\"dns\",\"dns\":{\"type\":\"query\"}}".into(),
            "{\"timestamp\":\"2026-12-01T00:00:00.4Z\",\"flow_id\":1249374286410547,\"event_type\":\"alert\",\"alert\":{\"category\":\"Misc Attack\",\"severity\":2}}".into(),
            String::new(),
            "# a comment".into(),
            // ICMPv6 without `timestamp`: `flow.start` stands in; no ports.
            "{\"flow_id\":\"77\",\"event_type\":\"flow\",\"src_ip\":\"2001:db8::1\",\"dest_ip\":\"2001:db8::2\",\"proto\":\"IPv6-ICMP\",\"icmp_type\":128,\"icmp_code\":0,\"flow\":{\"pkts_toserver\":1,\"pkts_toclient\":1,\"bytes_toserver\":70,\"bytes_toclient\":70,\"start\":\"2026-12-01T00:00:05Z\",\"end\":\"2026-12-01T00:00:05Z\",\"age\":0}}\r".into(),
        ];
        let mut parser = LineParser::new(LiveFormat::Suricata);
        assert!(parser.knows_layout());
        let results: Vec<_> = lines.iter().map(|l| parser.line(l)).collect();
        assert!(matches!(results[0], Ok(Parsed::Flow(_))), "{results:?}");
        assert_eq!(results[1], Ok(Parsed::Ignored));
        assert_eq!(results[2], Ok(Parsed::Ignored));
        assert_eq!(results[3], Ok(Parsed::Header));
        assert_eq!(results[4], Ok(Parsed::Header));
        let got = flows(&results);
        assert_eq!(got.len(), 2, "{results:?}");
        assert_eq!(
            got[0].key,
            FlowKey {
                id: Some("1249374286410547".into()),
                ts_nanos: Some(1_796_083_200_250_000_000),
                src_ip: ip("10.0.0.5"),
                dst_ip: ip("93.184.216.34"),
                src_port: Some(40000),
                dst_port: Some(443),
                transport: "tcp".into(),
                icmp_type: None,
                icmp_code: None,
            }
        );
        // Unlabelled, though the flow is marked alerted.
        assert_eq!(
            got[0].record,
            record("tcp", "https", "SF", 443, [2.5, 180.0, 120.0, 3.0, 2.0])
        );
        assert_eq!(
            got[1].key,
            FlowKey {
                id: Some("77".into()),
                ts_nanos: Some(1_796_083_205_000_000_000),
                src_ip: ip("2001:db8::1"),
                dst_ip: ip("2001:db8::2"),
                src_port: None,
                dst_port: None,
                transport: "ipv6-icmp".into(),
                icmp_type: Some(128),
                icmp_code: Some(0),
            }
        );
        assert_eq!(
            got[1].record,
            record("icmp", "other", "OTH", 0, [0.0, 70.0, 70.0, 1.0, 1.0])
        );
    }

    #[test]
    fn malformed_lines_are_errors_and_the_parser_goes_on() {
        let good = "1796083200.5\tC1\t10.0.0.1\t1000\t10.0.0.2\t80\ttcp\thttp\t0.2\t100\t2000\tSF\tT\tT\t0\tShADadFf\t5\t400\t6\t2300\t-";
        let mut parser = LineParser::new(LiveFormat::Zeek);
        // A record before any header: the fix is named.
        let e = parser.line(good).unwrap_err();
        assert!(e.contains("#fields") && e.contains("use_json"), "{e}");
        for line in HEADER.lines().chain(FIELDS.lines()) {
            assert_eq!(parser.line(line), Ok(Parsed::Header), "{line}");
        }
        let cases = [
            (good.replace("10.0.0.1", "10.0.0.300"), "field `id.orig_h`"),
            (good.replace("10.0.0.2", "example.org"), "field `id.resp_h`"),
            (good.replace("\t-", ""), "20 fields, but `#fields` names 21"),
            (good.replace("1796083200.5", "yesterday"), "field `ts`"),
            (good.replace("\t1000\t", "\t70000\t"), "field `id.orig_p`"),
            (good.replace("\tSF\t", "\tXX\t"), "field `conn_state`"),
            (
                good.replace("\t1000\t", "\t300\t")
                    .replace("\ttcp\t", "\ticmp\t"),
                "field `id.orig_p`: \"300\" is not an ICMP type",
            ),
        ];
        for (line, want) in &cases {
            let e = parser.line(line).unwrap_err();
            assert!(e.contains(want), "{line}: {e} lacks {want}");
            assert!(
                matches!(parser.line(good), Ok(Parsed::Flow(_))),
                "after {want}"
            );
        }
        // A rejected `#fields` line does not leave the old layout in force.
        let e = parser.line("#fields\tts\tuid").unwrap_err();
        assert!(e.contains("`proto`"), "{e}");
        assert!(parser.line(good).unwrap_err().contains("#fields"));

        let mut eve = LineParser::new(LiveFormat::Suricata);
        let cases = [
            (EVE_FLOW.replace("10.0.0.5", "10.0.0"), "field `src_ip`"),
            (
                EVE_FLOW.replace("\"dest_port\":443", "\"dest_port\":-1"),
                "field `dest_port`",
            ),
            (EVE_FLOW[..EVE_FLOW.len() - 1].to_string(), "bad JSON"),
            ("[1,2]".into(), "not a JSON object"),
            ("{\"flow_id\":1}".into(), "field `event_type`"),
            (
                EVE_FLOW.replace("+0100\",\"flow_id", "+01000\",\"flow_id"),
                "field `timestamp`",
            ),
            (
                EVE_FLOW.replace("\"dest_port\":443", "\"icmp_type\":256,\"dest_port\":443"),
                "field `icmp_type`",
            ),
        ];
        for (line, want) in &cases {
            let e = eve.line(line).unwrap_err();
            assert!(e.contains(want), "{line}: {e} lacks {want}");
            assert!(
                matches!(eve.line(EVE_FLOW), Ok(Parsed::Flow(_))),
                "after {want}"
            );
        }
    }

    #[test]
    fn new_file_forgets_the_header() {
        let row = "1796083200.5\tC1\t10.0.0.1\t1000\t10.0.0.2\t80\ttcp\thttp\t0.2\t100\t2000\tSF\tT\tT\t0\tShADadFf\t5\t400\t6\t2300\t-";
        let mut parser = LineParser::new(LiveFormat::Zeek);
        parse_all(&mut parser, &format!("{HEADER}{FIELDS}"));
        assert!(matches!(parser.line(row), Ok(Parsed::Flow(_))));
        parser.new_file();
        assert!(!parser.knows_layout());
        assert!(parser.line(row).unwrap_err().contains("#fields"));
        // The next file may be JSON, with a byte-order mark.
        let json = "\u{FEFF}{\"id.resp_p\":53,\"proto\":\"udp\",\"conn_state\":\"S0\",\"orig_pkts\":1,\"resp_pkts\":0}";
        assert!(matches!(parser.line(json), Ok(Parsed::Flow(_))));
        assert!(parser.line(row).unwrap_err().contains("bad JSON"));
        // And then TSV again, with its header.
        parser.new_file();
        parse_all(&mut parser, &format!("{HEADER}{FIELDS}"));
        assert!(matches!(parser.line(row), Ok(Parsed::Flow(_))));
    }

    /// The file reader's flows of `path`, labels and all.
    fn file_flows(format: LiveFormat, path: &std::path::Path) -> Vec<FlowRecord> {
        let options = ReadOptions::default();
        match format {
            LiveFormat::Zeek => {
                let mut sink = Reservoir::new(None, 0);
                zeek::stream(path, &options, &Window::default(), &mut sink).unwrap();
                sink.into_items()
            }
            LiveFormat::Suricata => {
                let mut sink = Reservoir::new(None, 0);
                suricata::stream(path, &options, &Window::default(), &mut sink).unwrap();
                sink.into_items().into_iter().map(|f| f.record).collect()
            }
        }
    }

    #[test]
    fn live_flows_are_the_file_readers_flows_minus_labels() {
        let tsv = format!(
            "{HEADER}#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\torig_pkts\tresp_pkts\tlabel\tdetailed-label\n\
             1.0\tC1\t10.0.0.1\t1000\t10.0.0.2\t443\ttcp\tssl,http\t0.25\t10\t20\tSF\t3\t4\tMalicious\tC&C\n\
             2.0\tC2\t10.0.0.1\t1001\t10.0.0.2\t3389\tTCP\trdp,ssl\t-\t-\t-\tRSTO\t3\t1\tBenign\t-\n\
             3.0\tC3\t10.0.0.1\t8\t10.0.0.2\t0\ticmp\t-\t1e-3\t56\t0\tOTH\t1\t0\tBackground\t-\n\
             #close\t2026-12-01-01-00-00\n"
        );
        let json = "{\"ts\":1.0,\"uid\":\"C1\",\"id.resp_p\":443,\"proto\":\"tcp\",\"service\":[\"ssl\"],\"duration\":2.5,\"orig_bytes\":1,\"resp_bytes\":2,\"conn_state\":\"S1\",\"orig_pkts\":3,\"resp_pkts\":4,\"label\":\"Malicious\"}\n\
                    {\"ts\":2.0,\"id\":{\"resp_p\":22},\"proto\":\"tcp\",\"conn_state\":\"REJ\",\"orig_pkts\":1,\"resp_pkts\":1}\n";
        let eve = [
            EVE_FLOW.to_string(),
            "{\"event_type\":\"alert\",\"flow_id\":1249374286410547,\"alert\":{\"category\":\"Misc Attack\",\"severity\":1}}".into(),
            "{\"event_type\":\"flow\",\"proto\":\"UDP\",\"dest_port\":1900,\"app_proto\":\"failed\",\"flow\":{\"pkts_toserver\":4,\"pkts_toclient\":0,\"bytes_toserver\":70,\"bytes_toclient\":0,\"age\":0}}".into(),
            "{\"event_type\":\"flow\",\"proto\":\"TCP\",\"dest_port\":22,\"app_proto\":\"ssh\",\"flow\":{\"pkts_toserver\":9,\"pkts_toclient\":9,\"bytes_toserver\":600,\"bytes_toclient\":900,\"age\":5,\"state\":\"established\"}}".into(),
            "{\"event_type\":\"flow\",\"proto\":\"TCP\",\"dest_port\":80,\"flow\":{\"pkts_toserver\":1,\"pkts_toclient\":1,\"bytes_toserver\":60,\"bytes_toclient\":54,\"age\":0},\"tcp\":{\"tcp_flags_ts\":\"02\",\"tcp_flags_tc\":\"14\"}}".into(),
        ]
        .join("\n");
        let dir = tempfile::tempdir().unwrap();
        for (format, name, text, attacks) in [
            (LiveFormat::Zeek, "conn.log", tsv.as_str(), 1),
            (LiveFormat::Zeek, "conn.json", json, 1),
            (LiveFormat::Suricata, "eve.json", eve.as_str(), 1),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let mut want = file_flows(format, &path);
            assert_eq!(
                want.iter().filter(|f| f.is_attack()).count(),
                attacks,
                "{name}: the file reader labels"
            );
            want.iter_mut().for_each(|f| f.label = None);
            let mut parser = LineParser::new(format);
            let got: Vec<FlowRecord> = flows(&parse_all(&mut parser, text))
                .into_iter()
                .map(|f| f.record)
                .collect();
            assert_eq!(got, want, "{name}");
            // The same through the public reader's table.
            let loaded = match format {
                LiveFormat::Zeek => zeek::read(&path, &ReadOptions::default()),
                LiveFormat::Suricata => suricata::read(&path, &ReadOptions::default()),
            }
            .unwrap();
            let live = crate::Records::from_flows(&got);
            for row in 0..loaded.records.len() {
                assert_eq!(live.numeric_row(row), loaded.records.numeric_row(row));
                assert_eq!(
                    live.categorical_row(row),
                    loaded.records.categorical_row(row)
                );
            }
        }
    }
}
