//! Limits and shutdown: slow clients are cut off, the in-flight cap answers 503 at once,
//! deep JSON is bounded, and a stop lets in-flight requests finish.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::fixture;
use crate::helpers::{read_topic, spawn_app, spawn_signed_post};

const LIMITS: &str = r#"
[server]
header_read_timeout = "300ms"
body_read_timeout = "300ms"
"#;

fn address(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

/// Reads what the server sends until it closes the connection (or 3 s pass).
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut received)).await;
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn a_client_slow_to_send_headers_is_cut_off_and_the_server_keeps_serving() {
    let app = spawn_app(LIMITS).await;
    let mut slow = TcpStream::connect(address(&app.webhook_url)).await.unwrap();
    slow.write_all(b"POST /webhooks/bridge HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut slow).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "connection held {:?}",
        started.elapsed()
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    app.assert_still_serving().await;
}

/// Whether the server closes `stream` within 3 s (reading whatever it sends first).
async fn closed_by_the_server(stream: &mut TcpStream) -> bool {
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut received))
        .await
        .is_ok()
}

#[tokio::test]
async fn a_connection_that_never_sends_a_request_is_closed() {
    let app = spawn_app(LIMITS).await;
    // Silent: nothing tells HTTP/1 from HTTP/2 yet, a wait hyper does not bound.
    let mut silent = TcpStream::connect(address(&app.webhook_url)).await.unwrap();
    // The HTTP/2 preface and an empty SETTINGS frame, then nothing: HTTP/2 has no idle timeout.
    let mut http2 = TcpStream::connect(address(&app.webhook_url)).await.unwrap();
    http2
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    // Half the preface: hyper-util still waits to tell the protocol.
    let mut partial = TcpStream::connect(address(&app.webhook_url)).await.unwrap();
    partial.write_all(b"PRI * HT").await.unwrap();
    assert!(closed_by_the_server(&mut silent).await, "silent");
    assert!(
        closed_by_the_server(&mut http2).await,
        "HTTP/2 preface only"
    );
    assert!(
        closed_by_the_server(&mut partial).await,
        "part of a preface"
    );
    app.assert_still_serving().await;
}

