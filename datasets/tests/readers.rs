//! The Zeek and Suricata readers on the shared format samples: counts must
//! match the samples' README. Skipped, with a message, where the samples
//! are absent. The samples are read in place, never copied here.

use std::collections::BTreeMap;
use std::path::PathBuf;

use fedsoc_datasets::read::{default_data_dir, suricata, zeek};
use fedsoc_datasets::{Loaded, ReadOptions};

/// The sample at `formats/<relative>`, or `None` (and why) when absent.
fn sample(relative: &str) -> Option<PathBuf> {
    let path = default_data_dir().map(|d| d.join("formats").join(relative));
    match path {
        Some(path) if path.is_file() => Some(path),
        _ => {
            eprintln!(
                "skipped: formats/{relative} not found; set FEDSOC_DATA to the datasets folder"
            );
            None
        }
    }
}

/// Rows per value of a categorical column.
fn counts(loaded: &Loaded, column: &str) -> BTreeMap<String, usize> {
    let records = &loaded.records;
    let at = records
        .categorical_names()
        .iter()
        .position(|n| n == column)
        .unwrap();
    let mut out = BTreeMap::new();
    for i in 0..records.len() {
        *out.entry(records.categorical_row(i)[at].clone())
            .or_insert(0) += 1;
    }
    out
}

