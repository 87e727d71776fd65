//! Configuration tests: defaults, shipped files, validation, secret files and environment
//! overrides.

use figment::providers::{Format, Toml};
use figment::Figment;

use std::time::Duration;

use super::*;
use crate::secret::{Secret, REDACTED};

/// Defaults plus `toml`, without the process environment (which other tests may change).
fn parse(toml: &str) -> Result<Config, ConfigError> {
    Config::over_defaults(toml)
}

fn problems(toml: &str) -> String {
    parse(toml).unwrap_err().to_string()
}

#[test]
fn embedded_defaults_parse_and_validate() {
    let config = parse("").unwrap();
    assert_eq!(config.kafka.topics.default, "finhook.events");
    assert_eq!(config.server.body_limit_bytes, 960 << 10);
    assert!(config.sources.is_empty());
}

#[test]
fn attribute_headers_are_all_unless_required_is_asked_for() {
    use crate::envelope::AttributeHeaders;
    assert_eq!(
        parse("").unwrap().kafka.attribute_headers,
        AttributeHeaders::All
    );
    let required = parse("[kafka]\nattribute_headers = \"required\"").unwrap();
    assert_eq!(required.kafka.attribute_headers, AttributeHeaders::Required);
    let refused = problems("[kafka]\nattribute_headers = \"some\"");
    assert!(refused.contains("attribute_headers"), "{refused}");
}

#[test]
fn every_shipped_config_file_parses_and_validates() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&directory).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|ext| ext.to_str()) != Some("toml") {
            continue;
        }
        let figment = Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::file(&path));
        if let Err(error) = Config::from_figment(figment) {
            panic!("{} is invalid: {error}", path.display());
        }
        checked += 1;
    }
    assert!(
        checked >= 3,
        "expected default, dev and example configs, found {checked}"
    );
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let message = problems("[kafka]\nbrokerz = \"x\"");
    assert!(message.contains("brokerz"), "{message}");
    let message = problems("[sources.a]\nkind = \"bridge\"\nsecret = \"s\"\nsecrett = \"x\"");
    assert!(message.contains("secrett"), "{message}");
}

#[test]
fn wrong_values_name_the_key() {
    let message = problems("[kafka]\nack_timeout = \"soon\"");
    assert!(message.contains("ack_timeout"), "{message}");
    let message = problems("[sources.a]\nkind = \"yapily\"");
    assert!(
        message.contains("unknown provider `yapily`; one of bridge, linxo"),
        "{message}"
    );
}

#[test]
fn bridge_source_needs_a_secret_and_no_auth() {
    let message = problems("[sources.bridge]\nkind = \"bridge\"");
    assert!(message.contains("sources.bridge.secret"), "{message}");
    let message = problems("[sources.bridge]\nkind = \"bridge\"\nsecret = \"s\"\nauth = \"none\"");
    assert!(
        message.contains("bridge source: unknown field `auth`")
            && message.contains("sources.bridge"),
        "{message}"
    );
}

#[test]
fn linxo_auth_must_be_chosen_explicitly() {
    let message = problems("[sources.linxo]\nkind = \"linxo\"");
    assert!(message.contains("sources.linxo.auth"), "{message}");
    assert!(parse("[sources.linxo]\nkind = \"linxo\"\nauth = \"none\"").is_ok());
    let message = problems("[sources.linxo]\nkind = \"linxo\"\nauth = \"basic\"\nsecret = \"s\"");
    assert!(message.contains("sources.linxo.username"), "{message}");
}

#[test]
fn secret_inline_and_file_together_are_refused() {
    let message = problems("[sources.b]\nkind = \"bridge\"\nsecret = \"s\"\nsecret_file = \"/x\"");
    assert!(message.contains("sources.b"), "{message}");
}

#[test]
fn source_names_are_restricted() {
    let message = problems("[sources.\"Bad Name\"]\nkind = \"linxo\"\nauth = \"none\"");
    assert!(message.contains("sources.Bad Name"), "{message}");
}

