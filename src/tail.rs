//! `finhook tail`: print what finhook published, one JSON object per line.
//!
//! Structured-mode records (envelopes) print as they are. Binary-mode records (dead letters)
//! are turned into the same structured JSON form: `ce_*` headers become attributes and the
//! value becomes `data` (JSON), or `data_base64` when it is not UTF-8 text.

use std::io::Write;
use std::time::Duration;

use base64::Engine;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Map, Value};

use crate::config::Config;

/// Prints `topic`'s records from the beginning (or only new ones), up to `limit`, through the
/// brokers and security properties of `config` (`brokers` overrides its brokers).
pub fn run(
    config: &Config,
    brokers: Option<String>,
    topic: &str,
    only_new: bool,
    limit: Option<usize>,
) -> anyhow::Result<()> {
    let brokers = crate::kafka::command_brokers(config, brokers)?;
    let properties = config.resolve_kafka_properties()?;
    let consumer: BaseConsumer = crate::kafka::shared_client_config(&brokers, &properties)
        .set("group.id", "finhook-tail")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        // Whole producer batches in one fetch, however large finhook's batches grow.
        .set("max.partition.fetch.bytes", "52428800")
        .set("fetch.max.bytes", "104857600")
        .create()?;
    let partitions = crate::kafka::partition_count(&consumer, topic, &brokers)?;
    let start = if only_new {
        Offset::End
    } else {
        Offset::Beginning
    };
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, partition, start)?;
    }
    consumer.assign(&assignment)?;
    let mut stdout = std::io::stdout().lock();
    let mut printed = 0;
    while limit.is_none_or(|limit| printed < limit) {
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message?;
        let line = render(&message);
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
        printed += 1;
    }
    Ok(())
}

/// One record as a CloudEvents JSON line.
pub fn render<M: Message>(message: &M) -> String {
    let payload = message.payload().unwrap_or_default();
    let mut attributes = Map::new();
    let mut structured = false;
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            let value = String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned();
            if header.key == "content-type" {
                structured = value
                    .to_ascii_lowercase()
                    .starts_with("application/cloudevents");
                attributes.insert("datacontenttype".to_owned(), Value::String(value));
            } else if let Some(name) = header.key.strip_prefix("ce_") {
                attributes.insert(name.to_owned(), Value::String(value));
            }
        }
    }
    if structured {
        if let Ok(text) = std::str::from_utf8(payload) {
            return text.to_owned();
        }
    }
    match serde_json::from_slice::<Value>(payload) {
        Ok(data) => {
            attributes.insert("data".to_owned(), data);
        }
        Err(_) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(payload);
            attributes.insert("data_base64".to_owned(), Value::String(encoded));
        }
    }
    Value::Object(attributes).to_string()
}
