//! Zeek `conn.log`, in both of Zeek's log formats: the default TSV and JSON
//! lines (`redef LogAscii::use_json = T;`). The first non-empty line tells
//! them apart: a `#` header line means TSV, a `{` means JSON.
//!
//! # TSV
//!
//! The header lines `#separator` (e.g. `\x09`), `#empty_field` (`(empty)`),
//! `#unset_field` (`-`) and `#fields` are honoured; `#types` must have as
//! many entries as `#fields`; `#path` must name a conn log; `#open`,
//! `#close`, `#set_separator` and other `#` lines are passed over. Fields
//! are found by their `#fields` name, so the column order and extra columns
//! (`label`, `detailedlabel`, site-specific fields) do not matter. A later
//! `#fields` line (logs joined with `cat`) starts a new layout. A record
//! before any `#fields` line is a file error: the header was stripped.
//! Each `#fields` line is resolved once to the column of every field the
//! reader uses, so a row is split in one pass without allocating.
//!
//! The live parser ([`live`](super::live)) maps records through the same
//! functions, so a flow read live and read from a file are the same.
//!
//! # JSON lines
//!
//! One object per line with Zeek's dotted keys (`"id.resp_p"`; a nested
//! `"id": {"resp_p": …}` is accepted too). Unset fields are omitted (or
//! `null`).
//!
//! # Mapping to [`FlowRecord`]
//!
//! | Zeek field | [`FlowRecord`] field | when unset |
//! |---|---|---|
//! | `duration` | `duration_s` | 0 (Zeek leaves it unset for zero-length connections) |
//! | `orig_bytes`, `resp_bytes` (payload bytes) | `bytes_out`, `bytes_in` | 0 (likewise) |
//! | `orig_pkts`, `resp_pkts` | `packets_out`, `packets_in` | malformed row |
//! | `proto` | `protocol`, lower case | malformed row |
//! | `service` | `service`, through [`service_name`] | "other" |
//! | `conn_state` | `conn_state`, as is: one of Zeek's [`CONN_STATES`] | malformed row |
//! | `id.resp_p` | `dst_port` (for ICMP the message code, as Zeek logs it) | malformed row |
//!
//! A TSV header without one of the fields that cannot be unset is a file
//! error; one without `duration`, `orig_bytes`, `resp_bytes` or `service`
//! reads them as unset on every row.
//!
//! # Labels
//!
//! A `label` field, as in Stratosphere's labelled logs (CTU-50, IoT-23), is
//! read case-insensitively:
//!
//! - `Malicious`: an attack, of family `detailedlabel` (or
//!   `detailed-label`) when that is set, else "malicious".
//! - `Benign` (or `Normal`): benign.
//! - `Background`: benign too. Stratosphere gives it to flows that no
//!   labelling rule claimed, i.e. traffic nobody verified either way. That
//!   is what unlabelled telemetry is, and the crate treats unlabelled flows
//!   as benign ([`FlowRecord::label`]): an anomaly detector learns the bulk
//!   of a site's traffic as normal, whatever rare attack hides in it.
//! - unset or empty: unlabelled, so benign.
//! - anything else: a malformed row (a misaligned column, or a labelling
//!   scheme this reader does not know; better to stop than to guess).
//!
//! Without a `label` field every flow is unlabelled (benign).
//!
//! # Malformed rows
//!
//! A required field missing or unset, a count that is not a non-negative
//! number, a port outside 0–65535, an unknown `conn_state`, a TSV line
//! with the wrong number of fields, a JSON line that does not parse: each
//! is a malformed row, reported with file, line and the field at fault
//! (or counted with [`ReadOptions::skip_bad_rows`]).

use std::collections::HashSet;
use std::path::Path;

use serde_json::{Map, Value};

use super::reservoir::Reservoir;
use super::window::{Window, epoch_seconds_f64, epoch_seconds_text};
use super::{INVALID_UTF8, Loaded, ReadOptions, ReadReport, RowPolicy, next_line, open_text};
use crate::error::DatasetError;
use crate::record::{FlowRecord, NORMAL};
use crate::table::Records;

/// Zeek's connection states, as `conn_state` logs them.
pub const CONN_STATES: [&str; 13] = [
    "S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH",
];

/// The conn.log fields the readers use. A TSV header is resolved to one
/// column per field once, so a row is never searched by field name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Field {
    Ts,
    Uid,
    OrigH,
    OrigP,
    RespH,
    RespP,
    Proto,
    Service,
    Duration,
    OrigBytes,
    RespBytes,
    ConnState,
    OrigPkts,
    RespPkts,
    Label,
    DetailedLabel,
    DetailedLabelDash,
    DetailedLabelUnderscore,
}

/// How many [`Field`]s there are.
const FIELDS: usize = 18;

impl Field {
    const ALL: [Field; FIELDS] = [
        Field::Ts,
        Field::Uid,
        Field::OrigH,
        Field::OrigP,
        Field::RespH,
        Field::RespP,
        Field::Proto,
        Field::Service,
        Field::Duration,
        Field::OrigBytes,
        Field::RespBytes,
        Field::ConnState,
        Field::OrigPkts,
        Field::RespPkts,
        Field::Label,
        Field::DetailedLabel,
        Field::DetailedLabelDash,
        Field::DetailedLabelUnderscore,
    ];

