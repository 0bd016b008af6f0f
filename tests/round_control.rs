//! What a data scientist and an operator see when they follow "Running a
//! federation" with three participants on loopback, against real `fedsoc`
//! processes: a stopped round never runs, even when participants join
//! afterwards; `round start` says how many participants are online and
//! what a round needs; `--follow` without a terminal prints one line per
//! change and says on Ctrl-C what stays queued; SIGTERM mid-round says
//! what was interrupted and exits cleanly.
//!
//! Cases run one at a time (each runs four processes).

mod support;

use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::cluster::{Cluster, ClusterSpec, fedsoc};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const PATIENCE: Duration = Duration::from_secs(180);

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// The operator's federation: three participants, a round needs two.
fn three_participants() -> Cluster {
    Cluster::new(&ClusterSpec {
        participants: 3,
        min_participants: 2,
        ..ClusterSpec::default()
    })
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

/// Waits until the file at `path` contains `needle`; returns its text.
fn wait_file(path: &Path, needle: &str, patience: Duration) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            start.elapsed() < patience,
            "{needle:?} not in {} after {patience:?}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits, at most `patience`, for `child` to exit.
fn wait_exit(child: &mut Child, patience: Duration) -> std::process::ExitStatus {
    let id = child.id();
    support::cluster::wait_child(child, patience)
        .unwrap_or_else(|| panic!("process {id} still runs after {patience:?}"))
}

/// `fedsoc round start --rounds N --follow` as the analyst, stdout into
/// `name` (a file: not a terminal).
fn follow(cluster: &Cluster, rounds: u32, name: &str) -> (Child, std::path::PathBuf) {
    let out = cluster.path().join(name);
    let child = fedsoc()
        .current_dir(cluster.path())
        .args([
            "round",
            "start",
            "--rounds",
            &rounds.to_string(),
            "--follow",
        ])
        .args(["--config", "control-analyst.toml"])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, out)
}

fn status(cluster: &Cluster) -> serde_json::Value {
    cluster.status().expect("round status answers")
}

#[test]
fn a_round_stopped_before_participants_join_never_runs() {
    let _serial = serial();
    let mut cluster = three_participants();
    cluster.start_coordinator(None);

    // Nobody is connected: the answer says so and what to do.
    let said = ok(cluster.round_command("analyst", &["start", "--rounds", "1"]));
    for needle in [
        "queued 1 round; 1 in the queue now",
        "0 of 3 participants online, a round needs 2: start the participants",
        "fedsoc participant run --config",
        "offline: soc-0, soc-1, soc-2",
    ] {
        assert!(said.contains(needle), "{needle:?} missing in:\n{said}");
    }
    cluster.wait_log("coordinator", "waiting for participants", PATIENCE);

    // Stopped while the round loop waits for participants.
    let said = ok(cluster.round_command("analyst", &["stop"]));
    assert!(said.contains("took 1 round off the queue"), "{said}");
    assert!(!said.contains("running"), "nothing was running: {said}");
    cluster.wait_log(
        "coordinator",
        "round queue emptied while waiting for participants; no round runs",
        PATIENCE,
    );

    // The participants join; the stopped round does not run.
    cluster.start_all_participants();
    cluster.wait_all_connected(PATIENCE);
    let now = status(&cluster);
    assert_eq!(now["completed_rounds"], 0, "{now}");
    assert_eq!(now["queued_rounds"], 0, "{now}");
    assert!(now["running"].is_null(), "{now}");
    assert!(
        cluster.attempts().is_empty(),
        "a stopped round was opened: {:?}",
        cluster.attempts()
    );
    let queue: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cluster.path().join("state/queue.json")).unwrap())
            .unwrap();
    assert_eq!(queue["target_round"], 0, "{queue}");

    // With everyone online a new round runs, and the answer says so.
    let said = ok(cluster.round_command("analyst", &["start", "--rounds", "1"]));
    assert!(
        said.contains("3 of 3 participants online, a round needs 2"),
        "{said}"
    );
    assert!(!said.contains("start the participants"), "{said}");
    cluster.wait_completed(1, PATIENCE);
    let now = status(&cluster);
    assert_eq!(now["completed_rounds"], 1, "{now}");
    assert_eq!(cluster.attempts().get(&1), Some(&1), "round 1 ran once");
}

