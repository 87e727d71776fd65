//! The command line, run as a process: sign, check-config, tail.

use std::process::Command;
use std::time::Duration;

use crate::common::{finhook, fixture, fixtures_dir};
use crate::helpers::{python, read_topic, run_with_stdin, spawn_app};

/// Runs `command` off the test runtime; it must fail. Its standard error.
async fn stderr_of_failing(mut command: Command) -> String {
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{stderr}");
    stderr
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

    let mut sign = finhook();
    sign.args(["sign", "--secret", secret, "-"]);
    let output = run_with_stdin(sign, &fixture("bridge/item-refreshed.json"));
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

#[test]
fn check_config_reads_the_tls_files_as_serve_would() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("tls.toml");
    let missing = directory.path().join("missing.pem");
    std::fs::write(
        &path,
        format!(
            "[server.tls]\ncert_file = {missing:?}\nkey_file = {missing:?}\n",
            missing = missing.display().to_string()
        ),
    )
    .unwrap();
    let check = |skip_files: bool| {
        let mut command = finhook();
        command.arg("check-config").arg("--config").arg(&path);
        if skip_files {
            command.arg("--skip-files");
        }
        command.output().unwrap()
    };
    let output = check(false);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("server.tls"), "{stderr}");
    assert!(check(true).status.success(), "--skip-files reads no file");
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
    // The events through a configuration's brokers, the dead letter through --brokers.
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("finhook.toml");
    let kafka = format!("[kafka]\nembedded = false\nbrokers = \"{bootstrap}\"\n");
    std::fs::write(&config, kafka).unwrap();
    let output = tokio::task::spawn_blocking(move || {
        let run = |brokers: [&std::ffi::OsStr; 2], topic: &str, limit: &str| {
            finhook()
                .arg("tail")
                .args(brokers)
                .args(["--topic", topic, "--limit", limit])
                .output()
                .unwrap()
        };
        (
            run(
                ["--config".as_ref(), config.as_ref()],
                "finhook.events",
                "2",
            ),
            run(
                ["--brokers".as_ref(), bootstrap.as_ref()],
                "finhook.deadletter",
                "1",
            ),
        )
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

/// `finhook tail` connects as the daemon does: with the `[kafka.properties]` that secure the
/// connection (here a client certificate that does not exist, which librdkafka refuses to
/// start with; without the properties it would try a plain connection).
#[test]
fn tail_connects_with_the_configurations_security_properties() {
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("finhook.toml");
    std::fs::write(
        &config,
        "[kafka]\nembedded = false\nbrokers = \"127.0.0.1:1\"\n\
         [kafka.properties]\n\"security.protocol\" = \"ssl\"\n\
         \"ssl.certificate.location\" = \"/no/such/cert.pem\"\n\
         \"ssl.key.location\" = \"/no/such/key.pem\"\n",
    )
    .unwrap();
    let output = finhook()
        .args(["tail", "--topic", "finhook.events", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("ssl.certificate.location"), "{stderr}");
}

/// A registry configuration for the `users` commands that need no Kafka.
fn registry_config(directory: &std::path::Path) -> std::path::PathBuf {
    let path = directory.join("registry.toml");
    std::fs::write(
        &path,
        format!(
            "[registry]\nenabled = true\nkey_id = \"k1\"\nkey = \"{}\"\n\
             [pollers.oxlin]\nkind = \"oxlin\"\nenvironment = \"sandbox\"\nclient_id = \"c\"\nclient_secret = \"s\"\n",
            crate::registry::REGISTRY_KEY
        ),
    )
    .unwrap();
    path
}

/// The documented format, as a service in another language implements it with its standard
/// AES-GCM: decrypts what `finhook users encrypt` wrote, and writes a record finhook reads.
const PYTHON_REGISTRY: &str = r#"
import base64, json, os, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
key = base64.b64decode(sys.argv[1] if len(sys.argv) > 1 else os.environ["KEY"])
record = json.load(sys.stdin)
sealed = record["credentials"]
aad = b"finhook-user:v1:321"
plain = AESGCM(key).decrypt(base64.b64decode(sealed["nonce"]), base64.b64decode(sealed["ciphertext"]), aad)
nonce = os.urandom(12)
ciphertext = AESGCM(key).encrypt(nonce, json.dumps({"access_token": "from-python"}).encode(), aad)
print(plain.decode())
print(json.dumps({"version": 1, "poller": "oxlin", "credentials": {"kid": "k1", "alg": "A256GCM",
    "nonce": base64.b64encode(nonce).decode(), "ciphertext": base64.b64encode(ciphertext).decode()}}))
"#;

#[test]
fn users_encrypt_writes_records_another_language_can_read_and_write() {
    let directory = tempfile::tempdir().unwrap();
    let config = registry_config(directory.path());
    let mut encrypt = finhook();
    encrypt
        .args(["users", "encrypt", "321", "--poller", "oxlin"])
        .args(["--credentials", "-", "--config"])
        .arg(&config);
    let output = run_with_stdin(
        encrypt,
        br#"{"username": "jean@example.com", "password": "hunter2"}"#,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let record = String::from_utf8(output.stdout).unwrap();
    assert!(
        !record.contains("hunter2") && !record.contains("jean@"),
        "{record}"
    );

    let script = PYTHON_REGISTRY.replace(
        "os.environ[\"KEY\"]",
        &format!("\"{}\"", crate::registry::REGISTRY_KEY),
    );
    let Some(answer) = python("cryptography", &script, &[], &record) else {
        return;
    };
    let mut lines = answer.lines();
    let plain: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(plain["username"], "jean@example.com");
    assert_eq!(plain["password"], "hunter2");
    let written = lines.next().unwrap();
    let keyring = finhook::keyring::Keyring::new(
        "k1",
        &finhook::secret::Secret::new(crate::registry::REGISTRY_KEY),
    )
    .unwrap();
    let read = finhook::registry::record::decode(Some(b"321"), Some(written.as_bytes()), &keyring)
        .unwrap();
    let finhook::registry::record::RegistryEntry::User(user) = read else {
        panic!("a user");
    };
    assert!(matches!(&user.credentials,
        finhook::config::UserCredentials::AccessToken(token) if token.expose() == "from-python"));
}

#[test]
fn users_commands_take_credentials_from_files_never_from_arguments() {
    let directory = tempfile::tempdir().unwrap();
    let config = registry_config(directory.path());
    // There is no flag for a password or token: clap refuses one.
    let output = finhook()
        .args([
            "users",
            "put",
            "321",
            "--poller",
            "oxlin",
            "--password",
            "x",
        ])
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("unexpected argument '--password'"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // An unknown poller is refused with the configured ones named.
    let credentials = directory.path().join("credentials.json");
    std::fs::write(&credentials, r#"{"access_token": "t"}"#).unwrap();
    let output = finhook()
        .args([
            "users",
            "encrypt",
            "321",
            "--poller",
            "nope",
            "--credentials",
        ])
        .arg(&credentials)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("oxlin"));
    // A user id the daemon would skip is refused before anything is written (`encrypt`
    // needs no Kafka, and checks the same as `put`).
    let output = finhook()
        .args(["users", "encrypt", "", "--poller", "oxlin", "--credentials"])
        .arg(&credentials)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success(), "an empty user id");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("user id"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // keygen prints a usable key.
    let output = finhook().args(["users", "keygen"]).output().unwrap();
    let key = String::from_utf8(output.stdout).unwrap();
    assert!(finhook::keyring::parse_key("new", &finhook::secret::Secret::new(key.trim())).is_ok());
}

/// `finhook tail | head -1`: when the reader goes away, tail ends quietly with success.
#[tokio::test]
async fn tail_piped_into_a_reader_that_stops_exits_quietly() {
    let app = spawn_app("").await;
    for name in ["item-created", "item-deleted", "item-refreshed"] {
        let response = app
            .post_bridge(&fixture(&format!("bridge/{name}.json")))
            .await;
        assert_eq!(response.status(), 200);
    }
    let mut tail = finhook()
        .args([
            "tail",
            "--brokers",
            &app.bootstrap,
            "--topic",
            app.default_topic(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = tail.stdout.take().unwrap();
    tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        // Read one line, like `head -1`, then close the pipe.
        let mut first = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut first)
            .unwrap();
        assert!(first.contains("io.finhook."), "{first}");
    })
    .await
    .unwrap();
    // Like `tail -f | head`, finhook notices at its next write: give it more to print.
    for name in ["item-account-created", "item-account-updated"] {
        let response = app
            .post_bridge(&fixture(&format!("bridge/{name}.json")))
            .await;
        assert_eq!(response.status(), 200);
    }
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || tail.wait_with_output().unwrap()),
    )
    .await
    .expect("finhook tail exits once its reader is gone")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}: {stderr}",
        output.status
    );
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}

/// An HMAC source whose events the redrive tests dead-letter (no event type where it looks).
const RELAY_SOURCE: &str = r#"
[sources.relay]
kind = "hmac"
secret = "relay-secret"
header = "X-Relay-Signature"
"#;

/// Dead letters redriven after a mapping fix: poison records in (a sender whose event name is
/// not where the source looks), the source's configuration fixed, `finhook redrive` publishes
/// them to their route and reports what still fails; a second redrive repeats the same ids.
#[tokio::test]
async fn redrive_publishes_what_a_fixed_mapping_now_reads() {
    let source = RELAY_SOURCE;
    let app = spawn_app(source).await;
    let bodies: Vec<String> = (0..3)
        .map(|index| format!(r#"{{"kind": "order.paid", "order": {index}}}"#))
        .chain([r#"{"kind": "order.paid", "#.to_owned()])
        .collect();
    for body in &bodies {
        let response = app.post_signed("relay", body.as_bytes()).await;
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer["status"], "dead_lettered", "{answer}");
    }
    let directory = tempfile::tempdir().unwrap();
    let fixed = directory.path().join("fixed.toml");
    std::fs::write(&fixed, format!("{source}event_type_path = \"kind\"\n")).unwrap();
    let bootstrap = app.bootstrap.clone();
    let redrive = move |extra: &[&str]| {
        let output = finhook()
            .args(["redrive", "--json", "--brokers", &bootstrap, "--config"])
            .arg(&fixed)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let dry = tokio::task::spawn_blocking({
        let redrive = redrive.clone();
        move || redrive(&["--dry-run"])
    })
    .await
    .unwrap();
    assert_eq!(dry["read"], 4);
    assert_eq!(
        dry["redriven"],
        serde_json::json!({"io.finhook.unmapped": 3})
    );
    assert_eq!(dry["still_failing"], serde_json::json!({"invalid_json": 1}));
    assert_eq!(dry["dry_run"], true);
    let nothing = read_topic(
        &app.bootstrap,
        app.default_topic(),
        0,
        Duration::from_secs(1),
    )
    .await;
    assert!(nothing.is_empty(), "a dry run publishes nothing");

    // Ranges, by time and by offset (per partition).
    let letters = read_topic(
        &app.bootstrap,
        app.dead_letter_topic(),
        4,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(letters.len(), 4);
    let mut per_partition = std::collections::BTreeMap::<i32, i64>::new();
    for letter in &letters {
        *per_partition.entry(letter.partition).or_default() += 1;
    }
    let from = |offset: i64| -> i64 {
        per_partition
            .values()
            .map(|count| (count - offset).max(0))
            .sum()
    };
    // A time between the letters' own timestamps, so that a range that ignored it would read
    // all of them or none: `--since` keeps what was written at or after it, `--until` what was
    // written at or before it.
    let mut written: Vec<i64> = letters
        .iter()
        .map(|letter| letter.timestamp.unwrap())
        .collect();
    written.sort_unstable();
    // Bounds with letters strictly on both sides: the first time after the earliest letter,
    // the last time before the latest.
    let (first, last) = (written[0], written[3]);
    assert!(
        first < last,
        "the letters were written within one millisecond: {written:?}"
    );
    let since = *written.iter().find(|&&at| at > first).unwrap();
    let until = *written.iter().rev().find(|&&at| at < last).unwrap();
    let rfc3339 = |millis: i64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let (since_text, until_text) = (rfc3339(since), rfc3339(until));
    let count = |keep: &dyn Fn(i64) -> bool| written.iter().filter(|&&at| keep(at)).count() as i64;
    let (from_one, from_two) = (from(1), from(2));
    for (range, expected) in [
        (["--since", "2000-01-01T00:00:00Z"], 4),
        (["--since", since_text.as_str()], count(&|at| at >= since)),
        (["--since", "2099-01-01T00:00:00Z"], 0),
        (["--until", "2000-01-01T00:00:00Z"], 0),
        (["--until", until_text.as_str()], count(&|at| at <= until)),
        (["--from-offset", "1"], from_one),
        (["--from-offset", "2"], from_two),
    ] {
        let range = range.map(str::to_owned);
        let redrive = redrive.clone();
        let summary = tokio::task::spawn_blocking(move || {
            let mut arguments = vec!["--dry-run"];
            arguments.extend(range.iter().map(String::as_str));
            redrive(&arguments)
        })
        .await
        .unwrap();
        assert_eq!(summary["read"], expected, "{summary}");
    }

    let first = tokio::task::spawn_blocking({
        let redrive = redrive.clone();
        move || redrive(&[])
    })
    .await
    .unwrap();
    assert_eq!(
        first["redriven"],
        serde_json::json!({"io.finhook.unmapped": 3}),
        "{first}"
    );
    let records = read_topic(
        &app.bootstrap,
        app.default_topic(),
        3,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(records.len(), 3);
    for record in &records {
        let envelope = record.json();
        assert_eq!(envelope["providertype"], "order.paid");
        assert_eq!(envelope["source"], "finhook://hmac/relay");
    }
    // Again: the same events, recognisable by their ids.
    tokio::task::spawn_blocking(move || redrive(&[]))
        .await
        .unwrap();
    let again = read_topic(
        &app.bootstrap,
        app.default_topic(),
        6,
        Duration::from_secs(10),
    )
    .await;
    let ids = |records: &[crate::helpers::Record]| {
        records
            .iter()
            .map(|record| record.header("ce_id").to_owned())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(again.len(), 6);
    assert_eq!(
        ids(&again),
        ids(&records),
        "a second redrive repeats the same ids"
    );
}

/// Events that now read but that Kafka does not take are counted apart, said on stderr, and
/// make the command fail: a script running `finhook redrive && ...` must not take it as done.
#[tokio::test]
async fn redrive_fails_when_kafka_does_not_take_the_events() {
    let source = RELAY_SOURCE;
    let app = spawn_app(source).await;
    let response = app
        .post_signed("relay", br#"{"kind": "order.paid", "order": 1}"#)
        .await;
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "dead_lettered", "{answer}");
    // The fixed mapping routes the events to a topic this client may not write.
    app.forbid_topic("finhook.forbidden");
    let directory = tempfile::tempdir().unwrap();
    let fixed = directory.path().join("fixed.toml");
    std::fs::write(
        &fixed,
        format!(
            "{source}event_type_path = \"kind\"\n[[kafka.routes]]\nprovider = \"hmac\"\ntopic = \"finhook.forbidden\"\n"
        ),
    )
    .unwrap();
    let bootstrap = app.bootstrap.clone();
    let output = tokio::task::spawn_blocking(move || {
        finhook()
            .args(["redrive", "--json", "--brokers", &bootstrap, "--config"])
            .arg(&fixed)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "exit 0 with nothing published");
    assert!(stderr.contains("not published"), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        summary["not_published"],
        serde_json::json!({"refused": 1}),
        "{summary}"
    );
    assert_eq!(summary["redriven"], serde_json::json!({}), "{summary}");
}

#[tokio::test]
async fn redrive_refuses_a_dead_letter_topic_that_does_not_exist() {
    let app = spawn_app("").await;
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("finhook.toml");
    std::fs::write(&config, "[kafka.topics]\ndead_letter = \"no.such.topic\"\n").unwrap();
    let mut redrive = finhook();
    redrive
        .args([
            "redrive",
            "--dry-run",
            "--brokers",
            &app.bootstrap,
            "--config",
        ])
        .arg(&config);
    let stderr = stderr_of_failing(redrive).await;
    assert!(
        stderr.contains("reading the dead-letter topic: topic no.such.topic does not exist"),
        "{stderr}"
    );
}

/// A topic the brokers refuse to describe (not authorized, say) is reported as such, not as
/// missing: the operator has an ACL to fix, not a topic name.
#[tokio::test]
async fn tail_reports_a_topic_it_may_not_read_as_not_authorized() {
    let app = spawn_app("").await;
    app.forbid_topic(app.default_topic());
    let mut tail = finhook();
    tail.args([
        "tail",
        "--brokers",
        &app.bootstrap,
        "--topic",
        app.default_topic(),
    ]);
    let stderr = stderr_of_failing(tail).await;
    assert!(stderr.contains("authorization"), "{stderr}");
    assert!(!stderr.contains("does not exist"), "{stderr}");
}
