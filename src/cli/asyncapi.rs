//! `finhook asyncapi`: the topics finhook writes, described for their consumers as an AsyncAPI
//! 3.0 document generated from the effective configuration — every events topic (the default
//! and each route's), the dead-letter topic, and the registry's users and state topics when the
//! registry is on; the Kafka key, the `ce_` headers, the payload schemas and the Kafka bindings.
//!
//! The payload schemas are the ones in `schemas/` (JSON Schema), embedded as they are with a
//! `schemaFormat`, so the document and the tests' schema checks can never disagree.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::envelope::{AttributeHeaders, STRUCTURED_CONTENT_TYPE};
use crate::vocabulary::EventType;

const ENVELOPE_SCHEMA: &str = include_str!("../../schemas/envelope.schema.json");
const DEAD_LETTER_SCHEMA: &str = include_str!("../../schemas/dead-letter.schema.json");
const USER_RECORD_SCHEMA: &str = include_str!("../../schemas/user-record.schema.json");
/// The Kafka bindings' version (AsyncAPI bindings repository, kafka 0.5.0).
const KAFKA_BINDING_VERSION: &str = "0.5.0";
/// How the JSON Schemas of `schemas/` are declared inside the document.
const SCHEMA_FORMAT: &str = "application/schema+json;version=draft-07";

/// The AsyncAPI document for `config`, as pretty JSON with a final newline.
pub fn document(config: &Config) -> String {
    let mut text = serde_json::to_string_pretty(&build(config)).expect("JSON values serialize");
    text.push('\n');
    text
}

fn build(config: &Config) -> Value {
    let kafka = &config.kafka;
    let mut channels = Map::new();
    let mut operations = Map::new();
    // The default topic, then each route's topic once.
    let mut event_topics: Vec<(String, String)> = vec![(
        "events".to_owned(),
        format!(
            "Events no route claims (`kafka.topics.default`). {}",
            ORDERING
        ),
    )];
    let mut seen: BTreeSet<&str> = BTreeSet::from([kafka.topics.default.as_str()]);
    let mut addresses = vec![kafka.topics.default.clone()];
    for (index, route) in kafka.routes.iter().enumerate() {
        if !seen.insert(route.topic.as_str()) {
            continue;
        }
        let matches = [
            route
                .type_prefix
                .as_deref()
                .map(|prefix| format!("types starting `{prefix}`")),
            route
                .provider
                .map(|provider| format!("provider `{provider}`")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" and ");
        event_topics.push((
            format!("route{index}"),
            format!("Events of {matches} (`kafka.routes[{index}]`). {ORDERING}"),
        ));
        addresses.push(route.topic.clone());
    }
    for ((id, description), address) in event_topics.into_iter().zip(addresses) {
        channels.insert(
            id.clone(),
            channel(&address, &description, "envelope", &config.registry),
        );
        operations.insert(
            format!("publish_{id}"),
            json!({
                "action": "send",
                "summary": "finhook publishes each event once Kafka acknowledged it (idempotent producer, acks=all), then answers the provider.",
                "channel": {"$ref": format!("#/channels/{id}")},
                "messages": [{"$ref": format!("#/channels/{id}/messages/envelope")}],
            }),
        );
    }
    channels.insert(
        "deadLetter".to_owned(),
        channel(
            &kafka.topics.dead_letter,
            "Authenticated input finhook could not read, or that Kafka refused for good: the raw bytes as received, in a binary-mode CloudEvent. Never dropped; see docs/envelope.md, Dead-letter records.",
            "deadLetter",
            &config.registry,
        ),
    );
    operations.insert(
        "publish_deadLetter".to_owned(),
        json!({
            "action": "send",
            "channel": {"$ref": "#/channels/deadLetter"},
            "messages": [{"$ref": "#/channels/deadLetter/messages/deadLetter"}],
        }),
    );
    if config.registry.enabled {
        channels.insert(
            "registryUsers".to_owned(),
            channel(
                &config.registry.users_topic,
                "The users registry (compacted): one record per polled user, keyed by user id; a tombstone removes the user. Written by `finhook users` or your own services; read by every finhook replica.",
                "userRecord",
                &config.registry,
            ),
        );
        channels.insert(
            "registryState".to_owned(),
            channel(
                &config.registry.state_topic,
                "Queue state (compacted): each polled user's live Oxlin queue, so a replica taking the user over resumes it. finhook's own; consumers need not read it.",
                "queueState",
                &config.registry,
            ),
        );
        operations.insert(
            "consume_registryUsers".to_owned(),
            json!({
                "action": "receive",
                "summary": "Every replica reads the users registry in one consumer group (registry.group_id); partitions decide which replica polls which users.",
                "channel": {"$ref": "#/channels/registryUsers"},
                "messages": [{"$ref": "#/channels/registryUsers/messages/userRecord"}],
            }),
        );
        operations.insert(
            "publish_registryState".to_owned(),
            json!({
                "action": "send",
                "channel": {"$ref": "#/channels/registryState"},
                "messages": [{"$ref": "#/channels/registryState/messages/queueState"}],
            }),
        );
    }
    let servers = json!({
        "kafka": {
            "host": if kafka.embedded { "embedded".to_owned() } else { kafka.brokers.clone() },
            "protocol": "kafka",
            "description": "The Kafka cluster of `kafka.brokers` (bootstrap servers).",
        }
    });
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "finhook",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!("Open-banking provider events (webhooks and polled queues), verified and normalized into CloudEvents 1.0 on Kafka (structured mode, with {} also as `ce_` headers). Generated by `finhook asyncapi` from the configuration; the consumer guide is docs/envelope.md.", match kafka.attribute_headers {
                AttributeHeaders::All => "the attributes",
                AttributeHeaders::Required => "the required attributes (specversion, id, source, type)",
            }),
        },
        "servers": servers,
        "defaultContentType": STRUCTURED_CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages(kafka.attribute_headers),
            "schemas": {
                "envelope": embedded(ENVELOPE_SCHEMA),
                "deadLetterHeaders": embedded(DEAD_LETTER_SCHEMA),
                "userRecord": embedded(USER_RECORD_SCHEMA),
            },
        },
    })
}

