//! The provider catalogue end to end: for every provider, each fixture signed as the provider
//! signs it is answered 200 and published once; every hostile variant (bad signature, stale
//! timestamp, unknown key, `alg` confusion, a `jku` outside the allow-list, a callback URL that
//! is not the registered one, missing credentials) is refused with nothing reaching Kafka; a key
//! server outage answers 503 and keys are fetched once, not per request; independent
//! implementations (Python's `standardwebhooks`, Python's `cryptography` for Salt Edge) sign
//! what finhook accepts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use finhook::providers::{self, ProviderKind};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::common::{fixtures_dir, webhook_fixtures, EnvelopeSchema, Fixture};
use crate::helpers::{python, read_topic, spawn_app, TestApp};

const WAIT: Duration = Duration::from_secs(10);
const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const PLAID_KID: &str = "finhook-test-kid";
/// A key the fake Plaid reports as expired (same key material).
const EXPIRED_KID: &str = "finhook-expired-kid";
const TRUELAYER_KID: &str = "45fc75cf-5649-4134-84b3-192c2c78e990";
const POWENS_TOKEN: &str = "powens-url-token";
const SALTEDGE_CALLBACK: &str = "https://hooks.example.com/webhooks/saltedge";

/// Plaid's key endpoint and TrueLayer's JWKS, on loopback, counting fetches; `down` makes both
/// answer 503.
struct KeyServer {
    url: String,
    plaid_jwk: Value,
    jwks: String,
    plaid_fetches: AtomicUsize,
    jwks_fetches: AtomicUsize,
    down: AtomicBool,
}

async fn plaid_key(State(server): State<Arc<KeyServer>>, Json(request): Json<Value>) -> Response {
    server.plaid_fetches.fetch_add(1, Ordering::SeqCst);
    if server.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if request["client_id"] != "plaid-client" || request["secret"] != "plaid-api-secret" {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if request["key_id"] == EXPIRED_KID {
        let mut key = server.plaid_jwk.clone();
        key["kid"] = json!(EXPIRED_KID);
        key["expired_at"] = json!(1_700_000_000);
        return Json(json!({"key": key, "request_id": "r2"})).into_response();
    }
    if request["key_id"] != PLAID_KID {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error_code": "INVALID_INPUT"})),
        )
            .into_response();
    }
    Json(json!({"key": server.plaid_jwk, "request_id": "r1"})).into_response()
}

async fn jwks(State(server): State<Arc<KeyServer>>) -> Response {
    server.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if server.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    server.jwks.clone().into_response()
}

/// One source per provider besides the base config's bridge and linxo; `url` is the key server.
fn sources_toml(url: &str) -> String {
    let saltedge_public = fixtures_dir().join("saltedge/test-public-key.pem");
    format!(
        r#"
[sources.standard]
kind = "standard"
secret = "{STANDARD_SECRET}"
public_keys = ["whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4="]
[sources.hmac]
kind = "hmac"
secret = "It's a Secret to Everybody"
header = "X-Hub-Signature-256"
prefix = "sha256="
[sources.batch]
kind = "hmac"
secret = "batch-secret"
header = "X-Batch-Signature"
events_path = "events"
event_id_path = "id"
connection_id_path = "customer"
[sources.tink]
kind = "tink"
secret = "tink-webhook-secret"
[sources.plaid]
kind = "plaid"
client_id = "plaid-client"
secret = "plaid-api-secret"
api_url = "{url}"
[sources.truelayer]
kind = "truelayer"
webhook_path = "/webhooks/truelayer"
allowed_jku = ["{url}/.well-known/jwks"]
[sources.saltedge]
kind = "saltedge"
callback_url = "{SALTEDGE_CALLBACK}"
public_key_files = ["{}"]
[sources.powens]
kind = "powens"
auth = "query"
secret = "{POWENS_TOKEN}"
allowed_ips = ["127.0.0.1"]
"#,
        saltedge_public.display()
    )
}

/// The private halves the fake providers sign with.
struct Signers {
    plaid: jsonwebtoken::EncodingKey,
    truelayer_pem: Vec<u8>,
    saltedge: ring::signature::RsaKeyPair,
}

struct Providers {
    app: TestApp,
    keys: Arc<KeyServer>,
    signers: Signers,
}

