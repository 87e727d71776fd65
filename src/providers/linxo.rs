//! Linxo Connect (Oxlin) webhooks: one event per finished channel synchronization.
//!
//! Body: `{"id", "event_type", "resource_type", "creation_date" (s), "channel_definition_id",
//! "resource": {connection, "account_count", "accounts"}, ...}`. Linxo signs nothing: the
//! caller is authenticated by the source's shared secret or mutual TLS
//! ([`crate::auth::credentials`]).
//!
//! Oxlin also keeps per-user event queues that finhook polls (src/poller): a queue page is
//! read by [`split_queue_page`] and [`read_queue_event`], through the same ingest path.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    boolean, count, id_string, list, number, object, parse_object, text, unix_time, BuildContext,
    EventFacts, NormalizeError, Provider, ProviderKind, QueuePage,
};
use crate::auth::credentials::CredentialSettings;
use crate::auth::{Verified, Verify};
use crate::secret::Secret;
use crate::vocabulary::{fallback_key, EventType};

pub struct Linxo;

impl Provider for Linxo {
    const KIND: ProviderKind = ProviderKind::new("linxo");
    const VERIFICATION: &'static str =
        "none by Linxo: HTTP Basic, bearer or query token on the URL, and/or mutual TLS (Linxo's documented option)";
    type Settings = CredentialSettings;

    fn validate(
        settings: &CredentialSettings,
        key: &str,
        has_secret: bool,
        problems: &mut Vec<String>,
    ) {
        settings.validate(key, "linxo", has_secret, problems);
    }

    fn verifier(
        settings: &CredentialSettings,
        secrets: Vec<Secret>,
        _: &BuildContext,
    ) -> Result<Box<dyn Verify>, String> {
        Ok(Box::new(settings.verifier(secrets)))
    }

    fn read(_: &CredentialSettings, body: &Verified<'_>) -> Result<EventFacts, NormalizeError> {
        normalize(body.body())
    }

    fn read_queue_page<'p>(
        _: &CredentialSettings,
        page: &'p [u8],
        user_id: &str,
    ) -> Option<QueuePage<'p>> {
        let no_headers = http::HeaderMap::new();
        Some(split_queue_page(page).map(|events| {
            events
                .into_iter()
                .map(|raw| {
                    let raw = raw.get().as_bytes();
                    // The page came from the provider's API over TLS, with the user's token.
                    let facts = read_queue_event(&Verified::assume(raw, &no_headers), user_id);
                    (raw, facts)
                })
                .collect()
        }))
    }
}

/// Channel statuses that need the user: re-enter credentials, answer a challenge, ...
/// The same names are Oxlin's queue event names for these situations.
pub const ACTION_REQUIRED_STATUSES: &[&str] = &[
    "AUTH_FAILED",
    "TOKEN_EXPIRED",
    "PASSWORD_CHANGE_REQUIRED",
    "USER_ACTION_REQUIRED",
    "CHALLENGE_REQUIRED",
];

/// Strings only looked at (types, statuses, channel ids inside the resource) are `Cow`s that
/// borrow from the body unless escaped or numeric; what the envelope keeps is owned.
#[derive(Deserialize)]
struct LinxoEvent<'a> {
    #[serde(default, deserialize_with = "id_string")]
    id: Option<String>,
    #[serde(default, borrow, deserialize_with = "text")]
    event_type: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "text")]
    resource_type: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "number")]
    creation_date: Option<f64>,
    #[serde(default, deserialize_with = "id_string")]
    channel_definition_id: Option<String>,
    #[serde(default, borrow, deserialize_with = "object")]
    resource: Option<LinxoResource<'a>>,
    /// Documented at the top level; the seed's example carries it in `connection_updated`.
    #[serde(default, deserialize_with = "boolean")]
    new_transactions: Option<bool>,
    #[serde(default, deserialize_with = "object")]
    connection_updated: Option<ConnectionUpdated>,
}

#[derive(Deserialize)]
struct ConnectionUpdated {
    #[serde(default, deserialize_with = "boolean")]
    new_transactions: Option<bool>,
}

