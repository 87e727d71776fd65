//! The command line, run as a process: sign, check-config, tail.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{fixture, fixtures_dir};
use crate::helpers::spawn_app;

fn finhook() -> Command {
    crate::common::binary(env!("CARGO_BIN_EXE_finhook"))
}

#[test]
fn sign_prints_the_bridge_header_for_a_file_and_for_stdin() {
    let vectors: serde_json::Value =
        serde_json::from_slice(&fixture("bridge/signature-vectors.json")).unwrap();
    let secret = vectors["secret"].as_str().unwrap();
    let expected = vectors["header_value_current"].as_str().unwrap();
    let path = fixtures_dir().join("bridge/item-refreshed.json");
    let output = finhook()
        .args(["sign", "--secret", secret])
        .arg(&path)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8(output.stdout).unwrap().trim(), expected);

    let mut child = finhook()
        .args(["sign", "--secret", secret, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&fixture("bridge/item-refreshed.json"))
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8(output.stdout).unwrap().trim(), expected);
}

#[test]
fn check_config_prints_the_configuration_with_secrets_redacted() {
    let output = finhook()
        .args(["check-config", "--config", "config/dev.toml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(printed.contains("[redacted]"));
    assert!(printed.contains("embedded = true"));
    for secret in ["whsec-test-bridge-0123456789abcdef", "dev-linxo-password"] {
        assert!(!printed.contains(secret), "{secret} printed");
    }
}

#[test]
fn check_config_fails_naming_the_key() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("bad.toml");
    std::fs::write(&path, "[sources.linxo]\nkind = \"linxo\"\n").unwrap();
    let output = finhook()
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("sources.linxo.auth"), "{stderr}");

    let output = finhook()
        .arg("check-config")
        .env("FINHOOK_KAFKA__COMPRESSION", "brotli")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap().to_lowercase();
    assert!(stderr.contains("kafka.compression"), "{stderr}");
}

#[tokio::test]
async fn tail_prints_published_envelopes_as_json_lines() {
    let app = spawn_app("").await;
    assert_eq!(
        app.post_bridge(&fixture("bridge/item-created.json"))
            .await
            .status(),
        200
    );
    let pretty = fixture("linxo/connection-updated-2-accounts.json");
    assert_eq!(app.post_linxo(&pretty).await.status(), 200);
    assert_eq!(app.post_bridge(b"not json").await.status(), 200);
    let bootstrap = app.bootstrap.clone();
    let output = tokio::task::spawn_blocking(move || {
        let run = |topic: &str, limit: &str| {
            finhook()
                .args([
                    "tail",
                    "--brokers",
                    &bootstrap,
                    "--topic",
                    topic,
                    "--limit",
                    limit,
                ])
                .output()
                .unwrap()
        };
        (run("finhook.events", "2"), run("finhook.deadletter", "1"))
    })
    .await
    .unwrap();
    let (events, letters) = output;
    assert!(
        events.status.success(),
        "{}",
        String::from_utf8_lossy(&events.stderr)
    );
    // One JSON object per line, even for a pretty-printed provider payload.
    let lines: Vec<serde_json::Value> = String::from_utf8(events.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
        .collect();
    assert_eq!(lines.len(), 2);
    let bridge = lines
        .iter()
        .find(|envelope| envelope["provider"] == "bridge")
        .unwrap();
    assert_eq!(bridge["type"], "io.finhook.connection.created");
    assert_eq!(bridge["data"]["type"], "item.created");
    let linxo = lines
        .iter()
        .find(|envelope| envelope["provider"] == "linxo")
        .unwrap();
    let sent: serde_json::Value = serde_json::from_slice(&pretty).unwrap();
    assert_eq!(linxo["data"], sent);

    let letter: serde_json::Value = serde_json::from_slice(&letters.stdout).unwrap();
    assert_eq!(letter["type"], "io.finhook.deadletter");
    assert_eq!(letter["reason"], "invalid_json");
    let raw = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        letter["data_base64"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(raw, b"not json");
}
