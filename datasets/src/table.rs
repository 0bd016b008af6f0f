//! [`Records`]: the one record type every reader produces and the encoder
//! reads.
//!
//! A table of rows with named numeric and categorical columns plus a label
//! and an attack family. Flow-shaped sources (Zeek, Suricata, the synthetic
//! generator) become the flow columns of [`Records::from_flows`]; tabular
//! sources (NSL-KDD, any CSV with a schema) keep their own column names.
//! The federation's [`EncoderSpec`](crate::EncoderSpec) names the columns it
//! uses, so one encoder serves every source with those columns.

use crate::encoder::{CategoricalFeature, NumericFeature};
use crate::error::DatasetError;
use crate::record::{FlowRecord, NORMAL};

/// Rows of named numeric and categorical values, each with a label.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Records {
    numeric_names: Vec<String>,
    categorical_names: Vec<String>,
    /// Row-major, `len × numeric_names.len()`.
    numeric: Vec<f64>,
    /// Row-major, `len × categorical_names.len()`.
    categorical: Vec<String>,
    /// The source's own label ("normal" for benign), e.g. "neptune".
    labels: Vec<String>,
    /// The attack family ("normal" for benign), e.g. "DoS".
    families: Vec<String>,
}

impl Records {
    /// An empty table with these columns.
    pub fn new(numeric_names: Vec<String>, categorical_names: Vec<String>) -> Self {
        Records {
            numeric_names,
            categorical_names,
            ..Records::default()
        }
    }

    /// The flow columns of [`NumericFeature::ALL`] and
    /// [`CategoricalFeature::ALL`], derived from each flow.
    pub fn from_flows(flows: &[FlowRecord]) -> Self {
        Records::from_flow_refs(flows.iter())
    }