fn map(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn wrccdc_zeek_tsv() {
    let Some(path) = sample("zeek/wrccdc2018_conn.log") else {
        return;
    };
    let loaded = zeek::read(&path, &ReadOptions::default()).unwrap();
    assert_eq!(loaded.report.rows, 92);
    assert_eq!(loaded.report.skipped, 0);
    assert_eq!(counts(&loaded, "protocol"), map(&[("tcp", 92)]));
    // Unlabelled: every flow is benign.
    assert_eq!(loaded.records.family_counts(), map(&[("normal", 92)]));
    assert_eq!(
        counts(&loaded, "conn_state"),
        map(&[
            ("REJ", 5),
            ("RSTO", 18),
            ("RSTOS0", 6),
            ("RSTR", 6),
            ("RSTRH", 1),
            ("S0", 56)
        ])
    );
    // Zeek's `http` stays http; `ssl` on 443 is https.
    assert_eq!(
        counts(&loaded, "service"),
        map(&[("http", 14), ("https", 2), ("other", 76)])
    );
}

#[test]
fn ctu_normal40_labelled_zeek_tsv() {
    let Some(path) = sample("zeek/ctu_normal40_day1_conn.log.labeled") else {
        return;
    };
    let loaded = zeek::read(&path, &ReadOptions::default()).unwrap();
    assert_eq!(loaded.report.rows, 5_663);
    assert_eq!(loaded.report.skipped, 0);
    // Malicious 4,201; Benign 1,402 and Background 60 are both benign.
    assert_eq!(
        loaded.records.family_counts(),
        map(&[("External-Attack-to-Device", 4_201), ("normal", 1_462)])
    );
    assert_eq!(
        counts(&loaded, "protocol"),
        map(&[("icmp", 20), ("tcp", 5_383), ("udp", 260)])
    );
    // Zeek's own states pass through, S1/S2/S3/SHR included.
    let states = counts(&loaded, "conn_state");
    assert_eq!(states.values().sum::<usize>(), 5_663);
    assert_eq!(states["S0"], 3_824 + 210 + 33 + 10 + 2 + 1);
    assert_eq!(states["S2"], 31 + 17 + 15);
}

#[test]
fn stratosphere_portscan_zeek_json_gz() {
    let Some(path) = sample("zeek/stratosphere_portscan_conn.json.gz") else {
        return;
    };
    let loaded = zeek::read(&path, &ReadOptions::default()).unwrap();
    assert_eq!(loaded.report.rows, 4_504);
    assert_eq!(loaded.report.skipped, 0);
    assert_eq!(
        counts(&loaded, "protocol"),
        map(&[("icmp", 383), ("tcp", 4_062), ("udp", 59)])
    );
    // Only 8 DNS answers carry a service; the scan probes have none.
    assert_eq!(
        counts(&loaded, "service"),
        map(&[("dns", 8), ("other", 4_496)])
    );
    assert_eq!(loaded.records.family_counts(), map(&[("normal", 4_504)]));
}

#[test]
fn slips_suricata_eve_gz() {
    let Some(path) = sample("suricata/slips_test6_eve.json.gz") else {
        return;
    };
    let loaded = suricata::read(&path, &ReadOptions::default()).unwrap();
    // 5,000 events: 3,512 flows; 745 alerts, 680 dns, 56 http, 3 fileinfo,
    // 3 anomaly and 1 tls are not flows.
    assert_eq!(loaded.report.rows, 3_512);
    assert_eq!(loaded.report.ignored, 1_488);
    assert_eq!(loaded.report.skipped, 0);
    assert_eq!(
        counts(&loaded, "protocol"),
        map(&[("tcp", 2_336), ("udp", 1_176)])
    );
    // 366 flows carry `flow.alerted: true`, and exactly those 366 have
    // their flow_id among the 745 alerts (631 distinct flow ids; the
    // other 265 alerted flows have no flow event in this 5,000-event
    // excerpt). 9 flows have alerts of two categories at the same
    // severity 2; the first in the file wins. No flow is labelled only
    // from `alerted`, so the "alert" family does not occur.
    assert_eq!(
        loaded.records.family_counts(),
        map(&[
            ("Attempted Administrator Privilege Gain", 1),
            ("Attempted Information Leak", 8),
            ("Detection of a Network Scan", 2),
            ("Misc Attack", 323),
            ("Potentially Bad Traffic", 32),
            ("normal", 3_512 - 366),
        ])
    );
    // Mostly SYN probes answered by RST (REJ), half-closed sessions (S2)
    // and one-way UDP (S0). OTH: 15 TCP flows whose flags are all zero and
    // 3 that stopped after SYN, SYN-ACK.
    assert_eq!(
        counts(&loaded, "conn_state"),
        map(&[
            ("OTH", 18),
            ("REJ", 1_939),
            ("RSTO", 29),
            ("RSTR", 4),
            ("S0", 977),
            ("S2", 330),
            ("SF", 215),
        ])
    );
    // The two `tls` flows are not on port 443, so they are "other".
    assert_eq!(
        counts(&loaded, "service"),
        map(&[("dns", 101), ("http", 53), ("ntp", 1), ("other", 3_357)])
    );
}

/// A copy of a sample with one line corrupted: the strict read names file
/// and line, the lenient one skips just that line.
#[test]
fn corrupted_copies_fail_or_skip_one_row() {
    let Some(path) = sample("zeek/wrccdc2018_conn.log") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // Line 20 (a record; the header is 8 lines): its orig_pkts becomes text.
    let mut fields: Vec<&str> = lines[19].split('\t').collect();
    fields[16] = "lots";
    lines[19] = fields.join("\t");
    let copy = dir.path().join("corrupt_conn.log");
    std::fs::write(&copy, lines.join("\n")).unwrap();
    let e = zeek::read(&copy, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("corrupt_conn.log:20") && e.contains("`orig_pkts`"),
        "{e}"
    );
    let lenient = ReadOptions {
        skip_bad_rows: true,
    };
    let loaded = zeek::read(&copy, &lenient).unwrap();
    assert_eq!(loaded.report.rows, 91);
    assert_eq!(loaded.report.skipped, 1);
    assert_eq!(loaded.report.first_skips[0].0, 20);

    let Some(path) = sample("suricata/slips_test6_eve.json.gz") else {
        return;
    };
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap()),
        &mut text,
    )
    .unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    // A flow event cut in half, as a crash mid-write leaves it.
    let at = lines
        .iter()
        .position(|l| l.contains("\"event_type\":\"flow\""))
        .unwrap();
    let cut = &lines[at][..lines[at].len() / 2];
    lines[at] = cut;
    let copy = dir.path().join("corrupt_eve.json");
    std::fs::write(&copy, lines.join("\n")).unwrap();
    let e = suricata::read(&copy, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    let want = format!("corrupt_eve.json:{}: bad JSON", at + 1);
    assert!(e.contains(&want), "{e}");
    let loaded = suricata::read(&copy, &lenient).unwrap();
    assert_eq!(loaded.report.rows, 3_511);
    assert_eq!(loaded.report.skipped, 1);
    assert_eq!(loaded.report.ignored, 1_488);
}
