//! coordinator.toml: the shipped example loads; malformed files are
//! reported by file, field and problem.

use std::path::{Path, PathBuf};

use fedsoc_coordinator::CoordinatorConfig;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/coordinator.toml")
}

#[test]
fn shipped_example_loads_with_paths_beside_it() {
    let config = CoordinatorConfig::load(&example()).unwrap();
    assert_eq!(config.roster.participants, ["soc-de", "soc-fr"]);
    assert!(
        config.tls.ca.ends_with("examples/pki/ca.pem"),
        "{:?}",
        config.tls.ca
    );
    assert_eq!(config.rounds.min_participants, 2);
}

fn load_edited(from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(example()).unwrap();
    assert!(text.contains(from), "example no longer contains {from:?}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coordinator.toml");
    std::fs::write(&path, text.replace(from, to)).unwrap();
    CoordinatorConfig::load(&path).unwrap_err().to_string()
}

#[test]
fn wrong_type_is_named_with_file_field_and_problem() {
    let err = load_edited("count = 10", "count = \"ten\"");
    assert!(err.contains("coordinator.toml"), "{err}");
    assert!(err.contains("field `rounds.count`"), "{err}");
    assert!(err.contains("invalid type"), "{err}");
}

#[test]
fn typo_in_a_field_name_is_refused() {
    let err = load_edited("batch_size = 64", "batchsize = 64");
    assert!(err.contains("unknown field `batchsize`"), "{err}");
}

#[test]
fn bad_values_are_refused_with_the_reason() {
    let err = load_edited("min_participants = 2", "min_participants = 5");
    assert!(err.contains("field `rounds.min_participants`"), "{err}");
    assert!(err.contains("exceeds the 2 participants"), "{err}");
    let err = load_edited("listen = \"0.0.0.0:7443\"", "listen = \"somewhere\"");
    assert!(err.contains("field `listen`"), "{err}");
    let err = load_edited(
        "participants = [\"soc-de\", \"soc-fr\"]",
        "participants = [\"soc-de\", \"soc-de\"]",
    );
    assert!(err.contains("listed twice"), "{err}");
    let err = load_edited("batch_size = 64", "batch_size = 64\nclass_weight = -2.0");
    assert!(err.contains("field `training.class_weight`"), "{err}");
    assert!(err.contains("benign rows per attack row"), "{err}");
}

#[test]
fn round_policy_and_limits_are_checked() {
    let config = CoordinatorConfig::load(&example()).unwrap();
    assert_eq!(config.rounds.max_retries, 5);
    assert_eq!(config.limits.message_burst, 2048);
    let err = load_edited("max_retries = 5", "max_retries = 5000");
    assert!(err.contains("field `rounds.max_retries`"), "{err}");
    let err = load_edited("messages_per_s = 512", "messages_per_s = 0");
    assert!(err.contains("field `limits.messages_per_s`"), "{err}");
    let err = load_edited("message_burst = 2048", "message_burst = 2");
    assert!(err.contains("field `limits.message_burst`"), "{err}");
}

#[test]
fn shipped_control_example_loads_and_needs_https() {
    use fedsoc_coordinator::control::ControlConfig;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/control.toml");
    let config = ControlConfig::load(&path).unwrap();
    assert_eq!(config.server_name(), "coordinator.example.eu");
    assert!(config.tls.cert.ends_with("examples/pki/analyst.pem"));
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("https://coordinator", "http://coordinator");
    let dir = tempfile::tempdir().unwrap();
    let edited = dir.path().join("control.toml");
    std::fs::write(&edited, text).unwrap();
    let err = ControlConfig::load(&edited).unwrap_err().to_string();
    assert!(
        err.contains("field `coordinator`") && err.contains("https://"),
        "{err}"
    );
}