const ORDERING: &str = "Keyed by the envelope's `partitionkey` (`{provider}:{connection id}` or a documented fallback): one connection's events are in order within this topic.";

/// A channel on `address` holding one kind of message.
fn channel(
    address: &str,
    description: &str,
    message: &str,
    registry: &crate::config::RegistryConfig,
) -> Value {
    let mut topic = json!({ "bindingVersion": KAFKA_BINDING_VERSION, "topic": address });
    if ["userRecord", "queueState"].contains(&message) {
        topic["partitions"] = json!(registry.partitions);
        topic["replicas"] = json!(registry.replication_factor);
        topic["topicConfiguration"] = json!({ "cleanup.policy": ["compact"] });
    }
    json!({
        "address": address,
        "description": description,
        "messages": { message: {"$ref": format!("#/components/messages/{message}")} },
        "bindings": { "kafka": topic },
    })
}

/// A schema of `schemas/` as AsyncAPI embeds a JSON Schema: its format and the schema itself
/// (without `$schema` and `$id`, which the format replaces).
fn embedded(text: &str) -> Value {
    let mut schema: Value = serde_json::from_str(text).expect("schemas/ holds valid JSON");
    if let Some(object) = schema.as_object_mut() {
        object.remove("$schema");
        object.remove("$id");
        // The files are 2020-12; the document declares draft-07, where a property's required
        // companions are `dependencies` (draft-07 tools ignore `dependentRequired`).
        if let Some(dependent) = object.remove("dependentRequired") {
            object.insert("dependencies".to_owned(), dependent);
        }
    }
    json!({ "schemaFormat": SCHEMA_FORMAT, "schema": schema })
}

fn string_key(description: &str) -> Value {
    json!({ "bindingVersion": KAFKA_BINDING_VERSION, "key": { "type": "string", "description": description } })
}

/// The headers every envelope record carries, whatever its event, with every attribute copied
/// into headers; with `kafka.attribute_headers = "required"`, the first five
/// ([`REQUIRED_ATTRIBUTE_HEADERS`]) and no other.
const ALWAYS_SENT_HEADERS: [&str; 11] = [
    "content-type",
    "ce_specversion",
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_datacontenttype",
    "ce_provider",
    "ce_providertype",
    "ce_ingress",
    "ce_partitionkey",
    "ce_receivedtime",
];

