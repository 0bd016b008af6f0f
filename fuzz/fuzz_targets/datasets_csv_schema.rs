//! CSV reading with a fuzzed schema: the TOML schema, the separator
//! `@@csv@@`, then the file bytes. A schema that parses and validates must
//! read any file without panicking, and give an encoder layout or an error.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use fedsoc_datasets::ReadOptions;
use fedsoc_datasets::read::csv::{CsvSchema, read_csv};
use fedsoc_fuzz::{scratch, split_once};
use libfuzzer_sys::fuzz_target;

const SEPARATOR: &[u8] = b"@@csv@@";

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| scratch::dir("datasets_csv_schema"))
}

fuzz_target!(|data: &[u8]| {
    let (schema, bytes) = split_once(data, SEPARATOR);
    let Ok(schema) = std::str::from_utf8(schema) else {
        return;
    };
    let Ok(schema) = toml::from_str::<CsvSchema>(schema) else {
        return;
    };
    if schema.validate().is_err() {
        return;
    }
    let _ = schema.encoder_layout(&Default::default());
    let path = scratch::file(dir(), "input.csv", bytes);
    for skip_bad_rows in [false, true] {
        let _ = read_csv(&path, &schema, &ReadOptions { skip_bad_rows });
    }
});
