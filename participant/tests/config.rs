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
