//! fedsoc-watch: the federation's model on live traffic. `fedsoc watch`
//! follows a Zeek `conn.log` or a Suricata `eve.json` as the sensor writes
//! it, scores every flow with the model of a verified bundle, and writes
//! alerts as NDJSON in the Elastic Common Schema convention, for any SIEM
//! shipper (Filebeat, Vector) to pick up.
//!
//! # Layout
//!
//! - [`run`]: [`run::run`], one watch from its [`WatchConfig`] to its end:
//!   the loop that reads, scores, writes, saves and swaps models.
//! - [`pipeline`]: lines in, alert lines out: parsing, batching, scoring,
//!   the restart de-duplication, and saving the state (no file reading).
//! - [`follow`]: following a log file as it grows, across rotation (rename
//!   and new file, copy-truncate) and through rotated gzip files when
//!   catching up; [`Position`](follow::Position).
//! - [`files`]: recognising a log file after a rename, copy or compression
//!   ([`FileId`](files::FileId)), and where rotated files are.
//! - [`lines`]: bytes to lines, holding a partial last line.
//! - [`stdin`]: lines from a pipe (`--stdin`).
//! - [`state`]: the position saved in `--state`, atomically, with the
//!   alert file's length, and the lock that keeps a second watch off it.
//! - [`output`]: the alert file (line-atomic writes, rotation by size, the
//!   torn line and unsaved tail found on restart) or standard output.
//! - [`bundles`]: the bundle in force and the drop folder a participant
//!   writes new verified bundles to.
//! - [`detector`]: a bundle's model, encoder and threshold, loaded once,
//!   scoring batches; the flag rule.
//! - [`alert`]: one ECS alert (or scored flow) as one NDJSON line, and the
//!   risk score.
//! - [`community_id`]: Community ID v1 flow hashes, the key SIEMs join
//!   alerts from different sensors on.
//! - [`metrics`]: the Prometheus counters and gauges of a running watch,
//!   and the loopback endpoint that serves them.
//! - [`synth`]: sensor log lines (Zeek TSV, Zeek JSON, EVE) written from
//!   flows, for tests and the benchmark.
//! - [`error`]: [`WatchError`], what stops a watch.
#![forbid(unsafe_code)]

pub mod alert;
pub mod bundles;
pub mod community_id;
pub mod detector;
pub mod error;
pub mod files;
pub mod follow;
pub mod lines;
pub mod metrics;
pub mod output;
pub mod pipeline;
pub mod run;
pub mod state;
pub mod stdin;
pub mod synth;

pub use error::WatchError;
pub use run::{InputSpec, Summary, WatchConfig, run};
