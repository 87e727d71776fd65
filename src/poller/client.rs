//! The Oxlin API as the poller needs it: a token by password grant, a queue subscription, a
//! queue poll. Typed outcomes, an injectable base URL, timeouts, bounded concurrency. Knows
//! nothing about Kafka.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, LOCATION, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

use crate::config::poller::TokenRequestFormat;
use crate::config::PollerConfig;
use crate::metrics::PollOutcome;
use crate::secret::Secret;

/// Oxlin's token endpoint wants to know which product the client belongs to.
const TOKEN_PROVIDER: &str = "linxoConnect";

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("the access token was refused (401)")]
    Unauthorized,
    #[error("the queue is gone ({0})")]
    QueueGone(StatusCode),
    #[error("throttled (429)")]
    Throttled { retry_after: Option<Duration> },
    #[error("server error ({0})")]
    Server(StatusCode),
    #[error("the request timed out")]
    Timeout,
    #[error("network error: {0}")]
    Network(String),
    #[error("unexpected response: {0}")]
    Protocol(String),
    #[error("the token endpoint refused the credentials ({0})")]
    TokenRefused(StatusCode),
}

impl PollError {
    /// The poll outcome label this error counts as.
    pub fn outcome(&self) -> PollOutcome {
        match self {
            PollError::Unauthorized => PollOutcome::Unauthorized,
            PollError::QueueGone(_) => PollOutcome::QueueGone,
            PollError::Throttled { .. } => PollOutcome::Throttled,
            PollError::Server(_) => PollOutcome::ServerError,
            PollError::Timeout => PollOutcome::Timeout,
            PollError::Network(_) => PollOutcome::NetworkError,
            PollError::Protocol(_) | PollError::TokenRefused(_) => PollOutcome::ProtocolError,
        }
    }

    /// A retry label from a fixed set.
    pub fn reason(&self) -> &'static str {
        match self {
            PollError::TokenRefused(_) => "token_refused",
            other => other.outcome().as_str(),
        }
    }

    fn from_reqwest(error: reqwest::Error) -> Self {
        if error.is_timeout() {
            PollError::Timeout
        } else {
            // reqwest's message names the URL (no credentials in it) and the cause.
            PollError::Network(error.without_url().to_string())
        }
    }
}

/// A queue poll's result.
#[derive(Debug)]
pub enum Polled {
    /// 204: nothing yet.
    Empty,
    /// 200: a page of events, raw.
    Page(Bytes),
}

/// One of a poller's request slots (`max_concurrent_requests`): every request to the provider
/// is sent holding one, taken by the caller with [`QueueApi::request_slot`] so that the wait for
/// it can be given up (on stop) while a request, once sent, is never cut short.
pub struct RequestSlot(
    /// Held, never read: dropping the slot gives the permit back.
    #[allow(dead_code, reason = "held for its drop")]
    Option<OwnedSemaphorePermit>,
);

impl RequestSlot {
    /// A slot from no pool, for a provider that bounds nothing (tests).
    pub fn unbounded() -> Self {
        Self(None)
    }
}

/// An access token and how long it lives.
#[derive(Debug, Clone)]
pub struct Token {
    pub value: Secret,
    pub expires_in: Option<Duration>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// What a user loop needs of a queue provider; [`OxlinClient`] is the real one, tests script
/// their own.
pub trait QueueApi: Send + Sync + 'static {
    /// Waits for a free request slot; each request below is sent holding one.
    fn request_slot(&self) -> impl Future<Output = RequestSlot> + Send;

    /// OAuth2 password grant for one user.
    fn password_token(
        &self,
        slot: RequestSlot,
        username: &Secret,
        password: &Secret,
    ) -> impl Future<Output = Result<Token, PollError>> + Send;

    /// Subscribes to a new queue for `topics`; returns its URL.
    fn subscribe(
        &self,
        slot: RequestSlot,
        token: &Secret,
        topics: &[String],
    ) -> impl Future<Output = Result<Url, PollError>> + Send;

    /// Polls a queue once.
    fn poll(
        &self,
        slot: RequestSlot,
        token: &Secret,
        queue: &Url,
    ) -> impl Future<Output = Result<Polled, PollError>> + Send;
}

pub struct OxlinClient {
    http: reqwest::Client,
    api: Url,
    /// `{api}queues/subscribe`: subscriptions go there, and `Location`s resolve against it.
    subscribe_url: Url,
    token_url: Url,
    client_id: String,
    client_secret: Option<Secret>,
    scope: String,
    token_format: TokenRequestFormat,
    topics: Vec<String>,
    /// Bounds requests in flight over all users of one poller.
    in_flight: Arc<Semaphore>,
    request_timeout: Duration,
}

