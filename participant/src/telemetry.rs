//! The participant's local telemetry, loaded once and encoded with the
//! federation's feature encoding. It never leaves this process.

use fedsoc_datasets::read::{csv, nsl_kdd, suricata, zeek};
use fedsoc_datasets::synthetic::{SyntheticConfig, site_telemetry};
use fedsoc_datasets::{EncoderSpec, ReadOptions, Records};
use ndarray::Array2;

use crate::config::DataSource;
use crate::error::ParticipantError;

/// How an operator of `fedsoc participant run` has malformed rows skipped.
pub const SKIP_BAD_ROWS_HINT: &str = "set skip_bad_rows = true in [data] of participant.toml";

/// Reads the records a data source describes; malformed rows skipped
/// (where allowed) are reported in the log. A malformed row that stops
/// the read names the participant.toml setting that skips such rows.
pub fn load(source: &DataSource) -> Result<Records, ParticipantError> {
    read(source).map_err(|e| match e {
        ParticipantError::Data(e) => ParticipantError::Data(e.with_skip_hint(SKIP_BAD_ROWS_HINT)),
        other => other,
    })
}

fn read(source: &DataSource) -> Result<Records, ParticipantError> {
    let options = |skip_bad_rows: bool| ReadOptions { skip_bad_rows };
    let loaded = match source {
        DataSource::Synthetic {
            site,
            seed,
            rows,
            contamination,
        } => {
            return Ok(Records::from_flows(&site_telemetry(
                *site,
                &SyntheticConfig {
                    seed: *seed,
                    rows: *rows,
                    attack_fraction: *contamination,
                },
            )?));
        }
        DataSource::NslKdd {
            path,
            skip_bad_rows,
        } => nsl_kdd::read(path, &options(*skip_bad_rows))?,
        DataSource::Csv {
            path,
            schema,
            skip_bad_rows,
        } => csv::read_csv(
            path,
            &csv::CsvSchema::load(schema)?,
            &options(*skip_bad_rows),
        )?,
        DataSource::Zeek {
            path,
            skip_bad_rows,
        } => zeek::read(path, &options(*skip_bad_rows))?,
        DataSource::Suricata {
            path,
            skip_bad_rows,
        } => suricata::read(path, &options(*skip_bad_rows))?,
    };
    tracing::info!(report = %loaded.report, "telemetry loaded");
    if loaded.records.is_empty() {
        return Err(ParticipantError::Data(
            fedsoc_datasets::DatasetError::EmptyInput,
        ));
    }
    Ok(loaded.records)
}

/// Where the telemetry comes from, for messages: the file (or pattern).
pub fn describe(source: &DataSource) -> String {
    match source {
        DataSource::Synthetic { site, .. } => format!("synthetic telemetry of site {site}"),
        DataSource::NslKdd { path, .. }
        | DataSource::Csv { path, .. }
        | DataSource::Zeek { path, .. }
        | DataSource::Suricata { path, .. } => path.display().to_string(),
    }
}

/// Splits records into the rows a model trains on and the benign rows held
/// out for validation (a calibrate round scores those). The choice of a
/// row depends only on its index, so it is the same in every session and
/// every round; about `fraction` of the benign rows are held out.
pub fn split_validation(records: &Records, fraction: f64) -> (Records, Records) {
    let held_out = |row: usize| {
        // SplitMix64 of the row index: a fixed, well-mixed draw per row.
        let mut z = (row as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        records.family(row) == fedsoc_datasets::NORMAL && ((z >> 11) as f64) < fraction * (1u64 << 53) as f64
    };
    (records.filter(|row| !held_out(row)), records.filter(held_out))
}

/// The encoded rows and which of them are labelled attacks.
pub struct Encoded {
    pub features: Array2<f32>,
    pub attacks: Vec<bool>,
}

/// Encodes records with the encoder the coordinator announced.
pub fn encode(records: &Records, encoder_json: &str) -> Result<Encoded, ParticipantError> {
    let encoder: EncoderSpec = serde_json::from_str(encoder_json).map_err(|e| {
        ParticipantError::Protocol(format!(
            "the coordinator's feature encoding is unreadable: {e}"
        ))
    })?;
    encoder.validate().map_err(|e| {
        ParticipantError::Protocol(format!("the coordinator's feature encoding: {e}"))
    })?;
    Ok(Encoded {
        features: encoder.encode(records)?,
        attacks: records.attack_flags(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_row_names_the_participant_toml_setting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conn.log");
        // A Zeek JSON log whose second row is not JSON.
        std::fs::write(
            &path,
            "{\"proto\":\"tcp\",\"conn_state\":\"SF\",\"id.resp_p\":80,\"duration\":0.1,\
             \"orig_bytes\":10,\"resp_bytes\":20,\"orig_pkts\":1,\"resp_pkts\":1}\n{not json\n",
        )
        .unwrap();
        let source = DataSource::Zeek {
            path: path.clone(),
            skip_bad_rows: false,
        };
        let Err(err) = load(&source) else {
            panic!("a malformed row was accepted")
        };
        let said = err.to_string();
        assert!(
            said.contains("conn.log:2:")
                && said.contains(
                    "fix the row, or set skip_bad_rows = true in [data] of participant.toml"
                )
                && !said.contains("--skip-bad-rows"),
            "{said}"
        );
        // The setting it names does skip the row.
        let source = DataSource::Zeek {
            path,
            skip_bad_rows: true,
        };
        assert_eq!(load(&source).unwrap().len(), 1);
    }
}
