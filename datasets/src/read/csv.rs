//! Any CSV flow export, described by a small TOML schema instead of code.
//!
//! ```toml
//! header = true                 # first row names the columns (default true)
//! delimiter = ","               # one byte (default ",")
//! other_columns = "ignore"      # header columns the schema does not list: "error" (default) or "ignore"
//! benign = ["normal", "benign"] # label values meaning benign traffic (case-insensitive)
//!
//! [[columns]]
//! name = "duration"             # header name, or just a name when header = false (then order counts)
//! role = "numeric-log"          # numeric | numeric-log | categorical | label | family | ignore
//!
//! [[columns]]
//! name = "proto"
//! role = "categorical"
//! vocabulary = ["tcp", "udp", "icmp"]   # optional: the federation-wide values
//!
//! [families]                    # optional: label → attack family
//! neptune = "DoS"
//! ```
//!
//! The label column decides benign against attack. The family is the
//! `family` cell, or else the label mapped through `[families]`, or the
//! label itself; benign rows always get "normal". A row whose label and
//! family cell disagree (a benign label with an attack family, or an attack
//! label with a family that names benign traffic, such as `Normal`) keeps
//! its label's verdict and is counted in the read report with its line.
//! Without a label column the family cell decides; without either, every
//! row is benign (unlabelled telemetry).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

use super::{Loaded, ReadOptions, RowPolicy, non_negative, open_text};
use crate::encoder::{CategoricalColumn, EncoderSpec, NumericColumn};
use crate::error::DatasetError;
use crate::record::NORMAL;
use crate::table::Records;

/// What a CSV column is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A number, standardised as is.
    Numeric,
    /// A heavy-tailed number (bytes, counts), standardised after `ln(1 + x)`.
    NumericLog,
    /// A category, one-hot encoded.
    Categorical,
    /// The row's label (benign values listed in `benign`).
    Label,
    /// The row's attack family.
    Family,
    /// Not used.
    Ignore,
}

/// One column of a [`CsvSchema`].
#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaColumn {
    pub name: String,
    pub role: Role,
    /// The federation-wide values of a categorical column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocabulary: Option<Vec<String>>,
}

/// What to do with header columns the schema does not list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OtherColumns {
    #[default]
    Error,
    Ignore,
}

/// How to read a CSV file: its columns and their roles.
#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSchema {
    #[serde(default = "yes")]
    pub header: bool,
    #[serde(default = "comma")]
    pub delimiter: String,
    #[serde(default)]
    pub other_columns: OtherColumns,
    #[serde(default = "default_benign")]
    pub benign: Vec<String>,
    pub columns: Vec<SchemaColumn>,
    #[serde(default)]
    pub families: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

fn comma() -> String {
    ",".into()
}

fn default_benign() -> Vec<String> {
    ["normal", "benign", "0"].map(String::from).to_vec()
}

