//! NSL-KDD (Tavallaee et al. 2009): `KDDTrain+`, `KDDTrain+_20Percent`,
//! `KDDTest+` and `KDDTest-21`, plain or gzip, read through the CSV reader
//! with a built-in schema.
//!
//! The 41 features keep their names; counts and byte sizes are
//! `numeric-log` (heavy-tailed), rates and flags plain `numeric`,
//! `protocol_type`, `service` and `flag` categorical with the vocabularies
//! of the four files (70 services, 11 flags). The label column gives the
//! attack name and, through the conventional KDD'99 grouping
//! ([`FAMILIES`], as in the data's `attack_categories.csv`), the family:
//! DoS, Probe, R2L or U2R. The difficulty column is ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::csv::{CsvSchema, OtherColumns, Role, SchemaColumn, read_csv};
use super::{Loaded, ReadOptions};
use crate::encoder::EncoderSpec;
use crate::error::DatasetError;

/// The four standard files, by the names the scenarios use.
pub const FILES: [(&str, &str); 4] = [
    ("KDDTrain+", "KDDTrain+.txt"),
    ("KDDTrain+_20Percent", "KDDTrain+_20Percent.txt"),
    ("KDDTest+", "KDDTest+.txt"),
    ("KDDTest-21", "KDDTest-21.txt"),
];

/// The attack families, in the conventional order.
pub const FAMILY_NAMES: [&str; 4] = ["DoS", "Probe", "R2L", "U2R"];

/// Attack name → family (test-only attacks included).
pub const FAMILIES: [(&str, &str); 39] = [
    ("back", "DoS"),
    ("land", "DoS"),
    ("neptune", "DoS"),
    ("pod", "DoS"),
    ("smurf", "DoS"),
    ("teardrop", "DoS"),
    ("apache2", "DoS"),
    ("mailbomb", "DoS"),
    ("processtable", "DoS"),
    ("udpstorm", "DoS"),
    ("ipsweep", "Probe"),
    ("nmap", "Probe"),
    ("portsweep", "Probe"),
    ("satan", "Probe"),
    ("mscan", "Probe"),
    ("saint", "Probe"),
    ("ftp_write", "R2L"),
    ("guess_passwd", "R2L"),
    ("imap", "R2L"),
    ("multihop", "R2L"),
    ("phf", "R2L"),
    ("spy", "R2L"),
    ("warezclient", "R2L"),
    ("warezmaster", "R2L"),
    ("named", "R2L"),
    ("sendmail", "R2L"),
    ("snmpgetattack", "R2L"),
    ("snmpguess", "R2L"),
    ("worm", "R2L"),
    ("xlock", "R2L"),
    ("xsnoop", "R2L"),
    ("buffer_overflow", "U2R"),
    ("loadmodule", "U2R"),
    ("perl", "U2R"),
    ("rootkit", "U2R"),
    ("httptunnel", "U2R"),
    ("ps", "U2R"),
    ("sqlattack", "U2R"),
    ("xterm", "U2R"),
];

const PROTOCOLS: [&str; 3] = ["tcp", "udp", "icmp"];

const SERVICES: [&str; 70] = [
    "http",
    "private",
    "domain_u",
    "smtp",
    "ftp_data",
    "eco_i",
    "other",
    "ecr_i",
    "telnet",
    "finger",
    "ftp",
    "auth",
    "Z39_50",
    "uucp",
    "courier",
    "bgp",
    "whois",
    "uucp_path",
    "iso_tsap",
    "time",
    "imap4",
    "nnsp",
    "vmnet",
    "urp_i",
    "domain",
    "ctf",
    "csnet_ns",
    "supdup",
    "discard",
    "http_443",
    "daytime",
    "gopher",
    "efs",
    "systat",
    "link",
    "exec",
    "hostnames",
    "name",
    "mtp",
    "echo",
    "klogin",
    "login",
    "ldap",
    "netbios_dgm",
    "sunrpc",
    "netbios_ssn",
    "netstat",
    "netbios_ns",
    "ssh",
    "kshell",
    "nntp",
    "pop_3",
    "sql_net",
    "IRC",
    "ntp_u",
    "rje",
    "remote_job",
    "pop_2",
    "X11",
    "printer",
    "shell",
    "urh_i",
    "tim_i",
    "red_i",
    "pm_dump",
    "tftp_u",
    "http_8001",
    "harvest",
    "aol",
    "http_2784",
];

const FLAGS: [&str; 11] = [
    "SF", "S0", "REJ", "RSTR", "RSTO", "S1", "SH", "S2", "RSTOS0", "S3", "OTH",
];

/// The 43 columns in file order with their roles.
const COLUMNS: [(&str, Role); 43] = [
    ("duration", Role::NumericLog),
    ("protocol_type", Role::Categorical),
    ("service", Role::Categorical),
    ("flag", Role::Categorical),
    ("src_bytes", Role::NumericLog),
    ("dst_bytes", Role::NumericLog),
    ("land", Role::Numeric),
    ("wrong_fragment", Role::NumericLog),
    ("urgent", Role::NumericLog),
    ("hot", Role::NumericLog),
    ("num_failed_logins", Role::NumericLog),
    ("logged_in", Role::Numeric),
    ("num_compromised", Role::NumericLog),
    ("root_shell", Role::NumericLog),
    ("su_attempted", Role::NumericLog),
    ("num_root", Role::NumericLog),
    ("num_file_creations", Role::NumericLog),
    ("num_shells", Role::NumericLog),
    ("num_access_files", Role::NumericLog),
    ("num_outbound_cmds", Role::NumericLog),
    ("is_host_login", Role::Numeric),
    ("is_guest_login", Role::Numeric),
    ("count", Role::NumericLog),
    ("srv_count", Role::NumericLog),
    ("serror_rate", Role::Numeric),
    ("srv_serror_rate", Role::Numeric),
    ("rerror_rate", Role::Numeric),
    ("srv_rerror_rate", Role::Numeric),
    ("same_srv_rate", Role::Numeric),
    ("diff_srv_rate", Role::Numeric),
    ("srv_diff_host_rate", Role::Numeric),
    ("dst_host_count", Role::NumericLog),
    ("dst_host_srv_count", Role::NumericLog),
    ("dst_host_same_srv_rate", Role::Numeric),
    ("dst_host_diff_srv_rate", Role::Numeric),
    ("dst_host_same_src_port_rate", Role::Numeric),
    ("dst_host_srv_diff_host_rate", Role::Numeric),
    ("dst_host_serror_rate", Role::Numeric),
    ("dst_host_srv_serror_rate", Role::Numeric),
    ("dst_host_rerror_rate", Role::Numeric),
    ("dst_host_srv_rerror_rate", Role::Numeric),
    ("label", Role::Label),
    ("difficulty", Role::Ignore),
];

