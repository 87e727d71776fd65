//! Powens (ex Budget Insight) webhooks (`kind = "powens"`).
//!
//! Powens' own text on webhook authentication was not available to us (providers.md 3.1): its
//! signature scheme is **not confirmed**, so finhook does not claim to verify one. What it
//! supports is what a Powens webhook URL can carry for certain: the source's `allowed_ips`, and
//! a shared secret as HTTP Basic (`https://user:secret@host/…`), a bearer token, or a token in
//! the URL's query (`auth = "query"`) — see [`crate::auth::credentials`] — and/or mutual TLS.
//!
//! Body, seen in third-party integrations only: the event name is **not** in the body
//! (`USER_CREATED` and `USER_DELETED` are both a bare User object), because Powens registers one
//! URL per event. So the event comes from the URL, `POST /webhooks/<source>/<EVENT>`, or from
//! the source's fixed `event`. `CONNECTION_SYNCED` is `{user, connection, push_type}`,
//! `CONNECTION_DELETED` a bare Connection, `USER_*` a bare User. No event id: it is derived from
//! the event name and the body (so the two identical user bodies get different ids). No event
//! time in UTC: `connection.last_update` is Paris local time without an offset, so it is kept in
//! `data` and not used as `time`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    parse_value, text_at, BuildContext, EventFacts, NormalizeError, Provider, ProviderKind,
};
use crate::auth::credentials::{AuthMode, CredentialSettings};
use crate::auth::{Verified, Verify};
use crate::secret::Secret;
use crate::vocabulary::{fallback_key, EventType};

/// Connection states that need the user (seen in a third-party integration).
const ACTION_REQUIRED_STATES: &[&str] = &[
    "SCARequired",
    "webauthRequired",
    "additionalInformationNeeded",
    "decoupled",
    "actionNeeded",
    "wrongpass",
    "passwordExpired",
];

pub struct Powens;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowensSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_parameter: Option<String>,
    /// The event this source's URL was registered for, when the URL does not end with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

impl PowensSettings {
    fn credentials(&self) -> CredentialSettings {
        CredentialSettings {
            auth: self.auth,
            username: self.username.clone(),
            query_parameter: self.query_parameter.clone(),
        }
    }
}

impl Provider for Powens {
    const KIND: ProviderKind = ProviderKind::new("powens");
    const PATH_EVENTS: bool = true;
    const VERIFICATION: &'static str = "signature scheme not confirmed: IP allow-list plus HTTP Basic, bearer or query token on the registered URL, and/or mutual TLS";
    type Settings = PowensSettings;

    fn validate(
        settings: &PowensSettings,
        key: &str,
        has_secret: bool,
        problems: &mut Vec<String>,
    ) {
        settings
            .credentials()
            .validate(key, "powens", has_secret, problems);
        if settings.event.as_deref() == Some("") {
            problems.push(format!("{key}.event: must not be empty"));
        }
    }

    fn verifier(
        settings: &PowensSettings,
        secrets: Vec<Secret>,
        _: &BuildContext,
    ) -> Result<Box<dyn Verify>, String> {
        Ok(Box::new(settings.credentials().verifier(secrets)))
    }

    fn read(settings: &PowensSettings, body: &Verified<'_>) -> Result<EventFacts, NormalizeError> {
        let event = body
            .path_event()
            .or(settings.event.as_deref())
            .ok_or(NormalizeError::MissingField(
                "event (the URL's last segment)",
            ))?
            .to_ascii_uppercase();
        let value = parse_value(body.body())?;
        let state = text_at(&value, "connection.state");
        let (event_type, reason) = canonical_type(&event, state.as_deref());
        let mut facts = EventFacts::new(event_type, event.clone());
        facts.reason = reason;
        facts.provider_status = state;
        let (connection, user) = match event.as_str() {
            "CONNECTION_SYNCED" => (
                text_at(&value, "connection.id"),
                text_at(&value, "user.id").or_else(|| text_at(&value, "connection.id_user")),
            ),
            "CONNECTION_DELETED" => (text_at(&value, "id"), text_at(&value, "id_user")),
            _ if event.starts_with("USER_") => (None, text_at(&value, "id")),
            _ => (text_at(&value, "connection.id"), text_at(&value, "user.id")),
        };
        facts.connection_id = connection;
        facts.fallback_key = user.as_ref().map(|user| fallback_key("user", user));
        facts.user_id = user;
        facts.provider_event_id = Some(event_id(&event, body.body()));
        Ok(facts)
    }
}

/// The same event and bytes give the same id (a retry is recognisable); the event name is part
/// of it because different events can carry identical bodies.
fn event_id(event: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"powens\n");
    hasher.update(event.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    crate::envelope::lower_hex(&hasher.finalize())
}

/// Powens' event names (seen) to canonical types; the states' meaning is inferred.
fn canonical_type(event: &str, state: Option<&str>) -> (EventType, Option<String>) {
    match event {
        "CONNECTION_SYNCED" => match state {
            None => (EventType::ConnectionSyncSucceeded, None),
            Some(state) if ACTION_REQUIRED_STATES.contains(&state) => {
                (EventType::ConnectionActionRequired, Some(state.to_owned()))
            }
            Some(state) => (EventType::ConnectionSyncFailed, Some(state.to_owned())),
        },
        "CONNECTION_DELETED" => (EventType::ConnectionDeleted, None),
        "USER_CREATED" => (EventType::UserCreated, None),
        "USER_DELETED" => (EventType::UserDeleted, None),
        _ => (EventType::Unmapped, None),
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;

    #[test]
    fn the_event_comes_from_the_path_and_identical_bodies_get_distinct_ids() {
        let body = br#"{"id":4217,"signin":"2026-11-20 10:14:02"}"#;
        let headers = HeaderMap::new();
        let settings = PowensSettings::default();
        let created = Powens::read(
            &settings,
            &Verified::assume_at(body, &headers, "USER_CREATED"),
        )
        .unwrap();
        let deleted = Powens::read(
            &settings,
            &Verified::assume_at(body, &headers, "user_deleted"),
        )
        .unwrap();
        assert_eq!(created.event_type, EventType::UserCreated);
        assert_eq!(deleted.event_type, EventType::UserDeleted);
        assert_eq!(deleted.user_id.as_deref(), Some("4217"));
        assert_ne!(created.provider_event_id, deleted.provider_event_id);
        assert_eq!(
            Powens::read(&settings, &Verified::assume(body, &headers)),
            Err(NormalizeError::MissingField(
                "event (the URL's last segment)"
            ))
        );
        let fixed = PowensSettings {
            event: Some("USER_DELETED".into()),
            ..PowensSettings::default()
        };
        assert_eq!(
            Powens::read(&fixed, &Verified::assume(body, &headers))
                .unwrap()
                .event_type,
            EventType::UserDeleted
        );
    }

    #[test]
    fn connection_states_decide_the_sync_outcome() {
        assert_eq!(
            canonical_type("CONNECTION_SYNCED", None).0,
            EventType::ConnectionSyncSucceeded
        );
        assert_eq!(
            canonical_type("CONNECTION_SYNCED", Some("SCARequired")),
            (
                EventType::ConnectionActionRequired,
                Some("SCARequired".to_owned())
            )
        );
        assert_eq!(
            canonical_type("CONNECTION_SYNCED", Some("websiteUnavailable")).0,
            EventType::ConnectionSyncFailed
        );
    }
}
