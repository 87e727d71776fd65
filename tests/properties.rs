//! Property tests standing in for fuzzing (cargo-fuzz needs a nightly toolchain, which our
//! machines cannot install): every normalizer and the signature header parser, on arbitrary
//! bytes and on arbitrary JSON, never panic, and what they accept is a valid envelope.
//!
//! CI runs the default number of cases; a long run:
//!   PROPTEST_CASES=200000 cargo test --release --test properties

mod common;

use finhook::auth::Verified;
use finhook::envelope::Origin;
use finhook::ingest;
use finhook::providers::{self, bridge, linxo, ProviderKind};
use finhook::secret::Secret;
use finhook::vocabulary::Ingress;
use proptest::prelude::*;
use serde_json::{json, Value};

fn origin(provider: ProviderKind) -> Origin<'static> {
    Origin::new(
        provider,
        "fuzz",
        Ingress::Webhook,
        time::OffsetDateTime::UNIX_EPOCH,
    )
}

/// Bridge's scheme over one `BridgeApi-Signature` value.
fn verify_bridge(
    value: &[u8],
    body: &[u8],
    secrets: &[Secret],
) -> Result<(), finhook::auth::AuthError> {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        bridge::SIGNATURE_HEADER,
        http::HeaderValue::from_bytes(value).unwrap(),
    );
    bridge::scheme(secrets).verify(&headers, body, time::OffsetDateTime::UNIX_EPOCH)
}

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |n| n.is_finite())
            .prop_map(|n| json!(n)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// JSON shaped like a provider event, with arbitrary values in the fields finhook reads.
fn event_like() -> impl Strategy<Value = Value> {
    let names = prop_oneof![
        Just("type"),
        Just("timestamp"),
        Just("content"),
        Just("item_id"),
        Just("user_uuid"),
        Just("status_code"),
        Just("id"),
        Just("event_type"),
        Just("resource_type"),
        Just("resource"),
        Just("accounts"),
        Just("account_count"),
        Just("channels"),
        Just("channel_definition_id"),
        Just("name"),
        Just("event_status"),
        Just("date"),
        Just("creation_date"),
        Just("events"),
        Just("code"),
        Just("status"),
        Just("connection_id"),
        Just("new_transactions"),
        Just("connection_updated"),
    ];
    let leaf = prop_oneof![
        json_value(),
        prop_oneof![
            Just("item.refreshed"),
            Just("UPDATED"),
            Just("CONNECTIONS"),
            Just("SYNC_ALL_SUCCESS"),
            Just("AUTH_FAILED"),
            Just("PARTIAL_SUCCESS"),
            Just("TEST_EVENT"),
            Just("")
        ]
        .prop_map(|s| json!(s)),
        any::<u64>().prop_map(|n| json!(n)),
    ];
    leaf.prop_recursive(3, 48, 8, move |inner| {
        prop::collection::btree_map(names.clone(), inner, 0..8).prop_map(|map| {
            Value::Object(map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
        })
    })
}

proptest! {
    #[test]
    fn normalizers_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = bridge::normalize(&bytes);
        let _ = linxo::normalize(&bytes);
        let _ = linxo::normalize_queue_event(&bytes);
        let _ = linxo::split_queue_page(&bytes);
        let headers = http::HeaderMap::new();
        for provider in providers::kinds() {
            let _ = providers::read_with_defaults(provider, &Verified::assume(&bytes, &headers));
        }
    }

    #[test]
    fn accepted_events_always_make_schema_valid_envelopes(value in event_like()) {
        let schema = common::EnvelopeSchema::load();
        let body = serde_json::to_vec(&value).unwrap();
        for provider in providers::kinds() {
            if let Ok(envelope) = ingest::envelope_with_defaults(&origin(provider), &body, &http::HeaderMap::new()) {
                let json: Value = serde_json::from_slice(&envelope.to_json()).unwrap();
                schema.assert_valid(&json, "generated event");
                // The payload is forwarded byte for byte (compared as text: parsing floats
                // twice need not give the same f64).
                prop_assert_eq!(envelope.data.as_bytes(), body.as_slice());
            }
        }
        // The same value as one queue event, and as a page holding it: every envelope the
        // poller would publish is schema-valid too.
        let queue_origin = Origin { ingress: Ingress::Queue, ..origin(ProviderKind::new("linxo")) };
        let page = serde_json::to_vec(&json!({ "events": [value] })).unwrap();
        for candidate in [body.clone(), page] {
            if let Ok(events) = linxo::split_queue_page(&candidate) {
                for event in events {
                    let raw = event.get().as_bytes();
                    let headers = http::HeaderMap::new();
                    let facts = linxo::read_queue_event(&Verified::assume(raw, &headers), "user-1");
                    if let Ok(envelope) = ingest::envelope(&queue_origin, facts, raw) {
                        let json: Value = serde_json::from_slice(&envelope.to_json()).unwrap();
                        schema.assert_valid(&json, "generated queue event");
                        // Keyed by connection, else by the polled user: never by event id.
                        prop_assert!(!envelope.partitionkey.starts_with("linxo:event:"));
                    }
                }
            }
        }
    }

    #[test]
    fn signature_parser_never_panics_and_finds_a_valid_entry_among_garbage(
        garbage in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..5),
        body in prop::collection::vec(any::<u8>(), 0..200),
        position in 0usize..6,
    ) {
        let secret = Secret::new("fuzz-secret");
        // Any bytes a header value can hold (no control characters).
        let garbage: Vec<Vec<u8>> = garbage
            .iter()
            .map(|entry| entry.iter().copied().filter(|byte| *byte >= 0x20 && *byte != 0x7f).collect())
            .collect();
        // Arbitrary bytes alone: refused, never a panic.
        for entry in &garbage {
            prop_assert!(verify_bridge(entry, &body, std::slice::from_ref(&secret)).is_err());
        }
        // The valid entry anywhere in a list of garbage entries (without commas) is found.
        let mut entries: Vec<Vec<u8>> = garbage
            .iter()
            .map(|entry| entry.iter().copied().filter(|byte| *byte != b',').collect())
            .collect();
        let valid = bridge::sign(&secret, &body).into_bytes();
        entries.insert(position.min(entries.len()), valid);
        let header = entries.join(&b","[..]);
        prop_assert!(verify_bridge(&header, &body, &[secret]).is_ok());
    }

    #[test]
    fn verifiers_never_panic_on_arbitrary_signature_headers(
        values in prop::collection::vec("[ -~]{0,80}", 1..4),
        body in prop::collection::vec(any::<u8>(), 0..64),
        now in any::<i64>(),
    ) {
        use finhook::auth::standard_webhooks::{StandardWebhooks, DEFAULT_TOLERANCE};
        let Ok(now) = time::OffsetDateTime::from_unix_timestamp(now % 253_402_300_799) else {
            return Ok(());
        };
        let secret = [Secret::new("s")];
        let tink = finhook::providers::tink::scheme(&secret, std::time::Duration::from_secs(300));
        let standard = StandardWebhooks::new(vec![b"0123456789abcdef".to_vec()], vec![[7; 32]], DEFAULT_TOLERANCE);
        for value in &values {
            let mut headers = http::HeaderMap::new();
            let value = http::HeaderValue::from_str(value).unwrap();
            for name in ["x-tink-signature", "webhook-id", "webhook-timestamp", "webhook-signature"] {
                headers.append(name, value.clone());
            }
            // Arbitrary text is refused, never a panic (timestamps included: `t=-9223…`).
            prop_assert!(tink.verify(&headers, &body, now).is_err());
            prop_assert!(standard.verify(&headers, &body, now).is_err());
            prop_assert!(bridge::scheme(&secret).verify(&headers, &body, now).is_err());
        }
        let mut pairs = http::HeaderMap::new();
        pairs.insert("x-tink-signature", http::HeaderValue::from_static("t=-9223372036854775808,v1=00"));
        prop_assert!(tink.verify(&pairs, &body, now).is_err());
    }
}
