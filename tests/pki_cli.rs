//! `fedsoc pki` as an operator runs it: init, issue, show, revoke.

use std::path::Path;
use std::process::{Command, Output};

fn fedsoc(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fedsoc"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn ok(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn failed(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The value of a `name: value` line of `pki show`.
fn field(shown: &str, name: &str) -> String {
    shown
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name}: line in\n{shown}"))
        .trim()
        .to_string()
}

#[test]
fn init_issue_show_revoke_and_show_again() {
    let tmp = tempfile::tempdir().unwrap();
    let here = tmp.path();
    let init = ok(&fedsoc(
        &["pki", "init", "--dir", "pki", "--federation", "eu"],
        here,
    ));
    // A new federation starts with a signed, empty CRL the coordinator
    // requires, and is told how to renew it.
    assert!(
        init.contains("crl.pem (CRL #1, nothing revoked") && init.contains("fedsoc pki crl --dir"),
        "{init}"
    );
    let issued = ok(&fedsoc(
        &[
            "pki",
            "issue",
            "--dir",
            "pki",
            "--role",
            "participant",
            "--id",
            "soc-ee",
            "--days",
            "90",
        ],
        here,
    ));
    assert!(issued.contains("serial"), "{issued}");
    ok(&fedsoc(
        &[
            "pki",
            "issue",
            "--dir",
            "pki",
            "--role",
            "coordinator",
            "--id",
            "coord",
            "--host",
            "localhost",
        ],
        here,
    ));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(here.join("pki/soc-ee.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let shown = ok(&fedsoc(&["pki", "show", "pki/soc-ee.pem"], here));
    assert_eq!(field(&shown, "role"), "participant");
    assert_eq!(field(&shown, "id"), "soc-ee");
    assert_eq!(field(&shown, "key"), "Ed25519");
    assert_eq!(field(&shown, "serial").len(), 32, "{shown}");
    assert_eq!(field(&shown, "sha256").len(), 64, "{shown}");
    assert!(field(&shown, "issuer").contains("fedsoc CA eu"), "{shown}");
    assert!(!field(&shown, "not before").is_empty());
    assert!(!field(&shown, "not after").is_empty());
    let validity = field(&shown, "validity");
    assert!(
        validity == "valid for 89 more days" || validity == "valid for 90 more days",
        "{shown}"
    );
    assert!(
        field(&shown, "revocation").starts_with("not revoked"),
        "{shown}"
    );

    let revoked = ok(&fedsoc(
        &[
            "pki",
            "revoke",
            "soc-ee",
            "--dir",
            "pki",
            "--reason",
            "key-compromise",
        ],
        here,
    ));
    assert!(revoked.contains("CRL #2"), "{revoked}");
    assert!(here.join("pki/crl.pem").exists());

    let shown = ok(&fedsoc(&["pki", "show", "pki/soc-ee.pem"], here));
    let revocation = field(&shown, "revocation");
    assert!(revocation.starts_with("REVOKED"), "{shown}");
    assert!(revocation.contains("key-compromise"), "{shown}");
    let json = ok(&fedsoc(
        &[
            "pki",
            "show",
            "pki/soc-ee.pem",
            "--crl",
            "pki/crl.pem",
            "--json",
        ],
        here,
    ));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["revocation"]["revoked"], true);
    assert_eq!(json["role"], "participant");
    let coord = ok(&fedsoc(&["pki", "show", "pki/coord.pem"], here));
    assert!(coord.contains("not revoked"), "{coord}");
    let crl = ok(&fedsoc(&["pki", "show", "pki/crl.pem"], here));
    assert!(crl.contains("participant soc-ee"), "{crl}");

    // --dir defaults to the current folder.
    let again = ok(&fedsoc(&["pki", "revoke", "soc-ee"], &here.join("pki")));
    assert!(again.contains("already revoked"), "{again}");

    // Renewal: same revocations, next number, fresh nextUpdate.
    let renewed = ok(&fedsoc(
        &["pki", "crl", "--dir", "pki", "--days", "10"],
        here,
    ));
    assert!(
        renewed.contains("(CRL #3, 1 revoked, current until"),
        "{renewed}"
    );
}

#[test]
fn refusals_name_the_problem_and_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let here = tmp.path();
    ok(&fedsoc(&["pki", "init", "--dir", "pki"], here));
    let issue = |id: &str, extra: &[&str]| {
        let mut args = vec![
            "pki", "issue", "--dir", "pki", "--role", "auditor", "--id", id,
        ];
        args.extend_from_slice(extra);
        fedsoc(&args, here)
    };
    ok(&issue("eu-audit", &[]));

    let err = failed(&issue("eu-audit", &[]));
    assert!(err.contains("eu-audit.pem already exists"), "{err}");
    assert!(err.contains("--force"), "{err}");
    ok(&issue("eu-audit", &["--force"]));

    let err = failed(&fedsoc(&["pki", "revoke", "nobody", "--dir", "pki"], here));
    assert!(err.contains("nobody"), "{err}");
    assert!(err.contains("known ids: eu-audit"), "{err}");

    let err = failed(&issue("", &[]));
    assert!(err.contains("invalid id"), "{err}");
    let err = failed(&issue("a/b", &[]));
    assert!(err.contains("invalid id"), "{err}");
    let err = failed(&issue("ca", &["--force"]));
    assert!(err.contains("reserved"), "{err}");
    let err = failed(&fedsoc(
        &[
            "pki", "issue", "--dir", "pki", "--role", "root", "--id", "x",
        ],
        here,
    ));
    assert!(err.contains("unknown role"), "{err}");
    let err = failed(&fedsoc(
        &[
            "pki", "revoke", "eu-audit", "--dir", "pki", "--reason", "lost",
        ],
        here,
    ));
    assert!(err.contains("key-compromise"), "{err}");
}