impl CsvSchema {
    /// Reads and checks a schema file.
    pub fn load(path: &Path) -> Result<Self, DatasetError> {
        let err = |reason: String| DatasetError::Read {
            file: path.display().to_string(),
            line: None,
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let schema: CsvSchema = toml::from_str(&text).map_err(|e| err(format!("{e}")))?;
        schema.validate().map_err(|e| err(e.to_string()))?;
        Ok(schema)
    }

    /// Checks the schema makes sense on its own.
    pub fn validate(&self) -> Result<(), DatasetError> {
        let bad = |m: String| Err(DatasetError::InvalidSpec(m));
        if self.delimiter.len() != 1 {
            return bad(format!(
                "delimiter {:?} must be exactly one byte, e.g. \",\" or \"\\t\"",
                self.delimiter
            ));
        }
        if self.columns.is_empty() {
            return bad("the schema lists no [[columns]]".into());
        }
        for (i, c) in self.columns.iter().enumerate() {
            if c.name.trim().is_empty() {
                return bad(format!("column {} has an empty name", i + 1));
            }
            if self.columns[..i].iter().any(|o| o.name == c.name) {
                return bad(format!("column `{}` is listed twice", c.name));
            }
            if c.vocabulary.is_some() && c.role != Role::Categorical {
                return bad(format!(
                    "column `{}` has a vocabulary but role {:?}; only categorical columns take one",
                    c.name, c.role
                ));
            }
        }
        for role in [Role::Label, Role::Family] {
            if self.columns.iter().filter(|c| c.role == role).count() > 1 {
                return bad(format!("more than one column has role {role:?}; keep one"));
            }
        }
        if !self
            .columns
            .iter()
            .any(|c| matches!(c.role, Role::Numeric | Role::NumericLog | Role::Categorical))
        {
            return bad("no numeric or categorical column: nothing to learn from".into());
        }
        Ok(())
    }

    fn with_role(&self, pred: impl Fn(Role) -> bool) -> Vec<&SchemaColumn> {
        self.columns.iter().filter(|c| pred(c.role)).collect()
    }

    /// The encoder layout this schema implies (statistics unfitted: mean 0,
    /// std 1). Categorical columns need a vocabulary, from the schema or
    /// from `seen` (values observed, e.g. in a public reference file).
    pub fn encoder_layout(
        &self,
        seen: &BTreeMap<String, Vec<String>>,
    ) -> Result<EncoderSpec, DatasetError> {
        let numeric = self
            .with_role(|r| matches!(r, Role::Numeric | Role::NumericLog))
            .into_iter()
            .map(|c| NumericColumn {
                name: c.name.clone(),
                log1p: c.role == Role::NumericLog,
                mean: 0.0,
                std: 1.0,
            })
            .collect();
        let mut categorical = Vec::new();
        for c in self.with_role(|r| r == Role::Categorical) {
            let vocabulary = match (&c.vocabulary, seen.get(&c.name)) {
                (Some(v), _) => v.clone(),
                (None, Some(v)) => v.clone(),
                (None, None) => {
                    return Err(DatasetError::InvalidSpec(format!(
                        "categorical column `{}` has no vocabulary; list its values in the schema",
                        c.name
                    )));
                }
            };
            categorical.push(CategoricalColumn {
                name: c.name.clone(),
                vocabulary,
            });
        }
        let spec = EncoderSpec {
            numeric,
            categorical,
        };
        spec.validate()?;
        Ok(spec)
    }

    fn is_benign(&self, label: &str) -> bool {
        let label = label.trim();
        label.is_empty() || self.benign.iter().any(|b| b.eq_ignore_ascii_case(label))
    }

    /// Does a family cell name benign traffic? A benign label value, or
    /// "normal"/"benign" as datasets write it (`Normal` in UNSW-NB15).
    fn family_is_benign(&self, family: &str) -> bool {
        self.is_benign(family)
            || family.eq_ignore_ascii_case(NORMAL)
            || family.eq_ignore_ascii_case("benign")
    }

    /// The row's (label, family) from its label and family cells, and what
    /// disagreed between them, if anything. The label cell decides benign
    /// against attack when there is one.
    fn classify(
        &self,
        label: Option<&str>,
        family: Option<&str>,
    ) -> ((String, String), Option<String>) {
        let family = family.map(str::trim).filter(|f| !f.is_empty());
        let normal = || (NORMAL.to_string(), NORMAL.to_string());
        let Some(label) = label.map(str::trim) else {
            // No label column: the family cell decides.
            return match family {
                Some(f) if !self.family_is_benign(f) => ((f.to_string(), f.to_string()), None),
                _ => (normal(), None),
            };
        };
        if self.is_benign(label) {
            let disagreement = family
                .filter(|f| !self.family_is_benign(f))
                .map(|f| format!("label {label:?} is benign but the family is {f:?}"));
            return (normal(), disagreement);
        }
        match family {
            Some(f) if self.family_is_benign(f) => {
                let mapped = self.mapped_family(label);
                let what = format!(
                    "label {label:?} is an attack but the family is {f:?}; family {mapped:?} used"
                );
                ((label.to_string(), mapped), Some(what))
            }
            Some(f) => ((label.to_string(), f.to_string()), None),
            None => ((label.to_string(), self.mapped_family(label)), None),
        }
    }

    /// An attack label's family through `[families]`, or the label itself.
    fn mapped_family(&self, label: &str) -> String {
        self.families
            .get(label)
            .cloned()
            .unwrap_or_else(|| label.to_string())
    }
}

/// Which field of a line feeds which column.
struct Plan {
    numeric: Vec<(usize, String)>,
    categorical: Vec<usize>,
    label: Option<usize>,
    family: Option<usize>,
    /// Fields a line must have.
    width: usize,
}

impl Plan {
    fn new(schema: &CsvSchema, header: Option<&::csv::StringRecord>) -> Result<Plan, String> {
        let position: HashMap<&str, usize> = match header {
            Some(h) => {
                let names: HashMap<&str, usize> =
                    h.iter().enumerate().map(|(i, n)| (n.trim(), i)).collect();
                let missing: Vec<&str> = schema
                    .columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .filter(|n| !names.contains_key(n))
                    .collect();
                if !missing.is_empty() {
                    return Err(format!(
                        "the header has no column {}; the header is: {}",
                        quoted(&missing),
                        h.iter().collect::<Vec<_>>().join(",")
                    ));
                }
                let unlisted: Vec<&str> = h
                    .iter()
                    .map(str::trim)
                    .filter(|n| !schema.columns.iter().any(|c| c.name == *n))
                    .collect();
                if !unlisted.is_empty() && schema.other_columns == OtherColumns::Error {
                    return Err(format!(
                        "the schema does not list column {}; give each a role (\"ignore\" to drop it) or set other_columns = \"ignore\"",
                        quoted(&unlisted)
                    ));
                }
                names
            }
            None => schema
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name.as_str(), i))
                .collect(),
        };
        let at = |c: &SchemaColumn| position[c.name.as_str()];
        let cols = |pred: &dyn Fn(Role) -> bool| -> Vec<&SchemaColumn> {
            schema.columns.iter().filter(|c| pred(c.role)).collect()
        };
        let width = match header {
            Some(h) => h.len(),
            None => schema.columns.len(),
        };
        Ok(Plan {
            numeric: cols(&|r| matches!(r, Role::Numeric | Role::NumericLog))
                .into_iter()
                .map(|c| (at(c), c.name.clone()))
                .collect(),
            categorical: cols(&|r| r == Role::Categorical)
                .into_iter()
                .map(at)
                .collect(),
            label: cols(&|r| r == Role::Label).first().map(|c| at(c)),
            family: cols(&|r| r == Role::Family).first().map(|c| at(c)),
            width,
        })
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads `path` as `schema` says.
pub fn read_csv(
    path: &Path,
    schema: &CsvSchema,
    options: &ReadOptions,
) -> Result<Loaded, DatasetError> {
    schema.validate()?;
    let mut policy = RowPolicy::new(path, options);
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        // LF alone ends a record, so line numbers stay exact with CRLF; the
        // stray `\r` is trimmed with the rest of the cell's whitespace.
        .terminator(::csv::Terminator::Any(b'\n'))
        .delimiter(schema.delimiter.as_bytes()[0])
        .from_reader(open_text(path)?);
    let mut records_iter = reader.records();
    let header = if schema.header {
        match records_iter.next() {
            Some(Ok(h)) => Some(h),
            Some(Err(e)) => {
                return Err(policy.file_error(Some(1), format!("unreadable header: {e}")));
            }
            None => {
                return Err(
                    policy.file_error(None, "the file is empty; it has no header row".into())
                );
            }
        }
    } else {
        None
    };
    let plan = Plan::new(schema, header.as_ref()).map_err(|r| policy.file_error(Some(1), r))?;
    let mut records = Records::new(
        plan.numeric.iter().map(|(_, n)| n.clone()).collect(),
        schema
            .with_role(|r| r == Role::Categorical)
            .iter()
            .map(|c| c.name.clone())
            .collect(),
    );
    let mut numeric = vec![0.0; plan.numeric.len()];
    let mut line_no = u64::from(schema.header);
    for row in records_iter {
        line_no += 1;
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                let line = e.position().map_or(line_no, |p| p.line());
                if matches!(e.kind(), ::csv::ErrorKind::Io(_)) {
                    return Err(policy.file_error(Some(line), format!("cannot read: {e}")));
                }
                policy.bad_row(line, format!("{e}"))?;
                continue;
            }
        };
        let line = row.position().map_or(line_no, |p| p.line());
        line_no = line;
        if row.len() == 1 && row[0].trim().is_empty() {
            continue; // a blank line
        }
        if row.len() != plan.width {
            policy.bad_row(
                line,
                format!("{} fields, expected {}", row.len(), plan.width),
            )?;
            continue;
        }
        let parsed: Result<(), String> =
            plan.numeric
                .iter()
                .zip(numeric.iter_mut())
                .try_for_each(|((i, name), slot)| {
                    *slot = non_negative(&row[*i], name)?;
                    Ok(())
                });
        if let Err(reason) = parsed {
            policy.bad_row(line, reason)?;
            continue;
        }
        let categorical = plan
            .categorical
            .iter()
            .map(|&i| row[i].trim().to_string())
            .collect();
        let ((label, family), disagreement) =
            schema.classify(plan.label.map(|i| &row[i]), plan.family.map(|i| &row[i]));
        if let Some(what) = disagreement {
            policy.disagreement(line, what);
        }
        records.push(&numeric, categorical, label, family)?;
    }
    Ok(policy.finish(records))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(text: &str) -> CsvSchema {
        let s: CsvSchema = toml::from_str(text).unwrap();
        s.validate().unwrap();
        s
    }

    const SCHEMA: &str = r#"
