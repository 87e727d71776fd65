//! Tier 1: every provider fixture normalized into its golden envelope, validated against the
//! JSON Schema; Bridge signature vectors.
//!
//! A golden file is written when missing (and the test fails, so it gets reviewed); set
//! `UPDATE_GOLDEN=1` to rewrite them all after an intended change.

mod common;

use finhook::auth::AuthError;
use finhook::auth::Verified;
use finhook::envelope::Origin;
use finhook::ingest;
use finhook::providers::bridge;
use finhook::providers::{self, linxo, ProviderKind};
use finhook::secret::Secret;
use finhook::vocabulary::{EventType, Ingress};
use serde_json::Value;
use time::macros::datetime;

use common::{fixture, fixtures_dir, webhook_fixtures, EnvelopeSchema, Fixture};

fn origin(provider: ProviderKind) -> Origin<'static> {
    Origin::new(
        provider,
        provider.as_str(),
        Ingress::Webhook,
        datetime!(2026-11-23 10:00:00.123 UTC),
    )
}

fn envelope_json(provider: ProviderKind, body: &[u8]) -> Value {
    envelope_of(provider, &Fixture::bare(body))
}

/// A fixture read as its provider reads a request for it (headers, URL event), with default
/// settings.
fn envelope_of(provider: ProviderKind, fixture: &Fixture) -> Value {
    let origin = origin(provider);
    let verified = fixture.verified();
    let facts = providers::read_with_defaults(provider, &verified);
    let envelope = ingest::envelope(&origin, facts, &fixture.body).expect("fixture normalizes");
    serde_json::from_slice(&envelope.to_json()).unwrap()
}

#[test]
fn every_fixture_matches_its_golden_envelope_and_the_schema() {
    let schema = EnvelopeSchema::load();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut created = Vec::new();
    let mut checked = 0;
    for provider in providers::kinds() {
        let fixtures = webhook_fixtures(provider.as_str());
        assert!(
            !fixtures.is_empty(),
            "{provider} has no fixtures in tests/fixtures/{provider}/"
        );
        for fixture in fixtures {
            let (name, body) = (&fixture.name, &fixture.body);
            let actual = envelope_of(provider, &fixture);
            schema.assert_valid(&actual, name);
            // `data` is the provider payload, unchanged.
            let original: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(
                actual["data"], original,
                "{name}: data must be the payload as sent"
            );
            assert_eq!(actual["subject"], actual["connectionid"], "{name}");

            let golden_path =
                fixtures_dir().join(format!("golden/{provider}/{name}.envelope.json"));
            if update || !golden_path.exists() {
                std::fs::create_dir_all(golden_path.parent().unwrap()).unwrap();
                let mut pretty = serde_json::to_string_pretty(&actual).unwrap();
                pretty.push('\n');
                std::fs::write(&golden_path, pretty).unwrap();
                created.push(golden_path.display().to_string());
                continue;
            }
            let golden: Value =
                serde_json::from_slice(&std::fs::read(&golden_path).unwrap()).unwrap();
            assert_eq!(
                actual,
                golden,
                "{name} differs from {}",
                golden_path.display()
            );
            checked += 1;
        }
    }
    assert!(
        created.is_empty() || update,
        "golden envelopes were missing and have been written; review and commit them: {created:#?}"
    );
    assert!(update || checked >= 50, "only {checked} fixtures checked");
}

