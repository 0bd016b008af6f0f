//! The shipped participant example loads as written.

use std::path::Path;

use fedsoc_participant::{DataSource, ParticipantConfig};

#[test]
fn shipped_example_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/participant.toml");
    let config = ParticipantConfig::load(&path).unwrap();
    assert_eq!(config.id, "soc-de");
    assert_eq!(config.server_name(), "coordinator.example.eu");
    assert!(matches!(config.data, DataSource::Synthetic { site: 0, .. }));
}

#[test]
fn a_secure_floor_below_three_members_is_refused_by_name() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/participant.toml");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("participant.toml");
    let mut text = std::fs::read_to_string(&example).unwrap();
    text = text.replace(
        "[tls]",
        "[secure_aggregation]\nmin_members = 2\ncolluders = 1\n\n[tls]",
    );
    std::fs::write(&path, &text).unwrap();
    let err = ParticipantConfig::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("secure_aggregation.min_members") && err.contains("3 or more"),
        "{err}"
    );
    std::fs::write(&path, text.replace("min_members = 2", "min_members = 4")).unwrap();
    let config = ParticipantConfig::load(&path).unwrap();
    assert_eq!(
        (
            config.secure_aggregation.min_members,
            config.secure_aggregation.colluders
        ),
        (4, 1)
    );
}
