//! Configuration: embedded defaults → file → `FINHOOK_` environment, parsed once, then validated
//! without IO. Secrets are resolved (files read) separately, in [`Config::resolve_sources`].

pub mod ip;
pub mod poller;
pub mod registry;
pub mod secret;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize, Serializer};

pub use self::ip::IpRange;
pub use self::poller::{PollerConfig, UserCredentials};
pub use self::registry::RegistryConfig;
pub use self::secret::{Secret, REDACTED};
use crate::providers::ProviderKind;

/// The commented defaults, which double as the reference for every key.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Librdkafka settings finhook's guarantees rest on; the passthrough may not change them.
const PINNED_KAFKA_PROPERTIES: &[&str] = &["enable.idempotence", "acks", "request.required.acks"];

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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Largest accepted body unless a source overrides it. With the envelope around it, it must
    /// fit the producer's `message.max.bytes` (checked by [`Config::validate`]).
    pub body_limit_bytes: usize,
    /// Most bytes a request line plus headers may take; larger heads are answered 431, so slow
    /// clients cannot pin large buffers.
    pub max_header_bytes: usize,
    /// Time a client has to send its request line and headers.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Time a client has to send its body.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// Webhook requests handled at once; beyond, 503 at once.
    pub max_in_flight: usize,
    /// How long in-flight requests and pollers get to finish after SIGTERM.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Peers whose `X-Forwarded-For` is believed when checking a source's `allowed_ips`.
    #[serde(default)]
    pub trusted_proxies: Vec<IpRange>,
    /// HTTPS on the webhook listener; absent: plain HTTP (TLS ends at a proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// PEM CA bundle for client certificates (mutual TLS); absent: none are asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
    /// How often the files are checked for changes (SIGHUP also reloads them).
    #[serde(with = "humantime_serde", default = "default_tls_reload_interval")]
    pub reload_interval: Duration,
}

fn default_tls_reload_interval() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// The operations listener: /metrics, /healthz, /readyz.
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter directive; `RUST_LOG` wins when set.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers; ignored when `embedded`.
    pub brokers: String,
    /// Run librdkafka's mock cluster in process (trying finhook without Kafka).
    pub embedded: bool,
    /// How long a webhook waits for the broker's acknowledgement before answering 503.
    #[serde(with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// `Retry-After` on every 503, in seconds.
    pub retry_after_seconds: u32,
    pub compression: Compression,
    pub client_id: String,
    /// How often broker reachability is probed for /readyz.
    #[serde(with = "humantime_serde")]
    pub health_interval: Duration,
    pub topics: TopicsConfig,
    /// First matching route wins; no match → `topics.default`.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Raw librdkafka properties, applied last.
    #[serde(default, serialize_with = "serialize_redacted_properties")]
    pub properties: BTreeMap<String, PropertyValue>,
    /// Librdkafka properties read from files (e.g. `"sasl.password" = "/run/secrets/kafka"`).
    #[serde(default)]
    pub property_files: BTreeMap<String, PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsConfig {
    pub default: String,
    pub dead_letter: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Matches canonical types starting with this, e.g. `io.finhook.connection.`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderKind>,
    pub topic: String,
}

/// A librdkafka property value; TOML integers and booleans are accepted and passed as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PropertyValue {
    Text(String),
    Integer(i64),
    Boolean(bool),
}

impl fmt::Display for PropertyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PropertyValue::Text(text) => f.write_str(text),
            PropertyValue::Integer(number) => write!(f, "{number}"),
            PropertyValue::Boolean(flag) => write!(f, "{flag}"),
        }
    }
}

/// Librdkafka property names that hold credentials (`sasl.password`, `ssl.key.pem`, ...).
pub fn is_sensitive_kafka_property(name: &str) -> bool {
    ["password", "secret", "key.pem", "token", "jaas"]
        .iter()
        .any(|marker| name.contains(marker))
}

fn serialize_redacted_properties<S: Serializer>(
    properties: &BTreeMap<String, PropertyValue>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let redacted: BTreeMap<&str, String> = properties
        .iter()
        .map(|(name, value)| {
            let shown = if is_sensitive_kafka_property(name) {
                REDACTED.to_owned()
            } else {
                value.to_string()
            };
            (name.as_str(), shown)
        })
        .collect();
    redacted.serialize(serializer)
}