    /// The field's Zeek name, as `#fields` and JSON keys spell it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Field::Ts => "ts",
            Field::Uid => "uid",
            Field::OrigH => "id.orig_h",
            Field::OrigP => "id.orig_p",
            Field::RespH => "id.resp_h",
            Field::RespP => "id.resp_p",
            Field::Proto => "proto",
            Field::Service => "service",
            Field::Duration => "duration",
            Field::OrigBytes => "orig_bytes",
            Field::RespBytes => "resp_bytes",
            Field::ConnState => "conn_state",
            Field::OrigPkts => "orig_pkts",
            Field::RespPkts => "resp_pkts",
            Field::Label => "label",
            Field::DetailedLabel => "detailedlabel",
            Field::DetailedLabelDash => "detailed-label",
            Field::DetailedLabelUnderscore => "detailed_label",
        }
    }

    fn of(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Fields a TSV header must name: they cannot be unset.
const REQUIRED: [Field; 5] = [
    Field::Proto,
    Field::ConnState,
    Field::RespP,
    Field::OrigPkts,
    Field::RespPkts,
];

/// Stratosphere's detailed label field, under each of its names.
const DETAILED_LABEL: [Field; 3] = [
    Field::DetailedLabel,
    Field::DetailedLabelDash,
    Field::DetailedLabelUnderscore,
];

/// The family of a `Malicious` flow without a detailed label.
pub const MALICIOUS: &str = "malicious";

const NOT_UTF8: &str = "the line is not valid UTF-8";

pub(super) const NO_HEADER: &str = "no `#fields` header line before the first record, so the columns are unknown; \
     keep Zeek's `#` header lines (`zeek-cut`, `tail` and some exporters drop them) \
     or log JSON instead (`redef LogAscii::use_json = T;`)";

const NOT_ZEEK: &str = "neither a Zeek TSV log (the first line is not a `#` header line such as \
     `#separator`/`#fields`) nor JSON lines (it is not a JSON object); \
     keep Zeek's `#` header lines (`zeek-cut`, `tail` and some exporters drop them) \
     or log JSON instead (`redef LogAscii::use_json = T;`)";

/// Reads a Zeek conn.log (TSV or JSON lines, plain or gzip) into flow
/// records.
pub fn read(path: &Path, options: &ReadOptions) -> Result<Loaded, DatasetError> {
    let mut kept = Reservoir::new(None, 0);
    let report = stream(path, options, &Window::default(), &mut kept)?;
    Ok(Loaded {
        records: Records::from_flows(&kept.into_items()),
        report,
    })
}

/// Reads a Zeek conn.log row by row into `sink`: rows outside `window` are
/// counted in the report's `outside` and left out; with a window set, a
/// record without a readable `ts` is a malformed row.
pub(crate) fn stream(
    path: &Path,
    options: &ReadOptions,
    window: &Window,
    sink: &mut Reservoir<FlowRecord>,
) -> Result<ReadReport, DatasetError> {
    let mut reader = open_text(path)?;
    let mut policy = RowPolicy::new(path, options);
    let mut format: Option<Format> = None;
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
        if format.is_none() {
            format = Some(detect(text).map_err(|r| policy.file_error(Some(line), r))?);
        }
        let Some(format) = format.as_mut() else {
            continue;
        };
        if buf == INVALID_UTF8 {
            policy.bad_row(line, NOT_UTF8.into())?;
            continue;
        }
        let row = match format.line(&buf) {
            Ok(None) => continue,
            Ok(Some(row)) => file_row(&row, window.is_set()),
            Err(LineError::File(r)) => return Err(policy.file_error(Some(line), r)),
            Err(LineError::Row(r)) => Err(r),
        };
        match row {
            Ok((_, Some(ts))) if !window.contains(ts) => policy.report.outside += 1,
            Ok((flow, _)) => {
                rows += 1;
                sink.offer(flow);
            }
            Err(r) => policy.bad_row(line, r)?,
        }
    }
    match format {
        None => Err(policy.file_error(
            None,
            "the file is empty; expected a Zeek conn.log (TSV with `#` headers, or JSON lines)"
                .into(),
        )),
        Some(Format::Tsv(tsv)) if tsv.columns.is_none() => {
            Err(policy.file_error(None, NO_HEADER.into()))
        }
        Some(_) => Ok(policy.finish_rows(rows)),
    }
}

/// The format of the first non-empty line.
fn detect(first: &str) -> Result<Format, String> {
    if first == INVALID_UTF8 {
        return Err("the file is not UTF-8 text; expected a Zeek conn.log".into());
    }
    if first.starts_with('#') {
        Ok(Format::Tsv(Tsv::default()))
    } else if first.starts_with('{') {
        Ok(Format::Json)
    } else {
        Err(NOT_ZEEK.into())
    }
}

/// A file's log format, with the TSV header read so far.
#[derive(Debug)]
pub(super) enum Format {
    Tsv(Tsv),
    Json,
}

/// What is wrong with a line: the file as a whole, or only this row.
pub(super) enum LineError {
    File(String),
    Row(String),
}

