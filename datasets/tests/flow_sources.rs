//! Zeek and Suricata sources of many rotated files: which files, in which
//! order, through which time window, into which sample.

use std::io::Write;
use std::path::{Path, PathBuf};

use fedsoc_datasets::read::files::{FlowFormat, resolve};
use fedsoc_datasets::read::source::{FlowSource, LoadedSource, read_source};
use fedsoc_datasets::read::window::Window;
use fedsoc_datasets::{DatasetError, ReadOptions, Records};

/// 2026-12-01T00:00:00Z in epoch seconds.
const DEC_1: u64 = 1_796_083_200;

const HEADER: &str = "#separator \\x09\n#path\tconn\n\
#fields\tts\tproto\tconn_state\tid.resp_p\tduration\torig_pkts\tresp_pkts\n";

/// A Zeek TSV log of rows `(ts, duration)`; the duration tells rows apart.
fn zeek_log(rows: &[(u64, f64)]) -> String {
    let mut body = HEADER.to_string();
    for (ts, duration) in rows {
        body.push_str(&format!("{ts}.250000\ttcp\tSF\t443\t{duration}\t3\t2\n"));
    }
    body
}

fn write(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    if path.extension().is_some_and(|e| e == "gz") {
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(path).unwrap(),
            flate2::Compression::default(),
        );
        enc.write_all(body.as_bytes()).unwrap();
        enc.finish().unwrap();
    } else {
        std::fs::write(path, body).unwrap();
    }
}

fn source(format: FlowFormat, path: &Path) -> FlowSource {
    FlowSource {
        format,
        path: path.to_path_buf(),
        read: ReadOptions::default(),
        window: Window::default(),
        max_rows: None,
        sample_seed: 0,
    }
}

fn durations(records: &Records) -> Vec<f64> {
    let at = records
        .numeric_names()
        .iter()
        .position(|n| n == "duration")
        .unwrap();
    (0..records.len())
        .map(|i| records.numeric_row(i)[at])
        .collect()
}

/// Two days of rotated logs, gzip and plain mixed, with files a Zeek
/// source must pass over. File `k` (in chronological order) holds rows of
/// duration `k*10 + j`, stamped hour `k` plus `j` minutes.
fn rotated(dir: &Path) -> Vec<PathBuf> {
    let names = [
        "2026-12-01/conn.00:00:00-01:00:00.log.gz",
        "2026-12-01/conn.01:00:00-02:00:00.log",
        "2026-12-01/conn.02:00:00-03:00:00.log.gz",
        "2026-12-02/conn.00:00:00-01:00:00.log",
        "2026-12-02/deeper/conn.01:00:00-02:00:00.json.gz",
    ];
    let hours = [0, 1, 2, 24, 25];
    let mut paths = Vec::new();
    for (k, (name, hour)) in names.iter().zip(hours).enumerate() {
        let rows: Vec<(u64, f64)> = (0..3)
            .map(|j| (DEC_1 + hour * 3_600 + j * 60, (k * 10 + j as usize) as f64))
            .collect();
        let path = dir.join(name);
        if name.contains(".json") {
            let body: String = rows
                .iter()
                .map(|(ts, d)| {
                    format!(
                        "{{\"ts\":{ts}.25,\"proto\":\"tcp\",\"conn_state\":\"SF\",\
                         \"id.resp_p\":443,\"duration\":{d},\"orig_pkts\":3,\"resp_pkts\":2}}\n"
                    )
                })
                .collect();
            write(&path, &body);
        } else {
            write(&path, &zeek_log(&rows));
        }
        paths.push(path);
    }
    // Neither a conn log nor one of its endings: passed over.
    write(&dir.join("2026-12-01/dns.00:00:00-01:00:00.log.gz"), "x");
    write(&dir.join("2026-12-01/conn.log.bak"), "x");
    paths
}

