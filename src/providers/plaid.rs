//! Plaid webhooks (`kind = "plaid"`).
//!
//! Verification, seen (plaid.com/docs/api/webhooks/webhook-verification): the
//! `Plaid-Verification` header is a JWT (compact JWS). Its header must say `alg: ES256` —
//! anything else (`none`, `HS256` with the public key as secret) is refused before any key is
//! used — and names the key by `kid`. The key is fetched with `POST
//! /webhook_verification_key/get` (`client_id`, `secret`, `key_id`) from `api_url`, cached, and
//! fetched again for an unknown `kid` (at most every 10 s) or after an hour; a key with
//! `expired_at` set is refused. The claims must have `iat` no older than `max_age` (5 minutes)
//! and `request_body_sha256` equal to the SHA-256 (hex) of the raw body, compared in constant
//! time. A key server that cannot be reached answers 503, so Plaid retries.
//!
//! The source's `secret` is the Plaid API secret (used only for key fetches), `client_id` the
//! client id.
//!
//! Body, seen: `webhook_type` and `webhook_code` (the type is both, `TRANSACTIONS.DEFAULT_UPDATE`),
//! `item_id` (the key), `error`, `new_transactions`. Plaid sends no event id. The mapping of
//! codes to canonical types is inferred (tests/fixtures/plaid/README.md).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{
    at, parse_value, text_at, time_of, BuildContext, EventFacts, NormalizeError, Provider,
    ProviderKind,
};
use crate::auth::keys::{CachePolicy, FetchError, KeyCache};
use crate::auth::{header_text, later, AuthError, Request, Verified, Verify, VerifyFuture};
use crate::secret::Secret;
use crate::vocabulary::{fallback_key, EventType};

pub const VERIFICATION_HEADER: &str = "plaid-verification";
pub const PRODUCTION_API: &str = "https://production.plaid.com";
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5 * 60);
/// How long a fetched key is used before Plaid is asked again whether it expired.
const KEY_TTL: Duration = Duration::from_secs(5 * 60);

pub struct Plaid;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaidSettings {
    /// The Plaid client id (for key fetches). Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Plaid's API base URL (default production; `https://sandbox.plaid.com` for the sandbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<url::Url>,
    /// How old a token's `iat` may be (default 5m, Plaid's advice).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_age: Option<Duration>,
}

impl Provider for Plaid {
    const KIND: ProviderKind = ProviderKind::new("plaid");
    const VERIFICATION: &'static str = "`Plaid-Verification` ES256 JWT, key fetched by `kid` from Plaid and cached, `iat` ≤ 5 min, `request_body_sha256` of the raw body";
    type Settings = PlaidSettings;

    fn validate(settings: &PlaidSettings, key: &str, has_secret: bool, problems: &mut Vec<String>) {
        if settings.client_id.as_deref().unwrap_or("").is_empty() {
            problems.push(format!(
                "{key}.client_id: required (Plaid's client id, to fetch verification keys)"
            ));
        }
        if !has_secret {
            problems.push(format!(
                "{key}.secret: required (Plaid's API secret, to fetch verification keys)"
            ));
        }
        if let Some(url) = &settings.api_url {
            if let Err(problem) = super::check_key_url(url.as_str()) {
                problems.push(format!("{key}.api_url: {problem}"));
            }
        }
        if settings.max_age.is_some_and(|age| age.is_zero()) {
            problems.push(format!("{key}.max_age: must be greater than 0"));
        }
    }

    fn verifier(
        settings: &PlaidSettings,
        secrets: Vec<Secret>,
        context: &BuildContext,
    ) -> Result<Box<dyn Verify>, String> {
        let api_url = settings
            .api_url
            .clone()
            .unwrap_or_else(|| PRODUCTION_API.parse().expect("a valid URL"));
        let key_url = api_url
            .join("/webhook_verification_key/get")
            .map_err(|error| format!("api_url: {error}"))?;
        Ok(Box::new(PlaidVerifier {
            key_url,
            client_id: settings.client_id.clone().unwrap_or_default(),
            secret: secrets.into_iter().next().ok_or("secret: required")?,
            max_age: settings.max_age.unwrap_or(DEFAULT_MAX_AGE),
            http: context.http.clone(),
            // Plaid may mark a key expired at any time: look again every few minutes.
            keys: KeyCache::new(CachePolicy {
                ttl: KEY_TTL,
                ..CachePolicy::default()
            }),
        }))
    }

