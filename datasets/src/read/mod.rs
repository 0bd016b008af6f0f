//! Readers of real telemetry, all producing [`Records`](crate::Records).
//!
//! Every reader opens its file through [`open_text`] (plain or gzip, found by
//! the magic bytes, a UTF-8 byte-order mark dropped, CRLF tolerated) and
//! reports a malformed row as [`DatasetError::BadRow`] naming file, line and
//! reason — or, with [`ReadOptions::skip_bad_rows`], counts it in the
//! [`ReadReport`] and goes on. The caller says how its users turn skipping
//! on ([`DatasetError::with_skip_hint`]): a flag for one command, a config
//! field for another.
//!
//! - [`csv`]: any CSV described by a [`CsvSchema`](csv::CsvSchema) (TOML).
//! - [`nsl_kdd`]: the four NSL-KDD files, through a built-in CSV schema.
//! - [`zeek`]: Zeek `conn.log`, TSV or JSON lines, with Stratosphere labels.
//! - [`suricata`]: Suricata EVE JSON `flow` events, labelled by their alerts.
//! - [`source`]: a Zeek or Suricata source of many rotated files, read as
//!   one stream through a time window into a bounded sample, with its
//!   [`SourceReport`](source::SourceReport).
//! - [`live`]: line-at-a-time parsing of Zeek and Suricata logs as they
//!   are written, each flow with its [`FlowKey`](live::FlowKey).
//! - [`files`]: which files a path, directory or glob pattern names.
//! - [`window`]: the `since..until` [`Window`](window::Window) rows are kept by.
//! - [`reservoir`]: where streamed rows go: all, or a uniform sample of
//!   `max_rows`.

pub mod csv;
pub mod files;
pub mod live;
pub mod nsl_kdd;
pub mod reservoir;
pub mod source;
pub mod suricata;
pub mod window;
pub mod zeek;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::error::DatasetError;
use crate::table::Records;

/// How many skipped rows a report describes one by one.
pub const REPORTED_SKIPS: usize = 10;

/// Options every reader takes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Count and report malformed rows instead of failing on the first.
    pub skip_bad_rows: bool,
}

/// What a reader did with the file's rows.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReadReport {
    pub file: String,
    /// Rows read into the records (in the time window, if one was set).
    pub rows: usize,
    /// Rows left out because their timestamp fell outside the time window.
    pub outside: usize,
    /// Malformed rows skipped (only with `skip_bad_rows`).
    pub skipped: usize,
    /// Records the format defines as not a flow (e.g. Suricata alerts),
    /// left out on purpose.
    pub ignored: usize,
    /// The first [`REPORTED_SKIPS`] skipped rows: `(line, reason)`.
    pub first_skips: Vec<(u64, String)>,
    /// Rows whose label and attack family disagree (a benign label with an
    /// attack family, or the reverse); the label decided.
    pub disagreements: usize,
    /// The first [`REPORTED_SKIPS`] of them: `(line, what disagreed)`.
    pub first_disagreements: Vec<(u64, String)>,
}

impl std::fmt::Display for ReadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} rows read", self.file, self.rows)?;
        if self.outside > 0 {
            write!(f, ", {} rows outside the time window", self.outside)?;
        }
        if self.ignored > 0 {
            write!(f, ", {} non-flow records ignored", self.ignored)?;
        }
        if self.skipped > 0 {
            write!(f, ", {} malformed rows skipped", self.skipped)?;
            for (line, reason) in &self.first_skips {
                write!(f, "\n  line {line}: {reason}")?;
            }
            if self.skipped > self.first_skips.len() {
                write!(f, "\n  …")?;
            }
        }
        if self.disagreements > 0 {
            write!(
                f,
                ", {} rows whose label and family disagree (the label decided)",
                self.disagreements
            )?;
            for (line, what) in &self.first_disagreements {
                write!(f, "\n  {}:{line}: {what}", self.file)?;
            }
            if self.disagreements > self.first_disagreements.len() {
                write!(f, "\n  …")?;
            }
        }
        Ok(())
    }
}

