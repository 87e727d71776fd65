//! finhook as a process: SIGTERM drains and exits 0; a second SIGTERM exits at once.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::fixture;
use crate::helpers::BRIDGE_SECRET;

/// The Bridge source's previous secret (a rotation in progress).
pub const BRIDGE_PREVIOUS_SECRET: &str = "previous-bridge-secret-0042";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A mock Kafka broker in its own process (`finhook-sim kafka`), so it can be frozen.
pub struct Broker {
    pub child: Child,
    pub bootstrap: String,
}

impl Broker {
    pub fn start() -> Self {
        let mut child = crate::common::finhook_sim()
            .arg("kafka")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Self {
            child,
            bootstrap: line.trim().to_owned(),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Daemon {
    pub child: Child,
    pub webhooks: String,
    pub ops: String,
    pub config_path: std::path::PathBuf,
    _directory: tempfile::TempDir,
}

impl Daemon {
    pub async fn start(bootstrap: &str, extra: &str) -> Self {
        Self::start_logging(bootstrap, extra, None).await
    }

    /// Starts finhook; its stderr (the logs) goes to `log` when given.
    pub async fn start_logging(
        bootstrap: &str,
        extra: &str,
        log: Option<&std::path::Path>,
    ) -> Self {
        let directory = tempfile::tempdir().unwrap();
        let (webhooks, ops) = (free_port(), free_port());
        let config = format!(
            r#"
            [server]
            listen = "127.0.0.1:{webhooks}"
            shutdown_grace = "60s"
            [metrics]
            listen = "127.0.0.1:{ops}"
            [log]
            level = "{level}"
            [kafka]
            brokers = "{bootstrap}"
            health_interval = "100ms"
            ack_timeout = "30s"
            [sources.bridge]
            kind = "bridge"
            secret = "{BRIDGE_SECRET}"
            previous_secret = "{BRIDGE_PREVIOUS_SECRET}"
            {extra}
            "#,
            level = if log.is_some() {
                "debug"
            } else {
                "info,librdkafka=error"
            },
        );
        let path = directory.path().join("finhook.toml");
        std::fs::write(&path, config).unwrap();
        let mut command = crate::common::finhook();
        let child = command
            .args(["serve", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(match log {
                Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
                None => Stdio::null(),
            })
            .spawn()
            .unwrap();
        let daemon = Self {
            child,
            webhooks: format!("http://127.0.0.1:{webhooks}"),
            ops: format!("http://127.0.0.1:{ops}"),
            config_path: path,
            _directory: directory,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ready = reqwest::get(format!("{}/readyz", daemon.ops)).await;
            if ready.is_ok_and(|response| response.status() == 200) {
                break;
            }
            assert!(Instant::now() < deadline, "finhook never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        daemon
    }

    fn post(&self, body: Vec<u8>) -> tokio::task::JoinHandle<Result<u16, String>> {
        let url = format!("{}/webhooks/bridge", self.webhooks);
        tokio::spawn(async move {
            let signature = crate::helpers::bridge_signature(&body);
            reqwest::Client::new()
                .post(url)
                .header("BridgeApi-Signature", signature)
                .body(body)
                .send()
                .await
                .map(|response| response.status().as_u16())
                .map_err(|error| error.to_string())
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let broker = Broker::start();
    let mut daemon = Daemon::start(&broker.bootstrap, "").await;
    assert_eq!(
        daemon
            .post(fixture("bridge/item-created.json"))
            .await
            .unwrap(),
        Ok(200)
    );
    signal(&daemon.child, "TERM");
    let status = wait_exit(&mut daemon.child, Duration::from_secs(15)).expect("exited");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn a_second_sigterm_exits_at_once_even_with_requests_in_flight() {
    let broker = Broker::start();
    let mut daemon = Daemon::start(&broker.bootstrap, "").await;
    // Freeze the broker: the next webhook waits for an acknowledgement that does not come.
    signal(&broker.child, "STOP");
    let in_flight = daemon.post(fixture("bridge/item-created.json"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&daemon.child, "TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the first SIGTERM waits for the in-flight request"
    );
    let started = Instant::now();
    signal(&daemon.child, "TERM");
    let status = wait_exit(&mut daemon.child, Duration::from_secs(5)).expect("exited at once");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(status.code(), Some(1));
    // The in-flight request was never answered 2xx.
    assert_ne!(in_flight.await.unwrap(), Ok(200));
    signal(&broker.child, "CONT");
}