#[test]
fn schema_takes_provider_names_from_the_catalogue_and_lists_none() {
    let schema: Value = serde_json::from_slice(
        &std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/envelope.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let provider = &schema["properties"]["provider"];
    assert!(
        provider.get("enum").is_none(),
        "a provider list would go stale"
    );
    let pattern = regex_lite(provider["pattern"].as_str().unwrap());
    for kind in providers::kinds() {
        assert!(
            pattern(kind.as_str()),
            "{kind} must match the schema's provider pattern"
        );
        assert!(
            provider["description"]
                .as_str()
                .unwrap()
                .contains(kind.as_str()),
            "the schema's description names {kind}"
        );
    }
}

/// The schema's provider pattern, `^[a-z][a-z0-9_]{0,31}$`, checked by hand (no regex crate).
fn regex_lite(pattern: &str) -> impl Fn(&str) -> bool {
    assert_eq!(
        pattern, "^[a-z][a-z0-9_]{0,31}$",
        "update the test's reading of the pattern"
    );
    |name: &str| {
        (1..=32).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    }
}

#[test]
fn schema_lists_exactly_the_canonical_types() {
    let mut in_schema = EnvelopeSchema::schema_types();
    let mut in_code: Vec<String> = EventType::ALL
        .iter()
        .map(|kind| kind.as_str().to_owned())
        .collect();
    in_schema.sort();
    in_code.sort();
    assert_eq!(in_schema, in_code);
}

#[test]
fn bridge_fixtures_map_to_the_documented_canonical_types() {
    let expected = [
        (
            "item-created",
            "io.finhook.connection.created",
            Some("bridge:7654321"),
        ),
        (
            "item-refreshed",
            "io.finhook.connection.sync.succeeded",
            Some("bridge:7654321"),
        ),
        (
            "item-refreshed-error",
            "io.finhook.connection.action_required",
            Some("bridge:7654321"),
        ),
        (
            "item-deleted",
            "io.finhook.connection.deleted",
            Some("bridge:7654321"),
        ),
        (
            "item-account-created",
            "io.finhook.account.created",
            Some("bridge:7654321"),
        ),
        (
            "item-account-updated",
            "io.finhook.account.updated",
            Some("bridge:7654321"),
        ),
        (
            "user-deleted",
            "io.finhook.user.deleted",
            Some("bridge:user:3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a"),
        ),
        (
            "payment-transaction-updated",
            "io.finhook.payment.transaction.updated",
            Some("bridge:payment:1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"),
        ),
        ("test-event", "io.finhook.test", Some("bridge:test")),
    ];
    for (name, event_type, key) in expected {
        let envelope = envelope_json(
            ProviderKind::new("bridge"),
            &fixture(&format!("bridge/{name}.json")),
        );
        assert_eq!(envelope["type"], event_type, "{name}");
        assert_eq!(envelope["partitionkey"].as_str(), key, "{name}");
    }
}

#[test]
fn bridge_time_accepts_milliseconds_and_seconds() {
    let event = envelope_json(
        ProviderKind::new("bridge"),
        &fixture("bridge/item-created.json"),
    );
    assert_eq!(event["time"], "2021-02-08T11:09:48.323Z");
    let test_event = envelope_json(
        ProviderKind::new("bridge"),
        &fixture("bridge/test-event.json"),
    );
    assert_eq!(test_event["time"], "2021-01-26T17:23:09Z");
}

#[test]
fn bridge_id_is_derived_from_the_bytes_so_retries_share_it() {
    let body = fixture("bridge/item-created.json");
    let first = envelope_json(ProviderKind::new("bridge"), &body);
    let retry = envelope_json(ProviderKind::new("bridge"), &body);
    assert_eq!(first["id"], retry["id"]);
    let other = envelope_json(
        ProviderKind::new("bridge"),
        &fixture("bridge/item-deleted.json"),
    );
    assert_ne!(first["id"], other["id"]);
}

#[test]
fn linxo_keeps_its_event_id_and_flags_truncated_accounts() {
    let small = envelope_json(
        ProviderKind::new("linxo"),
        &fixture("linxo/connection-updated-2-accounts.json"),
    );
    assert_eq!(small["id"], "abc123456");
    assert_eq!(small["type"], "io.finhook.connection.sync.succeeded");
    assert_eq!(small["connectionid"], "123");
    assert_eq!(small["userid"], "321");
    assert_eq!(small["channelid"], "24601");
    assert_eq!(small["partitionkey"], "linxo:123");
    assert_eq!(small["accountcount"], 2);
    assert_eq!(small["accountstruncated"], false);

    let large = envelope_json(
        ProviderKind::new("linxo"),
        &fixture("linxo/connection-updated-102-accounts.json"),
    );
    assert_eq!(large["accountcount"], 102);
    assert_eq!(large["accountstruncated"], true);
    assert_eq!(large["data"]["resource"]["accounts"], serde_json::json!([]));
}

struct Vectors {
    body: Vec<u8>,
    secret: Secret,
    previous: Secret,
    vectors: Value,
}

fn vectors() -> Vectors {
    let vectors: Value = serde_json::from_slice(&fixture("bridge/signature-vectors.json")).unwrap();
    Vectors {
        body: fixture(&format!(
            "bridge/{}",
            vectors["body_file"].as_str().unwrap()
        )),
        secret: Secret::new(vectors["secret"].as_str().unwrap()),
        previous: Secret::new(vectors["previous_secret"].as_str().unwrap()),
        vectors,
    }
}

/// Bridge's scheme over one `BridgeApi-Signature` value.
fn verify_bridge(value: &[u8], body: &[u8], secrets: &[Secret]) -> Result<(), AuthError> {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        bridge::SIGNATURE_HEADER,
        http::HeaderValue::from_bytes(value).unwrap(),
    );
    bridge::scheme(secrets).verify(&headers, body, time::OffsetDateTime::UNIX_EPOCH)
}

