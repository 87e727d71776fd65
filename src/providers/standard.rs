//! Standard Webhooks sources (`kind = "standard"`): an integrator's own services, Svix and any
//! sender following standardwebhooks.com.
//!
//! Verification ([`crate::auth::standard_webhooks`]): `webhook-signature` over
//! `<webhook-id>.<webhook-timestamp>.<body>`, `v1` HMAC-SHA256 under the source's `whsec_`
//! secret (and `previous_secret` during a rotation) or `v1a` ed25519 under one of
//! `public_keys` (`whpk_`), the timestamp within `tolerance` (5 minutes) either way. Seen: the
//! spec at standard-webhooks @ b2fa7b87 and its libraries' test vectors (tests/fixtures/vectors).
//!
//! Reading: the spec's recommended payload `{"type", "timestamp", "data"}`. The envelope id is
//! `webhook-id`, stable across retries (seen). A `type` that is one of finhook's canonical
//! names without the `io.finhook.` prefix keeps it; any other is published as unmapped. The
//! connection id is wherever the sender puts it: `connection_id_path` (default
//! `data.connection_id`, our convention, not the spec's).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    parse_value, text_at, time_of, BuildContext, EventFacts, NormalizeError, Provider, ProviderKind,
};
use crate::auth::standard_webhooks::{
    decode_public_key, decode_secret, StandardWebhooks, DEFAULT_TOLERANCE, ID_HEADER,
};
use crate::auth::{ready, Request, Verified, Verify, VerifyFuture};
use crate::secret::Secret;
use crate::vocabulary::{fallback_key, EventType};

pub struct Standard;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandardSettings {
    /// ed25519 public keys (`whpk_…`) whose `v1a` signatures are accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_keys: Vec<String>,
    /// How far `webhook-timestamp` may be from finhook's clock, either way (default 5m).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub tolerance: Option<Duration>,
    /// Where the payload holds the connection (or other ordering) id (default
    /// `data.connection_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id_path: Option<String>,
    /// Where it holds the user id (default `data.user_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id_path: Option<String>,
}

impl Provider for Standard {
    const KIND: ProviderKind = ProviderKind::new("standard");
    const VERIFICATION: &'static str = "Standard Webhooks: `webhook-signature` `v1,` HMAC-SHA256 (`whsec_` secrets, rotation) or `v1a,` ed25519 (`whpk_` keys) over `id.timestamp.body`, ±5 min";
    type Settings = StandardSettings;

    fn validate(
        settings: &StandardSettings,
        key: &str,
        has_secret: bool,
        problems: &mut Vec<String>,
    ) {
        if !has_secret && settings.public_keys.is_empty() {
            problems.push(format!(
                "{key}.secret: a standard source needs its `whsec_` secret or at least one of `public_keys`"
            ));
        }
        for (index, public_key) in settings.public_keys.iter().enumerate() {
            if let Err(problem) = decode_public_key(public_key) {
                problems.push(format!("{key}.public_keys[{index}]: {problem}"));
            }
        }
        if settings
            .tolerance
            .is_some_and(|tolerance| tolerance.is_zero())
        {
            problems.push(format!("{key}.tolerance: must be greater than 0"));
        }
    }

    fn verifier(
        settings: &StandardSettings,
        secrets: Vec<Secret>,
        _: &BuildContext,
    ) -> Result<Box<dyn Verify>, String> {
        let secrets = secrets
            .iter()
            .map(decode_secret)
            .collect::<Result<Vec<_>, _>>()?;
        let public_keys = settings
            .public_keys
            .iter()
            .map(|key| decode_public_key(key))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Box::new(StandardVerifier(StandardWebhooks::new(
            secrets,
            public_keys,
            settings.tolerance.unwrap_or(DEFAULT_TOLERANCE),
        ))))
    }

    fn read(
        settings: &StandardSettings,
        body: &Verified<'_>,
    ) -> Result<EventFacts, NormalizeError> {
        let value = parse_value(body.body())?;
        let provider_type = text_at(&value, "type").ok_or(NormalizeError::MissingField("type"))?;
        let event_type = EventType::from_short_name(&provider_type).unwrap_or(EventType::Unmapped);
        let mut facts = EventFacts::new(event_type, provider_type);
        facts.provider_event_id = body.header(ID_HEADER).map(str::to_owned);
        facts.time = time_of(super::at(&value, "timestamp"));
        let connection_path = settings
            .connection_id_path
            .as_deref()
            .unwrap_or("data.connection_id");
        facts.connection_id = text_at(&value, connection_path);
        facts.user_id = text_at(
            &value,
            settings.user_id_path.as_deref().unwrap_or("data.user_id"),
        );
        facts.fallback_key = facts
            .user_id
            .as_ref()
            .map(|user| fallback_key("user", user));
        Ok(facts)
    }
}

#[derive(Debug)]
struct StandardVerifier(StandardWebhooks);

impl Verify for StandardVerifier {
    fn signature_header(&self) -> Option<&str> {
        Some(crate::auth::standard_webhooks::SIGNATURE_HEADER)
    }

    fn verify<'r>(&'r self, request: &'r Request<'r>) -> VerifyFuture<'r> {
        ready(
            self.0
                .verify(request.headers, request.body, request.received_at),
        )
    }

    fn sign(
        &self,
        body: &[u8],
        at: time::OffsetDateTime,
    ) -> Option<Vec<(http::HeaderName, String)>> {
        self.0.sign(body, at)
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;

    #[test]
    fn canonical_names_are_kept_and_others_unmapped() {
        let mut headers = HeaderMap::new();
        headers.insert(ID_HEADER, "msg_1".parse().unwrap());
        let read = |body: &str| {
            Standard::read(
                &StandardSettings::default(),
                &Verified::assume(body.as_bytes(), &headers),
            )
        };
        let facts = read(
            r#"{"type":"connection.sync.succeeded","timestamp":"2026-11-26T08:00:03Z","data":{"connection_id":"c1","user_id":7}}"#,
        )
        .unwrap();
        assert_eq!(facts.event_type, EventType::ConnectionSyncSucceeded);
        assert_eq!(facts.provider_event_id.as_deref(), Some("msg_1"));
        assert_eq!(facts.connection_id.as_deref(), Some("c1"));
        assert_eq!(facts.user_id.as_deref(), Some("7"));
        assert_eq!(facts.time.unwrap().unix_timestamp(), 1_795_680_003);
        assert_eq!(
            read(r#"{"type":"unmapped","data":{}}"#).unwrap().event_type,
            EventType::Unmapped
        );
        assert_eq!(
            read(r#"{"type":"ledger.entry.posted"}"#)
                .unwrap()
                .event_type,
            EventType::Unmapped
        );
        assert_eq!(
            read(r#"{"data":{}}"#),
            Err(NormalizeError::MissingField("type"))
        );
    }
}
