//! Publishing to Kafka: an idempotent, acks=all producer; an answer only after the delivery
//! report; topic routing; the dead-letter topic; broker health for /readyz.

mod context;
pub mod dead_letter;
pub mod embedded;
mod health;
mod producer;
mod routing;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureRecord, Producer};
use time::OffsetDateTime;

pub use self::dead_letter::DeadLetter;
pub use self::health::KafkaHealth;
use self::producer::ProducerSlot;
pub use self::routing::Routing;
use crate::config::KafkaConfig;
use crate::envelope::{AttributeHeaders, Envelope, Origin};
use crate::metrics::{Metrics, RecordKind};

/// How often librdkafka reports statistics (its resend counts feed a metric).
const STATISTICS_INTERVAL_MS: &str = "5000";

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("kafka is not reachable")]
    NotReady,
    #[error("kafka did not acknowledge within {0:?}")]
    Timeout(Duration),
    #[error("the producer's local queue is full")]
    QueueFull,
    #[error("kafka did not take the record: {0}")]
    Broker(KafkaError),
    /// Permanent: the record is larger than the producer, broker or topic accepts.
    #[error("the record is too large for kafka: {0}")]
    TooLarge(KafkaError),
    /// Permanent: the record or its topic is refused (invalid record, unknown topic, not
    /// authorized). Retrying the same record cannot succeed until an operator acts.
    #[error("kafka refuses the record: {0}")]
    Refused(KafkaError),
}

impl PublishError {
    /// A metric label from [`crate::metrics::PUBLISH_FAILURE_REASONS`].
    pub fn reason(&self) -> &'static str {
        match self {
            PublishError::NotReady => "not_ready",
            PublishError::Timeout(_) => "timeout",
            PublishError::QueueFull => "queue_full",
            PublishError::Broker(_) => "broker",
            PublishError::TooLarge(_) => "too_large",
            PublishError::Refused(_) => "refused",
        }
    }

    /// Whether sending the same record again can never succeed: such a record is diverted to
    /// the dead-letter topic rather than retried (by finhook or, through a 503, the provider).
    pub fn is_permanent(&self) -> bool {
        matches!(self, PublishError::TooLarge(_) | PublishError::Refused(_))
    }

    fn from_kafka(error: KafkaError, waited: Duration) -> Self {
        use RDKafkaErrorCode as Code;
        match error.rdkafka_error_code() {
            Some(Code::QueueFull) => PublishError::QueueFull,
            Some(Code::MessageTimedOut) => PublishError::Timeout(waited),
            Some(
                Code::MessageSizeTooLarge | Code::InvalidMessageSize | Code::MessageBatchTooLarge,
            ) => PublishError::TooLarge(error),
            Some(
                Code::InvalidRecord
                | Code::InvalidTopic
                | Code::UnknownTopic
                | Code::UnknownTopicOrPartition
                | Code::TopicAuthorizationFailed
                | Code::ClusterAuthorizationFailed,
            ) => PublishError::Refused(error),
            _ => PublishError::Broker(error),
        }
    }
}

/// What became of an event handed to [`Publisher::publish_or_divert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// The envelope is on its topic.
    Event,
    /// Kafka refused the envelope for good; the raw bytes are on the dead-letter topic.
    DeadLettered { reason: &'static str },
    /// Even the raw bytes were too large: only their size and digest are on the dead-letter
    /// topic.
    DigestOnly,
}

pub use crate::metrics::{KAFKA_REFUSED, RECORD_TOO_LARGE};

/// Where a record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acknowledged {
    pub partition: i32,
    pub offset: i64,
}

/// A record librdkafka has taken (and copied); only its acknowledgement is awaited.
struct Enqueued {
    delivery: rdkafka::producer::DeliveryFuture,
    started: Instant,
}

/// An event's or dead letter's record: keyed, with its headers, to the topic's partitioner.
fn record<'a>(
    topic: &'a str,
    key: &'a str,
    payload: &'a [u8],
    headers: OwnedHeaders,
) -> FutureRecord<'a, str, [u8]> {
    FutureRecord::to(topic)
        .key(key)
        .payload(payload)
        .headers(headers)
}