    /// [`Records::from_flows`] of flows held elsewhere (a live detector's
    /// batch keeps each flow with its key), without copying them first.
    pub fn from_flow_refs<'a>(flows: impl ExactSizeIterator<Item = &'a FlowRecord>) -> Self {
        let mut out = Records::flow_table();
        out.reserve(flows.len());
        flows.for_each(|flow| out.push_flow(flow));
        out
    }

    /// [`Records::from_flows`] of flows that are dropped as soon as their
    /// row is written, so a large sample is not held twice.
    pub fn from_flow_iter(flows: impl ExactSizeIterator<Item = FlowRecord>) -> Self {
        let mut out = Records::flow_table();
        out.reserve(flows.len());
        flows.for_each(|flow| out.push_flow(&flow));
        out
    }

    /// An empty table with the flow columns.
    fn flow_table() -> Self {
        Records::new(
            NumericFeature::ALL
                .iter()
                .map(|f| f.name().to_string())
                .collect(),
            CategoricalFeature::ALL
                .iter()
                .map(|f| f.name().to_string())
                .collect(),
        )
    }

    /// Appends the flow columns of one flow.
    fn push_flow(&mut self, flow: &FlowRecord) {
        self.numeric
            .extend(NumericFeature::ALL.iter().map(|f| f.value(flow)));
        self.categorical.extend(
            CategoricalFeature::ALL
                .iter()
                .map(|f| f.value(flow).to_string()),
        );
        self.labels.push(flow.family().to_string());
        self.families.push(flow.family().to_string());
    }

    fn reserve(&mut self, rows: usize) {
        self.numeric.reserve(rows * self.numeric_names.len());
        self.categorical
            .reserve(rows * self.categorical_names.len());
        self.labels.reserve(rows);
        self.families.reserve(rows);
    }

    /// Appends a row; fails if a width does not match the columns.
    pub fn push(
        &mut self,
        numeric: &[f64],
        categorical: Vec<String>,
        label: String,
        family: String,
    ) -> Result<(), DatasetError> {
        if numeric.len() != self.numeric_names.len()
            || categorical.len() != self.categorical_names.len()
        {
            return Err(DatasetError::InvalidSpec(format!(
                "a row has {} numeric and {} categorical values but the table has {} and {} columns",
                numeric.len(),
                categorical.len(),
                self.numeric_names.len(),
                self.categorical_names.len()
            )));
        }
        self.numeric.extend_from_slice(numeric);
        self.categorical.extend(categorical);
        self.labels.push(label);
        self.families.push(family);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn numeric_names(&self) -> &[String] {
        &self.numeric_names
    }

    pub fn categorical_names(&self) -> &[String] {
        &self.categorical_names
    }

    /// Row `row`'s numeric values, in [`numeric_names`](Self::numeric_names) order.
    pub fn numeric_row(&self, row: usize) -> &[f64] {
        let w = self.numeric_names.len();
        &self.numeric[row * w..(row + 1) * w]
    }

    /// Row `row`'s categorical values, in [`categorical_names`](Self::categorical_names) order.
    pub fn categorical_row(&self, row: usize) -> &[String] {
        let w = self.categorical_names.len();
        &self.categorical[row * w..(row + 1) * w]
    }

    pub fn label(&self, row: usize) -> &str {
        &self.labels[row]
    }

    pub fn family(&self, row: usize) -> &str {
        &self.families[row]
    }

    /// Every row's attack family ("normal" for benign).
    pub fn families(&self) -> &[String] {
        &self.families
    }

    /// Whether each row is an attack.
    pub fn attack_flags(&self) -> Vec<bool> {
        self.families.iter().map(|f| f != NORMAL).collect()
    }

    /// The rows at `indices`, in that order (an index may repeat).
    pub fn select(&self, indices: &[usize]) -> Records {
        let mut out = Records::new(self.numeric_names.clone(), self.categorical_names.clone());
        out.reserve(indices.len());
        for &i in indices {
            out.numeric.extend_from_slice(self.numeric_row(i));
            out.categorical
                .extend(self.categorical_row(i).iter().cloned());
            out.labels.push(self.labels[i].clone());
            out.families.push(self.families[i].clone());
        }
        out
    }

    /// Only the rows for which `keep(row)` holds.
    pub fn filter(&self, keep: impl Fn(usize) -> bool) -> Records {
        let rows: Vec<usize> = (0..self.len()).filter(|&i| keep(i)).collect();
        self.select(&rows)
    }

    /// Appends `other`'s rows; the columns must be the same.
    pub fn append(&mut self, other: &Records) -> Result<(), DatasetError> {
        if other.numeric_names != self.numeric_names
            || other.categorical_names != self.categorical_names
        {
            return Err(DatasetError::InvalidSpec(
                "cannot append records with different columns; read both with the same schema"
                    .into(),
            ));
        }
        self.numeric.extend_from_slice(&other.numeric);
        self.categorical.extend(other.categorical.iter().cloned());
        self.labels.extend(other.labels.iter().cloned());
        self.families.extend(other.families.iter().cloned());
        Ok(())
    }

    /// Row counts per family, sorted by family name.
    pub fn family_counts(&self) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for f in &self.families {
            *counts.entry(f.clone()).or_insert(0) += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(label: Option<&str>, bytes_out: f64) -> FlowRecord {
        FlowRecord {
            duration_s: 2.0,
            bytes_out,
            bytes_in: 10.0,
            packets_out: 4.0,
            packets_in: 2.0,
            protocol: "tcp".into(),
            service: "http".into(),
            conn_state: "SF".into(),
            dst_port: 80,
            label: label.map(str::to_string),
        }
    }

    #[test]
    fn flows_become_derived_columns() {
        let r = Records::from_flows(&[flow(None, 100.0), flow(Some("scan"), 0.0)]);
        assert_eq!(r.len(), 2);
        let bytes_per_packet_out = r
            .numeric_names()
            .iter()
            .position(|n| n == "bytes_per_packet_out")
            .unwrap();
        assert_eq!(r.numeric_row(0)[bytes_per_packet_out], 25.0);
        assert_eq!(
            r.categorical_row(0),
            ["tcp", "http", "SF", "well_known"].map(String::from)
        );
        assert_eq!(r.families(), ["normal", "scan"].map(String::from));
        assert_eq!(r.attack_flags(), vec![false, true]);
    }

    #[test]
    fn select_filter_append_and_counts() {
        let r = Records::from_flows(&[flow(None, 1.0), flow(Some("scan"), 2.0), flow(None, 3.0)]);
        let picked = r.select(&[2, 0]);
        assert_eq!(picked.numeric_row(0)[1], 3.0);
        let attacks = r.filter(|i| r.family(i) != NORMAL);
        assert_eq!(attacks.len(), 1);
        let mut all = picked.clone();
        all.append(&attacks).unwrap();
        assert_eq!(all.family_counts().get("normal"), Some(&2));
        assert_eq!(all.family_counts().get("scan"), Some(&1));
        let other = Records::new(vec!["x".into()], vec![]);
        assert!(all.append(&other).is_err());
        let mut t = Records::new(vec!["a".into()], vec!["b".into()]);
        assert!(
            t.push(
                &[1.0, 2.0],
                vec!["x".into()],
                "normal".into(),
                "normal".into()
            )
            .is_err()
        );
        assert!(
            t.push(&[1.0], vec!["x".into()], "normal".into(), "normal".into())
                .is_ok()
        );
    }
}
