//! `fedsoc bench read`: how fast a participant reads a week of rotated
//! Zeek logs, and how much memory that takes with `max_rows`.
//!
//! The benchmark writes a directory of gzip Zeek `conn.log` files in
//! Zeek's rotated layout (`2026-12-01/conn.00:00:00-01:00:00.log.gz`, one
//! file per hour), streaming the synthetic generator's flows out chunk by
//! chunk, then reads it through the participant's own loading path
//! ([`fedsoc_participant::telemetry::load_reported`]). The read runs in a
//! child process (the same executable, a hidden subcommand) so that its
//! peak resident memory (`VmHWM`) is the read's alone, not the
//! generator's; the child also reports its peak just before reading, the
//! baseline the read adds to.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use fedsoc_datasets::synthetic::{SyntheticConfig, site_telemetry};
use fedsoc_datasets::{DatasetError, FlowRecord};
use fedsoc_participant::config::{DataSource, FlowLogs};
use serde::{Deserialize, Serialize};

use crate::error::ExperimentError;

/// What to measure.
#[derive(Clone, Debug)]
pub struct ReadBenchOptions {
    /// Rows over all files.
    pub rows: u64,
    /// Files (hours) the rows are spread over.
    pub files: usize,
    /// Where the logs are written; reused if it already holds logs of the
    /// same rows, files and seed.
    pub dir: PathBuf,
    /// The participant's `max_rows`.
    pub max_rows: usize,
    pub seed: u64,
}

/// What the child process measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReadFigures {
    pub files: usize,
    pub rows_read: u64,
    pub kept: usize,
    pub seconds: f64,
    /// The child's peak resident memory just before reading.
    pub baseline_rss_kb: u64,
    /// The child's peak resident memory after reading (records still held).
    pub peak_rss_kb: u64,
}

/// The benchmark's result; the flat keys are the ones scripts read.
#[derive(Clone, Debug, Serialize)]
pub struct ReadBenchReport {
    pub rows: u64,
    pub files: usize,
    pub max_rows: usize,
    pub kept: usize,
    /// Size of the gzip logs on disk.
    pub bytes_on_disk: u64,
    /// Time to write the logs; 0 when an earlier run's logs were reused.
    pub generate_seconds: f64,
    pub seconds: f64,
    pub rows_per_s: f64,
    pub peak_rss_mb: f64,
    pub baseline_rss_mb: f64,
}

/// The file recording what a generated directory holds, so a second run
/// at the same size reads it again instead of rewriting it.
const MANIFEST: &str = "fedsoc-bench-read.json";

/// Rows the synthetic generator is asked for at a time: the generation
/// streams, holding one chunk.
const CHUNK: usize = 8_192;

/// Generates the logs (unless `dir` already holds them) and measures the
/// read in a child process started as `child` (the executable and the
/// hidden subcommand's leading arguments).
pub fn run_read_bench(
    options: &ReadBenchOptions,
    child: &[String],
) -> Result<ReadBenchReport, ExperimentError> {
    if options.files == 0 || options.rows < options.files as u64 {
        return Err(ExperimentError::Setup(format!(
            "--rows {} over --files {}: give at least one file and one row per file",
            options.rows, options.files
        )));
    }
    let wanted = serde_json::json!({
        "rows": options.rows, "files": options.files, "seed": options.seed,
    });
    let manifest = options.dir.join(MANIFEST);
    let have = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    let mut generate_seconds = 0.0;
    if have.as_ref() != Some(&wanted) {
        let started = Instant::now();
        generate(options)?;
        std::fs::write(&manifest, wanted.to_string())
            .map_err(|e| ExperimentError::io(&manifest, e))?;
        generate_seconds = started.elapsed().as_secs_f64();
    }
    let figures = read_in_child(options, child)?;
    if figures.rows_read != options.rows {
        return Err(ExperimentError::Setup(format!(
            "the child read {} rows of the {} written; is {} shared with other logs?",
            figures.rows_read,
            options.rows,
            options.dir.display()
        )));
    }
    let mb = |kb: u64| kb as f64 / 1024.0;
    Ok(ReadBenchReport {
        rows: options.rows,
        files: figures.files,
        max_rows: options.max_rows,
        kept: figures.kept,
        bytes_on_disk: disk_bytes(&options.dir)?,
        generate_seconds,
        seconds: figures.seconds,
        rows_per_s: figures.rows_read as f64 / figures.seconds.max(1e-9),
        peak_rss_mb: mb(figures.peak_rss_kb),
        baseline_rss_mb: mb(figures.baseline_rss_kb),
    })
}