#[test]
fn directory_and_glob_read_rotated_logs_in_sorted_order() {
    let dir = tempfile::tempdir().unwrap();
    let expected = rotated(dir.path());
    assert_eq!(resolve(FlowFormat::Zeek, dir.path()).unwrap(), expected);

    let LoadedSource { records, report } =
        read_source(&source(FlowFormat::Zeek, dir.path())).unwrap();
    let want: Vec<f64> = [0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32, 40, 41, 42]
        .map(f64::from)
        .to_vec();
    assert_eq!(durations(&records), want);
    assert_eq!((report.files, report.rows_read, report.kept), (5, 15, 15));

    // A glob pattern: gzip and plain alike, one folder level only.
    let pattern = dir.path().join("2026-12-0[12]/conn.*.log*");
    let files = resolve(FlowFormat::Zeek, &pattern).unwrap();
    assert_eq!(files, expected[..4]);
    let loaded = read_source(&source(FlowFormat::Zeek, &pattern)).unwrap();
    assert_eq!(durations(&loaded.records), want[..12]);
    // `**` reaches the deeper folder too.
    let deep = dir.path().join("**/conn.*:*");
    assert_eq!(resolve(FlowFormat::Zeek, &deep).unwrap(), expected);
}

#[test]
fn the_window_keeps_rows_by_their_own_timestamp_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    rotated(dir.path());
    // 01:01 up to 02:00 on Dec 1: the last two rows of the 01:00 file;
    // the rest of the 15 are outside.
    let mut s = source(FlowFormat::Zeek, dir.path());
    s.window = Window::parse(Some("2026-12-01T01:01:00Z"), Some("2026-12-01T02:00:00Z")).unwrap();
    let loaded = read_source(&s).unwrap();
    assert_eq!(durations(&loaded.records), [11.0, 12.0]);
    let r = &loaded.report;
    assert_eq!(
        (r.files, r.rows_read, r.outside_window, r.kept, r.malformed),
        (5, 15, 13, 2, 0)
    );
    let shown = r.to_string();
    assert!(
        shown.contains("13 outside 2026-12-01T01:01:00Z..2026-12-01T02:00:00Z")
            && shown.contains("2 kept"),
        "{shown}"
    );
    // An open end: everything from Dec 2 on (the JSON rows included).
    s.window = Window::parse(Some("2026-12-02T00:00:00+00:00"), None).unwrap();
    let loaded = read_source(&s).unwrap();
    assert_eq!(
        durations(&loaded.records),
        [30.0, 31.0, 32.0, 40.0, 41.0, 42.0]
    );
    assert_eq!(loaded.report.outside_window, 9);
}

#[test]
fn a_window_without_rows_names_the_source_and_the_window() {
    let dir = tempfile::tempdir().unwrap();
    rotated(dir.path());
    let mut s = source(FlowFormat::Zeek, &dir.path().join("*/conn.*.log.gz"));
    s.window = Window::parse(Some("2026-11-01T00:00:00Z"), Some("2026-11-02T00:00:00Z")).unwrap();
    let err = read_source(&s).unwrap_err();
    assert!(
        matches!(err, DatasetError::NoRowsInWindow { .. }),
        "{err:?}"
    );
    let e = err.to_string();
    assert!(
        e.contains("*/conn.*.log.gz")
            && e.contains("2026-11-01T00:00:00Z..2026-11-02T00:00:00Z")
            && e.contains("6 rows read")
            && e.contains("widen since/until"),
        "{e}"
    );
}

#[test]
fn a_window_needs_every_row_stamped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conn.log");
    write(
        &path,
        "#separator \\x09\n#fields\tts\tproto\tconn_state\tid.resp_p\torig_pkts\tresp_pkts\n\
         1796083200.0\ttcp\tSF\t80\t1\t1\n-\ttcp\tSF\t80\t1\t1\nsoon\ttcp\tSF\t80\t1\t1\n",
    );
    let mut s = source(FlowFormat::Zeek, &path);
    // Without a window the timestamps are not even looked at.
    assert_eq!(read_source(&s).unwrap().records.len(), 3);
    s.window = Window::parse(Some("2026-01-01T00:00:00Z"), None).unwrap();
    let e = read_source(&s).unwrap_err().to_string();
    assert!(
        e.contains("conn.log:4: field `ts` is missing or unset") && e.contains("since/until"),
        "{e}"
    );
    s.read.skip_bad_rows = true;
    let loaded = read_source(&s).unwrap();
    assert_eq!((loaded.report.kept, loaded.report.malformed), (1, 2));
    assert!(loaded.report.to_string().contains("is not epoch seconds"));
}