/// Records read from a file, and what happened to its rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    pub records: Records,
    pub report: ReadReport,
}

/// Decides, row by row, between failing and skipping.
pub(crate) struct RowPolicy {
    file: PathBuf,
    options: ReadOptions,
    pub(crate) report: ReadReport,
}

impl RowPolicy {
    pub(crate) fn new(file: &Path, options: &ReadOptions) -> Self {
        RowPolicy {
            file: file.to_path_buf(),
            options: options.clone(),
            report: ReadReport {
                file: file.display().to_string(),
                ..ReadReport::default()
            },
        }
    }

    /// A malformed row: an error naming file and line, or (when skipping)
    /// a line in the report.
    pub(crate) fn bad_row(&mut self, line: u64, reason: String) -> Result<(), DatasetError> {
        if !self.options.skip_bad_rows {
            return Err(row_error(&self.file, line, reason));
        }
        self.report.skipped += 1;
        if self.report.first_skips.len() < REPORTED_SKIPS {
            self.report.first_skips.push((line, reason));
        }
        Ok(())
    }

    /// A row whose label and family disagree: counted and, for the first
    /// few, reported with its line. The row is kept.
    pub(crate) fn disagreement(&mut self, line: u64, what: String) {
        self.report.disagreements += 1;
        if self.report.first_disagreements.len() < REPORTED_SKIPS {
            self.report.first_disagreements.push((line, what));
        }
    }

    /// The error of a problem that is not one row's (header, encoding, I/O).
    pub(crate) fn file_error(&self, line: Option<u64>, reason: String) -> DatasetError {
        DatasetError::Read {
            file: self.file.display().to_string(),
            line,
            reason,
        }
    }

    pub(crate) fn finish(self, records: Records) -> Loaded {
        Loaded {
            report: self.finish_rows(records.len()),
            records,
        }
    }

    /// The report of a file whose `rows` rows went to a stream.
    pub(crate) fn finish_rows(mut self, rows: usize) -> ReadReport {
        self.report.rows = rows;
        self.report
    }
}

/// The error for a malformed row; the caller adds how to skip such rows.
pub(crate) fn row_error(file: &Path, line: u64, reason: String) -> DatasetError {
    DatasetError::BadRow {
        file: file.display().to_string(),
        line,
        reason,
        skip_hint: None,
    }
}

/// Opens `path` for reading lines: gzip is recognised by its magic bytes,
/// a UTF-8 byte-order mark is dropped.
pub fn open_text(path: &Path) -> Result<Box<dyn BufRead>, DatasetError> {
    let io = |e: std::io::Error| DatasetError::Read {
        file: path.display().to_string(),
        line: None,
        reason: format!("cannot open: {e}"),
    };
    let mut file = BufReader::new(File::open(path).map_err(io)?);
    let gzip = file.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn BufRead> = if gzip {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file)))
    } else {
        Box::new(file)
    };
    let first = reader.fill_buf().map_err(|e| DatasetError::Read {
        file: path.display().to_string(),
        line: Some(1),
        reason: format!("cannot read: {e} (is the file truncated or not really gzip?)"),
    })?;
    if first.starts_with(b"\xEF\xBB\xBF") {
        reader.consume(3);
    }
    Ok(reader)
}

/// Reads the next line into `buf` without its `\n` or `\r\n`; `Ok(false)`
/// at the end. Invalid UTF-8 and I/O errors (a truncated gzip stream) name
/// the file and line.
pub(crate) fn next_line(
    reader: &mut dyn BufRead,
    buf: &mut String,
    file: &Path,
    line: u64,
) -> Result<bool, DatasetError> {
    buf.clear();
    let mut bytes = Vec::new();
    let n = reader
        .read_until(b'\n', &mut bytes)
        .map_err(|e| DatasetError::Read {
            file: file.display().to_string(),
            line: Some(line),
            reason: format!("cannot read: {e} (is the file truncated or not really gzip?)"),
        })?;
    if n == 0 {
        return Ok(false);
    }
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    match String::from_utf8(bytes) {
        Ok(s) => *buf = s,
        Err(_) => *buf = String::from(INVALID_UTF8),
    }
    Ok(true)
}

