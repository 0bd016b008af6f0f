//! `fedsoc watch` as a process, on log files this test writes while it runs:
//! appended flows are scored, a half-written line waits for its end,
//! rotation and `kill -9` lose and repeat nothing (the scored uids are
//! compared with the input), a new bundle in the drop folder takes over
//! between two flows and a tampered one is refused, a pipe works, and one
//! alert is checked field by field.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use fedsoc_datasets::read::live::LiveFlow;
use fedsoc_watch::synth;
use serde_json::Value;
use support::bundles::LoggedFederation;
use support::cluster::fedsoc;

const PATIENCE: Duration = Duration::from_secs(120);

/// A running `fedsoc watch` with its stderr in a file.
struct Watch {
    child: Child,
    stderr: PathBuf,
}

impl Watch {
    fn start(dir: &Path, args: &[&str]) -> Watch {
        let stderr = dir.join(format!("watch-{}.stderr", now_ns()));
        let child = fedsoc()
            .arg("watch")
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Watch { child, stderr }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "watch exited {status}: {}", self.stderr());
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("watch did not stop: {}", self.stderr());
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("watch exited {status}: {}", self.stderr());
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.kill();
    }
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn tsv(flows: &[LiveFlow]) -> String {
    flows.iter().map(synth::zeek_tsv_line).collect()
}

/// The alert lines of `out` and its rotated files, parsed.
fn alerts(out: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = (1..10)
        .rev()
        .map(|i| PathBuf::from(format!("{}.{i}", out.display())))
        .filter(|p| p.exists())
        .collect();
    files.push(out.to_path_buf());
    let mut lines = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        // Only whole lines, as a shipper reads them: the watch may be in
        // the middle of writing the last one.
        let whole = text.rfind('\n').map_or("", |at| &text[..at]);
        for line in whole.lines().filter(|l| !l.is_empty()) {
            lines.push(
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", file.display())),
            );
        }
    }
    lines
}

