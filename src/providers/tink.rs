//! Tink Events V2 webhooks (`kind = "tink"`).
//!
//! Verification, seen (docs.tink.com webhook-signature-validation): `X-Tink-Signature:
//! t=<unix seconds>,v1=<hex>`, HMAC-SHA256 of `t + "." + raw body` under the secret stored when
//! the webhook endpoint was created; only `t` and `v1` are read. Tink advises a replay window of
//! at least 5 minutes so redeliveries still pass: `tolerance` (default 5m).
//!
//! Body, seen: `{"context": {"userId", "externalUserId"}, "event": "<name>", "content": {…}}`.
//! Tink sends no event id and no event time in the envelope: the id is derived from the body.
//! Inferred (tests/fixtures/tink/README.md): the connection-like id is
//! `content.credentialsId` (only `refresh:finished` has it; other events are keyed by
//! `context.userId`), and the mapping of `credentialsStatus` to sync outcomes.

use std::time::Duration;

use http::HeaderName;
use serde::{Deserialize, Serialize};

use super::{
    at, parse_value, text_at, time_of, BuildContext, EventFacts, NormalizeError, Provider,
    ProviderKind,
};
use crate::auth::hmac::{Algorithm, Encoding, HmacScheme, Layout, TimestampSource};
use crate::auth::{Verified, Verify};
use crate::secret::Secret;
use crate::vocabulary::{fallback_key, EventType};

pub const SIGNATURE_HEADER: &str = "x-tink-signature";

/// `credentialsStatus` values of `refresh:finished` that need the user (inferred from Tink's
/// credentials status table).
const ACTION_REQUIRED_STATUSES: &[&str] = &[
    "AUTHENTICATION_ERROR",
    "SESSION_EXPIRED",
    "AWAITING_MOBILE_BANKID_AUTHENTICATION",
    "AWAITING_SUPPLEMENTAL_INFORMATION",
    "AWAITING_THIRD_PARTY_APP_AUTHENTICATION",
];

pub struct Tink;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TinkSettings {
    /// How far `t` may be from finhook's clock, either way (default 5m, Tink's advice).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub tolerance: Option<Duration>,
}

/// Tink's scheme under these secrets (current first).
pub fn scheme(secrets: &[Secret], tolerance: Duration) -> HmacScheme {
    HmacScheme {
        header: HeaderName::from_static(SIGNATURE_HEADER),
        layout: Layout::Pairs {
            signature_key: "v1".to_owned(),
            timestamp_key: "t".to_owned(),
        },
        algorithm: Algorithm::Sha256,
        encoding: Encoding::Hex,
        content: "{timestamp}.{body}"
            .parse()
            .expect("the template is well formed"),
        timestamp: TimestampSource::Pair,
        tolerance,
        keys: secrets
            .iter()
            .map(|secret| secret.expose().as_bytes().to_vec())
            .collect(),
    }
}

impl Provider for Tink {
    const KIND: ProviderKind = ProviderKind::new("tink");
    const VERIFICATION: &'static str =
        "`X-Tink-Signature: t=…,v1=<hex>`, HMAC-SHA256 of `t.body`, ±5 min";
    type Settings = TinkSettings;

    fn validate(settings: &TinkSettings, key: &str, has_secret: bool, problems: &mut Vec<String>) {
        if !has_secret {
            problems.push(format!(
                "{key}.secret: a tink source needs the webhook endpoint's secret"
            ));
        }
        if settings
            .tolerance
            .is_some_and(|tolerance| tolerance.is_zero())
        {
            problems.push(format!("{key}.tolerance: must be greater than 0"));
        }
    }

    fn verifier(
        settings: &TinkSettings,
        secrets: Vec<Secret>,
        _: &BuildContext,
    ) -> Result<Box<dyn Verify>, String> {
        let tolerance = settings.tolerance.unwrap_or(Duration::from_secs(5 * 60));
        Ok(Box::new(scheme(&secrets, tolerance)))
    }

