//! Checks of the shipping artifacts that can be made without Helm or a container engine:
//! every YAML and JSON file parses; the chart's values validate against its schema; every
//! metric the dashboard and alerts use is exported by a running finhook; the configurations
//! the chart and compose hand to finhook pass `check-config`; the Dockerfile's and compose
//! file's references match the repository and the daemon's defaults.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use common::finhook;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative))
        .unwrap_or_else(|error| panic!("{relative}: {error}"))
}

fn yaml(relative: &str) -> Value {
    serde_yaml_ng::from_str(&read(relative)).unwrap_or_else(|error| panic!("{relative}: {error}"))
}

fn files_under(relative: &str, extensions: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root().join(relative)];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .and_then(|ext| ext.to_str())
                .is_some_and(|ext| extensions.contains(&ext))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_yaml_and_json_file_parses() {
    let mut checked = 0;
    for path in files_under("deploy", &["yaml", "yml", "json"])
        .into_iter()
        .chain([
            root().join("docker-compose.yml"),
            root().join("schemas/envelope.schema.json"),
        ])
    {
        // Helm templates are Go templates, not YAML, until rendered.
        if path
            .components()
            .any(|part| part.as_os_str() == "templates")
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed: Result<Value, String> = if path.extension().is_some_and(|ext| ext == "json") {
            serde_json::from_str(&text).map_err(|error| error.to_string())
        } else {
            serde_yaml_ng::from_str(&text).map_err(|error| error.to_string())
        };
        if let Err(error) = parsed {
            panic!("{} does not parse: {error}", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} files found");
}

#[test]
fn helm_values_validate_against_the_values_schema() {
    let schema: Value =
        serde_json::from_str(&read("deploy/helm/finhook/values.schema.json")).unwrap();
    let values = yaml("deploy/helm/finhook/values.yaml");
    let validator = jsonschema::validator_for(&schema).expect("the values schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&values)
        .map(|error| format!("{error} at {}", error.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "values.yaml violates values.schema.json: {errors:#?}"
    );
    // The schema is not a rubber stamp: a wrong type is refused.
    let mut broken = values.clone();
    broken["replicaCount"] = Value::String("three".to_owned());
    assert!(
        !validator.is_valid(&broken),
        "the schema accepts replicaCount = \"three\""
    );
}

#[test]
fn chart_prometheus_rules_are_the_shipped_alerts() {
    assert_eq!(
        read("deploy/helm/finhook/files/alerts.yml"),
        read("deploy/prometheus/alerts.yml"),
        "copy deploy/prometheus/alerts.yml to deploy/helm/finhook/files/alerts.yml"
    );
}

/// Writes `toml` to a file and runs `finhook check-config --skip-files` on it.
fn check_config(toml: &str, what: &str) {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("finhook.toml");
    std::fs::write(&path, toml).unwrap();
    let output = finhook()
        .args(["check-config", "--skip-files", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{what} is refused by check-config: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_charts_configmap_config_passes_check_config() {
    let values = yaml("deploy/helm/finhook/values.yaml");
    let config = values["config"]
        .as_str()
        .expect("values.config is the finhook.toml text");
    check_config(config, "the chart's values.config");
    let template = read("deploy/helm/finhook/templates/configmap.yaml");
    assert!(
        template.contains(".Values.config"),
        "the ConfigMap renders values.config"
    );
}

#[test]
fn the_compose_config_passes_check_config_with_its_users_file() {
    check_config(
        &read("deploy/compose/finhook.toml"),
        "deploy/compose/finhook.toml",
    );
    // With files: the users file it mounts is readable and valid.
    let output = finhook()
        .args(["check-config", "--config", "deploy/compose/finhook.toml"])
        .env(
            "FINHOOK_POLLERS__OXLIN__USERS_FILE",
            "deploy/compose/users.toml",
        )
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn metric_names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut index = 0;
    while let Some(offset) = text[index..].find("finhook_") {
        let start = index + offset;
        let end = bytes[start..]
            .iter()
            .position(|byte| !(byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'_'))
            .map_or(bytes.len(), |length| start + length);
        names.insert(text[start..end].to_owned());
        index = end;
    }
    names
}

/// PromQL expressions of the dashboard's panels and the alert rules.
fn expressions() -> Vec<(String, String)> {
    let mut found = Vec::new();
    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/finhook-dashboard.json")).unwrap();
    fn collect(value: &Value, found: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(expr)) = map.get("expr") {
                    found.push(("dashboard".to_owned(), expr.clone()));
                }
                map.values().for_each(|inner| collect(inner, found));
            }
            Value::Array(items) => items.iter().for_each(|inner| collect(inner, found)),
            _ => {}
        }
    }
    collect(&dashboard, &mut found);
    let alerts = yaml("deploy/prometheus/alerts.yml");
    for group in alerts["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"]
                .as_str()
                .unwrap_or("recording rule")
                .to_owned();
            found.push((name, rule["expr"].as_str().unwrap().to_owned()));
        }
    }
    found
}

#[tokio::test]
async fn every_metric_of_the_dashboard_and_alerts_is_exported_by_a_running_finhook() {
    use figment::providers::{Format, Toml};
    use finhook::app::App;

    let toml = r#"
        [server]
        listen = "127.0.0.1:0"
        [metrics]
        listen = "127.0.0.1:0"
        [kafka]
        embedded = true
        health_interval = "100ms"
        [sources.bridge]
        kind = "bridge"
        secret = "s"
        [pollers.oxlin]
        kind = "oxlin"
        environment = "custom"
        api_url = "http://127.0.0.1:1/v2.1"
        token_url = "http://127.0.0.1:1/token"
        client_id = "finhook-sim"
        client_secret = "sim-secret"
    "#;
    let figment = figment::Figment::from(Toml::string(finhook::config::DEFAULT_TOML))
        .merge(Toml::string(toml));
    let config = finhook::config::Config::from_figment(figment).unwrap();
    let app = App::build(&config).unwrap();
    let webhooks = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let operations = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let webhook_url = format!("http://{}/webhooks/bridge", webhooks.local_addr().unwrap());
    let metrics_url = format!("http://{}/metrics", operations.local_addr().unwrap());
    tokio::spawn(app.serve(webhooks, operations, std::future::pending()));
    let client = reqwest::Client::new();
    // A refused and a published webhook fill the series that only exist once used.
    let body = br#"{"type":"TEST_EVENT","timestamp":1611681789,"content":{"item_id":1}}"#;
    let signature = finhook::providers::bridge::sign(&finhook::secret::Secret::new("s"), body);
    let refused = client.post(&webhook_url).body("{}").send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let mut published = false;
    for _ in 0..100 {
        let response = client
            .post(&webhook_url)
            .header("BridgeApi-Signature", &signature)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            published = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(published, "the embedded Kafka never took the event");
    let exposition = client
        .get(&metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exported: BTreeSet<String> = exposition
        .lines()
        .filter(|line| line.starts_with("finhook_"))
        .map(|line| line.split(['{', ' ']).next().unwrap().to_owned())
        .collect();

    let mut used = 0;
    for (place, expr) in expressions() {
        for name in metric_names_in(&expr) {
            assert!(
                exported.contains(&name),
                "{place} uses {name}, which finhook does not export (exported: {exported:#?})"
            );
            used += 1;
        }
    }
    assert!(used >= 15, "only {used} metric references found");
}

#[test]
fn dockerfile_references_exist_and_match_the_defaults() {
    let dockerfile = read("Dockerfile");
    for line in dockerfile
        .lines()
        .filter(|line| line.starts_with("COPY ") && !line.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for source in &parts[1..parts.len() - 1] {
            assert!(
                root().join(source).exists(),
                "Dockerfile copies {source}, which does not exist"
            );
        }
    }
    // What the release build compiles in (`include_str!`, `include_bytes!` outside the test
    // modules) must be in the image's build context too: an uncopied folder builds here and
    // fails only in `docker build`.
    let copied: Vec<&str> = dockerfile
        .lines()
        .filter(|line| line.starts_with("COPY ") && !line.contains("--from"))
        .flat_map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            parts[1..parts.len() - 1].to_vec()
        })
        .collect();
    let build = dockerfile
        .lines()
        .find(|line| line.contains("cargo build"))
        .expect("the Dockerfile builds finhook");
    let built_bins: Vec<&str> = build
        .split(" --bin ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert!(
        built_bins.contains(&"finhook") && !build.contains("--bins"),
        "the image builds the binaries it ships, by name: {build}"
    );
    let in_the_image = |file: &Path| {
        let Ok(under_bin) = file.strip_prefix(root().join("src/bin")) else {
            return true;
        };
        let bin = under_bin.components().next().unwrap().as_os_str();
        let bin = Path::new(bin).file_stem().unwrap().to_str().unwrap();
        built_bins.contains(&bin)
    };
    for file in files_under("src", &["rs"])
        .into_iter()
        .filter(|file| in_the_image(file))
    {
        let whole = std::fs::read_to_string(&file).unwrap();
        let text = whole.split("#[cfg(test)]").next().unwrap();
        let includes = ["include_str!(\"", "include_bytes!(\""]
            .into_iter()
            .flat_map(|opening| text.split(opening).skip(1));
        for included in includes.filter_map(|rest| rest.split('"').next()) {
            let resolved = file.parent().unwrap().join(included);
            let resolved = resolved
                .canonicalize()
                .unwrap_or_else(|error| panic!("{} includes {included}: {error}", file.display()));
            let relative = resolved
                .strip_prefix(root().canonicalize().unwrap())
                .unwrap();
            let top = relative.components().next().unwrap().as_os_str();
            assert!(
                copied
                    .iter()
                    .any(|source| Path::new(source.trim_end_matches('/')) == top),
                "{} compiles in {}, but the Dockerfile does not copy {}",
                file.display(),
                relative.display(),
                top.to_string_lossy()
            );
        }
    }
    let config = finhook::config::Config::from_figment(figment::Figment::from(
        <figment::providers::Toml as figment::providers::Format>::string(
            finhook::config::DEFAULT_TOML,
        ),
    ))
    .unwrap();
    let exposed: BTreeSet<u16> = dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("EXPOSE "))
        .flat_map(|ports| ports.split_whitespace().map(|port| port.parse().unwrap()))
        .collect();
    let defaults = BTreeSet::from([config.server.listen.port(), config.metrics.listen.port()]);
    assert_eq!(exposed, defaults, "EXPOSE matches the default listeners");
    assert!(dockerfile.contains(&format!(
        "http://127.0.0.1:{}/healthz",
        config.metrics.listen.port()
    )));
    assert!(dockerfile.contains("USER 65532"), "runs as non-root");
    // The health check's command exists.
    let probe = finhook().args(["probe", "--help"]).output().unwrap();
    assert!(probe.status.success());
    assert!(
        dockerfile.contains("target/release/finhook-sim"),
        "the image carries the simulator"
    );
}

#[test]
fn compose_references_match_the_repository_and_the_config() {
    let compose = yaml("docker-compose.yml");
    let services = compose["services"].as_object().unwrap();
    for (name, service) in services {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let host = volume.as_str().unwrap().split(':').next().unwrap();
            assert!(
                root().join(host).exists(),
                "{name} mounts {host}, which does not exist"
            );
        }
    }
    let finhook_service = &services["finhook"];
    let command: Vec<&str> = finhook_service["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(command, ["serve", "--config", "/etc/finhook/finhook.toml"]);
    let mounted: Vec<&str> = finhook_service["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(mounted
        .iter()
        .any(|volume| volume.ends_with(":/etc/finhook/finhook.toml:ro")));

    let config: toml::Value = toml::from_str(&read("deploy/compose/finhook.toml")).unwrap();
    let users_file = config["pollers"]["oxlin"]["users_file"].as_str().unwrap();
    assert!(
        mounted
            .iter()
            .any(|volume| volume.contains(&format!(":{users_file}:"))),
        "the users file is mounted"
    );
    let ports: Vec<&str> = finhook_service["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let listen_port = |key: &str| {
        config[key]["listen"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .to_owned()
    };
    for port in [listen_port("server"), listen_port("metrics")] {
        assert!(
            ports
                .iter()
                .any(|mapping| mapping.ends_with(&format!(":{port}"))),
            "port {port} published"
        );
    }

    // The simulators talk to what finhook is configured with, and their commands parse.
    let webhooks: Vec<String> = services["simulator-webhooks"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let argument =
        |flag: &str| webhooks[webhooks.iter().position(|arg| arg == flag).unwrap() + 1].clone();
    assert_eq!(
        argument("--bridge-secret"),
        config["sources"]["bridge"]["secret"].as_str().unwrap()
    );
    let linxo = &config["sources"]["linxo"];
    assert_eq!(
        argument("--linxo-basic"),
        format!(
            "{}:{}",
            linxo["username"].as_str().unwrap(),
            linxo["secret"].as_str().unwrap()
        )
    );
    assert_eq!(
        argument("--target"),
        format!("http://finhook:{}", listen_port("server"))
    );
    let oxlin: Vec<String> = services["simulator-oxlin"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let oxlin_port = oxlin[oxlin.iter().position(|arg| arg == "--listen").unwrap() + 1]
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let api_url = config["pollers"]["oxlin"]["api_url"].as_str().unwrap();
    assert!(
        api_url.starts_with(&format!("http://simulator-oxlin:{oxlin_port}/")),
        "{api_url}"
    );
    for arguments in [&webhooks, &oxlin] {
        let status = common::finhook_sim()
            .args(arguments.iter())
            .arg("--help")
            .output()
            .unwrap()
            .status;
        assert!(status.success(), "finhook-sim refuses {arguments:?}");
    }

    // Prometheus scrapes finhook's operations port; Grafana gets the dashboard.
    let prometheus = yaml("deploy/prometheus/prometheus.yml");
    let target = prometheus["scrape_configs"][0]["static_configs"][0]["targets"][0]
        .as_str()
        .unwrap();
    assert_eq!(target, format!("finhook:{}", listen_port("metrics")));
    // Topics finhook writes exist in the compose Kafka (auto-creation is off there).
    let topics = services["kafka-topics"]["command"][0].as_str().unwrap();
    for topic in [
        config["kafka"]["topics"]["default"].as_str().unwrap(),
        config["kafka"]["topics"]["dead_letter"].as_str().unwrap(),
        config["kafka"]["routes"][0]["topic"].as_str().unwrap(),
    ] {
        assert!(topics.contains(topic), "topic {topic} is not created");
    }
    // The dead-letter topic (raw input, personal data in clear) gets a retention of its own.
    let dead_letter = config["kafka"]["topics"]["dead_letter"].as_str().unwrap();
    let creation = topics
        .lines()
        .find(|line| line.contains(&format!("--topic {dead_letter} ")))
        .expect("the dead-letter topic is created on a line of its own");
    assert!(creation.contains("--config retention.ms="), "{creation}");
}

/// Every entry of `directory` (files and folders, names only).
fn entries(directory: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join(directory))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_readme_layout_names_every_source_module_and_test_tier() {
    let readme = read("README.md");
    let layout_start = readme.find("## Layout").expect("a Layout section");
    let layout = &readme[layout_start..];
    for directory in ["src", "tests"] {
        for name in entries(directory) {
            let shown = if name.ends_with(".rs") {
                name.clone()
            } else {
                format!("{name}/")
            };
            assert!(
                layout.contains(&shown),
                "README's layout misses {directory}/{shown}"
            );
        }
    }
    for name in entries("schemas").into_iter().chain(entries("docs")) {
        assert!(layout.contains(&name), "README's layout misses {name}");
    }
}

#[test]
fn the_library_doc_lists_every_module() {
    let lib = read("src/lib.rs");
    let layout: String = lib
        .lines()
        .filter(|line| line.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    for line in lib.lines() {
        if let Some(module) = line
            .strip_prefix("pub mod ")
            .and_then(|rest| rest.strip_suffix(';'))
        {
            assert!(
                layout.contains(&format!("[`{module}`]")),
                "src/lib.rs's layout misses {module}"
            );
        }
    }
}

#[test]
fn the_runbooks_name_every_webhook_outcome_and_publish_failure() {
    let operations = read("docs/operations.md");
    let readme = read("README.md");
    for outcome in finhook::metrics::WebhookOutcome::ALL {
        let name = format!("`{}`", outcome.as_str());
        assert!(
            operations.contains(&name),
            "docs/operations.md misses {name}"
        );
        assert!(readme.contains(&name), "README misses {name}");
    }
    for reason in finhook::metrics::PUBLISH_FAILURE_REASONS {
        let name = format!("`{reason}`");
        assert!(
            operations.contains(&name),
            "docs/operations.md misses {name}"
        );
    }
}

#[test]
fn the_example_configurations_keep_one_connection_on_one_topic() {
    // docs/envelope.md promises per-connection order; routing by type prefix would split a
    // connection's events over topics. Examples route by provider only.
    for file in [
        "config/production.example.toml",
        "deploy/compose/finhook.toml",
        "config/dev.toml",
    ] {
        let config: toml::Value = toml::from_str(&read(file)).unwrap();
        let routes = config
            .get("kafka")
            .and_then(|kafka| kafka.get("routes"))
            .and_then(|routes| routes.as_array())
            .cloned()
            .unwrap_or_default();
        for route in routes {
            assert!(
                route.get("type_prefix").is_none(),
                "{file} routes by event family: {route}"
            );
        }
    }
}

#[test]
fn the_documented_shutdown_grace_is_the_configured_one() {
    use figment::providers::Format;
    let config = finhook::config::Config::from_figment(figment::Figment::from(
        figment::providers::Toml::string(finhook::config::DEFAULT_TOML),
    ))
    .unwrap();
    let grace = format!("{} s", config.server.shutdown_grace.as_secs());
    for file in [
        "README.md",
        "docs/operations.md",
        "deploy/helm/finhook/README.md",
    ] {
        let text = read(file);
        assert!(
            !text.contains("up to 20 s") && !text.contains("up to 20 seconds"),
            "{file} still promises 20 s"
        );
        assert!(
            text.contains(&grace) || text.contains("shutdown_grace"),
            "{file} never says how long pollers get ({grace})"
        );
    }
}

#[test]
fn the_charts_termination_grace_covers_the_pause_the_drain_and_the_flush() {
    use figment::providers::Format;
    // With a poller at its default request_timeout: a poll in flight at the stop may be
    // answered that late, and its events then get the grace period (finhook's own deadline).
    let with_a_poller = format!(
        "{}\n[pollers.oxlin]\nkind = \"oxlin\"\nenvironment = \"sandbox\"\nclient_id = \"c\"\nclient_secret = \"s\"\n",
        finhook::config::DEFAULT_TOML
    );
    let config = finhook::config::Config::from_figment(figment::Figment::from(
        figment::providers::Toml::string(&with_a_poller),
    ))
    .unwrap();
    let values = yaml("deploy/helm/finhook/values.yaml");
    let seconds = |key: &str| values[key].as_u64().unwrap_or_else(|| panic!("{key}"));
    let needed =
        seconds("preStopSleepSeconds") + finhook::app::shutdown_deadline(&config).as_secs();
    assert!(
        seconds("terminationGracePeriodSeconds") > needed,
        "SIGKILL would cut the drain short: {needed} s needed"
    );
    assert!(
        seconds("preStopSleepSeconds") > 0,
        "a pod leaving the endpoints still gets connections for a few seconds"
    );
}

#[test]
fn the_charts_registry_environment_is_read_by_finhook() {
    // As templates/_helpers.tpl ("finhook.registryEnv") renders it: JSON-quoted strings and
    // previous keys as an array of inline tables.
    let template = read("deploy/helm/finhook/templates/_helpers.tpl");
    for name in [
        "FINHOOK_REGISTRY__ENABLED",
        "FINHOOK_REGISTRY__KEY_ID",
        "FINHOOK_REGISTRY__KEY_FILE",
        "FINHOOK_REGISTRY__PREVIOUS_KEYS",
    ] {
        assert!(template.contains(name), "the chart no longer sets {name}");
    }
    let directory = tempfile::tempdir().unwrap();
    let key = directory.path().join("registry-key");
    let previous = directory.path().join("registry-key-k0");
    std::fs::write(&key, "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=\n").unwrap();
    std::fs::write(&previous, "ab".repeat(32)).unwrap();
    let config = directory.path().join("finhook.toml");
    std::fs::write(
        &config,
        "[pollers.oxlin]\nkind = \"oxlin\"\nenvironment = \"sandbox\"\nclient_id = \"c\"\nclient_secret = \"s\"\n",
    )
    .unwrap();
    let output = finhook()
        .args(["check-config", "--config"])
        .arg(&config)
        .env("FINHOOK_REGISTRY__ENABLED", "true")
        .env("FINHOOK_REGISTRY__KEY_ID", "\"1\"")
        .env(
            "FINHOOK_REGISTRY__KEY_FILE",
            format!("{:?}", key.display().to_string()),
        )
        .env(
            "FINHOOK_REGISTRY__PREVIOUS_KEYS",
            format!(
                "[{{id=\"0\",key_file={:?}}}]",
                previous.display().to_string()
            ),
        )
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains("enabled = true"), "{printed}");
    assert!(printed.contains("key_id = \"1\""), "{printed}");
}

#[test]
fn the_docs_describe_what_is_built_not_what_was_planned() {
    // Server TLS and mutual TLS are implemented (src/http/tls.rs).
    for file in [
        "deploy/helm/finhook/values.yaml",
        "deploy/helm/finhook/README.md",
    ] {
        let text = read(file).to_lowercase();
        assert!(
            !text.contains("future release") && !text.contains("is planned"),
            "{file} still calls a built feature planned"
        );
    }
    // Unmapped queue events are published as io.finhook.unmapped; only unreadable ones are
    // dead-lettered (src/providers/linxo.rs).
    let queue_readme = read("tests/fixtures/oxlin-queue/README.md");
    assert!(queue_readme.contains("io.finhook.unmapped"));
    assert!(!queue_readme.contains("cannot map to the dead-letter"));
}

/// Every `# [sources.<name>]` example of config/default.toml, uncommented: its lines up to the
/// next blank comment line, without their `# `, comment lines inside left out.
fn source_examples() -> Vec<(String, String)> {
    let defaults = read("config/default.toml");
    let lines: Vec<&str> = defaults.lines().collect();
    let mut examples = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let Some(name) = line
            .strip_prefix("# [sources.")
            .and_then(|rest| rest.strip_suffix(']'))
        else {
            continue;
        };
        let block: Vec<&str> = lines[index..]
            .iter()
            .map_while(|line| line.strip_prefix("# "))
            .filter(|line| !line.starts_with('#'))
            .collect();
        examples.push((name.to_owned(), block.join("\n")));
    }
    examples
}

#[test]
fn every_provider_has_a_config_example_that_passes_check_config() {
    let examples = source_examples();
    for kind in finhook::providers::kinds() {
        assert!(
            examples
                .iter()
                .any(|(_, toml)| toml.contains(&format!("kind = \"{kind}\""))),
            "config/default.toml has no example source of kind {kind}"
        );
    }
    for (name, toml) in &examples {
        // Client certificates need a TLS listener with a client CA (files are not read).
        let tls = if toml.contains("client_cert") {
            "[server.tls]\ncert_file = \"/tls/cert.pem\"\nkey_file = \"/tls/key.pem\"\nclient_ca_file = \"/tls/ca.pem\"\n"
        } else {
            ""
        };
        check_config(
            &format!("{tls}{toml}\n"),
            &format!("the example source {name}"),
        );
    }
}

#[test]
fn the_providers_doc_and_command_list_exactly_the_catalogue() {
    let doc = read("docs/providers.md");
    let table_start = doc.find("| `").expect("a table of providers");
    let in_doc: Vec<String> = doc[table_start..]
        .lines()
        .map_while(|line| line.strip_prefix("| `"))
        .map(|rest| rest.split('`').next().unwrap().to_owned())
        .collect();
    let in_catalogue: Vec<String> = finhook::providers::kinds()
        .map(|kind| kind.as_str().to_owned())
        .collect();
    assert_eq!(in_doc, in_catalogue, "docs/providers.md's table");
    let output = finhook().arg("providers").output().unwrap();
    assert!(output.status.success());
    let listed: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| line.split_whitespace().next().unwrap().to_owned())
        .collect();
    assert_eq!(listed, in_catalogue, "finhook providers");
    for kind in &in_catalogue {
        assert!(
            doc.contains(&format!("## `{kind}`")),
            "docs/providers.md has a section for {kind}"
        );
    }
}

/// The modules of `src/` and the top-level modules each one names (`crate::<module>`), tests
/// and comments included except `#[cfg(test)]` modules.
fn module_imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let src = root().join("src");
    for path in files_under("src", &["rs"]) {
        let relative = path.strip_prefix(&src).unwrap();
        let module = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if ["bin", "main", "lib"].contains(&module.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.split("#[cfg(test)]").next().unwrap();
        let named = imports.entry(module.clone()).or_default();
        let leading_name = |text: &str| -> String {
            text.trim_start()
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect()
        };
        for (index, _) in text.match_indices("crate::") {
            let rest = &text[index + "crate::".len()..];
            // `crate::{a::X, b}` names each module of the group.
            let names: Vec<String> = match rest.strip_prefix('{') {
                Some(group) => group[..group.find('}').unwrap_or(group.len())]
                    .split(',')
                    .map(leading_name)
                    .collect(),
                None => vec![leading_name(rest)],
            };
            for name in names {
                if !name.is_empty() && name != module && name != "self" {
                    named.insert(name);
                }
            }
        }
    }
    imports
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let imports = module_imports();
    assert!(imports.len() > 10, "found {} modules", imports.len());
    for start in imports.keys() {
        // Everything `start` reaches; reaching itself is a cycle.
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&String> = imports[start].iter().collect();
        while let Some(module) = stack.pop() {
            assert_ne!(
                module, start,
                "{start} imports itself through others: {imports:#?}"
            );
            if seen.insert(module.clone()) {
                stack.extend(imports.get(module).into_iter().flatten());
            }
        }
    }
    // The vocabulary is at the bottom: it names nothing of finhook.
    assert!(
        imports["vocabulary"].is_empty(),
        "{:?}",
        imports["vocabulary"]
    );
}

/// Runs tests/helm/render.py (Helm v4's library through `helm-python-sdk`, then
/// `kubernetes-validate`) on the chart with `values`; `None` when those Python packages are
/// missing on a developer's machine (.ci/run installs them, and there the test must run).
fn render_chart(values: &[&str]) -> Option<std::process::Output> {
    if !common::tool_available(
        "python3",
        &["-c", "import helm_python, kubernetes_validate, yaml"],
        "python3 with helm-python-sdk, kubernetes-validate and PyYAML",
    ) {
        return None;
    }
    Some(
        Command::new("python3")
            .arg("tests/helm/render.py")
            .arg("deploy/helm/finhook")
            .args(values)
            .current_dir(root())
            .output()
            .unwrap(),
    )
}

#[test]
fn the_chart_renders_with_real_helm_and_validates_against_kubernetes() {
    let Some(output) = render_chart(&["deploy/helm/finhook/ci/all-features-values.yaml"]) else {
        return;
    };
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "render.py printed no report ({error}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(
        output.status.success(),
        "helm lint/template or Kubernetes validation found problems: {:#}",
        report["problems"]
    );
    let kinds = |index: usize| -> BTreeSet<String> {
        report["reports"][index]["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|kind| kind.as_str().unwrap().to_owned())
            .collect()
    };
    let defaults = kinds(0);
    for kind in [
        "ConfigMap",
        "Deployment",
        "Service",
        "Secret",
        "PodDisruptionBudget",
    ] {
        assert!(defaults.contains(kind), "the defaults render a {kind}");
    }
    let everything = kinds(1);
    for kind in [
        "HorizontalPodAutoscaler",
        "Ingress",
        "NetworkPolicy",
        "ServiceMonitor",
        "PrometheusRule",
    ] {
        assert!(everything.contains(kind), "all features render a {kind}");
    }
    // Every pod: no Service links in its environment (a Service named finhook* would put
    // FINHOOK_SERVICE_HOST and the like there), and a pause before SIGTERM while it leaves the
    // endpoints.
    let values = yaml("deploy/helm/finhook/values.yaml");
    for report in report["reports"].as_array().unwrap() {
        for pod in report["pods"].as_array().unwrap() {
            assert_eq!(pod["enableServiceLinks"], false, "{pod:#}");
            let container = &pod["containers"][0];
            assert_eq!(
                container["lifecycle"]["preStop"]["exec"]["command"],
                serde_json::json!([
                    "sleep",
                    values["preStopSleepSeconds"].as_u64().unwrap().to_string()
                ]),
                "{container:#}"
            );
        }
    }
    // The finhook configuration each rendering ships is one finhook accepts.
    for (index, report) in report["reports"].as_array().unwrap().iter().enumerate() {
        for config in report["configs"].as_array().unwrap() {
            check_config(
                config.as_str().unwrap(),
                &format!("rendering {index}'s finhook.toml"),
            );
        }
    }
}

#[test]
fn values_the_schema_refuses_stop_the_rendering() {
    let directory = tempfile::tempdir().unwrap();
    let bad = directory.path().join("bad-values.yaml");
    std::fs::write(
        &bad,
        "replicaCount: three\nautoscaling:\n  enabled: maybe\n",
    )
    .unwrap();
    let Some(output) = render_chart(&[bad.to_str().unwrap()]) else {
        return;
    };
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("HelmValuesError"), "{stderr}");
    assert!(stderr.contains("replicaCount"), "{stderr}");
}

/// Runs tests/asyncapi/validate.mjs (the AsyncAPI initiative's parser) on `files`; `None` when
/// node or `@asyncapi/parser` is missing on a developer's machine (.ci/run installs them and
/// sets NODE_PATH, and there the test must run).
fn validate_asyncapi(files: &[&Path]) -> Option<Value> {
    if !common::tool_available(
        "node",
        &["-e", "require('@asyncapi/parser')"],
        "node with @asyncapi/parser (NODE_PATH)",
    ) {
        return None;
    }
    let output = Command::new("node")
        .arg("tests/asyncapi/validate.mjs")
        .args(files)
        .current_dir(root())
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "validate.mjs printed no report ({error}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(output.status.success(), "AsyncAPI errors: {report:#}");
    Some(report)
}

#[test]
fn the_committed_asyncapi_document_is_current_and_valid() {
    // Current: what `finhook asyncapi` prints for the default configuration.
    let output = finhook().arg("asyncapi").output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let generated = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        generated,
        read("docs/asyncapi.json"),
        "docs/asyncapi.json is stale: finhook asyncapi > docs/asyncapi.json"
    );
    // A configuration with routes and the registry describes every topic it writes.
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("finhook.toml");
    std::fs::write(
        &config,
        r#"
[kafka]
brokers = "kafka-0:9092,kafka-1:9092"
[[kafka.routes]]
provider = "plaid"
topic = "finhook.plaid"
[[kafka.routes]]
provider = "bridge"
topic = "finhook.bridge"
[registry]
enabled = true
key_id = "k1"
key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
"#,
    )
    .unwrap();
    let output = finhook()
        .args(["asyncapi", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let everything = directory.path().join("asyncapi.json");
    std::fs::write(&everything, &output.stdout).unwrap();
    let committed = root().join("docs/asyncapi.json");
    let Some(report) = validate_asyncapi(&[&committed, &everything]) else {
        return;
    };
    let channels = |file: &Path| -> BTreeSet<String> {
        report[file.to_str().unwrap()]["channels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|address| address.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        channels(&committed),
        BTreeSet::from(["finhook.events".to_owned(), "finhook.deadletter".to_owned()])
    );
    let all = channels(&everything);
    for topic in [
        "finhook.plaid",
        "finhook.bridge",
        "finhook.oxlin.users",
        "finhook.oxlin.state",
    ] {
        assert!(all.contains(topic), "{topic} in {all:?}");
    }
}