/// The example with `extra` appended (a `[strategy]` section).
fn load_with(extra: &str) -> Result<CoordinatorConfig, String> {
    let text = std::fs::read_to_string(example()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coordinator.toml");
    std::fs::write(&path, format!("{text}\n{extra}\n")).unwrap();
    CoordinatorConfig::load(&path).map_err(|e| e.to_string())
}

#[test]
fn strategy_defaults_to_fedavg_and_fills_each_optimisers_defaults() {
    use fedsoc_coordinator::optimizer::ServerOptimizer;
    let config = CoordinatorConfig::load(&example()).unwrap();
    assert_eq!(config.strategy.optimizer(), ServerOptimizer::FedAvg);
    // Written back without the section: a FedAvg federation's
    // configuration hash is what it was before server optimisers.
    let text = toml::to_string(&config).unwrap();
    assert!(!text.contains("strategy"), "{text}");

    let adam = load_with("[strategy]\nname = \"fedadam\"").unwrap();
    assert_eq!(
        adam.strategy.optimizer(),
        ServerOptimizer::FedAdam {
            server_learning_rate: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-3
        }
    );
    let momentum = load_with("[strategy]\nname = \"fedavgm\"\nserver_learning_rate = 0.5").unwrap();
    assert_eq!(
        momentum.strategy.optimizer(),
        ServerOptimizer::FedAvgM {
            server_learning_rate: 0.5,
            momentum: 0.9
        }
    );
    let text = toml::to_string(&momentum).unwrap();
    assert!(
        text.contains("[strategy]") && text.contains("name = \"fedavgm\""),
        "{text}"
    );
}

#[test]
fn strategy_values_out_of_range_or_for_another_optimiser_are_refused_naming_the_field() {
    let cases: [(&str, &str, &str); 9] = [
        (
            "name = \"fedyogi\"",
            "field `strategy.name`",
            "unknown variant",
        ),
        (
            "name = \"fedadam\"\nbetta1 = 0.9",
            "unknown field `betta1`",
            "beta1",
        ),
        (
            "name = \"fedadam\"\nmomentum = 0.9",
            "field `strategy.momentum`",
            "FedAdam's momentum is beta1",
        ),
        (
            "beta1 = 0.9",
            "field `strategy.beta1`",
            "fedavg moves the model by the mean delta",
        ),
        (
            "name = \"fedavgm\"\ntau = 0.001",
            "field `strategy.tau`",
            "applies to fedadam only",
        ),
        (
            "name = \"fedadam\"\nbeta2 = 1.0",
            "field `strategy.beta2`",
            "not in [0, 1)",
        ),
        (
            "name = \"fedadam\"\ntau = 0.0",
            "field `strategy.tau`",
            "keeps m / (sqrt(v) + tau) finite",
        ),
        (
            "name = \"fedadam\"\nserver_learning_rate = nan",
            "field `strategy.server_learning_rate`",
            "(0, 10]",
        ),
        (
            "name = \"fedavgm\"\nmomentum = -0.5",
            "field `strategy.momentum`",
            "e.g. 0.9",
        ),
    ];
    for (section, field, words) in cases {
        let err = load_with(&format!("[strategy]\n{section}")).unwrap_err();
        assert!(
            err.contains("coordinator.toml") && err.contains(field) && err.contains(words),
            "{section:?}: {err}"
        );
    }
}

/// The example with its `[metrics]` block uncommented and `listen` set.
fn with_metrics(listen: &str, public: bool) -> Result<CoordinatorConfig, String> {
    let text = std::fs::read_to_string(example()).unwrap();
    let commented = "# [metrics]\n# listen = \"127.0.0.1:9464\"\n# public = false\n";
    assert!(
        text.contains(commented),
        "the example's [metrics] block moved"
    );
    let block = format!("[metrics]\nlisten = \"{listen}\"\npublic = {public}\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coordinator.toml");
    std::fs::write(&path, text.replace(commented, &block)).unwrap();
    CoordinatorConfig::load(&path).map_err(|e| e.to_string())
}

#[test]
fn metrics_are_off_by_default_and_stay_on_loopback_unless_public() {
    assert!(
        CoordinatorConfig::load(&example())
            .unwrap()
            .metrics
            .is_none()
    );
    let config = with_metrics("127.0.0.1:9464", false).unwrap();
    assert_eq!(config.metrics.unwrap().listen.port(), 9464);
    let err = with_metrics("0.0.0.0:9464", false).unwrap_err();
    assert!(err.contains("coordinator.toml"), "{err}");
    assert!(err.contains("field `metrics.listen`"), "{err}");
    assert!(err.contains("reveal federation activity"), "{err}");
    assert!(err.contains("public = true"), "{err}");
    assert!(
        with_metrics("0.0.0.0:9464", true)
            .unwrap()
            .metrics
            .unwrap()
            .public
    );
}

#[test]
fn a_coordinator_without_metrics_writes_its_configuration_as_before() {
    // The configuration hash in the audit log covers the TOML written
    // back: an absent [metrics] must leave no trace in it.
    let config = CoordinatorConfig::load(&example()).unwrap();
    let text = toml::to_string(&config).unwrap();
    let table: toml::Table = text.parse().unwrap();
    assert!(!table.contains_key("metrics"), "{text}");
}