    fn read(_: &PlaidSettings, body: &Verified<'_>) -> Result<EventFacts, NormalizeError> {
        let value = parse_value(body.body())?;
        let webhook_type =
            text_at(&value, "webhook_type").ok_or(NormalizeError::MissingField("webhook_type"))?;
        let webhook_code =
            text_at(&value, "webhook_code").ok_or(NormalizeError::MissingField("webhook_code"))?;
        let error_code = text_at(&value, "error.error_code");
        let (event_type, reason) = canonical_type(&webhook_type, &webhook_code, error_code);
        let mut facts = EventFacts::new(event_type, format!("{webhook_type}.{webhook_code}"));
        facts.reason = reason;
        facts.connection_id = text_at(&value, "item_id");
        facts.user_id = text_at(&value, "user_id");
        facts.provider_status = text_at(&value, "new_payment_status");
        facts.new_transactions = at(&value, "new_transactions")
            .and_then(serde_json::Value::as_u64)
            .map(|count| count > 0);
        facts.fallback_key = text_at(&value, "payment_id")
            .map(|payment| fallback_key("payment", &payment))
            .or_else(|| {
                facts
                    .user_id
                    .as_ref()
                    .map(|user| fallback_key("user", user))
            });
        facts.time = time_of(at(&value, "timestamp"));
        // Most Plaid bodies carry no id and no time: the next SYNC_UPDATES_AVAILABLE of an item
        // is the same bytes as the last. Derived from the bytes alone, its id would be the last
        // one's, and a deduplicating consumer would drop it.
        facts.unique_per_delivery = facts.time.is_none();
        Ok(facts)
    }
}

/// Plaid's `webhook_type`/`webhook_code` pairs (seen) to canonical types (inferred).
fn canonical_type(
    webhook_type: &str,
    webhook_code: &str,
    error_code: Option<String>,
) -> (EventType, Option<String>) {
    match (webhook_type, webhook_code) {
        (
            "TRANSACTIONS",
            "SYNC_UPDATES_AVAILABLE" | "INITIAL_UPDATE" | "HISTORICAL_UPDATE" | "DEFAULT_UPDATE",
        ) => (EventType::ConnectionSyncSucceeded, None),
        ("TRANSACTIONS", "TRANSACTIONS_REMOVED")
        | ("ITEM", "LOGIN_REPAIRED" | "NEW_ACCOUNTS_AVAILABLE") => {
            (EventType::ConnectionUpdated, None)
        }
        ("ITEM", "ERROR") => match error_code.as_deref() {
            Some("ITEM_LOGIN_REQUIRED" | "PENDING_EXPIRATION" | "INVALID_CREDENTIALS") => {
                (EventType::ConnectionActionRequired, error_code)
            }
            _ => (EventType::ConnectionSyncFailed, error_code),
        },
        (
            "ITEM",
            code @ ("PENDING_EXPIRATION" | "PENDING_DISCONNECT" | "USER_PERMISSION_REVOKED"),
        ) => (EventType::ConnectionActionRequired, Some(code.to_owned())),
        ("ITEM", "USER_ACCOUNT_REVOKED") => (EventType::AccountDeleted, None),
        ("PAYMENT_INITIATION", "PAYMENT_STATUS_UPDATE") => {
            (EventType::PaymentTransactionUpdated, None)
        }
        _ => (EventType::Unmapped, None),
    }
}

/// A fetched key: what verifies, and whether Plaid says it expired.
#[derive(Clone)]
struct PlaidKey {
    key: Arc<DecodingKey>,
    expired: bool,
}

struct PlaidVerifier {
    key_url: url::Url,
    client_id: String,
    secret: Secret,
    max_age: Duration,
    http: reqwest::Client,
    keys: KeyCache<PlaidKey>,
}

impl fmt::Debug for PlaidVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlaidVerifier")
            .field("key_url", &self.key_url.as_str())
            .field("max_age", &self.max_age)
            .field("keys", &self.keys)
            .finish()
    }
}

#[derive(Deserialize)]
struct KeyResponse {
    key: jsonwebtoken::jwk::Jwk,
}