#[derive(Deserialize)]
struct LinxoResource<'a> {
    #[serde(default, deserialize_with = "id_string")]
    id: Option<String>,
    /// On a resource that is not a connection (an account, a transaction): its connection.
    #[serde(default, deserialize_with = "id_string")]
    connection_id: Option<String>,
    #[serde(default, deserialize_with = "id_string")]
    user_id: Option<String>,
    #[serde(default, deserialize_with = "number")]
    account_count: Option<f64>,
    /// Only the length matters; the accounts themselves stay in `data`, untouched.
    #[serde(default, deserialize_with = "count")]
    accounts: Option<u64>,
    #[serde(default, borrow, deserialize_with = "list")]
    channels: Option<Vec<LinxoChannel<'a>>>,
}

impl LinxoResource<'_> {
    /// The status of the channel an event is about (the event names it by definition id).
    fn channel_status(&self, channel: Option<&str>) -> Option<&str> {
        let channel = channel?;
        self.channels
            .as_deref()?
            .iter()
            .find(|candidate| candidate.channel_definition_id.as_deref() == Some(channel))?
            .status
            .as_deref()
    }
}

#[derive(Deserialize)]
struct LinxoChannel<'a> {
    #[serde(default, borrow, deserialize_with = "id_string")]
    channel_definition_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "text")]
    status: Option<Cow<'a, str>>,
}

/// The resource type of connection events, the only one Linxo documents today.
const CONNECTIONS: &str = "CONNECTIONS";

/// Whether a `resource_type` names connections. Linxo writes `CONNECTIONS`; Oxlin's queues are
/// subscribed to with `"topics": ["connections"]`, so either case is taken.
fn is_connections(resource_type: &str) -> bool {
    resource_type.eq_ignore_ascii_case(CONNECTIONS)
}

/// Which connection an event belongs to: the resource itself when it is a connection, else the
/// connection the resource names (an account's `connection_id`). A resource said to be
/// something else never gives its own id: that would key its events apart from the
/// connection's and break their order.
fn connection_of(resource_type: Option<&str>, resource: &LinxoResource<'_>) -> Option<String> {
    match resource_type {
        Some(kind) if is_connections(kind) => resource.id.clone(),
        Some(_) => resource.connection_id.clone(),
        // Queue events may not say; a resource with channels is a connection (for the others,
        // see `normalize_queue_event`).
        None if resource.channels.is_some() => resource.id.clone(),
        None => resource.connection_id.clone(),
    }
}

/// Reads a Linxo webhook body. `id`, `event_type` and `resource_type` are required.
pub fn normalize(body: &[u8]) -> Result<EventFacts, NormalizeError> {
    let event: LinxoEvent = parse_object(body)?;
    let id = event.id.ok_or(NormalizeError::MissingField("id"))?;
    let event_type = event
        .event_type
        .ok_or(NormalizeError::MissingField("event_type"))?;
    let resource_type = event
        .resource_type
        .ok_or(NormalizeError::MissingField("resource_type"))?;

    let channel_status = event
        .resource
        .as_ref()
        .and_then(|resource| resource.channel_status(event.channel_definition_id.as_deref()));
    let (canonical, reason) = canonical_type(&resource_type, &event_type, channel_status);
    let mut facts = EventFacts::new(canonical, format!("{resource_type}.{event_type}"));
    facts.provider_event_id = Some(id);
    facts.time = event.creation_date.and_then(unix_time);
    facts.reason = reason;
    facts.provider_status = channel_status.map(str::to_owned);
    facts.channel_id = event.channel_definition_id;
    facts.new_transactions = event.new_transactions.or(event
        .connection_updated
        .and_then(|updated| updated.new_transactions));
    if let Some(resource) = event.resource {
        facts.connection_id = connection_of(Some(&resource_type), &resource);
        facts.fallback_key = resource
            .user_id
            .as_ref()
            .map(|user| fallback_key("user", user));
        facts.user_id = resource.user_id;
        if is_connections(&resource_type) {
            // A CloudEvents integer is 32-bit: a count beyond it (or below 0, or fractional) is
            // no count of accounts and is left out.
            facts.account_count = resource
                .account_count
                .filter(|count| count.fract() == 0.0 && (0.0..=f64::from(i32::MAX)).contains(count))
                .map(|count| count as u64);
            // Linxo leaves `accounts` empty above 100 accounts while `account_count` says how
            // many there are: flag it, so consumers never read that as "no accounts".
            let listed = resource.accounts.unwrap_or(0);
            facts.accounts_truncated = facts.account_count.map(|count| count > listed);
        }
    }
    Ok(facts)
}