fn header(vectors: &Vectors, name: &str) -> Vec<u8> {
    vectors.vectors[name].as_str().unwrap().as_bytes().to_vec()
}

#[test]
fn signature_vector_current_secret_verifies_and_sign_reproduces_it() {
    let v = vectors();
    let value = header(&v, "header_value_current");
    assert_eq!(
        verify_bridge(&value, &v.body, std::slice::from_ref(&v.secret)),
        Ok(())
    );
    assert_eq!(
        bridge::sign(&v.secret, &v.body).as_bytes(),
        value.as_slice()
    );
}

#[test]
fn signature_vector_rotation_pair_verifies_with_either_secret() {
    let v = vectors();
    let value = header(&v, "header_value_during_rotation");
    for secrets in [
        vec![v.secret.clone()],
        vec![v.previous.clone()],
        vec![Secret::new("other"), v.previous.clone()],
    ] {
        assert_eq!(verify_bridge(&value, &v.body, &secrets), Ok(()));
    }
    assert_eq!(
        verify_bridge(&value, &v.body, &[Secret::new("neither")]),
        Err(AuthError::SignatureMismatch)
    );
}

#[test]
fn signature_vector_unknown_scheme_only_is_refused() {
    let v = vectors();
    let value = header(&v, "header_value_unknown_scheme_only");
    assert_eq!(
        verify_bridge(&value, &v.body, std::slice::from_ref(&v.secret)),
        Err(AuthError::NoSupportedSignature)
    );
}

#[test]
fn signature_vector_lowercase_hex_verifies() {
    let v = vectors();
    let value = header(&v, "header_value_lowercase_hex");
    assert_eq!(
        verify_bridge(&value, &v.body, std::slice::from_ref(&v.secret)),
        Ok(())
    );
}

#[test]
fn signature_vector_over_a_tampered_body_is_refused() {
    let v = vectors();
    let value = header(&v, "header_value_current");
    let mut tampered = v.body.clone();
    let position = tampered.iter().position(|byte| *byte == b'0').unwrap();
    tampered[position] = b'1';
    assert_eq!(
        verify_bridge(&value, &tampered, std::slice::from_ref(&v.secret)),
        Err(AuthError::SignatureMismatch)
    );
    // Even the trailing newline is part of what is signed.
    let trimmed = &v.body[..v.body.len() - 1];
    assert_eq!(
        verify_bridge(&value, trimmed, std::slice::from_ref(&v.secret)),
        Err(AuthError::SignatureMismatch)
    );
}

