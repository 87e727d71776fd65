//! Processes for the real-broker tier: tansu (an Apache-Kafka-compatible broker, sqlite storage
//! so records survive its restart), finhook as a process, and a load generator that remembers
//! which webhooks were answered 2xx.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

pub const SECRET: &str = "broker-tier-secret";
pub const TOPIC: &str = "finhook.events";
pub const PARTITIONS: u32 = 3;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

const INSTALL_TANSU: &str =
    "cargo install --locked tansu --version 0.6.0 --features dynostore,libsql (.ci/run does it)";

/// The tansu binary: `$TANSU_BIN`, else `tansu` on the PATH (.ci/run installs it).
fn find_tansu() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TANSU_BIN") {
        return Some(path.into());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("tansu"))
        .find(|path| path.exists())
}

fn tansu_binary() -> PathBuf {
    find_tansu().unwrap_or_else(|| panic!("the real-broker tier needs tansu: {INSTALL_TANSU}"))
}

/// Whether this tier can run. Without tansu a developer's `cargo test` skips it, saying so;
/// with `REQUIRE_TANSU` set (as .ci/run does) a missing tansu fails instead.
pub fn tansu_installed_or_skip(test: &str) -> bool {
    if find_tansu().is_some() {
        return true;
    }
    if std::env::var_os("REQUIRE_TANSU").is_some() {
        panic!("REQUIRE_TANSU is set but tansu is not installed: {INSTALL_TANSU}");
    }
    eprintln!("SKIPPED {test}: the real-broker tier needs tansu ({INSTALL_TANSU})");
    false
}