/// An HTTP/2 stream the client resets while its request waits ends the request: the
/// connection then counts as idle and is closed (a reset request used to count as under way for
/// ever, and the connection, one of `max_connections`, was never closed).
#[tokio::test]
async fn an_http2_connection_whose_request_was_reset_is_closed_once_idle() {
    // Kafka acknowledges after 1 s: the request is still waiting when the client resets it.
    let app = spawn_app(&format!("{LIMITS}\n[kafka]\nack_timeout = \"10s\"")).await;
    app.broker_round_trip(Duration::from_millis(1000));
    let stream = TcpStream::connect(address(&app.webhook_url)).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let connection = tokio::spawn(connection);
    let body = fixture("bridge/test-event.json");
    let request = hyper::Request::post(format!("{}/webhooks/bridge", app.webhook_url))
        .header(
            "BridgeApi-Signature",
            crate::helpers::bridge_signature(&body),
        )
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let waiting = sender.send_request(request);
    // Dropped while finhook waits for Kafka: the client resets the stream.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), waiting)
            .await
            .is_err(),
        "answered before Kafka acknowledged"
    );
    let closed = tokio::time::timeout(Duration::from_secs(5), connection).await;
    assert!(closed.is_ok(), "the connection was closed by finhook");
    drop(sender);
    app.assert_still_serving().await;
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_once_idle_and_not_while_a_request_waits() {
    // Kafka acknowledges after 1 s, longer than the idle timeout (300 ms): the connection must
    // stay open for the answer.
    let app = spawn_app(&format!("{LIMITS}\n[kafka]\nack_timeout = \"10s\"")).await;
    app.broker_round_trip(Duration::from_millis(1000));
    let body = fixture("bridge/test-event.json");
    let signature = crate::helpers::bridge_signature(&body);
    let mut kept = TcpStream::connect(address(&app.webhook_url)).await.unwrap();
    let head = format!(
        "POST /webhooks/bridge HTTP/1.1\r\nHost: x\r\nBridgeApi-Signature: {signature}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    kept.write_all(head.as_bytes()).await.unwrap();
    kept.write_all(&body).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), kept.read(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Kept alive after the answer, then closed for idleness.
    assert!(closed_by_the_server(&mut kept).await, "idle keep-alive");
}

#[tokio::test]
async fn beyond_max_connections_a_connection_waits_until_one_closes() {
    let app = spawn_app("[server]\nmax_connections = 1\nheader_read_timeout = \"5s\"").await;
    let holder = TcpStream::connect(address(&app.webhook_url)).await.unwrap();
    // Accepted by the kernel, but finhook takes it only once the holder is gone.
    let waiting = tokio::spawn({
        let url = app.webhook_url.clone();
        async move {
            reqwest::Client::new()
                .get(format!("{url}/webhooks/bridge"))
                .send()
                .await
                .map(|response| response.status().as_u16())
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "served beyond max_connections");
    drop(holder);
    let status = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once the first connection closed")
        .unwrap()
        .unwrap();
    assert_eq!(status, 405);
}

#[tokio::test]
async fn a_client_slow_to_send_its_body_gets_408() {
    let app = spawn_app(LIMITS).await;
    let mut slow = TcpStream::connect(address(&app.webhook_url)).await.unwrap();
    slow.write_all(
        b"POST /webhooks/bridge HTTP/1.1\r\nHost: x\r\nBridgeApi-Signature: v1=00\r\nContent-Length: 100\r\n\r\n{\"type\":",
    )
    .await
    .unwrap();
    let answer = read_until_closed(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            r#"finhook_webhook_requests_total{outcome="request_timeout",source="bridge"} 1"#
        ),
        "{metrics}"
    );
    app.assert_still_serving().await;
}

#[tokio::test]
async fn beyond_the_in_flight_cap_requests_get_503_at_once() {
    let app = spawn_app("[server]\nmax_in_flight = 2\n[kafka]\nack_timeout = \"5s\"").await;
    // A slow broker holds the first two requests while they wait for their acknowledgements.
    app.broker_round_trip(Duration::from_millis(1500));
    let body = fixture("bridge/item-created.json");
    let first = spawn_signed_post(&app.webhook_url, body.clone());
    let second = spawn_signed_post(&app.webhook_url, body.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let third = app.post_bridge(&body).await;
    assert_eq!(third.status(), 503);
    assert!(third.headers().contains_key("retry-after"));
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "refused at once, not queued"
    );
    assert_eq!(first.await.unwrap(), 200);
    assert_eq!(second.await.unwrap(), 200);
    app.broker_round_trip(Duration::ZERO);
    assert_eq!(
        app.post_bridge(&body).await.status(),
        200,
        "capacity is back"
    );
    assert!(app
        .metrics()
        .await
        .contains(r#"finhook_webhook_requests_total{outcome="overloaded",source="bridge"} 1"#));
}

#[tokio::test]
async fn deeply_nested_json_is_bounded_and_dead_lettered() {
    let app = spawn_app("").await;
    let depth = 100_000;
    let mut nested = String::from(r#"{"type":"item.created","content":"#);
    nested.push_str(&"[".repeat(depth));
    nested.push_str(&"]".repeat(depth));
    nested.push('}');
    let response = app.post_bridge(nested.as_bytes()).await;
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "dead_lettered");
    assert_eq!(answer["reason"], "invalid_json");
    app.assert_still_serving().await;
}

#[tokio::test]
async fn stop_turns_readiness_off_lets_in_flight_requests_finish_and_refuses_new_ones() {
    // Each broker round trip takes 1.5 s below: the ack timeout leaves room for a few, so a
    // loaded CI machine does not turn the in-flight request into a 503.
    let app = spawn_app("[kafka]\nack_timeout = \"10s\"").await;
    let kafka = app.kafka.clone().unwrap();
    kafka
        .set_round_trip_time(1, Duration::from_millis(1500))
        .unwrap();
    let in_flight = spawn_signed_post(&app.webhook_url, fixture("bridge/item-created.json"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let webhook_url = app.webhook_url.clone();
    let bootstrap = app.bootstrap.clone();
    let ops_url = app.ops_url.clone();
    let stopping = tokio::spawn(app.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = reqwest::get(format!("{ops_url}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503, "not ready while draining");
    let refused = reqwest::Client::new()
        .post(format!("{webhook_url}/webhooks/bridge"))
        .body("{}")
        .send()
        .await;
    assert!(refused.is_err(), "the listener is closed");
    assert_eq!(
        in_flight.await.unwrap(),
        200,
        "the in-flight request finished"
    );
    stopping.await.unwrap().expect("clean stop");
    // What was answered 200 is on Kafka (the test still holds the mock cluster).
    kafka.set_round_trip_time(1, Duration::ZERO).unwrap();
    let records = read_topic(&bootstrap, "finhook.events", 1, Duration::from_secs(10)).await;
    assert_eq!(records.len(), 1);
}

#[tokio::test]
async fn a_request_head_over_the_limit_is_answered_431_and_a_normal_one_passes() {
    // The shipped default (32 KiB), not a limit set by the test.
    let app = spawn_app("").await;
    let body = fixture("bridge/test-event.json");
    let signature = crate::helpers::bridge_signature(&body);
    // 200 KB of headers used to be read and answered 200.
    let mut huge = TcpStream::connect(address(&app.webhook_url)).await.unwrap();
    let padding = "p".repeat(200_000);
    let request = format!(
        "POST /webhooks/bridge HTTP/1.1\r\nHost: x\r\nX-Padding: {padding}\r\nBridgeApi-Signature: {signature}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    // The server may close while we still write: only its answer matters.
    let _ = huge.write_all(request.as_bytes()).await;
    let answer = read_until_closed(&mut huge).await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "answered: {:?}",
        answer.lines().next()
    );
    // Headers a little under the limit are fine.
    let response = app
        .post("bridge")
        .header("BridgeApi-Signature", signature)
        .header("x-padding", "p".repeat(24_000))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.assert_still_serving().await;
}