#[derive(Deserialize)]
struct ExpiredAt {
    #[serde(default)]
    expired_at: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Claims {
    iat: i64,
    request_body_sha256: String,
}

impl PlaidVerifier {
    async fn fetch(&self, kid: &str) -> Result<Vec<(String, PlaidKey)>, FetchError> {
        let response = self
            .http
            .post(self.key_url.clone())
            .json(&serde_json::json!({
                "client_id": self.client_id,
                "secret": self.secret.expose(),
                "key_id": kid,
            }))
            .send()
            .await?;
        // Plaid answers 400 for a key id it does not know: no key. A 400 or 401 about
        // finhook's own credentials is a configuration error: never read as "unknown key"
        // (that would refuse every genuine webhook), it is logged and answered 503.
        let status = response.status();
        if status == reqwest::StatusCode::BAD_REQUEST || status == reqwest::StatusCode::UNAUTHORIZED
        {
            let error: serde_json::Value = response.json().await.unwrap_or_default();
            let code = error["error_code"].as_str().unwrap_or("");
            if status == reqwest::StatusCode::BAD_REQUEST && code != "INVALID_API_KEYS" {
                return Ok(Vec::new());
            }
            tracing::error!(
                error_code = code,
                "Plaid refused finhook's client_id or secret when fetching a verification key: check the source's configuration"
            );
            return Err(FetchError(format!(
                "Plaid refused the credentials ({status})"
            )));
        }
        let bytes = response.error_for_status()?.bytes().await?;
        let parsed: KeyResponse = serde_json::from_slice(&bytes)
            .map_err(|error| FetchError(format!("unreadable key response: {error}")))?;
        let expired: ExpiredAt = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|value| value.get("key").cloned())
            .and_then(|key| serde_json::from_value(key).ok())
            .unwrap_or(ExpiredAt { expired_at: None });
        let key = DecodingKey::from_jwk(&parsed.key)
            .map_err(|error| FetchError(format!("unusable key: {error}")))?;
        Ok(vec![(
            kid.to_owned(),
            PlaidKey {
                key: Arc::new(key),
                expired: expired
                    .expired_at
                    .is_some_and(|expired_at| !expired_at.is_null()),
            },
        )])
    }

    async fn check(&self, request: &Request<'_>) -> Result<(), AuthError> {
        let token =
            header_text(request.headers, VERIFICATION_HEADER).ok_or(AuthError::MissingSignature)?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::MalformedSignature("not a JWT"))?;
        if header.alg != Algorithm::ES256 {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        let kid = header
            .kid
            .filter(|kid| !kid.is_empty() && kid.len() <= 128)
            .ok_or(AuthError::MalformedSignature("the JWT names no key"))?;
        let key = self
            .keys
            .get(&kid, || self.fetch(&kid))
            .await?
            .filter(|key| !key.expired)
            .ok_or(AuthError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|_| AuthError::SignatureMismatch)?
            .claims;
        // In i128: `iat` is signed, but any i64 must not overflow the difference.
        let age = i128::from(request.received_at.unix_timestamp()) - i128::from(claims.iat);
        // A little skew ahead is allowed (clocks differ); old tokens are replays.
        if age.unsigned_abs() > u128::from(self.max_age.as_secs()) {
            return Err(AuthError::StaleTimestamp);
        }
        let digest = crate::envelope::lower_hex(&Sha256::digest(request.body));
        let claimed = claims.request_body_sha256.to_ascii_lowercase();
        if bool::from(digest.as_bytes().ct_eq(claimed.as_bytes())) {
            Ok(())
        } else {
            Err(AuthError::SignatureMismatch)
        }
    }
}

impl Verify for PlaidVerifier {
    fn signature_header(&self) -> Option<&str> {
        Some(VERIFICATION_HEADER)
    }