/// What [`next_line`] yields for a line that is not UTF-8; readers treat
/// it as a malformed row.
pub(crate) const INVALID_UTF8: &str = "\u{FFFD}<invalid utf-8>";

/// Parses a number that must be finite and >= 0.
pub(crate) fn non_negative(text: &str, column: &str) -> Result<f64, String> {
    let v: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("column `{column}`: {text:?} is not a number"))?;
    if !v.is_finite() {
        return Err(format!("column `{column}`: {text:?} is not finite"));
    }
    if v < 0.0 {
        return Err(format!("column `{column}`: {v} is negative"));
    }
    Ok(v)
}

/// Environment variable naming the folder with the real datasets
/// (`nsl-kdd/`, `formats/`), for users whose copy lives elsewhere.
pub const DATA_ENV: &str = "FEDSOC_DATA";

/// The real-data folder: `$FEDSOC_DATA`, else the first `shared/datasets`
/// found beside the current directory or one of its parents (the layout of
/// a checkout next to the shared data). `None` if neither exists.
pub fn default_data_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(DATA_ENV) {
        return Some(PathBuf::from(dir));
    }
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .map(|a| a.join("shared").join("datasets"))
        .find(|p| p.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_bom_and_crlf_read_like_plain_text() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("a.txt");
        std::fs::write(&plain, b"\xEF\xBB\xBFx,y\r\n1,2\r\n").unwrap();
        let gz = dir.path().join("a.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        enc.write_all(b"x,y\n1,2").unwrap();
        enc.finish().unwrap();
        for path in [&plain, &gz] {
            let mut r = open_text(path).unwrap();
            let mut buf = String::new();
            let mut lines = Vec::new();
            let mut n = 1;
            while next_line(&mut *r, &mut buf, path, n).unwrap() {
                lines.push(buf.clone());
                n += 1;
            }
            assert_eq!(lines, ["x,y", "1,2"], "{}", path.display());
        }
    }

    #[test]
    fn missing_file_and_truncated_gzip_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.csv");
        let e = open_text(&missing).err().unwrap().to_string();
        assert!(e.contains("nope.csv") && e.contains("cannot open"), "{e}");

        let gz = dir.path().join("cut.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&vec![b'a'; 10_000]).unwrap();
        let bytes = enc.finish().unwrap();
        std::fs::write(&gz, &bytes[..bytes.len() / 2]).unwrap();
        let e = match open_text(&gz) {
            Err(e) => e.to_string(),
            Ok(mut r) => {
                let mut buf = String::new();
                next_line(&mut *r, &mut buf, &gz, 1)
                    .unwrap_err()
                    .to_string()
            }
        };
        assert!(e.contains("cut.gz:1") && e.contains("truncated"), "{e}");
    }

    #[test]
    fn policy_fails_or_counts() {
        let path = Path::new("x.csv");
        let mut strict = RowPolicy::new(path, &ReadOptions::default());
        let err = strict.bad_row(7, "bad".into()).unwrap_err();
        // The reader does not know which command it serves: the hint is
        // neutral until the caller names its own way to skip rows.
        let e = err.to_string();
        assert_eq!(
            e,
            "x.csv:7: bad (fix the row, or enable skip_bad_rows to count and skip such rows)"
        );
        let e = err.with_skip_hint("pass --skip-bad-rows").to_string();
        assert_eq!(
            e,
            "x.csv:7: bad (fix the row, or pass --skip-bad-rows to count and skip such rows)"
        );
        let mut lenient = RowPolicy::new(
            path,
            &ReadOptions {
                skip_bad_rows: true,
            },
        );
        for line in 0..20 {
            lenient.bad_row(line, format!("r{line}")).unwrap();
        }
        let loaded = lenient.finish(Records::default());
        assert_eq!(loaded.report.skipped, 20);
        assert_eq!(loaded.report.first_skips.len(), REPORTED_SKIPS);
        assert!(
            loaded
                .report
                .to_string()
                .contains("20 malformed rows skipped")
        );
    }
}