async fn start() -> Providers {
    let plaid_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let point = plaid_pair.public_key_raw();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let plaid_jwk = json!({
        "alg": "ES256", "crv": "P-256", "kty": "EC", "use": "sig", "kid": PLAID_KID,
        "x": b64(&point[1..33]), "y": b64(&point[33..65]),
        "created_at": 1_560_466_143, "expired_at": null,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let keys = Arc::new(KeyServer {
        url: url.clone(),
        plaid_jwk,
        jwks: std::fs::read_to_string(fixtures_dir().join("vectors/truelayer/jwks.json")).unwrap(),
        plaid_fetches: AtomicUsize::new(0),
        jwks_fetches: AtomicUsize::new(0),
        down: AtomicBool::new(false),
    });
    let router = Router::new()
        .route("/webhook_verification_key/get", post(plaid_key))
        .route("/.well-known/jwks", get(jwks))
        .with_state(Arc::clone(&keys));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let app = spawn_app(&sources_toml(&url)).await;

    let pem = |path: &str| {
        let text = std::fs::read(fixtures_dir().join(path)).unwrap();
        x509_parser::pem::parse_x509_pem(&text).unwrap().1.contents
    };
    let signers = Signers {
        plaid: jsonwebtoken::EncodingKey::from_ec_pem(plaid_pair.serialize_pem().as_bytes())
            .unwrap(),
        truelayer_pem: std::fs::read(fixtures_dir().join("vectors/truelayer/ec512-private.pem"))
            .unwrap(),
        saltedge: ring::signature::RsaKeyPair::from_pkcs8(&pem("saltedge/test-signing-key.pem"))
            .unwrap(),
    };
    Providers { app, keys, signers }
}

/// A request as a provider would send it: the URL's event segment, a query, headers.
#[derive(Default, Clone)]
struct Outgoing {
    path_event: Option<String>,
    query: Option<String>,
    headers: Vec<(String, String)>,
}

impl Providers {
    /// The request `kind`'s provider sends for `body`, signed now.
    fn sign(&self, kind: ProviderKind, body: &[u8], path_event: Option<&str>) -> Outgoing {
        let now = OffsetDateTime::now_utc();
        let mut outgoing = Outgoing {
            path_event: path_event.map(str::to_owned),
            ..Outgoing::default()
        };
        match kind.as_str() {
            "plaid" => {
                let token = self.plaid_token(PLAID_KID, body, now.unix_timestamp());
                outgoing.headers.push(("Plaid-Verification".into(), token));
            }
            "truelayer" => {
                outgoing.headers = self.truelayer_headers(
                    TRUELAYER_KID,
                    &format!("{}/.well-known/jwks", self.keys.url),
                    "/webhooks/truelayer",
                    body,
                    now,
                );
            }
            "saltedge" => {
                let url = match path_event {
                    Some(kind) => format!("{SALTEDGE_CALLBACK}/{kind}"),
                    None => SALTEDGE_CALLBACK.to_owned(),
                };
                outgoing
                    .headers
                    .push(("Signature".into(), self.saltedge_signature(&url, body)));
            }
            "powens" => outgoing.query = Some(format!("token={POWENS_TOKEN}")),
            // Every provider with a shared secret signs through its verifier, as
            // `finhook sign` does.
            _ => {
                let signed = self.app.signed_headers(kind.as_str(), body);
                outgoing.headers = signed
                    .into_iter()
                    .map(|(name, value)| (name.to_string(), value))
                    .collect();
            }
        }
        outgoing
    }

    fn plaid_token(&self, kid: &str, body: &[u8], iat: i64) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        let claims = json!({
            "iat": iat,
            "request_body_sha256": hex::encode(Sha256::digest(body)),
        });
        jsonwebtoken::encode(&header, &claims, &self.signers.plaid).unwrap()
    }

    fn truelayer_headers(
        &self,
        kid: &str,
        jku: &str,
        path: &str,
        body: &[u8],
        at: OffsetDateTime,
    ) -> Vec<(String, String)> {
        self.truelayer_headers_signing(kid, jku, path, body, at, true)
    }

    /// With `sign_timestamp` false the timestamp header is sent but left out of the signature.
    fn truelayer_headers_signing(
        &self,
        kid: &str,
        jku: &str,
        path: &str,
        body: &[u8],
        at: OffsetDateTime,
        sign_timestamp: bool,
    ) -> Vec<(String, String)> {
        let timestamp = at
            .replace_nanosecond(0)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let signer = truelayer_signing::sign_with_pem(kid, &self.signers.truelayer_pem)
            .jku(jku)
            .method(truelayer_signing::Method::Post)
            .path(path);
        let signer = if sign_timestamp {
            signer.header("X-Tl-Webhook-Timestamp", timestamp.as_bytes())
        } else {
            signer
        };
        let signature = signer
            .header("Content-Type", b"application/json")
            .body(body)
            .build_signer()
            .sign()
            .unwrap();
        vec![
            ("Tl-Signature".into(), signature),
            ("X-Tl-Webhook-Timestamp".into(), timestamp),
        ]
    }

    fn saltedge_signature(&self, url: &str, body: &[u8]) -> String {
        let message = [url.as_bytes(), b"|", body].concat();
        let mut signature = vec![0; self.signers.saltedge.public().modulus_len()];
        self.signers
            .saltedge
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                &message,
                &mut signature,
            )
            .unwrap();
        base64::engine::general_purpose::STANDARD.encode(signature)
    }

    async fn post(&self, source: &str, body: &[u8], outgoing: &Outgoing) -> reqwest::Response {
        let mut url = format!("{}/webhooks/{source}", self.app.webhook_url);
        if let Some(event) = &outgoing.path_event {
            url = format!("{url}/{event}");
        }
        if let Some(query) = &outgoing.query {
            url = format!("{url}?{query}");
        }
        let mut request = self
            .app
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (name, value) in &outgoing.headers {
            request = request.header(name, value);
        }
        request.send().await.unwrap()
    }
}

