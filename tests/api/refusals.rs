//! Records Kafka can never take: the producer is configured with a small `message.max.bytes`
//! (and body limits that fit it, as check-config demands), and events whose envelope outgrows
//! it are diverted to the dead-letter topic rather than answered 503 forever.

use std::time::Duration;

use rdkafka::types::RDKafkaRespErr;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::common::DeadLetterSchema;
use crate::helpers::{read_topic, spawn_app, TestApp};

const WAIT: Duration = Duration::from_secs(10);

/// A producer that takes records up to 60,000 bytes, and bodies up to 40,000 (which, with the
/// 16 KiB envelope allowance, fits).
const SMALL_RECORDS: &str = r#"
[server]
body_limit_bytes = 40000
max_header_bytes = 65536
[kafka.properties]
"message.max.bytes" = 60000
"#;

/// A signed Bridge event of about `size` bytes whose `type` is long: the envelope carries the
/// type twice more (attribute and header), so it outgrows a record the raw body fits in.
fn bridge_event_with_a_long_type(size: usize) -> Vec<u8> {
    let long_type = "x".repeat(size - 100);
    serde_json::to_vec(&json!({
        "type": long_type,
        "timestamp": 1612782588323u64,
        "content": { "item_id": 1, "user_uuid": "u" }
    }))
    .unwrap()
}

/// The dead-letter topic's records, each checked against schemas/dead-letter.schema.json.
async fn dead_letters(app: &TestApp, expected: usize) -> Vec<crate::helpers::Record> {
    let records = read_topic(&app.bootstrap, app.dead_letter_topic(), expected, WAIT).await;
    let schema = DeadLetterSchema::load();
    for record in &records {
        schema.assert_valid(&record.headers);
    }
    records
}

#[tokio::test]
async fn an_envelope_too_large_for_kafka_is_dead_lettered_with_its_raw_body_not_retried() {
    let app = spawn_app(SMALL_RECORDS).await;
    let body = bridge_event_with_a_long_type(25_000);
    let response = app.post_bridge(&body).await;
    assert_eq!(response.status(), 200, "not a 503: retrying cannot help");
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "dead_lettered");
    assert_eq!(answer["reason"], "record_too_large");

    let letters = dead_letters(&app, 1).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].value, body, "the raw body, byte for byte");
    assert_eq!(letters[0].header("ce_reason"), "record_too_large");
    assert_eq!(letters[0].header("ce_type"), "io.finhook.deadletter");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"finhook_publish_failures_total{reason="too_large",record="event"} 1"#),
        "{metrics}"
    );
    assert!(metrics
        .contains(r#"finhook_dead_letters_total{reason="record_too_large",source="bridge"} 1"#));
    app.assert_still_serving().await;
}

#[tokio::test]
async fn a_dead_letter_too_large_with_the_requests_headers_keeps_the_body_without_them() {
    let app = spawn_app(SMALL_RECORDS).await;
    let body = bridge_event_with_a_long_type(30_000);
    // The request's own headers travel with a dead letter: with these it cannot fit, without
    // them it does. Before, the body was dropped for a digest and the answer was 413.
    let response = app
        .post("bridge")
        .header(
            "BridgeApi-Signature",
            crate::helpers::bridge_signature(&body),
        )
        .header("x-padding", "p".repeat(40_000))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "dead_lettered");

    let letters = dead_letters(&app, 1).await;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.value, body, "the raw body, byte for byte");
    assert_eq!(letter.header("ce_reason"), "record_too_large");
    assert!(!letter.headers.contains_key("http_x-padding"));
    assert!(!letter.headers.contains_key("ce_bodysize"));
    app.assert_still_serving().await;
}

#[tokio::test]
async fn a_body_too_large_even_for_the_dead_letter_topic_leaves_its_digest_and_a_413() {
    let app = spawn_app(SMALL_RECORDS).await;
    // The broker refuses the event, its letter, and the letter without the request's headers
    // (a dead-letter topic with a smaller limit than the producer's); the digest passes.
    app.fail_next_produces(vec![
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
    ]);
    let body = bridge_event_with_a_long_type(10_000);
    let response = app.post_bridge(&body).await;
    assert_eq!(response.status(), 413);
    assert!(response.headers().get("retry-after").is_none());

    let letters = dead_letters(&app, 1).await;
    assert_eq!(letters.len(), 1, "one digest record");
    let letter = &letters[0];
    assert!(letter.value.is_empty(), "the body is left out");
    assert_eq!(letter.header("ce_reason"), "record_too_large");
    assert_eq!(letter.header("ce_bodysize"), body.len().to_string());
    assert_eq!(
        letter.header("ce_bodysha256"),
        hex::encode(Sha256::digest(&body))
    );
    assert!(!letter.headers.keys().any(|name| name.starts_with("http_")));
    app.assert_still_serving().await;
}

#[tokio::test]
async fn a_topic_kafka_refuses_diverts_events_to_the_dead_letter_topic() {
    let app = spawn_app(
        r#"
        [[kafka.routes]]
        provider = "linxo"
        topic = "finhook.forbidden"
        "#,
    )
    .await;
    app.forbid_topic("finhook.forbidden");
    let body = crate::common::fixture("linxo/connection-updated-2-accounts.json");
    let response = app.post_linxo(&body).await;
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "dead_lettered");
    assert_eq!(answer["reason"], "kafka_refused");
    let letters = dead_letters(&app, 1).await;
    assert_eq!(letters[0].value, body);
    assert_eq!(letters[0].header("ce_reason"), "kafka_refused");
    // Bridge events are routed elsewhere and still go through.
    app.assert_still_serving().await;
}

