//! A simulated Oxlin: `POST /token` (password grant), `POST /v2.1/queues/subscribe`,
//! `GET /v2.1/queues/{id}`, with events generated for each queue at a steady rate.
//!
//! Queues expire 15 minutes after their last query, like Oxlin's. Events are made on demand
//! from the time since the last poll, so 10,000 idle users cost nothing between polls.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;

use super::{user_password, user_static_token};
use crate::config::poller::QUEUE_EXPIRY;

#[derive(Debug, Clone)]
pub struct OxlinSimulation {
    /// Events per user per minute.
    pub events_per_minute: f64,
    /// `expires_in` of issued tokens.
    pub token_lifetime: Duration,
    /// Keep the id of every event served, in [`Counters::served`] (for tests that check
    /// nothing was lost; it grows without bound).
    pub record_served: bool,
}

struct Queue {
    user: String,
    last_query: Instant,
    /// Events made so far, and when the count was last brought up to date.
    made: u64,
    made_until: Instant,
    pending_fraction: f64,
}

#[derive(Default)]
pub struct Counters {
    pub tokens: AtomicU64,
    pub subscriptions: AtomicU64,
    pub polls: AtomicU64,
    pub events: AtomicU64,
    /// Ids of the events served, in order, when the simulation records them.
    pub served: Mutex<Vec<String>>,
    /// When the simulation records: for each user, the API clients (`client_id` of the token
    /// request) that polled it and when they last did. Shows which replica polls whom.
    pub polled_by: Mutex<HashMap<String, HashMap<String, Instant>>>,
}

impl Counters {
    /// Users polled since `since`, each with the clients that polled it then.
    pub fn pollers_since(&self, since: Instant) -> HashMap<String, Vec<String>> {
        let polled_by = self.polled_by.lock().expect("never poisoned");
        polled_by
            .iter()
            .filter_map(|(user, clients)| {
                let recent: Vec<String> = clients
                    .iter()
                    .filter(|(_, at)| **at >= since)
                    .map(|(client, _)| client.clone())
                    .collect();
                (!recent.is_empty()).then(|| (user.clone(), recent))
            })
            .collect()
    }
}

struct Shared {
    simulation: OxlinSimulation,
    /// Issued token → (user, client id).
    tokens: Mutex<HashMap<String, (String, String)>>,
    queues: Mutex<HashMap<u64, Queue>>,
    next_queue: AtomicU64,
    counters: Arc<Counters>,
}

/// Serves the simulated Oxlin on `listener` until the process ends.
pub async fn serve(
    listener: TcpListener,
    simulation: OxlinSimulation,
    counters: Arc<Counters>,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        simulation,
        tokens: Mutex::new(HashMap::new()),
        queues: Mutex::new(HashMap::new()),
        next_queue: AtomicU64::new(1),
        counters,
    });
    let router = Router::new()
        .route("/token", post(token))
        .route("/v2.1/queues/subscribe", post(subscribe))
        .route("/v2.1/queues/{queue}", get(poll))
        .with_state(shared);
    axum::serve(listener, router).await
}

/// Binds and serves; returns the address (for tests and the CLI).
pub async fn spawn(
    address: SocketAddr,
    simulation: OxlinSimulation,
) -> std::io::Result<(SocketAddr, Arc<Counters>)> {
    let listener = TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let counters = Arc::new(Counters::default());
    tokio::spawn(serve(listener, simulation, Arc::clone(&counters)));
    Ok((bound, counters))
}

#[derive(Deserialize)]
struct TokenRequest {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    client_id: String,
}

async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let is_form = headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    let request: Option<TokenRequest> = if is_form {
        serde_urlencoded::from_bytes(&body).ok()
    } else {
        serde_json::from_slice(&body).ok()
    };
    let Some(request) = request else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if request.password != user_password(&request.username) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let issued = shared.counters.tokens.fetch_add(1, Ordering::Relaxed);
    let token = format!("sim-{issued}-{}", request.username);
    shared
        .tokens
        .lock()
        .expect("never poisoned")
        .insert(token.clone(), (request.username, request.client_id));
    Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": shared.simulation.token_lifetime.as_secs(),
    }))
    .into_response()
}

