//! Tier 3: a real, separate Kafka-compatible broker (tansu, sqlite storage) killed and
//! restarted under load, and finhook stopped and killed under load. Every webhook answered 2xx
//! must be in Kafka. Each scenario prints its counts (sent, 2xx, 503, found, missing).

#[path = "../common/mod.rs"]
mod common;
mod harness;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use finhook::simulator::oxlin::{self, OxlinSimulation};
use harness::{load, read_ids, report, signal, Finhook, Tansu, TOPIC};

const OUTAGE: Duration = Duration::from_secs(12);
const READ_WAIT: Duration = Duration::from_secs(60);

async fn read_back(bootstrap: String, expected: HashSet<String>) -> Vec<harness::Found> {
    tokio::task::spawn_blocking(move || read_ids(&bootstrap, TOPIC, &expected, READ_WAIT))
        .await
        .unwrap()
}

async fn wait_ready(finhook: &Finhook, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let ready = reqwest::get(format!("{}/readyz", finhook.ops)).await;
        if ready.is_ok_and(|response| response.status() == 200) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "finhook did not become ready again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_and_restarted_mid_load_loses_nothing_answered_2xx() {
    if !harness::tansu_installed_or_skip(
        "broker_killed_and_restarted_mid_load_loses_nothing_answered_2xx",
    ) {
        return;
    }
    let mut tansu = Tansu::start();
    let finhook = Finhook::start(&tansu.bootstrap(), "");
    let stop = Arc::new(AtomicBool::new(false));
    let load_task = tokio::spawn(load(finhook.webhooks.clone(), 8, Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_secs(3)).await;
    tansu.kill();
    tokio::time::sleep(OUTAGE).await;
    tansu.restart();
    // finhook recovers by itself: ready again, and webhooks answered 2xx after the restart.
    wait_ready(&finhook, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let tally = load_task.await.unwrap();
    let found = read_back(tansu.bootstrap(), tally.accepted.clone()).await;
    let missing = report("broker killed mid-load", &tally, &found);
    assert!(
        missing.is_empty(),
        "answered 2xx but not in Kafka: {missing:?}"
    );
    assert!(
        tally.statuses.get(&503).copied().unwrap_or(0) > 0,
        "requests during the outage got 503"
    );
    assert!(
        tally
            .statuses
            .keys()
            .all(|status| *status == 200 || *status == 503),
        "only 200 and 503: {:?}",
        tally.statuses
    );
    let after = reqwest::Client::new()
        .post(format!("{}/webhooks/bridge", finhook.webhooks))
        .header(
            "BridgeApi-Signature",
            finhook::providers::bridge::sign(
                &finhook::secret::Secret::new(harness::SECRET),
                b"{\"type\":\"TEST_EVENT\",\"content\":{}}",
            ),
        )
        .body("{\"type\":\"TEST_EVENT\",\"content\":{}}")
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 200, "recovered without a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finhook_sigterm_mid_load_exits_zero_and_loses_nothing_answered_2xx() {
    if !harness::tansu_installed_or_skip(
        "finhook_sigterm_mid_load_exits_zero_and_loses_nothing_answered_2xx",
    ) {
        return;
    }
    let tansu = Tansu::start();
    let mut finhook = Finhook::start(&tansu.bootstrap(), "");
    let stop = Arc::new(AtomicBool::new(false));
    let load_task = tokio::spawn(load(finhook.webhooks.clone(), 8, Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_secs(3)).await;
    signal(finhook.child.id(), "TERM");
    let status = finhook
        .wait_exit(Duration::from_secs(40))
        .expect("finhook exited");
    stop.store(true, Ordering::Relaxed);
    let tally = load_task.await.unwrap();
    let found = read_back(tansu.bootstrap(), tally.accepted.clone()).await;
    let missing = report("finhook SIGTERM mid-load", &tally, &found);
    assert_eq!(status.code(), Some(0));
    assert!(!tally.accepted.is_empty());
    assert!(
        missing.is_empty(),
        "answered 2xx but not in Kafka: {missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finhook_sigkill_mid_load_loses_nothing_answered_2xx() {
    if !harness::tansu_installed_or_skip("finhook_sigkill_mid_load_loses_nothing_answered_2xx") {
        return;
    }
    let tansu = Tansu::start();
    let mut finhook = Finhook::start(&tansu.bootstrap(), "");
    let stop = Arc::new(AtomicBool::new(false));
    let load_task = tokio::spawn(load(finhook.webhooks.clone(), 8, Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_secs(3)).await;
    finhook.child.kill().unwrap();
    finhook.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    let tally = load_task.await.unwrap();
    let found = read_back(tansu.bootstrap(), tally.accepted.clone()).await;
    let missing = report("finhook SIGKILL mid-load", &tally, &found);
    assert!(!tally.accepted.is_empty());
    assert!(
        missing.is_empty(),
        "answered 2xx but not in Kafka: {missing:?}"
    );
}

/// `sim-{user}-{queue}-{sequence}` → (queue, sequence).
fn queue_position(id: &str) -> (u64, u64) {
    let mut parts = id.rsplitn(3, '-');
    let sequence = parts.next().unwrap().parse().unwrap();
    let queue = parts.next().unwrap().parse().unwrap();
    (queue, sequence)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poller_with_the_broker_killed_mid_batch_publishes_every_event_in_order() {
    if !harness::tansu_installed_or_skip(
        "poller_with_the_broker_killed_mid_batch_publishes_every_event_in_order",
    ) {
        return;
    }
    let simulation = OxlinSimulation {
        events_per_minute: 120.0,
        token_lifetime: Duration::from_secs(3600),
        record_served: true,
    };
    let (address, counters): (SocketAddr, _) =
        oxlin::spawn(SocketAddr::from(([127, 0, 0, 1], 0)), simulation)
            .await
            .unwrap();
    let users = tempfile::tempdir().unwrap();
    let users_file = users.path().join("users.toml");
    std::fs::write(&users_file, finhook::simulator::users_file(5, false)).unwrap();
    let mut tansu = Tansu::start();
    let finhook = Finhook::start(
        &tansu.bootstrap(),
        &format!(
            r#"
            [pollers.sim]
            kind = "oxlin"
            environment = "custom"
            api_url = "http://{address}/v2.1"
            token_url = "http://{address}/token"
            client_id = "finhook-sim"
            client_secret = "sim-secret"
            interval = "200ms"
            backoff_initial = "100ms"
            backoff_max = "2s"
            users_file = {users_file:?}
            "#
        ),
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    tansu.kill();
    tokio::time::sleep(OUTAGE).await;
    tansu.restart();
    wait_ready(&finhook, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Everything served so far must reach Kafka.
    let served: Vec<String> = counters.served.lock().unwrap().clone();
    let expected: HashSet<String> = served.iter().cloned().collect();
    let found = read_back(tansu.bootstrap(), expected.clone()).await;
    let found_ids: HashSet<&str> = found.iter().map(|record| record.id.as_str()).collect();
    let missing: Vec<&String> = served
        .iter()
        .filter(|id| !found_ids.contains(id.as_str()))
        .collect();
    println!(
        "poller with broker killed mid-batch: served {}, records in Kafka {}, missing {}",
        served.len(),
        found.len(),
        missing.len()
    );
    assert!(
        served.len() > 50,
        "the simulator served only {} events",
        served.len()
    );
    assert!(missing.is_empty(), "polled but not in Kafka: {missing:?}");

    // Per connection (key), first occurrences follow the provider's order.
    let mut by_key: HashMap<&str, Vec<&harness::Found>> = HashMap::new();
    for record in &found {
        by_key.entry(record.key.as_str()).or_default().push(record);
    }
    for (key, mut records) in by_key {
        records.sort_by_key(|record| (record.partition, record.offset));
        let mut seen = HashSet::new();
        let order: Vec<(u64, u64)> = records
            .iter()
            .filter(|record| seen.insert(record.id.as_str()))
            .map(|record| queue_position(&record.id))
            .collect();
        assert!(
            order.windows(2).all(|pair| pair[0] < pair[1]),
            "{key} out of order: {order:?}"
        );
    }
}
