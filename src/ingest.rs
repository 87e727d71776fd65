//! The webhook pipeline after extraction, free of HTTP types: verify → normalize → publish.
//! A body that is authenticated but not understood goes to the dead-letter topic instead.

use http::HeaderMap;
use time::OffsetDateTime;

use crate::envelope::{Ingress, Origin};
use crate::metrics::Metrics;
use crate::providers;
use crate::publish::{DeadLetter, Delivered, PublishError, Publisher, RECORD_TOO_LARGE};
use crate::sources::{AuthError, Source};

/// What happened to an accepted webhook; both are answered 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// The envelope is on Kafka.
    Published { id: String },
    /// Not understood; the raw body is on the dead-letter topic.
    DeadLettered { id: String, reason: &'static str },
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// Kafka can never take this body: only its size and digest are on the dead-letter topic.
    #[error(
        "the event is larger than kafka accepts; its size and digest are on the dead-letter topic"
    )]
    TooLargeForKafka { id: String },
}

/// Handles one webhook body whose request already passed [`Source::authenticate_request`].
pub async fn ingest_webhook(
    publisher: &Publisher,
    metrics: &Metrics,
    source: &Source,
    headers: &HeaderMap,
    body: &[u8],
    received_at: OffsetDateTime,
) -> Result<Ingested, IngestError> {
    source.authenticate_body(headers, body)?;
    let origin = Origin {
        provider: source.kind,
        source_name: &source.name,
        ingress: Ingress::Webhook,
        received_at,
    };
    let (id, delivered) = match providers::webhook_envelope(&origin, body) {
        Ok(envelope) => {
            let delivered = publisher
                .publish_or_divert(&envelope, origin, body, headers)
                .await?;
            (envelope.id, delivered)
        }
        Err(error) => {
            let reason = error.reason_code();
            let letter = DeadLetter::new(origin, reason, error.to_string(), body, headers);
            tracing::warn!(source = %source.name, reason, %error, id = %letter.id, "webhook dead-lettered");
            let delivered = match publisher.publish_dead_letter_or_digest(&letter).await? {
                true => Delivered::DeadLettered { reason },
                false => Delivered::DigestOnly,
            };
            (letter.id, delivered)
        }
    };
    match delivered {
        Delivered::Event => Ok(Ingested::Published { id }),
        Delivered::DeadLettered { reason } => {
            metrics.dead_lettered(&source.name, reason);
            Ok(Ingested::DeadLettered { id, reason })
        }
        Delivered::DigestOnly => {
            metrics.dead_lettered(&source.name, RECORD_TOO_LARGE);
            Err(IngestError::TooLargeForKafka { id })
        }
    }
}