#[test]
fn source_names_that_would_share_metric_labels_are_refused() {
    let message = problems("[sources.unknown]\nkind = \"linxo\"\nauth = \"none\"");
    assert!(message.contains("sources.unknown: the name"), "{message}");
    let message = problems(&format!(
        "{POLLER}\n[sources.oxlin]\nkind = \"linxo\"\nauth = \"none\""
    ));
    assert!(
        message.contains("sources.oxlin: a poller has the same name"),
        "{message}"
    );
    assert!(parse(POLLER).is_ok());
}

#[test]
fn idempotence_and_acks_cannot_be_overridden() {
    let message = problems("[kafka.properties]\nacks = \"1\"");
    assert!(message.contains("kafka.properties.\"acks\""), "{message}");
}

#[test]
fn bad_topic_names_are_refused() {
    let message = problems("[kafka.topics]\ndefault = \"has space\"\ndead_letter = \"d\"");
    assert!(message.contains("kafka.topics.default"), "{message}");
}

#[test]
fn secrets_are_read_from_files_and_missing_files_name_the_key() {
    let directory = tempfile::tempdir().unwrap();
    let current = directory.path().join("current");
    std::fs::write(&current, "from-file\n").unwrap();
    let config = parse(&format!(
        "[sources.b]\nkind = \"bridge\"\nsecret_file = {current:?}\nprevious_secret = \"older\""
    ))
    .unwrap();
    let secrets = config.sources["b"].resolve_secrets("b").unwrap();
    let values: Vec<&str> = secrets.iter().map(Secret::expose).collect();
    assert_eq!(values, ["from-file", "older"]);

    let config =
        parse("[sources.b]\nkind = \"bridge\"\nsecret_file = \"/nonexistent/finhook\"").unwrap();
    let message = config.sources["b"]
        .resolve_secrets("b")
        .unwrap_err()
        .to_string();
    assert!(message.contains("sources.b.secret_file"), "{message}");
}

#[test]
fn redacted_rendering_hides_every_secret() {
    let config = parse(
        "[kafka.properties]\n\"sasl.password\" = \"kafka-pass\"\n\"sasl.username\" = \"user\"\n\
         [sources.b]\nkind = \"bridge\"\nsecret = \"bridge-secret\"\nprevious_secret = \"old-secret\"\n\
         [sources.l]\nkind = \"linxo\"\nauth = \"bearer\"\nsecret = \"linxo-token\"",
    )
    .unwrap();
    let rendered = config.to_redacted_toml();
    for secret in ["kafka-pass", "bridge-secret", "old-secret", "linxo-token"] {
        assert!(!rendered.contains(secret), "{secret} leaked:\n{rendered}");
    }
    assert!(rendered.contains(REDACTED));
    assert!(
        rendered.contains("\"sasl.username\" = \"user\""),
        "{rendered}"
    );
    // The rendering is itself a valid configuration file (secrets aside).
    assert!(parse(&rendered).is_ok());
}