/// A connection UPDATED event is sent when a channel's synchronization ends, so the channel's
/// status says how it ended; without one it is a plain update. PARTIAL_SUCCESS is a success
/// that says so in `reason`, so consumers can tell it from a full one.
fn canonical_type(
    resource_type: &str,
    event_type: &str,
    channel_status: Option<&str>,
) -> (EventType, Option<String>) {
    if !is_connections(resource_type) {
        return (EventType::Unmapped, None);
    }
    match event_type {
        "CREATED" => (EventType::ConnectionCreated, None),
        "DELETED" => (EventType::ConnectionDeleted, None),
        // Linxo's documentation spells it UDPATED once: a sender built from it may too.
        "UPDATED" | "UDPATED" => match channel_status {
            Some("SUCCESS") => (EventType::ConnectionSyncSucceeded, None),
            Some(status @ "PARTIAL_SUCCESS") => {
                (EventType::ConnectionSyncSucceeded, Some(status.to_owned()))
            }
            Some("FAILED") => (EventType::ConnectionSyncFailed, Some("FAILED".to_owned())),
            Some(status) if ACTION_REQUIRED_STATUSES.contains(&status) => {
                (EventType::ConnectionActionRequired, Some(status.to_owned()))
            }
            _ => (EventType::ConnectionUpdated, None),
        },
        _ => (EventType::Unmapped, None),
    }
}

/// One event of an Oxlin queue page. The seed documents only a fragment (a `name`, a `status`,
/// `channel_definition_id`, and `event_status` = SYNC_ALL_SUCCESS at the end of a sync); the rest
/// is our reading (tests/fixtures/oxlin-queue/README.md). Every field is optional and unknown
/// ones are ignored.
#[derive(Deserialize)]
struct QueueEvent<'a> {
    #[serde(default, deserialize_with = "id_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "number")]
    date: Option<f64>,
    /// Explicit event-code fields, in the order they are trusted.
    #[serde(default, rename = "type", deserialize_with = "text")]
    type_field: Option<String>,
    #[serde(default, deserialize_with = "text")]
    event_type: Option<String>,
    #[serde(default, deserialize_with = "text")]
    code: Option<String>,
    /// An event name such as AUTH_FAILED, or free text such as a bank's name: only the former
    /// is an event code.
    #[serde(default, deserialize_with = "text")]
    name: Option<String>,
    #[serde(default, deserialize_with = "text")]
    event_status: Option<String>,
    #[serde(default, deserialize_with = "text")]
    status: Option<String>,
    #[serde(default, deserialize_with = "text")]
    resource_type: Option<String>,
    #[serde(default, deserialize_with = "id_string")]
    channel_definition_id: Option<String>,
    #[serde(default, deserialize_with = "id_string")]
    connection_id: Option<String>,
    #[serde(default, borrow, deserialize_with = "object")]
    resource: Option<LinxoResource<'a>>,
}

/// The status that ends a synchronization successfully.
pub const SYNC_ALL_SUCCESS: &str = "SYNC_ALL_SUCCESS";

/// Event codes are upper-case identifiers (`AUTH_FAILED`, `SYNC_STARTED`); a bank's name
/// ("WBX Test Bank") is not one.
fn is_event_code(value: &str) -> bool {
    let mut characters = value.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_uppercase())
        && characters.all(|character| {
            character.is_ascii_uppercase() || character.is_ascii_digit() || character == '_'
        })
}

