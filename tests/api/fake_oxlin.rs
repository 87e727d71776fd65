//! A scripted Oxlin for the poller tests: token endpoint, queue subscription, queue polls.
//!
//! Users authenticate by password grant with password `pw-{username}`; the username is the user
//! id. Each user's polls follow a script of steps; an exhausted script answers 204.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub enum Step {
    /// Answer 204 (an empty queue).
    Empty,
    /// Answer with this status; 401 also forgets the token, 404/410 also forget the queue.
    Status(u16),
    /// Answer 200 with this page.
    Page(Vec<u8>),
    /// Answer 204 until [`FakeOxlin::release`], then go on.
    Gate,
}

#[derive(Debug, Clone)]
pub struct Poll {
    pub user: String,
    pub client_id: String,
    pub queue: String,
    pub at: std::time::Instant,
}

#[derive(Default)]
pub struct FakeState {
    tokens: HashMap<String, (String, String)>,
    queues: HashMap<String, String>,
    scripts: HashMap<String, VecDeque<Step>>,
    released: bool,
    /// Put before `/queues/{id}` in a subscription's `Location` (the seed shows none).
    location_prefix: String,
    pub token_requests: Vec<Value>,
    pub subscriptions: Vec<String>,
    pub polls: Vec<Poll>,
}

#[derive(Clone)]
pub struct FakeOxlin {
    pub base: String,
    state: Arc<Mutex<FakeState>>,
}

impl FakeOxlin {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(FakeState::default()));
        let router = Router::new()
            .route("/token", post(token))
            .route("/v2.1/queues/subscribe", post(subscribe))
            .route("/v2.1/queues/{queue}", get(poll))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { base, state }
    }

    pub fn script(&self, user: &str, steps: Vec<Step>) {
        self.state
            .lock()
            .unwrap()
            .scripts
            .insert(user.to_owned(), steps.into());
    }

    /// Answers subscriptions with `Location: {prefix}/queues/{id}`.
    pub fn set_location_prefix(&self, prefix: &str) {
        self.state.lock().unwrap().location_prefix = prefix.to_owned();
    }

    /// When each poll of `user` arrived.
    pub fn poll_times(&self, user: &str) -> Vec<std::time::Instant> {
        self.with(|state| {
            state
                .polls
                .iter()
                .filter(|poll| poll.user == user)
                .map(|poll| poll.at)
                .collect()
        })
    }

    pub fn subscriptions_of(&self, user: &str) -> usize {
        self.with(|state| state.subscriptions.iter().filter(|id| *id == user).count())
    }

    /// A queue made for `user` outside a subscription, as the provider's widget flow does.
    pub fn create_queue(&self, user: &str, queue: &str) {
        self.state
            .lock()
            .unwrap()
            .queues
            .insert(queue.to_owned(), user.to_owned());
    }

    pub fn release(&self) {
        self.state.lock().unwrap().released = true;
    }

    pub fn with<T>(&self, read: impl FnOnce(&FakeState) -> T) -> T {
        read(&self.state.lock().unwrap())
    }

    pub fn polls_of(&self, user: &str) -> usize {
        self.with(|state| state.polls.iter().filter(|poll| poll.user == user).count())
    }

    /// TOML for a poller named `name` against this fake (users are added by the caller).
    pub fn poller_toml(&self, name: &str, client_id: &str) -> String {
        format!(
            r#"
            [pollers.{name}]
            kind = "oxlin"
            environment = "custom"
            api_url = "{base}/v2.1"
            token_url = "{base}/token"
            client_id = "{client_id}"
            client_secret = "client-secret"
            interval = "100ms"
            backoff_initial = "50ms"
            backoff_max = "400ms"
            request_timeout = "2s"
            "#,
            base = self.base
        )
    }
}

/// `[[pollers.NAME.users]]` entries using the fake's password convention.
pub fn users_toml(poller: &str, ids: &[&str]) -> String {
    ids.iter()
        .map(|id| format!("[[pollers.{poller}.users]]\nid = \"{id}\"\nusername = \"{id}\"\npassword = \"pw-{id}\"\n"))
        .collect()
}

/// A users file with the fake's password convention.
pub fn users_file(ids: &[String]) -> String {
    ids.iter()
        .map(|id| {
            format!("[[users]]\nid = \"{id}\"\nusername = \"{id}\"\npassword = \"pw-{id}\"\n\n")
        })
        .collect()
}

type Shared = State<Arc<Mutex<FakeState>>>;

async fn token(State(state): Shared, Json(request): Json<Value>) -> Response {
    let mut state = state.lock().unwrap();
    state.token_requests.push(request.clone());
    let user = request["username"].as_str().unwrap_or_default().to_owned();
    let client_id = request["client_id"].as_str().unwrap_or_default().to_owned();
    // `pw-{user}`, or after a rotation `rotated-pw-{user}`.
    let password = request["password"].as_str().unwrap_or_default();
    let known = password.strip_prefix("rotated-").unwrap_or(password) == format!("pw-{user}");
    if !known || request["provider"] != "linxoConnect" || request["grant_type"] != "password" {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let token = format!("tok-{}", state.token_requests.len());
    state.tokens.insert(token.clone(), (user, client_id));
    Json(json!({ "access_token": token, "token_type": "Bearer", "expires_in": 3600 }))
        .into_response()
}

fn caller(state: &FakeState, headers: &HeaderMap) -> Option<(String, String)> {
    let token = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    state.tokens.get(token).cloned()
}

async fn subscribe(State(state): Shared, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let mut state = state.lock().unwrap();
    let Some((user, _)) = caller(&state, &headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    assert_eq!(body["topics"], json!(["connections"]));
    state.subscriptions.push(user.clone());
    let queue = format!("q{}", state.subscriptions.len());
    state.queues.insert(queue.clone(), user);
    let location = format!("{}/queues/{queue}", state.location_prefix);
    (StatusCode::CREATED, [("location", location)]).into_response()
}

async fn poll(State(state): Shared, Path(queue): Path<String>, headers: HeaderMap) -> Response {
    let mut state = state.lock().unwrap();
    let Some((user, client_id)) = caller(&state, &headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    if state.queues.get(&queue) != Some(&user) {
        return StatusCode::NOT_FOUND.into_response();
    }
    state.polls.push(Poll {
        user: user.clone(),
        client_id,
        queue: queue.clone(),
        at: std::time::Instant::now(),
    });
    let released = state.released;
    let script = state.scripts.entry(user).or_default();
    if matches!(script.front(), Some(Step::Gate)) {
        if !released {
            return StatusCode::NO_CONTENT.into_response();
        }
        script.pop_front();
    }
    match script.pop_front() {
        None | Some(Step::Empty) | Some(Step::Gate) => StatusCode::NO_CONTENT.into_response(),
        Some(Step::Page(page)) => {
            (StatusCode::OK, [("content-type", "application/json")], page).into_response()
        }
        Some(Step::Status(code)) => {
            if code == 401 {
                let token = headers["authorization"]
                    .to_str()
                    .unwrap()
                    .trim_start_matches("Bearer ")
                    .to_owned();
                state.tokens.remove(&token);
            }
            if code == 404 || code == 410 {
                state.queues.remove(&queue);
            }
            StatusCode::from_u16(code).unwrap().into_response()
        }
    }
}