fn queue_origin() -> Origin<'static> {
    Origin::new(
        ProviderKind::new("linxo"),
        "oxlin",
        Ingress::Queue,
        datetime!(2026-11-23 10:00:00.123 UTC),
    )
}

/// One queue event read the way the poller reads it.
fn queue_envelope<'a>(raw: &'a [u8], user: &str) -> finhook::envelope::Envelope<'a> {
    let headers = http::HeaderMap::new();
    let facts = linxo::read_queue_event(&Verified::assume(raw, &headers), user);
    ingest::envelope(&queue_origin(), facts, raw).unwrap()
}

/// Every event of a queue page fixture as its envelope JSON, schema-checked.
fn queue_page_envelopes(file: &str, user: &str) -> Vec<Value> {
    let schema = EnvelopeSchema::load();
    let page = fixture(&format!("oxlin-queue/{file}"));
    linxo::split_queue_page(&page)
        .unwrap()
        .into_iter()
        .map(|raw| {
            let envelope = queue_envelope(raw.get().as_bytes(), user);
            let json: Value = serde_json::from_slice(&envelope.to_json()).unwrap();
            schema.assert_valid(&json, file);
            json
        })
        .collect()
}

#[test]
fn queue_fixtures_read_their_codes_statuses_and_connection() {
    let first = queue_page_envelopes("poll-page-1.json", "321");
    let read: Vec<(&str, &str, &str)> = first
        .iter()
        .map(|event| {
            (
                event["providertype"].as_str().unwrap(),
                event["providerstatus"].as_str().unwrap(),
                event["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        read,
        [
            ("SYNC_STARTED", "RUNNING", "io.finhook.unmapped"),
            ("SYNC_STARTED", "RUNNING", "io.finhook.unmapped"),
            (
                "CHALLENGE_REQUIRED",
                "CHALLENGE_REQUIRED",
                "io.finhook.connection.action_required"
            ),
        ]
    );
    for event in &first {
        assert_eq!(event["partitionkey"], "linxo:123");
        assert_eq!(event["userid"], "321");
        assert_eq!(event["ingress"], "queue");
    }
    let end = queue_page_envelopes("poll-page-2-wrapped.json", "321");
    assert_eq!(end[0]["type"], "io.finhook.connection.sync.succeeded");
    let actions = queue_page_envelopes("poll-page-action-required.json", "321");
    assert!(actions
        .iter()
        .all(|event| event["type"] == "io.finhook.connection.action_required"));
}

#[test]
fn queue_events_without_a_connection_are_keyed_by_the_polled_user() {
    let raw = br#"{"id":"q9","name":"LOGIN_STARTED","event_status":"RUNNING"}"#;
    let envelope = queue_envelope(raw, "u-42");
    assert_eq!(envelope.partitionkey, "linxo:user:u-42");
    assert_eq!(envelope.connectionid, None);
    assert_eq!(envelope.userid.as_deref(), Some("u-42"));
}

#[test]
fn linxo_account_events_share_their_connection_key() {
    let body = br#"{"id":"e7","event_type":"UPDATED","resource_type":"ACCOUNTS",
        "resource":{"id":"222","connection_id":"123","user_id":"321"}}"#;
    let event = envelope_json(ProviderKind::new("linxo"), body);
    assert_eq!(event["partitionkey"], "linxo:123");
    assert_eq!(event["connectionid"], "123");
    let without = br#"{"id":"e8","event_type":"UPDATED","resource_type":"ACCOUNTS",
        "resource":{"id":"222","user_id":"321"}}"#;
    let event = envelope_json(ProviderKind::new("linxo"), without);
    assert_eq!(event["partitionkey"], "linxo:user:321");
    assert!(event.get("subject").is_none());
}

#[test]
fn empty_strings_never_reach_an_envelope() {
    let schema = EnvelopeSchema::load();
    let bridge_body =
        br#"{"type":"item.created","timestamp":1,"content":{"item_id":"","user_uuid":""}}"#;
    let event = envelope_json(ProviderKind::new("bridge"), bridge_body);
    schema.assert_valid(&event, "bridge with empty strings");
    assert!(event.get("userid").is_none());
    let linxo_body = br#"{"id":"e","event_type":"UPDATED","resource_type":"CONNECTIONS",
        "channel_definition_id":"","resource":{"id":"","user_id":"","channels":[]}}"#;
    let event = envelope_json(ProviderKind::new("linxo"), linxo_body);
    schema.assert_valid(&event, "linxo with empty strings");
}

