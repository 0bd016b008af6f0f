//! The participant's local telemetry, loaded once and encoded with the
//! federation's feature encoding. It never leaves this process.

use fedsoc_datasets::read::source::{SourceReport, read_source};
use fedsoc_datasets::read::{csv, nsl_kdd};
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
    load_reported(source).map(|(records, _)| records)
}

/// [`load`], with the report of a Zeek or Suricata source (files, rows
/// read, outside the window, kept, malformed), which is also logged.
pub fn load_reported(
    source: &DataSource,
) -> Result<(Records, Option<SourceReport>), ParticipantError> {
    read(source).map_err(|e| match e {
        ParticipantError::Data(e) => ParticipantError::Data(e.with_skip_hint(SKIP_BAD_ROWS_HINT)),
        other => other,
    })
}

fn read(source: &DataSource) -> Result<(Records, Option<SourceReport>), ParticipantError> {
    let options = |skip_bad_rows: bool| ReadOptions { skip_bad_rows };
    let refuse = |(field, problem): (&str, String)| {
        ParticipantError::DataConfig(format!("{field}: {problem}"))
    };
    source.check_untimed().map_err(refuse)?;
    let loaded = match source {
        DataSource::Synthetic {
            site,
            seed,
            rows,
            contamination,
        } => {
            let records = Records::from_flows(&site_telemetry(
                *site,
                &SyntheticConfig {
                    seed: *seed,
                    rows: *rows,
                    attack_fraction: *contamination,
                },
            )?);
            return Ok((records, None));
        }
        DataSource::Zeek(_) | DataSource::Suricata(_) => {
            let Some(flow_source) = source.flow_source() else {
                unreachable!("a zeek or suricata source is a flow source")
            };
            let loaded = read_source(&flow_source.map_err(refuse)?)?;
            tracing::info!(
                source = %loaded.report.source,
                files = loaded.report.files,
                rows_read = loaded.report.rows_read,
                outside_window = loaded.report.outside_window,
                kept = loaded.report.kept,
                malformed = loaded.report.malformed,
                report = %loaded.report,
                "telemetry loaded"
            );
            return Ok((loaded.records, Some(loaded.report)));
        }
        DataSource::NslKdd {
            path,
            skip_bad_rows,
            ..
        } => nsl_kdd::read(path, &options(*skip_bad_rows))?,
        DataSource::Csv {
            path,
            schema,
            skip_bad_rows,
            ..
        } => csv::read_csv(
            path,
            &csv::CsvSchema::load(schema)?,
            &options(*skip_bad_rows),
        )?,
    };
    tracing::info!(report = %loaded.report, "telemetry loaded");
    if loaded.records.is_empty() {
        return Err(ParticipantError::Data(
            fedsoc_datasets::DatasetError::EmptyInput,
        ));
    }
    Ok((loaded.records, None))
}

/// Where the telemetry comes from, for messages: the file (or pattern).
pub fn describe(source: &DataSource) -> String {
    match source {
        DataSource::Synthetic { site, .. } => format!("synthetic telemetry of site {site}"),
        DataSource::NslKdd { path, .. } | DataSource::Csv { path, .. } => {
            path.display().to_string()
        }
        DataSource::Zeek(logs) | DataSource::Suricata(logs) => logs.path.display().to_string(),
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
        records.family(row) == fedsoc_datasets::NORMAL
            && ((z >> 11) as f64) < fraction * (1u64 << 53) as f64
    };
    (
        records.filter(|row| !held_out(row)),
        records.filter(held_out),
    )
}

/// The encoded rows and which of them are labelled attacks.
pub struct Encoded {
    pub features: Array2<f32>,
    pub attacks: Vec<bool>,
}

/// Encodes records with the encoder the coordinator announced.
pub fn encode(records: &Records, encoder_json: &str) -> Result<Encoded, ParticipantError> {
    encode_with(records, &read_encoder(encoder_json)?)
}

/// The coordinator's feature encoding, read and checked.
pub fn read_encoder(encoder_json: &str) -> Result<EncoderSpec, ParticipantError> {
    let encoder: EncoderSpec = serde_json::from_str(encoder_json).map_err(|e| {
        ParticipantError::Protocol(format!(
            "the coordinator's feature encoding is unreadable: {e}"
        ))
    })?;
    encoder.validate().map_err(|e| {
        ParticipantError::Protocol(format!("the coordinator's feature encoding: {e}"))
    })?;
    Ok(encoder)
}

/// Encodes records with an encoder already read.
pub fn encode_with(records: &Records, encoder: &EncoderSpec) -> Result<Encoded, ParticipantError> {
    Ok(Encoded {
        features: encoder.encode(records)?,
        attacks: records.attack_flags(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FlowLogs;

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
        let source = DataSource::Zeek(FlowLogs::at(&path));
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
        let source = DataSource::Zeek(FlowLogs {
            skip_bad_rows: true,
            ..FlowLogs::at(&path)
        });
        assert_eq!(load(&source).unwrap().len(), 1);
    }

    #[test]
    fn a_window_is_refused_on_csv_and_reported_on_zeek() {
        let dir = tempfile::tempdir().unwrap();
        let csv = DataSource::Csv {
            path: dir.path().join("flows.csv"),
            schema: dir.path().join("schema.toml"),
            skip_bad_rows: false,
            since: Some("2026-12-01T00:00:00Z".into()),
            until: None,
        };
        let Err(err) = load(&csv) else {
            panic!("a window on a CSV source was accepted")
        };
        let said = err.to_string();
        assert!(
            said.contains("[data] since") && said.contains("no timestamp"),
            "{said}"
        );

        let hour = dir.path().join("2026-12-01");
        std::fs::create_dir_all(&hour).unwrap();
        let mut body =
            String::from("#fields\tts\tproto\tconn_state\tid.resp_p\torig_pkts\tresp_pkts\n");
        for i in 0..100 {
            body.push_str(&format!("{}\ttcp\tSF\t80\t1\t1\n", 1_796_083_200 + i * 60));
        }
        std::fs::write(hour.join("conn.00:00:00-01:00:00.log"), body).unwrap();
        let source = DataSource::Zeek(FlowLogs {
            since: Some("2026-12-01T00:30:00Z".into()),
            max_rows: Some(10),
            ..FlowLogs::at(dir.path())
        });
        let (records, report) = load_reported(&source).unwrap();
        let report = report.unwrap();
        assert_eq!(records.len(), 10);
        assert_eq!(
            (
                report.files,
                report.rows_read,
                report.outside_window,
                report.kept
            ),
            (1, 100, 30, 10)
        );
        let late = DataSource::Zeek(FlowLogs {
            since: Some("2027-01-01T00:00:00Z".into()),
            ..FlowLogs::at(dir.path())
        });
        let Err(err) = load(&late) else {
            panic!("an empty window was accepted")
        };
        assert!(err.to_string().contains("2027-01-01T00:00:00Z.."), "{err}");
    }
}
