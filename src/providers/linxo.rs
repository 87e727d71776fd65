//! Linxo Connect (Oxlin) webhooks: one event per finished channel synchronization.
//!
//! Body: `{"id", "event_type", "resource_type", "creation_date" (s), "channel_definition_id",
//! "resource": {connection, "account_count", "accounts"}, ...}`. Linxo signs nothing: the
//! caller is authenticated by the source's shared secret (see `http::auth`).

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

use super::{id_string, number, parse_object, text, unix_time, EventFacts, NormalizeError};
use crate::envelope::EventType;

/// Channel statuses that need the user: re-enter credentials, answer a challenge, ...
/// The same names are Oxlin's queue event names for these situations.
pub const ACTION_REQUIRED_STATUSES: &[&str] = &[
    "AUTH_FAILED",
    "TOKEN_EXPIRED",
    "PASSWORD_CHANGE_REQUIRED",
    "USER_ACTION_REQUIRED",
    "CHALLENGE_REQUIRED",
];

#[derive(Deserialize)]
struct LinxoEvent {
    #[serde(default, deserialize_with = "id_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    event_type: Option<String>,
    #[serde(default, deserialize_with = "text")]
    resource_type: Option<String>,
    #[serde(default, deserialize_with = "number")]
    creation_date: Option<f64>,
    #[serde(default, deserialize_with = "id_string")]
    channel_definition_id: Option<String>,
    #[serde(default, deserialize_with = "resource_object")]
    resource: Option<LinxoResource>,
}

#[derive(Deserialize)]
struct LinxoResource {
    #[serde(default, deserialize_with = "id_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "id_string")]
    user_id: Option<String>,
    #[serde(default, deserialize_with = "number")]
    account_count: Option<f64>,
    /// Only the length matters; the accounts themselves stay in `data`, untouched.
    #[serde(default)]
    accounts: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    channels: Option<Vec<LinxoChannel>>,
}

#[derive(Deserialize)]
struct LinxoChannel {
    #[serde(default, deserialize_with = "id_string")]
    channel_definition_id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    status: Option<String>,
}

fn resource_object<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<LinxoResource>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Resource {
        Object(LinxoResource),
        Other(IgnoredAny),
    }
    Ok(match Option::<Resource>::deserialize(deserializer)? {
        Some(Resource::Object(resource)) => Some(resource),
        _ => None,
    })
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
        .and_then(|resource| channel_status(resource, event.channel_definition_id.as_deref()));
    let (canonical, reason) = canonical_type(&resource_type, &event_type, channel_status);
    let mut facts = EventFacts::new(canonical, format!("{resource_type}.{event_type}"));
    facts.provider_event_id = Some(id);
    facts.time = event.creation_date.and_then(unix_time);
    facts.reason = reason;
    facts.channel_id = event.channel_definition_id;
    if let Some(resource) = event.resource {
        facts.connection_id = resource.id;
        facts.user_id = resource.user_id;
        facts.account_count = resource.account_count.map(|count| count.max(0.0) as u64);
        // Linxo leaves `accounts` empty above 100 accounts while `account_count` says how many
        // there are: flag it, so consumers never read that as "no accounts".
        let listed = resource.accounts.as_ref().map_or(0, Vec::len) as u64;
        facts.accounts_truncated = facts.account_count.map(|count| count > listed);
    }
    Ok(facts)
}

/// The status of the channel the event is about (the event names it by definition id).
fn channel_status<'r>(resource: &'r LinxoResource, channel: Option<&str>) -> Option<&'r str> {
    let channel = channel?;
    resource
        .channels
        .as_deref()?
        .iter()
        .find(|candidate| candidate.channel_definition_id.as_deref() == Some(channel))?
        .status
        .as_deref()
}

/// A connection UPDATED event is sent when a channel's synchronization ends, so the channel's
/// status says how it ended; without one it is a plain update.
fn canonical_type(
    resource_type: &str,
    event_type: &str,
    channel_status: Option<&str>,
) -> (EventType, Option<String>) {
    if resource_type != "CONNECTIONS" {
        return (EventType::Unmapped, None);
    }
    match event_type {
        "CREATED" => (EventType::ConnectionCreated, None),
        "DELETED" => (EventType::ConnectionDeleted, None),
        "UPDATED" => match channel_status {
            Some("SUCCESS" | "PARTIAL_SUCCESS") => (EventType::ConnectionSyncSucceeded, None),
            Some("FAILED") => (EventType::ConnectionSyncFailed, Some("FAILED".to_owned())),
            Some(status) if ACTION_REQUIRED_STATUSES.contains(&status) => {
                (EventType::ConnectionActionRequired, Some(status.to_owned()))
            }
            _ => (EventType::ConnectionUpdated, None),
        },
        _ => (EventType::Unmapped, None),
    }
}

/// One event of an Oxlin queue page. The shape is our reconstruction of a fragmentary example
/// (tests/fixtures/oxlin-queue/README.md): every field is optional and unknown ones are ignored.
#[derive(Deserialize)]
struct QueueEvent {
    #[serde(default, deserialize_with = "id_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "number")]
    date: Option<f64>,
    #[serde(default, deserialize_with = "text")]
    name: Option<String>,
    #[serde(default, deserialize_with = "text")]
    event_status: Option<String>,
    #[serde(default, deserialize_with = "id_string")]
    channel_definition_id: Option<String>,
    #[serde(default, deserialize_with = "id_string")]
    connection_id: Option<String>,
    #[serde(default, deserialize_with = "resource_object")]
    resource: Option<LinxoResource>,
}

/// The status that ends a synchronization successfully.
pub const SYNC_ALL_SUCCESS: &str = "SYNC_ALL_SUCCESS";

/// Reads one event of an Oxlin queue. It needs a `name` (or at least an `event_status`).
pub fn normalize_queue_event(raw: &[u8]) -> Result<EventFacts, NormalizeError> {
    let event: QueueEvent = parse_object(raw)?;
    let name = event
        .name
        .clone()
        .or_else(|| event.event_status.clone())
        .ok_or(NormalizeError::MissingField("name"))?;
    let status = event.event_status.as_deref();
    let is = |wanted: &str| name == wanted || status == Some(wanted);
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
    let mut facts = EventFacts::new(canonical, name);
    facts.provider_event_id = event.id;
    facts.time = event.date.and_then(unix_time);
    facts.reason = reason;
    facts.channel_id = event.channel_definition_id;
    facts.connection_id = event
        .resource
        .as_ref()
        .and_then(|resource| resource.id.clone())
        .or(event.connection_id);
    facts.user_id = event.resource.and_then(|resource| resource.user_id);
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
    fn other_resource_types_are_unmapped_but_kept() {
        let body = r#"{"id":"e1","event_type":"UPDATED","resource_type":"ACCOUNTS"}"#;
        let facts = normalize(body.as_bytes()).unwrap();
        assert_eq!(facts.event_type, EventType::Unmapped);
        assert_eq!(facts.provider_type, "ACCOUNTS.UPDATED");
        assert_eq!(facts.connection_id, None);
    }

    #[test]
    fn queue_events_map_sync_success_and_actions_and_keep_the_rest() {
        let success = normalize_queue_event(
            br#"{"id":"q1","name":"SYNC_ALL_SUCCESS","resource":{"id":"c"}}"#,
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
            Err(NormalizeError::MissingField("name"))
        );
        assert_eq!(
            normalize_queue_event(b"42"),
            Err(NormalizeError::NotAnObject)
        );
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
