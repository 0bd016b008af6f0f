//! The telemetry readers on fuzzed file bytes (plain, or gzip when the
//! bytes start with its magic). The first byte picks the reader and
//! whether bad rows are skipped: NSL-KDD, Zeek conn.log (TSV or JSON,
//! told apart by the reader), Suricata EVE, or CSV with one of the example
//! schemas.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use fedsoc_datasets::ReadOptions;
use fedsoc_datasets::read::csv::{CsvSchema, read_csv};
use fedsoc_datasets::read::{nsl_kdd, suricata, zeek};
use fedsoc_fuzz::scratch;
use libfuzzer_sys::fuzz_target;

/// The example schemas of the repository, as users would write them.
fn schemas() -> &'static [CsvSchema; 2] {
    static S: OnceLock<[CsvSchema; 2]> = OnceLock::new();
    S.get_or_init(|| {
        let parse = |text: &str| toml::from_str::<CsvSchema>(text).expect("example schema");
        [
            parse(include_str!("../../examples/netflow-v9.schema.toml")),
            parse(include_str!("../../examples/argus-binetflow.schema.toml")),
        ]
    })
}

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| scratch::dir("datasets_readers"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let options = ReadOptions {
        skip_bad_rows: which & 0x80 != 0,
    };
    let path = scratch::file(dir(), "input", bytes);
    let loaded = match which % 5 {
        0 => nsl_kdd::read(&path, &options),
        1 => zeek::read(&path, &options),
        2 => suricata::read(&path, &options),
        3 => read_csv(&path, &schemas()[0], &options),
        _ => read_csv(&path, &schemas()[1], &options),
    };
    if let Ok(l) = loaded {
        assert_eq!(l.report.rows, l.records.len());
        assert!(options.skip_bad_rows || l.report.skipped == 0);
    }
});
