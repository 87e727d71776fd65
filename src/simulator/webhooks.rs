//! Sends simulated provider webhooks to finhook: signed Bridge events and authenticated Linxo
//! events, each body unique, at a steady rate. Counts answers by status.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::json;

use crate::providers::bridge;
use crate::secret::Secret;
use crate::sources::Source;

#[derive(Debug, Clone)]
pub struct WebhookSimulation {
    /// finhook's webhook base URL, e.g. `http://127.0.0.1:8080`.
    pub target: String,
    /// Bridge source name and its secret; none to skip Bridge.
    pub bridge: Option<(String, Secret)>,
    /// Linxo source name and its Basic credentials; none to skip Linxo.
    pub linxo: Option<(String, String, Secret)>,
    /// Webhooks per second, over both providers.
    pub rate: f64,
    /// Stop after this many; none for forever.
    pub count: Option<u64>,
}

/// Answers by status code (0 for transport errors).
pub type Statuses = Arc<Mutex<BTreeMap<u16, u64>>>;

pub async fn run(simulation: WebhookSimulation, statuses: Statuses) {
    let client = reqwest::Client::new();
    let period = Duration::from_secs_f64(1.0 / simulation.rate.max(0.001));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sequence: u64 = 0;
    while simulation.count.is_none_or(|count| sequence < count) {
        ticker.tick().await;
        let use_bridge = match (&simulation.bridge, &simulation.linxo) {
            (Some(_), Some(_)) => sequence % 2 == 0,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return,
        };
        let request = if use_bridge {
            let (source, secret) = simulation.bridge.as_ref().expect("chosen above");
            let body = bridge_body(sequence);
            client
                .post(format!("{}/webhooks/{source}", simulation.target))
                .header("content-type", "application/json")
                .header("BridgeApi-Signature", bridge::sign(secret, &body))
                .body(body)
        } else {
            let (source, username, password) = simulation.linxo.as_ref().expect("chosen above");
            let credentials = base64::engine::general_purpose::STANDARD
                .encode(format!("{username}:{}", password.expose()));
            client
                .post(format!("{}/webhooks/{source}", simulation.target))
                .header("content-type", "application/json")
                .header("authorization", format!("Basic {credentials}"))
                .body(linxo_body(sequence))
        };
        let statuses = Arc::clone(&statuses);
        tokio::spawn(async move {
            let status = match request.send().await {
                Ok(response) => response.status().as_u16(),
                Err(_) => 0,
            };
            *statuses
                .lock()
                .expect("never poisoned")
                .entry(status)
                .or_default() += 1;
        });
        sequence += 1;
    }
}

/// Where and how fast [`send_signed`] sends.
#[derive(Debug, Clone)]
pub struct SignedSend {
    /// finhook's webhook base URL.
    pub target: String,
    /// `/webhooks/<source>/<path_event>` when set.
    pub path_event: Option<String>,
    /// Added to the URL, e.g. `token=…` for `auth = "query"`.
    pub query: Option<String>,
    pub rate: f64,
    pub count: u64,
}

/// Sends `bodies` in turn to `source`, each signed at the moment it is sent as the source's
/// provider would sign it (its verifier's [`crate::auth::Verify::sign`]). Returns the answers
/// by status (0 for transport errors); fails for providers whose secret is not finhook's.
pub async fn send_signed(
    send: &SignedSend,
    source: &Source,
    bodies: &[Vec<u8>],
) -> anyhow::Result<BTreeMap<u16, u64>> {
    anyhow::ensure!(!bodies.is_empty(), "no bodies to send");
    let mut url = format!("{}/webhooks/{}", send.target, source.name);
    if let Some(event) = &send.path_event {
        url = format!("{url}/{event}");
    }
    if let Some(query) = &send.query {
        url = format!("{url}?{query}");
    }
    let client = reqwest::Client::new();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / send.rate.max(0.001)));
    let mut statuses = BTreeMap::new();
    for (sequence, body) in bodies.iter().cycle().take(send.count as usize).enumerate() {
        ticker.tick().await;
        let headers = source
            .verifier()
            .sign(body, time::OffsetDateTime::now_utc())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "finhook-sim cannot sign for source `{}` ({}): its provider signs with a private key, or its signature covers headers finhook does not make",
                    source.name, source.kind
                )
            })?;
        let mut request = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let status = request
            .send()
            .await
            .map_or(0, |response| response.status().as_u16());
        *statuses.entry(status).or_default() += 1;
        tracing::debug!(sequence, status, "sent");
    }
    Ok(statuses)
}

/// A unique Bridge event: the kinds of events a live application sees, in a plausible mix.
pub fn bridge_body(sequence: u64) -> Vec<u8> {
    let item = 7_000_000 + sequence % 1000;
    let timestamp =
        time::OffsetDateTime::now_utc().unix_timestamp() * 1000 + (sequence % 1000) as i64;
    let user = format!("00000000-0000-4000-8000-{:012}", sequence % 500);
    let event = match sequence % 5 {
        0 => json!({"type": "item.refreshed", "timestamp": timestamp, "content": {
            "item_id": item, "user_uuid": user, "status_code": 0, "status_code_info": "ok",
            "full_refresh": false, "refresh_trigger": "scheduler", "account_types": "payment"}}),
        1 => json!({"type": "item.account.updated", "timestamp": timestamp, "content": {
            "account_id": 33_000_000 + sequence, "balance": 1520.35, "item_id": item, "user_uuid": user,
            "nb_new_transactions": sequence % 4, "nb_updated_transactions": 0, "nb_deleted_transactions": 0}}),
        2 => json!({"type": "item.refreshed", "timestamp": timestamp, "content": {
            "item_id": item, "user_uuid": user, "status_code": 402, "status_code_info": "wrong credentials",
            "full_refresh": false, "refresh_trigger": "scheduler", "account_types": "payment"}}),
        3 => {
            json!({"type": "item.created", "timestamp": timestamp, "content": {"item_id": item, "user_uuid": user}})
        }
        _ => json!({"type": "payment.transaction.updated", "timestamp": timestamp, "content": {
            "payment_transaction_id": format!("tx-{sequence}"), "payment_request_id": format!("pr-{}", sequence % 50),
            "status": "ACSC"}}),
    };
    serde_json::to_vec(&event).expect("serializes")
}

/// A unique Linxo connection UPDATED event.
pub fn linxo_body(sequence: u64) -> Vec<u8> {
    let channel = if sequence % 2 == 0 { "24600" } else { "24601" };
    let event = json!({
        "id": format!("sim-{sequence}"),
        "event_type": "UPDATED",
        "resource_type": "CONNECTIONS",
        "creation_date": time::OffsetDateTime::now_utc().unix_timestamp(),
        "channel_definition_id": channel,
        "resource": {
            "id": format!("{}", 100 + sequence % 1000),
            "user_id": format!("{}", 1 + sequence % 300),
            "status": "SUCCESS",
            "channels": [{"channel_definition_id": channel, "mode": "REDIRECT", "status": "SUCCESS"}],
            "account_count": 1,
            "accounts": [{"id": format!("a{sequence}"), "currency": "EUR", "balance": 10.5, "type": "CHECKINGS"}]
        },
        "connection_updated": {"new_transactions": sequence % 3 == 0}
    });
    serde_json::to_vec(&event).expect("serializes")
}