#[test]
fn bridge_test_deliveries_get_distinct_ids() {
    let body = fixture("bridge/test-event.json");
    let at = |second: u8| Origin {
        received_at: datetime!(2026-11-23 10:00:00 UTC) + time::Duration::seconds(second.into()),
        ..origin(ProviderKind::new("bridge"))
    };
    let headers = http::HeaderMap::new();
    let first = ingest::envelope_with_defaults(&at(0), &body, &headers).unwrap();
    let second = ingest::envelope_with_defaults(&at(1), &body, &headers).unwrap();
    assert_ne!(first.id, second.id);
    assert_eq!(first.subject, None);
    assert_eq!(first.partitionkey, "bridge:test");
}

/// Every fixture of every provider, through a policy with every preset: no IBAN, e-mail
/// address or owner name the fixtures carry is left in clear; with a path wildcard, all 110
/// accounts of the large Linxo body.
#[test]
fn protection_presets_leave_nothing_in_clear_in_any_fixture() {
    use finhook::protection::{Action, Policy, Preset};
    let key = Secret::new("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    let keyring = std::sync::Arc::new(finhook::keyring::Keyring::new("f1", &key).unwrap());
    // Found in the fixtures by hand: every owner or holder name they carry.
    let names = [
        "JEAN DUPONT",
        "Jean Dupont",
        "JEANNE EXEMPLE",
        "Exemple SAS",
    ];
    let mut checked = 0;
    for action in [Action::Redact, Action::Pseudonymize, Action::Encrypt] {
        let policy = Policy::new(
            "all",
            Preset::ALL.to_vec(),
            action,
            Vec::new(),
            Some(Secret::new("pseudonym-key")),
            Some(keyring.clone()),
        );
        for provider in providers::kinds() {
            for fixture in webhook_fixtures(provider.as_str()) {
                let text = String::from_utf8(fixture.body.clone()).unwrap();
                let protected = policy.apply(&text).unwrap();
                let mut sensitive: Vec<String> = ibans_in(&text);
                sensitive.extend(emails_in(&text));
                sensitive.extend(names.iter().map(|name| (*name).to_owned()));
                for value in &sensitive {
                    assert!(
                        !protected.contains(value.as_str()),
                        "{provider}/{} keeps `{value}` with {action:?}: {protected}",
                        fixture.name
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 100);

    let large = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("benches/bodies/linxo-110-accounts.json"),
    )
    .unwrap();
    let by_path = Policy::new(
        "path",
        Vec::new(),
        Action::Pseudonymize,
        vec![("resource.accounts.*.iban".parse().unwrap(), Action::Redact)],
        None,
        None,
    );
    let protected: Value = serde_json::from_str(&by_path.apply(&large).unwrap()).unwrap();
    let accounts = protected["resource"]["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 110);
    assert!(accounts
        .iter()
        .all(|account| account["iban"] == "[redacted]"));
}

/// IBAN-shaped words in `text` (two letters, two digits, 11+ letters or digits).
fn ibans_in(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| {
            let bytes = word.as_bytes();
            bytes.len() >= 15
                && bytes[..2].iter().all(u8::is_ascii_uppercase)
                && bytes[2..4].iter().all(u8::is_ascii_digit)
        })
        .map(str::to_owned)
        .collect()
}

/// E-mail-shaped words in `text`.
fn emails_in(text: &str) -> Vec<String> {
    text.split(|c: char| c == '"' || c.is_whitespace())
        .filter(|word| word.contains('@') && word.contains('.'))
        .map(str::to_owned)
        .collect()
}
