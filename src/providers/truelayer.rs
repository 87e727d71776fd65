//! TrueLayer webhooks (`kind = "truelayer"`).
//!
//! Verification, seen (TrueLayer/truelayer-signing `request-signing-v2.md` and its webhook
//! example): `Tl-Signature` is a JWS with a detached payload, ES512 (P-521). Its header's `jku`
//! must be one of `allowed_jku` (by default TrueLayer's production and sandbox JWKS URLs,
//! compared exactly); the JWKS is fetched from it, cached, and fetched again for an unknown
//! `kid`. The signed content is the method, the path **as registered with TrueLayer**
//! (`webhook_path`: a proxy may rewrite the path finhook sees), the headers named in
//! `tl_headers`, and the raw body; TrueLayer's own crate (`truelayer-signing`) checks it, so the
//! construction is not rewritten here. A key server outage answers 503.
//! `X-Tl-Webhook-Timestamp` must be among the signed headers, and finhook refuses one further
//! than `tolerance` (5 minutes) from its clock, which the library leaves to the receiver (the
//! bound is ours). By default both of TrueLayer's JWKS URLs are allowed, as asked; a sandbox
//! signature is genuine but anyone can get one, so finhook warns at start: in production set
//! `allowed_jku` to the production URL only.
//!
//! Body, seen: `type` (Payments API v3) or `event_type` (legacy), `event_id` (kept for dedup),
//! resource ids (`payment_id`, `payout_id`, `refund_id`, `mandate_id`) at the top level or in
//! `event_body`. TrueLayer has no connection: events are keyed by their resource. The mapping to
//! canonical types is inferred (tests/fixtures/truelayer/README.md).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{
    at, parse_value, text_at, time_of, BuildContext, EventFacts, NormalizeError, Provider,
    ProviderKind,
};
use crate::auth::keys::{CachePolicy, FetchError, KeyCache};
use crate::auth::{header_text, later, AuthError, Request, Verified, Verify, VerifyFuture};
use crate::secret::Secret;
use crate::vocabulary::{fallback_key, EventType};

pub const SIGNATURE_HEADER: &str = "tl-signature";
pub const TIMESTAMP_HEADER: &str = "x-tl-webhook-timestamp";
/// TrueLayer's JWKS URLs, production and sandbox (seen).
pub const DEFAULT_ALLOWED_JKU: [&str; 2] = [
    "https://webhooks.truelayer.com/.well-known/jwks",
    "https://webhooks.truelayer-sandbox.com/.well-known/jwks",
];
const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);
/// The longest `kid` looked up (TrueLayer's are UUIDs).
const MAX_KID_LENGTH: usize = 128;

pub struct TrueLayer;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrueLayerSettings {
    /// The webhook URL's path as registered in TrueLayer's console (it is signed). Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_path: Option<String>,
    /// `jku` values accepted; default TrueLayer's production and sandbox JWKS URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_jku: Option<Vec<String>>,
    /// How far `X-Tl-Webhook-Timestamp` may be from finhook's clock, either way (default 5m).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub tolerance: Option<Duration>,
}

impl Provider for TrueLayer {
    const KIND: ProviderKind = ProviderKind::new("truelayer");
    const VERIFICATION: &'static str = "`Tl-Signature` detached JWS ES512 over method, registered path, signed headers and body; `jku` allow-list, JWKS fetched and cached";
    type Settings = TrueLayerSettings;

    fn validate(
        settings: &TrueLayerSettings,
        key: &str,
        has_secret: bool,
        problems: &mut Vec<String>,
    ) {
        match settings.webhook_path.as_deref() {
            Some(path) if path.starts_with('/') => {}
            _ => problems.push(format!(
                "{key}.webhook_path: required, the path of the webhook URL registered with TrueLayer (starts with /)"
            )),
        }
        if has_secret {
            problems.push(format!(
                "{key}.secret: truelayer sources are verified with TrueLayer's public keys; remove `secret`"
            ));
        }
        if let Some(allowed) = &settings.allowed_jku {
            if allowed.is_empty() {
                problems.push(format!("{key}.allowed_jku: must not be empty"));
            }
            for (index, jku) in allowed.iter().enumerate() {
                if let Err(problem) = super::check_key_url(jku) {
                    problems.push(format!("{key}.allowed_jku[{index}]: {problem}"));
                }
            }
        }
    }