/// A batch's events diverted one by one keep which part of the batch each was, as the letter of
/// an unreadable event does: redrive reads each alone.
#[tokio::test]
async fn a_batch_event_kafka_refuses_is_diverted_as_that_event() {
    let app = spawn_app(
        r#"
        [sources.relay]
        kind = "hmac"
        secret = "relay-secret"
        header = "X-Relay-Signature"
        events_path = "events"
        [[kafka.routes]]
        provider = "hmac"
        topic = "finhook.forbidden"
        "#,
    )
    .await;
    app.forbid_topic("finhook.forbidden");
    let body = br#"{"events": [{"type": "a", "id": "e0"}, {"type": "b", "id": "e1"}]}"#;
    let response = app.post_signed("relay", body).await;
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["dead_lettered"], 2);
    let letters = dead_letters(&app, 2).await;
    assert_eq!(letters.len(), 2);
    for (index, event) in [
        r#"{"type": "a", "id": "e0"}"#,
        r#"{"type": "b", "id": "e1"}"#,
    ]
    .into_iter()
    .enumerate()
    {
        let letter = letters
            .iter()
            .find(|letter| letter.value == event.as_bytes())
            .unwrap_or_else(|| panic!("{event} diverted on its own"));
        assert_eq!(letter.header("ce_reason"), "kafka_refused");
        assert_eq!(letter.header("ce_batch"), "event");
        assert_eq!(letter.header("ce_batchindex"), index.to_string());
    }
}

#[tokio::test]
async fn a_broker_refusing_a_record_as_too_large_gets_it_dead_lettered() {
    // The producer would take it; the broker (a topic with a smaller max.message.bytes) does not.
    let app = spawn_app("").await;
    app.fail_next_produces(vec![RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE]);
    let body = crate::common::fixture("linxo/connection-updated-2-accounts.json");
    let response = app.post_linxo(&body).await;
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "dead_lettered");
    assert_eq!(answer["reason"], "record_too_large");
    let letters = dead_letters(&app, 1).await;
    assert_eq!(letters[0].value, body);
    app.assert_still_serving().await;
}

const BATCH_SOURCE: &str = r#"
[sources.relay]
kind = "hmac"
secret = "relay-secret"
header = "X-Relay-Signature"
events_path = "events"
event_id_path = "id"
connection_id_path = "customer"
"#;

/// An event of a batch that Kafka keeps only as a size and digest is not stored: the sender is
/// told so (413), as for a single event, not "accepted".
#[tokio::test]
async fn a_batch_event_kafka_keeps_only_as_a_digest_is_not_answered_accepted() {
    let app = spawn_app(BATCH_SOURCE).await;
    // The event, then its dead letter with the body (with and without the request's headers),
    // refused as too large by the broker; the letter without the body passes.
    app.fail_next_produces(vec![
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
    ]);
    let body = br#"{"events": [{"type": "a", "id": "e0", "customer": "c1"}]}"#;
    let response = app.post_signed("relay", body).await;
    assert_eq!(response.status(), 413);
    let letters = dead_letters(&app, 1).await;
    assert_eq!(letters[0].header("ce_reason"), "record_too_large");
    assert!(letters[0].value.is_empty(), "only the size and digest");
    app.assert_still_serving().await;
}

/// A batch's events are handed to Kafka together, in the body's order: a sender that waits
/// 4 s gets its answer for 40 events of one connection on a broker that takes 0.5 s per
/// request (one after the other, they took 20 s), and they land in order.
#[tokio::test]
async fn a_batch_waits_for_its_acknowledgements_together_and_keeps_its_order() {
    let app = spawn_app(&format!("{BATCH_SOURCE}\n[kafka]\nack_timeout = \"3s\"")).await;
    app.broker_round_trip(Duration::from_millis(500));
    let events: Vec<String> = (0..40)
        .map(|index| format!(r#"{{"type": "a", "id": "e{index:02}", "customer": "c1"}}"#))
        .collect();
    let body = format!(r#"{{"events": [{}]}}"#, events.join(","));
    let response = tokio::time::timeout(
        Duration::from_secs(4),
        app.post_signed("relay", body.as_bytes()),
    )
    .await
    .expect("answered within the sender's 4 s");
    assert_eq!(response.status(), 200);
    app.broker_round_trip(Duration::ZERO);
    let records = read_topic(
        &app.bootstrap,
        app.default_topic(),
        40,
        Duration::from_secs(10),
    )
    .await;
    let ids: Vec<&str> = records
        .iter()
        .map(|record| record.header("ce_id"))
        .collect();
    let expected: Vec<String> = (0..40).map(|index| format!("e{index:02}")).collect();
    assert_eq!(ids, expected, "one connection's events in the body's order");
}

/// A batch body of more than finhook splits is kept whole on the dead-letter topic: one body
/// cannot make thousands of items (each dead letter a copy of the request's headers).
#[tokio::test]
async fn a_batch_of_too_many_events_is_one_dead_letter_kept_whole() {
    let app = spawn_app(BATCH_SOURCE).await;
    let events: Vec<String> = (0..=finhook::vocabulary::MAX_BATCH_EVENTS)
        .map(|index| format!(r#"{{"type": "a", "id": "e{index}", "customer": "c1"}}"#))
        .collect();
    let body = format!(r#"{{"events": [{}]}}"#, events.join(","));
    let response = app.post_signed("relay", body.as_bytes()).await;
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "dead_lettered");
    assert_eq!(answer["reason"], "too_many_events");
    let letters = dead_letters(&app, 1).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].value, body.as_bytes());
    assert_eq!(letters[0].header("ce_batch"), "whole");
    // One event fewer is split as usual.
    let events = &events[1..];
    let body = format!(r#"{{"events": [{}]}}"#, events.join(","));
    let response = app.post_signed("relay", body.as_bytes()).await;
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["ids"].as_array().unwrap().len(), events.len());
}