#[test]
fn follow_without_a_terminal_prints_progress_lines_and_ctrl_c_says_what_stays_queued() {
    let _serial = serial();
    let mut cluster = three_participants();
    cluster.start_coordinator(None);

    // Nobody online: following waits, and says so.
    let (mut child, out) = follow(&cluster, 2, "follow-1.out");
    let text = wait_file(
        &out,
        "round 1: waiting for participants, 0 of 3 online, a round needs 2",
        PATIENCE,
    );
    assert!(
        text.contains("0 of 3 participants online, a round needs 2"),
        "{text}"
    );
    // Ctrl-C: the rounds stay queued, and the way to stop them is named.
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let exit = wait_exit(&mut child, PATIENCE);
    assert_eq!(exit.code(), Some(130), "interrupted: {exit:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("stopped following; 2 rounds stay queued on the coordinator"),
        "{text}"
    );
    assert!(
        text.contains("To stop them: fedsoc round stop --config control-analyst.toml"),
        "{text}"
    );
    assert_eq!(status(&cluster)["queued_rounds"], 2);

    // Following again while the participants join: one line per change,
    // one per completed round, until the queue is empty.
    let (mut child, out) = follow(&cluster, 1, "follow-2.out");
    wait_file(&out, "round 1: waiting for participants", PATIENCE);
    cluster.start_all_participants();
    let exit = wait_exit(&mut child, PATIENCE);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(exit.success(), "{exit:?}\n{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("queued 1 round; 3 in the queue now"),
        "{text}"
    );
    for round in 1..=3 {
        let done = format!("round {round} complete: ");
        assert_eq!(
            lines.iter().filter(|l| l.starts_with(&done)).count(),
            1,
            "one line for round {round}'s completion:\n{text}"
        );
    }
    assert_eq!(lines.last(), Some(&"done: round 3 complete"), "{text}");
    for pair in lines.windows(2) {
        assert_ne!(pair[0], pair[1], "a line repeats:\n{text}");
    }
}

#[test]
fn sigterm_mid_round_says_what_was_interrupted_and_exits_cleanly() {
    let _serial = serial();
    let mut cluster = three_participants();
    // Round 1 stops dead at share-keys: surely mid-round at the signal.
    cluster.start_coordinator(Some("1:share-keys"));
    cluster.start_all_participants();
    cluster.wait_all_connected(PATIENCE);
    cluster.queue_rounds(1);
    cluster.wait_log("coordinator", "fault point reached", PATIENCE);

    let exit = cluster.signal_coordinator("TERM", PATIENCE);
    assert!(exit.success(), "SIGTERM: {exit:?}");
    let log = std::fs::read_to_string(cluster.log("coordinator")).unwrap();
    let warnings: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| {
            l["level"] == "WARN"
                && l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("shutting down"))
        })
        .collect();
    assert_eq!(warnings.len(), 1, "one warning line:\n{log}");
    let fields = &warnings[0]["fields"];
    assert_eq!(fields["round"], 1, "{fields}");
    assert_eq!(fields["attempt"], 1, "{fields}");
    assert_eq!(fields["stage"], "share-keys", "{fields}");
    let message = fields["message"].as_str().unwrap();
    assert!(
        message.contains("round 1 (attempt 1) interrupted at stage share-keys")
            && message.contains("stays queued and is retried with fresh keys at the next start"),
        "{message}"
    );

    // The next start retries it with fresh keys, and it completes.
    cluster.start_coordinator(None);
    cluster.wait_completed(1, PATIENCE);
    assert_eq!(
        cluster.attempts()[&1],
        2,
        "the interrupted attempt and the retry"
    );
    let report = cluster.audit_verify();
    assert_eq!(report["rounds"].as_u64(), Some(1), "{report}");

    // SIGINT between rounds: a clean exit too.
    let exit = cluster.signal_coordinator("INT", PATIENCE);
    assert!(exit.success(), "SIGINT: {exit:?}");
    cluster.wait_log("coordinator", "SIGINT received; shutting down", PATIENCE);
}
