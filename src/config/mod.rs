//! Configuration: embedded defaults → file → `FINHOOK_` environment, parsed once, then validated
//! without IO. Secrets are resolved (files read) separately, when
//! the webhook sources are built (`sources::Sources::from_config`) and when
//! [`Config::resolve_kafka_properties`] reads the Kafka property files.

pub mod ip;
pub mod kafka;
pub mod poller;
pub mod protection;
pub mod registry;
pub mod server;
pub mod sources;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

pub use self::ip::IpRange;
pub use self::kafka::{
    check_topic_name, is_sensitive_kafka_property, Compression, KafkaConfig, PropertyValue,
    RouteConfig, TopicsConfig, ENVELOPE_OVERHEAD_BYTES,
};
pub use self::poller::{PollerConfig, UserCredentials};
pub use self::protection::ProtectionConfig;
pub use self::registry::RegistryConfig;
pub use self::server::{LogConfig, LogFormat, MetricsConfig, ServerConfig, TlsConfig};
use self::server::{MAX_HEADER_BYTES, MAX_THREADS, MIN_HEADER_BYTES};
pub use self::sources::{is_valid_source_name, SourceConfig};

/// Whether `key` (an environment variable's name after `FINHOOK_`) is one of the variables
/// Kubernetes sets for a Service named `finhook` or `finhook-<anything>`: `SERVICE_HOST`,
/// `SERVICE_PORT`, `SERVICE_PORT_<PORT NAME>`, `PORT`, `PORT_<N>_<PROTOCOL>` and its `_PROTO`,
/// `_PORT`, `_ADDR`, each after an optional `<REST OF THE NAME>_`. finhook's own variables always
/// nest with `__` (every top-level key is a section), so none of them has this shape.
fn is_kubernetes_service_link(key: &str) -> bool {
    if key.contains("__") {
        return false;
    }
    let key = key.to_ascii_uppercase();
    let parts: Vec<&str> = key.split('_').collect();
    // Where the Service's own name ends: at the last `SERVICE` of `SERVICE_HOST`/`SERVICE_PORT`,
    // else at the `PORT` that starts `PORT[_<N>_<PROTOCOL>[_<FIELD>]]`.
    let is_port_suffix = |rest: &[&str]| match rest {
        [] => true,
        [number, protocol, field @ ..] => {
            number.bytes().all(|byte| byte.is_ascii_digit())
                && !number.is_empty()
                && matches!(*protocol, "TCP" | "UDP" | "SCTP")
                && matches!(field, [] | ["PROTO" | "PORT" | "ADDR"])
        }
        _ => false,
    };
    (0..parts.len()).any(|start| match &parts[start..] {
        ["SERVICE", "HOST"] => true,
        ["SERVICE", "PORT", ..] => true,
        ["PORT", rest @ ..] => is_port_suffix(rest),
        _ => false,
    })
}

