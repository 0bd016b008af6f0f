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

#[test]
fn metrics_are_off_by_default_and_stay_on_loopback_unless_public() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/participant.toml");
    assert!(ParticipantConfig::load(&example).unwrap().metrics.is_none());
    let text = std::fs::read_to_string(&example).unwrap();
    let commented = "# [metrics]\n# listen = \"127.0.0.1:9465\"\n# public = false\n";
    assert!(
        text.contains(commented),
        "the example's [metrics] block moved"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("participant.toml");
    let load = |listen: &str, public: bool| {
        let block = format!("[metrics]\nlisten = \"{listen}\"\npublic = {public}\n");
        std::fs::write(&path, text.replace(commented, &block)).unwrap();
        ParticipantConfig::load(&path).map_err(|e| e.to_string())
    };
    assert_eq!(
        load("127.0.0.1:0", false)
            .unwrap()
            .metrics
            .unwrap()
            .listen
            .port(),
        0
    );
    let err = load("192.0.2.7:9465", false).unwrap_err();
    assert!(err.contains("field `metrics.listen`"), "{err}");
    assert!(err.contains("reveal federation activity"), "{err}");
    assert!(
        load("192.0.2.7:9465", true)
            .unwrap()
            .metrics
            .unwrap()
            .public
    );
}