impl OxlinClient {
    pub fn new(
        http: reqwest::Client,
        config: &PollerConfig,
        client_secret: Option<Secret>,
    ) -> Self {
        Self {
            http,
            api: config.api_url(),
            subscribe_url: config
                .api_url()
                .join("queues/subscribe")
                .expect("a relative path joins"),
            token_url: config.token_url(),
            client_id: config.client_id.clone(),
            client_secret,
            scope: config.scope.clone(),
            token_format: config.token_request_format,
            topics: config.topics.clone(),
            in_flight: Arc::new(Semaphore::new(config.max_concurrent_requests)),
            request_timeout: config.request_timeout,
        }
    }

    /// The provider API's origin (scheme, host, port): the only place a user's token is sent.
    pub fn origin(&self) -> url::Origin {
        self.api.origin()
    }

    /// The poller's subscription topics (a user may have its own).
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// The URL of a queue named by an id (`abc`), a path (`/queues/abc`) or a URL, as a
    /// provider's widget flow hands it out.
    pub fn queue_reference(&self, reference: &str) -> Result<Url, PollError> {
        // A bare id resolves beside `queues/subscribe`: `queues/{id}`.
        queue_url(&self.api, &self.subscribe_url, reference.trim())
    }

    /// The HTTP client every poller shares: one connection pool, rustls.
    pub fn http_client() -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("finhook/", env!("CARGO_PKG_VERSION")))
            .build()
    }
}

impl QueueApi for OxlinClient {
    async fn request_slot(&self) -> RequestSlot {
        let permit = Arc::clone(&self.in_flight).acquire_owned().await;
        RequestSlot(Some(permit.expect("never closed")))
    }

    async fn password_token(
        &self,
        _slot: RequestSlot,
        username: &Secret,
        password: &Secret,
    ) -> Result<Token, PollError> {
        let secret = self.client_secret.as_ref().map_or("", Secret::expose);
        let request = self
            .http
            .post(self.token_url.clone())
            .timeout(self.request_timeout);
        let request = match self.token_format {
            TokenRequestFormat::Json => request.json(&json!({
                "provider": TOKEN_PROVIDER,
                "client_id": self.client_id,
                "client_secret": secret,
                "grant_type": "password",
                "username": username.expose(),
                "password": password.expose(),
                "scope": self.scope,
            })),
            TokenRequestFormat::Form => request.form(&[
                ("provider", TOKEN_PROVIDER),
                ("client_id", &self.client_id),
                ("client_secret", secret),
                ("grant_type", "password"),
                ("username", username.expose()),
                ("password", password.expose()),
                ("scope", &self.scope),
            ]),
        };
        let response = request.send().await.map_err(PollError::from_reqwest)?;
        let status = response.status();
        if status.is_server_error() {
            return Err(PollError::Server(status));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(PollError::Throttled {
                retry_after: retry_after(&response),
            });
        }
        if !status.is_success() {
            return Err(PollError::TokenRefused(status));
        }
        let body: TokenResponse = response
            .json()
            .await
            .map_err(|_| PollError::Protocol("token response without access_token".to_owned()))?;
        Ok(Token {
            value: Secret::new(body.access_token),
            expires_in: body.expires_in.map(Duration::from_secs),
        })
    }

    /// `POST /queues/subscribe` → 201 with `Location: /queues/{id}`; returns the queue URL.
    async fn subscribe(
        &self,
        _slot: RequestSlot,
        token: &Secret,
        topics: &[String],
    ) -> Result<Url, PollError> {
        let response = self
            .http
            .post(self.subscribe_url.clone())
            .timeout(self.request_timeout)
            .header(AUTHORIZATION, bearer(token))
            .json(&json!({ "topics": topics }))
            .send()
            .await
            .map_err(PollError::from_reqwest)?;
        let status = response.status();
        check_status(status, &response)?;
        if !status.is_success() {
            return Err(PollError::Protocol(format!("subscribe answered {status}")));
        }
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| PollError::Protocol("subscribe answered without Location".to_owned()))?;
        queue_url(&self.api, &self.subscribe_url, location)
    }

    /// `GET /queues/{id}`: 204 → empty, 200 → a page of events.
    async fn poll(
        &self,
        _slot: RequestSlot,
        token: &Secret,
        queue: &Url,
    ) -> Result<Polled, PollError> {
        let response = self
            .http
            .get(queue.clone())
            .timeout(self.request_timeout)
            .header(AUTHORIZATION, bearer(token))
            .send()
            .await
            .map_err(PollError::from_reqwest)?;
        let status = response.status();
        check_status(status, &response)?;
        if !status.is_success() {
            return Err(PollError::Protocol(format!("poll answered {status}")));
        }
        if status == StatusCode::NO_CONTENT {
            return Ok(Polled::Empty);
        }
        // 200 (or another 2xx with a body): the provider has taken these events off the queue.
        let page = response.bytes().await.map_err(|error| {
            let error = PollError::from_reqwest(error);
            tracing::error!(%status, %error, "a page of events was answered but not received whole; the events it held are lost");
            error
        })?;
        if page.iter().all(u8::is_ascii_whitespace) {
            Ok(Polled::Empty)
        } else {
            Ok(Polled::Page(page))
        }
    }
}

