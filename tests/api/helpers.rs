//! `spawn_app()`: the real finhook on port 0 with an in-process Kafka mock cluster, plus typed
//! request helpers and a Kafka reader.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use figment::providers::{Format, Toml};
use figment::Figment;
use finhook::app::App;
use finhook::config::{Config, DEFAULT_TOML};
use finhook::providers::bridge;
use finhook::publish::embedded::EmbeddedKafka;
use finhook::secret::Secret;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const BRIDGE_SECRET: &str = "whsec-test-bridge-0123456789abcdef";
pub const LINXO_USER: &str = "linxo";
pub const LINXO_PASSWORD: &str = "linxo-test-password";
pub const RETRY_AFTER: &str = "7";

/// Every test app starts from this; tests merge their own TOML over it.
const BASE_CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
[metrics]
listen = "127.0.0.1:0"
[log]
format = "text"
level = "warn,librdkafka=error"
[kafka]
embedded = true
health_interval = "100ms"
ack_timeout = "3s"
retry_after_seconds = 7
[sources.bridge]
kind = "bridge"
secret = "whsec-test-bridge-0123456789abcdef"
previous_secret = "whsec-previous-bridge-secret-xyz"
[sources.linxo]
kind = "linxo"
auth = "basic"
username = "linxo"
secret = "linxo-test-password"
"#;

/// The `BridgeApi-Signature` the test Bridge source accepts for `body`.
pub fn bridge_signature(body: &[u8]) -> String {
    bridge::sign(&Secret::new(BRIDGE_SECRET), body)
}

/// Posts a signed Bridge webhook to `base` in the background; resolves to the status.
pub fn spawn_signed_post(base: &str, body: Vec<u8>) -> tokio::task::JoinHandle<u16> {
    let url = format!("{base}/webhooks/bridge");
    tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .header("BridgeApi-Signature", bridge_signature(&body))
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

pub struct TestApp {
    pub webhook_url: String,
    pub ops_url: String,
    pub bootstrap: String,
    pub kafka: Option<Arc<EmbeddedKafka>>,
    pub config: Config,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

pub fn test_config(extra: &str) -> Config {
    let figment = Figment::from(Toml::string(DEFAULT_TOML))
        .merge(Toml::string(BASE_CONFIG))
        .merge(Toml::string(extra));
    Config::from_figment(figment).expect("test configuration is valid")
}

/// Starts finhook and waits until it reports ready.
pub async fn spawn_app(extra: &str) -> TestApp {
    let app = spawn_app_unready(extra).await;
    app.wait_ready(true).await;
    app
}

/// Starts finhook without waiting for Kafka.
pub async fn spawn_app_unready(extra: &str) -> TestApp {
    let config = test_config(extra);
    finhook::telemetry::init(&config.log);
    let app = App::build(&config).expect("app builds");
    let kafka = app.embedded_kafka();
    let bootstrap = kafka
        .as_ref()
        .map_or(config.kafka.brokers.clone(), |kafka| {
            kafka.bootstrap_servers().to_owned()
        });
    let webhook_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let webhook_url = format!("http://{}", webhook_listener.local_addr().unwrap());
    let ops_url = format!("http://{}", ops_listener.local_addr().unwrap());
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(webhook_listener, ops_listener, async move {
        let _ = shutdown_rx.await;
    }));
    TestApp {
        client: test_client(&config),
        webhook_url,
        ops_url,
        bootstrap,
        kafka,
        config,
        shutdown: Some(shutdown_tx),
        server: Some(server),
    }
}

/// The client of a test app: kept-alive connections, each dropped once idle for half the app's
/// `header_read_timeout`. The server closes a connection idle that long (hyper's header timer
/// also runs between requests); a client keeping it longer could reuse it just as it closes,
/// and its request would fail with an incomplete message. Any client of finhook should keep
/// its idle timeout under the server's (docs/operations.md).
fn test_client(config: &Config) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(config.server.header_read_timeout / 2)
        .build()
        .unwrap()
}

