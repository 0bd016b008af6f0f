//! The console against a real local federation (coordinator and three
//! participants on loopback over mutual TLS, secure aggregation, two
//! rounds), looked at in a real browser: Debian's `chromium`, headless,
//! driven as a process. Screenshots of every page are kept under
//! `target/console-screenshots/`.
//!
//! A second test fetches every page and endpoint over plain HTTP and
//! checks the security headers, the read-only rule, and that nothing a
//! page says is an update, a share, a key or a sample count.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fedsoc_console::{Console, ConsoleOptions};
use fedsoc_experiments::local::{LocalFederation, LocalFederationSpec};
use tokio::sync::oneshot;

const CHROMIUM: &str = "/usr/bin/chromium";
/// Patience for one headless browser run (it normally takes a second).
const BROWSER_PATIENCE: Duration = Duration::from_secs(120);

/// Debian's chromium, or a failure that says how to get it: CI installs
/// it, so a missing browser is a broken machine, not a skipped test.
fn chromium() -> PathBuf {
    let path = PathBuf::from(CHROMIUM);
    assert!(
        path.exists(),
        "{CHROMIUM} is missing: the console's browser tests need Debian's chromium; \
         install it with `apt-get update && apt-get install -y chromium` (.ci/run does this)"
    );
    path
}

/// Runs headless chromium on `url` with `extra` arguments and returns its
/// standard output; a fresh profile each run, no network but the console.
fn browse(url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > BROWSER_PATIENCE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish {url} within {BROWSER_PATIENCE:?}: {}",
                std::fs::read_to_string(err.path()).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "chromium failed on {url} ({status}): {}",
        std::fs::read_to_string(err.path()).unwrap_or_default()
    );
    std::fs::read_to_string(out.path()).unwrap()
}

/// The DOM after the page's scripts ran.
async fn dom(url: String) -> String {
    tokio::task::spawn_blocking(move || browse(&url, &["--dump-dom"]))
        .await
        .unwrap()
}

fn screenshots_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp; the artefacts sit beside it.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(url: String, name: &str) {
    let path = screenshots_dir().join(format!("{name}.png"));
    let arg = format!("--screenshot={}", path.display());
    tokio::task::spawn_blocking(move || {
        browse(&url, &[&arg, "--window-size=1280,900", "--hide-scrollbars"])
    })
    .await
    .unwrap();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    assert!(size > 1000, "screenshot {} is {size} bytes", path.display());
}

/// A secure local federation that ran `rounds` rounds, each with a
/// reported validation metric, and its audit log exported.
struct Ran {
    federation: LocalFederation,
    control_toml: PathBuf,
    export: PathBuf,
    rounds: u64,
    _dir: tempfile::TempDir,
}

async fn federation(rounds: u64) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = LocalFederationSpec::new(&dir.path().join("fed"), 3);
    spec.rows = 400;
    spec.hidden = vec![16, 8];
    spec.batch_size = 32;
    spec.min_participants = 2;
    let federation = LocalFederation::start(&spec).await.unwrap();
    for round in 1..=rounds {
        let report = federation.coordinator.run_next_round().await.unwrap();
        assert_eq!(report.round, round);
        // A metric as an evaluation would report it (the console plots
        // whatever numeric metrics the log holds).
        federation
            .coordinator
            .record_metrics(
                round,
                &fedsoc_coordinator::model_sha256(&report.model),
                serde_json::json!({ "roc_auc": 0.6 + 0.1 * round as f64 }),
            )
            .unwrap();
    }
    // Let the members cosign the latest checkpoint, if they do in time;
    // the pages show cosignatures only when logged.
    federation
        .record_cosignatures(3, Duration::from_secs(10))
        .await;
    let control_toml = federation.dir().join("control.toml");
    std::fs::write(
        &control_toml,
        format!(
            "coordinator = \"https://localhost:{}\"\n[tls]\nca = \"pki/ca.pem\"\ncert = \"pki/analyst.pem\"\nkey = \"pki/analyst.key\"\n",
            federation.coordinator.local_addr().port()
        ),
    )
    .unwrap();
    let export = dir.path().join("export");
    fedsoc_coordinator::replay::export_bundle(federation.dir(), &export).unwrap();
    Ran {
        federation,
        control_toml,
        export,
        rounds,
        _dir: dir,
    }
}

