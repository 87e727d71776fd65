//! `POST /webhooks/{source}`: a short adapter from HTTP to [`crate::ingest`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, RawPathParams, Request as HttpRequest, State};
use axum::http::header::CONTENT_LENGTH;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use time::OffsetDateTime;

use super::client_ip::client_address;
use super::error::ApiError;
use super::tls::ClientCertificate;
use super::AppState;
use crate::auth::Request;
use crate::ingest::{ingest_webhook, Ingested};
use crate::metrics::{WebhookOutcome, UNKNOWN_SOURCE};
use crate::sources::Source;

pub async fn receive(
    State(state): State<Arc<AppState>>,
    path: RawPathParams,
    request: HttpRequest,
) -> Response {
    let started = Instant::now();
    let source = segment(&path, "source").and_then(|name| state.sources.get(name));
    let event = segment(&path, "event");
    let source = source.filter(|source| event.is_none() || source.takes_path_events());
    let (Some(source), true) = (source.cloned(), event.is_none_or(is_valid_path_event)) else {
        return finish(
            &state,
            UNKNOWN_SOURCE,
            started,
            Err(ApiError::UnknownSource),
        );
    };
    // Past the cap, refuse at once: queueing would only grow memory and answer late anyway.
    let Ok(_permit) = Arc::clone(&state.in_flight).try_acquire_owned() else {
        let overloaded = ApiError::Overloaded {
            retry_after_seconds: state.retry_after_seconds,
        };
        return finish(&state, &source.name, started, Err(overloaded));
    };
    let result = handle(&state, &source, event, request).await;
    finish(&state, &source.name, started, result)
}

/// Any method but POST on a webhook path.
pub async fn wrong_method(State(state): State<Arc<AppState>>, path: RawPathParams) -> Response {
    let label = segment(&path, "source")
        .and_then(|name| state.sources.get(name))
        .map_or(UNKNOWN_SOURCE, |source| source.name.as_str());
    finish(
        &state,
        label,
        Instant::now(),
        Err(ApiError::MethodNotAllowed),
    )
}

/// A named segment of the webhook path, percent-decoded. Read from axum's list of segments: a
/// `Path<HashMap<String, String>>` built a map and four strings per webhook, this one copy.
fn segment<'p>(path: &'p RawPathParams, name: &str) -> Option<&'p str> {
    path.iter()
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// The event segment of `/webhooks/{source}/{event}`: a name, never anything to interpret.
fn is_valid_path_event(event: &str) -> bool {
    (1..=64).contains(&event.len())
        && event
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

async fn handle(
    state: &AppState,
    source: &Arc<Source>,
    path_event: Option<&str>,
    request: HttpRequest,
) -> Result<Ingested, ApiError> {
    let received_at = OffsetDateTime::now_utc();
    let (parts, body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip());
    let client = client_address(peer, &parts.headers, &state.trusted_proxies);
    let certificate = parts.extensions.get::<ClientCertificate>();
    source
        .authenticate_request(client, certificate, &parts)
        .map_err(ApiError::Auth)?;
    let body = tokio::time::timeout(
        state.body_read_timeout,
        read_body(body, &parts.headers, source.body_limit),
    )
    .await
    .map_err(|_elapsed| ApiError::RequestTimeout)??;
    let request = Request {
        method: &parts.method,
        path: parts.uri.path(),
        headers: &parts.headers,
        body: &body,
        received_at,
        path_event,
        query: parts.uri.query(),
    };
    ingest_webhook(
        &state.publisher,
        &state.metrics,
        &state.sources,
        source,
        &request,
    )
    .await
    .map_err(|error| ApiError::from_ingest(error, state.retry_after_seconds))
}

/// Reads at most `limit` bytes; a declared or actual larger body is refused without reading on.
async fn read_body(
    body: Body,
    headers: &http::HeaderMap,
    limit: usize,
) -> Result<bytes::Bytes, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let too_large = std::error::Error::source(&error)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::BadRequest("the request body could not be read")
        }
    })
}

/// The answer to a webhook about one event, written straight from borrowed fields (no JSON
/// tree per request).
#[derive(serde::Serialize)]
struct Answer<'a> {
    status: &'static str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

impl<'a> Answer<'a> {
    fn accepted(id: &'a str) -> Self {
        Self {
            status: "accepted",
            id,
            reason: None,
        }
    }
}

fn finish(
    state: &AppState,
    source: &str,
    started: Instant,
    result: Result<Ingested, ApiError>,
) -> Response {
    let (outcome, response) = match result {
        Ok(Ingested::Published { id }) => (
            WebhookOutcome::Accepted,
            Json(Answer::accepted(&id)).into_response(),
        ),
        Ok(Ingested::Batch { ids, dead_lettered }) => (
            WebhookOutcome::Accepted,
            Json(json!({ "status": "accepted", "ids": ids, "dead_lettered": dead_lettered }))
                .into_response(),
        ),
        Ok(Ingested::DeadLettered { id, reason }) => (
            WebhookOutcome::DeadLettered,
            Json(Answer {
                status: "dead_lettered",
                id: &id,
                reason: Some(reason),
            })
            .into_response(),
        ),
        Err(error) => {
            state.refusals.record(source, &error);
            (error.outcome(), error.into_response())
        }
    };
    state
        .metrics
        .webhook_finished(source, outcome, started.elapsed());
    response
}