    fn read(_: &TinkSettings, body: &Verified<'_>) -> Result<EventFacts, NormalizeError> {
        let value = parse_value(body.body())?;
        let event = text_at(&value, "event").ok_or(NormalizeError::MissingField("event"))?;
        let status = text_at(&value, "content.credentialsStatus");
        let (event_type, reason) = canonical_type(&event, status.as_deref());
        let mut facts = EventFacts::new(event_type, event);
        facts.reason = reason;
        facts.provider_status = status;
        facts.connection_id = text_at(&value, "content.credentialsId");
        facts.user_id = text_at(&value, "context.userId");
        facts.fallback_key = facts
            .user_id
            .as_ref()
            .map(|user| fallback_key("user", user));
        facts.time = time_of(at(&value, "content.finished"))
            .or_else(|| time_of(at(&value, "content.updated")));
        // Account events carry no id and no time: the next `account:transactions:modified` of
        // an account can be the same bytes as the last, and must not share its id.
        facts.unique_per_delivery = facts.time.is_none();
        Ok(facts)
    }
}

/// Tink's event names (seen) to canonical types (inferred).
fn canonical_type(event: &str, credentials_status: Option<&str>) -> (EventType, Option<String>) {
    match event {
        "refresh:finished" => match credentials_status {
            Some("UPDATED") => (EventType::ConnectionSyncSucceeded, None),
            Some(status) if ACTION_REQUIRED_STATUSES.contains(&status) => {
                (EventType::ConnectionActionRequired, Some(status.to_owned()))
            }
            Some(status) => (EventType::ConnectionSyncFailed, Some(status.to_owned())),
            None => (EventType::ConnectionUpdated, None),
        },
        "account:created" => (EventType::AccountCreated, None),
        "account:updated"
        | "account-transactions:modified"
        | "account-booked-transactions:modified"
        | "account-transactions:deleted" => (EventType::AccountUpdated, None),
        "payment:updated" | "mandate-payment:updated" => {
            (EventType::PaymentTransactionUpdated, None)
        }
        _ => (EventType::Unmapped, None),
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;
    use time::OffsetDateTime;

    use super::*;

    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let scheme = scheme(&[Secret::new("tink-secret")], Duration::from_secs(300));
        let at = OffsetDateTime::from_unix_timestamp(1_795_680_000).unwrap();
        let body = br#"{"event":"refresh:finished"}"#;
        let signed = scheme.sign(&HeaderMap::new(), body, at).unwrap();
        let value = &signed[0].1;
        assert!(value.starts_with("t=1795680000,v1="), "{value}");
        // Computed outside finhook (Python's hmac): hex(HMAC-SHA256(secret, "1795680000." + body)).
        assert_eq!(
            value,
            "t=1795680000,v1=b591954c299c34091a4596fafe2cf6353d7fd3d7b808709635aa17f717ee2b10"
        );
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, value.parse().unwrap());
        assert!(scheme.verify(&headers, body, at).is_ok());
        assert!(scheme
            .verify(&headers, body, at + Duration::from_secs(301))
            .is_err());
    }

    #[test]
    fn events_without_a_time_get_an_id_per_delivery() {
        let read = |body: &str| {
            Tink::read(
                &TinkSettings::default(),
                &Verified::assume(body.as_bytes(), &HeaderMap::new()),
            )
            .unwrap()
        };
        let modified = read(include_str!(
            "../../tests/fixtures/tink/account-transactions-modified.json"
        ));
        assert!(modified.unique_per_delivery);
        let refresh = read(include_str!(
            "../../tests/fixtures/tink/refresh-finished-updated.json"
        ));
        assert!(refresh.time.is_some());
        assert!(
            !refresh.unique_per_delivery,
            "its time tells two events apart"
        );
    }

    #[test]
    fn refresh_outcomes_follow_the_credentials_status() {
        assert_eq!(
            canonical_type("refresh:finished", Some("UPDATED")).0,
            EventType::ConnectionSyncSucceeded
        );
        assert_eq!(
            canonical_type("refresh:finished", Some("AUTHENTICATION_ERROR")),
            (
                EventType::ConnectionActionRequired,
                Some("AUTHENTICATION_ERROR".to_owned())
            )
        );
        assert_eq!(
            canonical_type("refresh:finished", Some("TEMPORARY_ERROR")).0,
            EventType::ConnectionSyncFailed
        );
        assert_eq!(
            canonical_type("reports-generation:completed", None).0,
            EventType::Unmapped
        );
    }
}
