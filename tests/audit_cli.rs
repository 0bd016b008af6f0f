//! `fedsoc audit` on the log a real demo federation writes: every round
//! verified and replayed from the log alone.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `fedsoc` with `args`, each `{}` among them replaced by the next of
/// `paths`.
fn fedsoc(args: &[&str], paths: &[&Path]) -> Output {
    let mut paths = paths.iter();
    let args: Vec<std::ffi::OsString> = args
        .iter()
        .map(|a| match *a {
            "{}" => paths.next().expect("a path per {}").as_os_str().to_owned(),
            other => other.into(),
        })
        .collect();
    Command::new(env!("CARGO_BIN_EXE_fedsoc"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_demo_log_verifies_replays_and_shows_its_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let demo = fedsoc(
        &[
            "demo",
            "--participants",
            "3",
            "--rounds",
            "2",
            "--rows",
            "500",
            "--out",
            "{}",
        ],
        &[&out],
    );
    let (stdout, stderr) = text(&demo);
    assert!(demo.status.success(), "{stdout}\n{stderr}");
    let ca = out.join("pki/ca.pem");

    let verify = fedsoc(&["audit", "verify", "{}", "--ca", "{}"], &[&out, &ca]);
    let (stdout, stderr) = text(&verify);
    assert!(verify.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with(
            // statistics (2 rounds), 2 training rounds, calibration
            "verified: 5 rounds (5 replayed: unmasking and FedAvg reproduce every model hash)"
        ),
        "{stdout}"
    );
    assert!(!stderr.contains("trust on first use"), "{stderr}");

    let json = fedsoc(
        &["audit", "verify", "{}", "--ca", "{}", "--json"],
        &[&out, &ca],
    );
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["rounds"], 5);
    assert_eq!(report["rounds_replayed"], 5);
    assert!(report["checkpoints"].as_u64().unwrap() >= 3, "{report}");
    assert_eq!(report["root"].as_str().unwrap().len(), 64);

    // Every participant cosigned the latest checkpoint: --min-cosigners
    // passes with 3 and fails with 4, naming the count.
    let verify_with = |cosigners: &str| {
        fedsoc(
            &[
                "audit",
                "verify",
                "{}",
                "--ca",
                "{}",
                "--min-cosigners",
                cosigners,
            ],
            &[&out, &ca],
        )
    };
    let cosigned = verify_with("3");
    let (stdout, stderr) = text(&cosigned);
    assert!(cosigned.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("cosigned by 3 participant(s)"), "{stdout}");
    let short = verify_with("4");
    let (_, stderr) = text(&short);
    assert!(!short.status.success());
    assert!(
        stderr.contains("is cosigned by 3 distinct participant(s)")
            && stderr.contains("fewer than the 4 required"),
        "{stderr}"
    );
    let latest = report["cosigned"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(latest["cosigners"].as_array().unwrap().len(), 3, "{report}");

    // A participant prints the checkpoint it holds: the log's latest.
    let config = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("participant-"))
        })
        .unwrap();
    let held = fedsoc(
        &["participant", "checkpoint", "--config", "{}", "--json"],
        &[&config],
    );
    let (stdout, stderr) = text(&held);
    assert!(held.status.success(), "{stdout}\n{stderr}");
    let held: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(held["tree_size"], latest["tree_size"], "{held}");
    assert_eq!(held["root"], latest["root"], "{held}");
    assert!(
        held["note"]
            .as_str()
            .unwrap()
            .starts_with("fedsoc-audit checkpoint v1\n")
    );

    // Without --ca the log's own CA is used, and the user is told so.
    let unpinned = fedsoc(&["audit", "verify", "{}"], &[&out]);
    let (_, stderr) = text(&unpinned);
    assert!(unpinned.status.success());
    assert!(stderr.contains("trust on first use"), "{stderr}");

    let show = fedsoc(&["audit", "show", "{}"], &[&out]);
    let (stdout, stderr) = text(&show);
    assert!(show.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("checkpoint cosignatures"), "{stdout}");
    let rounds: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" secure ") && l.contains("completed"))
        .collect();
    assert_eq!(rounds.len(), 5, "{stdout}");
    assert!(rounds.iter().all(|l| l.contains("3/3/3/3/3")), "{stdout}");

    // Another federation's CA is refused, by name.
    let other = dir.path().join("other-ca");
    let init = fedsoc(&["pki", "init", "--dir", "{}"], &[&other]);
    assert!(init.status.success());
    let other_ca = other.join("ca.pem");
    let refused = fedsoc(&["audit", "verify", "{}", "--ca", "{}"], &[&out, &other_ca]);
    let (_, stderr) = text(&refused);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("the log's CA is not the CA you trust"),
        "{stderr}"
    );

    // An exported bundle verifies on its own.
    let bundle = dir.path().join("bundle");
    let export = fedsoc(&["audit", "export", "{}", "--to", "{}"], &[&out, &bundle]);
    let (stdout, stderr) = text(&export);
    assert!(export.status.success(), "{stdout}\n{stderr}");
    let bundle_ca = bundle.join("ca.pem");
    let again = fedsoc(
        &["audit", "verify", "{}", "--ca", "{}"],
        &[&bundle, &bundle_ca],
    );
    assert!(again.status.success(), "{:?}", text(&again));
}
