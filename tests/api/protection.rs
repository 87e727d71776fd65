//! Personal data protected before Kafka, end to end: a Linxo source with the banking presets
//! publishes its webhook with IBANs and account numbers pseudonymized, owner names encrypted and
//! the envelope saying so; `finhook decrypt` opens what was encrypted, with the key list.

use std::time::Duration;

use figment::providers::Format;
use serde_json::Value;

use crate::common::fixture;
use crate::helpers::{read_topic, run_with_stdin, spawn_app};

const ENCRYPTION_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

const PROTECTION: &str = r#"
[protection]
pseudonymize_key = "pseudonymize-key-for-tests"
encryption_key_id = "f1"
encryption_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
[protection.policies.banking]
presets = ["iban", "account_number", "email", "phone"]
[[protection.policies.banking.fields]]
path = "resource.owner.name"
action = "encrypt"
[[protection.policies.banking.fields]]
path = "resource.accounts.*.owner.name"
action = "encrypt"
[sources.linxo]
protect = "banking"
"#;

#[tokio::test]
async fn a_protected_source_publishes_no_personal_data_in_clear_and_decrypt_opens_it() {
    let app = spawn_app(PROTECTION).await;
    let body = fixture("linxo/connection-updated-2-accounts.json");
    let response = app.post_linxo(&body).await;
    assert_eq!(response.status(), 200);
    let records = read_topic(
        &app.bootstrap,
        app.default_topic(),
        1,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(records.len(), 1);
    let record = &records[0];
    let text = String::from_utf8(record.value.clone()).unwrap();
    for personal in [
        "FR7612345678901234567890123",
        "12345678901",
        "09876543210",
        "JEAN DUPONT",
        "Jean Dupont",
    ] {
        assert!(!text.contains(personal), "`{personal}` in clear: {text}");
    }
    let envelope = record.json();
    assert_eq!(envelope["dataprotection"], "banking");
    assert_eq!(record.header("ce_dataprotection"), "banking");
    let account = &envelope["data"]["resource"]["accounts"][0];
    assert!(account["iban"].as_str().unwrap().starts_with("psn:"));
    assert_eq!(account["owner"]["name"]["sealed"], "finhook-field:v1");
    assert_eq!(account["owner"]["name"]["kid"], "f1");
    // What is not personal is as sent.
    let original: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        envelope["data"]["resource"]["accounts"][0]["name"],
        original["resource"]["accounts"][0]["name"]
    );

    // After a rotation (f2 current, f1 previous), `finhook decrypt` opens it.
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("finhook.toml");
    std::fs::write(
        &config,
        format!(
            "[protection]\nencryption_key_id = \"f2\"\nencryption_key = \"{}\"\n[[protection.previous_encryption_keys]]\nid = \"f1\"\nkey = \"{ENCRYPTION_KEY}\"\n",
            finhook::keyring::generate_key()
        ),
    )
    .unwrap();
    let mut decrypt = crate::common::finhook();
    decrypt.args(["decrypt", "--config"]).arg(&config);
    let output = run_with_stdin(decrypt, format!("{text}\n").as_bytes());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let opened: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        opened["data"]["resource"]["owner"]["name"],
        original["resource"]["owner"]["name"]
    );
    assert_eq!(
        opened["data"]["resource"]["accounts"][1]["owner"]["name"],
        original["resource"]["accounts"][1]["owner"]["name"]
    );
    // Pseudonyms are one-way: they stay.
    assert!(opened["data"]["resource"]["accounts"][0]["iban"]
        .as_str()
        .unwrap()
        .starts_with("psn:"));

    // From a file: blank lines skipped, one line out per envelope in.
    let records = directory.path().join("records.jsonl");
    std::fs::write(&records, format!("{text}\n\n{text}\n")).unwrap();
    let decrypt_file = |config: &std::path::Path, file: &std::path::Path| {
        crate::common::finhook()
            .args(["decrypt", "--config"])
            .arg(config)
            .arg(file)
            .output()
            .unwrap()
    };
    let output = decrypt_file(&config, &records);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines, vec![opened.clone(), opened]);
    // A line that is not JSON is named by its number; nothing of it is echoed.
    std::fs::write(&records, format!("{text}\nnot json, iban FR76...\n")).unwrap();
    let output = decrypt_file(&config, &records);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("line 2: not JSON"), "{stderr}");
    assert!(!stderr.contains("FR76"), "{stderr}");
    // Without an encryption key there is nothing to open with.
    let keyless = directory.path().join("keyless.toml");
    std::fs::write(&keyless, "").unwrap();
    let output = decrypt_file(&keyless, &records);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("no [protection] encryption key in the configuration"),
        "{stderr}"
    );
}

