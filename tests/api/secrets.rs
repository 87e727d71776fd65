//! No secret and no personal banking data in logs, metrics, check-config output or error
//! bodies, whatever path a request takes (good, refused, garbage, broker down).

use std::time::Duration;

use base64::Engine;

use crate::common::fixture;
use crate::helpers::BRIDGE_SECRET;
use crate::process::{
    signal, wait_exit, Broker, Daemon, BRIDGE_PREVIOUS_SECRET as BRIDGE_PREVIOUS,
};

const LINXO_PASSWORD: &str = "linxo-password-9931";
const LINXO_TOKEN: &str = "linxo-bearer-token-5521";
const KAFKA_PASSWORD: &str = "kafka-sasl-password-7780";
const PLAID_SECRET: &str = "plaid-api-secret-4410";
const TINK_SECRET: &str = "tink-webhook-secret-2284";
const STANDARD_SECRET: &str = "whsec_c2VjcmV0LXN0YW5kYXJkLXdlYmhvb2tzLTk5";
const HMAC_SECRET: &str = "hmac-shared-secret-6013";
const POWENS_TOKEN: &str = "powens-url-token-8857";

/// Personal data in the Linxo fixtures: IBANs, account numbers, names.
const PERSONAL: &[&str] = &[
    "FR7612345678901234567890123",
    "FR7609876543210987654321098",
    "12345678901",
    "Jean Dupont",
    "JEAN DUPONT",
];