/// Resolves a subscription's `Location` as a URI reference against the request URL (RFC 3986):
/// an absolute URL as it is, `/v2.1/queues/x` on the API's host, `x` beside `subscribe`. One
/// exception: Oxlin documents every path relative to its versioned base (`POST /queues/subscribe`
/// is `/v2.1/queues/subscribe`) and shows `location: /queues/{id}`, so an absolute path that
/// does not already start with the API base path is taken under that base.
fn queue_url(api: &Url, request: &Url, location: &str) -> Result<Url, PollError> {
    let unusable = || PollError::Protocol("subscribe answered an unusable Location".to_owned());
    let location = location.trim();
    if location.is_empty() {
        return Err(unusable());
    }
    let base_path = api.path();
    let under_base = location.starts_with('/')
        && !location.starts_with("//")
        && !location.starts_with(base_path)
        && base_path != "/";
    let resolved = if under_base {
        api.join(location.trim_start_matches('/'))
    } else {
        request.join(location)
    };
    resolved.map_err(|_| unusable())
}

fn bearer(token: &Secret) -> String {
    format!("Bearer {}", token.expose())
}

/// The error statuses every queue request shares.
fn check_status(status: StatusCode, response: &reqwest::Response) -> Result<(), PollError> {
    match status {
        StatusCode::UNAUTHORIZED => Err(PollError::Unauthorized),
        StatusCode::TOO_MANY_REQUESTS => Err(PollError::Throttled {
            retry_after: retry_after(response),
        }),
        status if status.is_server_error() => Err(PollError::Server(status)),
        // A gateway's or the server's own timeout: nothing says the queue is gone.
        StatusCode::REQUEST_TIMEOUT => Err(PollError::Timeout),
        // 404, 410 and any other 4xx on a queue: it is gone; subscribe again.
        status if status.is_client_error() => Err(PollError::QueueGone(status)),
        _ => Ok(()),
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(api: &str, location: &str) -> String {
        let api = Url::parse(api).unwrap();
        let request = api.join("queues/subscribe").unwrap();
        queue_url(&api, &request, location).unwrap().to_string()
    }

    #[test]
    fn location_resolves_as_a_uri_reference_against_the_request() {
        let api = "https://api.oxlin.io/v2.1/";
        // An absolute path that names the versioned base is not prefixed a second time.
        assert_eq!(
            resolve(api, "/v2.1/queues/abc"),
            "https://api.oxlin.io/v2.1/queues/abc"
        );
        // The seed's form, relative to the documented base.
        assert_eq!(
            resolve(api, "/queues/abc"),
            "https://api.oxlin.io/v2.1/queues/abc"
        );
        // Relative references resolve beside the subscribe endpoint.
        assert_eq!(resolve(api, "abc"), "https://api.oxlin.io/v2.1/queues/abc");
        assert_eq!(
            resolve(api, "../other/abc"),
            "https://api.oxlin.io/v2.1/other/abc"
        );
        // Absolute URLs and network-path references are taken as they are.
        assert_eq!(
            resolve(api, "https://queues.oxlin.io/q/abc"),
            "https://queues.oxlin.io/q/abc"
        );
        assert_eq!(resolve(api, "//q.oxlin.io/abc"), "https://q.oxlin.io/abc");
        // On an API at the root, an absolute path is simply on the host.
        assert_eq!(
            resolve("http://127.0.0.1:7070/", "/queues/abc"),
            "http://127.0.0.1:7070/queues/abc"
        );
    }

    #[test]
    fn a_bare_queue_id_resolves_under_queues() {
        assert_eq!(
            resolve("https://api.oxlin.io/v2.1/", "q-42"),
            "https://api.oxlin.io/v2.1/queues/q-42"
        );
    }

    #[test]
    fn an_empty_location_is_a_protocol_error() {
        let api = Url::parse("https://api.oxlin.io/v2.1/").unwrap();
        assert!(queue_url(&api, &api, " ").is_err());
    }
}