/// A tansu broker on a fixed port, storing in a directory that outlives its restarts.
pub struct Tansu {
    pub directory: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Tansu {
    pub fn start() -> Self {
        let mut tansu = Self {
            directory: tempfile::tempdir().unwrap(),
            port: free_port(),
            child: None,
        };
        tansu.launch();
        let status = Command::new(tansu_binary())
            .args([
                "topic",
                "create",
                "--broker",
                &tansu.url(),
                "--partitions",
                &PARTITIONS.to_string(),
                TOPIC,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "creating {TOPIC}");
        tansu
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(self.directory.path().join("tansu.log")).unwrap();
        let child = Command::new(tansu_binary())
            .args([
                "broker",
                "--listener-url",
                &self.url(),
                "--advertised-listener-url",
                &self.url(),
            ])
            // A relative sqlite path: tansu resolves it against its working directory.
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(self.directory.path())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(self.bootstrap()).is_err() {
            assert!(Instant::now() < deadline, "tansu did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: the broker dies without a chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn restart(&mut self) {
        self.launch();
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill();
    }
}

/// finhook as a process, configured for the broker tier.
pub struct Finhook {
    pub child: Child,
    pub webhooks: String,
    pub ops: String,
    _directory: tempfile::TempDir,
}

impl Finhook {
    pub fn start(bootstrap: &str, extra: &str) -> Self {
        let directory = tempfile::tempdir().unwrap();
        let (webhooks, ops) = (free_port(), free_port());
        let config = format!(
            r#"
            [server]
            listen = "127.0.0.1:{webhooks}"
            [metrics]
            listen = "127.0.0.1:{ops}"
            [log]
            level = "info,librdkafka=error"
            [kafka]
            brokers = "{bootstrap}"
            health_interval = "250ms"
            ack_timeout = "2s"
            retry_after_seconds = 1
            [sources.bridge]
            kind = "bridge"
            secret = "{SECRET}"
            {extra}
            "#
        );
        let path = directory.path().join("finhook.toml");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(directory.path().join("finhook.log")).unwrap();
        let mut command = crate::common::finhook();
        let child = command
            .args(["serve", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let finhook = Self {
            child,
            webhooks: format!("http://127.0.0.1:{webhooks}"),
            ops: format!("http://127.0.0.1:{ops}"),
            _directory: directory,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http_ready(&format!("{}/readyz", finhook.ops));
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "finhook never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        finhook
    }

    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Finhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `url` answers 200 (a readiness check outside an async runtime).
fn http_ready(url: &str) -> bool {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            reqwest::get(&url)
                .await
                .is_ok_and(|response| response.status() == 200)
        })
    })
    .join()
    .unwrap()
}

/// What a load run saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub sent: u64,
    /// Envelope ids answered 2xx.
    pub accepted: HashSet<String>,
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection refused or reset).
    pub unanswered: u64,
}

/// Posts unique signed Bridge webhooks with `workers` concurrent clients until `stop` is set.
pub async fn load(
    webhooks: String,
    workers: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let tally = Arc::clone(&tally);
        let stop = Arc::clone(&stop);
        let url = format!("{webhooks}/webhooks/bridge");
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
            let secret = finhook::secret::Secret::new(SECRET);
            let mut sequence = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = format!(
                    r#"{{"type":"item.refreshed","timestamp":{},"content":{{"item_id":{},"status_code":0,"worker":{worker},"sequence":{sequence}}}}}"#,
                    1_700_000_000_000u64 + sequence,
                    worker * 1000 + (sequence % 7) as usize
                );
                sequence += 1;
                let signature = finhook::providers::bridge::sign(&secret, body.as_bytes());
                let answer = client.post(&url).header("BridgeApi-Signature", signature).body(body).send().await;
                let outcome = match answer {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let id = match response.status().is_success() {
                            true => response
                                .json::<serde_json::Value>()
                                .await
                                .ok()
                                .and_then(|answer| answer["id"].as_str().map(str::to_owned)),
                            false => None,
                        };
                        Some((status, id))
                    }
                    Err(_) => None,
                };
                let answered = outcome.is_some();
                {
                    let mut tally = tally.lock().unwrap();
                    tally.sent += 1;
                    match outcome {
                        Some((status, id)) => {
                            *tally.statuses.entry(status).or_default() += 1;
                            if let Some(id) = id {
                                tally.accepted.insert(id);
                            }
                        }
                        None => tally.unanswered += 1,
                    }
                }
                if !answered {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    Arc::try_unwrap(tally).unwrap().into_inner().unwrap()
}

/// A record read back from the broker.
#[derive(Debug, Clone)]
pub struct Found {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub id: String,
}

/// Reads every record of `topic` by explicit partition assignment (tansu's consumer-group
/// subscription is not relied on), until `expected` ids are all seen or `wait` passes.
pub fn read_ids(
    bootstrap: &str,
    topic: &str,
    expected: &HashSet<String>,
    wait: Duration,
) -> Vec<Found> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "finhook-broker-tier")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS as i32 {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let deadline = Instant::now() + wait;
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    // Once every expected id is seen, read a little longer to count what else is there.
    let mut all_seen_at: Option<Instant> = None;
    while Instant::now() < deadline {
        if all_seen_at.is_none() && expected.iter().all(|id| seen.contains(id)) {
            all_seen_at = Some(Instant::now());
        }
        if all_seen_at.is_some_and(|at| at.elapsed() > Duration::from_secs(2)) {
            break;
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let Ok(message) = message else {
            continue;
        };
        let value: serde_json::Value =
            serde_json::from_slice(message.payload().unwrap_or_default()).unwrap();
        let id = value["id"].as_str().unwrap_or_default().to_owned();
        seen.insert(id.clone());
        found.push(Found {
            partition: message.partition(),
            offset: message.offset(),
            key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
            id,
        });
    }
    found
}

/// Prints the counts a fault test is judged on, and returns the ids answered 2xx but missing.
pub fn report(scenario: &str, tally: &Tally, found: &[Found]) -> Vec<String> {
    let found_ids: HashSet<&str> = found.iter().map(|record| record.id.as_str()).collect();
    let mut missing: Vec<String> = tally
        .accepted
        .iter()
        .filter(|id| !found_ids.contains(id.as_str()))
        .cloned()
        .collect();
    missing.sort();
    let unavailable = tally.statuses.get(&503).copied().unwrap_or(0);
    let answered_2xx: u64 = tally
        .statuses
        .iter()
        .filter(|(status, _)| (200..300).contains(*status))
        .map(|(_, n)| n)
        .sum();
    println!(
        "{scenario}: sent {}, 2xx {answered_2xx} ({} distinct ids), 503 {unavailable}, other statuses {:?}, unanswered {}, records in Kafka {}, missing {}",
        tally.sent,
        tally.accepted.len(),
        tally.statuses.iter().filter(|(status, _)| !(200..300).contains(*status) && **status != 503).collect::<Vec<_>>(),
        tally.unanswered,
        found.len(),
        missing.len(),
    );
    missing
}
