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
#[derive(Debug)]
pub struct LineParser {
    format: LiveFormat,
}

impl LineParser {
    pub fn new(format: LiveFormat) -> Self {
        LineParser { format }
    }

    pub fn format(&self) -> LiveFormat {
        self.format
    }

    /// A new file begins: forget what the last one declared (Zeek writes a
    /// header into every file, and may switch between TSV and JSON).
    pub fn new_file(&mut self) {
        unimplemented!("live parsing")
    }

    /// One line, without its newline (a trailing `\r` is tolerated). `Err`
    /// says why the line is malformed; the parser stays usable.
    pub fn line(&mut self, line: &str) -> Result<Parsed, String> {
        let _ = line;
        unimplemented!("live parsing")
    }
}