/// The child's side: reads `dir` as a participant's Zeek source with
/// `max_rows`, and reports its own peak memory before and after.
pub fn measure_read(
    dir: &Path,
    max_rows: usize,
    seed: u64,
) -> Result<ReadFigures, ExperimentError> {
    let source = DataSource::Zeek(FlowLogs {
        max_rows: Some(max_rows),
        sample_seed: seed,
        ..FlowLogs::at(dir)
    });
    let baseline_rss_kb = peak_rss_kb()?;
    let started = Instant::now();
    let (records, report) = fedsoc_participant::telemetry::load_reported(&source)?;
    let seconds = started.elapsed().as_secs_f64();
    let peak_rss_kb = peak_rss_kb()?;
    let report = report.ok_or_else(|| ExperimentError::Setup("no read report".into()))?;
    let kept = records.len();
    drop(records);
    Ok(ReadFigures {
        files: report.files,
        rows_read: report.rows_read as u64,
        kept,
        seconds,
        baseline_rss_kb,
        peak_rss_kb,
    })
}

fn read_in_child(
    options: &ReadBenchOptions,
    child: &[String],
) -> Result<ReadFigures, ExperimentError> {
    let (exe, leading) = child
        .split_first()
        .ok_or_else(|| ExperimentError::Setup("no child command to run".into()))?;
    let output = std::process::Command::new(exe)
        .args(leading)
        .arg("--dir")
        .arg(&options.dir)
        .arg("--max-rows")
        .arg(options.max_rows.to_string())
        .arg("--seed")
        .arg(options.seed.to_string())
        .output()
        .map_err(|e| ExperimentError::io(Path::new(exe), e))?;
    if !output.status.success() {
        return Err(ExperimentError::Setup(format!(
            "the reading child process failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).map_err(|e| {
        ExperimentError::Setup(format!(
            "the reading child process printed {stdout:?}, not its figures: {e}"
        ))
    })
}

/// This process's peak resident set size so far (`VmHWM`), in KiB.
pub fn peak_rss_kb() -> Result<u64, ExperimentError> {
    let status = Path::new("/proc/self/status");
    let text = std::fs::read_to_string(status).map_err(|e| ExperimentError::io(status, e))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| {
            ExperimentError::Setup(
                "/proc/self/status has no VmHWM line; peak memory is measured on Linux only".into(),
            )
        })
}

/// The first hour of the generated logs: 2026-12-01T00:00:00Z.
const START_EPOCH_S: u64 = 1_796_083_200;

/// Writes `options.files` hourly gzip conn logs under `options.dir`.
fn generate(options: &ReadBenchOptions) -> Result<(), ExperimentError> {
    for file in 0..options.files {
        let rows = options.rows / options.files as u64
            + u64::from((file as u64) < options.rows % options.files as u64);
        let (day, hour) = (file / 24, file % 24);
        let folder = options.dir.join(format!("2026-12-{:02}", day + 1));
        std::fs::create_dir_all(&folder).map_err(|e| ExperimentError::io(&folder, e))?;
        let path = folder.join(format!(
            "conn.{hour:02}:00:00-{:02}:00:00.log.gz",
            (hour + 1) % 24
        ));
        let start = START_EPOCH_S + file as u64 * 3_600;
        write_hour(&path, start, rows, options.seed ^ ((file as u64) << 32))
            .map_err(|e| ExperimentError::io(&path, e))?;
    }
    Ok(())
}

const HEADER: &str = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n\
#unset_field\t-\n#path\tconn\n#open\t2026-12-01-00-00-00\n\
#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\t\
orig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\t\
orig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\n\
#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\t\
string\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\n";

/// One hour's log: `rows` flows spread evenly over the hour from `start`.
fn write_hour(path: &Path, start: u64, rows: u64, seed: u64) -> std::io::Result<()> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut out = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    out.write_all(HEADER.as_bytes())?;
    let mut written = 0u64;
    let mut chunk = 0u64;
    while written < rows {
        let n = CHUNK.min((rows - written) as usize);
        let flows = site_telemetry(
            (seed as usize).wrapping_add(chunk as usize) % 8,
            &SyntheticConfig {
                seed: seed.wrapping_add(chunk),
                rows: n,
                attack_fraction: 0.01,
            },
        )
        .map_err(|e: DatasetError| std::io::Error::other(e.to_string()))?;
        for flow in &flows {
            let ts = start as f64 + written as f64 * 3_600.0 / rows as f64;
            write_row(&mut out, ts, written, flow)?;
            written += 1;
        }
        chunk += 1;
    }
    out.write_all(b"#close\t2026-12-08-00-00-00\n")?;
    out.finish()?.flush()
}

