//! The one place errors become HTTP statuses, and are logged (per source, throttled).

use std::collections::HashMap;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::auth::AuthError;
use crate::ingest::IngestError;
use crate::metrics::WebhookOutcome;
use crate::publish::PublishError;
use crate::telemetry::LogThrottle;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no webhook source of that name")]
    UnknownSource,
    #[error("use POST")]
    MethodNotAllowed,
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    BadRequest(&'static str),
    #[error(transparent)]
    Auth(AuthError),
    /// The provider's key server is unreachable: the request may be genuine, so retry.
    #[error("{}", AuthError::KeysUnavailable)]
    KeysUnavailable { retry_after_seconds: u32 },
    #[error("too many requests in flight; retry later")]
    Overloaded { retry_after_seconds: u32 },
    #[error("the body was not received in time")]
    RequestTimeout,
    #[error("the event is larger than kafka accepts; it was recorded as too large (id {id})")]
    TooLargeForKafka { id: String },
    #[error("kafka is unavailable ({}); retry later", .error.reason())]
    Unavailable {
        error: PublishError,
        retry_after_seconds: u32,
    },
}

/// The log throttles of one source's refusals. Anyone can send refused requests, and an outage
/// answers every request 503: those lines are throttled (the rest at debug level; the metrics
/// count them all). One set per source, so that a flood of refusals on one source does not
/// hide the first refusal on another.
struct RefusalThrottles {
    unavailable: LogThrottle,
    refused: LogThrottle,
    keys_unavailable: LogThrottle,
}

impl RefusalThrottles {
    const INTERVAL: Duration = Duration::from_secs(1);

    const fn new() -> Self {
        Self {
            unavailable: LogThrottle::new(Self::INTERVAL),
            refused: LogThrottle::new(Self::INTERVAL),
            keys_unavailable: LogThrottle::new(Self::INTERVAL),
        }
    }
}

/// Where refused webhooks are logged from: a set of throttles per configured source, and one
/// for requests that named no source.
pub struct RefusalLog {
    by_source: HashMap<String, RefusalThrottles>,
    unknown_source: RefusalThrottles,
}

impl RefusalLog {
    pub fn new<'a>(source_names: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            by_source: source_names
                .into_iter()
                .map(|name| (name.to_owned(), RefusalThrottles::new()))
                .collect(),
            unknown_source: RefusalThrottles::new(),
        }
    }

    /// Logs why a webhook to `source` (a configured name, or the metrics' `unknown` label:
    /// never the request's own text) was not accepted.
    pub fn record(&self, source: &str, error: &ApiError) {
        let throttles = self.by_source.get(source).unwrap_or(&self.unknown_source);
        let outcome = error.outcome().as_str();
        match error {
            ApiError::Unavailable { error, .. } => match throttles.unavailable.admit() {
                Some(suppressed) => {
                    tracing::warn!(source, outcome, %error, suppressed, "webhook answered 503")
                }
                None => tracing::debug!(source, outcome, %error, "webhook answered 503"),
            },
            ApiError::TooLargeForKafka { id } => tracing::error!(
                source,
                outcome,
                %id,
                "webhook too large for kafka; only its digest is kept"
            ),
            ApiError::Auth(error) => match throttles.refused.admit() {
                Some(suppressed) => {
                    tracing::warn!(source, outcome, %error, suppressed, "webhook refused")
                }
                None => tracing::debug!(source, outcome, %error, "webhook refused"),
            },
            ApiError::KeysUnavailable { .. } => match throttles.keys_unavailable.admit() {
                Some(suppressed) => tracing::warn!(
                    source,
                    outcome,
                    suppressed,
                    "webhook answered 503: verification keys unavailable"
                ),
                None => tracing::debug!(
                    source,
                    outcome,
                    "webhook answered 503: verification keys unavailable"
                ),
            },
            other => tracing::debug!(source, outcome, error = %other, "webhook refused"),
        }
    }
}

impl ApiError {
    pub fn from_ingest(error: IngestError, retry_after_seconds: u32) -> Self {
        match error {
            IngestError::Auth(AuthError::KeysUnavailable) => ApiError::KeysUnavailable {
                retry_after_seconds,
            },
            IngestError::Auth(error) => ApiError::Auth(error),
            IngestError::Publish(error) => ApiError::Unavailable {
                error,
                retry_after_seconds,
            },
            IngestError::TooLargeForKafka { id } => ApiError::TooLargeForKafka { id },
        }
    }

    pub fn outcome(&self) -> WebhookOutcome {
        match self {
            ApiError::UnknownSource => WebhookOutcome::NotFound,
            ApiError::MethodNotAllowed => WebhookOutcome::MethodNotAllowed,
            ApiError::PayloadTooLarge { .. } | ApiError::TooLargeForKafka { .. } => {
                WebhookOutcome::PayloadTooLarge
            }
            ApiError::BadRequest(_) => WebhookOutcome::BadRequest,
            ApiError::Auth(AuthError::AddressNotAllowed) => WebhookOutcome::Forbidden,
            ApiError::Auth(_) => WebhookOutcome::Unauthorized,
            ApiError::Unavailable { .. } | ApiError::KeysUnavailable { .. } => {
                WebhookOutcome::Unavailable
            }
            ApiError::Overloaded { .. } => WebhookOutcome::Overloaded,
            ApiError::RequestTimeout => WebhookOutcome::RequestTimeout,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::UnknownSource => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } | ApiError::TooLargeForKafka { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Auth(AuthError::AddressNotAllowed) => StatusCode::FORBIDDEN,
            ApiError::Auth(_) => StatusCode::UNAUTHORIZED,
            ApiError::Unavailable { .. }
            | ApiError::KeysUnavailable { .. }
            | ApiError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let outcome = self.outcome().as_str();
        // The message names what was wrong, never a value from the request or a secret.
        let body = Json(json!({ "error": outcome, "message": self.to_string() }));
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Unavailable {
                retry_after_seconds,
                ..
            }
            | ApiError::Overloaded {
                retry_after_seconds,
            }
            | ApiError::KeysUnavailable {
                retry_after_seconds,
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
            }
            ApiError::MethodNotAllowed => {
                headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            // The body was not read to its end: the connection cannot carry another request,
            // so say so rather than let the client reuse it and fail.
            ApiError::PayloadTooLarge { .. } | ApiError::RequestTimeout => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            ApiError::Auth(AuthError::MissingCredentials | AuthError::WrongCredentials) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"finhook\", Bearer"),
                );
            }
            _ => {}
        }
        response
    }
}