#[test]
fn a_policy_that_does_not_exist_or_lacks_its_key_is_refused() {
    let figment = |extra: &str| {
        figment::Figment::from(figment::providers::Toml::string(
            finhook::config::DEFAULT_TOML,
        ))
        .merge(figment::providers::Toml::string(extra))
    };
    let error = finhook::config::Config::from_figment(figment(
        "[sources.l]\nkind = \"linxo\"\nauth = \"none\"\nprotect = \"nope\"\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("sources.l.protect: no policy `nope`"),
        "{error}"
    );
    let error = finhook::config::Config::from_figment(figment(
        "[protection.policies.p]\npresets = [\"iban\"]\npreset_action = \"encrypt\"\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("encrypt needs protection.encryption_key_id"),
        "{error}"
    );
}

/// A route's policy wins over its source's: the events a route takes get the route's.
#[tokio::test]
async fn a_routes_policy_applies_to_the_events_it_takes() {
    let app = spawn_app(&format!(
        r#"{PROTECTION}
[protection.policies.redact_all]
presets = ["iban", "account_number", "owner_name"]
preset_action = "redact"
[[kafka.routes]]
provider = "linxo"
topic = "finhook.linxo.analytics"
protect = "redact_all"
"#
    ))
    .await;
    let response = app
        .post_linxo(&fixture("linxo/connection-updated-2-accounts.json"))
        .await;
    assert_eq!(response.status(), 200);
    let records = read_topic(
        &app.bootstrap,
        "finhook.linxo.analytics",
        1,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(records.len(), 1);
    let envelope = records[0].json();
    assert_eq!(envelope["dataprotection"], "redact_all");
    let account = &envelope["data"]["resource"]["accounts"][0];
    assert_eq!(account["iban"], "[redacted]");
    assert_eq!(account["owner"]["name"], "[redacted]");
}

/// The documented format opened by Python's standard AES-GCM (`cryptography`), as a consumer in
/// another language would.
#[tokio::test]
async fn a_consumer_in_another_language_opens_a_sealed_field() {
    let app = spawn_app(PROTECTION).await;
    let response = app
        .post_linxo(&fixture("linxo/connection-updated-2-accounts.json"))
        .await;
    assert_eq!(response.status(), 200);
    let records = read_topic(
        &app.bootstrap,
        app.default_topic(),
        1,
        Duration::from_secs(10),
    )
    .await;
    let sealed = records[0].json()["data"]["resource"]["owner"]["name"].to_string();
    let script = r#"
import base64, json, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
sealed = json.load(sys.stdin)
assert sealed["sealed"] == "finhook-field:v1" and sealed["alg"] == "A256GCM"
key = base64.b64decode(sys.argv[1])
plain = AESGCM(key).decrypt(base64.b64decode(sealed["nonce"]), base64.b64decode(sealed["ciphertext"]), b"finhook-field:v1")
print(json.loads(plain))
"#;
    let Some(printed) = crate::helpers::python("cryptography", script, &[ENCRYPTION_KEY], &sealed)
    else {
        return;
    };
    assert_eq!(printed.trim(), "M JEAN DUPONT");
}
