//! The NSL-KDD reader on the real files: row and family counts must match
//! the data's README. Skipped, with a message, where the data is absent.

use std::path::PathBuf;

use fedsoc_datasets::ReadOptions;
use fedsoc_datasets::read::{default_data_dir, nsl_kdd};

fn nsl_kdd_dir() -> Option<PathBuf> {
    let dir = default_data_dir()?.join("nsl-kdd");
    dir.is_dir().then_some(dir)
}

#[test]
fn counts_match_the_readme() {
    let Some(dir) = nsl_kdd_dir() else {
        eprintln!("skipped: NSL-KDD not found; set FEDSOC_DATA to the folder holding nsl-kdd/");
        return;
    };
    // (file, normal, DoS, Probe, R2L, U2R) from the README's table.
    let expected = [
        ("KDDTrain+", 67_343, 45_927, 11_656, 995, 52),
        ("KDDTrain+_20Percent", 13_449, 9_234, 2_289, 209, 11),
        ("KDDTest+", 9_711, 7_458, 2_421, 2_754, 200),
        ("KDDTest-21", 2_152, 4_342, 2_402, 2_754, 200),
    ];
    for (name, normal, dos, probe, r2l, u2r) in expected {
        let path = nsl_kdd::find(&dir, name).unwrap();
        let loaded = nsl_kdd::read(&path, &ReadOptions::default()).unwrap();
        let counts = loaded.records.family_counts();
        let got = |f: &str| counts.get(f).copied().unwrap_or(0);
        assert_eq!(
            [
                got("normal"),
                got("DoS"),
                got("Probe"),
                got("R2L"),
                got("U2R")
            ],
            [normal, dos, probe, r2l, u2r],
            "{name}"
        );
        assert_eq!(loaded.report.rows, normal + dos + probe + r2l + u2r);
        assert_eq!(loaded.report.skipped, 0);
        // Every row encodes with the built-in layout, unseen services included.
        let x = nsl_kdd::encoder_layout()
            .unwrap()
            .encode(&loaded.records)
            .unwrap();
        assert_eq!(x.nrows(), loaded.records.len());
    }
}

#[test]
fn a_corrupted_copy_fails_with_file_and_line_or_skips() {
    let Some(dir) = nsl_kdd_dir() else {
        eprintln!("skipped: NSL-KDD not found; set FEDSOC_DATA to the folder holding nsl-kdd/");
        return;
    };
    let text = std::fs::read_to_string(nsl_kdd::find(&dir, "KDDTest-21").unwrap()).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[99].push_str(",x"); // one field too many
    lines[199] = format!("-1{}", &lines[199][lines[199].find(',').unwrap()..]); // a negative duration
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("KDDTest-21.txt");
    std::fs::write(&copy, lines.join("\n")).unwrap();

    let Err(err) = nsl_kdd::read(&copy, &ReadOptions::default()) else {
        panic!("a corrupted file must not read cleanly");
    };
    let err = err.to_string();
    assert!(
        err.contains("KDDTest-21.txt:100") && err.contains("44 fields, expected 43"),
        "{err}"
    );
    let loaded = nsl_kdd::read(
        &copy,
        &ReadOptions {
            skip_bad_rows: true,
        },
    )
    .unwrap();
    assert_eq!(loaded.report.skipped, 2);
    assert_eq!(loaded.records.len(), 11_850 - 2);
    assert_eq!(loaded.report.first_skips[1].0, 200);
}
