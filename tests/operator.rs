//! What an operator following "Running a federation" sees, with real
//! processes on loopback: a second agent with the same id, a participant
//! trusting the wrong CA, a participant that goes away, and a command
//! whose output is piped into a reader that stops early.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::cluster::{Cluster, ClusterSpec};

fn small() -> ClusterSpec {
    ClusterSpec {
        participants: 1,
        min_participants: 1,
        rows: 200,
        ..ClusterSpec::default()
    }
}

/// The JSON log lines of the latest start of `name`.
fn log_lines(cluster: &Cluster, name: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(cluster.log(name))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn level_is(line: &serde_json::Value, levels: &[&str]) -> bool {
    levels.iter().any(|l| line["level"] == *l)
}

#[test]
fn a_second_agent_with_the_same_id_takes_over_and_the_first_stops_saying_why() {
    let mut cluster = Cluster::new(&small());
    cluster.start_coordinator(None);
    cluster.start_participant("soc-0", None);
    cluster.wait_log("soc-0", "joined the federation", Duration::from_secs(60));

    // The operator starts a second agent with the same configuration.
    cluster.start_participant_as("soc-0-again", "soc-0");
    cluster.wait_log(
        "soc-0-again",
        "joined the federation",
        Duration::from_secs(60),
    );

    // The first agent learns it was replaced, says by whom, and stops.
    cluster.wait_log(
        "soc-0",
        "another agent with the same certificate (participant soc-0) connected",
        Duration::from_secs(30),
    );
    assert!(
        cluster.wait_exit("soc-0", Duration::from_secs(30)),
        "the replaced agent keeps running"
    );
    let lines = log_lines(&cluster, "soc-0");
    let said = lines
        .iter()
        .find(|l| {
            level_is(l, &["ERROR", "WARN"])
                && l.to_string()
                    .contains("another agent with the same certificate")
        })
        .unwrap_or_else(|| panic!("no ERROR or WARN line says why: {lines:?}"));
    let text = said.to_string();
    assert!(
        text.contains("from 127.0.0.1:")
            && text.contains("Check for a second agent running with id soc-0"),
        "{text}"
    );
    assert!(
        !lines.iter().any(|l| l.to_string().contains("reconnecting")),
        "the replaced agent tried to take its place back: {lines:?}"
    );

    // The coordinator says so at INFO, naming the participant.
    cluster.wait_log(
        "coordinator",
        "participant soc-0's session was replaced by a newer one from 127.0.0.1:",
        Duration::from_secs(10),
    );
    let replaced = log_lines(&cluster, "coordinator")
        .into_iter()
        .find(|l| l.to_string().contains("session was replaced"))
        .unwrap();
    assert_eq!(replaced["level"], "INFO", "{replaced}");
    assert_eq!(replaced["fields"]["participant"], "soc-0", "{replaced}");

    // The SOC is still online, served by the second agent, which was not
    // disturbed.
    cluster.wait_connected("soc-0", Duration::from_secs(30));
    assert!(cluster.is_running("soc-0-again"));
    let second = std::fs::read_to_string(cluster.log("soc-0-again")).unwrap();
    assert!(
        !second.contains("replaced") && !second.contains("session lost"),
        "{second}"
    );
}

#[test]
fn a_participant_trusting_a_foreign_ca_stops_and_names_the_ca_file() {
    let mut cluster = Cluster::new(&small());
    let root = cluster.path().to_path_buf();
    let foreign = fedsoc_pki::CertificateAuthority::generate("elsewhere").unwrap();
    std::fs::create_dir_all(root.join("foreign")).unwrap();
    foreign.save(&root.join("foreign")).unwrap();
    let config = std::fs::read_to_string(root.join("soc-0.toml"))
        .unwrap()
        .replace("ca = \"pki/ca.pem\"", "ca = \"foreign/ca.pem\"");
    assert!(config.contains("foreign/ca.pem"));
    std::fs::write(root.join("soc-0.toml"), config).unwrap();

    cluster.start_coordinator(None);
    cluster.start_participant("soc-0", None);
    cluster.wait_log(
        "soc-0",
        "the coordinator's certificate is not signed by the CA in",
        Duration::from_secs(60),
    );
    assert!(
        cluster.wait_exit("soc-0", Duration::from_secs(30)),
        "a participant trusting a foreign CA keeps retrying"
    );
    let text = std::fs::read_to_string(cluster.log("soc-0")).unwrap();
    assert!(
        text.contains("foreign/ca.pem")
            && text.contains("check that tls.ca in participant.toml is the federation's ca.pem"),
        "{text}"
    );
    assert!(!text.contains("reconnecting"), "{text}");
    let status = cluster.status().unwrap();
    assert!(
        status["connected"].as_array().unwrap().is_empty(),
        "{status}"
    );
}

#[test]
fn a_participant_that_goes_away_is_one_short_info_line_naming_it() {
    let mut cluster = Cluster::new(&small());
    cluster.start_coordinator(None);
    cluster.start_participant("soc-0", None);
    cluster.wait_connected("soc-0", Duration::from_secs(60));
    // The machine dies: no goodbye, the connection just breaks.
    cluster.kill_participant("soc-0");
    cluster.wait_log(
        "coordinator",
        "\"message\":\"left\"",
        Duration::from_secs(60),
    );

    let lines = log_lines(&cluster, "coordinator");
    let left = lines
        .iter()
        .find(|l| l["fields"]["message"] == "left")
        .unwrap();
    assert_eq!(left["level"], "INFO", "{left}");
    assert_eq!(left["fields"]["participant"], "soc-0", "{left}");
    let reason = left["fields"]["reason"].as_str().unwrap_or_default();
    assert!(
        !reason.is_empty() && reason.len() < 80,
        "the reason is one short phrase: {left}"
    );
    // No transport dump at INFO about this participant.
    for line in lines
        .iter()
        .filter(|l| level_is(l, &["INFO"]) && l["fields"]["participant"] == "soc-0")
    {
        let fields = line["fields"].to_string();
        assert!(
            fields.len() < 300
                && !["h2", "rustls", "MetadataMap", "status:", "source:"]
                    .iter()
                    .any(|raw| fields.contains(raw)),
            "{line}"
        );
    }
}

/// Runs `fedsoc ARGS` with its output piped into a reader that takes one
/// line and closes the pipe; returns the exit code and standard error.
fn close_after_one_line(cluster: &Cluster, args: &[&str]) -> (Option<i32>, String) {
    let mut child = support::cluster::fedsoc()
        .current_dir(cluster.path())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(!first.is_empty(), "no output from {args:?}");
    drop(reader);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} still runs with nobody reading its output");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.code(), stderr)
}

#[test]
fn round_status_watch_into_a_closed_pipe_ends_quietly() {
    let mut cluster = Cluster::new(&small());
    cluster.start_coordinator(None);
    for json in [false, true] {
        let mut args = vec![
            "round",
            "status",
            "--watch",
            "--config",
            "control-analyst.toml",
        ];
        if json {
            args.push("--json");
        }
        let (code, stderr) = close_after_one_line(&cluster, &args);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Error"), "{args:?}: {stderr}");
        // What a shell reports for a program stopped by SIGPIPE.
        assert_eq!(code, Some(141), "{args:?}: {stderr}");
    }
}