fn kind_named(name: &str) -> ProviderKind {
    providers::entry(name).unwrap().kind()
}

#[tokio::test]
async fn every_provider_accepts_its_signed_fixtures_and_publishes_each_once() {
    let providers = start().await;
    let schema = EnvelopeSchema::load();
    let mut answered: HashMap<String, (String, Value)> = HashMap::new();
    for kind in providers::kinds() {
        let fixtures: Vec<Fixture> = webhook_fixtures(kind.as_str());
        assert!(!fixtures.is_empty(), "{kind} has no fixtures");
        for fixture in fixtures {
            let what = format!("{kind}/{}", fixture.name);
            let outgoing = providers.sign(kind, &fixture.body, fixture.path_event.as_deref());
            let mut outgoing = outgoing;
            // Headers a fixture's request carries besides the signature (e.g. webhook-id)
            // are the signer's: it signs them.
            for (name, value) in fixture.headers.iter() {
                if !outgoing
                    .headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case(name.as_str()))
                {
                    outgoing
                        .headers
                        .push((name.to_string(), value.to_str().unwrap().to_owned()));
                }
            }
            let response = match kind.as_str() {
                "bridge" => providers.app.post_bridge(&fixture.body).await,
                "linxo" => providers.app.post_linxo(&fixture.body).await,
                _ => {
                    providers
                        .post(kind.as_str(), &fixture.body, &outgoing)
                        .await
                }
            };
            let status = response.status();
            let answer: Value = response.json().await.unwrap();
            assert_eq!(status, 200, "{what}: {answer}");
            assert_eq!(answer["status"], "accepted", "{what}: {answer}");
            let sent: Value = serde_json::from_slice(&fixture.body).unwrap();
            answered.insert(what, (answer["id"].as_str().unwrap().to_owned(), sent));
        }
    }
    let records = read_topic(
        &providers.app.bootstrap,
        providers.app.default_topic(),
        answered.len(),
        WAIT,
    )
    .await;
    assert_eq!(records.len(), answered.len(), "one record per webhook");
    for (what, (id, sent)) in &answered {
        let provider = what.split('/').next().unwrap();
        let matching: Vec<_> = records
            .iter()
            .filter(|record| record.header("ce_id") == id && record.json()["data"] == *sent)
            .collect();
        assert_eq!(matching.len(), 1, "{what}: one record with its id and data");
        let envelope = matching[0].json();
        schema.assert_valid(&envelope, what);
        assert_eq!(envelope["provider"], *provider, "{what}");
        assert_eq!(
            matching[0].key.as_deref(),
            envelope["partitionkey"].as_str()
        );
    }
    // Keys were fetched once each, not per request.
    assert_eq!(providers.keys.plaid_fetches.load(Ordering::SeqCst), 1);
    assert_eq!(providers.keys.jwks_fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn hostile_requests_are_refused_as_documented_and_nothing_reaches_kafka() {
    let providers = start().await;
    let body = br#"{"type":"connection.sync.succeeded","data":{"connection_id":"c1"}}"#;
    let now = OffsetDateTime::now_utc();
    let eleven_minutes_ago = now - time::Duration::minutes(11);
    let b64 = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);

    let signed = |kind: &str| providers.sign(kind_named(kind), body, None);
    let with_header = |mut outgoing: Outgoing, name: &str, value: String| {
        outgoing
            .headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        outgoing.headers.push((name.to_owned(), value));
        outgoing
    };
    let standard = signed("standard");
    let tink = signed("tink");
    let plaid_claims = b64(&json!({"iat": now.unix_timestamp(), "request_body_sha256": hex::encode(Sha256::digest(body))}).to_string());
    let jwk_x = providers.keys.plaid_jwk["x"].as_str().unwrap().to_owned();
    let hs256_header = b64(&json!({"alg": "HS256", "kid": PLAID_KID, "typ": "JWT"}).to_string());
    let hs256_signature =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(finhook::auth::hmac::mac(
            finhook::auth::hmac::Algorithm::Sha256,
            jwk_x.as_bytes(),
            &[hs256_header.as_bytes(), b".", plaid_claims.as_bytes()],
        ));
    let jwks_url = format!("{}/.well-known/jwks", providers.keys.url);

    let cases: Vec<(&str, &str, Outgoing, u16, &str)> = vec![
        (
            "standard",
            "signature under another secret",
            with_header(
                standard.clone(),
                "webhook-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".into(),
            ),
            401,
            "unauthorized",
        ),
        (
            "standard",
            "no signature header",
            Outgoing {
                headers: standard
                    .headers
                    .iter()
                    .filter(|(n, _)| n != "webhook-signature")
                    .cloned()
                    .collect(),
                ..Outgoing::default()
            },
            401,
            "unauthorized",
        ),
        (
            "standard",
            "timestamp eleven minutes old, correctly signed",
            {
                let headers = finhook::auth::standard_webhooks::sign_with(
                    &finhook::auth::standard_webhooks::decode_secret(
                        &finhook::secret::Secret::new(STANDARD_SECRET),
                    )
                    .unwrap(),
                    "msg_old",
                    &eleven_minutes_ago.unix_timestamp().to_string(),
                    body,
                );
                Outgoing {
                    headers: headers
                        .into_iter()
                        .map(|(n, v)| (n.to_string(), v))
                        .collect(),
                    ..Outgoing::default()
                }
            },
            401,
            "unauthorized",
        ),
        (
            "standard",
            "webhook-id changed after signing",
            with_header(standard.clone(), "webhook-id", "msg_other".into()),
            401,
            "unauthorized",
        ),
        (
            "hmac",
            "no signature header",
            Outgoing::default(),
            401,
            "unauthorized",
        ),
        (
            "hmac",
            "signature of another body",
            with_header(
                Outgoing::default(),
                "X-Hub-Signature-256",
                "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".into(),
            ),
            401,
            "unauthorized",
        ),
        (
            "tink",
            "stale t",
            with_header(tink.clone(), "X-Tink-Signature", {
                let value = tink.headers[0].1.clone();
                let signature = value.split(",v1=").nth(1).unwrap().to_owned();
                format!("t={},v1={signature}", eleven_minutes_ago.unix_timestamp())
            }),
            401,
            "unauthorized",
        ),
        (
            "plaid",
            "token for another body",
            with_header(
                Outgoing::default(),
                "Plaid-Verification",
                providers.plaid_token(PLAID_KID, b"{}", now.unix_timestamp()),
            ),
            401,
            "unauthorized",
        ),
        (
            "plaid",
            "alg none",
            with_header(
                Outgoing::default(),
                "Plaid-Verification",
                format!(
                    "{}.{plaid_claims}.",
                    b64(&json!({"alg": "none", "kid": PLAID_KID}).to_string())
                ),
            ),
            401,
            "unauthorized",
        ),
        (
            "plaid",
            "HS256 keyed with the public key",
            with_header(
                Outgoing::default(),
                "Plaid-Verification",
                format!("{hs256_header}.{plaid_claims}.{hs256_signature}"),
            ),
            401,
            "unauthorized",
        ),
        (
            "plaid",
            "iat eleven minutes old",
            with_header(
                Outgoing::default(),
                "Plaid-Verification",
                providers.plaid_token(PLAID_KID, body, eleven_minutes_ago.unix_timestamp()),
            ),
            401,
            "unauthorized",
        ),
        (
            "plaid",
            "a key Plaid says expired",
            with_header(
                Outgoing::default(),
                "Plaid-Verification",
                providers.plaid_token(EXPIRED_KID, body, now.unix_timestamp()),
            ),
            401,
            "unauthorized",
        ),
        (
            "plaid",
            "unknown kid (Plaid answers 400)",
            with_header(
                Outgoing::default(),
                "Plaid-Verification",
                providers.plaid_token("someone-elses-kid", body, now.unix_timestamp()),
            ),
            401,
            "unauthorized",
        ),
        (
            "plaid",
            "the same unknown kid right after: refused without a fetch",
            with_header(
                Outgoing::default(),
                "Plaid-Verification",
                providers.plaid_token("someone-elses-kid", body, now.unix_timestamp()),
            ),
            401,
            "unauthorized",
        ),
        (
            "plaid",
            "an event segment on a provider that has none",
            Outgoing {
                path_event: Some("ITEM".into()),
                ..signed("plaid")
            },
            404,
            "not_found",
        ),
        (
            "truelayer",
            "jku outside the allow-list",
            Outgoing {
                headers: providers.truelayer_headers(
                    TRUELAYER_KID,
                    "https://evil.example/.well-known/jwks",
                    "/webhooks/truelayer",
                    body,
                    now,
                ),
                ..Outgoing::default()
            },
            401,
            "unauthorized",
        ),
        (
            "truelayer",
            "signed for another path",
            Outgoing {
                headers: providers.truelayer_headers(
                    TRUELAYER_KID,
                    &jwks_url,
                    "/elsewhere",
                    body,
                    now,
                ),
                ..Outgoing::default()
            },
            401,
            "unauthorized",
        ),
        (
            "truelayer",
            "timestamp eleven minutes old",
            Outgoing {
                headers: providers.truelayer_headers(
                    TRUELAYER_KID,
                    &jwks_url,
                    "/webhooks/truelayer",
                    body,
                    eleven_minutes_ago,
                ),
                ..Outgoing::default()
            },
            401,
            "unauthorized",
        ),
        (
            "truelayer",
            "timestamp sent but not signed",
            Outgoing {
                headers: providers.truelayer_headers_signing(
                    TRUELAYER_KID,
                    &jwks_url,
                    "/webhooks/truelayer",
                    body,
                    now,
                    false,
                ),
                ..Outgoing::default()
            },
            401,
            "unauthorized",
        ),
        (
            "truelayer",
            "unknown kid",
            Outgoing {
                headers: providers.truelayer_headers(
                    "not-in-the-jwks",
                    &jwks_url,
                    "/webhooks/truelayer",
                    body,
                    now,
                ),
                ..Outgoing::default()
            },
            401,
            "unauthorized",
        ),
        (
            "saltedge",
            "signed for another callback URL",
            Outgoing {
                path_event: Some("success".into()),
                headers: vec![(
                    "Signature".into(),
                    providers.saltedge_signature(
                        "https://proxy.internal/webhooks/saltedge/success",
                        body,
                    ),
                )],
                ..Outgoing::default()
            },
            401,
            "unauthorized",
        ),
        (
            "saltedge",
            "signed for another callback kind",
            Outgoing {
                path_event: Some("destroy".into()),
                headers: vec![(
                    "Signature".into(),
                    providers.saltedge_signature(&format!("{SALTEDGE_CALLBACK}/success"), body),
                )],
                ..Outgoing::default()
            },
            401,
            "unauthorized",
        ),
        (
            "saltedge",
            "signature not base64",
            Outgoing {
                headers: vec![("Signature".into(), "%%%".into())],
                ..Outgoing::default()
            },
            401,
            "unauthorized",
        ),
        (
            "powens",
            "no token",
            Outgoing {
                path_event: Some("USER_DELETED".into()),
                ..Outgoing::default()
            },
            401,
            "unauthorized",
        ),
        (
            "powens",
            "wrong token",
            Outgoing {
                path_event: Some("USER_DELETED".into()),
                query: Some("token=guess".into()),
                ..Outgoing::default()
            },
            401,
            "unauthorized",
        ),
        (
            "powens",
            "an event segment that is not a name",
            Outgoing {
                path_event: Some("..%2F..".into()),
                query: Some(format!("token={POWENS_TOKEN}")),
                ..Outgoing::default()
            },
            404,
            "not_found",
        ),
    ];
    for (source, what, outgoing, status, error) in cases {
        let response = providers.post(source, body, &outgoing).await;
        assert_eq!(response.status().as_u16(), status, "{source}: {what}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], error, "{source}: {what}: {answer}");
        // The message says what was wrong without quoting the request.
        let message = answer["message"].as_str().unwrap();
        assert!(
            !message.contains("evil") && !message.contains("guess"),
            "{message}"
        );
    }
    let records = read_topic(
        &providers.app.bootstrap,
        providers.app.default_topic(),
        0,
        Duration::from_secs(2),
    )
    .await;
    assert!(
        records.is_empty(),
        "nothing unauthenticated reaches Kafka: {} records",
        records.len()
    );
    let dead = read_topic(
        &providers.app.bootstrap,
        providers.app.dead_letter_topic(),
        0,
        Duration::from_secs(1),
    )
    .await;
    assert!(dead.is_empty(), "nor its dead-letter topic");
    // Plaid: the genuine key, the expired one, one unknown kid; that kid again within the
    // interval fetched nothing (new unknown kids share a budget: the key cache's unit tests). TrueLayer: the JWKS, then once for the unknown kid. A
    // stranger cannot make finhook hammer the key servers.
    assert_eq!(providers.keys.plaid_fetches.load(Ordering::SeqCst), 3);
    assert_eq!(providers.keys.jwks_fetches.load(Ordering::SeqCst), 2);
    providers.app.assert_still_serving().await;
}

#[tokio::test]
async fn a_key_server_outage_answers_503_with_retry_after_and_the_retry_is_accepted() {
    let providers = start().await;
    providers.keys.down.store(true, Ordering::SeqCst);
    let body = br#"{"webhook_type":"ITEM","webhook_code":"LOGIN_REPAIRED","item_id":"i1"}"#;
    let tl_body = br#"{"type":"payment_settled","event_id":"e1","payment_id":"p1"}"#;
    for (kind, body) in [("plaid", &body[..]), ("truelayer", &tl_body[..])] {
        let outgoing = providers.sign(kind_named(kind), body, None);
        let response = providers.post(kind, body, &outgoing).await;
        assert_eq!(
            response.status(),
            503,
            "{kind}: a genuine event must be retried"
        );
        assert_eq!(response.headers()["retry-after"], "7");
    }
    providers.keys.down.store(false, Ordering::SeqCst);
    // The provider retries later (past the cache's interval for unknown keys).
    tokio::time::sleep(Duration::from_secs(11)).await;
    for (kind, body) in [("plaid", &body[..]), ("truelayer", &tl_body[..])] {
        let outgoing = providers.sign(kind_named(kind), body, None);
        let response = providers.post(kind, body, &outgoing).await;
        assert_eq!(response.status(), 200, "{kind}: the retry is accepted");
    }
    let records = read_topic(
        &providers.app.bootstrap,
        providers.app.default_topic(),
        2,
        WAIT,
    )
    .await;
    assert_eq!(records.len(), 2);
    let metrics = providers.app.metrics().await;
    assert!(
        metrics
            .contains(r#"finhook_webhook_requests_total{outcome="unavailable",source="plaid"} 1"#),
        "{metrics}"
    );
}

/// Python's `standardwebhooks` (the spec authors' library) signs; finhook accepts.
#[tokio::test]
async fn standard_webhooks_signed_by_the_reference_python_library_are_accepted() {
    let providers = start().await;
    let body = r#"{"type":"connection.deleted","timestamp":"2026-11-26T08:00:00Z","data":{"connection_id":"c9"}}"#;
    let script = r#"
import sys, time, json
from datetime import datetime, timezone
from standardwebhooks import Webhook
body = sys.stdin.read()
now = datetime.fromtimestamp(int(time.time()), tz=timezone.utc)
signature = Webhook(sys.argv[1]).sign("msg_python_1", now, body)
print(json.dumps({"webhook-id": "msg_python_1", "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature}))
"#;
    let Some(printed) = python("standardwebhooks", script, &[STANDARD_SECRET], body) else {
        return;
    };
    let headers: HashMap<String, String> = serde_json::from_str(printed.trim()).unwrap();
    let outgoing = Outgoing {
        headers: headers.into_iter().collect(),
        ..Outgoing::default()
    };
    let response = providers.post("standard", body.as_bytes(), &outgoing).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["id"], "msg_python_1",
        "the envelope id is the webhook-id"
    );
    let records = read_topic(
        &providers.app.bootstrap,
        providers.app.default_topic(),
        1,
        WAIT,
    )
    .await;
    assert_eq!(records[0].json()["type"], "io.finhook.connection.deleted");
}

/// Salt Edge's documented construction, written with Python's `cryptography` (RSA PKCS#1 v1.5,
/// SHA-256 over `url|body`): finhook accepts it.
#[tokio::test]
async fn saltedge_callbacks_signed_by_an_independent_implementation_are_accepted() {
    let providers = start().await;
    let body = std::fs::read_to_string(fixtures_dir().join("saltedge/fail-v5.json")).unwrap();
    let key = fixtures_dir().join("saltedge/test-signing-key.pem");
    let script = r#"
import sys, base64
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), password=None)
message = (sys.argv[2] + "|").encode() + sys.stdin.buffer.read()
print(base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode())
"#;
    let url = format!("{SALTEDGE_CALLBACK}/fail");
    let Some(signature) = python(
        "cryptography",
        script,
        &[key.to_str().unwrap(), &url],
        &body,
    ) else {
        return;
    };
    let outgoing = Outgoing {
        path_event: Some("fail".into()),
        headers: vec![("Signature".into(), signature.trim().to_owned())],
        ..Outgoing::default()
    };
    let response = providers.post("saltedge", body.as_bytes(), &outgoing).await;
    assert_eq!(response.status(), 200);
    let records = read_topic(
        &providers.app.bootstrap,
        providers.app.default_topic(),
        1,
        WAIT,
    )
    .await;
    let envelope = records[0].json();
    assert_eq!(envelope["type"], "io.finhook.connection.action_required");
    assert_eq!(envelope["reason"], "InvalidCredentials");
}

/// `finhook sign --source` prints the headers a sender adds, for every provider with a shared
/// secret; `finhook-sim send` signs and sends the same way. finhook accepts both.
#[tokio::test]
async fn finhook_sign_and_finhook_sim_send_sign_every_symmetric_provider() {
    let providers = start().await;
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("sources.toml");
    // The same sources as the app's (its base config's bridge and linxo included).
    std::fs::write(
        &config,
        format!(
            "{}\n[sources.bridge]\nkind = \"bridge\"\nsecret = \"{}\"\n[sources.linxo]\nkind = \"linxo\"\nauth = \"basic\"\nusername = \"{}\"\nsecret = \"{}\"\n",
            sources_toml(&providers.keys.url),
            crate::helpers::BRIDGE_SECRET,
            crate::helpers::LINXO_USER,
            crate::helpers::LINXO_PASSWORD,
        ),
    )
    .unwrap();
    let finhook = crate::common::finhook;
    let mut signed = 0;
    for kind in ["bridge", "linxo", "standard", "hmac", "tink"] {
        let fixture = &webhook_fixtures(kind)[0];
        let file = directory.path().join(format!("{kind}.json"));
        std::fs::write(&file, &fixture.body).unwrap();
        let output = finhook()
            .args(["sign", "--source", kind, "--config"])
            .arg(&config)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let headers: Vec<(String, String)> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|line| {
                let (name, value) = line.split_once(": ").unwrap();
                (name.to_owned(), value.to_owned())
            })
            .collect();
        assert!(!headers.is_empty(), "{kind}: headers printed");
        let outgoing = Outgoing {
            headers,
            ..Outgoing::default()
        };
        let response = providers.post(kind, &fixture.body, &outgoing).await;
        assert_eq!(response.status(), 200, "{kind}: signed by finhook sign");
        signed += 1;
    }
    let output = finhook()
        .args(["sign", "--source", "plaid", "--config"])
        .arg(&config)
        .arg(directory.path().join("tink.json"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("private key"));

    let bodies: Vec<std::path::PathBuf> = webhook_fixtures("tink")
        .iter()
        .take(3)
        .enumerate()
        .map(|(index, fixture)| {
            let path = directory.path().join(format!("tink-{index}.json"));
            std::fs::write(&path, &fixture.body).unwrap();
            path
        })
        .collect();
    let mut send = crate::common::finhook_sim();
    send.args(["send", "--source", "tink", "--rate", "50", "--target"])
        .arg(&providers.app.webhook_url)
        .arg("--config")
        .arg(&config)
        .args(&bodies);
    // finhook serves on this test's runtime: wait for the simulator off it.
    let output = tokio::task::spawn_blocking(move || send.output().unwrap())
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let statuses: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(statuses, json!({"200": 3}));
    let records = read_topic(
        &providers.app.bootstrap,
        providers.app.default_topic(),
        signed + 3,
        WAIT,
    )
    .await;
    assert_eq!(records.len(), signed + 3);
}

/// A sender that batches: each event of the body is published on its own (its bytes exactly,
/// its own id and key), the unreadable one is dead-lettered, and the answer waits for all.
#[tokio::test]
async fn a_batch_body_publishes_each_event_and_dead_letters_the_unreadable_one() {
    let providers = start().await;
    let body = br#"{"sent_at": 1795680000, "events": [
        {"type": "order.paid", "id": "e1", "customer": "c1"},
        {"id": "e2"},
        {"type": "order.refunded", "id": "e3", "customer": "c1", "lines": [1, 2]}]}"#;
    // Signed by the source's own verifier, as the sender would.
    let post_batch = |body: &'static [u8]| providers.app.post_signed("batch", body);
    let response = post_batch(body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "accepted");
    assert_eq!(answer["dead_lettered"], 1);
    assert_eq!(answer["ids"][0], "e1");
    assert_eq!(answer["ids"][2], "e3");
    let records = read_topic(
        &providers.app.bootstrap,
        providers.app.default_topic(),
        2,
        WAIT,
    )
    .await;
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].header("ce_id"), "e1");
    assert_eq!(records[0].key.as_deref(), Some("hmac:c1"));
    assert_eq!(
        records[1].json()["data"],
        json!({"type": "order.refunded", "id": "e3", "customer": "c1", "lines": [1, 2]})
    );
    let dead = read_topic(
        &providers.app.bootstrap,
        providers.app.dead_letter_topic(),
        1,
        WAIT,
    )
    .await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value, br#"{"id": "e2"}"#);
    // The letter says it is one event of a batch, and which: redrive reads it alone.
    assert_eq!(dead[0].header("ce_batch"), "event");
    assert_eq!(dead[0].header("ce_batchindex"), "1");

    // A body that cannot be split is one letter, marked as the whole batch: redrive never reads
    // it as one event, though this one would read as one.
    let unsplittable = br#"{"type": "order.paid", "id": "e4", "events": "not a list"}"#;
    let response = post_batch(unsplittable).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "dead_lettered");
    let dead = read_topic(
        &providers.app.bootstrap,
        providers.app.dead_letter_topic(),
        2,
        WAIT,
    )
    .await;
    assert_eq!(dead.len(), 2);
    let whole = dead
        .iter()
        .find(|letter| letter.value == unsplittable)
        .expect("the whole body is on the dead-letter topic");
    assert_eq!(whole.header("ce_batch"), "whole");
    assert!(!whole.headers.contains_key("ce_batchindex"));
    let schema = crate::common::DeadLetterSchema::load();
    for letter in &dead {
        schema.assert_valid(&letter.headers);
    }
}

/// Every signature scheme refuses a request without its header before reading the body: a
/// stranger announcing a large body and sending none of it is answered 401 at once (not 408
/// at the end of the body read timeout, finhook having waited for it).
#[tokio::test]
async fn every_signature_scheme_refuses_an_unsigned_request_before_its_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let providers = start().await;
    let address = providers
        .app
        .webhook_url
        .trim_start_matches("http://")
        .to_owned();
    for path in [
        "bridge",
        "standard",
        "hmac",
        "tink",
        "plaid",
        "truelayer",
        "saltedge/success",
    ] {
        let mut stranger = tokio::net::TcpStream::connect(&address).await.unwrap();
        let head = format!(
            "POST /webhooks/{path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 900000\r\n\r\n"
        );
        stranger.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0; 4096];
        let read = tokio::time::timeout(Duration::from_secs(3), stranger.read(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("{path}: waited for the body"))
            .unwrap();
        let answer = String::from_utf8_lossy(&answer[..read]);
        assert!(answer.starts_with("HTTP/1.1 401"), "{path}: {answer}");
    }
}