/// The labelled flow of a file's record and, when asked for, its `ts` in
/// nanoseconds since the epoch.
fn file_row(row: &Row<'_>, with_ts: bool) -> Result<(FlowRecord, Option<i128>), String> {
    let ts = with_ts.then(|| zeek_ts(row.get(Field::Ts))).transpose()?;
    let mut flow = conn_record(row)?;
    flow.label = stratosphere_label(row)?;
    Ok((flow, ts))
}

impl Format {
    /// A record's fields, or `None` for a header line (which updates the
    /// TSV layout).
    pub(super) fn line<'a>(&'a mut self, line: &'a str) -> Result<Option<Row<'a>>, LineError> {
        match self {
            Format::Json => json_object(line)
                .map(|obj| Some(Row::Json(obj)))
                .map_err(LineError::Row),
            Format::Tsv(tsv) => {
                if line.starts_with('#') {
                    return tsv.header(line).map(|()| None).map_err(LineError::File);
                }
                tsv.row(line).map(Some)
            }
        }
    }
}

/// One record's fields, found by [`Field`].
// The TSV cells live on the stack on purpose: boxing them would allocate
// per row, which the fixed array exists to avoid.
#[allow(clippy::large_enum_variant)]
pub(super) enum Row<'a> {
    /// The TSV cells of the fields the header names; the header's unset and
    /// empty markers.
    Tsv {
        cells: [Option<&'a str>; FIELDS],
        unset: &'a str,
        empty: &'a str,
    },
    Json(Map<String, Value>),
}

impl Row<'_> {
    pub(super) fn get(&self, field: Field) -> Cell<'_> {
        match self {
            Row::Tsv {
                cells,
                unset,
                empty,
            } => match cells[field as usize] {
                None => Cell::Unset,
                Some(t) if t == *unset => Cell::Unset,
                Some(t) if t == *empty => Cell::Text(""),
                Some(t) => Cell::Text(t),
            },
            Row::Json(obj) => Cell::json(json_field(obj, field.name())),
        }
    }
}

/// The TSV header read so far.
#[derive(Debug)]
pub(super) struct Tsv {
    separator: String,
    /// The separator when it is one character, the usual case: splitting on
    /// a `char` is faster than on a string.
    separator_char: Option<char>,
    empty: String,
    unset: String,
    columns: Option<Columns>,
}

impl Default for Tsv {
    fn default() -> Self {
        Tsv {
            separator: "\t".into(),
            separator_char: Some('\t'),
            empty: "(empty)".into(),
            unset: "-".into(),
            columns: None,
        }
    }
}

/// Which [`Field`] each `#fields` column holds.
#[derive(Debug)]
struct Columns {
    fields: Vec<Option<Field>>,
}

impl Tsv {
    fn header(&mut self, line: &str) -> Result<(), String> {
        if let Some(rest) = line.strip_prefix("#separator") {
            // Zeek writes `#separator \x09`: one space, then the escaped value.
            let value = unescape(rest.strip_prefix(' ').unwrap_or(rest));
            if value.is_empty() {
                return Err("the `#separator` header line gives no separator".into());
            }
            let mut chars = value.chars();
            self.separator_char = chars.next().filter(|_| chars.next().is_none());
            self.separator = value;
            return Ok(());
        }
        let mut parts = line.split(self.separator.as_str());
        let directive = parts.next().unwrap_or_default().trim();
        let values: Vec<&str> = parts.collect();
        let first = values.first().copied().map(unescape);
        match directive {
            "#empty_field" => self.empty = first.unwrap_or_default(),
            "#unset_field" => self.unset = first.unwrap_or_default(),
            "#path" => {
                if let Some(log) = first.filter(|p| !p.starts_with("conn")) {
                    return Err(format!(
                        "this is Zeek's `{log}` log, not a conn.log; pass the conn log"
                    ));
                }
            }
            "#fields" => {
                // A rejected layout must not leave the previous one in force.
                self.columns = None;
                self.columns = Some(Columns::new(&values)?);
            }
            "#types" => {
                if let Some(columns) = &self.columns
                    && values.len() != columns.width()
                {
                    return Err(format!(
                        "`#types` lists {} types but `#fields` names {} fields; the header is damaged",
                        values.len(),
                        columns.width()
                    ));
                }
            }
            _ => {} // #open, #close, #set_separator, comments
        }
        Ok(())
    }

    /// A record's cells: one pass over the line, nothing allocated.
    fn row<'a>(&'a self, line: &'a str) -> Result<Row<'a>, LineError> {
        let Some(columns) = &self.columns else {
            return Err(LineError::File(NO_HEADER.into()));
        };
        let mut cells = [None; FIELDS];
        let width = match self.separator_char {
            Some(c) => columns.place(line.split(c), &mut cells),
            None => columns.place(line.split(self.separator.as_str()), &mut cells),
        };
        if width != columns.width() {
            return Err(LineError::Row(format!(
                "{width} fields, but `#fields` names {}",
                columns.width()
            )));
        }
        Ok(Row::Tsv {
            cells,
            unset: &self.unset,
            empty: &self.empty,
        })
    }

    /// Whether a `#fields` header has been read.
    pub(super) fn has_columns(&self) -> bool {
        self.columns.is_some()
    }
}