/// The user (and API client) a bearer token was issued to.
fn caller(shared: &Shared, headers: &HeaderMap) -> Option<(String, String)> {
    let token = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    if let Some(user) = token.strip_prefix("static-") {
        debug_assert_eq!(user_static_token(user), token);
        return Some((user.to_owned(), "static".to_owned()));
    }
    shared
        .tokens
        .lock()
        .expect("never poisoned")
        .get(token)
        .cloned()
}

async fn subscribe(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some((user, _client)) = caller(&shared, &headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let id = shared.next_queue.fetch_add(1, Ordering::Relaxed);
    let now = Instant::now();
    shared.queues.lock().expect("never poisoned").insert(
        id,
        Queue {
            user,
            last_query: now,
            made: 0,
            made_until: now,
            pending_fraction: 0.0,
        },
    );
    shared
        .counters
        .subscriptions
        .fetch_add(1, Ordering::Relaxed);
    (StatusCode::CREATED, [("location", format!("/queues/{id}"))]).into_response()
}

async fn poll(
    State(shared): State<Arc<Shared>>,
    Path(queue_id): Path<u64>,
    headers: HeaderMap,
) -> Response {
    let Some((user, client)) = caller(&shared, &headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    shared.counters.polls.fetch_add(1, Ordering::Relaxed);
    let now = Instant::now();
    if shared.simulation.record_served {
        shared
            .counters
            .polled_by
            .lock()
            .expect("never poisoned")
            .entry(user.clone())
            .or_default()
            .insert(client, now);
    }
    let (first, count) = {
        let mut queues = shared.queues.lock().expect("never poisoned");
        let Some(queue) = queues.get_mut(&queue_id).filter(|queue| queue.user == user) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        if now.duration_since(queue.last_query) > QUEUE_EXPIRY {
            queues.remove(&queue_id);
            return StatusCode::NOT_FOUND.into_response();
        }
        queue.last_query = now;
        let elapsed_minutes = now.duration_since(queue.made_until).as_secs_f64() / 60.0;
        let due = elapsed_minutes * shared.simulation.events_per_minute + queue.pending_fraction;
        let count = due.floor() as u64;
        queue.pending_fraction = due - count as f64;
        queue.made_until = now;
        let first = queue.made;
        queue.made += count;
        (first, count)
    };
    if count == 0 {
        return StatusCode::NO_CONTENT.into_response();
    }
    shared.counters.events.fetch_add(count, Ordering::Relaxed);
    let events: Vec<serde_json::Value> = (first..first + count)
        .map(|sequence| event(&user, queue_id, sequence))
        .collect();
    if shared.simulation.record_served {
        let mut served = shared.counters.served.lock().expect("never poisoned");
        served.extend(
            events
                .iter()
                .map(|event| event["id"].as_str().unwrap_or_default().to_owned()),
        );
    }
    Json(events).into_response()
}

/// A plausible queue event: a sync start, then its success, now and then an action needed.
fn event(user: &str, queue: u64, sequence: u64) -> serde_json::Value {
    let name = match sequence % 10 {
        9 => "CHALLENGE_REQUIRED",
        n if n % 2 == 0 => "SYNC_STARTED",
        _ => "SYNC_ALL_SUCCESS",
    };
    let connection = format!("{user}-c{}", sequence / 2 % 3);
    json!({
        "id": format!("sim-{user}-{queue}-{sequence}"),
        "date": time::OffsetDateTime::now_utc().unix_timestamp(),
        "category": "SYNCHRONIZATION",
        "name": name,
        "event_status": name,
        "channel_definition_id": if sequence % 3 == 0 { "8700" } else { "8701" },
        "resource_type": "CONNECTIONS",
        "resource": { "id": connection, "user_id": user, "status": "RUNNING" }
    })
}
