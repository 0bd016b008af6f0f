//! `fedsoc console`: a read-only web view of a federation for its data
//! scientists and auditors, served from their own machine. It reads the
//! coordinator's `Admin` status with the user's own certificate (through
//! the same client as `fedsoc round status`) and an exported audit log
//! (the same input as `fedsoc audit verify`); it changes nothing.
//!
//! # Layout
//!
//! - [`options`]: what the command takes, and the loopback/TLS rule.
//! - [`source`]: where the pages' facts come from: the live `Admin`
//!   status and the audit log, turned into views that carry no update,
//!   share, key or per-participant sample count.
//! - [`frames`]: a lenient reading of `entries.log`, so that a damaged log
//!   can still be listed entry by entry on the verification page.
//! - [`pages`]: the server-rendered HTML (maud) and the inline SVG plots.
//! - [`assets`]: the stylesheet and the live-refresh script, served from
//!   the binary (nothing is fetched from elsewhere).
//! - [`server`]: the routes (GET only), the security headers, and plain
//!   HTTP on loopback or HTTPS (rustls) elsewhere.
//! - [`error`](mod@error): [`ConsoleError`].
#![forbid(unsafe_code)]

pub mod assets;
pub mod error;
pub mod frames;
pub mod options;
pub mod pages;
pub mod server;
pub mod source;

pub use error::ConsoleError;
pub use options::{ConsoleOptions, TlsPaths};
pub use server::Console;