/// Waits until `out` holds at least `n` lines.
fn wait_alerts(watch: &mut Watch, out: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = alerts(out);
        if got.len() >= n {
            return got;
        }
        watch.assert_running();
        assert!(
            Instant::now() < deadline,
            "{} of {n} lines after {PATIENCE:?}: {}",
            got.len(),
            watch.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ids(lines: &[Value], pointer: &str) -> Vec<String> {
    lines
        .iter()
        .map(|l| match l.pointer(pointer) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => panic!("no {pointer} in {l}"),
        })
        .collect()
}

fn uids(flows: &[LiveFlow]) -> BTreeSet<String> {
    flows.iter().map(|f| f.key.id.clone().unwrap()).collect()
}

/// Every id once: the set of ids, or a panic naming the repeats.
fn once(ids: Vec<String>) -> BTreeSet<String> {
    let mut seen = BTreeMap::<String, usize>::new();
    for id in ids {
        *seen.entry(id).or_default() += 1;
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "flows written more than once: {repeated:?}"
    );
    seen.into_keys().collect()
}

struct Setup {
    fed: LoggedFederation,
    dir: tempfile::TempDir,
    bundles: PathBuf,
}

fn setup() -> Setup {
    let mut fed = LoggedFederation::new("eu-soc");
    fed.add_round(1, 0.5);
    let dir = tempfile::tempdir().unwrap();
    let bundles = dir.path().join("bundles");
    fed.drop_bundle(1, &bundles);
    Setup { fed, dir, bundles }
}

impl Setup {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn watch(&self, input: &[&str], extra: &[&str]) -> Watch {
        let mut args = vec![
            "--bundle",
            self.bundles.to_str().unwrap(),
            "--ca",
            self.fed.ca_pem_path.to_str().unwrap(),
        ];
        args.extend_from_slice(input);
        args.extend_from_slice(extra);
        Watch::start(self.dir.path(), &args)
    }

    /// `text` piped through `fedsoc watch --stdin FORMAT --all` into `out`;
    /// its stderr once it has exited successfully.
    fn pipe(&self, format: &str, text: &str, out: &Path) -> String {
        let mut child = fedsoc()
            .args(["watch", "--bundle", self.bundles.to_str().unwrap(), "--ca"])
            .arg(&self.fed.ca_pem_path)
            .args(["--stdin", format, "--all", "--out"])
            .arg(out)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{}: {stderr}", out.display());
        stderr
    }
}

#[test]
fn appended_flows_are_scored_and_one_alert_carries_every_field() {
    let s = setup();
    let log = s.path("conn.log");
    let out = s.path("alerts.ndjson");
    let flows = synth::flows(300, 1);
    append(&log, &synth::zeek_tsv_header());
    append(&log, &tsv(&flows[..100]));
    let mut watch = s.watch(
        &["--zeek", log.to_str().unwrap()],
        &[
            "--out",
            out.to_str().unwrap(),
            "--state",
            s.path("state").to_str().unwrap(),
            "--threshold",
            "0",
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    wait_alerts(&mut watch, &out, 100);
    append(&log, &tsv(&flows[100..]));
    let lines = wait_alerts(&mut watch, &out, 300);
    assert_eq!(once(ids(&lines, "/zeek/session_id")), uids(&flows));

    // One alert, field by field, against the flow it came from.
    let flow = flows
        .iter()
        .find(|f| f.key.transport == "tcp" && f.key.src_ip.is_some_and(|ip| ip.is_ipv4()))
        .unwrap();
    let uid = flow.key.id.as_deref().unwrap();
    let alert = lines
        .iter()
        .find(|l| l.pointer("/zeek/session_id").and_then(Value::as_str) == Some(uid))
        .unwrap();
    let field = |p: &str| {
        alert
            .pointer(p)
            .unwrap_or_else(|| panic!("no {p} in {alert}"))
    };
    assert_eq!(field("/event/kind"), "alert");
    assert_eq!(field("/event/module"), "fedsoc");
    let risk = field("/event/risk_score").as_f64().unwrap();
    assert!((50.0..=100.0).contains(&risk), "risk {risk} of an alert");
    assert_eq!(field("/fedsoc/threshold").as_f64(), Some(0.0));
    assert!(field("/fedsoc/score").as_f64().unwrap() > 0.0);
    assert_eq!(field("/fedsoc/flagged"), true);
    assert_eq!(field("/source/ip"), &flow.key.src_ip.unwrap().to_string());
    assert_eq!(field("/source/port"), flow.key.src_port.unwrap());
    assert_eq!(
        field("/destination/ip"),
        &flow.key.dst_ip.unwrap().to_string()
    );
    assert_eq!(field("/destination/port"), flow.key.dst_port.unwrap());
    assert_eq!(field("/network/transport"), "tcp");
    assert_eq!(
        field("/network/community_id").as_str(),
        fedsoc_watch::community_id::of_flow(&flow.key).as_deref()
    );
    assert!(
        field("/network/community_id")
            .as_str()
            .unwrap()
            .starts_with("1:")
    );
    let ts = time::OffsetDateTime::parse(
        field("/@timestamp").as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let want = flow.key.ts_nanos.unwrap();
    assert!(
        (ts.unix_timestamp_nanos() - want).abs() < 1_000,
        "{ts} vs {want}"
    );
    let sha = field("/fedsoc/model/sha256").as_str().unwrap();
    assert_eq!(
        field("/rule/version").as_str(),
        Some(format!("round 1, model {}", &sha[..12]).as_str())
    );
    assert_eq!(field("/rule/id").as_str(), Some(sha));
    assert!(field("/rule/name").as_str().unwrap().contains("eu-soc"));
    assert_eq!(field("/fedsoc/model/round"), 1);
    assert_eq!(field("/fedsoc/model/federation"), "eu-soc");
    assert_eq!(field("/fedsoc/model/sha256").as_str().unwrap().len(), 64);
    assert_eq!(field("/fedsoc/bundle/verified"), true);
    assert!(
        field("/fedsoc/bundle/path")
            .as_str()
            .unwrap()
            .ends_with("round-000001")
    );
    assert_eq!(field("/log/file/path"), log.to_str().unwrap());
    assert!(field("/log/offset").as_u64().unwrap() > 0);

    // The metrics endpoint counts what was read.
    let metrics = scrape(&metrics_addr(&watch));
    assert!(
        metrics.contains("fedsoc_watch_flows_read_total{format=\"zeek\"} 300"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fedsoc_watch_model_round{format=\"zeek\"} 1"),
        "{metrics}"
    );
    watch.stop();
}

/// The address a watch started with `--metrics 127.0.0.1:0` serves on, from
/// its log.
fn metrics_addr(watch: &Watch) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let stderr = watch.stderr();
        if let Some(addr) = stderr
            .split("metrics on http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
        {
            return addr.to_string();
        }
        assert!(Instant::now() < deadline, "no metrics address in: {stderr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn scrape(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    std::io::Read::read_to_string(&mut stream, &mut body).unwrap();
    body
}

#[test]
fn a_half_written_line_waits_for_its_end() {
    let s = setup();
    let log = s.path("conn.log");
    let out = s.path("alerts.ndjson");
    let flows = synth::flows(3, 2);
    append(&log, &synth::zeek_tsv_header());
    append(&log, &synth::zeek_tsv_line(&flows[0]));
    let second = synth::zeek_tsv_line(&flows[1]);
    let (head, tail) = second.split_at(second.len() / 2);
    append(&log, head);
    let mut watch = s.watch(
        &["--zeek", log.to_str().unwrap()],
        &[
            "--out",
            out.to_str().unwrap(),
            "--all",
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    wait_alerts(&mut watch, &out, 1);
    // The watch has read the half line and holds it: exactly its bytes are
    // read but not handed on (the lag), and nothing was written for it.
    let holding = format!("fedsoc_watch_lag_bytes{{format=\"zeek\"}} {}\n", head.len());
    let addr = metrics_addr(&watch);
    let deadline = Instant::now() + PATIENCE;
    while !scrape(&addr).contains(&holding) {
        watch.assert_running();
        assert!(
            Instant::now() < deadline,
            "never holding {holding:?}: {}",
            scrape(&addr)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(alerts(&out).len(), 1);
    assert!(!watch.stderr().contains("malformed"), "{}", watch.stderr());
    append(&log, tail);
    append(&log, &synth::zeek_tsv_line(&flows[2]));
    let lines = wait_alerts(&mut watch, &out, 3);
    assert_eq!(once(ids(&lines, "/zeek/session_id")), uids(&flows));
    assert!(!watch.stderr().contains("malformed"), "{}", watch.stderr());
}

#[test]
fn rotation_mid_stream_loses_nothing() {
    let s = setup();
    let log = s.path("conn.log");
    let out = s.path("alerts.ndjson");
    let flows = synth::flows(900, 3);
    append(&log, &synth::zeek_tsv_header());
    append(&log, &tsv(&flows[..200]));
    let mut watch = s.watch(
        &["--zeek", log.to_str().unwrap()],
        &[
            "--out",
            out.to_str().unwrap(),
            "--all",
            "--state",
            s.path("state").to_str().unwrap(),
        ],
    );
    wait_alerts(&mut watch, &out, 200);
    // Zeek's rotation: more lines, rename, a new file with its own header.
    append(&log, &tsv(&flows[200..300]));
    std::fs::rename(&log, s.path("conn.2026-12-07-10-00-00.log")).unwrap();
    append(
        &log,
        &synth::zeek_tsv_header().replace("#open\t", "#open\t2"),
    );
    append(&log, &tsv(&flows[300..600]));
    wait_alerts(&mut watch, &out, 600);
    // Copy-truncate (logrotate's copytruncate) on the new file.
    append(&log, &tsv(&flows[600..700]));
    std::fs::copy(&log, s.path("conn.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(
        &log,
        &synth::zeek_tsv_header().replace("#open\t", "#open\t3"),
    );
    append(&log, &tsv(&flows[700..]));
    let lines = wait_alerts(&mut watch, &out, 900);
    assert_eq!(once(ids(&lines, "/zeek/session_id")), uids(&flows));
    watch.stop();
}

#[test]
fn kill_9_and_restart_neither_lose_nor_repeat_a_flow() {
    let s = setup();
    let log = s.path("conn.log");
    let out = s.path("alerts.ndjson");
    let state = s.path("state");
    let flows = synth::flows(120_000, 4);
    append(&log, &synth::zeek_tsv_header());
    append(&log, &tsv(&flows[..60_000]));
    let args = |out: &Path| {
        vec![
            "--out".to_string(),
            out.display().to_string(),
            "--all".into(),
            "--state".into(),
            state.display().to_string(),
            // Small files: rotation of the alert file is crossed too.
            "--out-max-bytes".into(),
            "4000000".into(),
            "--out-keep".into(),
            "9".into(),
        ]
    };
    let extra = args(&out);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let input = ["--zeek", log.to_str().unwrap()];
    let mut kills = 0;
    for (stop_after, more) in [(10_000, 60_000..90_000), (70_000, 90_000..120_000)] {
        let mut watch = s.watch(&input, &extra);
        wait_alerts(&mut watch, &out, stop_after);
        append(&log, &tsv(&flows[more]));
        watch.kill();
        kills += 1;
    }
    let mut watch = s.watch(&input, &extra);
    let lines = wait_alerts(&mut watch, &out, flows.len());
    assert_eq!(kills, 2);
    assert_eq!(once(ids(&lines, "/zeek/session_id")), uids(&flows));
    watch.stop();
    let lines = alerts(&out);
    assert_eq!(
        lines.len(),
        flows.len(),
        "no line written twice after a clean stop either"
    );
}

#[test]
fn a_new_bundle_takes_over_between_two_flows_and_a_tampered_one_is_refused() {
    let mut s = setup();
    let log = s.path("eve.json");
    let out = s.path("alerts.ndjson");
    let flows = synth::eve_flows(3_000, 5);
    let eve = |f: &[LiveFlow]| f.iter().map(synth::eve_line).collect::<String>();
    append(&log, &eve(&flows[..1_000]));
    let mut watch = s.watch(
        &["--suricata", log.to_str().unwrap()],
        &["--out", out.to_str().unwrap(), "--all"],
    );
    wait_alerts(&mut watch, &out, 1_000);
    let round2 = s.fed.add_round(2, 0.6);
    s.fed.drop_bundle(2, &s.bundles);
    // Flows go on arriving while the new bundle is picked up.
    let deadline = Instant::now() + PATIENCE;
    let mut sent = 1_000;
    loop {
        let lines = alerts(&out);
        let switched = lines
            .iter()
            .any(|l| l.pointer("/fedsoc/model/round") == Some(&Value::from(2)));
        if switched {
            break;
        }
        assert!(
            Instant::now() < deadline && sent < 2_500,
            "no switch to round 2 in {} lines ({sent} flows sent): {}",
            lines.len(),
            watch.stderr()
        );
        append(&log, &eve(&flows[sent..sent + 20]));
        sent += 20;
        std::thread::sleep(Duration::from_millis(50));
    }
    // A bundle whose threshold was changed after export is refused.
    s.fed.add_round(3, 0.7);
    let tampered = s.dir.path().join("tampered");
    s.fed.write_bundle(3, &tampered);
    let threshold = tampered.join("threshold.json");
    let text = std::fs::read_to_string(&threshold).unwrap();
    std::fs::write(&threshold, text.replace("0.7", "70.0")).unwrap();
    std::fs::rename(&tampered, s.bundles.join("round-000003")).unwrap();
    let deadline = Instant::now() + PATIENCE;
    while !watch.stderr().contains("refused bundle") {
        assert!(Instant::now() < deadline, "not refused: {}", watch.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    append(&log, &eve(&flows[sent..]));
    let lines = wait_alerts(&mut watch, &out, 3_000);
    watch.stop();

    let ids = ids(&lines, "/suricata/eve/flow_id");
    assert_eq!(once(ids), uids(&flows));
    // Round 1 scored a prefix of the stream, round 2 the rest: one switch,
    // between two flows, and the refused round 3 never scored anything.
    let rounds: Vec<u64> = lines
        .iter()
        .map(|l| {
            l.pointer("/fedsoc/model/round")
                .and_then(Value::as_u64)
                .unwrap()
        })
        .collect();
    let switch = rounds.iter().position(|&r| r == 2).unwrap();
    assert!(switch >= 1_000, "round 2 scored before it was dropped");
    assert!(rounds[..switch].iter().all(|&r| r == 1));
    assert!(rounds[switch..].iter().all(|&r| r == 2), "{rounds:?}");
    assert!(lines[switch..].iter().all(|l| {
        l.pointer("/fedsoc/model/sha256").and_then(Value::as_str) == Some(round2.as_str())
    }));
    assert!(
        watch.stderr().contains("round-000003"),
        "{}",
        watch.stderr()
    );
}

#[test]
fn a_pipe_is_read_to_its_end_and_bad_lines_are_reported_by_line() {
    let s = setup();
    let flows = synth::eve_flows(500, 6);
    let mut text: String = flows.iter().map(synth::eve_line).collect();
    text.insert_str(
        0,
        "{\"event_type\":\"dns\",\"timestamp\":\"2026-12-01T00:00:00Z\"}\nnot json\n",
    );
    let out = s.path("alerts.ndjson");
    let stderr = s.pipe("suricata", &text, &out);
    assert!(stderr.contains("-:2: malformed line skipped"), "{stderr}");
    assert!(stderr.contains("500 flows scored"), "{stderr}");
    assert!(stderr.contains("1 non-flow records"), "{stderr}");
    let lines = alerts(&out);
    assert_eq!(once(ids(&lines, "/suricata/eve/flow_id")), uids(&flows));
}

#[test]
fn an_unverified_bundle_is_refused_unless_asked_for_loudly() {
    let s = setup();
    let log = s.path("conn.log");
    append(&log, &synth::zeek_tsv_header());
    let output = fedsoc()
        .args(["watch", "--bundle", s.bundles.to_str().unwrap(), "--zeek"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("pass --ca CA.pem"), "{stderr}");

    // Another federation's CA does not verify this federation's bundles.
    let other = LoggedFederation::new("elsewhere");
    let output = fedsoc()
        .args(["watch", "--bundle", s.bundles.to_str().unwrap(), "--ca"])
        .arg(&other.ca_pem_path)
        .arg("--zeek")
        .arg(&log)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no bundle in"), "{stderr}");
}

/// The real sensor logs in `$FEDSOC_DATA/formats` (or ../shared/datasets),
/// piped through a watch: it scores exactly the flows the file readers
/// read, and reports the malformed lines they skip. Skipped, with a
/// message, where the samples are absent.
#[test]
fn real_zeek_and_suricata_logs_are_scored_flow_for_flow() {
    use fedsoc_datasets::ReadOptions;
    use fedsoc_datasets::read::{default_data_dir, open_text, suricata, zeek};

    let s = setup();
    for (relative, format) in [
        ("zeek/ctu_normal40_day1_conn.log.labeled", "zeek"),
        ("zeek/stratosphere_portscan_conn.json.gz", "zeek"),
        ("zeek/wrccdc2018_conn.log", "zeek"),
        ("suricata/slips_test6_eve.json.gz", "suricata"),
    ] {
        let Some(path) = default_data_dir()
            .map(|d| d.join("formats").join(relative))
            .filter(|p| p.is_file())
        else {
            eprintln!(
                "skipped: formats/{relative} not found; set FEDSOC_DATA to the datasets folder"
            );
            continue;
        };
        let options = ReadOptions {
            skip_bad_rows: true,
        };
        let report = match format {
            "zeek" => zeek::read(&path, &options).unwrap().report,
            _ => suricata::read(&path, &options).unwrap().report,
        };
        let mut text = String::new();
        std::io::Read::read_to_string(&mut open_text(&path).unwrap(), &mut text).unwrap();
        let out = s.path(&format!("{}.ndjson", relative.replace('/', "-")));
        let stderr = s.pipe(format, &text, &out);
        assert!(
            stderr.contains(&format!(
                "{} flows scored, {} alerts, {} lines written, {} malformed lines",
                report.rows,
                alerts(&out)
                    .iter()
                    .filter(|l| l.pointer("/event/kind") == Some(&Value::from("alert")))
                    .count(),
                report.rows,
                report.skipped
            )),
            "{relative}: the file reader read {report}; the watch said: {stderr}"
        );
        assert_eq!(alerts(&out).len(), report.rows, "{relative}");
        assert!(report.rows > 0, "{relative}");
    }
}