/// The built-in schema of the NSL-KDD files.
pub fn schema() -> CsvSchema {
    let vocab = |name: &str| -> Option<Vec<String>> {
        let values: &[&str] = match name {
            "protocol_type" => &PROTOCOLS,
            "service" => &SERVICES,
            "flag" => &FLAGS,
            _ => return None,
        };
        Some(values.iter().map(|v| v.to_string()).collect())
    };
    CsvSchema {
        header: false,
        delimiter: ",".into(),
        other_columns: OtherColumns::Error,
        benign: vec!["normal".into()],
        columns: COLUMNS
            .iter()
            .map(|(name, role)| SchemaColumn {
                name: name.to_string(),
                role: *role,
                vocabulary: vocab(name),
            })
            .collect(),
        families: FAMILIES
            .iter()
            .map(|(l, f)| (l.to_string(), f.to_string()))
            .collect(),
    }
}

/// The encoder layout of NSL-KDD (statistics unfitted).
pub fn encoder_layout() -> Result<EncoderSpec, DatasetError> {
    schema().encoder_layout(&BTreeMap::new())
}

/// Reads one NSL-KDD file.
pub fn read(path: &Path, options: &ReadOptions) -> Result<Loaded, DatasetError> {
    let loaded = read_csv(path, &schema(), options)?;
    // An unknown attack name would become its own family and silently
    // escape per-family metrics.
    if let Some(row) = (0..loaded.records.len()).find(|&i| {
        let f = loaded.records.family(i);
        f != crate::record::NORMAL && !FAMILY_NAMES.contains(&f)
    }) {
        return Err(DatasetError::Read {
            file: path.display().to_string(),
            line: None,
            reason: format!(
                "label {:?} (record {}) is not a known NSL-KDD attack; is this an NSL-KDD file?",
                loaded.records.label(row),
                row + 1
            ),
        });
    }
    Ok(loaded)
}

/// The path of standard file `name` (e.g. "KDDTest+") in `dir`: the plain
/// file, or the same name with `.gz`.
pub fn find(dir: &Path, name: &str) -> Result<PathBuf, DatasetError> {
    let Some((_, file)) = FILES.iter().find(|(n, _)| *n == name) else {
        return Err(DatasetError::Read {
            file: name.to_string(),
            line: None,
            reason: format!(
                "not an NSL-KDD file name; use one of {}",
                FILES.map(|f| f.0).join(", ")
            ),
        });
    };
    let plain = dir.join(file);
    let gz = dir.join(format!("{file}.gz"));
    [plain.clone(), gz]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| DatasetError::Read {
            file: plain.display().to_string(),
            line: None,
            reason: format!(
                "not found (nor {file}.gz) in {}; point --data at the folder with the NSL-KDD files",
                dir.display()
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_consistent() {
        let s = schema();
        s.validate().unwrap();
        let layout = encoder_layout().unwrap();
        assert_eq!(layout.numeric.len(), 38);
        assert_eq!(layout.dim(), 38 + 4 + 71 + 12);
        assert!(FAMILIES.iter().all(|(_, f)| FAMILY_NAMES.contains(f)));
    }

    #[test]
    fn a_row_reads_with_family_and_bad_rows_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let good = "0,tcp,private,S0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,123,6,1.00,1.00,0.00,0.00,0.05,0.07,0.00,255,26,0.10,0.05,0.00,0.00,1.00,1.00,0.00,0.00,neptune,19";
        let normal = good.replace("neptune", "normal");
        let p = dir.path().join("KDDTest+.txt");
        std::fs::write(&p, format!("{good}\n{normal}\n")).unwrap();
        let loaded = read(&p, &ReadOptions::default()).unwrap();
        assert_eq!(loaded.records.families(), ["DoS", "normal"]);
        assert_eq!(loaded.records.label(0), "neptune");
        assert_eq!(find(dir.path(), "KDDTest+").unwrap(), p);
        assert!(
            find(dir.path(), "KDDTrain+")
                .unwrap_err()
                .to_string()
                .contains("--data")
        );

        let unknown = good.replace("neptune", "zeroday");
        std::fs::write(&p, format!("{unknown}\n")).unwrap();
        let e = read(&p, &ReadOptions::default()).unwrap_err().to_string();
        assert!(e.contains("zeroday"), "{e}");

        let short = good.rsplit_once(',').unwrap().0;
        std::fs::write(&p, format!("{good}\n{short}\n")).unwrap();
        let e = read(&p, &ReadOptions::default()).unwrap_err().to_string();
        assert!(
            e.contains("KDDTest+.txt:2") && e.contains("42 fields, expected 43"),
            "{e}"
        );
    }
}
