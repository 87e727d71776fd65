//! Registry mode with several replicas as separate processes: a Kafka-protocol broker in its
//! own process (`finhook-sim kafka`: librdkafka's mock cluster, which implements consumer
//! groups), the simulated Oxlin in this process, users put with the `finhook users` CLI.
//!
//! One scenario, in phases, printing its counts: 301 users are each polled by exactly one of
//! three replicas; a replica killed with SIGKILL has its users polled again by the others,
//! their queues resumed; a fourth replica takes a share; a replica stopped with SIGTERM hands
//! off; tombstones stop users; at the end every event the simulated Oxlin served is on Kafka.

#[path = "../common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use finhook::registry::admin::RegistryKafka;
use finhook::simulator::oxlin::{self, Counters, OxlinSimulation};

const KEY: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";
const PARTITIONS: i32 = 24;
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);
const USERS: usize = 300;
const EVENTS_TOPIC: &str = "finhook.events";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `finhook-sim kafka` with every topic the scenario uses.
struct Broker {
    child: Child,
    bootstrap: String,
}

impl Broker {
    fn start() -> Self {
        let mut child = common::finhook_sim()
            .args(["kafka", "--partitions", &PARTITIONS.to_string()])
            .args([
                "--topic",
                "finhook.oxlin.users",
                "--topic",
                "finhook.oxlin.state",
            ])
            .args(["--topic", EVENTS_TOPIC, "--topic", "finhook.deadletter"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first_line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first_line)
            .unwrap();
        Self {
            child,
            bootstrap: first_line.trim().to_owned(),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One finhook replica as a process.
struct Replica {
    child: Child,
    ops: String,
    config: PathBuf,
}

fn replica_config(name: &str, bootstrap: &str, oxlin: &str, ops_port: u16) -> String {
    format!(
        r#"
        [server]
        listen = "127.0.0.1:{webhooks}"
        [metrics]
        listen = "127.0.0.1:{ops_port}"
        [log]
        level = "info,librdkafka=error"
        [kafka]
        brokers = "{bootstrap}"
        health_interval = "250ms"
        ack_timeout = "3s"
        [registry]
        enabled = true
        partitions = {PARTITIONS}
        session_timeout = "{session}s"
        state_interval = "1s"
        key_id = "k1"
        key = "{KEY}"
        [pollers.sim]
        kind = "oxlin"
        environment = "custom"
        api_url = "http://{oxlin}/v2.1"
        token_url = "http://{oxlin}/token"
        client_id = "{name}"
        client_secret = "s"
        interval = "1s"
        backoff_initial = "100ms"
        backoff_max = "2s"
        "#,
        webhooks = free_port(),
        session = SESSION_TIMEOUT.as_secs(),
    )
}

impl Replica {
    fn start(directory: &Path, name: &str, bootstrap: &str, oxlin: &str) -> Self {
        let ops_port = free_port();
        let config = directory.join(format!("{name}.toml"));
        std::fs::write(&config, replica_config(name, bootstrap, oxlin, ops_port)).unwrap();
        let log = std::fs::File::create(directory.join(format!("{name}.log"))).unwrap();
        let child = common::finhook()
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        Self {
            child,
            ops: format!("http://127.0.0.1:{ops_port}"),
            config,
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    async fn metric(&self, line_prefix: &str) -> Option<f64> {
        let text = reqwest::get(format!("{}/metrics", self.ops))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|line| line.starts_with(line_prefix))
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
    }

    async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `finhook users …` with a replica's configuration; stdin when given.
fn users_cli(config: &Path, bootstrap: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = common::finhook()
        .arg("users")
        .args(args)
        .arg("--config")
        .arg(config)
        .args(["--brokers", bootstrap])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "finhook users {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Who polled each user in the last `window`.
async fn pollers(counters: &Counters, window: Duration) -> HashMap<String, Vec<String>> {
    let since = Instant::now();
    tokio::time::sleep(window).await;
    counters.pollers_since(since)
}

/// Waits until each of `users` is polled by exactly one replica (and none by `not_by`), as seen
/// over a window of three poll intervals. Returns who polls whom.
async fn settled(
    counters: &Counters,
    users: &HashSet<String>,
    not_by: &[&str],
    within: Duration,
) -> HashMap<String, String> {
    let deadline = Instant::now() + within;
    loop {
        let seen = pollers(counters, Duration::from_millis(3500)).await;
        let owners: HashMap<String, String> = seen
            .iter()
            .filter(|(user, clients)| {
                users.contains(*user)
                    && clients.len() == 1
                    && !not_by.contains(&clients[0].as_str())
            })
            .map(|(user, clients)| (user.clone(), clients[0].clone()))
            .collect();
        let stray = seen.keys().filter(|user| !users.contains(*user)).count();
        if owners.len() == users.len() && stray == 0 {
            return owners;
        }
        let doubled = seen.values().filter(|clients| clients.len() > 1).count();
        assert!(
            Instant::now() < deadline,
            "not settled: {} of {} users polled by exactly one replica, {doubled} by several, {stray} removed users still polled",
            owners.len(),
            users.len()
        );
    }
}

fn per_replica(owners: &HashMap<String, String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for owner in owners.values() {
        *counts.entry(owner.clone()).or_default() += 1;
    }
    counts
}

async fn sum_metric(replicas: &[&Replica], line_prefix: &str) -> f64 {
    let mut total = 0.0;
    for replica in replicas {
        total += replica.metric(line_prefix).await.unwrap_or(0.0);
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_registry_users_and_hand_them_off_without_losing_events() {
    let directory = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let (oxlin_address, counters) = oxlin::spawn(
        "127.0.0.1:0".parse().unwrap(),
        OxlinSimulation {
            events_per_minute: 6.0,
            token_lifetime: Duration::from_secs(3600),
            record_served: true,
        },
    )
    .await
    .unwrap();
    let oxlin = oxlin_address.to_string();
    let mut replicas: Vec<Replica> = ["replica-0", "replica-1", "replica-2"]
        .iter()
        .map(|name| Replica::start(directory.path(), name, &broker.bootstrap, &oxlin))
        .collect();

    // Onboarding through the CLI: a users file imported, one user put with stdin credentials.
    let users_file = directory.path().join("users.toml");
    std::fs::write(&users_file, finhook::simulator::users_file(USERS, false)).unwrap();
    let config = replicas[0].config.clone();
    let imported = users_cli(
        &config,
        &broker.bootstrap,
        &["import", users_file.to_str().unwrap(), "--poller", "sim"],
        None,
    );
    assert!(
        imported.contains(&format!("imported {USERS} users")),
        "{imported}"
    );
    let extra = finhook::simulator::user_id(USERS);
    let credentials = format!(
        r#"{{"username": "{extra}", "password": "{}"}}"#,
        finhook::simulator::user_password(&extra)
    );
    users_cli(
        &config,
        &broker.bootstrap,
        &["put", &extra, "--poller", "sim", "--credentials", "-"],
        Some(&credentials),
    );
    let listed = users_cli(&config, &broker.bootstrap, &["list"], None);
    assert!(listed.contains(&format!("{} users", USERS + 1)), "{listed}");
    assert!(!listed.contains("pw-"), "list never shows a secret");
    let mut users: HashSet<String> = (0..=USERS).map(finhook::simulator::user_id).collect();

    // Phase 1: every user polled by exactly one of three replicas.
    let owners = settled(&counters, &users, &[], Duration::from_secs(90)).await;
    let shares = per_replica(&owners);
    println!(
        "phase 1: {} users over 3 replicas: {shares:?}",
        owners.len()
    );
    assert_eq!(
        shares.len(),
        3,
        "every replica polls some users: {shares:?}"
    );
    let all: Vec<&Replica> = replicas.iter().collect();
    assert_eq!(
        sum_metric(&all, "finhook_registry_partitions_owned ").await,
        f64::from(PARTITIONS)
    );

    // Phase 2: SIGKILL replica-0; the others take its users over and resume their queues.
    let orphans: HashSet<String> = owners
        .iter()
        .filter(|(_, owner)| *owner == "replica-0")
        .map(|(user, _)| user.clone())
        .collect();
    let subscriptions_before = counters
        .subscriptions
        .load(std::sync::atomic::Ordering::Relaxed);
    let killed_at = Instant::now();
    replicas[0].signal("KILL");
    let _ = replicas[0].wait_exit(Duration::from_secs(5)).await;
    let owners = settled(&counters, &users, &["replica-0"], Duration::from_secs(90)).await;
    let takeover = killed_at.elapsed();
    let survivors: Vec<&Replica> = replicas[1..].iter().collect();
    let resumed = sum_metric(
        &survivors,
        r#"finhook_registry_handoffs_total{outcome="resumed"}"#,
    )
    .await;
    let resubscribed = counters
        .subscriptions
        .load(std::sync::atomic::Ordering::Relaxed)
        - subscriptions_before;
    println!(
        "phase 2: SIGKILL → {} orphaned users polled again within {takeover:?} (session timeout {SESSION_TIMEOUT:?}); queues resumed: {resumed}, new subscriptions: {resubscribed}; shares {:?}",
        orphans.len(),
        per_replica(&owners)
    );
    assert!(
        takeover < SESSION_TIMEOUT + Duration::from_secs(20),
        "takeover took {takeover:?}"
    );
    assert!(
        resumed >= orphans.len() as f64,
        "orphaned queues are resumed, not resubscribed: {resumed} of {}",
        orphans.len()
    );
    assert!(
        (resubscribed as usize) < orphans.len() / 10 + 1,
        "{resubscribed} new subscriptions for {} orphans",
        orphans.len()
    );

    // Phase 3: a fourth replica takes a share; nobody is polled twice once settled.
    replicas.push(Replica::start(
        directory.path(),
        "replica-3",
        &broker.bootstrap,
        &oxlin,
    ));
    let deadline = Instant::now() + Duration::from_secs(90);
    let owners = loop {
        let owners = settled(&counters, &users, &["replica-0"], Duration::from_secs(90)).await;
        if per_replica(&owners).contains_key("replica-3") || Instant::now() > deadline {
            break owners;
        }
    };
    let shares = per_replica(&owners);
    println!("phase 3: a fourth replica: {shares:?}");
    assert!(shares.contains_key("replica-3"), "{shares:?}");

    // Phase 4: SIGTERM replica-1: it hands off and exits 0.
    replicas[1].signal("TERM");
    let status = replicas[1].wait_exit(Duration::from_secs(40)).await;
    assert_eq!(
        status.and_then(|status| status.code()),
        Some(0),
        "clean exit"
    );
    let owners = settled(
        &counters,
        &users,
        &["replica-0", "replica-1"],
        Duration::from_secs(90),
    )
    .await;
    println!("phase 4: SIGTERM → {:?}", per_replica(&owners));

    // Phase 5: tombstones stop users.
    for removed in [
        finhook::simulator::user_id(0),
        finhook::simulator::user_id(1),
    ] {
        users_cli(&config, &broker.bootstrap, &["remove", &removed], None);
        users.remove(&removed);
    }
    settled(
        &counters,
        &users,
        &["replica-0", "replica-1"],
        Duration::from_secs(60),
    )
    .await;
    println!("phase 5: 2 users removed; {} polled", users.len());

    // The end: the remaining replicas stop and publish what they hold; then every event the
    // simulated Oxlin served must be on Kafka.
    for replica in &replicas[2..] {
        replica.signal("TERM");
    }
    for replica in &mut replicas[2..] {
        let status = replica.wait_exit(Duration::from_secs(40)).await;
        assert_eq!(status.and_then(|status| status.code()), Some(0));
    }
    let served: Vec<String> = counters.served.lock().unwrap().clone();
    let reader = RegistryKafka {
        bootstrap: broker.bootstrap.clone(),
        properties: Vec::new(),
        config: finhook::config::Config::load(Some(&config))
            .unwrap()
            .registry,
    };
    let records = tokio::task::spawn_blocking(move || reader.read_to_end(EVENTS_TOPIC, None))
        .await
        .unwrap()
        .unwrap();
    let mut found: HashMap<String, usize> = HashMap::new();
    for record in &records {
        let envelope: serde_json::Value =
            serde_json::from_slice(record.value.as_deref().unwrap()).unwrap();
        *found
            .entry(envelope["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let missing: Vec<&String> = served
        .iter()
        .filter(|id| !found.contains_key(*id))
        .collect();
    let duplicates = found.values().filter(|count| **count > 1).count();
    println!(
        "events: served {}, on Kafka {} ({} distinct), missing {}, duplicated {duplicates}",
        served.len(),
        records.len(),
        found.len(),
        missing.len()
    );
    assert!(!served.is_empty());
    // Handoffs (SIGTERM, rebalances) hand each queue over once: nothing published twice.
    assert_eq!(duplicates, 0, "events published twice");
    assert!(
        missing.is_empty(),
        "lost: {:?}",
        &missing[..missing.len().min(10)]
    );
}