    fn verifier(
        settings: &TrueLayerSettings,
        _: Vec<Secret>,
        context: &BuildContext,
    ) -> Result<Box<dyn Verify>, String> {
        let allowed_jku = settings.allowed_jku.clone().unwrap_or_else(|| {
            DEFAULT_ALLOWED_JKU
                .iter()
                .map(|url| (*url).to_owned())
                .collect()
        });
        if allowed_jku.iter().any(|jku| jku == DEFAULT_ALLOWED_JKU[1]) {
            // Anyone can open a sandbox account and register this URL: sandbox-signed
            // webhooks are genuine TrueLayer signatures, but not of production events.
            tracing::warn!(
                path = settings.webhook_path.as_deref().unwrap_or(""),
                "a truelayer source accepts TrueLayer's sandbox keys; in production set allowed_jku to the production JWKS URL only"
            );
        }
        Ok(Box::new(TrueLayerVerifier {
            webhook_path: settings.webhook_path.clone().unwrap_or_default(),
            allowed_jku,
            tolerance: settings.tolerance.unwrap_or(DEFAULT_TOLERANCE),
            http: context.http.clone(),
            keys: KeyCache::new(CachePolicy::default()),
        }))
    }

    fn read(_: &TrueLayerSettings, body: &Verified<'_>) -> Result<EventFacts, NormalizeError> {
        let value = parse_value(body.body())?;
        let provider_type = text_at(&value, "type")
            .or_else(|| text_at(&value, "event_type"))
            .ok_or(NormalizeError::MissingField("type"))?;
        let reason = text_at(&value, "failure_reason")
            .or_else(|| text_at(&value, "event_body.failure_reason"));
        let event_type = canonical_type(&provider_type);
        let mut facts = EventFacts::new(event_type, provider_type);
        if matches!(event_type, EventType::PaymentTransactionUpdated) {
            facts.reason = reason;
        }
        facts.provider_event_id = text_at(&value, "event_id");
        facts.fallback_key = [
            "payment",
            "payout",
            "refund",
            "mandate",
            "payment_link",
            "transaction",
        ]
        .iter()
        .find_map(|resource| {
            let field = format!("{resource}_id");
            text_at(&value, &field)
                .or_else(|| text_at(&value, &format!("event_body.{field}")))
                .map(|id| fallback_key(resource, &id))
        });
        facts.user_id = text_at(&value, "user_id");
        facts.time = [
            "executed_at",
            "settled_at",
            "failed_at",
            "authorized_at",
            "created_at",
        ]
        .iter()
        .find_map(|field| time_of(at(&value, field)))
        .or_else(|| {
            body.header(TIMESTAMP_HEADER)
                .and_then(|text| OffsetDateTime::parse(text, &Rfc3339).ok())
        });
        Ok(facts)
    }
}

/// TrueLayer's event types (seen) to canonical types (inferred).
fn canonical_type(provider_type: &str) -> EventType {
    match provider_type {
        "external_payment_received" | "payment_link_payment_created" => {
            EventType::PaymentTransactionCreated
        }
        "payment_link_disabled" => EventType::PaymentLinkUpdated,
        name if name.starts_with("payment_") => EventType::PaymentTransactionUpdated,
        name if name.starts_with("payout_") || name.starts_with("refund_") => {
            EventType::PaymentTransferUpdated
        }
        _ => EventType::Unmapped,
    }
}

struct TrueLayerVerifier {
    webhook_path: String,
    allowed_jku: Vec<String>,
    tolerance: Duration,
    http: reqwest::Client,
    /// JWKS documents by `<jku> <kid>` of every key they hold.
    keys: KeyCache<Arc<Vec<u8>>>,
}

impl fmt::Debug for TrueLayerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrueLayerVerifier")
            .field("webhook_path", &self.webhook_path)
            .field("allowed_jku", &self.allowed_jku)
            .field("keys", &self.keys)
            .finish()
    }
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    #[serde(default)]
    kid: Option<String>,
}

impl TrueLayerVerifier {
    async fn fetch(&self, jku: &str) -> Result<Vec<(String, Arc<Vec<u8>>)>, FetchError> {
        let bytes = self
            .http
            .get(jku)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let jwks: Jwks = serde_json::from_slice(&bytes)
            .map_err(|error| FetchError(format!("unreadable JWKS: {error}")))?;
        let document = Arc::new(bytes.to_vec());
        Ok(jwks
            .keys
            .into_iter()
            .filter_map(|key| key.kid)
            .map(|kid| (format!("{jku} {kid}"), Arc::clone(&document)))
            .collect())
    }

