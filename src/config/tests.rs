//! Configuration tests: defaults, shipped files, validation, secret files and environment
//! overrides.

use figment::providers::{Format, Toml};
use figment::Figment;

use super::*;

/// Defaults plus `toml`, without the process environment (which other tests may change).
fn parse(toml: &str) -> Result<Config, ConfigError> {
    Config::from_figment(Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::string(toml)))
}

fn problems(toml: &str) -> String {
    parse(toml).unwrap_err().to_string()
}

#[test]
fn embedded_defaults_parse_and_validate() {
    let config = parse("").unwrap();
    assert_eq!(config.kafka.topics.default, "finhook.events");
    assert_eq!(config.server.body_limit_bytes, 1 << 20);
    assert!(config.sources.is_empty());
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
    let message = problems("[sources.a]\nkind = \"plaid\"");
    assert!(
        message.contains("kind") || message.contains("plaid"),
        "{message}"
    );
}

#[test]
fn bridge_source_needs_a_secret_and_no_auth() {
    let message = problems("[sources.bridge]\nkind = \"bridge\"");
    assert!(message.contains("sources.bridge.secret"), "{message}");
    let message = problems("[sources.bridge]\nkind = \"bridge\"\nsecret = \"s\"\nauth = \"none\"");
    assert!(message.contains("sources.bridge.auth"), "{message}");
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
fn missing_config_file_is_an_error() {
    let error = Config::load(Some(Path::new("/nonexistent/finhook.toml"))).unwrap_err();
    assert!(error.to_string().contains("/nonexistent/finhook.toml"));
}

const POLLER: &str = r#"
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
        "[pollers.x]\nkind = \"oxlin\"\nenvironment = \"custom\"\napi_url = \"http://fake:1/v2.1\"\ntoken_url = \"http://fake:1/token\"",
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
fn poller_shards_and_users_are_checked() {
    let message = problems(&format!("{POLLER}shard_index = 2\nshard_count = 2"));
    assert!(message.contains("pollers.oxlin.shard_index"), "{message}");
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