other_columns = "ignore"
[[columns]]
name = "bytes"
role = "numeric-log"
[[columns]]
name = "dur"
role = "numeric"
[[columns]]
name = "proto"
role = "categorical"
vocabulary = ["tcp", "udp"]
[[columns]]
name = "label"
role = "label"
[families]
neptune = "DoS"
"#;

    fn write(dir: &Path, name: &str, body: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn header_roles_families_bom_crlf_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "f.csv",
            b"\xEF\xBB\xBFproto,bytes,extra,dur,label\r\ntcp,100,x,1.5,normal\r\n\"udp\",\"2,0\",y,0,neptune\r\nicmp,3,z,2,BENIGN\r\n\r\n",
        );
        let err = read_csv(&p, &schema(SCHEMA), &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("f.csv:3") && err.contains("`bytes`"), "{err}");

        let p = write(
            dir.path(),
            "g.csv",
            b"\xEF\xBB\xBFproto,bytes,extra,dur,label\r\ntcp,100,x,1.5,normal\r\n\"udp\",\"20\",y,0,neptune\r\nicmp,3,z,2,BENIGN\r\nudp,4,q,1,smurf\r\n",
        );
        let loaded = read_csv(&p, &schema(SCHEMA), &ReadOptions::default()).unwrap();
        let r = &loaded.records;
        assert_eq!(r.len(), 4);
        assert_eq!(r.numeric_names(), ["bytes", "dur"]);
        assert_eq!(r.numeric_row(1), [20.0, 0.0]);
        assert_eq!(r.categorical_row(2), ["icmp"]);
        assert_eq!(r.families(), ["normal", "DoS", "normal", "smurf"]);
        assert_eq!(r.label(1), "neptune");
        let layout = schema(SCHEMA).encoder_layout(&BTreeMap::new()).unwrap();
        assert!(layout.numeric[0].log1p && !layout.numeric[1].log1p);
        assert_eq!(layout.categorical[0].vocabulary, ["tcp", "udp"]);
    }

    /// A public dataset layout (UNSW-NB15 style): a 0/1 label and an attack
    /// category that reads `Normal` on benign rows, with `benign = ["0"]`.
    /// Before, the category cell overrode the benign label and every benign
    /// row became an attack of family "Normal".
    #[test]
    fn the_label_decides_and_disagreements_are_reported_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let s = schema(
            r#"
benign = ["0"]
[[columns]]
name = "dur"
role = "numeric"
[[columns]]
name = "attack_cat"
role = "family"
[[columns]]
name = "label"
role = "label"
"#,
        );
        let p = write(
            dir.path(),
            "unsw.csv",
            b"dur,attack_cat,label\n0.1,Normal,0\n0.2,Exploits,1\n0.3,,0\n0.4,Exploits,0\n0.5,Normal,1\n",
        );
        let loaded = read_csv(&p, &s, &ReadOptions::default()).unwrap();
        let r = &loaded.records;
        assert_eq!(
            r.families(),
            ["normal", "Exploits", "normal", "normal", "1"]
        );
        let labels: Vec<&str> = (0..r.len()).map(|i| r.label(i)).collect();
        assert_eq!(labels, ["normal", "1", "normal", "normal", "1"]);
        let report = &loaded.report;
        assert_eq!(report.disagreements, 2);
        let lines: Vec<u64> = report.first_disagreements.iter().map(|d| d.0).collect();
        assert_eq!(lines, [5, 6]);
        let text = report.to_string();
        assert!(
            text.contains("2 rows whose label and family disagree (the label decided)")
                && text
                    .contains("unsw.csv:5: label \"0\" is benign but the family is \"Exploits\"")
                && text
                    .contains("unsw.csv:6: label \"1\" is an attack but the family is \"Normal\""),
            "{text}"
        );
    }

    #[test]
    fn headerless_gzip_and_skipping() {
        let dir = tempfile::tempdir().unwrap();
        let s = schema(
            r#"
header = false
[[columns]]
name = "a"
role = "numeric"
[[columns]]
name = "kind"
role = "family"
"#,
        );
        let p = write(
            dir.path(),
            "h.csv",
            b"1,normal\n-2,scan\nx,scan\n4\n5,scan\n",
        );
        let strict = read_csv(&p, &s, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            strict.contains("h.csv:2") && strict.contains("negative"),
            "{strict}"
        );
        let loaded = read_csv(
            &p,
            &s,
            &ReadOptions {
                skip_bad_rows: true,
            },
        )
        .unwrap();
        assert_eq!(loaded.records.len(), 2);
        assert_eq!(loaded.report.skipped, 3);
        let lines: Vec<u64> = loaded.report.first_skips.iter().map(|s| s.0).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert!(loaded.report.first_skips[1].1.contains("not a number"));
        assert!(
            loaded.report.first_skips[2]
                .1
                .contains("1 fields, expected 2")
        );
    }

    #[test]
    fn schema_and_header_mismatches_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let strict = schema(&SCHEMA.replace("other_columns = \"ignore\"", ""));
        let p = write(dir.path(), "e.csv", b"proto,bytes,extra,dur,label\n");
        let e = read_csv(&p, &strict, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("`extra`") && e.contains("other_columns"), "{e}");
        let p = write(dir.path(), "m.csv", b"proto,bytes,label\n");
        let e = read_csv(&p, &strict, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no column `dur`"), "{e}");
        let p = write(dir.path(), "empty.csv", b"");
        let e = read_csv(&p, &strict, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty"), "{e}");

        for bad in [
            "columns = []",
            "delimiter = \";;\"\n[[columns]]\nname = \"a\"\nrole = \"numeric\"",
            "[[columns]]\nname = \"a\"\nrole = \"numeric\"\n[[columns]]\nname = \"a\"\nrole = \"numeric\"",
            "[[columns]]\nname = \"a\"\nrole = \"label\"",
            "[[columns]]\nname = \"a\"\nrole = \"numeric\"\nvocabulary = [\"x\"]",
        ] {
            let s: CsvSchema = toml::from_str(bad).unwrap();
            assert!(s.validate().is_err(), "{bad}");
        }
        let path = write(
            dir.path(),
            "s.toml",
            b"[[columns]]\nname = \"a\"\nrole = \"numerc\"\n",
        );
        let e = CsvSchema::load(&path).unwrap_err().to_string();
        assert!(e.contains("s.toml") && e.contains("numerc"), "{e}");
    }
}
