//! Hostile input, table-driven, against every source kind: each case answered with its
//! documented status, the process healthy after all of them, nothing unauthenticated in Kafka.

use std::time::Duration;

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::common::fixture;
use crate::helpers::{read_topic, spawn_app, LINXO_PASSWORD, LINXO_USER};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Auth {
    /// Correct credentials or signature for the body sent.
    Valid,
    None,
    /// Raw header values (each becomes one header line).
    Headers(&'static [(&'static str, &'static str)]),
    /// A valid signature, but over another body.
    SignatureOfOtherBody,
}

struct Case {
    what: &'static str,
    source: &'static str,
    body: Vec<u8>,
    auth: Auth,
    content_type: &'static str,
    status: u16,
    /// `accepted` or `dead_lettered` for 200s.
    outcome: Option<&'static str>,
}

fn nested(depth: usize) -> Vec<u8> {
    format!(
        r#"{{"type":"x","content":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
    .into_bytes()
}

fn cases() -> Vec<Case> {
    let bridge = fixture("bridge/item-created.json");
    let linxo = fixture("linxo/connection-updated-2-accounts.json");
    let long_string = format!(
        r#"{{"type":"item.created","content":{{"item_id":1,"note":"{}"}}}}"#,
        "a".repeat(900_000)
    );
    let long_linxo = format!(
        r#"{{"id":"l","event_type":"UPDATED","resource_type":"CONNECTIONS","note":"{}"}}"#,
        "é".repeat(400_000)
    );
    let case = |what, source, body: Vec<u8>, auth, status, outcome| Case {
        what,
        source,
        body,
        auth,
        content_type: "application/json",
        status,
        outcome,
    };
    let mut cases = Vec::new();
    for (source, good) in [("bridge", bridge.clone()), ("linxo", linxo.clone())] {
        cases.extend([
            case(
                "invalid JSON",
                source,
                b"{not json".to_vec(),
                Auth::Valid,
                200,
                Some("dead_lettered"),
            ),
            case(
                "truncated JSON",
                source,
                good[..good.len() / 2].to_vec(),
                Auth::Valid,
                200,
                Some("dead_lettered"),
            ),
            case(
                "deeply nested JSON",
                source,
                nested(50_000),
                Auth::Valid,
                200,
                Some("dead_lettered"),
            ),
            case(
                "non-UTF-8 bytes",
                source,
                b"\xff\xfe{\"type\":\x80}".to_vec(),
                Auth::Valid,
                200,
                Some("dead_lettered"),
            ),
            case(
                "a JSON array",
                source,
                b"[1,2,3]".to_vec(),
                Auth::Valid,
                200,
                Some("dead_lettered"),
            ),
            case(
                "empty body",
                source,
                Vec::new(),
                Auth::Valid,
                200,
                Some("dead_lettered"),
            ),
            case(
                "oversized body",
                source,
                vec![b' '; (1 << 20) + 1],
                Auth::Valid,
                413,
                None,
            ),
            case(
                "no credentials",
                source,
                good.clone(),
                Auth::None,
                401,
                None,
            ),
            case(
                "garbage JSON without credentials",
                source,
                b"{not json".to_vec(),
                Auth::None,
                401,
                None,
            ),
        ]);
        cases.push(Case {
            content_type: "text/plain; charset=latin1",
            ..case(
                "wrong content type (ignored)",
                source,
                good.clone(),
                Auth::Valid,
                200,
                Some("accepted"),
            )
        });
    }
    cases.extend([
        case(
            "very long string",
            "bridge",
            long_string.into_bytes(),
            Auth::Valid,
            200,
            Some("accepted"),
        ),
        case(
            "very long string",
            "linxo",
            long_linxo.into_bytes(),
            Auth::Valid,
            200,
            Some("accepted"),
        ),
        case(
            "a timestamp before year 0",
            "bridge",
            br#"{"type":"item.created","timestamp":-100000000000,"content":{"item_id":1}}"#
                .to_vec(),
            Auth::Valid,
            200,
            Some("accepted"),
        ),
        case(
            "empty signature header",
            "bridge",
            bridge.clone(),
            Auth::Headers(&[("bridgeapi-signature", "")]),
            401,
            None,
        ),
        case(
            "garbled signature header",
            "bridge",
            bridge.clone(),
            Auth::Headers(&[("bridgeapi-signature", "v1=zz,,=,v1,v2=00")]),
            401,
            None,
        ),
        case(
            "duplicated signature headers, none valid",
            "bridge",
            bridge.clone(),
            Auth::Headers(&[
                ("bridgeapi-signature", "v1=00"),
                ("bridgeapi-signature", "v0=11"),
            ]),
            401,
            None,
        ),
        case(
            "a valid signature over a different body",
            "bridge",
            bridge.clone(),
            Auth::SignatureOfOtherBody,
            401,
            None,
        ),
        case(
            "garbled basic credentials",
            "linxo",
            linxo.clone(),
            Auth::Headers(&[("authorization", "Basic !!!not-base64")]),
            401,
            None,
        ),
        case(
            "a scheme without credentials",
            "linxo",
            linxo.clone(),
            Auth::Headers(&[("authorization", "Basic")]),
            401,
            None,
        ),
        case(
            "duplicated authorization, first wrong",
            "linxo",
            linxo.clone(),
            Auth::Headers(&[
                ("authorization", "Basic Zm9vOmJhcg=="),
                ("authorization", "Bearer nope"),
            ]),
            401,
            None,
        ),
        case(
            "path traversal",
            "..%2F..%2Fetc%2Fpasswd",
            bridge.clone(),
            Auth::None,
            404,
            None,
        ),
        case(
            "unicode source name",
            "br%C3%AFdge",
            bridge.clone(),
            Auth::None,
            404,
            None,
        ),
        case(
            "NUL in source name",
            "bridge%00",
            bridge.clone(),
            Auth::None,
            404,
            None,
        ),
        case(
            "upper-case source name",
            "BRIDGE",
            bridge.clone(),
            Auth::None,
            404,
            None,
        ),
    ]);
    let long_name: &'static str = Box::leak("x".repeat(8000).into_boxed_str());
    cases.push(case(
        "very long source name",
        long_name,
        bridge,
        Auth::None,
        404,
        None,
    ));
    cases
}

fn headers_for(case: &Case) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static(case.content_type));
    let sign = |body: &[u8]| crate::helpers::bridge_signature(body);
    match case.auth {
        Auth::Valid if case.source == "bridge" => {
            headers.insert("bridgeapi-signature", sign(&case.body).parse().unwrap());
        }
        Auth::Valid => {
            let credentials = base64::engine::general_purpose::STANDARD
                .encode(format!("{LINXO_USER}:{LINXO_PASSWORD}"));
            headers.insert(
                "authorization",
                format!("Basic {credentials}").parse().unwrap(),
            );
        }
        Auth::SignatureOfOtherBody => {
            headers.insert(
                "bridgeapi-signature",
                sign(b"{\"type\":\"other\"}").parse().unwrap(),
            );
        }
        Auth::Headers(pairs) => {
            for (name, value) in pairs {
                headers.append(
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                );
            }
        }
        Auth::None => {}
    }
    headers
}

