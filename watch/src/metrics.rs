//! Prometheus metrics of a running watch.