#[test]
fn max_rows_keeps_a_deterministic_sample_across_files() {
    let dir = tempfile::tempdir().unwrap();
    for hour in 0..4u64 {
        let rows: Vec<(u64, f64)> = (0..250)
            .map(|j| (DEC_1 + hour * 3_600 + j, (hour * 1_000 + j) as f64))
            .collect();
        let name = format!("conn.{hour:02}:00:00-{:02}:00:00.log.gz", hour + 1);
        write(&dir.path().join(name), &zeek_log(&rows));
    }
    let mut s = source(FlowFormat::Zeek, dir.path());
    s.max_rows = Some(100);
    s.sample_seed = 5;
    let first = read_source(&s).unwrap();
    assert_eq!(first.records.len(), 100);
    assert_eq!(
        (
            first.report.rows_read,
            first.report.kept,
            first.report.max_rows
        ),
        (1_000, 100, Some(100))
    );
    assert_eq!(read_source(&s).unwrap().records, first.records);
    // Every file contributes: a sample is not the first rows read.
    let kept = durations(&first.records);
    for hour in 0..4 {
        let from_hour = kept.iter().filter(|d| (**d as u64) / 1_000 == hour).count();
        assert!(from_hour >= 8, "hour {hour}: {from_hour} of 100 rows");
    }
    s.sample_seed = 6;
    assert_ne!(read_source(&s).unwrap().records, first.records);
    // A cap above the rows keeps them all, in order.
    s.max_rows = Some(5_000);
    let all = read_source(&s).unwrap();
    assert_eq!(all.records.len(), 1_000);
    assert_eq!(durations(&all.records)[..3], [0.0, 1.0, 2.0]);
}

#[test]
fn suricata_files_keep_their_own_alert_labels_through_window_and_sample() {
    let dir = tempfile::tempdir().unwrap();
    let flow = |id: u64, minute: u64| {
        format!(
            "{{\"event_type\":\"flow\",\"flow_id\":{id},\"timestamp\":\"2026-12-01T00:{minute:02}:00.000000+0000\",\
             \"proto\":\"TCP\",\"dest_port\":22,\"flow\":{{\"pkts_toserver\":3,\"pkts_toclient\":2,\
             \"bytes_toserver\":300,\"bytes_toclient\":200,\"age\":{minute}}}}}\n"
        )
    };
    let alert = |id: u64| {
        format!(
            "{{\"event_type\":\"alert\",\"flow_id\":{id},\"alert\":{{\"severity\":1,\"category\":\"brute-{id}\"}}}}\n"
        )
    };
    // The first file's alert comes after its flow; the second file has a
    // flow with the same id but no alert, so it stays benign.
    write(
        &dir.path().join("eve-1.json.gz"),
        &format!("{}{}{}", flow(7, 1), flow(8, 2), alert(7)),
    );
    write(
        &dir.path().join("eve-2.json"),
        &format!("{}{}", flow(7, 30), flow(9, 59)),
    );
    let mut s = source(FlowFormat::Suricata, dir.path());
    s.window = Window::parse(Some("2026-12-01T00:01:30Z"), Some("2026-12-01T00:59:00Z")).unwrap();
    let loaded = read_source(&s).unwrap();
    assert_eq!(loaded.records.families(), ["normal", "normal"]);
    let r = &loaded.report;
    assert_eq!(
        (r.files, r.rows_read, r.outside_window, r.kept, r.ignored),
        (2, 4, 2, 2, 1)
    );

    // Sampled, the first file's flow 7 (the one of duration 1) carries
    // its alert wherever it lands in the sample, and only it does.
    s.window = Window::default();
    s.max_rows = Some(2);
    for seed in 0..8 {
        s.sample_seed = seed;
        let loaded = read_source(&s).unwrap();
        assert_eq!(loaded.records.len(), 2);
        let families = loaded.records.families();
        for (family, duration) in families.iter().zip(durations(&loaded.records)) {
            assert_eq!(
                family == "brute-7",
                duration == 1.0,
                "seed {seed}: {families:?}"
            );
        }
    }
    s.max_rows = None;
    assert_eq!(
        read_source(&s).unwrap().records.families(),
        ["brute-7", "normal", "normal", "normal"]
    );
}
