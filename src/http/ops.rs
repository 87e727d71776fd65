//! Operations endpoints: Prometheus metrics, liveness and readiness.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppState;

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Alive unless the Kafka producer failed fatally and has not been replaced yet (replacing it
/// takes under a second; a failure that lasts means replacing fails, and a restart is due).
pub async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    if state.publisher.health().is_fatal() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "kafka_fatal" })),
        )
            .into_response()
    } else {
        Json(json!({ "status": "ok" })).into_response()
    }
}

/// Ready when Kafka answered the last probe: webhooks can be acknowledged.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.is_shutting_down() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "shutting_down" })),
        )
            .into_response();
    }
    if state.publisher.health().is_ready() {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "kafka_unreachable" })),
        )
            .into_response()
    }
}

pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": "not_found", "message": "no such path" })),
    )
        .into_response()
}
