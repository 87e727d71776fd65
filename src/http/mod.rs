//! HTTP: the webhook router (providers post here) and the operations router (metrics, health),
//! served on separate listeners.

mod client_ip;
mod error;
mod ops;
pub mod server;
pub mod tls;
mod webhook;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;

pub use self::client_ip::client_address;
pub use self::error::{ApiError, RefusalLog};
use crate::config::IpRange;
use crate::metrics::Metrics;
use crate::publish::Publisher;
use crate::sources::Sources;

/// What every handler shares, behind one `Arc` (axum clones the state for every request).
pub struct AppState {
    pub sources: Sources,
    pub publisher: Arc<Publisher>,
    pub metrics: Metrics,
    pub trusted_proxies: Arc<[IpRange]>,
    pub retry_after_seconds: u32,
    /// Permits for webhook requests in flight; none left → 503 at once.
    pub in_flight: Arc<tokio::sync::Semaphore>,
    pub body_read_timeout: Duration,
    /// Set on SIGTERM: /readyz answers 503 so load balancers stop sending.
    pub shutting_down: Arc<AtomicBool>,
    /// Refused webhooks are logged here, throttled per source.
    pub refusals: RefusalLog,
}

impl AppState {
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

/// `POST /webhooks/{source}` and `POST /webhooks/{source}/{event}` (for providers that register
/// one URL per event kind); any other method there is 405, any other path 404.
pub fn webhook_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/webhooks/{source}",
            post(webhook::receive).fallback(webhook::wrong_method),
        )
        .route(
            "/webhooks/{source}/{event}",
            post(webhook::receive).fallback(webhook::wrong_method),
        )
        .fallback(ops::not_found)
        .with_state(state)
}

/// `/metrics`, `/healthz`, `/readyz`.
pub fn ops_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .fallback(ops::not_found)
        .with_state(state)
}
