//! Helpers shared by the process-level tests.
pub mod bundles;
pub mod cluster;