/// One conn.log line of `flow`; addresses and ports are derived from the
/// row number, as the reader does not use them.
fn write_row(out: &mut impl Write, ts: f64, row: u64, flow: &FlowRecord) -> std::io::Result<()> {
    let service = match flow.service.as_str() {
        "https" => "ssl",
        "other" => "-",
        s => s,
    };
    writeln!(
        out,
        "{ts:.6}\tC{row:016x}\t10.{}.{}.{}\t{}\t192.0.2.{}\t{}\t{}\t{service}\t{:.6}\t{}\t{}\t{}\tT\tF\t0\t-\t{}\t{}\t{}\t{}\t-",
        (row >> 16) & 0xff,
        (row >> 8) & 0xff,
        row & 0xff,
        49_152 + row % 16_384,
        row % 254 + 1,
        flow.dst_port,
        flow.protocol,
        flow.duration_s,
        flow.bytes_out as u64,
        flow.bytes_in as u64,
        flow.conn_state,
        flow.packets_out as u64,
        flow.bytes_out as u64 + 40 * flow.packets_out as u64,
        flow.packets_in as u64,
        flow.bytes_in as u64 + 40 * flow.packets_in as u64,
    )
}

/// Bytes of the files under `dir`.
fn disk_bytes(dir: &Path) -> Result<u64, ExperimentError> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| ExperimentError::io(dir, e))? {
        let entry = entry.map_err(|e| ExperimentError::io(dir, e))?;
        let meta = entry
            .metadata()
            .map_err(|e| ExperimentError::io(&entry.path(), e))?;
        total += if meta.is_dir() {
            disk_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_logs_read_back_through_the_participant_path() {
        let dir = tempfile::tempdir().unwrap();
        let options = ReadBenchOptions {
            rows: 3_000,
            files: 3,
            dir: dir.path().to_path_buf(),
            max_rows: 500,
            seed: 1,
        };
        generate(&options).unwrap();
        assert!(
            dir.path()
                .join("2026-12-01/conn.02:00:00-03:00:00.log.gz")
                .is_file()
        );
        let figures = measure_read(dir.path(), 500, 1).unwrap();
        assert_eq!(
            (figures.files, figures.rows_read, figures.kept),
            (3, 3_000, 500)
        );
        assert!(figures.peak_rss_kb >= figures.baseline_rss_kb);
    }
}
