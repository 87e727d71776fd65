//! The provider simulator drives finhook end to end: its Oxlin feeds the poller, its webhooks
//! are all accepted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use finhook::secret::Secret;
use finhook::simulator::oxlin::{self, OxlinSimulation};
use finhook::simulator::webhooks::{self, WebhookSimulation};

use crate::common::EnvelopeSchema;
use crate::helpers::{read_topic, spawn_app, BRIDGE_SECRET, LINXO_PASSWORD, LINXO_USER};

#[tokio::test]
async fn simulated_oxlin_feeds_the_poller_in_order_per_connection() {
    let simulation = OxlinSimulation {
        events_per_minute: 600.0,
        token_lifetime: Duration::from_secs(3600),
        record_served: false,
    };
    let (address, counters) = oxlin::spawn(SocketAddr::from(([127, 0, 0, 1], 0)), simulation)
        .await
        .unwrap();
    let directory = tempfile::tempdir().unwrap();
    let users = directory.path().join("users.toml");
    std::fs::write(&users, finhook::simulator::users_file(4, false)).unwrap();
    let app = spawn_app(&format!(
        r#"
        [pollers.sim]
        kind = "oxlin"
        environment = "custom"
        api_url = "http://{address}/v2.1"
        token_url = "http://{address}/token"
        client_id = "finhook-sim"
        client_secret = "sim-secret"
        interval = "200ms"
        users_file = {users:?}
        "#
    ))
    .await;
    let records = read_topic(
        &app.bootstrap,
        app.default_topic(),
        40,
        Duration::from_secs(20),
    )
    .await;
    assert!(records.len() >= 40, "only {} events", records.len());
    let schema = EnvelopeSchema::load();
    // Per connection (key), the simulator's sequence numbers only grow.
    let mut last_of_key: HashMap<String, u64> = HashMap::new();
    for record in &records {
        let envelope = record.json();
        schema.assert_valid(&envelope, "simulated event");
        let id = envelope["id"].as_str().unwrap();
        let sequence: u64 = id.rsplit('-').next().unwrap().parse().unwrap();
        let key = record.key.clone().unwrap();
        if let Some(previous) = last_of_key.insert(key.clone(), sequence) {
            assert!(sequence > previous, "{key}: {sequence} after {previous}");
        }
    }
    assert_eq!(
        counters.tokens.load(std::sync::atomic::Ordering::Relaxed),
        4
    );
}

#[tokio::test]
async fn simulated_webhooks_are_all_accepted() {
    let app = spawn_app("").await;
    let statuses: webhooks::Statuses = Arc::default();
    let simulation = WebhookSimulation {
        target: app.webhook_url.clone(),
        bridge: Some(("bridge".to_owned(), Secret::new(BRIDGE_SECRET))),
        linxo: Some((
            "linxo".to_owned(),
            LINXO_USER.to_owned(),
            Secret::new(LINXO_PASSWORD),
        )),
        rate: 200.0,
        count: Some(40),
    };
    webhooks::run(simulation, Arc::clone(&statuses)).await;
    let records = read_topic(
        &app.bootstrap,
        app.default_topic(),
        40,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(records.len(), 40);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while statuses.lock().unwrap().values().sum::<u64>() < 40
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answered = statuses.lock().unwrap().clone();
    assert_eq!(answered.get(&200), Some(&40), "{answered:?}");
    let providers: Vec<String> = records
        .iter()
        .map(|record| record.header("ce_provider").to_owned())
        .collect();
    assert_eq!(
        providers
            .iter()
            .filter(|provider| *provider == "bridge")
            .count(),
        20
    );
}
