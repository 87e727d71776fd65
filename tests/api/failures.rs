//! Refusals and faults: each answered with its documented status, nothing unauthenticated in
//! Kafka, garbage dead-lettered, a broker outage answered 503 and recovered from.

use std::time::{Duration, Instant};

use crate::common::fixture;
use crate::helpers::{read_topic, spawn_app, spawn_app_unready, TestApp, RETRY_AFTER};

const WAIT: Duration = Duration::from_secs(10);
const NOTHING_WAIT: Duration = Duration::from_secs(2);

async fn assert_nothing_written(app: &TestApp) {
    let events = read_topic(&app.bootstrap, app.default_topic(), 0, NOTHING_WAIT).await;
    assert!(events.is_empty(), "events written: {events:?}");
    let letters = read_topic(&app.bootstrap, app.dead_letter_topic(), 0, NOTHING_WAIT).await;
    assert!(letters.is_empty(), "dead letters written: {letters:?}");
}

/// Posts `body` as a provider would retry it, every 100 ms while the answer is 503, until it is
/// accepted (or fails the test after `within`).
async fn retry_until_accepted(app: &TestApp, body: &[u8], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let status = app.post_bridge(body).await.status();
        if status == 200 {
            return;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "still refused after {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the metrics hold `series` (a whole `name value` line part) and /healthz answers
/// `healthz`: the health watcher records a fatal error and a replacement on its own schedule,
/// not on the request that met them.
async fn wait_for_health(app: &TestApp, series: &str, healthz: u16) {
    let deadline = Instant::now() + WAIT;
    loop {
        let metrics = app.metrics().await;
        if metrics.contains(series) && app.get_ops("/healthz").await.status() == healthz {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never saw {series} with /healthz {healthz}: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Has the broker answer the next produce request with OUT_OF_ORDER_SEQUENCE_NUMBER, which
/// librdkafka makes a fatal error of for an idempotent producer, and posts `body` into it: the
/// record is refused, answered 503 (returned for further checks).
async fn post_into_a_fatal_producer_error(app: &TestApp, body: &[u8]) -> reqwest::Response {
    app.fail_next_produces(vec![
        rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
    ]);
    let refused = app.post_bridge(body).await;
    assert_eq!(
        refused.status(),
        503,
        "the failed record is not acknowledged"
    );
    refused
}

#[tokio::test]
async fn bad_or_missing_signatures_are_401_and_write_nothing() {
    let app = spawn_app("").await;
    let body = fixture("bridge/item-refreshed.json");
    let vectors: serde_json::Value =
        serde_json::from_slice(&fixture("bridge/signature-vectors.json")).unwrap();
    let valid = vectors["header_value_current"].as_str().unwrap();
    let mut tampered = body.clone();
    tampered[10] ^= 1;

    let cases: Vec<(&str, Option<&str>, Vec<u8>)> = vec![
        ("no header", None, body.clone()),
        ("empty header", Some(""), body.clone()),
        ("garbled header", Some("v1=not-hex,,==,v1"), body.clone()),
        (
            "unknown scheme only",
            vectors["header_value_unknown_scheme_only"].as_str(),
            body.clone(),
        ),
        ("valid signature over another body", Some(valid), tampered),
        (
            "signature with another secret",
            Some("v1=00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF"),
            body.clone(),
        ),
    ];
    for (what, header, body) in cases {
        let mut request = app.post("bridge").body(body);
        if let Some(header) = header {
            request = request.header("BridgeApi-Signature", header);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{what}");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer["error"], "unauthorized", "{what}");
    }
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn linxo_without_the_right_credentials_is_401_and_writes_nothing() {
    let app = spawn_app("").await;
    let body = fixture("linxo/connection-updated-2-accounts.json");
    let none = app.post("linxo").body(body.clone()).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(none.headers().contains_key("www-authenticate"));
    let wrong = app
        .post("linxo")
        .basic_auth("linxo", Some("guess"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let bearer = app
        .post("linxo")
        .bearer_auth("linxo-test-password")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        bearer.status(),
        401,
        "a basic source does not take bearer tokens"
    );
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn unknown_source_wrong_method_and_huge_body_get_their_statuses() {
    let app = spawn_app(
        r#"
        [sources.small]
        kind = "linxo"
        auth = "none"
        body_limit_bytes = 64
        "#,
    )
    .await;
    let unknown = app.post("nope").body("{}").send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let traversal = app.post("..%2F..%2Fetc").body("{}").send().await.unwrap();
    assert_eq!(traversal.status(), 404);

    let get = app
        .client
        .get(format!("{}/webhooks/bridge", app.webhook_url))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");

    // Declared over the default 1 MiB; the body is held back until the answer can arrive
    // (finhook stops reading and closes after the 413, so a fast sender may see a reset). A
    // signature header gets it past the checks on headers (without one: 401, unread).
    let declared_huge = app
        .post("bridge")
        .header("BridgeApi-Signature", "v1=00")
        .header("content-length", (1024 * 1024 + 1).to_string())
        .body(reqwest::Body::wrap_stream(futures::stream::once(async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, std::io::Error>(vec![b' '; 1024 * 1024 + 1])
        })))
        .send()
        .await
        .unwrap();
    assert_eq!(declared_huge.status(), 413, "over the default 1 MiB");
    assert_eq!(
        declared_huge.headers()["connection"],
        "close",
        "the unread body ends the connection"
    );

    let small = app.post("small").body(vec![b' '; 65]).send().await.unwrap();
    assert_eq!(small.status(), 413, "over the source's own limit");

    // A body without Content-Length is cut off at the limit too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(vec![b' '; 40]), Ok(vec![b' '; 40])];
    let streamed = app
        .post("small")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 413);

    let metrics = app.metrics().await;
    assert!(
        metrics
            .contains(r#"finhook_webhook_requests_total{outcome="not_found",source="unknown"} 2"#),
        "{metrics}"
    );
    assert!(!metrics.contains("nope"), "raw paths never become labels");
    // Still serving.
    app.assert_still_serving().await;
}

#[tokio::test]
async fn authenticated_garbage_goes_to_the_dead_letter_topic_with_its_raw_bytes() {
    let app = spawn_app("").await;
    let garbage = b"{\"type\": \"item.created\", \"content\": {\"item_id\": 1".to_vec();
    let response = app.post_bridge(&garbage).await;
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "dead_lettered");
    assert_eq!(answer["reason"], "invalid_json");

    let no_id = br#"{"event_type":"UPDATED","resource_type":"CONNECTIONS"}"#;
    let response = app.post_linxo(no_id).await;
    assert_eq!(response.status(), 200);

    let letters = read_topic(&app.bootstrap, app.dead_letter_topic(), 2, WAIT).await;
    assert_eq!(letters.len(), 2);
    let schema = crate::common::DeadLetterSchema::load();
    for letter in &letters {
        schema.assert_valid(&letter.headers);
    }
    let bridge = letters
        .iter()
        .find(|letter| letter.header("ce_provider") == "bridge")
        .unwrap();
    assert_eq!(bridge.value, garbage, "raw bytes, unchanged");
    assert_eq!(bridge.header("ce_type"), "io.finhook.deadletter");
    assert_eq!(bridge.header("ce_reason"), "invalid_json");
    assert_eq!(bridge.header("ce_id"), answer["id"].as_str().unwrap());
    assert!(bridge.headers.contains_key("http_bridgeapi-signature"));

    let linxo = letters
        .iter()
        .find(|letter| letter.header("ce_provider") == "linxo")
        .unwrap();
    assert_eq!(linxo.value, no_id);
    assert_eq!(linxo.header("ce_reason"), "missing_field");
    assert!(linxo.header("ce_reasondetail").contains("`id`"));
    assert!(
        !linxo
            .headers
            .keys()
            .any(|name| name.contains("authorization")),
        "credentials are never copied: {:?}",
        linxo.headers
    );
    assert_eq!(linxo.header("http_content-type"), "application/json");

    let events = read_topic(&app.bootstrap, app.default_topic(), 0, NOTHING_WAIT).await;
    assert!(events.is_empty());
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"finhook_dead_letters_total{reason="invalid_json",source="bridge"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn broker_outage_is_503_with_retry_after_within_the_bounded_wait_then_recovers() {
    let app = spawn_app("[kafka]\nack_timeout = \"1s\"").await;
    let kafka = app.kafka.clone().unwrap();
    let body = fixture("bridge/item-created.json");
    assert_eq!(app.post_bridge(&body).await.status(), 200);

    kafka.broker_down(1).unwrap();
    let started = Instant::now();
    let response = app.post_bridge(&fixture("bridge/item-deleted.json")).await;
    let waited = started.elapsed();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], RETRY_AFTER);
    assert!(
        waited < Duration::from_secs(3),
        "answered after {waited:?}, beyond the 1 s bound"
    );
    app.wait_ready(false).await;
    let refused = app.post_bridge(&body).await;
    assert_eq!(refused.status(), 503, "not ready: refused at once");
    let answer: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(answer["error"], "unavailable");
    let garbage = app.post_bridge(b"{garbage").await;
    assert_eq!(
        garbage.status(),
        503,
        "a dead letter that cannot be written is a 503 too"
    );

    kafka.broker_up(1).unwrap();
    app.wait_ready(true).await;
    // The producer reconnects on its own schedule; a provider would simply retry its 503s.
    retry_until_accepted(
        &app,
        &fixture("bridge/item-deleted.json"),
        Duration::from_secs(15),
    )
    .await;
    let events = read_topic(&app.bootstrap, app.default_topic(), 2, WAIT).await;
    let types: Vec<&str> = events.iter().map(|event| event.header("ce_type")).collect();
    assert!(types.contains(&"io.finhook.connection.created"));
    assert!(
        types.contains(&"io.finhook.connection.deleted"),
        "{types:?}"
    );
}

/// A fatal producer error (here the sequence desynchronization librdkafka raises when the broker
/// answers the head-of-line request with OUT_OF_ORDER_SEQUENCE_NUMBER) used to leave the process
/// answering 503 until it was restarted; now the producer is replaced and serving resumes.
#[tokio::test]
async fn a_producer_that_failed_fatally_is_replaced_and_webhooks_go_through_again() {
    let app = spawn_app("[kafka]\nack_timeout = \"2s\"").await;
    assert_eq!(
        app.post_bridge(&fixture("bridge/item-created.json"))
            .await
            .status(),
        200
    );

    let refused =
        post_into_a_fatal_producer_error(&app, &fixture("bridge/item-deleted.json")).await;
    assert_eq!(refused.headers()["retry-after"], RETRY_AFTER);

    retry_until_accepted(&app, &fixture("bridge/item-deleted.json"), WAIT).await;
    wait_for_health(&app, "finhook_kafka_producer_replacements_total 1", 200).await;
    assert!(app.metrics().await.contains("finhook_kafka_fatal_error 0"));
    let events = read_topic(&app.bootstrap, app.default_topic(), 2, WAIT).await;
    let types: Vec<&str> = events.iter().map(|event| event.header("ce_type")).collect();
    assert!(
        types.contains(&"io.finhook.connection.deleted"),
        "{types:?}"
    );
}

/// A cause that outlives the producer fails each new one at once; replacements are spaced
/// (10 s) so that it does not become a loop of client builds. Real time: about 11 s.
#[tokio::test]
async fn a_producer_failing_fatally_again_is_replaced_only_after_the_spacing() {
    let app = spawn_app("[kafka]\nack_timeout = \"2s\"\nhealth_interval = \"200ms\"").await;
    post_into_a_fatal_producer_error(&app, &fixture("bridge/item-created.json")).await;
    retry_until_accepted(&app, &fixture("bridge/item-created.json"), WAIT).await;
    let first_replaced = Instant::now();
    wait_for_health(&app, "finhook_kafka_producer_replacements_total 1", 200).await;

    let body = fixture("bridge/item-deleted.json");
    post_into_a_fatal_producer_error(&app, &body).await;
    // Within the spacing the failed replacement stays in place: fatal, /healthz failing, and
    // still one replacement after several probes.
    wait_for_health(&app, "finhook_kafka_fatal_error 1", 503).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(app.get_ops("/healthz").await.status(), 503);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("finhook_kafka_producer_replacements_total 1"),
        "{metrics}"
    );

    retry_until_accepted(&app, &body, Duration::from_secs(20)).await;
    assert!(
        first_replaced.elapsed() >= Duration::from_secs(9),
        "replaced again after {:?}",
        first_replaced.elapsed()
    );
    wait_for_health(&app, "finhook_kafka_producer_replacements_total 2", 200).await;
}

#[tokio::test]
async fn unreachable_kafka_at_start_is_alive_not_ready_and_answers_503() {
    let app = spawn_app_unready("[kafka]\nembedded = false\nbrokers = \"127.0.0.1:1\"").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.get_ops("/healthz").await.status(), 200);
    assert_eq!(app.get_ops("/readyz").await.status(), 503);
    let started = Instant::now();
    let response = app.post_bridge(&fixture("bridge/test-event.json")).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], RETRY_AFTER);
    assert!(started.elapsed() < Duration::from_secs(1));
    // Authentication still comes first.
    let unsigned = app.post("bridge").body("{}").send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    assert!(app.metrics().await.contains("finhook_kafka_ready 0"));
}

#[tokio::test]
async fn allowlisted_source_refuses_other_addresses_and_trusts_only_configured_proxies() {
    let app = spawn_app(
        r#"
        [sources.bridge]
        allowed_ips = ["63.32.31.5"]
        "#,
    )
    .await;
    let body = fixture("bridge/test-event.json");
    let direct = app.post_bridge(&body).await;
    assert_eq!(direct.status(), 403, "127.0.0.1 is not allowed");
    let forged = app
        .post("bridge")
        .header("x-forwarded-for", "63.32.31.5")
        .header(
            "BridgeApi-Signature",
            crate::helpers::bridge_signature(&body),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        forged.status(),
        403,
        "X-Forwarded-For from an untrusted peer is ignored"
    );

    let proxied = spawn_app(
        r#"
        [server]
        trusted_proxies = ["127.0.0.1"]
        [sources.bridge]
        allowed_ips = ["63.32.31.5"]
        "#,
    )
    .await;
    let through_proxy = proxied
        .post("bridge")
        .header("x-forwarded-for", "63.32.31.5")
        .header(
            "BridgeApi-Signature",
            crate::helpers::bridge_signature(&body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(through_proxy.status(), 200);
}

#[tokio::test]
async fn shutdown_finishes_cleanly() {
    let app = spawn_app("").await;
    app.assert_still_serving().await;
    app.stop().await.expect("clean shutdown");
}

/// Refusal lines name their source, and each source has its own throttle: a flood of bad
/// signatures on one source (anyone can send them) does not hide the first refusal on another.
#[tokio::test]
async fn refusals_are_logged_per_source_and_one_source_does_not_silence_another() {
    let broker = crate::process::Broker::start();
    let directory = tempfile::tempdir().unwrap();
    let log = directory.path().join("finhook.log");
    let linxo = r#"
        [sources.linxo]
        kind = "linxo"
        auth = "basic"
        username = "linxo"
        secret = "linxo-password"
        "#;
    let daemon = crate::process::Daemon::start_logging(&broker.bootstrap, linxo, Some(&log)).await;
    let client = reqwest::Client::new();
    let body = fixture("linxo/connection-updated-2-accounts.json");
    for _ in 0..5 {
        let refused = client
            .post(format!("{}/webhooks/bridge", daemon.webhooks))
            .header("BridgeApi-Signature", "v1=00")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401);
    }
    let refused = client
        .post(format!("{}/webhooks/linxo", daemon.webhooks))
        .basic_auth("linxo", Some("wrong"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let logs = std::fs::read_to_string(&log).unwrap();
    let warned: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["level"] == "WARN" && line["message"] == "webhook refused")
        .collect();
    let sources: Vec<&str> = warned
        .iter()
        .map(|line| line["source"].as_str().unwrap_or("no source"))
        .collect();
    // Five Bridge refusals in quick succession: one line a second, the rest throttled (debug).
    // Linxo's refusal is its own first, whatever Bridge's throttle says.
    assert_eq!(sources.first(), Some(&"bridge"), "{logs}");
    assert!(sources.contains(&"linxo"), "{sources:?}");
    let bridge_lines = sources.iter().filter(|source| **source == "bridge").count();
    assert!(bridge_lines < 5, "not throttled: {sources:?}");
    assert!(!sources.contains(&"no source"), "{sources:?}");
}
