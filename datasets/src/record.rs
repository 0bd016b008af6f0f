//! [`FlowRecord`]: the one record type every reader produces.
//!
//! It is deliberately close to a Zeek `conn.log` line (the lowest common
//! denominator of NSL-KDD, Zeek, Suricata and NetFlow exports), so readers
//! only map fields and never invent information.

use crate::error::DatasetError;

/// The label of benign traffic. `None` means the same thing.
pub const NORMAL: &str = "normal";

/// One network flow (connection) as seen by a SOC sensor.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FlowRecord {
    /// Seconds from first to last packet; 0 for single-packet flows.
    pub duration_s: f64,
    /// Payload bytes sent by the originator.
    pub bytes_out: f64,
    /// Payload bytes sent by the responder.
    pub bytes_in: f64,
    /// Packets sent by the originator.
    pub packets_out: f64,
    /// Packets sent by the responder.
    pub packets_in: f64,
    /// Transport protocol, lower case: "tcp", "udp" or "icmp".
    pub protocol: String,
    /// Application protocol, lower case: "http", "https", "dns", "ssh",
    /// "smtp", "rdp", "smb", "ntp", "ldap" or "other" (unknown / none).
    pub service: String,
    /// Zeek connection state: "SF", "S0", "S1", "S2", "S3", "REJ", "RSTO",
    /// "RSTR", "RSTOS0", "RSTRH", "SH", "SHR" or "OTH".
    pub conn_state: String,
    /// Responder port (ICMP: the message code, as Zeek does).
    pub dst_port: u16,
    /// `None` or `Some("normal")` for benign traffic, otherwise the attack
    /// family, e.g. "scan", "flood", "bruteforce", "exfiltration", "c2".
    pub label: Option<String>,
}

impl FlowRecord {
    /// Whether the record is labelled as an attack (unlabelled = benign).
    pub fn is_attack(&self) -> bool {
        self.family() != NORMAL
    }

    /// The attack family, or "normal" for benign and unlabelled records.
    pub fn family(&self) -> &str {
        self.label.as_deref().unwrap_or(NORMAL)
    }

    /// The raw numeric fields by name, in declaration order.
    pub fn numeric_fields(&self) -> [(&'static str, f64); 5] {
        [
            ("duration_s", self.duration_s),
            ("bytes_out", self.bytes_out),
            ("bytes_in", self.bytes_in),
            ("packets_out", self.packets_out),
            ("packets_in", self.packets_in),
        ]
    }

    /// Checks that every raw numeric field is finite and non-negative;
    /// `row` only labels the error.
    pub fn check_numeric(&self, row: usize) -> Result<(), DatasetError> {
        for (column, value) in self.numeric_fields() {
            if !value.is_finite() {
                return Err(DatasetError::NonFinite {
                    row,
                    column: column.to_string(),
                    value,
                });
            }
            if value < 0.0 {
                return Err(DatasetError::Negative {
                    row,
                    column: column.to_string(),
                    value,
                });
            }
        }
        Ok(())
    }
}