#[tokio::test]
async fn every_hostile_input_gets_its_documented_status_and_nothing_unauthenticated_is_published() {
    let app = spawn_app("").await;
    let mut accepted = 0;
    let mut dead_lettered = 0;
    for case in cases() {
        let response = app
            .client
            .post(format!("{}/webhooks/{}", app.webhook_url, case.source))
            .headers(headers_for(&case))
            .body(case.body.clone())
            .send()
            .await;
        // An oversized body is not read to its end: the connection closes after the 413, and a
        // client still sending may see that instead of the answer.
        let response = match response {
            Err(error) if case.status == 413 && error.is_request() => continue,
            other => {
                other.unwrap_or_else(|error| panic!("{} / {}: {error}", case.source, case.what))
            }
        };
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let source_label = &case.source[..case.source.len().min(20)];
        assert_eq!(
            status, case.status,
            "{source_label} / {}: {text}",
            case.what
        );
        assert!(text.len() < 10_000, "answers stay small");
        if let Some(outcome) = case.outcome {
            let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(answer["status"], outcome, "{source_label} / {}", case.what);
            match outcome {
                "accepted" => accepted += 1,
                _ => dead_lettered += 1,
            }
        }
    }
    // Still healthy and serving.
    assert_eq!(app.get_ops("/healthz").await.status(), 200);
    assert_eq!(app.get_ops("/readyz").await.status(), 200);
    app.assert_still_serving().await;
    accepted += 1;

    // Kafka holds exactly what was accepted or dead-lettered: nothing from refused requests.
    let events = read_topic(
        &app.bootstrap,
        app.default_topic(),
        accepted,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(events.len(), accepted);
    let letters = read_topic(
        &app.bootstrap,
        app.dead_letter_topic(),
        dead_lettered,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(letters.len(), dead_lettered);
}