/// Reads one event of an Oxlin queue. It needs an event code: an explicit `type`,
/// `event_type` or `code`, else a `name` that is a code, else `event_status`, else a `status`
/// that is a code. Without one it cannot be read (and goes to the dead-letter topic).
pub fn normalize_queue_event(raw: &[u8]) -> Result<EventFacts, NormalizeError> {
    let event: QueueEvent = parse_object(raw)?;
    let channel_status = event
        .resource
        .as_ref()
        .and_then(|resource| resource.channel_status(event.channel_definition_id.as_deref()));
    let status = event
        .event_status
        .clone()
        .or_else(|| event.status.clone())
        .or_else(|| channel_status.map(str::to_owned));
    let code = [&event.type_field, &event.event_type, &event.code]
        .into_iter()
        .flatten()
        .next()
        .cloned()
        .or_else(|| event.name.clone().filter(|name| is_event_code(name)))
        .or_else(|| event.event_status.clone())
        .or_else(|| event.status.clone().filter(|status| is_event_code(status)))
        .ok_or(NormalizeError::MissingField("event_status"))?;

    let is = |wanted: &str| code == wanted || status.as_deref() == Some(wanted);
    let action = ACTION_REQUIRED_STATUSES.iter().find(|action| is(action));
    let (canonical, reason) = if is(SYNC_ALL_SUCCESS) {
        (EventType::ConnectionSyncSucceeded, None)
    } else if let Some(action) = action {
        (
            EventType::ConnectionActionRequired,
            Some((*action).to_owned()),
        )
    } else {
        (EventType::Unmapped, None)
    };
    let mut facts = EventFacts::new(canonical, code);
    facts.provider_event_id = event.id;
    facts.time = event.date.and_then(unix_time);
    facts.reason = reason;
    facts.provider_status = status;
    facts.channel_id = event.channel_definition_id;
    let resource_type = event.resource_type.as_deref();
    facts.connection_id = event
        .resource
        .as_ref()
        .and_then(|resource| connection_of(resource_type, resource))
        .or(event.connection_id)
        .or_else(|| {
            // A resource of no stated type that names no connection is one itself: the queue's
            // events are about connections (the topic it was subscribed to).
            let resource = event
                .resource
                .as_ref()
                .filter(|_| resource_type.is_none())?;
            resource.id.clone()
        });
    facts.user_id = event.resource.and_then(|resource| resource.user_id);
    Ok(facts)
}

/// Splits an Oxlin queue page into its events: a top-level array, or an object holding an
/// `events` array (other fields ignored). Each event stays raw, for its envelope or dead letter.
pub fn split_queue_page(body: &[u8]) -> Result<Vec<&RawValue>, NormalizeError> {
    #[derive(Deserialize)]
    struct Wrapped<'a> {
        #[serde(borrow)]
        events: Vec<&'a RawValue>,
    }
    let first = body.iter().find(|byte| !byte.is_ascii_whitespace());
    match first {
        Some(b'[') => serde_json::from_slice(body).map_err(NormalizeError::from_serde),
        Some(b'{') => {
            let wrapped: Wrapped<'_> = serde_json::from_slice(body).map_err(|error| {
                if error.is_data() {
                    NormalizeError::MissingField("events")
                } else {
                    NormalizeError::InvalidJson(error.to_string())
                }
            })?;
            Ok(wrapped.events)
        }
        _ => match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => Err(NormalizeError::NotAnObject),
            Err(error) => Err(NormalizeError::InvalidJson(error.to_string())),
        },
    }
}