    fn verify<'r>(&'r self, request: &'r Request<'r>) -> VerifyFuture<'r> {
        later(self.check(request))
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, Method};
    use time::OffsetDateTime;

    use super::*;

    const VECTORS: &str = include_str!("../../tests/fixtures/vectors/plaid.json");

    /// A verifier whose cache already holds `key_response`'s key (no key server).
    async fn seeded(key_response: &serde_json::Value) -> PlaidVerifier {
        let verifier = PlaidVerifier {
            key_url: "http://127.0.0.1:9/webhook_verification_key/get"
                .parse()
                .unwrap(),
            client_id: "client".into(),
            secret: Secret::new("secret"),
            max_age: DEFAULT_MAX_AGE,
            http: reqwest::Client::new(),
            keys: KeyCache::new(CachePolicy::default()),
        };
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(key_response["key"].clone()).unwrap();
        let kid = key_response["key"]["kid"].as_str().unwrap().to_owned();
        let key = PlaidKey {
            key: Arc::new(DecodingKey::from_jwk(&jwk).unwrap()),
            expired: !key_response["key"]["expired_at"].is_null(),
        };
        verifier
            .keys
            .get(&kid, || async { Ok(vec![(kid.clone(), key)]) })
            .await
            .unwrap();
        verifier
    }

    async fn check(
        verifier: &PlaidVerifier,
        token: &str,
        body: &[u8],
        received_at: i64,
    ) -> Result<(), AuthError> {
        let mut headers = HeaderMap::new();
        headers.insert(VERIFICATION_HEADER, token.parse().unwrap());
        let request = Request {
            method: &Method::POST,
            path: "/webhooks/plaid",
            headers: &headers,
            body,
            received_at: OffsetDateTime::from_unix_timestamp(received_at).unwrap(),
            path_event: None,
            query: None,
        };
        verifier.check(&request).await
    }

    #[tokio::test]
    async fn plaids_published_webhook_verifies_and_every_change_is_refused() {
        let vectors: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        let vector = &vectors[0];
        let token = vector["plaid_verification"].as_str().unwrap();
        let body = vector["body"].as_str().unwrap().as_bytes();
        let iat = vector["jwt_claims"]["iat"].as_i64().unwrap();
        let verifier = seeded(&vector["key_response"]).await;
        assert_eq!(check(&verifier, token, body, iat + 10).await, Ok(()));
        // The body is hashed as received: one byte more and it is another body.
        let mut changed = body.to_vec();
        changed.push(b'\n');
        assert_eq!(
            check(&verifier, token, &changed, iat + 10).await,
            Err(AuthError::SignatureMismatch)
        );
        // Older than five minutes: a replay.
        assert_eq!(
            check(&verifier, token, body, iat + 301).await,
            Err(AuthError::StaleTimestamp)
        );
        // A signature byte changed.
        let mut forged = token.to_owned();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(
            check(&verifier, &forged, body, iat + 10).await,
            Err(AuthError::SignatureMismatch)
        );
    }

    #[tokio::test]
    async fn alg_none_and_hs256_with_the_public_key_are_refused_before_any_key_is_used() {
        use base64::Engine;
        let vectors: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        let vector = &vectors[0];
        let verifier = seeded(&vector["key_response"]).await;
        let kid = vector["key_response"]["key"]["kid"].as_str().unwrap();
        let body = vector["body"].as_str().unwrap().as_bytes();
        let iat = vector["jwt_claims"]["iat"].as_i64().unwrap();
        let encode = |json: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
        };
        let claims = encode(vector["jwt_claims"].clone());
        // `alg: none`, no signature.
        let none = format!(
            "{}.{claims}.",
            encode(serde_json::json!({"alg": "none", "kid": kid, "typ": "JWT"}))
        );
        assert!(check(&verifier, &none, body, iat).await.is_err());
        // HS256 keyed with the public key's coordinates (the classic confusion).
        let header = encode(serde_json::json!({"alg": "HS256", "kid": kid, "typ": "JWT"}));
        let key = vector["key_response"]["key"]["x"].as_str().unwrap();
        let signature = crate::auth::hmac::mac(
            crate::auth::hmac::Algorithm::Sha256,
            key.as_bytes(),
            &[header.as_bytes(), b".", claims.as_bytes()],
        );
        let hs256 = format!(
            "{header}.{claims}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature)
        );
        assert_eq!(
            check(&verifier, &hs256, body, iat).await,
            Err(AuthError::AlgorithmNotAllowed)
        );
    }

    #[tokio::test]
    async fn an_expired_key_is_refused() {
        let vectors: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        let vector = &vectors[0];
        let mut key_response = vector["key_response"].clone();
        key_response["key"]["expired_at"] = serde_json::json!(1_600_000_000);
        let verifier = seeded(&key_response).await;
        let token = vector["plaid_verification"].as_str().unwrap();
        let body = vector["body"].as_str().unwrap().as_bytes();
        let iat = vector["jwt_claims"]["iat"].as_i64().unwrap();
        assert_eq!(
            check(&verifier, token, body, iat).await,
            Err(AuthError::UnknownKey)
        );
    }

    #[test]
    fn notices_without_a_time_get_an_id_per_delivery() {
        let read = |body: &str| {
            Plaid::read(
                &PlaidSettings::default(),
                &Verified::assume(body.as_bytes(), &HeaderMap::new()),
            )
            .unwrap()
        };
        let sync = read(include_str!(
            "../../tests/fixtures/plaid/transactions-sync-updates-available.json"
        ));
        assert!(sync.unique_per_delivery);
        let timed = read(
            r#"{"webhook_type":"PAYMENT_INITIATION","webhook_code":"PAYMENT_STATUS_UPDATE","payment_id":"p-1","timestamp":"2026-11-26T10:00:00Z"}"#,
        );
        assert!(
            !timed.unique_per_delivery,
            "its time tells two notices apart"
        );
    }

    #[test]
    fn codes_map_to_outcomes() {
        assert_eq!(
            canonical_type("TRANSACTIONS", "SYNC_UPDATES_AVAILABLE", None).0,
            EventType::ConnectionSyncSucceeded
        );
        assert_eq!(
            canonical_type("ITEM", "ERROR", Some("ITEM_LOGIN_REQUIRED".into())),
            (
                EventType::ConnectionActionRequired,
                Some("ITEM_LOGIN_REQUIRED".into())
            )
        );
        assert_eq!(
            canonical_type("ITEM", "ERROR", Some("INSTITUTION_DOWN".into())).0,
            EventType::ConnectionSyncFailed
        );
        assert_eq!(
            canonical_type("ITEM", "WEBHOOK_UPDATE_ACKNOWLEDGED", None).0,
            EventType::Unmapped
        );
    }
}