/// `content-type` and CloudEvents' required attributes: what `attribute_headers = "required"`
/// writes.
const REQUIRED_ATTRIBUTE_HEADERS: usize = 5;

fn messages(attribute_headers: AttributeHeaders) -> Value {
    let types: Vec<&str> = EventType::ALL.iter().map(|kind| kind.as_str()).collect();
    let mut header_properties = Map::new();
    header_properties.insert(
        "content-type".to_owned(),
        json!({ "const": STRUCTURED_CONTENT_TYPE }),
    );
    for (name, description) in [
        ("ce_specversion", "Always 1.0."),
        (
            "ce_id",
            "The event id: the provider's, or derived from its bytes.",
        ),
        ("ce_source", "finhook://{provider}/{source name}"),
        ("ce_type", "The canonical type (io.finhook.…)."),
        ("ce_datacontenttype", "application/json"),
        ("ce_provider", "The provider's kind."),
        ("ce_providertype", "The provider's own event name."),
        ("ce_ingress", "webhook or queue"),
        ("ce_partitionkey", "The record key."),
        ("ce_receivedtime", "When finhook received it (RFC 3339)."),
        ("ce_subject", "The connection id, when there is one."),
        (
            "ce_time",
            "The provider's event time (RFC 3339), when it gives one.",
        ),
        ("ce_connectionid", "When known."),
        ("ce_userid", "When known."),
        ("ce_channelid", "Linxo's channel_definition_id."),
        ("ce_reason", "Why a sync failed or needs the user."),
        ("ce_providerstatus", "The provider's status, verbatim."),
        ("ce_accountcount", "Linxo: accounts on the connection."),
        (
            "ce_accountstruncated",
            "Linxo: true when the event left accounts out.",
        ),
        (
            "ce_newtransactions",
            "Whether the sync brought new transactions.",
        ),
        (
            "ce_dataprotection",
            "The personal-data policy applied to data, when one was.",
        ),
    ] {
        header_properties.insert(
            name.to_owned(),
            json!({ "type": "string", "description": description }),
        );
    }
    header_properties["ce_type"]["enum"] = json!(types);
    let always_sent = match attribute_headers {
        AttributeHeaders::All => &ALWAYS_SENT_HEADERS[..],
        AttributeHeaders::Required => {
            let required = &ALWAYS_SENT_HEADERS[..REQUIRED_ATTRIBUTE_HEADERS];
            header_properties.retain(|name, _| required.contains(&name.as_str()));
            required
        }
    };
    json!({
        "envelope": {
            "name": "envelope",
            "title": "A finhook event (CloudEvents 1.0, structured mode)",
            "summary": "One provider event. The envelope is the same for every canonical type; `type` says which, `data` is the provider's payload as received (or, when `dataprotection` is set, with that policy's fields redacted, pseudonymized or encrypted).",
            "contentType": STRUCTURED_CONTENT_TYPE,
            "headers": {
                "type": "object",
                "required": always_sent,
                "properties": header_properties,
            },
            "payload": {"$ref": "#/components/schemas/envelope"},
            "bindings": { "kafka": string_key("The envelope's partitionkey: {provider}:{connection id}, or a documented fallback.") },
        },
        "deadLetter": {
            "name": "deadLetter",
            "title": "Input finhook could not use (CloudEvents binary mode)",
            "summary": "The record value is the raw input exactly as received (or empty, with ce_bodysize and ce_bodysha256, when even that was too large); the headers say where it came from and why.",
            "contentType": "application/octet-stream",
            "headers": {"$ref": "#/components/schemas/deadLetterHeaders"},
            "payload": { "type": "string", "format": "binary" },
            "bindings": { "kafka": string_key("The dead letter's id.") },
        },
        "userRecord": {
            "name": "userRecord",
            "title": "A polled user (credentials sealed with AES-256-GCM)",
            "contentType": "application/json",
            "payload": {"$ref": "#/components/schemas/userRecord"},
            "bindings": { "kafka": string_key("The Oxlin user id; a null value (tombstone) removes the user. Partitioned with murmur2 (the Java client's default).") },
        },
        "queueState": {
            "name": "queueState",
            "title": "A user's live Oxlin queue",
            "contentType": "application/json",
            "payload": {
                "type": "object",
                "required": ["version", "queue", "subscribed_at", "last_query_at"],
                "properties": {
                    "version": { "type": "integer" },
                    "queue": { "type": "string", "description": "The queue URL." },
                    "subscribed_at": { "type": "integer", "description": "Unix milliseconds." },
                    "last_query_at": { "type": "integer", "description": "Unix milliseconds." },
                },
            },
            "bindings": { "kafka": string_key("The Oxlin user id, in the same partition as its user record.") },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schemas_use_draft_07_keywords() {
        let envelope = embedded(ENVELOPE_SCHEMA);
        let schema = envelope["schema"].as_object().unwrap();
        assert!(!schema.contains_key("dependentRequired"));
        let original: Value = serde_json::from_str(ENVELOPE_SCHEMA).unwrap();
        assert_eq!(schema["dependencies"], original["dependentRequired"]);
        assert!(schema["dependencies"].get("subject").is_some());
        for text in [DEAD_LETTER_SCHEMA, USER_RECORD_SCHEMA] {
            let schema = embedded(text);
            assert!(schema["schema"].get("dependentRequired").is_none());
        }
    }
    use crate::envelope::{Envelope, Origin};
    use crate::vocabulary::{EventFacts, Ingress, ProviderKind};

    /// The documented headers are the ones an envelope writes: every optional attribute set,
    /// every header it emits is described (and `ce_type` keeps both its text and its values).
    #[test]
    fn every_header_an_envelope_writes_is_documented() {
        let mut facts = EventFacts::new(EventType::ConnectionSyncFailed, "CONNECTIONS.UPDATED");
        facts.provider_event_id = Some("e1".to_owned());
        facts.connection_id = Some("c1".to_owned());
        facts.user_id = Some("u1".to_owned());
        facts.channel_id = Some("ch1".to_owned());
        facts.time = Some(time::OffsetDateTime::UNIX_EPOCH);
        facts.reason = Some("FAILED".to_owned());
        facts.provider_status = Some("FAILED".to_owned());
        facts.account_count = Some(2);
        facts.accounts_truncated = Some(false);
        facts.new_transactions = Some(true);
        let origin = Origin::new(
            ProviderKind::new("linxo"),
            "l",
            Ingress::Webhook,
            time::OffsetDateTime::UNIX_EPOCH,
        );
        let mut envelope = Envelope::new(&origin, facts, b"{}", "{}");
        envelope.dataprotection = Some("p".to_owned());
        let messages = messages(AttributeHeaders::All);
        let documented = messages["envelope"]["headers"]["properties"]
            .as_object()
            .unwrap();
        let mut emitted = Vec::new();
        envelope.each_kafka_header(AttributeHeaders::All, |name, _| emitted.push(name));
        assert_eq!(emitted.len(), 22, "{emitted:?}");
        for name in emitted {
            assert!(documented.contains_key(name), "{name} is not documented");
        }
        assert!(documented["ce_type"]["description"].is_string());
        // What an envelope with no optional attribute still writes is what is required.
        let bare = EventFacts::new(EventType::Unmapped, "x");
        let mut always = Vec::new();
        let bare = Envelope::new(&origin, bare, b"{}", "{}");
        bare.each_kafka_header(AttributeHeaders::All, |name, _| always.push(name));
        assert_eq!(
            messages["envelope"]["headers"]["required"],
            json!(always),
            "required headers"
        );
        assert_eq!(
            documented["ce_type"]["enum"].as_array().unwrap().len(),
            EventType::ALL.len()
        );

        // With the required attributes only, the document describes exactly what is written,
        // from the envelope with every attribute set.
        let required = super::messages(AttributeHeaders::Required);
        let mut written = Vec::new();
        envelope.each_kafka_header(AttributeHeaders::Required, |name, _| written.push(name));
        assert_eq!(required["envelope"]["headers"]["required"], json!(written));
        let documented: Vec<&String> = required["envelope"]["headers"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(documented.len(), written.len(), "{documented:?}");
    }
}