    async fn check(&self, request: &Request<'_>) -> Result<(), AuthError> {
        if !self.webhook_path.starts_with('/') {
            // Refused by validation; never reach the library, which panics on such a path.
            return Err(AuthError::MalformedSignature("no registered webhook path"));
        }
        let signature =
            header_text(request.headers, SIGNATURE_HEADER).ok_or(AuthError::MissingSignature)?;
        let header = truelayer_signing::extract_jws_header(signature)
            .map_err(|_| AuthError::MalformedSignature("not a TrueLayer JWS (ES512)"))?;
        let jku = header
            .jku
            .as_deref()
            .ok_or(AuthError::KeyUrlNotAllowed)?
            .to_owned();
        if !self.allowed_jku.contains(&jku) {
            return Err(AuthError::KeyUrlNotAllowed);
        }
        // Unknown ids are remembered as misses: keep a stranger's ids short.
        if header.kid.len() > MAX_KID_LENGTH {
            return Err(AuthError::MalformedSignature("the key id is too long"));
        }
        let kid = header.kid.to_string();
        let jwks = self
            .keys
            .get(&format!("{jku} {kid}"), || self.fetch(&jku))
            .await?
            .ok_or(AuthError::UnknownKey)?;
        let timestamp = header_text(request.headers, TIMESTAMP_HEADER)
            .and_then(|text| OffsetDateTime::parse(text, &Rfc3339).ok())
            .ok_or(AuthError::StaleTimestamp)?;
        if (request.received_at - timestamp).unsigned_abs() > self.tolerance {
            return Err(AuthError::StaleTimestamp);
        }
        // One value per name, the first: the one the timestamp was read from. The library keeps
        // the last of a repeated header, so a replay could carry a fresh timestamp for finhook's
        // check and the original, signed one after it for the library's.
        let headers = request.headers.keys().filter_map(|name| {
            let value = request.headers.get(name)?;
            Some((name.as_str(), value.as_bytes()))
        });
        truelayer_signing::verify_with_jwks(&jwks)
            .method(truelayer_signing::Method::Post)
            .path(&self.webhook_path)
            .headers(headers)
            // The timestamp bounds replays only if it is signed.
            .require_header("X-Tl-Webhook-Timestamp")
            .body(request.body)
            .build_verifier()
            .verify(signature)
            .map_err(|_| AuthError::SignatureMismatch)
    }
}

impl Verify for TrueLayerVerifier {
    fn signature_header(&self) -> Option<&str> {
        Some(SIGNATURE_HEADER)
    }

