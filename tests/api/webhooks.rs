//! The happy path: every fixture → 200 → exactly one valid envelope, keyed by connection.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::common::{webhook_fixtures, EnvelopeSchema};
use crate::helpers::{read_topic, spawn_app};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn every_fixture_is_published_once_keyed_by_connection_with_cloudevents_headers() {
    let app = spawn_app("").await;
    let schema = EnvelopeSchema::load();
    let mut answered: HashMap<String, (String, Vec<u8>)> = HashMap::new();
    for provider in ["bridge", "linxo"] {
        for fixture in webhook_fixtures(provider) {
            let (name, body) = (fixture.name, fixture.body);
            let response = match provider {
                "bridge" => app.post_bridge(&body).await,
                _ => app.post_linxo(&body).await,
            };
            assert_eq!(response.status(), 200, "{provider}/{name}");
            let answer: Value = response.json().await.unwrap();
            assert_eq!(answer["status"], "accepted", "{name}: {answer}");
            let id = answer["id"].as_str().unwrap().to_owned();
            answered.insert(format!("{provider}/{name}"), (id, body));
        }
    }
    // The two Linxo fixtures share the event id "abc123456" (as in Linxo's documentation), so
    // records are matched by id and source.
    let records = read_topic(&app.bootstrap, app.default_topic(), answered.len(), WAIT).await;
    assert_eq!(
        records.len(),
        answered.len(),
        "exactly one record per webhook"
    );

    for (what, (id, body)) in &answered {
        let provider = what.split('/').next().unwrap();
        let sent: Value = serde_json::from_slice(body).unwrap();
        let matching: Vec<_> = records
            .iter()
            .filter(|record| record.header("ce_id") == id && record.json()["data"] == sent)
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "{what}: one record with id {id} and its data"
        );
        let record = matching[0];
        let envelope = record.json();
        schema.assert_valid(&envelope, what);
        assert_eq!(envelope["provider"], provider);
        assert_eq!(
            record.key.as_deref(),
            envelope["partitionkey"].as_str(),
            "{what}: key"
        );
        if let Some(connection) = envelope["connectionid"].as_str() {
            assert_eq!(
                record.key.as_deref(),
                Some(format!("{provider}:{connection}").as_str())
            );
        }
        assert_eq!(
            record.header("content-type"),
            "application/cloudevents+json; charset=UTF-8"
        );
        for attribute in [
            "specversion",
            "id",
            "source",
            "type",
            "partitionkey",
            "providertype",
        ] {
            assert_eq!(
                Some(record.header(&format!("ce_{attribute}"))),
                envelope[attribute].as_str(),
                "{what}: ce_{attribute} header equals the attribute"
            );
        }
    }

    // One connection's events share a key, hence a partition, hence an order.
    let bridge_item: Vec<_> = records
        .iter()
        .filter(|record| record.key.as_deref() == Some("bridge:7654321"))
        .collect();
    assert_eq!(bridge_item.len(), 6);
    assert!(bridge_item
        .iter()
        .all(|record| record.partition == bridge_item[0].partition));
}

/// `kafka.attribute_headers = "required"`: the record carries `content-type` and CloudEvents'
/// four required attributes as headers and no other; the value is the whole envelope still.
#[tokio::test]
async fn required_attribute_headers_leave_the_rest_to_the_value() {
    let app = spawn_app("[kafka]\nattribute_headers = \"required\"").await;
    let body = crate::common::fixture("linxo/connection-updated-2-accounts.json");
    assert_eq!(app.post_linxo(&body).await.status(), 200);
    let records = read_topic(&app.bootstrap, app.default_topic(), 1, WAIT).await;
    let record = &records[0];
    let names: Vec<&str> = record.headers.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "ce_id",
            "ce_source",
            "ce_specversion",
            "ce_type",
            "content-type"
        ]
    );
    let envelope = record.json();
    EnvelopeSchema::load().assert_valid(&envelope, "linxo, required headers");
    for attribute in ["specversion", "id", "source", "type"] {
        assert_eq!(
            Some(record.header(&format!("ce_{attribute}"))),
            envelope[attribute].as_str()
        );
    }
    assert_eq!(record.key.as_deref(), envelope["partitionkey"].as_str());
    assert!(envelope["connectionid"].is_string() && envelope["accountcount"].is_number());
}

#[tokio::test]
async fn routes_send_event_families_to_their_topics() {
    let app = spawn_app(
        r#"
        [[kafka.routes]]
        type_prefix = "io.finhook.connection."
        topic = "t.connections"
        [[kafka.routes]]
        type_prefix = "io.finhook.payment."
        provider = "bridge"
        topic = "t.payments"
        "#,
    )
    .await;
    let fixture = |name: &str| crate::common::fixture(name);
    assert_eq!(
        app.post_bridge(&fixture("bridge/item-created.json"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post_bridge(&fixture("bridge/payment-transaction-updated.json"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post_bridge(&fixture("bridge/user-deleted.json"))
            .await
            .status(),
        200
    );

    let connections = read_topic(&app.bootstrap, "t.connections", 1, WAIT).await;
    let payments = read_topic(&app.bootstrap, "t.payments", 1, WAIT).await;
    let default = read_topic(&app.bootstrap, app.default_topic(), 1, WAIT).await;
    assert_eq!(connections.len(), 1);
    assert_eq!(
        connections[0].header("ce_type"),
        "io.finhook.connection.created"
    );
    assert_eq!(payments.len(), 1);
    assert_eq!(
        payments[0].header("ce_type"),
        "io.finhook.payment.transaction.updated"
    );
    assert_eq!(default.len(), 1);
    assert_eq!(default[0].header("ce_type"), "io.finhook.user.deleted");
}

#[tokio::test]
async fn previous_secret_is_accepted_during_rotation() {
    let app = spawn_app("").await;
    let body = crate::common::fixture("bridge/item-refreshed.json");
    let vectors: Value =
        serde_json::from_slice(&crate::common::fixture("bridge/signature-vectors.json")).unwrap();
    let response = app
        .post("bridge")
        .header(
            "BridgeApi-Signature",
            vectors["header_value_during_rotation"].as_str().unwrap(),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn metrics_count_requests_by_source_and_outcome() {
    let app = spawn_app("").await;
    let body = crate::common::fixture("bridge/test-event.json");
    assert_eq!(app.post_bridge(&body).await.status(), 200);
    let unsigned = app.post("bridge").body(body.clone()).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    let metrics = app.metrics().await;
    for line in [
        r#"finhook_webhook_requests_total{outcome="accepted",source="bridge"} 1"#,
        r#"finhook_webhook_requests_total{outcome="unauthorized",source="bridge"} 1"#,
        r#"finhook_webhook_requests_total{outcome="accepted",source="linxo"} 0"#,
        r#"finhook_events_published_total{ingress="webhook",provider="bridge",type="io.finhook.test"} 1"#,
        "finhook_kafka_ready 1",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
    }
    for histogram in [
        "finhook_webhook_request_duration_seconds_count",
        "finhook_kafka_ack_duration_seconds_count{record=\"event\"} 1",
        "finhook_event_lag_seconds_count{ingress=\"webhook\",provider=\"bridge\"} 1",
    ] {
        assert!(
            metrics.contains(histogram),
            "missing `{histogram}` in\n{metrics}"
        );
    }
}
