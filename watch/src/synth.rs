//! Sensor log lines written from flows.