#[tokio::test]
async fn no_secret_or_personal_data_leaks_on_any_path() {
    let broker = Broker::start();
    let directory = tempfile::tempdir().unwrap();
    let log = directory.path().join("finhook.log");
    let extra = format!(
        r#"
        [sources.linxo]
        kind = "linxo"
        auth = "basic"
        username = "linxo"
        secret = "{LINXO_PASSWORD}"
        [sources.linxo_bearer]
        kind = "linxo"
        auth = "bearer"
        secret = "{LINXO_TOKEN}"
        [sources.plaid]
        kind = "plaid"
        client_id = "plaid-client"
        secret = "{PLAID_SECRET}"
        # Nothing listens there: the key fetch fails, the webhook is answered 503.
        api_url = "http://127.0.0.1:9"
        [sources.tink]
        kind = "tink"
        secret = "{TINK_SECRET}"
        [sources.standard]
        kind = "standard"
        secret = "{STANDARD_SECRET}"
        [sources.hmac]
        kind = "hmac"
        header = "X-Hub-Signature-256"
        prefix = "sha256="
        secret = "{HMAC_SECRET}"
        [sources.powens]
        kind = "powens"
        auth = "query"
        secret = "{POWENS_TOKEN}"
        [kafka.properties]
        "sasl.password" = "{KAFKA_PASSWORD}"
        "#
    );
    let mut daemon = Daemon::start_logging(&broker.bootstrap, &extra, Some(&log)).await;
    let client = reqwest::Client::new();
    let mut bodies: Vec<String> = Vec::new();
    let linxo = fixture("linxo/connection-updated-2-accounts.json");
    let url = |source: &str| format!("{}/webhooks/{source}", daemon.webhooks);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("linxo:{LINXO_PASSWORD}"));
    let wrong_basic =
        base64::engine::general_purpose::STANDARD.encode("linxo:FR7612345678901234567890123");

    let mut requests = vec![
        // Good paths.
        client
            .post(url("linxo"))
            .header("authorization", format!("Basic {basic}"))
            .body(linxo.clone()),
        client
            .post(url("linxo_bearer"))
            .bearer_auth(LINXO_TOKEN)
            .body(linxo.clone()),
        // Refused: wrong credentials that carry personal data, a bad signature.
        client
            .post(url("linxo"))
            .header("authorization", format!("Basic {wrong_basic}"))
            .body(linxo.clone()),
        client
            .post(url("linxo_bearer"))
            .bearer_auth("Jean Dupont")
            .body(linxo.clone()),
        client
            .post(url("bridge"))
            .header("BridgeApi-Signature", "v1=00")
            .body(linxo.clone()),
        // Garbage with personal data, authenticated: dead-lettered.
        client
            .post(url("linxo"))
            .header("authorization", format!("Basic {basic}"))
            .body(r#"{"iban": "FR7612345678901234567890123", "owner": "Jean Dupont""#),
        // Unknown source, oversized body.
        client
            .post(url("FR7612345678901234567890123"))
            .body(linxo.clone()),
        client
            .post(url("linxo"))
            .header("authorization", format!("Basic {basic}"))
            .body(vec![b' '; 2 << 20]),
    ];
    // The other providers: a key fetch that fails (Plaid), wrong signatures, a query token
    // right and wrong (the URL's query must never be logged).
    let plaid_token = format!(
        "{}.{}.AAAA",
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"alg":"ES256","kid":"FR7612345678901234567890123","typ":"JWT"}"#),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"iat":1}"#),
    );
    requests.extend([
        client
            .post(url("plaid"))
            .header("Plaid-Verification", plaid_token)
            .body(linxo.clone()),
        client
            .post(url("tink"))
            .header("X-Tink-Signature", "t=1,v1=00")
            .body(linxo.clone()),
        client
            .post(url("standard"))
            .header("webhook-id", "Jean Dupont")
            .header("webhook-timestamp", "1")
            .header("webhook-signature", "v1,AAAA")
            .body(linxo.clone()),
        client
            .post(url("hmac"))
            .header("X-Hub-Signature-256", "sha256=00")
            .body(linxo.clone()),
        client
            .post(format!(
                "{}/USER_DELETED?token={POWENS_TOKEN}",
                url("powens")
            ))
            .body(r#"{"id": 4217, "name": "Jean Dupont"}"#),
        client
            .post(format!(
                "{}/USER_DELETED?token=FR7612345678901234567890123",
                url("powens")
            ))
            .body(r#"{"id": 4217}"#),
    ]);
    let signature = crate::helpers::bridge_signature(&linxo);
    requests.push(
        client
            .post(url("bridge"))
            .header("BridgeApi-Signature", signature.clone())
            .body(linxo.clone()),
    );
    for request in requests {
        // finhook stops reading an oversized body and closes the connection after its 413, so
        // a client still sending may see the connection close instead of the answer.
        match request.send().await {
            Ok(response) => bodies.push(response.text().await.unwrap()),
            Err(error) => assert!(error.is_request(), "{error}"),
        }
    }
    // Broker down: 503s.
    signal(&broker.child, "STOP");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let down = client
        .post(url("linxo"))
        .header("authorization", format!("Basic {basic}"))
        .body(linxo.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), 503);
    bodies.push(down.text().await.unwrap());
    signal(&broker.child, "CONT");

    let metrics = client
        .get(format!("{}/metrics", daemon.ops))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let check_config = crate::common::finhook()
        .args(["check-config", "--config"])
        .arg(&daemon.config_path)
        .output()
        .unwrap();
    assert!(
        check_config.status.success(),
        "{}",
        String::from_utf8_lossy(&check_config.stderr)
    );
    signal(&daemon.child, "TERM");
    wait_exit(&mut daemon.child, Duration::from_secs(20)).expect("finhook exited");
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.contains("webhook refused"),
        "the logs were captured: {logs}"
    );

    let secrets = [
        BRIDGE_SECRET,
        BRIDGE_PREVIOUS,
        LINXO_PASSWORD,
        LINXO_TOKEN,
        KAFKA_PASSWORD,
        PLAID_SECRET,
        TINK_SECRET,
        STANDARD_SECRET,
        HMAC_SECRET,
        POWENS_TOKEN,
        &basic,
        &wrong_basic,
        &signature,
    ];
    let places = [
        ("logs", logs),
        ("/metrics", metrics),
        (
            "check-config",
            String::from_utf8_lossy(&check_config.stdout).into_owned()
                + &String::from_utf8_lossy(&check_config.stderr),
        ),
        ("error bodies", bodies.join("\n")),
    ];
    for (place, text) in &places {
        for needle in secrets.iter().chain(PERSONAL) {
            assert!(!text.contains(needle), "{place} contains `{needle}`");
        }
    }
}
