//! `[kafka]`: brokers, topics, routes and the librdkafka passthrough, and the checks that keep
//! every accepted body within one Kafka record.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

use super::{Config, ConfigError};
use crate::envelope::AttributeHeaders;
use crate::secret::{Secret, REDACTED};
use crate::vocabulary::ProviderKind;

/// Librdkafka settings finhook's guarantees rest on; the passthrough may not change them.
const PINNED_KAFKA_PROPERTIES: &[&str] = &["enable.idempotence", "acks", "request.required.acks"];

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
    /// Which attributes each event record also carries as `ce_` headers: `all` or `required`.
    #[serde(default)]
    pub attribute_headers: AttributeHeaders,
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
    /// A `[protection.policies]` name applied to the events this route takes, instead of their
    /// source's (e.g. a topic for analytics that gets every preset pseudonymized).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protect: Option<String>,
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

/// librdkafka's property for the largest record, and its default.
const MESSAGE_MAX_BYTES: &str = "message.max.bytes";
const LIBRDKAFKA_MESSAGE_MAX_BYTES: usize = 1_000_000;
/// Room kept for the envelope's attributes, its `ce_*` headers and the record's framing around
/// a body: the attributes are bounded except `providertype`, and a record that still does not
/// fit is diverted to the dead-letter topic.
pub const ENVELOPE_OVERHEAD_BYTES: usize = 16 * 1024;
pub fn check_topic_name(key: &str, topic: &str, problems: &mut Vec<String>) {
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

impl Config {
    pub(super) fn validate_kafka(&self, problems: &mut Vec<String>) {
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
}
