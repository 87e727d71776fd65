//! What finhook's Kafka clients other than the daemon's event producer share (the users
//! registry, `finhook tail`, `finhook redrive`, `finhook users`): which brokers a command talks
//! to, the `[kafka.properties]` every client needs (security, addresses), and a topic's
//! partitions.

use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::RDKafkaErrorCode;

use crate::config::Config;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// The brokers a command talks to: `given` (`--brokers`), else the configuration's. An
/// embedded broker lives inside the daemon, so a command cannot find it by itself.
pub fn command_brokers(config: &Config, given: Option<String>) -> anyhow::Result<String> {
    match given {
        Some(brokers) => Ok(brokers),
        None if config.kafka.embedded => {
            bail!("kafka.embedded runs inside the daemon: give --brokers (the address it logged)")
        }
        None => Ok(config.kafka.brokers.clone()),
    }
}

/// A client configuration for `bootstrap` with those of the `[kafka.properties]` that make
/// sense for every client (security, addresses); producer tuning (`linger.ms`, timeouts, ...) is
/// left out, so that consumers and admin clients are not handed producer settings.
pub fn shared_client_config(bootstrap: &str, properties: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    for (name, value) in properties {
        let shared = [
            "security.",
            "ssl.",
            "sasl.",
            "enable.ssl.",
            "enable.sasl.",
            "client.",
            "broker.",
            "socket.",
            "api.version.",
            "reconnect.",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix));
        if shared {
            config.set(name, value);
        }
    }
    config
}

/// How many partitions `topic` has. A missing topic is an error, not zero partitions: a typo in
/// a topic name or the wrong brokers would otherwise read as an empty topic.
pub fn partition_count<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    brokers: &str,
) -> anyhow::Result<i32> {
    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .with_context(|| format!("reading the metadata of topic {topic}"))?;
    let found = metadata.topics().first();
    // An error for the topic (not authorized, say) is reported as itself: only a topic the
    // brokers do not know is "missing".
    if let Some(error) = found.and_then(|found| found.error()) {
        let error = RDKafkaErrorCode::from(error);
        if error != RDKafkaErrorCode::UnknownTopicOrPartition {
            bail!("topic {topic} at {brokers}: {error}");
        }
    }
    found
        .filter(|found| found.error().is_none() && !found.partitions().is_empty())
        .map(|found| found.partitions().len() as i32)
        .with_context(|| format!("topic {topic} does not exist at {brokers}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_get_security_and_address_settings_but_no_producer_tuning() {
        let properties = [
            ("security.protocol", "SASL_SSL"),
            ("sasl.username", "finhook"),
            ("ssl.ca.location", "/ca.pem"),
            ("enable.ssl.certificate.verification", "false"),
            ("api.version.request", "false"),
            ("linger.ms", "1"),
            ("message.timeout.ms", "60000"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()));
        let config = shared_client_config("broker:9092", &properties);
        assert_eq!(config.get("bootstrap.servers"), Some("broker:9092"));
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("sasl.username"), Some("finhook"));
        assert_eq!(config.get("ssl.ca.location"), Some("/ca.pem"));
        assert_eq!(
            config.get("enable.ssl.certificate.verification"),
            Some("false")
        );
        assert_eq!(config.get("api.version.request"), Some("false"));
        assert_eq!(config.get("linger.ms"), None);
        assert_eq!(config.get("message.timeout.ms"), None);
    }
}