/// How a Linxo source authenticates its caller (Linxo signs nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// HTTP Basic: `username` and the secret as password.
    Basic,
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// Anyone may post. Must be chosen explicitly; warned about at start.
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub kind: ProviderKind,
    /// Linxo only: how callers authenticate. Bridge sources are authenticated by signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthMode>,
    /// Linxo with `auth = "basic"`: the expected user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Bridge: the webhook's signing secret. Linxo: the Basic password or bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// The secret being rotated out, still accepted (Bridge keeps it valid for 24 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_file: Option<PathBuf>,
    /// Client addresses allowed to post; empty allows any.
    #[serde(default)]
    pub allowed_ips: Vec<IpRange>,
    /// Overrides `server.body_limit_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_limit_bytes: Option<usize>,
    /// Callers must present a client certificate (mutual TLS; needs `server.tls.client_ca_file`).
    #[serde(default)]
    pub client_cert_required: bool,
    /// When non-empty, a client certificate must carry one of these names (subject common name,
    /// DNS or URI subject alternative name).
    #[serde(default)]
    pub client_cert_names: Vec<String>,
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
        figment.merge(Env::prefixed("FINHOOK_").split("__"))
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
        let config: Config = figment.extract().map_err(Box::new)?;
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
        if self.server.max_in_flight == 0 {
            problems.push("server.max_in_flight: must be greater than 0".to_owned());
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
            if (source.client_cert_required || !source.client_cert_names.is_empty()) && !mutual_tls
            {
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
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    fn validate_kafka(&self, problems: &mut Vec<String>) {
        let kafka = &self.kafka;
        if !kafka.embedded && kafka.brokers.trim().is_empty() {
            problems.push(
                "kafka.brokers: must name at least one broker unless kafka.embedded = true"
                    .to_owned(),
            );
        }
        if kafka.ack_timeout.is_zero() || kafka.ack_timeout > Duration::from_secs(120) {
            problems.push("kafka.ack_timeout: must be between 1ms and 120s".to_owned());
        }
        if kafka.health_interval.is_zero() {
            problems.push("kafka.health_interval: must be greater than 0".to_owned());
        }
        if kafka.client_id.is_empty() {
            problems.push("kafka.client_id: must not be empty".to_owned());
        }
        check_topic_name("kafka.topics.default", &kafka.topics.default, problems);
        check_topic_name(
            "kafka.topics.dead_letter",
            &kafka.topics.dead_letter,
            problems,
        );
        for (index, route) in kafka.routes.iter().enumerate() {
            check_topic_name(
                &format!("kafka.routes[{index}].topic"),
                &route.topic,
                problems,
            );
            if route.type_prefix.is_none() && route.provider.is_none() {
                problems.push(format!(
                    "kafka.routes[{index}]: give `type_prefix`, `provider` or both, or it matches everything"
                ));
            }
        }
        self.validate_record_size(problems);
        let passthrough = kafka.properties.keys().chain(kafka.property_files.keys());
        for name in passthrough {
            if PINNED_KAFKA_PROPERTIES.contains(&name.as_str()) {
                problems.push(format!(
                    "kafka.properties.\"{name}\": finhook always sets enable.idempotence=true and acks=all; remove it"
                ));
            }
        }
    }

    /// The largest record the producer sends: librdkafka's `message.max.bytes`, as configured.
    pub fn producer_message_max_bytes(&self) -> Option<usize> {
        match self.kafka.properties.get(MESSAGE_MAX_BYTES) {
            Some(value) => value.to_string().trim().parse().ok(),
            None => Some(LIBRDKAFKA_MESSAGE_MAX_BYTES),
        }
    }

    /// Every accepted body, wrapped in its envelope, must fit one Kafka record: otherwise a
    /// body under the limit would be refused by Kafka on every retry.
    fn validate_record_size(&self, problems: &mut Vec<String>) {
        let Some(message_max) = self.producer_message_max_bytes() else {
            problems.push(format!(
                "kafka.properties.\"{MESSAGE_MAX_BYTES}\": must be a number of bytes"
            ));
            return;
        };
        let limits = std::iter::once((
            "server.body_limit_bytes".to_owned(),
            self.server.body_limit_bytes,
        ))
        .chain(self.sources.iter().filter_map(|(name, source)| {
            source
                .body_limit_bytes
                .map(|limit| (format!("sources.{name}.body_limit_bytes"), limit))
        }));
        for (key, limit) in limits {
            if limit.saturating_add(ENVELOPE_OVERHEAD_BYTES) > message_max {
                problems.push(format!(
                    "{key}: {limit} bytes plus {ENVELOPE_OVERHEAD_BYTES} of envelope exceed the producer's {MESSAGE_MAX_BYTES} ({message_max}); lower the limit to {} or raise kafka.properties.\"{MESSAGE_MAX_BYTES}\" (and the broker's message.max.bytes / the topics' max.message.bytes with it)",
                    message_max.saturating_sub(ENVELOPE_OVERHEAD_BYTES)
                ));
            }
        }
    }

    /// Reads secret files and Kafka property files: the only IO in configuration.
    pub fn resolve_kafka_properties(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let mut resolved: Vec<(String, String)> = self
            .kafka
            .properties
            .iter()
            .map(|(name, value)| (name.clone(), value.to_string()))
            .collect();
        for (name, path) in &self.kafka.property_files {
            let value = Secret::from_file(path).map_err(|source| ConfigError::SecretFile {
                key: format!("kafka.property_files.\"{name}\""),
                path: path.clone(),
                source,
            })?;
            resolved.push((name.clone(), value.expose().to_owned()));
        }
        Ok(resolved)
    }

    /// The configuration as `check-config` prints it: TOML with every secret redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|error| format!("# cannot render: {error}"))
    }
}