#[test]
#[allow(clippy::result_large_err)] // figment::Jail's signature, not ours
fn environment_overrides_file_with_double_underscore_nesting() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("finhook.toml", "[kafka]\nbrokers = \"from-file:9092\"")?;
        jail.set_env("FINHOOK_KAFKA__BROKERS", "from-env:9092");
        jail.set_env("FINHOOK_KAFKA__EMBEDDED", "true");
        jail.set_env("FINHOOK_SOURCES__BRIDGE_MAIN__KIND", "bridge");
        jail.set_env("FINHOOK_SOURCES__BRIDGE_MAIN__SECRET", "env-secret");
        let config = Config::load(Some(Path::new("finhook.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(config.kafka.brokers, "from-env:9092");
        assert!(config.kafka.embedded);
        let secrets = config.sources["bridge_main"]
            .resolve_secrets("bridge_main")
            .map_err(|e| e.to_string())?;
        assert_eq!(secrets[0].expose(), "env-secret");
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // figment::Jail's signature, not ours
fn kubernetes_service_links_are_not_taken_for_configuration() {
    figment::Jail::expect_with(|jail| {
        // What a pod gets for Services named `finhook` and `finhook-metrics` in its namespace.
        for (name, value) in [
            ("FINHOOK_SERVICE_HOST", "10.0.0.1"),
            ("FINHOOK_SERVICE_PORT", "8080"),
            ("FINHOOK_SERVICE_PORT_WEBHOOKS", "8080"),
            ("FINHOOK_PORT", "tcp://10.0.0.1:8080"),
            ("FINHOOK_PORT_8080_TCP", "tcp://10.0.0.1:8080"),
            ("FINHOOK_PORT_8080_TCP_PROTO", "tcp"),
            ("FINHOOK_PORT_8080_TCP_PORT", "8080"),
            ("FINHOOK_PORT_8080_TCP_ADDR", "10.0.0.1"),
            ("FINHOOK_METRICS_SERVICE_HOST", "10.0.0.2"),
            ("FINHOOK_METRICS_PORT_9090_TCP_ADDR", "10.0.0.2"),
        ] {
            jail.set_env(name, value);
        }
        jail.set_env("FINHOOK_KAFKA__BROKERS", "from-env:9092");
        let config = Config::load(None).map_err(|e| e.to_string())?;
        assert_eq!(config.kafka.brokers, "from-env:9092");
        // A mistyped variable of finhook's own is still refused, not ignored.
        jail.set_env("FINHOOK_KAFKA_BROKERS", "single-underscore:9092");
        let error = Config::load(None).expect_err("an unknown key");
        assert!(error.to_string().contains("kafka_brokers"), "{error}");
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // figment::Jail's signature, not ours
fn environment_values_that_look_like_numbers_stay_text_where_text_is_wanted() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("FINHOOK_SOURCES__BRIDGE__KIND", "bridge");
        jail.set_env("FINHOOK_SOURCES__BRIDGE__SECRET", "00123456");
        jail.set_env("FINHOOK_SOURCES__GITHUB__KIND", "hmac");
        jail.set_env("FINHOOK_SOURCES__GITHUB__HEADER", "X-Hub-Signature-256");
        jail.set_env("FINHOOK_SOURCES__GITHUB__SECRET", "true");
        // Numbers and booleans are still read where they are wanted, from the same text.
        jail.set_env("FINHOOK_SERVER__BODY_LIMIT_BYTES", "8181");
        jail.set_env("FINHOOK_SERVER__MAX_IN_FLIGHT", "77");
        jail.set_env("FINHOOK_KAFKA__EMBEDDED", "false");
        // A quoted value is unquoted, as figment always did (the chart quotes some).
        jail.set_env("FINHOOK_KAFKA__BROKERS", "\"quoted:9092\"");
        let config = Config::load(None).map_err(|e| e.to_string())?;
        let secret = |name: &str| {
            config.sources[name]
                .secret
                .as_ref()
                .map(|secret| secret.expose().to_owned())
        };
        assert_eq!(secret("bridge").as_deref(), Some("00123456"));
        assert_eq!(secret("github").as_deref(), Some("true"));
        assert_eq!(config.server.body_limit_bytes, 8181);
        assert_eq!(config.server.max_in_flight, 77);
        assert!(!config.kafka.embedded);
        assert_eq!(config.kafka.brokers, "quoted:9092");
        Ok(())
    });
}

#[test]
fn service_link_names_are_told_from_finhook_keys() {
    for link in [
        "SERVICE_HOST",
        "service_port",
        "SERVICE_PORT_HTTP_API",
        "PORT",
        "PORT_443_UDP",
        "PORT_9090_SCTP_ADDR",
        "OPS_SERVICE_HOST",
        "OPS_PORT_9090_TCP_PORT",
    ] {
        assert!(is_kubernetes_service_link(link), "{link}");
    }
    for own in [
        "KAFKA__BROKERS",
        "SERVER__PORT",
        "KAFKA_BROKERS",
        "PORT_X_TCP",
        "PORT_8080",
        "PORT_8080_TCP_HOST",
        "SERVICE",
        "PORTS",
    ] {
        assert!(!is_kubernetes_service_link(own), "{own}");
    }
}

#[test]
fn missing_config_file_is_an_error() {
    let error = Config::load(Some(Path::new("/nonexistent/finhook.toml"))).unwrap_err();
    assert!(error.to_string().contains("/nonexistent/finhook.toml"));
}

/// A minimal poller `oxlin`, for tests here and elsewhere in the crate.
pub(crate) const POLLER: &str = r#"
[pollers.oxlin]
kind = "oxlin"
environment = "sandbox"
client_id = "c"
client_secret = "s"
"#;

#[test]
fn poller_defaults_and_presets_apply() {
    let config = parse(POLLER).unwrap();
    let poller = &config.pollers["oxlin"];
    assert_eq!(poller.interval, Duration::from_secs(10));
    assert_eq!(poller.topics, ["connections"]);
    assert_eq!(
        poller.api_url().as_str(),
        "https://sandbox-api.oxlin.io/v2.1/"
    );
    assert_eq!(
        poller.token_url().as_str(),
        "https://sandbox-auth.oxlin.io/token"
    );
    let custom = parse(
        "[pollers.x]\nkind = \"oxlin\"\nenvironment = \"custom\"\nclient_id = \"c\"\nclient_secret = \"s\"\napi_url = \"http://fake:1/v2.1\"\ntoken_url = \"http://fake:1/token\"",
    )
    .unwrap();
    assert_eq!(
        custom.pollers["x"].api_url().as_str(),
        "http://fake:1/v2.1/"
    );
}

#[test]
fn a_poller_that_could_let_a_queue_expire_is_refused() {
    let message = problems(&format!("{POLLER}interval = \"14m\""));
    assert!(message.contains("pollers.oxlin.interval"), "{message}");
    let message = problems(&format!(
        "{POLLER}backoff_max = \"10m\"\nrequest_timeout = \"5m\""
    ));
    assert!(message.contains("pollers.oxlin.backoff_max"), "{message}");
    assert!(parse(&format!("{POLLER}interval = \"5m\"\nbackoff_max = \"10m\"")).is_ok());
}

#[test]
fn the_expiry_check_counts_the_interval_jitter_and_the_request_timeouts() {
    // 13 min + 30 s fits 14 min, but 13 min + 10 % jitter does not.
    let message = problems(&format!(
        "{POLLER}interval = \"13m\"\nrequest_timeout = \"30s\""
    ));
    assert!(message.contains("pollers.oxlin.interval"), "{message}");
    // 12 min 40 s + 1 min fits 14 min; two request timeouts of a minute do not.
    let message = problems(&format!(
        "{POLLER}backoff_max = \"12m40s\"\nrequest_timeout = \"1m\""
    ));
    assert!(message.contains("pollers.oxlin.backoff_max"), "{message}");
    assert!(parse(&format!(
        "{POLLER}interval = \"11m\"\nrequest_timeout = \"30s\""
    ))
    .is_ok());
}

#[test]
fn a_poller_needs_a_client_id_and_a_secret() {
    let base = "[pollers.oxlin]\nkind = \"oxlin\"\nenvironment = \"sandbox\"\n";
    let message = problems(&format!("{base}client_secret = \"s\""));
    assert!(message.contains("pollers.oxlin.client_id"), "{message}");
    let message = problems(&format!("{base}client_id = \" \"\nclient_secret = \"s\""));
    assert!(message.contains("pollers.oxlin.client_id"), "{message}");
    let message = problems(&format!("{base}client_id = \"c\"\nclient_secret = \"\""));
    assert!(message.contains("pollers.oxlin.client_secret"), "{message}");
    let message = problems(&format!("{base}client_id = \"c\""));
    assert!(message.contains("pollers.oxlin.client_secret"), "{message}");
    assert!(parse(&format!(
        "{base}client_id = \"c\"\nclient_secret_file = \"/s\""
    ))
    .is_ok());
}

#[test]
fn the_body_limit_with_its_envelope_must_fit_one_kafka_record() {
    // The default fits librdkafka's default message.max.bytes.
    assert!(parse("").is_ok());
    let message = problems("[server]\nbody_limit_bytes = 1048576");
    assert!(message.contains("server.body_limit_bytes"), "{message}");
    assert!(message.contains("message.max.bytes"), "{message}");
    let raised =
        "[server]\nbody_limit_bytes = 1048576\n[kafka.properties]\n\"message.max.bytes\" = 2000000";
    assert!(parse(raised).is_ok());
    let message =
        problems("[sources.big]\nkind = \"linxo\"\nauth = \"none\"\nbody_limit_bytes = 999000");
    assert!(
        message.contains("sources.big.body_limit_bytes"),
        "{message}"
    );
    let message = problems("[kafka.properties]\n\"message.max.bytes\" = \"lots\"");
    assert!(message.contains("message.max.bytes"), "{message}");
}

#[test]
fn the_request_head_limit_is_bounded() {
    let message = problems("[server]\nmax_header_bytes = 1024");
    assert!(message.contains("server.max_header_bytes"), "{message}");
    assert!(parse("[server]\nmax_header_bytes = 65536").is_ok());
}

#[test]
fn webhook_threads_default_to_one_per_core_and_are_bounded() {
    let cores = std::thread::available_parallelism().map_or(1, |cores| usize::from(cores).min(256));
    assert_eq!(parse("").unwrap().server.webhook_threads(), cores);
    assert_eq!(
        parse("[server]\nthreads = 3")
            .unwrap()
            .server
            .webhook_threads(),
        3
    );
    assert_eq!(
        parse("[server]\nthreads = 256")
            .unwrap()
            .server
            .webhook_threads(),
        256
    );
    let message = problems("[server]\nthreads = 257");
    assert!(message.contains("server.threads: at most 256"), "{message}");
}

#[test]
fn poller_users_are_checked() {
    // Static sharding is gone: the users registry shares users between replicas.
    let message = problems(&format!("{POLLER}shard_index = 0\nshard_count = 2"));
    assert!(message.contains("unknown field"), "{message}");
    let message = problems(&format!(
        "{POLLER}[[pollers.oxlin.users]]\nid = \"u\"\naccess_token = \"t\"\npassword = \"p\"\nusername = \"n\""
    ));
    assert!(message.contains("pollers.oxlin.users[0]"), "{message}");
    let message = problems("[pollers.oxlin]\nkind = \"oxlin\"\nenvironment = \"custom\"");
    assert!(message.contains("api_url"), "{message}");
}

#[test]
fn users_files_are_read_and_duplicates_refused() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("users.toml");
    std::fs::write(
        &path,
        "[[users]]\nid = \"a\"\naccess_token = \"ta\"\n[[users]]\nid = \"b\"\nusername = \"b@x\"\npassword = \"pb\"\n",
    )
    .unwrap();
    let config = parse(&format!("{POLLER}users_file = {path:?}")).unwrap();
    let users = config.pollers["oxlin"].load_users("oxlin").unwrap();
    assert_eq!(users.len(), 2);
    assert!(matches!(&users[0].1, UserCredentials::AccessToken(token) if token.expose() == "ta"));

    let config = parse(&format!(
        "{POLLER}users_file = {path:?}\n[[pollers.oxlin.users]]\nid = \"a\"\naccess_token = \"t\""
    ))
    .unwrap();
    let message = config.pollers["oxlin"]
        .load_users("oxlin")
        .unwrap_err()
        .to_string();
    assert!(message.contains("user a is listed twice"), "{message}");
    // Redacted rendering hides user credentials too.
    let rendered = config.to_redacted_toml();
    assert!(!rendered.contains("access_token = \"t\""), "{rendered}");
}

#[test]
fn users_with_empty_credentials_are_refused_when_read() {
    // An empty token file is the usual way to get one: Oxlin would refuse it at every poll.
    let directory = tempfile::tempdir().unwrap();
    let token_file = directory.path().join("token");
    std::fs::write(&token_file, "\n").unwrap();
    let path = directory.path().join("users.toml");
    std::fs::write(
        &path,
        format!("[[users]]\nid = \"a\"\naccess_token_file = {token_file:?}\n"),
    )
    .unwrap();
    let message = crate::config::poller::read_users_file(&path)
        .unwrap_err()
        .to_string();
    assert!(message.contains("user a: empty"), "{message}");
    let config = parse(&format!(
        "{POLLER}[[pollers.oxlin.users]]\nid = \"b\"\nusername = \"b@x\"\npassword = \"\""
    ))
    .unwrap();
    let message = config.pollers["oxlin"]
        .load_users("oxlin")
        .unwrap_err()
        .to_string();
    assert!(message.contains("user b: empty"), "{message}");
}

#[test]
fn client_certificates_need_a_tls_listener_with_a_client_ca() {
    let message =
        problems("[sources.l]\nkind = \"linxo\"\nauth = \"none\"\nclient_cert_required = true");
    assert!(
        message.contains("sources.l.client_cert_required"),
        "{message}"
    );
    let with_ca = "[server.tls]\ncert_file = \"c\"\nkey_file = \"k\"\nclient_ca_file = \"ca\"\n\
                   [sources.l]\nkind = \"linxo\"\nauth = \"none\"\nclient_cert_required = true";
    assert!(parse(with_ca).is_ok());
}

/// The commented `[pollers.oxlin]` example of config/default.toml, uncommented: every key not
/// marked `example:` must show the real default.
#[test]
fn the_default_toml_poller_example_shows_the_real_defaults() {
    let start = DEFAULT_TOML
        .find("# [pollers.oxlin]")
        .expect("the poller example");
    let end = start + DEFAULT_TOML[start..].find("\n[pollers]").unwrap();
    let mut example = String::new();
    let mut shown_defaults = Vec::new();
    for line in DEFAULT_TOML[start..end].lines() {
        let Some(code) = line.strip_prefix("# ") else {
            continue;
        };
        if code.starts_with('#') {
            continue;
        }
        example.push_str(code);
        example.push('\n');
        let is_key = code.contains(" = ") && !code.starts_with('[');
        if is_key && !code.contains("# example:") {
            shown_defaults.push(code.split(" = ").next().unwrap().trim().to_owned());
        }
    }
    assert!(shown_defaults.len() >= 10, "{shown_defaults:?}");
    let documented = parse(&example).expect("the example parses");
    let minimal = parse(
        "[pollers.oxlin]\nkind = \"oxlin\"\nenvironment = \"production\"\nclient_id = \"c\"\nclient_secret = \"s\"",
    )
    .unwrap();
    let as_table = |config: &Config| {
        toml::Value::try_from(&config.pollers["oxlin"])
            .unwrap()
            .as_table()
            .unwrap()
            .clone()
    };
    let (documented, defaults) = (as_table(&documented), as_table(&minimal));
    for key in shown_defaults {
        if [
            "kind",
            "id",
            "username",
            "access_token_file",
            "password_file",
        ]
        .contains(&key.as_str())
        {
            continue;
        }
        assert_eq!(
            documented.get(&key),
            defaults.get(&key),
            "config/default.toml shows pollers.oxlin.{key} = {:?}, the default is {:?}",
            documented.get(&key),
            defaults.get(&key)
        );
    }
}

/// Field encryption and the registry check their previous keys alike, when the configuration
/// is loaded (so `check-config --skip-files` refuses them too): one reusing the current id, or
/// giving no key or both, is refused; a good one opens what it sealed.
#[test]
fn previous_keys_are_checked_alike_for_field_encryption_and_the_registry() {
    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let protection = |previous: &str| {
        format!(
            "[protection]\nencryption_key_id = \"f2\"\nencryption_key = \"{KEY}\"\n[[protection.previous_encryption_keys]]\n{previous}\n"
        )
    };
    let registry = |previous: &str| {
        format!(
            "[registry]\nenabled = true\nkey_id = \"f2\"\nkey = \"{KEY}\"\n[[registry.previous_keys]]\n{previous}\n"
        )
    };
    let good = format!("id = \"f1\"\nkey = \"{KEY}\"");
    let ring = parse(&protection(&good)).unwrap().protection.keyring();
    assert!(ring.unwrap().is_some());
    assert!(parse(&registry(&good)).unwrap().registry.keyring().is_ok());
    for (section, config) in [
        (
            "protection.previous_encryption_keys",
            &protection as &dyn Fn(&str) -> String,
        ),
        ("registry.previous_keys", &registry),
    ] {
        let message = problems(&config(&format!("id = \"f2\"\nkey = \"{KEY}\"")));
        assert!(
            message.contains(&format!("{section}[0].id: `f2` is the current key id")),
            "{message}"
        );
        let expected = format!("{section}[0]: give exactly one of key and key_file");
        let keyless = problems(&config("id = \"f1\""));
        assert!(keyless.contains(&expected), "{keyless}");
        let both = problems(&config(&format!(
            "id = \"f1\"\nkey = \"{KEY}\"\nkey_file = \"/run/k\""
        )));
        assert!(both.contains(&expected), "{both}");
        let twice = problems(&config(&format!(
            "id = \"f1\"\nkey = \"{KEY}\"\n[[{section}]]\nid = \"f1\"\nkey = \"{KEY}\""
        )));
        assert!(
            twice.contains(&format!("{section}[1].id: `f1` is given twice")),
            "{twice}"
        );
    }
}

#[test]
fn protection_policies_and_their_users_are_checked() {
    let message = problems(
        r#"
[sources.b]
kind = "bridge"
secret = "s"
protect = "missing"
[[kafka.routes]]
type_prefix = "io.finhook."
topic = "analytics"
protect = "gone"
[protection]
pseudonymize_key = "k"
pseudonymize_key_file = "/run/secrets/k"
[protection.policies.empty]
[protection.policies.tokens]
presets = ["iban"]
[protection.policies.sealed]
fields = [{ path = "resource.accounts.*.owner", action = "encrypt" }]
[protection.policies.bad_path]
fields = [{ path = "resource..iban", action = "redact" }, { path = "a[0]", action = "redact" }]
"#,
    );
    for expected in [
        "sources.b.protect: no policy `missing` under [protection.policies]",
        "kafka.routes[0].protect: no policy `gone` under [protection.policies]",
        "protection.policies.empty: give `presets` or `fields`",
        "protection.policies.sealed: encrypt needs protection.encryption_key_id and encryption_key (or _file)",
        "protection.policies.bad_path.fields[0].path: `resource..iban` has an empty segment",
        "protection.policies.bad_path.fields[1].path: `a[0]`: segments are member names",
        "protection: give pseudonymize_key or pseudonymize_key_file, not both",
    ] {
        assert!(message.contains(expected), "missing {expected:?} in {message}");
    }
    // The key is there (twice, refused above), so pseudonymizing policies are not blamed.
    assert!(!message.contains("tokens"), "{message}");

    let message = problems("[protection.policies.tokens]\npresets = [\"iban\"]\n");
    assert!(
        message.contains(
            "protection.policies.tokens: pseudonymize needs protection.pseudonymize_key (or _file)"
        ),
        "{message}"
    );
    let message = problems(
        "[protection]\nencryption_key_id = \"k1\"\nencryption_key = \"a\"\nencryption_key_file = \"/k\"\n",
    );
    assert!(
        message.contains("protection: give encryption_key or encryption_key_file, not both"),
        "{message}"
    );
    // A poller naming an unknown policy is refused like a source; a known one is accepted.
    let poller = "[pollers.oxlin]\nkind = \"oxlin\"\nenvironment = \"sandbox\"\nclient_id = \"c\"\nclient_secret = \"s\"\n";
    let policy = "[protection]\npseudonymize_key = \"k\"\n[protection.policies.tokens]\npresets = [\"iban\"]\n";
    let message = problems(&format!("{poller}protect = \"nope\"\n{policy}"));
    assert!(
        message.contains("pollers.oxlin.protect: no policy `nope` under [protection.policies]"),
        "{message}"
    );
    assert!(parse(&format!("{poller}protect = \"tokens\"\n{policy}")).is_ok());
}
