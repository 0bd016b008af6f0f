//! A Zeek or Suricata source at a SOC's scale: many rotated files read as
//! one stream, rows kept by a time window, at most `max_rows` of them.
//!
//! Rows are read one at a time across the files (in [`files::resolve`]'s
//! sorted order) and pushed into a [`Reservoir`], so neither a file nor the
//! directory is ever held whole: with `max_rows` set, memory is bounded by
//! the sample, however many files the pattern matches. What happened to
//! the rows — files read, rows read, outside the window, kept, malformed —
//! is the [`SourceReport`].

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::files::{self, FlowFormat};
use super::reservoir::Reservoir;
use super::window::Window;
use super::{REPORTED_SKIPS, ReadOptions, ReadReport, suricata, zeek};
use crate::error::DatasetError;
use crate::table::Records;

/// A flow source as a participant configures it.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowSource {
    pub format: FlowFormat,
    /// A file, a directory of rotated logs, or a glob pattern.
    pub path: PathBuf,
    pub read: ReadOptions,
    pub window: Window,
    /// Keep a uniform sample of at most this many rows; `None` keeps all.
    pub max_rows: Option<usize>,
    /// The sample's random seed: the same files and seed keep the same rows.
    pub sample_seed: u64,
}

/// What reading a source did with its rows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SourceReport {
    /// The path, directory or pattern as configured.
    pub source: String,
    /// `since..until`, if a window was set.
    pub window: Option<String>,
    pub files: usize,
    /// Well-formed flow rows read, inside the window or not.
    pub rows_read: usize,
    /// Rows left out because their timestamp is outside the window.
    pub outside_window: usize,
    /// Rows kept for training: all rows in the window, or the sample.
    pub kept: usize,
    pub max_rows: Option<usize>,
    /// Malformed rows skipped (only with `skip_bad_rows`).
    pub malformed: usize,
    /// Records that are not flows (Suricata alerts, DNS events, …).
    pub ignored: usize,
    /// The reports of the first files with malformed rows or label
    /// disagreements, which name the lines.
    pub notable_files: Vec<ReadReport>,
}

impl SourceReport {
    fn add(&mut self, file: ReadReport) {
        self.files += 1;
        self.rows_read += file.rows + file.outside;
        self.outside_window += file.outside;
        self.malformed += file.skipped;
        self.ignored += file.ignored;
        if (file.skipped > 0 || file.disagreements > 0) && self.notable_files.len() < REPORTED_SKIPS
        {
            self.notable_files.push(file);
        }
    }
}

impl std::fmt::Display for SourceReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} files, {} rows read",
            self.source, self.files, self.rows_read
        )?;
        if let Some(window) = &self.window {
            write!(f, ", {} outside {window}", self.outside_window)?;
        }
        write!(f, ", {} kept", self.kept)?;
        if let Some(max) = self.max_rows {
            write!(f, " (a uniform sample of at most {max})")?;
        }
        write!(f, ", {} malformed rows skipped", self.malformed)?;
        if self.ignored > 0 {
            write!(f, ", {} non-flow records ignored", self.ignored)?;
        }
        for file in &self.notable_files {
            write!(f, "\n{file}")?;
        }
        Ok(())
    }
}

/// Records read from a source, and what happened to its rows.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedSource {
    pub records: Records,
    pub report: SourceReport,
}

/// Reads every file of `source` as one stream into its window and sample.
/// A source whose rows all fall outside the window is an error naming the
/// source and the window; so is one without any flow row.
pub fn read_source(source: &FlowSource) -> Result<LoadedSource, DatasetError> {
    let files = files::resolve(source.format, &source.path)?;
    let mut report = SourceReport {
        source: source.path.display().to_string(),
        window: source.window.is_set().then(|| source.window.to_string()),
        max_rows: source.max_rows,
        ..SourceReport::default()
    };
    let (read, window) = (&source.read, &source.window);
    let records = match source.format {
        FlowFormat::Zeek => {
            let kept = stream_files(source, &files, &mut report, |file, sink| {
                zeek::stream(file, read, window, sink)
            })?;
            Records::from_flow_iter(kept.into_iter())
        }
        FlowFormat::Suricata => {
            let kept = stream_files(source, &files, &mut report, |file, sink| {
                suricata::stream(file, read, window, sink)
            })?;
            Records::from_flow_iter(kept.into_iter().map(|flow| flow.record))
        }
    };
    report.kept = records.len();
    if report.kept == 0 && report.rows_read > 0 {
        return Err(DatasetError::NoRowsInWindow {
            source_path: report.source,
            window: source.window.to_string(),
            read: report.rows_read as u64,
            files: report.files,
        });
    }
    if report.kept == 0 {
        return Err(DatasetError::Read {
            file: report.source,
            line: None,
            reason: format!(
                "the {} files hold no flow records ({} malformed rows skipped, {} non-flow \
                 records); point the source at the sensor's flow logs",
                report.files, report.malformed, report.ignored
            ),
        });
    }
    Ok(LoadedSource { records, report })
}

/// Streams each file through `read_one` into one reservoir, adding each
/// file's report to `report`.
fn stream_files<T>(
    source: &FlowSource,
    files: &[PathBuf],
    report: &mut SourceReport,
    mut read_one: impl FnMut(&Path, &mut Reservoir<T>) -> Result<ReadReport, DatasetError>,
) -> Result<Vec<T>, DatasetError> {
    let mut sink = Reservoir::new(source.max_rows, source.sample_seed);
    for file in files {
        report.add(read_one(file, &mut sink)?);
    }
    Ok(sink.into_items())
}