impl Columns {
    fn new(names: &[&str]) -> Result<Columns, String> {
        let mut seen = HashSet::new();
        for name in names {
            if !seen.insert(name.trim()) {
                return Err(format!("`#fields` names `{}` twice", name.trim()));
            }
        }
        let fields: Vec<Option<Field>> = names.iter().map(|n| Field::of(n.trim())).collect();
        let missing: Vec<&str> = REQUIRED
            .into_iter()
            .filter(|f| !fields.contains(&Some(*f)))
            .map(Field::name)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "`#fields` has no {}; a conn.log needs {} (`orig_pkts`/`resp_pkts` come with \
                 Zeek's `use_conn_size_analyzer`, on by default)",
                quoted(&missing),
                quoted(&REQUIRED.map(Field::name))
            ));
        }
        Ok(Columns { fields })
    }

    fn width(&self) -> usize {
        self.fields.len()
    }

    /// Puts each cell of `row` that holds a [`Field`] in its place; the
    /// number of cells.
    fn place<'a>(
        &self,
        row: impl Iterator<Item = &'a str>,
        cells: &mut [Option<&'a str>; FIELDS],
    ) -> usize {
        let mut width = 0;
        for cell in row {
            if let Some(Some(field)) = self.fields.get(width) {
                cells[*field as usize] = Some(cell);
            }
            width += 1;
        }
        width
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Decodes Zeek's `\xHH` escapes (used in header values such as
/// `#separator \x09`).
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("\\x") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        match after
            .get(..2)
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &after[2..];
            }
            None => {
                out.push_str("\\x");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A record's `ts` in nanoseconds since the epoch: epoch seconds (TSV, or
/// a JSON number), or an ISO 8601 string (JSON logs written with
/// `LogAscii::json_timestamps = JSON::TS_ISO8601`). The file readers read
/// it only when a time window needs it.
pub(super) fn zeek_ts(cell: Cell<'_>) -> Result<i128, String> {
    let nanos = match cell {
        Cell::Unset => {
            return Err(
                "field `ts` is missing or unset, so the row cannot be placed in the time \
                 window (since/until)"
                    .into(),
            );
        }
        Cell::Text(t) => epoch_seconds_text(t),
        Cell::Json(Value::String(s)) => super::suricata::parse_timestamp(s),
        Cell::Json(v) => v.as_f64().and_then(epoch_seconds_f64),
    };
    nanos.ok_or_else(|| {
        format!(
            "field `ts`: {} is not epoch seconds (e.g. 1796083200.123456) or an ISO 8601 time",
            cell.shown()
        )
    })
}

/// A line parsed as one JSON object.
pub(super) fn json_object(line: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(line) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(_) => Err("not a JSON object; expected one object per line".into()),
        Err(e) => Err(format!("bad JSON: {e}")),
    }
}

/// `key` of `obj`: the dotted key itself (`"id.resp_p"`), or else the path
/// through nested objects (`"id": {"resp_p": …}`).
pub(super) fn json_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        let (head, rest) = key.split_once('.')?;
        json_field(obj.get(head)?.as_object()?, rest)
    })
}

/// One field of one record, whatever the log format.
#[derive(Clone, Copy, Debug)]
pub(super) enum Cell<'a> {
    /// Absent, JSON `null`, or the TSV unset marker.
    Unset,
    Text(&'a str),
    Json(&'a Value),
}

impl<'a> Cell<'a> {
    pub(super) fn json(value: Option<&'a Value>) -> Self {
        match value {
            None | Some(Value::Null) => Cell::Unset,
            Some(v) => Cell::Json(v),
        }
    }

    /// The value as the error message shows it (cut to a readable length).
    pub(super) fn shown(self) -> String {
        let full = match self {
            Cell::Unset => "unset".to_string(),
            Cell::Text(t) => format!("{t:?}"),
            Cell::Json(v) => v.to_string(),
        };
        match full.char_indices().nth(40) {
            Some((at, _)) => format!("{}…", &full[..at]),
            None => full,
        }
    }
}

fn missing(field: &str) -> String {
    format!("field `{field}` is missing or unset")
}

/// A finite number >= 0 (counts, durations).
pub(super) fn count(cell: Cell<'_>, field: &str) -> Result<f64, String> {
    let value = match cell {
        Cell::Unset => return Err(missing(field)),
        Cell::Text(t) => t.trim().parse::<f64>().ok(),
        Cell::Json(v) => v.as_f64(),
    };
    match value {
        None => Err(format!("field `{field}`: {} is not a number", cell.shown())),
        Some(v) if !v.is_finite() => {
            Err(format!("field `{field}`: {} is not finite", cell.shown()))
        }
        Some(v) if v < 0.0 => Err(format!("field `{field}`: {} is negative", cell.shown())),
        Some(v) => Ok(v),
    }
}

/// [`count`], with an unset field read as 0.
fn count_or_zero(cell: Cell<'_>, field: &str) -> Result<f64, String> {
    match cell {
        Cell::Unset => Ok(0.0),
        cell => count(cell, field),
    }
}

/// A port number, 0–65535.
pub(super) fn port(cell: Cell<'_>, field: &str) -> Result<u16, String> {
    let value = match cell {
        Cell::Unset => return Err(missing(field)),
        Cell::Text(t) => t.trim().parse::<u16>().ok(),
        Cell::Json(v) => v.as_u64().and_then(|n| u16::try_from(n).ok()),
    };
    value.ok_or_else(|| {
        format!(
            "field `{field}`: {} is not a port number (0 to 65535)",
            cell.shown()
        )
    })
}

/// A string.
pub(super) fn text<'a>(cell: Cell<'a>, field: &str) -> Result<&'a str, String> {
    match cell {
        Cell::Unset => Err(missing(field)),
        Cell::Text(t) => Ok(t),
        Cell::Json(Value::String(s)) => Ok(s),
        Cell::Json(_) => Err(format!("field `{field}`: {} is not a string", cell.shown())),
    }
}