/// librdkafka's property for the largest record, and its default.
const MESSAGE_MAX_BYTES: &str = "message.max.bytes";
const LIBRDKAFKA_MESSAGE_MAX_BYTES: usize = 1_000_000;
/// Room kept for the envelope's attributes, its `ce_*` headers and the record's framing around
/// a body: the attributes are bounded except `providertype`, and a record that still does not
/// fit is diverted to the dead-letter topic.
pub const ENVELOPE_OVERHEAD_BYTES: usize = 16 * 1024;
/// hyper's smallest read buffer, and a ceiling well above any real provider's headers.
const MIN_HEADER_BYTES: usize = 8 * 1024;
const MAX_HEADER_BYTES: usize = 1024 * 1024;

pub(crate) fn check_topic_name(key: &str, topic: &str, problems: &mut Vec<String>) {
    let valid = !topic.is_empty()
        && topic.len() <= 249
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid {
        problems.push(format!(
            "{key}: `{topic}` is not a Kafka topic name (1-249 of a-z, A-Z, 0-9, '.', '_', '-')"
        ));
    }
}

/// Source names become URL path segments and metric label values: keep them small and plain.
pub fn is_valid_source_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

impl SourceConfig {
    fn validate(&self, name: &str, problems: &mut Vec<String>) {
        let key = format!("sources.{name}");
        if !is_valid_source_name(name) {
            problems.push(format!(
                "{key}: source names are 1-64 characters of a-z, 0-9, '_' and '-'"
            ));
        }
        if self.secret.is_some() && self.secret_file.is_some() {
            problems.push(format!("{key}: give `secret` or `secret_file`, not both"));
        }
        if self.previous_secret.is_some() && self.previous_secret_file.is_some() {
            problems.push(format!(
                "{key}: give `previous_secret` or `previous_secret_file`, not both"
            ));
        }
        if self.body_limit_bytes == Some(0) {
            problems.push(format!("{key}.body_limit_bytes: must be greater than 0"));
        }
        let has_secret = self.secret.is_some() || self.secret_file.is_some();
        match self.kind {
            ProviderKind::Bridge => {
                if self.auth.is_some() {
                    problems.push(format!(
                        "{key}.auth: bridge sources are authenticated by their BridgeApi-Signature; remove `auth`"
                    ));
                }
                if self.username.is_some() {
                    problems.push(format!(
                        "{key}.username: only linxo sources with auth = \"basic\" take a username"
                    ));
                }
                if !has_secret {
                    problems.push(format!(
                        "{key}.secret: a bridge source needs its webhook secret (`secret` or `secret_file`)"
                    ));
                }
            }
            ProviderKind::Linxo => match self.auth {
                None => problems.push(format!(
                    "{key}.auth: required for linxo sources; one of \"basic\", \"bearer\", \"none\""
                )),
                Some(AuthMode::Basic) => {
                    if self.username.as_deref().unwrap_or("").is_empty() {
                        problems.push(format!("{key}.username: required with auth = \"basic\""));
                    }
                    if !has_secret {
                        problems.push(format!(
                            "{key}.secret: required with auth = \"basic\" (the password)"
                        ));
                    }
                }
                Some(AuthMode::Bearer) => {
                    if self.username.is_some() {
                        problems.push(format!("{key}.username: only used with auth = \"basic\""));
                    }
                    if !has_secret {
                        problems.push(format!(
                            "{key}.secret: required with auth = \"bearer\" (the token)"
                        ));
                    }
                }
                Some(AuthMode::None) => {
                    if has_secret || self.username.is_some() {
                        problems.push(format!(
                            "{key}: auth = \"none\" takes no `username` or `secret`"
                        ));
                    }
                }
            },
        }
    }

    /// The accepted secrets, current first, with files read.
    pub fn resolve_secrets(&self, name: &str) -> Result<Vec<Secret>, ConfigError> {
        let read = |key: &str, inline: &Option<Secret>, file: &Option<PathBuf>| {
            secret::resolve(inline, file).map_err(|source| ConfigError::SecretFile {
                key: format!("sources.{name}.{key}_file"),
                path: file.clone().unwrap_or_default(),
                source,
            })
        };
        let current = read("secret", &self.secret, &self.secret_file)?;
        let previous = read(
            "previous_secret",
            &self.previous_secret,
            &self.previous_secret_file,
        )?;
        let secrets: Vec<Secret> = current.into_iter().chain(previous).collect();
        if secrets.iter().any(|secret| secret.expose().is_empty()) {
            return Err(ConfigError::Invalid(vec![format!(
                "sources.{name}.secret: an empty secret would accept anyone"
            )]));
        }
        Ok(secrets)
    }
}

#[cfg(test)]
mod tests;
