//! Configuration files every fedsoc role reads: coordinator, participant,
//! scenarios. One loader, so every one of them reports a bad file the same
//! way: which file, which field, which line, what is wrong.
//!
//! # Layout
//!
//! - this file: [`load`], [`ConfError`], [`invalid`] for checks serde cannot
//!   express, and [`resolve`] for paths relative to the file.
//! - [`metrics`]: the `[metrics]` section the coordinator and the
//!   participant share, and its loopback rule.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub mod metrics;
pub use metrics::MetricsSection;

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: field `{field}`{line}: {problem}")]
    Field {
        path: PathBuf,
        field: String,
        line: LineNote,
        problem: String,
    },
}

/// " (line N)" where the line is known, else nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineNote(pub Option<usize>);

impl std::fmt::Display for LineNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(line) => write!(f, " (line {line})"),
            None => Ok(()),
        }
    }
}

/// Reads and parses a TOML file into `T`. Unknown fields should be refused
/// by `T` (`#[serde(deny_unknown_fields)]`) so typos are caught.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, ConfError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Parses TOML `text` as if read from `path`.
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfError> {
    let field_error = |field: String, err: toml::de::Error| ConfError::Field {
        path: path.to_path_buf(),
        field,
        line: LineNote(err.span().map(|span| line_of(text, span.start))),
        problem: err.message().trim().to_string(),
    };
    let deserializer =
        toml::Deserializer::parse(text).map_err(|e| field_error("(syntax)".into(), e))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = match e.path().to_string() {
            p if p == "." => "(top level)".to_string(),
            p => p,
        };
        field_error(field, e.into_inner())
    })
}

/// An error for a value that parsed but makes no sense, e.g. zero rounds.
pub fn invalid(path: &Path, field: &str, problem: impl Into<String>) -> ConfError {
    ConfError::Field {
        path: path.to_path_buf(),
        field: field.to_string(),
        line: LineNote(None),
        problem: problem.into(),
    }
}

/// A path from a config file, taken relative to the file's own folder.
pub fn resolve(config_path: &Path, value: &Path) -> PathBuf {
    if value.is_absolute() {
        value.to_path_buf()
    } else {
        config_path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(value)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The host of an `https://host:port/…` URL (IPv6 without brackets): the
/// name a TLS client expects on the server's certificate.
pub fn url_host(url: &str) -> String {
    let rest = url.strip_prefix("https://").unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or_default();
    match authority.strip_prefix('[') {
        // [::1]:7443
        Some(v6) => v6.split(']').next().unwrap_or_default().to_string(),
        None => authority.split(':').next().unwrap_or_default().to_string(),
    }
}

/// Checks the `field` holding a coordinator URL: https (every connection
/// is mutual TLS) with a host name, or when `server_name` overrides it.
pub fn check_coordinator_url(
    path: &Path,
    field: &str,
    url: &str,
    server_name: &str,
) -> Result<(), ConfError> {
    if !url.starts_with("https://") {
        return Err(invalid(
            path,
            field,
            format!("{url:?} must be an https:// URL: every connection is mutual TLS"),
        ));
    }
    if server_name.is_empty() {
        return Err(invalid(path, field, "the URL has no host name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Demo {
        name: String,
        rounds: Rounds,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Rounds {
        count: u32,
    }

    #[test]
    fn wrong_type_names_file_field_line_and_problem() {
        let text = "name = \"x\"\n[rounds]\ncount = \"ten\"\n";
        let err = parse::<Demo>(Path::new("c.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("c.toml: field `rounds.count` (line 3): "),
            "{err}"
        );
        assert!(err.contains("invalid type"), "{err}");
    }

    #[test]
    fn unknown_and_missing_fields_are_named() {
        let err = parse::<Demo>(Path::new("c.toml"), "name = \"x\"\n[rounds]\ncont = 3\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rounds") && err.contains("unknown field `cont`"),
            "{err}"
        );
        let err = parse::<Demo>(Path::new("c.toml"), "name = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `rounds`"), "{err}");
    }

    #[test]
    fn syntax_error_and_missing_file() {
        let err = parse::<Demo>(Path::new("c.toml"), "name = \n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("c.toml: field `(syntax)` (line 1)"),
            "{err}"
        );
        let err = load::<Demo>(Path::new("/nonexistent/c.toml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/c.toml"));
    }

    #[test]
    fn relative_paths_follow_the_file() {
        assert_eq!(
            resolve(Path::new("/etc/fedsoc/c.toml"), Path::new("pki/ca.pem")),
            PathBuf::from("/etc/fedsoc/pki/ca.pem")
        );
        assert_eq!(
            resolve(Path::new("c.toml"), Path::new("/abs")),
            PathBuf::from("/abs")
        );
    }
}