    fn verify<'r>(&'r self, request: &'r Request<'r>) -> VerifyFuture<'r> {
        later(self.check(request))
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, Method};

    use super::*;

    const JWKS: &str = include_str!("../../tests/fixtures/vectors/truelayer/jwks.json");
    const SIGNATURE: &str =
        include_str!("../../tests/fixtures/vectors/truelayer/webhook-signature.txt");
    const BODY: &str =
        r#"{"event_type":"example","event_id":"18b2842b-a57b-4887-a0a6-d3c7c36f1020"}"#;
    const PRODUCTION_JKU: &str = "https://webhooks.truelayer.com/.well-known/jwks";
    const KID: &str = "45fc75cf-5649-4134-84b3-192c2c78e990";

    async fn seeded(allowed_jku: Vec<String>) -> TrueLayerVerifier {
        let verifier = TrueLayerVerifier {
            webhook_path: "/tl-webhook".into(),
            allowed_jku,
            tolerance: DEFAULT_TOLERANCE,
            http: reqwest::Client::new(),
            keys: KeyCache::new(CachePolicy::default()),
        };
        let id = format!("{PRODUCTION_JKU} {KID}");
        let document = Arc::new(JWKS.as_bytes().to_vec());
        verifier
            .keys
            .get(&id, || async { Ok(vec![(id.clone(), document)]) })
            .await
            .unwrap();
        verifier
    }

    /// The test body posted with `headers`, received at `received_at` (RFC 3339).
    fn posted<'r>(headers: &'r HeaderMap, received_at: &str) -> Request<'r> {
        Request {
            method: &Method::POST,
            path: "/webhooks/truelayer",
            headers,
            body: BODY.as_bytes(),
            received_at: OffsetDateTime::parse(received_at, &Rfc3339).unwrap(),
            path_event: None,
            query: None,
        }
    }

    async fn check(
        verifier: &TrueLayerVerifier,
        timestamp: &str,
        received_at: &str,
    ) -> Result<(), AuthError> {
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, SIGNATURE.trim().parse().unwrap());
        headers.insert(TIMESTAMP_HEADER, timestamp.parse().unwrap());
        headers.insert("content-type", "application/json".parse().unwrap());
        let request = posted(&headers, received_at);
        verifier.check(&request).await
    }

    #[tokio::test]
    async fn truelayers_published_webhook_signature_verifies_at_the_registered_path() {
        let verifier = seeded(vec![PRODUCTION_JKU.to_owned()]).await;
        assert_eq!(
            check(&verifier, "2021-11-29T11:42:55Z", "2021-11-29T11:43:00Z").await,
            Ok(())
        );
        // The timestamp is signed: another one fails (TrueLayer's own negative case).
        assert_eq!(
            check(&verifier, "2021-12-02T14:18:00Z", "2021-12-02T14:18:05Z").await,
            Err(AuthError::SignatureMismatch)
        );
        // Genuine but too old for finhook's tolerance.
        assert_eq!(
            check(&verifier, "2021-11-29T11:42:55Z", "2021-11-29T11:48:56Z").await,
            Err(AuthError::StaleTimestamp)
        );
        // Checked against another registered path, the same request fails.
        let mut elsewhere = seeded(vec![PRODUCTION_JKU.to_owned()]).await;
        elsewhere.webhook_path = "/other".into();
        assert_eq!(
            check(&elsewhere, "2021-11-29T11:42:55Z", "2021-11-29T11:43:00Z").await,
            Err(AuthError::SignatureMismatch)
        );
    }

    #[tokio::test]
    async fn a_replay_with_a_fresh_timestamp_before_the_signed_one_is_refused() {
        let verifier = seeded(vec![PRODUCTION_JKU.to_owned()]).await;
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, SIGNATURE.trim().parse().unwrap());
        // A fresh time for the tolerance check, then the genuine request's, signed, time.
        headers.append(TIMESTAMP_HEADER, "2026-11-26T10:00:00Z".parse().unwrap());
        headers.append(TIMESTAMP_HEADER, "2021-11-29T11:42:55Z".parse().unwrap());
        headers.insert("content-type", "application/json".parse().unwrap());
        let request = posted(&headers, "2026-11-26T10:00:01Z");
        assert_eq!(
            verifier.check(&request).await,
            Err(AuthError::SignatureMismatch)
        );
    }

    #[tokio::test]
    async fn a_key_id_longer_than_any_truelayer_uses_is_refused_without_a_lookup() {
        use base64::Engine;
        let verifier = seeded(vec![PRODUCTION_JKU.to_owned()]).await;
        let jws_header = serde_json::json!({
            "alg": "ES512",
            "kid": "k".repeat(MAX_KID_LENGTH + 1),
            "tl_version": "2",
            "tl_headers": "X-Tl-Webhook-Timestamp",
            "jku": PRODUCTION_JKU,
        });
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&jws_header).unwrap());
        let mut headers = HeaderMap::new();
        headers.insert(
            SIGNATURE_HEADER,
            format!("{encoded}..AAAA").parse().unwrap(),
        );
        headers.insert(TIMESTAMP_HEADER, "2026-11-26T10:00:00Z".parse().unwrap());
        let request = posted(&headers, "2026-11-26T10:00:01Z");
        assert_eq!(
            verifier.check(&request).await,
            Err(AuthError::MalformedSignature("the key id is too long"))
        );
    }

    #[tokio::test]
    async fn a_jku_outside_the_allow_list_is_refused_without_a_fetch() {
        let verifier = seeded(vec![
            "https://webhooks.truelayer-sandbox.com/.well-known/jwks".into(),
        ])
        .await;
        assert_eq!(
            check(&verifier, "2021-11-29T11:42:55Z", "2021-11-29T11:43:00Z").await,
            Err(AuthError::KeyUrlNotAllowed)
        );
    }

    #[test]
    fn event_types_map_by_resource() {
        assert_eq!(
            canonical_type("payment_settled"),
            EventType::PaymentTransactionUpdated
        );
        assert_eq!(
            canonical_type("payout_executed"),
            EventType::PaymentTransferUpdated
        );
        assert_eq!(canonical_type("mandate_revoked"), EventType::Unmapped);
    }
}