impl TestApp {
    pub async fn wait_ready(&self, ready: bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let status = self.get_ops("/readyz").await.status();
            if status.is_success() == ready {
                return;
            }
            assert!(Instant::now() < deadline, "readyz never became {ready}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn get_ops(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.ops_url))
            .send()
            .await
            .unwrap()
    }

    pub async fn metrics(&self) -> String {
        self.get_ops("/metrics").await.text().await.unwrap()
    }

    pub fn post(&self, source: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/webhooks/{source}", self.webhook_url))
            .header("content-type", "application/json")
    }

    /// A Bridge webhook signed with the source's current secret.
    pub async fn post_bridge(&self, body: &[u8]) -> reqwest::Response {
        let signature = bridge_signature(body);
        self.post("bridge")
            .header("BridgeApi-Signature", signature)
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// The headers `source`'s sender would sign `body` with now: made by the source's own
    /// verifier (what `finhook sign` does), with its secret from the app's configuration.
    pub fn signed_headers(
        &self,
        source: &str,
        body: &[u8],
    ) -> Vec<(reqwest::header::HeaderName, String)> {
        let sources = finhook::sources::Sources::from_config(&self.config).unwrap();
        sources
            .get(source)
            .unwrap_or_else(|| panic!("the test config has no `{source}` source"))
            .verifier()
            .sign(body, time::OffsetDateTime::now_utc())
            .unwrap_or_else(|| {
                panic!("`{source}` has no shared secret to sign with: teach the test how its sender signs")
            })
    }

    /// A webhook to `source`, signed as its sender would sign it ([`Self::signed_headers`]).
    pub async fn post_signed(&self, source: &str, body: &[u8]) -> reqwest::Response {
        let mut request = self.post(source).body(body.to_vec());
        for (name, value) in self.signed_headers(source, body) {
            request = request.header(name, value);
        }
        request.send().await.unwrap()
    }

    /// A Linxo webhook with the source's Basic credentials.
    pub async fn post_linxo(&self, body: &[u8]) -> reqwest::Response {
        self.post("linxo")
            .basic_auth(LINXO_USER, Some(LINXO_PASSWORD))
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// The app still takes a valid webhook (after whatever a test threw at it).
    pub async fn assert_still_serving(&self) {
        let body =
            std::fs::read(crate::common::fixtures_dir().join("bridge/test-event.json")).unwrap();
        assert_eq!(
            self.post_bridge(&body).await.status(),
            200,
            "finhook stopped serving"
        );
    }

    pub fn default_topic(&self) -> &str {
        &self.config.kafka.topics.default
    }

    /// Every request to the test broker takes `delay` (zero: back to normal).
    pub fn broker_round_trip(&self, delay: Duration) {
        self.kafka
            .as_ref()
            .expect("the app runs on its test broker")
            .set_round_trip_time(1, delay)
            .unwrap();
    }

    /// The test broker answers its next produce requests with `errors`, one each.
    pub fn fail_next_produces(&self, errors: Vec<rdkafka::types::RDKafkaRespErr>) {
        self.kafka
            .as_ref()
            .expect("the app runs on its test broker")
            .fail_next_produce_requests(errors)
            .unwrap();
    }

    /// Makes the broker refuse `topic`, as a missing ACL would: produce requests and metadata
    /// for it fail with "topic authorization failed".
    pub fn forbid_topic(&self, topic: &str) {
        self.kafka
            .as_ref()
            .expect("the app runs on its test broker")
            .set_topic_error(
                topic,
                rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
            )
            .unwrap();
    }

    pub fn dead_letter_topic(&self) -> &str {
        &self.config.kafka.topics.dead_letter
    }

    /// Stops the app the way SIGTERM does and returns its result.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.server.take().unwrap().await.unwrap()
    }
}

#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    /// The record's timestamp (milliseconds since the epoch), when it has one.
    pub timestamp: Option<i64>,
    pub key: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub value: Vec<u8>,
}

impl Record {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.value).expect("record value is JSON")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("record has no {name} header: {:?}", self.headers))
    }
}

/// Reads `topic` from the beginning until `expected` records arrived (then a little longer, to
/// catch extras) or `wait` passed. Returns what it found, in partition and offset order.
pub async fn read_topic(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    wait: Duration,
) -> Vec<Record> {
    let bootstrap = bootstrap.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || read_topic_blocking(&bootstrap, &topic, expected, wait))
        .await
        .unwrap()
}

fn read_topic_blocking(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    wait: Duration,
) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "finhook-tests")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let deadline = Instant::now() + wait;
    let partitions = loop {
        let count = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(2))
            .ok()
            .and_then(|metadata| {
                metadata
                    .topics()
                    .first()
                    .filter(|found| found.error().is_none())
                    .map(|found| found.partitions().len())
            })
            .unwrap_or(0);
        if count > 0 || Instant::now() >= deadline {
            break count;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if partitions == 0 {
        return Vec::new();
    }
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions as i32 {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let mut settle_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now >= deadline || settle_until.is_some_and(|until| now >= until) {
            break;
        }
        if records.len() >= expected && settle_until.is_none() {
            settle_until = Some(now + Duration::from_millis(500));
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.unwrap();
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|header| {
                        let value =
                            String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned();
                        (header.key.to_owned(), value)
                    })
                    .collect()
            })
            .unwrap_or_default();
        records.push(Record {
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            key: message
                .key()
                .map(|key| String::from_utf8_lossy(key).into_owned()),
            headers,
            value: message.payload().unwrap_or_default().to_vec(),
        });
    }
    records.sort_by_key(|record| (record.partition, record.offset));
    records
}

/// Runs python3 with `script` and `args`, `input` on its stdin; returns what it printed. `None`
/// when python3 or the `module` the script needs is missing on a developer's machine (.ci/run
/// installs them, and there the test must run).
pub fn python(module: &str, script: &str, args: &[&str], input: &str) -> Option<String> {
    if !crate::common::tool_available(
        "python3",
        &["-c", &format!("import {module}")],
        &format!("python3 with its {module} package"),
    ) {
        return None;
    }
    let mut python = std::process::Command::new("python3");
    python.args(["-c", script]).args(args);
    let output = run_with_stdin(python, input.as_bytes());
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8(output.stdout).unwrap())
}

/// Runs `command` with `input` on its stdin; returns what it printed.
pub fn run_with_stdin(mut command: std::process::Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}