/// The one Kafka producer of the process, shared by the webhook handlers and the pollers.
/// Cloning shares the producer (and its replacements), health and metrics.
#[derive(Clone)]
pub struct Publisher {
    /// Shared with [`Publisher::until_verdict`]'s copy, so that a replaced producer is replaced
    /// for both.
    producer: Arc<ProducerSlot>,
    routing: Routing,
    attribute_headers: AttributeHeaders,
    dead_letter_topic: String,
    ack_timeout: Duration,
    /// How long librdkafka keeps trying a record (`message.timeout.ms`, or its alias
    /// `delivery.timeout.ms`): its verdict on every record comes within it.
    delivery_timeout: Duration,
    health: KafkaHealth,
    metrics: Metrics,
}

/// librdkafka's own `message.timeout.ms` when none is set.
const LIBRDKAFKA_MESSAGE_TIMEOUT: Duration = Duration::from_secs(300);

/// A wait standing for `message.timeout.ms = 0` (librdkafka never gives a record up).
const NO_MESSAGE_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Beyond librdkafka's timeout, how long a wait for its verdict goes on before giving up (the
/// verdict of a timed-out record comes from its periodic scan, about once a second).
const VERDICT_SLACK: Duration = Duration::from_secs(5);

impl Publisher {
    /// Creates the producer. Nothing is contacted yet: finhook starts even when Kafka is down,
    /// reports not ready, and recovers when it comes back.
    pub fn new(
        config: &KafkaConfig,
        bootstrap_servers: &str,
        extra_properties: &[(String, String)],
        metrics: Metrics,
    ) -> Result<Arc<Self>, KafkaError> {
        let mut client_config = ClientConfig::new();
        client_config
            .set("bootstrap.servers", bootstrap_servers)
            .set("client.id", &config.client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", config.compression.as_librdkafka())
            .set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
        for (name, value) in extra_properties {
            client_config.set(name, value);
        }
        let delivery_timeout = extra_properties
            .iter()
            .rev()
            .find(|(name, _)| name == "message.timeout.ms" || name == "delivery.timeout.ms")
            .and_then(|(_, value)| value.parse::<u64>().ok())
            .map_or(LIBRDKAFKA_MESSAGE_TIMEOUT, |millis| match millis {
                // librdkafka's "never time out": its verdict may take as long as the outage.
                0 => NO_MESSAGE_TIMEOUT,
                millis => Duration::from_millis(millis),
            });
        let producer = Arc::new(ProducerSlot::new(client_config, metrics.clone())?);
        let health = KafkaHealth::default();
        Ok(Arc::new(Self {
            producer,
            routing: Routing::new(&config.routes, &config.topics.default),
            attribute_headers: config.attribute_headers,
            dead_letter_topic: config.topics.dead_letter.clone(),
            ack_timeout: config.ack_timeout,
            delivery_timeout,
            health,
            metrics,
        }))
    }

    /// The same producer, waiting for each acknowledgement until librdkafka's verdict (success,
    /// or its own `message.timeout.ms`) rather than `kafka.ack_timeout`: for the pollers, which
    /// hold no connection open. Giving up earlier and trying again would put a second copy of
    /// the event beside the first, which librdkafka still delivers.
    pub fn until_verdict(&self) -> Arc<Self> {
        Arc::new(Self {
            ack_timeout: self.delivery_timeout + VERDICT_SLACK,
            ..self.clone()
        })
    }

    /// How long a send waits for the broker's acknowledgement.
    pub fn ack_timeout(&self) -> Duration {
        self.ack_timeout
    }

    pub fn health(&self) -> &KafkaHealth {
        &self.health
    }

    /// Probes the brokers every `interval` until `shutdown` resolves, keeping
    /// [`Publisher::health`] and the ready gauge current.
    pub async fn watch_health(
        self: Arc<Self>,
        interval: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        health::watch(self, interval, shutdown).await;
    }

    /// Where events go, and which routes protect them.
    pub fn routing(&self) -> &Routing {
        &self.routing
    }

    /// Publishes one envelope to its routed topic, keyed by its partition key, and waits for
    /// the acknowledgement (bounded by the configured ack timeout).
    pub async fn publish_event(
        &self,
        envelope: &Envelope<'_>,
    ) -> Result<Acknowledged, PublishError> {
        let topic = self
            .routing
            .topic_for(envelope.canonical, envelope.provider);
        let mut headers = Some(OwnedHeaders::new_with_capacity(20));
        envelope.each_kafka_header(self.attribute_headers, |key, value| {
            let current = headers.take().expect("always put back");
            headers = Some(current.insert(Header {
                key,
                value: Some(value.as_bytes()),
            }));
        });
        let headers = headers.expect("always put back");
        let acknowledged = self
            .send(
                topic,
                &envelope.partitionkey,
                envelope.to_json(),
                headers,
                RecordKind::Event,
            )
            .await?;
        let lag = envelope.event_time.and_then(|time| {
            let lag = OffsetDateTime::now_utc() - time;
            Duration::try_from(lag).ok()
        });
        self.metrics
            .event_published(envelope.provider, envelope.ingress, envelope.canonical, lag);
        Ok(acknowledged)
    }

    /// Publishes `envelope`, made from the event bytes `raw`. When Kafka refuses the envelope
    /// for good (too large, unknown topic, not authorized) the raw bytes go to the dead-letter
    /// topic instead, so that nothing authenticated is lost and nothing jams; see
    /// [`Publisher::publish_dead_letter_or_digest`]. Retryable failures are returned.
    pub async fn publish_or_divert(
        &self,
        envelope: &Envelope<'_>,
        origin: Origin<'_>,
        raw: &[u8],
        request_headers: &http::HeaderMap,
    ) -> Result<Delivered, PublishError> {
        let refusal = match self.publish_event(envelope).await {
            Ok(_) => return Ok(Delivered::Event),
            Err(error) if error.is_permanent() => error,
            Err(error) => return Err(error),
        };
        let reason = match refusal {
            PublishError::TooLarge(_) => RECORD_TOO_LARGE,
            _ => KAFKA_REFUSED,
        };
        tracing::error!(id = %envelope.id, error = %refusal, reason, "kafka refuses an event for good; diverting it to the dead-letter topic");
        // Boxed, letter included: this rare path's state would otherwise make every webhook's
        // future (on the heap for the whole request) about a kilobyte larger.
        let diverted = Box::pin(async {
            let letter = DeadLetter::new(origin, reason, refusal.to_string(), raw, request_headers);
            self.publish_dead_letter_or_digest(&letter).await
        });
        match diverted.await {
            Ok(true) => Ok(Delivered::DeadLettered { reason }),
            Ok(false) => Ok(Delivered::DigestOnly),
            // Nothing is stored: whoever sent it must send it again. The dead-letter topic's
            // own failure is the one to report (a refusal there needs an operator).
            Err(dead_letter_error) => {
                tracing::error!(id = %envelope.id, event_error = %refusal, error = %dead_letter_error, "the dead-letter topic refused the diverted event too; it is not stored");
                Err(dead_letter_error)
            }
        }
    }

    /// Writes a dead letter. When it is too large for Kafka, the request's headers may be what
    /// did not fit (up to `server.max_header_bytes`): it is written again without them, body
    /// kept. When even that is too large, it is written without the body, with the body's size
    /// and SHA-256 (then returns false).
    pub async fn publish_dead_letter_or_digest(
        &self,
        letter: &DeadLetter<'_>,
    ) -> Result<bool, PublishError> {
        let error = match self.publish_dead_letter(letter).await {
            Ok(_) => return Ok(true),
            Err(PublishError::TooLarge(error)) => error,
            Err(error) => return Err(error),
        };
        if letter.has_request_headers() {
            match self
                .publish_dead_letter(&letter.without_request_headers())
                .await
            {
                Ok(_) => {
                    tracing::warn!(id = %letter.id, %error, "a dead letter was too large for kafka with the request's headers; written without them");
                    return Ok(true);
                }
                Err(PublishError::TooLarge(_)) => {}
                Err(error) => return Err(error),
            }
        }
        tracing::error!(id = %letter.id, size = letter.raw.len(), %error, "a dead letter is too large for kafka; writing its size and digest only");
        self.publish_dead_letter(&letter.digest_only()).await?;
        Ok(false)
    }

    /// Writes `value` (or a tombstone) under `key` to `partition` of a compacted state topic
    /// and waits for the acknowledgement.
    pub async fn publish_state(
        &self,
        topic: &str,
        partition: i32,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<(), PublishError> {
        let mut record = FutureRecord::<str, [u8]>::to(topic)
            .key(key)
            .partition(partition);
        if let Some(value) = value {
            record = record.payload(value);
        }
        self.deliver(record).await.map(drop)
    }

    /// Writes input that was authenticated but not understood to the dead-letter topic.
    pub async fn publish_dead_letter(
        &self,
        letter: &DeadLetter<'_>,
    ) -> Result<Acknowledged, PublishError> {
        let topic = self.dead_letter_topic.as_str();
        let acknowledged = self
            .send(
                topic,
                &letter.id,
                letter.raw,
                letter.kafka_headers(),
                RecordKind::DeadLetter,
            )
            .await?;
        Ok(acknowledged)
    }

    /// Sends one event or dead letter and waits for its acknowledgement, counted by `kind`.
    /// librdkafka copies the record, so an owned `payload` (an envelope's JSON) is freed before
    /// the wait rather than held through it (3.7 KB per Linxo webhook in flight).
    async fn send(
        &self,
        topic: &str,
        key: &str,
        payload: impl AsRef<[u8]>,
        headers: OwnedHeaders,
        kind: RecordKind,
    ) -> Result<Acknowledged, PublishError> {
        let enqueued = self.enqueue(record(topic, key, payload.as_ref(), headers));
        drop(payload);
        let result = match enqueued {
            Ok(enqueued) => self.acknowledgement(enqueued).await,
            Err(error) => Err(error),
        };
        match result {
            Ok((acknowledged, elapsed)) => {
                self.metrics.kafka_acknowledged(kind, elapsed);
                Ok(acknowledged)
            }
            Err(error) => {
                self.metrics.publish_failed(kind, error.reason());
                Err(error)
            }
        }
    }

    /// Sends `record` and waits (up to the ack timeout) for the broker's acknowledgement.
    async fn deliver(
        &self,
        record: FutureRecord<'_, str, [u8]>,
    ) -> Result<(Acknowledged, Duration), PublishError> {
        let enqueued = self.enqueue(record)?;
        self.acknowledgement(enqueued).await
    }

    /// Hands `record` to librdkafka, which copies it: the caller's buffers may go at once.
    /// Refuses at once while Kafka is not ready; the acknowledgement latency counts from here.
    fn enqueue(&self, record: FutureRecord<'_, str, [u8]>) -> Result<Enqueued, PublishError> {
        if !self.health.is_ready() {
            return Err(PublishError::NotReady);
        }
        let started = Instant::now();
        // `send_result` never waits for queue space: a full local queue is an immediate 503,
        // which keeps memory bounded when the broker cannot keep up.
        let delivery = self.producer.with_current(|producer| {
            producer
                .send_result(record)
                .map_err(|(error, _record)| PublishError::from_kafka(error, started.elapsed()))
        })?;
        Ok(Enqueued { delivery, started })
    }

    /// Waits (up to the ack timeout) for the broker's acknowledgement of an enqueued record.
    async fn acknowledgement(
        &self,
        Enqueued { delivery, started }: Enqueued,
    ) -> Result<(Acknowledged, Duration), PublishError> {
        match tokio::time::timeout(self.ack_timeout, delivery).await {
            Err(_elapsed) => Err(PublishError::Timeout(self.ack_timeout)),
            Ok(Err(_canceled)) => Err(PublishError::Broker(KafkaError::Canceled)),
            Ok(Ok(Err((error, _message)))) => {
                Err(PublishError::from_kafka(error, started.elapsed()))
            }
            Ok(Ok(Ok(delivery))) => Ok((
                Acknowledged {
                    partition: delivery.partition,
                    offset: delivery.offset,
                },
                started.elapsed(),
            )),
        }
    }

    /// Waits up to `timeout` for every queued record to be delivered (at shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.current().flush(timeout)
    }
}