/// The commented defaults, which double as the reference for every key.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub kafka: KafkaConfig,
    /// Webhook sources by name; each is served at `POST /webhooks/{name}`.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    /// Event-queue pollers by name.
    #[serde(default)]
    pub pollers: BTreeMap<String, PollerConfig>,
    pub registry: RegistryConfig,
    /// Personal-data policies for payloads (`protect = "<name>"` on a source).
    #[serde(default)]
    pub protection: ProtectionConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error(transparent)]
    Parse(#[from] Box<figment::Error>),
    #[error("invalid configuration:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
    #[error("cannot read the file given by `{key}` ({path}): {source}")]
    SecretFile {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Config {
    /// Defaults, then `path` if given, then the `FINHOOK_` environment.
    pub fn figment(path: Option<&Path>) -> Figment {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = path {
            figment = figment.merge(Toml::file(path));
        }
        // Kubernetes puts a Service's address into every pod of its namespace as
        // `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT_8080_TCP`, ...: a Service named `finhook*`
        // would otherwise make every such variable an unknown key, and finhook would not start.
        let environment = Env::prefixed("FINHOOK_")
            .filter(|key| !is_kubernetes_service_link(key.as_str()))
            .split("__");
        figment.merge(EnvironmentAsText(environment))
    }

    /// The embedded defaults with `toml` over them, validated as a file's would be: for tests
    /// (no file, no environment).
    #[cfg(test)]
    pub(crate) fn over_defaults(toml: &str) -> Result<Config, ConfigError> {
        Self::from_figment(Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::string(toml)))
    }

    /// Loads and validates the configuration.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        if let Some(path) = path {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.to_owned()));
            }
        }
        Self::from_figment(Self::figment(path))
    }

    pub fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        // Lossy: a number or boolean may be written as text (the environment's always is).
        let config: Config = figment.extract_lossy().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks everything that can be checked without IO; every message names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.server.body_limit_bytes == 0 {
            problems.push("server.body_limit_bytes: must be greater than 0".to_owned());
        }
        if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&self.server.max_header_bytes) {
            problems.push(format!(
                "server.max_header_bytes: must be between {MIN_HEADER_BYTES} and {MAX_HEADER_BYTES}"
            ));
        }
        if self.server.threads > MAX_THREADS {
            problems.push(format!(
                "server.threads: at most {MAX_THREADS} (0: one per core)"
            ));
        }
        if self.server.max_in_flight == 0 {
            problems.push("server.max_in_flight: must be greater than 0".to_owned());
        }
        if self.server.max_connections == 0 {
            problems.push("server.max_connections: must be greater than 0".to_owned());
        }
        for (key, value) in [
            (
                "server.header_read_timeout",
                self.server.header_read_timeout,
            ),
            ("server.body_read_timeout", self.server.body_read_timeout),
            ("server.shutdown_grace", self.server.shutdown_grace),
        ] {
            if value.is_zero() {
                problems.push(format!("{key}: must be greater than 0"));
            }
        }
        self.validate_kafka(&mut problems);
        let mutual_tls = self
            .server
            .tls
            .as_ref()
            .is_some_and(|tls| tls.client_ca_file.is_some());
        for (name, source) in &self.sources {
            source.validate(name, &mut problems);
            // Names are metric labels: `unknown` already counts requests to no source, and a
            // poller's dead letters are counted under its name as a source's are.
            if name == crate::metrics::UNKNOWN_SOURCE {
                problems.push(format!(
                    "sources.{name}: the name `{name}` is taken (metrics count requests to no configured source under it)"
                ));
            }
            if self.pollers.contains_key(name) {
                problems.push(format!(
                    "sources.{name}: a poller has the same name; their metrics would be counted together"
                ));
            }
            if source.requires_client_certificate() && !mutual_tls {
                problems.push(format!(
                    "sources.{name}.client_cert_required: client certificates need server.tls with a client_ca_file"
                ));
            }
        }
        if let Some(tls) = &self.server.tls {
            if tls.reload_interval.is_zero() {
                problems.push("server.tls.reload_interval: must be greater than 0".to_owned());
            }
        }
        for (name, poller) in &self.pollers {
            poller.validate(name, &mut problems);
            if self.registry.enabled && (!poller.users.is_empty() || poller.users_file.is_some()) {
                problems.push(format!(
                    "pollers.{name}: with registry.enabled its users come from registry.users_topic; remove users and users_file (`finhook users import` moves a users file there)"
                ));
            }
        }
        self.registry.validate(&mut problems);
        let protected: Vec<(String, String)> = self
            .sources
            .iter()
            .filter_map(|(name, source)| {
                source
                    .protect
                    .clone()
                    .map(|policy| (format!("sources.{name}.protect"), policy))
            })
            .chain(self.pollers.iter().filter_map(|(name, poller)| {
                poller
                    .protect
                    .clone()
                    .map(|policy| (format!("pollers.{name}.protect"), policy))
            }))
            .chain(
                self.kafka
                    .routes
                    .iter()
                    .enumerate()
                    .filter_map(|(index, route)| {
                        route
                            .protect
                            .clone()
                            .map(|policy| (format!("kafka.routes[{index}].protect"), policy))
                    }),
            )
            .collect();
        self.protection.validate(&protected, &mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The configuration as `check-config` prints it: TOML with every secret redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|error| format!("# cannot render: {error}"))
    }
}

/// The `FINHOOK_` environment with numbers and booleans kept as the text they are. figment's
/// `Env` reads `123456` as a number and `true` as a boolean, so a numeric secret, client id or
/// user name failed to load ("found unsigned int, expected a string"), and `007` would have
/// been 7. Fields that want a number or a boolean read it from the text (`extract_lossy`);
/// quoted strings, arrays and tables are read as figment reads them.
struct EnvironmentAsText(Env);

impl Provider for EnvironmentAsText {
    fn metadata(&self) -> Metadata {
        self.0.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut values = Dict::new();
        for (key, text) in self.0.iter() {
            let value = match text
                .parse::<Value>()
                .expect("parsing a value is infallible")
            {
                // Trimmed, as figment trims the text it reads as a string.
                Value::Num(..) | Value::Bool(..) => Value::from(text.trim()),
                parsed => parsed,
            };
            // A dotted key (`split("__")` made them) nests as a table would. Values are left
            // untagged: figment tags them as this provider's, so errors name the variable.
            if let Value::Dict(_, nested) = figment::util::nest(key.as_str(), value) {
                merge_tables(&mut values, nested);
            }
        }
        Ok(Map::from([(Profile::Default, values)]))
    }
}

/// `from`'s keys into `into`, tables merged key by key, anything else replaced.
fn merge_tables(into: &mut Dict, from: Dict) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Dict(_, existing)), Value::Dict(_, nested)) => {
                merge_tables(existing, nested)
            }
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
