//! Salt Edge callbacks (`kind = "saltedge"`).
//!
//! Verification, seen in Salt Edge's callback guide and its official examples: the `Signature`
//! header is base64 of an RSA-SHA256 (PKCS#1 v1.5) signature, by Salt Edge's private key, of
//! `<callback URL>|<raw body>`, where the callback URL is the one **registered** with Salt Edge,
//! not the one finhook sees behind a proxy. Salt Edge registers one URL per callback kind
//! (success, fail, notify, destroy, service): configure `callback_url` as this source's public
//! URL (`https://hooks.example.com/webhooks/saltedge`) and register
//! `<callback_url>/<kind>` for each kind; a request to `/webhooks/<source>/<kind>` is then
//! checked against exactly that URL. The public keys are PEM (`public_keys` inline or
//! `public_key_files`); several may be listed for a key rotation. Salt Edge's key versions
//! (`Signature-key-version`) are not used to pick a key: every listed key is tried.
//!
//! Body, seen: `{"data": {"connection_id", "customer_id", "custom_fields", "stage" | "error_class"
//! | "reason"}, "meta": {"version", "time"}}`. The kind comes from the URL; the mapping is
//! inferred (tests/fixtures/saltedge/README.md). No event id: it is derived from the callback
//! kind and the body, whose `meta.time` tells Salt Edge's repeated callbacks apart.

use std::fmt;
use std::path::PathBuf;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{
    at, parse_value, text_at, time_of, BuildContext, EventFacts, NormalizeError, Provider,
    ProviderKind,
};
use crate::auth::{header_text, ready, AuthError, Request, Verified, Verify, VerifyFuture};
use crate::secret::Secret;
use crate::vocabulary::{fallback_key, EventType};

pub const SIGNATURE_HEADER: &str = "signature";

/// `error_class` values that need the customer (only `InvalidCredentials` is seen).
const ACTION_REQUIRED_ERRORS: &[&str] = &[
    "InvalidCredentials",
    "InteractiveAdapterTimeout",
    "ConsentExpired",
    "InvalidInteractiveCredentials",
];

pub struct SaltEdge;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaltEdgeSettings {
    /// This source's public URL as registered with Salt Edge, without the callback kind.
    /// Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// Salt Edge's public keys, PEM (`-----BEGIN PUBLIC KEY-----`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_keys: Vec<String>,
    /// Files holding such PEM keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_key_files: Vec<PathBuf>,
}

impl Provider for SaltEdge {
    const KIND: ProviderKind = ProviderKind::new("saltedge");
    const PATH_EVENTS: bool = true;
    const VERIFICATION: &'static str =
        "`Signature`: base64 RSA-SHA256 (PKCS#1 v1.5) of `callback_url|body` with Salt Edge's public key";
    type Settings = SaltEdgeSettings;

    fn validate(
        settings: &SaltEdgeSettings,
        key: &str,
        has_secret: bool,
        problems: &mut Vec<String>,
    ) {
        match settings.callback_url.as_deref().map(url::Url::parse) {
            Some(Ok(url)) if url.query().is_some() || url.fragment().is_some() => {
                problems.push(format!(
                    "{key}.callback_url: without a query or fragment (the callback kind is appended as a path segment)"
                ))
            }
            Some(Ok(_)) => {}
            _ => problems.push(format!(
                "{key}.callback_url: required, the URL registered with Salt Edge (without the callback kind)"
            )),
        }
        if settings.public_keys.is_empty() && settings.public_key_files.is_empty() {
            problems.push(format!(
                "{key}.public_keys: give Salt Edge's public key (`public_keys` or `public_key_files`)"
            ));
        }
        for (index, pem) in settings.public_keys.iter().enumerate() {
            if let Err(problem) = rsa_public_key(pem.as_bytes()) {
                problems.push(format!("{key}.public_keys[{index}]: {problem}"));
            }
        }
        if has_secret {
            problems.push(format!(
                "{key}.secret: saltedge sources are verified with Salt Edge's public key; remove `secret`"
            ));
        }
    }