/// Reads one event of a queue page polled for `user_id`. The poller knows the user whose queue
/// it polls: it is the envelope's `userid`, and the ordering key of events that name no
/// connection.
pub fn read_queue_event(raw: &Verified<'_>, user_id: &str) -> Result<EventFacts, NormalizeError> {
    let mut facts = normalize_queue_event(raw.body())?;
    facts.user_id = Some(user_id.to_owned());
    facts.fallback_key = Some(fallback_key("user", user_id));
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{"id":"e1","event_type":"UPDATED","resource_type":"CONNECTIONS",
        "channel_definition_id":"7","resource":{"id":"c1","user_id":"u1",
        "channels":[{"channel_definition_id":"7","status":"AUTH_FAILED"}]}}"#;

    #[test]
    fn channel_status_of_the_event_channel_decides_the_type() {
        let facts = normalize(MINIMAL.as_bytes()).unwrap();
        assert_eq!(facts.event_type, EventType::ConnectionActionRequired);
        assert_eq!(facts.reason.as_deref(), Some("AUTH_FAILED"));
        assert_eq!(facts.provider_type, "CONNECTIONS.UPDATED");
        assert_eq!(facts.channel_id.as_deref(), Some("7"));
    }

    #[test]
    fn escaped_or_numeric_strings_read_as_their_plain_twins() {
        // The looked-at strings borrow from the body when they can; these cannot be borrowed
        // and must read the same.
        let body = MINIMAL
            .replace(r#""UPDATED""#, r#""UPD\u0041TED""#)
            .replace(
                r#""status":"AUTH_FAILED""#,
                r#""status":"AUTH\u005FFAILED""#,
            )
            .replace(
                r#"{"channel_definition_id":"7","#,
                r#"{"channel_definition_id":7,"#,
            );
        assert!(body.contains(r#"\u0041"#) && body.contains(r#"\u005F"#) && body.contains(":7,"));
        let facts = normalize(body.as_bytes()).unwrap();
        assert_eq!(facts.event_type, EventType::ConnectionActionRequired);
        assert_eq!(facts.reason.as_deref(), Some("AUTH_FAILED"));
        assert_eq!(facts.provider_status.as_deref(), Some("AUTH_FAILED"));
        assert_eq!(facts.provider_type, "CONNECTIONS.UPDATED");
    }

    #[test]
    fn other_resource_types_are_unmapped_but_kept() {
        let body = r#"{"id":"e1","event_type":"UPDATED","resource_type":"ACCOUNTS"}"#;
        let facts = normalize(body.as_bytes()).unwrap();
        assert_eq!(facts.event_type, EventType::Unmapped);
        assert_eq!(facts.provider_type, "ACCOUNTS.UPDATED");
        assert_eq!(facts.connection_id, None);
    }

    #[test]
    fn an_account_event_is_keyed_by_its_connection_never_by_the_account_id() {
        let body = r#"{"id":"e1","event_type":"UPDATED","resource_type":"ACCOUNTS",
            "resource":{"id":"acc-9","connection_id":"123","user_id":"321","account_count":4}}"#;
        let facts = normalize(body.as_bytes()).unwrap();
        assert_eq!(facts.connection_id.as_deref(), Some("123"));
        assert_eq!(facts.user_id.as_deref(), Some("321"));
        assert_eq!(
            facts.account_count, None,
            "not a connection's account count"
        );
        let orphan = r#"{"id":"e2","event_type":"CREATED","resource_type":"TRANSACTIONS",
            "resource":{"id":"tx-1","user_id":"321"}}"#;
        let facts = normalize(orphan.as_bytes()).unwrap();
        assert_eq!(facts.connection_id, None);
        assert_eq!(facts.fallback_key.as_deref(), Some("user:321"));
    }

    #[test]
    fn new_transactions_is_read_at_the_top_level_and_in_connection_updated() {
        let top = r#"{"id":"e","event_type":"UPDATED","resource_type":"CONNECTIONS",
            "new_transactions":false}"#;
        assert_eq!(
            normalize(top.as_bytes()).unwrap().new_transactions,
            Some(false)
        );
        let nested = r#"{"id":"e","event_type":"UPDATED","resource_type":"CONNECTIONS",
            "connection_updated":{"new_transactions":true}}"#;
        assert_eq!(
            normalize(nested.as_bytes()).unwrap().new_transactions,
            Some(true)
        );
        let absent = r#"{"id":"e","event_type":"UPDATED","resource_type":"CONNECTIONS"}"#;
        assert_eq!(normalize(absent.as_bytes()).unwrap().new_transactions, None);
    }

    #[test]
    fn partial_success_is_a_success_that_says_so() {
        let body = MINIMAL.replace("AUTH_FAILED", "PARTIAL_SUCCESS");
        let facts = normalize(body.as_bytes()).unwrap();
        assert_eq!(facts.event_type, EventType::ConnectionSyncSucceeded);
        assert_eq!(facts.reason.as_deref(), Some("PARTIAL_SUCCESS"));
        assert_eq!(facts.provider_status.as_deref(), Some("PARTIAL_SUCCESS"));
    }

    #[test]
    fn empty_strings_read_as_absent() {
        let body = r#"{"id":"e","event_type":"UPDATED","resource_type":"CONNECTIONS",
            "channel_definition_id":"","resource":{"id":"","user_id":""}}"#;
        let facts = normalize(body.as_bytes()).unwrap();
        assert_eq!(facts.connection_id, None);
        assert_eq!(facts.user_id, None);
        assert_eq!(facts.channel_id, None);
        let queue = normalize_queue_event(br#"{"name":"","event_status":"RUNNING"}"#).unwrap();
        assert_eq!(queue.provider_type, "RUNNING");
    }

    #[test]
    fn a_bank_name_is_never_an_event_type() {
        // The seed's own fragment: a bank's name, a status, channels.
        let fragment = br#"{"channel_definition_id":"8701","name":"WBX Test Bank",
            "status":"RUNNING","channels":[{"channel_definition_id":"8701","status":"RUNNING"}]}"#;
        let facts = normalize_queue_event(fragment).unwrap();
        assert_eq!(facts.provider_type, "RUNNING");
        assert_eq!(facts.provider_status.as_deref(), Some("RUNNING"));
        assert_eq!(facts.event_type, EventType::Unmapped);
        // A name that is free text and no code anywhere: unreadable, dead-lettered.
        assert_eq!(
            normalize_queue_event(br#"{"id":"x","name":"WBX Test Bank"}"#),
            Err(NormalizeError::MissingField("event_status"))
        );
        // The end of a sync, named by a bank but carrying the documented event_status.
        let end = normalize_queue_event(
            br#"{"name":"Caisse d'Epargne","event_status":"SYNC_ALL_SUCCESS"}"#,
        )
        .unwrap();
        assert_eq!(end.event_type, EventType::ConnectionSyncSucceeded);
        assert_eq!(end.provider_type, "SYNC_ALL_SUCCESS");
    }

    #[test]
    fn queue_event_code_prefers_explicit_fields_and_keeps_the_status() {
        let facts = normalize_queue_event(
            br#"{"type":"LIST_ACCOUNTS","name":"SYNC_STARTED","event_status":"RUNNING"}"#,
        )
        .unwrap();
        assert_eq!(facts.provider_type, "LIST_ACCOUNTS");
        assert_eq!(facts.provider_status.as_deref(), Some("RUNNING"));
        let named =
            normalize_queue_event(br#"{"name":"SYNC_STARTED","event_status":"RUNNING"}"#).unwrap();
        assert_eq!(named.provider_type, "SYNC_STARTED");
        // The channel's status in the resource, when the event has none of its own.
        let by_channel = normalize_queue_event(
            br#"{"name":"SYNC_ENDED","channel_definition_id":"8700","resource_type":"CONNECTIONS",
                "resource":{"id":"123","channels":[{"channel_definition_id":"8700","status":"CHALLENGE_REQUIRED"}]}}"#,
        )
        .unwrap();
        assert_eq!(by_channel.event_type, EventType::ConnectionActionRequired);
        assert_eq!(by_channel.reason.as_deref(), Some("CHALLENGE_REQUIRED"));
        assert_eq!(by_channel.connection_id.as_deref(), Some("123"));
    }

    #[test]
    fn queue_events_map_sync_success_and_actions_and_keep_the_rest() {
        let success = normalize_queue_event(
            br#"{"id":"q1","name":"SYNC_ALL_SUCCESS","resource_type":"CONNECTIONS","resource":{"id":"c"}}"#,
        )
        .unwrap();
        assert_eq!(success.event_type, EventType::ConnectionSyncSucceeded);
        assert_eq!(success.connection_id.as_deref(), Some("c"));
        let by_status = normalize_queue_event(
            br#"{"id":"q2","name":"SYNC_END","event_status":"SYNC_ALL_SUCCESS","connection_id":7}"#,
        )
        .unwrap();
        assert_eq!(by_status.event_type, EventType::ConnectionSyncSucceeded);
        assert_eq!(by_status.provider_type, "SYNC_END");
        assert_eq!(by_status.connection_id.as_deref(), Some("7"));
        let action = normalize_queue_event(br#"{"name":"TOKEN_EXPIRED"}"#).unwrap();
        assert_eq!(action.event_type, EventType::ConnectionActionRequired);
        assert_eq!(action.reason.as_deref(), Some("TOKEN_EXPIRED"));
        let other = normalize_queue_event(br#"{"name":"SYNC_STARTED"}"#).unwrap();
        assert_eq!(other.event_type, EventType::Unmapped);
        assert_eq!(
            normalize_queue_event(br#"{"id":"x"}"#),
            Err(NormalizeError::MissingField("event_status"))
        );
        assert_eq!(
            normalize_queue_event(b"42"),
            Err(NormalizeError::NotAnObject)
        );
    }

    #[test]
    fn the_documented_misspelling_and_either_case_of_connections_are_read() {
        let misspelt = r#"{"id":"e","event_type":"UDPATED","resource_type":"CONNECTIONS",
            "channel_definition_id":"8700","resource":{"id":"123",
            "channels":[{"channel_definition_id":"8700","status":"SUCCESS"}]}}"#;
        let facts = normalize(misspelt.as_bytes()).unwrap();
        assert_eq!(facts.event_type, EventType::ConnectionSyncSucceeded);
        assert_eq!(facts.provider_type, "CONNECTIONS.UDPATED", "kept verbatim");
        let lower = r#"{"id":"e","event_type":"CREATED","resource_type":"connections",
            "resource":{"id":"123"}}"#;
        let facts = normalize(lower.as_bytes()).unwrap();
        assert_eq!(facts.event_type, EventType::ConnectionCreated);
        assert_eq!(facts.connection_id.as_deref(), Some("123"));
    }

    #[test]
    fn a_queue_event_of_no_stated_resource_type_is_about_its_resource_connection() {
        let connection = |raw: &[u8]| normalize_queue_event(raw).unwrap().connection_id;
        // The queue is subscribed to connections: an untyped resource is one...
        let untyped =
            br#"{"id":"q-9","name":"TOKEN_EXPIRED","resource":{"id":"123","user_id":"321"}}"#;
        assert_eq!(connection(untyped).as_deref(), Some("123"));
        let lower =
            br#"{"name":"TOKEN_EXPIRED","resource_type":"connections","resource":{"id":"123"}}"#;
        assert_eq!(connection(lower).as_deref(), Some("123"));
        // ...unless it names its connection, or the event does.
        let naming = br#"{"name":"TOKEN_EXPIRED","resource":{"id":"acc-1","connection_id":"123"}}"#;
        assert_eq!(connection(naming).as_deref(), Some("123"));
        let top = br#"{"name":"TOKEN_EXPIRED","connection_id":"123","resource":{"id":"acc-1"}}"#;
        assert_eq!(connection(top).as_deref(), Some("123"));
        // A resource said to be something else never gives its own id.
        let account =
            br#"{"name":"TOKEN_EXPIRED","resource_type":"ACCOUNTS","resource":{"id":"acc-1"}}"#;
        assert_eq!(connection(account), None);
    }

    #[test]
    fn an_account_count_a_cloudevents_integer_cannot_carry_is_left_out() {
        let count = |value: &str| {
            let body = format!(
                r#"{{"id":"e","event_type":"UPDATED","resource_type":"CONNECTIONS",
                "resource":{{"id":"1","account_count":{value}}}}}"#
            );
            normalize(body.as_bytes()).unwrap().account_count
        };
        assert_eq!(count("3"), Some(3));
        assert_eq!(count("2147483647"), Some(2_147_483_647));
        for beyond in ["2147483648", "-1", "1.5", "1e300"] {
            assert_eq!(count(beyond), None, "{beyond}");
        }
    }

    #[test]
    fn required_fields_are_named() {
        let body = r#"{"event_type":"UPDATED","resource_type":"CONNECTIONS"}"#;
        assert_eq!(
            normalize(body.as_bytes()),
            Err(NormalizeError::MissingField("id"))
        );
        let body = r#"{"id":"x","resource_type":"CONNECTIONS"}"#;
        assert_eq!(
            normalize(body.as_bytes()),
            Err(NormalizeError::MissingField("event_type"))
        );
    }
}
