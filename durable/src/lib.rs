//! The one storage layer every durable write of fedsoc goes through: the
//! coordinator's audit entries, checkpoints, blobs, models, history and
//! queue, the participant's checkpoints and contributions, the PKI's CRL
//! and issuance index.
//!
//! Routing every write through [`Disk`] names the *persistence points*: each
//! write, fsync, rename, truncation and directory sync is one point, in the
//! order the program makes them. A [`Faults`] plan makes a [`Disk`] crash at
//! the i-th point (optionally tearing that write at a chosen byte) and then
//! refuse every later operation, as a process killed there would. Crash
//! tests walk every point of a round this way, then reopen the state with a
//! real disk and check what survived (in the style of ALICE and of
//! deterministic simulation testing).
//!
//! The model is a process crash (`kill -9`) with a torn last write: data a
//! write handed to the kernel survives; the write being made when the
//! crash hit may be cut at any byte. Power loss that reorders writes not
//! yet fsynced is not modelled: every protocol step fsyncs before it
//! acknowledges anything.
//!
//! # Layout
//!
//! - [`disk`]: [`Disk`], the primitives (atomic replace, synced append,
//!   synced truncation, directory sync) and where each point is counted.
//! - [`fault`]: [`Faults`], the crash plan, and [`Point`], the trace of the
//!   points a run made.
#![forbid(unsafe_code)]

pub mod disk;
pub mod fault;

pub use disk::Disk;
pub use fault::{Faults, Op, Point};