    fn verifier(
        settings: &SaltEdgeSettings,
        _: Vec<Secret>,
        _: &BuildContext,
    ) -> Result<Box<dyn Verify>, String> {
        let mut keys = settings
            .public_keys
            .iter()
            .map(|pem| rsa_public_key(pem.as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        for path in &settings.public_key_files {
            let pem = std::fs::read(path)
                .map_err(|error| format!("public_key_files: {}: {error}", path.display()))?;
            keys.push(
                rsa_public_key(&pem).map_err(|problem| {
                    format!("public_key_files: {}: {problem}", path.display())
                })?,
            );
        }
        Ok(Box::new(SaltEdgeVerifier {
            callback_url: settings
                .callback_url
                .clone()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned(),
            keys,
        }))
    }

    fn read(_: &SaltEdgeSettings, body: &Verified<'_>) -> Result<EventFacts, NormalizeError> {
        let value = parse_value(body.body())?;
        let kind = body.path_event().unwrap_or("callback").to_ascii_lowercase();
        let stage = text_at(&value, "data.stage");
        let error_class = text_at(&value, "data.error_class");
        let (event_type, reason) = canonical_type(
            &kind,
            stage.as_deref(),
            error_class,
            text_at(&value, "data.reason"),
        );
        let mut facts = EventFacts::new(event_type, kind);
        facts.reason = reason;
        facts.provider_status = stage;
        facts.connection_id = text_at(&value, "data.connection_id");
        facts.user_id = text_at(&value, "data.customer_id");
        facts.fallback_key = facts
            .user_id
            .as_ref()
            .map(|customer| fallback_key("customer", customer));
        facts.time = time_of(at(&value, "meta.time"));
        facts.provider_event_id = Some(event_id(&facts.provider_type, body.body()));
        Ok(facts)
    }
}

/// The same callback kind and bytes give the same id (a retry is recognisable); the kind is
/// part of it because two kinds may carry the same body.
fn event_id(kind: &str, body: &[u8]) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"saltedge\n");
    hasher.update(kind.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    crate::envelope::lower_hex(&hasher.finalize())
}

/// Callback kinds (seen) to canonical types (inferred).
fn canonical_type(
    kind: &str,
    stage: Option<&str>,
    error_class: Option<String>,
    service_reason: Option<String>,
) -> (EventType, Option<String>) {
    match kind {
        "success" if stage == Some("finish") => (EventType::ConnectionSyncSucceeded, None),
        "success" | "notify" => (EventType::ConnectionUpdated, None),
        "fail" => match error_class {
            Some(class) if ACTION_REQUIRED_ERRORS.contains(&class.as_str()) => {
                (EventType::ConnectionActionRequired, Some(class))
            }
            other => (EventType::ConnectionSyncFailed, other),
        },
        "destroy" => (EventType::ConnectionDeleted, None),
        "service" => (EventType::ConnectionUpdated, service_reason),
        _ => (EventType::Unmapped, None),
    }
}

/// The PKCS#1 `RSAPublicKey` inside a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), as ring wants.
fn rsa_public_key(pem: &[u8]) -> Result<Vec<u8>, String> {
    let (_, block) =
        x509_parser::pem::parse_x509_pem(pem).map_err(|_| "not a PEM public key".to_owned())?;
    let (_, info) =
        <x509_parser::x509::SubjectPublicKeyInfo as x509_parser::prelude::FromDer<_>>::from_der(
            &block.contents,
        )
        .map_err(|_| "not a SubjectPublicKeyInfo (BEGIN PUBLIC KEY)".to_owned())?;
    if info.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
        return Err("not an RSA key".to_owned());
    }
    // ring verifies RSA keys of 2048 to 8192 bits: refuse others here, not at every callback.
    let bits = match info.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => rsa.key_size(),
        _ => return Err("not a readable RSA key".to_owned()),
    };
    if !(2048..=8192).contains(&bits) {
        return Err(format!(
            "an RSA key of {bits} bits; 2048 to 8192 are accepted"
        ));
    }
    Ok(info.subject_public_key.data.to_vec())
}

struct SaltEdgeVerifier {
    callback_url: String,
    keys: Vec<Vec<u8>>,
}

impl fmt::Debug for SaltEdgeVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaltEdgeVerifier")
            .field("callback_url", &self.callback_url)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl SaltEdgeVerifier {
    fn check(&self, request: &Request<'_>) -> Result<(), AuthError> {
        let encoded =
            header_text(request.headers, SIGNATURE_HEADER).ok_or(AuthError::MissingSignature)?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| AuthError::MalformedSignature("the signature is not base64"))?;
        let url = match request.path_event {
            Some(kind) => format!("{}/{kind}", self.callback_url),
            None => self.callback_url.clone(),
        };
        let message = [url.as_bytes(), b"|", request.body].concat();
        let verified = self.keys.iter().any(|key| {
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                key,
            )
            .verify(&message, &signature)
            .is_ok()
        });
        if verified {
            Ok(())
        } else {
            Err(AuthError::SignatureMismatch)
        }
    }
}

impl Verify for SaltEdgeVerifier {
    fn signature_header(&self) -> Option<&str> {
        Some(SIGNATURE_HEADER)
    }

    fn verify<'r>(&'r self, request: &'r Request<'r>) -> VerifyFuture<'r> {
        ready(self.check(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_kinds_map_to_outcomes() {
        assert_eq!(
            canonical_type("success", Some("finish"), None, None).0,
            EventType::ConnectionSyncSucceeded
        );
        assert_eq!(
            canonical_type("fail", None, Some("InvalidCredentials".into()), None),
            (
                EventType::ConnectionActionRequired,
                Some("InvalidCredentials".into())
            )
        );
        assert_eq!(
            canonical_type("fail", None, Some("ProviderUnavailable".into()), None).0,
            EventType::ConnectionSyncFailed
        );
        assert_eq!(
            canonical_type("destroy", None, None, None).0,
            EventType::ConnectionDeleted
        );
        assert_eq!(
            canonical_type("callback", None, None, None).0,
            EventType::Unmapped
        );
    }

    #[test]
    fn only_rsa_public_keys_are_taken() {
        assert!(rsa_public_key(b"nope").is_err());
        let ec = include_str!("../../tests/fixtures/vectors/truelayer/ec512-public.pem");
        assert_eq!(
            rsa_public_key(ec.as_bytes()),
            Err("not an RSA key".to_owned())
        );
    }
}
