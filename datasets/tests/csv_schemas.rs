//! The example CSV schemas in `examples/` read the shared flow-export
//! samples without code: row and family counts match the samples' README.
//! Skipped, with a message, where the samples are absent.

use std::path::{Path, PathBuf};

use fedsoc_datasets::ReadOptions;
use fedsoc_datasets::read::csv::{CsvSchema, read_csv};
use fedsoc_datasets::read::default_data_dir;

fn example(name: &str) -> CsvSchema {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    CsvSchema::load(&path).unwrap()
}

fn sample(name: &str) -> Option<PathBuf> {
    let path = default_data_dir()?.join("formats/netflow").join(name);
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "skipped: formats/netflow/{name} not found; set FEDSOC_DATA to the datasets folder"
        );
        None
    }
}

#[test]
fn netflow_v9_schema_reads_nf_bot_iot() {
    let schema = example("netflow-v9.schema.toml");
    let layout = schema.encoder_layout(&Default::default()).unwrap();
    let Some(path) = sample("nf_bot_iot_v2_head4000.csv") else {
        return;
    };
    let loaded = read_csv(&path, &schema, &ReadOptions::default()).unwrap();
    let counts = loaded.records.family_counts();
    let got = |f: &str| counts.get(f).copied().unwrap_or(0);
    // README: DoS 2,361, DDoS 1,265, Reconnaissance 350, Benign 24.
    assert_eq!(
        [
            got("DoS"),
            got("DDoS"),
            got("Reconnaissance"),
            got("normal")
        ],
        [2361, 1265, 350, 24]
    );
    let x = layout.encode(&loaded.records).unwrap();
    assert_eq!(x.nrows(), 4000);
}

#[test]
fn argus_schema_reads_binetflow() {
    let schema = example("argus-binetflow.schema.toml");
    schema.encoder_layout(&Default::default()).unwrap();
    let Some(path) = sample("slips_test2_argus.binetflow") else {
        return;
    };
    let loaded = read_csv(&path, &schema, &ReadOptions::default()).unwrap();
    // README: 6,751 flows, unlabelled; tcp 3,925, udp 2,754, icmp 65, igmp 7.
    assert_eq!(loaded.records.len(), 6751);
    assert_eq!(loaded.records.family_counts().get("normal"), Some(&6751));
    let proto = |p: &str| {
        (0..loaded.records.len())
            .filter(|&i| loaded.records.categorical_row(i)[0] == p)
            .count()
    };
    assert_eq!(
        [proto("tcp"), proto("udp"), proto("icmp"), proto("igmp")],
        [3925, 2754, 65, 7]
    );
}