/// A console on an ephemeral loopback port; dropping the sender stops it.
async fn console(config: Option<&Path>, log: Option<&Path>) -> (String, oneshot::Sender<()>) {
    let console = Console::bind(&ConsoleOptions {
        config: config.map(Path::to_path_buf),
        audit_log: log.map(Path::to_path_buf),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        tls: None,
    })
    .await
    .unwrap();
    let url = console.url();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(console.serve(async move {
        let _ = stopped.await;
    }));
    (url, stop)
}

/// The text between `start` and the next `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} missing in\n{text}"));
    let rest = &text[from..];
    &rest[..rest.find(end).map_or(rest.len(), |i| i + end.len())]
}

/// Flips one byte inside the first `kind` entry of the log copy in `dir`.
fn tamper(dir: &Path, kind: &str) {
    let path = dir.join("entries.log");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes
        .windows(kind.len())
        .position(|w| w == kind.as_bytes())
        .unwrap_or_else(|| panic!("no {kind} entry in {}", path.display()));
    bytes[at + kind.len() - 1] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_pages_in_chromium_show_rounds_plots_checked_proofs_and_a_tampered_entry() {
    chromium();
    let ran = federation(2).await;
    let (url, _stop) = console(Some(&ran.control_toml), Some(&ran.export)).await;

    // `/`: the roster with who is online; the script ran under the CSP
    // and refreshed the page from /api/status at least once.
    let page = dom(format!("{url}/")).await;
    for id in ran.federation.participant_ids() {
        assert!(
            page.contains(&format!("data-member=\"{id}\"")),
            "{id} missing in\n{page}"
        );
    }
    assert_eq!(
        page.matches("class=\"online\"").count(),
        3,
        "all three members online:\n{page}"
    );
    let refreshed = page
        .split_once("data-refreshed=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or("", |(value, _)| value);
    assert!(
        refreshed.parse::<u32>().unwrap_or(0) >= 1,
        "the live refresh never ran (data-refreshed={refreshed}):\n{page}"
    );
    assert!(page.contains("no round running"), "{page}");
    screenshot(format!("{url}/"), "federation").await;

    // `/rounds`: each round completed, and one marker per round on the
    // loss plot (plus the legend's one marker).
    let page = dom(format!("{url}/rounds")).await;
    let table = between(&page, "id=\"rounds-table\"", "</table>");
    for round in 1..=ran.rounds {
        assert!(
            table.contains(&format!(
                "data-round=\"{round}\" data-outcome=\"completed\""
            )),
            "round {round} missing in\n{table}"
        );
    }
    let loss = between(&page, "id=\"loss-plot\"", "</figure>");
    assert_eq!(
        loss.matches("<circle").count() as u64,
        ran.rounds + 1,
        "one marker per completed round and one in the legend:\n{loss}"
    );
    let metric = between(&page, "id=\"metric-plot\"", "</figure>");
    assert!(metric.contains("roc_auc"), "{metric}");
    screenshot(format!("{url}/rounds"), "rounds").await;

    // `/rounds/1`: its entries, each proof checked by the console.
    let page = dom(format!("{url}/rounds/1")).await;
    let entries = between(&page, "id=\"entries\"", "</section>");
    let checked = entries.matches("proof checked").count();
    assert!(
        checked >= 4,
        "round 1 has an opening, stages, an aggregate and a model entry:\n{entries}"
    );
    assert!(!entries.contains("proof FAILED"), "{entries}");
    assert!(page.contains("id=\"model-sha256\""), "{page}");
    assert!(page.contains("signature checked"), "{page}");
    screenshot(format!("{url}/rounds/1"), "round-1").await;

    // `/verify` on the intact log: verified throughout.
    let page = dom(format!("{url}/verify")).await;
    assert!(page.contains("data-ok=\"true\""), "{page}");
    assert!(!page.contains("class=\"failed\""), "{page}");
    screenshot(format!("{url}/verify"), "verify").await;

    // A copy with one byte of round 1's model entry changed: verification
    // fails at exactly that entry, earlier entries passed.
    let model_entry = fedsoc_coordinator::audit_view::timeline(&ran.export)
        .unwrap()
        .attempts
        .iter()
        .find(|a| a.round == 1)
        .and_then(|a| a.model_entry)
        .unwrap();
    let tampered = ran.export.with_file_name("tampered");
    copy_dir(&ran.export, &tampered);
    tamper(&tampered, "round.model");
    let (bad_url, _stop_bad) = console(None, Some(&tampered)).await;
    let page = dom(format!("{bad_url}/verify")).await;
    assert!(page.contains("data-ok=\"false\""), "{page}");
    let failed = between(&page, "<tr class=\"failed\"", ">");
    assert!(
        failed.contains("id=\"first-failure\"")
            && failed.contains(&format!("data-entry=\"{model_entry}\"")),
        "the first failure should be entry {model_entry}: {failed}\n{page}"
    );
    assert_eq!(page.matches("class=\"failed\"").count(), 1, "{page}");
    assert_eq!(
        page.matches("class=\"passed\"").count() as u64,
        model_entry,
        "{page}"
    );
    screenshot(format!("{bad_url}/verify"), "verify-tampered").await;
    ran.federation.shutdown().await;
}

/// One plain HTTP/1.1 request; returns (status line, headers, body).
fn http(url: &str, method: &str, path: &str) -> (String, String, String) {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (
        status.to_string(),
        headers.to_ascii_lowercase(),
        body.to_string(),
    )
}

/// Distinctive slices of every PEM file the federation holds (keys and
/// certificates): none may appear in what the console serves.
fn pem_material(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.join("pki")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap_or_default();
        for line in text
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 40)
        {
            out.push(line[..40].to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_sets_strict_headers_is_get_only_and_exposes_no_update_share_key_or_sample_count()
 {
    let ran = federation(1).await;
    let (url, _stop) = console(Some(&ran.control_toml), Some(&ran.export)).await;
    let material = pem_material(ran.federation.dir());
    assert!(material.len() > 10, "{material:?}");
    let csp = "content-security-policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
    let paths = [
        "/",
        "/api/status",
        "/rounds",
        "/rounds/1",
        "/rounds/99",
        "/rounds/x",
        "/verify",
        "/static/console.css",
        "/static/console.js",
        "/nowhere",
    ];
    for path in paths {
        let (status, headers, body) = tokio::task::spawn_blocking({
            let url = url.clone();
            move || http(&url, "GET", path)
        })
        .await
        .unwrap();
        assert!(
            status.contains(" 200 ") || status.contains(" 404 "),
            "{path}: {status}\n{body}"
        );
        for needle in [
            csp,
            "x-content-type-options: nosniff",
            "referrer-policy: no-referrer",
        ] {
            assert!(
                headers.contains(needle),
                "{path}: {needle:?} missing in\n{headers}"
            );
        }
        let lower = body.to_ascii_lowercase();
        for forbidden in [
            "-----begin",
            "private key",
            "samples",
            "\"share",
            "update_sha",
            "delta",
        ] {
            assert!(
                !lower.contains(forbidden),
                "{path} says {forbidden:?}:\n{body}"
            );
        }
        for m in &material {
            assert!(!body.contains(m.as_str()), "{path} holds PEM material {m}");
        }
        // Nothing external: every src/href is the console's own.
        for attr in [
            "src=\"http",
            "href=\"http",
            "src=\"//",
            "href=\"//",
            "@import",
        ] {
            assert!(!body.contains(attr), "{path} refers outside: {attr}");
        }
    }
    let (status, _, _) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || http(&url, "GET", "/api/status")
    })
    .await
    .unwrap();
    assert!(status.contains(" 200 "), "{status}");
    for (method, path) in [
        ("POST", "/"),
        ("PUT", "/rounds"),
        ("DELETE", "/verify"),
        ("POST", "/nowhere"),
    ] {
        let (status, headers, _) = tokio::task::spawn_blocking({
            let url = url.clone();
            move || http(&url, method, path)
        })
        .await
        .unwrap();
        assert!(status.contains(" 405 "), "{method} {path}: {status}");
        assert!(headers.contains(csp), "{method} {path}: {headers}");
        assert!(headers.contains("allow: get, head"), "{headers}");
    }
    ran.federation.shutdown().await;
}