/// The flow of one conn.log record, unlabelled: the mapping both the file
/// reader and the live parser use.
pub(super) fn conn_record(row: &Row<'_>) -> Result<FlowRecord, String> {
    let protocol = text(row.get(Field::Proto), "proto")?
        .trim()
        .to_ascii_lowercase();
    if protocol.is_empty() {
        return Err("field `proto` is empty".into());
    }
    let dst_port = port(row.get(Field::RespP), "id.resp_p")?;
    let state = text(row.get(Field::ConnState), "conn_state")?.trim();
    let Some(conn_state) = CONN_STATES.iter().find(|s| **s == state) else {
        return Err(format!(
            "field `conn_state`: {state:?} is not a Zeek connection state ({})",
            CONN_STATES.join(", ")
        ));
    };
    let service = match row.get(Field::Service) {
        Cell::Unset => "other",
        Cell::Json(Value::Array(items)) => {
            let names = items
                .iter()
                .map(|v| {
                    v.as_str()
                        .ok_or_else(|| format!("field `service`: {v} is not a string"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            service_name(&names.join(","), dst_port)
        }
        cell => service_name(text(cell, "service")?, dst_port),
    };
    Ok(FlowRecord {
        duration_s: count_or_zero(row.get(Field::Duration), "duration")?,
        bytes_out: count_or_zero(row.get(Field::OrigBytes), "orig_bytes")?,
        bytes_in: count_or_zero(row.get(Field::RespBytes), "resp_bytes")?,
        packets_out: count(row.get(Field::OrigPkts), "orig_pkts")?,
        packets_in: count(row.get(Field::RespPkts), "resp_pkts")?,
        protocol,
        service: service.to_string(),
        conn_state: (*conn_state).to_string(),
        dst_port,
        label: None,
    })
}

/// The attack family of a Stratosphere `label`/`detailedlabel` pair, or
/// `None` for benign, background and unlabelled flows.
fn stratosphere_label(row: &Row<'_>) -> Result<Option<String>, String> {
    let label = match row.get(Field::Label) {
        Cell::Unset => return Ok(None),
        cell => text(cell, "label")?.trim(),
    };
    if label.is_empty()
        || ["benign", "background", "normal"]
            .iter()
            .any(|b| label.eq_ignore_ascii_case(b))
    {
        return Ok(None);
    }
    if !label.eq_ignore_ascii_case("malicious") {
        return Err(format!(
            "field `label`: {label:?} is not Malicious, Benign or Background"
        ));
    }
    for field in DETAILED_LABEL {
        let detailed = match row.get(field) {
            Cell::Unset => continue,
            cell => text(cell, field.name())?.trim(),
        };
        if !detailed.is_empty() && !detailed.eq_ignore_ascii_case(NORMAL) {
            return Ok(Some(detailed.to_string()));
        }
    }
    Ok(Some(MALICIOUS.to_string()))
}

/// The [`FlowRecord::service`] of a Zeek `service` list (comma-separated,
/// e.g. `gssapi,smb,krb`) or a Suricata `app_proto`, on responder port
/// `port`:
///
/// | sensor's name | service |
/// |---|---|
/// | `http`, `http2` | http |
/// | `ssl`, `tls`, `dtls`, `quic` on port 443 | https |
/// | `dns` | dns |
/// | `ssh` | ssh |
/// | `smtp` | smtp |
/// | `rdp`, `rdpeudp` | rdp |
/// | `smb` | smb |
/// | `ntp` | ntp |
/// | `ldap`, `ldap_tcp`, `ldap_udp` | ldap |
/// | anything else; TLS on another port; none; Suricata's `failed` | other |
///
/// Names are matched case-insensitively. In a list, a named application
/// wins over TLS (`ssl,rdp` → rdp), whatever the order; names Zeek marks
/// with a leading `-` (analyzers that gave up) are passed over. TLS on a
/// port other than 443 (IMAPS, LDAPS, RDP security layer, custom ports)
/// stays "other" rather than guessing what it carries.
pub fn service_name(names: &str, port: u16) -> &'static str {
    // Called for every flow: the names are compared in place, nothing is
    // allocated.
    let mut tls = false;
    for name in names
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.starts_with('-'))
    {
        let is = |known: &[&str]| known.iter().any(|k| name.eq_ignore_ascii_case(k));
        let application = if is(&["http", "http2"]) {
            "http"
        } else if is(&["dns"]) {
            "dns"
        } else if is(&["ssh"]) {
            "ssh"
        } else if is(&["smtp"]) {
            "smtp"
        } else if is(&["rdp", "rdpeudp"]) {
            "rdp"
        } else if is(&["smb"]) {
            "smb"
        } else if is(&["ntp"]) {
            "ntp"
        } else if is(&["ldap", "ldap_tcp", "ldap_udp"]) {
            "ldap"
        } else {
            tls |= is(&["ssl", "tls", "dtls", "quic"]);
            continue;
        };
        return application;
    }
    if tls && port == 443 { "https" } else { "other" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const HEADER: &str = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#open\t2022-06-17-00-00-07\n";

    fn write(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    fn flows_of(loaded: &Loaded) -> Vec<Vec<String>> {
        (0..loaded.records.len())
            .map(|i| loaded.records.categorical_row(i).to_vec())
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

    fn skip() -> ReadOptions {
        ReadOptions {
            skip_bad_rows: true,
        }
    }

    #[test]
    fn tsv_fields_by_name_labels_and_trailer() {
        let dir = tempfile::tempdir().unwrap();
        // Columns in an unusual order, extra columns, CRLF, a #close trailer.
        let body = format!(
            "{HEADER}#fields\tlabel\tconn_state\tproto\tid.resp_p\tservice\tduration\torig_bytes\tresp_bytes\torig_pkts\tresp_pkts\tdetailedlabel\textra\r\n\
             #types\tstring\tstring\tenum\tport\tstring\tinterval\tcount\tcount\tcount\tcount\tstring\tstring\r\n\
             Malicious\tS0\ttcp\t3933\t-\t-\t-\t-\t2\t0\tExternal-Attack-to-Device\tx\r\n\
             Benign\tSF\ttcp\t443\tssl\t1.5\t1596\t4039\t14\t16\tMicrosoft\t(empty)\r\n\
             \r\n\
             Background\tSHR\tTCP\t8443\tssl\t0.5\t0\t10\t0\t1\t-\ty\r\n\
             malicious\tOTH\ticmp\t0\t-\t-\t-\t-\t1\t0\t(empty)\tz\r\n\
             (empty)\tS1\tudp\t53\tdns\t0.1\t30\t60\t1\t1\t-\tz\r\n\
             #close\t2022-06-18-00-00-00\r\n"
        );
        let p = write(dir.path(), "conn.log.labeled", &body);
        let loaded = read(&p, &ReadOptions::default()).unwrap();
        assert_eq!(loaded.report.rows, 5);
        assert_eq!(
            loaded.records.families(),
            [
                "External-Attack-to-Device",
                "normal",
                "normal",
                MALICIOUS,
                "normal"
            ]
        );
        let cats = flows_of(&loaded);
        assert_eq!(cats[0], ["tcp", "other", "S0", "registered"]);
        assert_eq!(cats[1], ["tcp", "https", "SF", "well_known"]);
        assert_eq!(cats[2], ["tcp", "other", "SHR", "registered"]);
        assert_eq!(cats[3], ["icmp", "other", "OTH", "well_known"]);
        assert_eq!(cats[4], ["udp", "dns", "S1", "well_known"]);
        assert_eq!(numeric(&loaded, 0, "duration"), 0.0);
        assert_eq!(numeric(&loaded, 0, "bytes_out"), 0.0);
        assert_eq!(numeric(&loaded, 0, "packets_out"), 2.0);
        assert_eq!(numeric(&loaded, 1, "duration"), 1.5);
        assert_eq!(numeric(&loaded, 1, "bytes_out"), 1596.0);
        assert_eq!(numeric(&loaded, 1, "bytes_in"), 4039.0);
        assert_eq!(numeric(&loaded, 1, "packets_in"), 16.0);
    }

    #[test]
    fn tsv_other_separator_and_second_header() {
        let dir = tempfile::tempdir().unwrap();
        let body = "#separator \\x2c\n#unset_field,?\n#fields,proto,conn_state,id.resp_p,orig_pkts,resp_pkts\n\
                    tcp,S0,22,1,0\n\
                    #separator \\x09\n#fields\tresp_pkts\torig_pkts\tid.resp_p\tconn_state\tproto\tduration\n\
                    3\t4\t80\tSF\ttcp\t-\n";
        let p = write(dir.path(), "joined.log", body);
        // A new header block keeps the earlier `#unset_field` (`?`) unless
        // it repeats it, so its `-` is not a number.
        let e = read(&p, &ReadOptions::default()).unwrap_err().to_string();
        assert!(e.contains("joined.log:7: field `duration`"), "{e}");
        let body = body.replace("\\x09\n#fields", "\\x09\n#unset_field\t-\n#fields");
        let p = write(dir.path(), "joined2.log", &body);
        let loaded = read(&p, &ReadOptions::default()).unwrap();
        assert_eq!(loaded.report.rows, 2);
        assert_eq!(flows_of(&loaded)[0], ["tcp", "other", "S0", "well_known"]);
        assert_eq!(numeric(&loaded, 1, "packets_out"), 4.0);
        assert_eq!(numeric(&loaded, 1, "packets_in"), 3.0);
        assert_eq!(numeric(&loaded, 1, "duration"), 0.0);
    }

    #[test]
    fn json_lines_dotted_nested_omitted_and_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let body = "{\"ts\":1.0,\"id.resp_p\":53,\"proto\":\"udp\",\"service\":\"dns\",\"duration\":0.5,\"orig_bytes\":0,\"resp_bytes\":111,\"conn_state\":\"SHR\",\"orig_pkts\":0,\"resp_pkts\":1}\n\
                    \n\
                    {\"id\":{\"resp_p\":443},\"proto\":\"tcp\",\"conn_state\":\"S0\",\"orig_pkts\":1,\"resp_pkts\":0,\"service\":[\"ssl\"]}\n\
                    {\"id.resp_p\":8,\"proto\":\"icmp\",\"conn_state\":\"OTH\",\"orig_pkts\":1,\"resp_pkts\":0,\"duration\":null,\"label\":\"Malicious\",\"detailedlabel\":\"PortScan\"}\n";
        let gz = dir.path().join("conn.json.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        enc.write_all(body.as_bytes()).unwrap();
        enc.finish().unwrap();
        let loaded = read(&gz, &ReadOptions::default()).unwrap();
        assert_eq!(loaded.report.rows, 3);
        let cats = flows_of(&loaded);
        assert_eq!(cats[0], ["udp", "dns", "SHR", "well_known"]);
        assert_eq!(cats[1], ["tcp", "https", "S0", "well_known"]);
        assert_eq!(cats[2], ["icmp", "other", "OTH", "well_known"]);
        assert_eq!(numeric(&loaded, 0, "duration"), 0.5);
        assert_eq!(numeric(&loaded, 0, "bytes_in"), 111.0);
        assert_eq!(numeric(&loaded, 1, "duration"), 0.0);
        assert_eq!(loaded.records.families(), ["normal", "normal", "PortScan"]);
    }

    #[test]
    fn malformed_rows_name_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let fields =
            "#fields\tproto\tconn_state\tid.resp_p\torig_pkts\tresp_pkts\tduration\tlabel\n";
        let rows = [
            ("tcp\tS0\t22\t1\t0\t-\t-", None),
            (
                "tcp\t-\t22\t1\t0\t-\t-",
                Some("field `conn_state` is missing or unset"),
            ),
            (
                "tcp\tS0\t22\tmany\t0\t-\t-",
                Some("field `orig_pkts`: \"many\" is not a number"),
            ),
            (
                "tcp\tS0\t22\t1\t0\t-3\t-",
                Some("field `duration`: \"-3\" is negative"),
            ),
            (
                "tcp\tS0\t22\t1\t0\tnan\t-",
                Some("field `duration`: \"nan\" is not finite"),
            ),
            (
                "tcp\tS0\t22\t1\t0\t-",
                Some("6 fields, but `#fields` names 7"),
            ),
            (
                "tcp\tS0\t70000\t1\t0\t-\t-",
                Some("field `id.resp_p`: \"70000\" is not a port"),
            ),
            (
                "tcp\tXX\t22\t1\t0\t-\t-",
                Some("field `conn_state`: \"XX\" is not a Zeek connection state"),
            ),
            (
                "tcp\tS0\t22\t1\t0\t-\tevil",
                Some("field `label`: \"evil\" is not Malicious"),
            ),
            (
                "(empty)\tS0\t22\t1\t0\t-\t-",
                Some("field `proto` is empty"),
            ),
            ("udp\tSF\t53\t1\t1\t0.1\tBenign", None),
        ];
        let mut body = format!("{HEADER}{fields}");
        for (row, _) in &rows {
            body.push_str(row);
            body.push('\n');
        }
        let mut bytes = body.into_bytes();
        bytes.extend_from_slice(b"tcp\tS0\t\xff\t1\t0\t-\t-\n");
        let p = dir.path().join("bad.log");
        std::fs::write(&p, &bytes).unwrap();
        let first_data = 8; // six header lines and `#fields` come first
        let e = read(&p, &ReadOptions::default()).unwrap_err().to_string();
        let want = format!("bad.log:{}: field `conn_state`", first_data + 1);
        assert!(
            e.contains(&want) && e.contains("enable skip_bad_rows"),
            "{e}"
        );

        let loaded = read(&p, &skip()).unwrap();
        assert_eq!(loaded.report.rows, 2);
        assert_eq!(loaded.report.skipped, 10);
        let skips = &loaded.report.first_skips;
        let expected: Vec<(u64, &str)> = rows
            .iter()
            .enumerate()
            .filter_map(|(i, (_, why))| why.map(|w| (first_data + i as u64, w)))
            .collect();
        assert_eq!(expected.len(), 9);
        assert_eq!(skips.len(), 10);
        for ((line, reason), (want_line, want)) in skips.iter().zip(&expected) {
            assert_eq!(line, want_line, "{reason}");
            assert!(reason.contains(want), "line {line}: {reason} lacks {want}");
        }
        assert_eq!(skips[9], (first_data + 11, NOT_UTF8.to_string()));

        let json = "{\"proto\":\"tcp\",\"conn_state\":\"S0\",\"id.resp_p\":22,\"orig_pkts\":1,\"resp_pkts\":0}\n\
                    {\"proto\":\"tcp\",\"conn_state\":\"S0\",\"id.resp_p\":22,\"orig_pkts\":1}\n\
                    {\"proto\":\"tcp\",\"conn_state\":\"S0\",\"id.resp_p\":22,\"orig_pkts\":\"1\",\"resp_pkts\":0}\n\
                    {\"proto\":\"tcp\",\"conn_state\":\"S0\",\"id.resp_p\":-1,\"orig_pkts\":1,\"resp_pkts\":0}\n\
                    {\"proto\":\"tcp\",\"conn_state\":\"S0\",\"id.resp_p\":22,\"orig_pkts\":1,\"resp_pkts\":0,\"orig_bytes\":-5}\n\
                    {\"proto\":\"tcp\",\"conn_state\":\"S0\",\"id.resp_p\":22,\n\
                    [1,2]\n\
                    {\"proto\":6,\"conn_state\":\"S0\",\"id.resp_p\":22,\"orig_pkts\":1,\"resp_pkts\":0}\n";
        let p = write(dir.path(), "bad.json", json);
        let e = read(&p, &ReadOptions::default()).unwrap_err().to_string();
        assert!(
            e.contains("bad.json:2: field `resp_pkts` is missing"),
            "{e}"
        );
        let loaded = read(&p, &skip()).unwrap();
        assert_eq!(loaded.report.rows, 1);
        let reasons: Vec<String> = loaded
            .report
            .first_skips
            .iter()
            .map(|(l, r)| format!("{l}: {r}"))
            .collect();
        let wanted = [
            "2: field `resp_pkts` is missing",
            "3: field `orig_pkts`: \"1\" is not a number",
            "4: field `id.resp_p`: -1 is not a port",
            "5: field `orig_bytes`: -5 is negative",
            "6: bad JSON",
            "7: not a JSON object",
            "8: field `proto`: 6 is not a string",
        ];
        assert_eq!(reasons.len(), wanted.len(), "{reasons:?}");
        for (got, want) in reasons.iter().zip(wanted) {
            assert!(got.starts_with(want), "{got} vs {want}");
        }
    }

    #[test]
    fn file_errors_name_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let stripped = write(dir.path(), "cut.log", "1.0\tC1\t10.0.0.1\t22\ttcp\n");
        let e = read(&stripped, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cut.log:1") && e.contains("#fields") && e.contains("use_json"),
            "{e}"
        );
        let e = read(&stripped, &skip()).unwrap_err().to_string();
        assert!(
            e.contains("cut.log:1"),
            "skipping does not hide a file error: {e}"
        );

        let no_fields = write(dir.path(), "nofields.log", &format!("{HEADER}tcp\tS0\n"));
        let e = read(&no_fields, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("nofields.log:7") && e.contains("no `#fields`"),
            "{e}"
        );
        let only_header = write(dir.path(), "header.log", HEADER);
        let e = read(&only_header, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no `#fields`"), "{e}");

        let lacking = write(
            dir.path(),
            "lacking.log",
            &format!("{HEADER}#fields\tproto\tconn_state\tid.resp_p\n"),
        );
        let e = read(&lacking, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("lacking.log:7") && e.contains("`orig_pkts`, `resp_pkts`"),
            "{e}"
        );
        let types = write(
            dir.path(),
            "types.log",
            &format!(
                "{HEADER}#fields\tproto\tconn_state\tid.resp_p\torig_pkts\tresp_pkts\n#types\tenum\n"
            ),
        );
        let e = read(&types, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("types.log:8") && e.contains("`#types`"), "{e}");
        let dns = write(dir.path(), "dns.log", &HEADER.replace("conn", "dns"));
        let e = read(&dns, &ReadOptions::default()).unwrap_err().to_string();
        assert!(e.contains("`dns` log"), "{e}");
        let empty = write(dir.path(), "empty.log", "\n\n");
        let e = read(&empty, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty"), "{e}");
        let binary = dir.path().join("bin.log");
        std::fs::write(&binary, b"\xff\xfe\x00\x01\n").unwrap();
        let e = read(&binary, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("bin.log:1") && e.contains("UTF-8"), "{e}");
    }

    #[test]
    fn services_map_to_the_flow_vocabulary() {
        let cases = [
            ("http", 80, "http"),
            ("HTTP", 8080, "http"),
            ("ssl", 443, "https"),
            ("quic", 443, "https"),
            ("ssl", 8443, "other"),
            ("ssl", 993, "other"),
            ("ssl,http", 443, "http"),
            ("rdp,ssl", 3389, "rdp"),
            ("gssapi,smb,krb", 445, "smb"),
            ("dns", 53, "dns"),
            ("ssh", 22, "ssh"),
            ("smtp", 25, "smtp"),
            ("ntp", 123, "ntp"),
            ("ldap_tcp", 389, "ldap"),
            ("-ssl,dce_rpc", 443, "other"),
            ("sip", 5060, "other"),
            ("", 80, "other"),
            ("failed", 443, "other"),
            ("tls", 443, "https"),
        ];
        for (names, port, want) in cases {
            assert_eq!(service_name(names, port), want, "{names} on {port}");
        }
    }

    #[test]
    fn unescape_decodes_hex_only() {
        assert_eq!(unescape("\\x09"), "\t");
        assert_eq!(unescape("a\\x2cb"), "a,b");
        assert_eq!(unescape("\\xZZ\\x"), "\\xZZ\\x");
        assert_eq!(unescape("é\\x"), "é\\x");
    }
}
