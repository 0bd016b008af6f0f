//! fedsoc-watch: the federation's model on live traffic. `fedsoc watch`
//! follows a Zeek `conn.log` or a Suricata `eve.json` as the sensor writes
//! it, scores every flow with the model of a verified bundle, and writes
//! alerts as NDJSON in the Elastic Common Schema convention, for any SIEM
//! shipper (Filebeat, Vector) to pick up.
//!
//! # Layout
//!
//! - [`community_id`]: Community ID v1 flow hashes, the key SIEMs join
//!   alerts from different sensors on.
//! - [`alert`]: one ECS alert (or scored flow) as one NDJSON line, and the
//!   risk score.
//! - [`metrics`]: the Prometheus counters and gauges of a running watch,
//!   and the loopback endpoint that serves them.
//! - [`synth`]: sensor log lines (Zeek TSV, Zeek JSON, EVE) written from
//!   flows, for tests and the benchmark.
#![forbid(unsafe_code)]

pub mod alert;
pub mod community_id;
pub mod metrics;
pub mod synth;
