//! The one ingest path, free of HTTP types: an event read by its provider becomes an envelope
//! or, when it cannot be read, a dead letter ([`item`]); either is then delivered to Kafka
//! ([`deliver`]). Webhooks and polled queue pages both go through these two functions.

use std::borrow::Cow;

use http::HeaderMap;

use crate::auth::{self, AuthError, Request, Verified};
use crate::envelope::{BatchPart, Envelope, Origin};
use crate::metrics::Metrics;
use crate::protection::Policy;
use crate::publish::{DeadLetter, Delivered, PublishError, Publisher, Routing, RECORD_TOO_LARGE};
use crate::sources::{Source, Sources};
use crate::vocabulary::{EventFacts, Ingress, NormalizeError, MAX_BATCH_EVENTS};

/// What happened to an accepted webhook; both are answered 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// The envelope is on Kafka.
    Published { id: String },
    /// Not understood; the raw body is on the dead-letter topic.
    DeadLettered { id: String, reason: &'static str },
    /// A batch body: every event is on Kafka, on its topic or (`dead_lettered` of them) on the
    /// dead-letter topic; `ids` in the body's order.
    Batch {
        ids: Vec<String>,
        dead_lettered: usize,
    },
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

/// One event on its way to Kafka: its envelope (with the bytes it was made from, for the
/// dead-letter topic should Kafka refuse it), or a dead letter when it could not be read.
pub enum Item<'a> {
    Event {
        envelope: Box<Envelope<'a>>,
        origin: Origin<'a>,
        raw: &'a [u8],
    },
    DeadLetter(DeadLetter<'a>),
}

impl Item<'_> {
    /// The envelope id, or the dead letter's.
    pub fn id(&self) -> &str {
        match self {
            Item::Event { envelope, .. } => &envelope.id,
            Item::DeadLetter(letter) => &letter.id,
        }
    }

    /// The id, moved out (the answer to a webhook carries it).
    pub fn into_id(self) -> String {
        match self {
            Item::Event { envelope, .. } => envelope.id,
            Item::DeadLetter(letter) => letter.id,
        }
    }

    /// What orders it: the envelope's partition key, or the dead letter's own id.
    pub fn ordering_key(&self) -> &str {
        match self {
            Item::Event { envelope, .. } => &envelope.partitionkey,
            Item::DeadLetter(letter) => &letter.id,
        }
    }
}

/// Builds the item for one event whose exact bytes are `raw`, from what its provider read out
/// of them. `headers` are the request's (kept on a dead letter, credentials removed).
pub fn item<'a>(
    origin: &Origin<'a>,
    facts: Result<EventFacts, NormalizeError>,
    raw: &'a [u8],
    headers: &HeaderMap,
) -> Item<'a> {
    match envelope(origin, facts, raw) {
        Ok(envelope) => Item::Event {
            envelope: Box::new(envelope),
            origin: *origin,
            raw,
        },
        Err(error) => {
            let reason = error.reason_code();
            let letter = DeadLetter::new(*origin, reason, error.to_string(), raw, headers);
            tracing::warn!(source = %origin.source_name, reason, %error, id = %letter.id, "event dead-lettered");
            Item::DeadLetter(letter)
        }
    }
}

/// Applies `policy` (a source's personal-data protection) to an item's envelope. A payload that
/// cannot be protected is not published as it is: it becomes a dead letter.
pub fn protect<'a>(item: Item<'a>, policy: Option<&Policy>, headers: &HeaderMap) -> Item<'a> {
    let Some(policy) = policy else {
        return item;
    };
    match item {
        Item::Event {
            mut envelope,
            origin,
            raw,
        } => match policy.apply(&envelope.data) {
            Ok(protected) => {
                envelope.data = Cow::Owned(protected);
                envelope.dataprotection = Some(policy.name.clone());
                Item::Event {
                    envelope,
                    origin,
                    raw,
                }
            }
            Err(error) => {
                let error = NormalizeError::InvalidJson(error.to_string());
                let reason = error.reason_code();
                tracing::warn!(source = %origin.source_name, reason, %error, "event dead-lettered: its payload cannot be protected");
                Item::DeadLetter(DeadLetter::new(
                    origin,
                    reason,
                    error.to_string(),
                    raw,
                    headers,
                ))
            }
        },
        dead_letter => dead_letter,
    }
}

/// The envelope of one event whose exact bytes are `raw`, or why it has none.
pub fn envelope<'a>(
    origin: &Origin<'_>,
    facts: Result<EventFacts, NormalizeError>,
    raw: &'a [u8],
) -> Result<Envelope<'a>, NormalizeError> {
    // The provider parsed all of the event, so its syntax is valid JSON. Its UTF-8 is checked
    // here whatever the reader did (the envelope needs the text); for readers that went
    // through `providers::parse_object` this second pass cannot fail and costs about 80 ns
    // on a 2.7 KB body.
    let facts = facts?;
    let data = std::str::from_utf8(raw)
        .map_err(|error| NormalizeError::InvalidJson(format!("not UTF-8: {error}")))?;
    Ok(Envelope::new(origin, facts, raw, data))
}

/// Reads `body` as `origin.provider` with that provider's default settings, then builds its
/// envelope: for tests, benches and tools that hold bytes but no configured source.
pub fn envelope_with_defaults<'a>(
    origin: &Origin<'_>,
    body: &'a [u8],
    headers: &HeaderMap,
) -> Result<Envelope<'a>, NormalizeError> {
    let facts = crate::providers::read_with_defaults(
        origin.provider,
        &crate::auth::Verified::assume(body, headers),
    );
    envelope(origin, facts, body)
}

/// Puts an item on Kafka: the envelope on its topic (diverted to the dead-letter topic if Kafka
/// refuses it for good), or the dead letter. Counts dead letters under `label` (the source or
/// poller name). Only retryable failures come back as errors.
pub async fn deliver(
    publisher: &Publisher,
    metrics: &Metrics,
    label: &str,
    item: &Item<'_>,
    headers: &HeaderMap,
) -> Result<Delivered, PublishError> {
    let delivered = match item {
        Item::Event {
            envelope,
            origin,
            raw,
        } => {
            publisher
                .publish_or_divert(envelope, *origin, raw, headers)
                .await?
        }
        // Boxed: the dead-letter path's state would otherwise enlarge every event's future.
        Item::DeadLetter(letter) => {
            match Box::pin(publisher.publish_dead_letter_or_digest(letter)).await? {
                true => Delivered::DeadLettered {
                    reason: letter.reason,
                },
                false => Delivered::DigestOnly,
            }
        }
    };
    match delivered {
        Delivered::Event => {}
        Delivered::DeadLettered { reason } => metrics.dead_lettered(label, reason),
        Delivered::DigestOnly => metrics.dead_lettered(label, RECORD_TOO_LARGE),
    }
    Ok(delivered)
}

/// Handles one webhook body whose request head already passed
/// [`Source::authenticate_request`]: verify, read, deliver.
pub async fn ingest_webhook(
    publisher: &Publisher,
    metrics: &Metrics,
    sources: &Sources,
    source: &Source,
    request: &Request<'_>,
) -> Result<Ingested, IngestError> {
    let verified = auth::verify(source.verifier(), request).await?;
    let origin = Origin {
        path_event: request.path_event,
        ..Origin::new(
            source.kind,
            &source.name,
            Ingress::Webhook,
            request.received_at,
        )
    };
    let items = match read_body(source, &verified, &origin, Unsplittable::DeadLetter) {
        BodyItems::One(item) => {
            let policy = policy_for(publisher, sources, source, &item);
            let item = protect(item, policy, verified.headers());
            return finish_one(publisher, metrics, source, request, item).await;
        }
        BodyItems::Batch(items) => items,
    };
    // A batch: each event on its own. A retryable failure answers 503 and the sender retries
    // the whole batch: the events already published come again with the same ids, which
    // consumers deduplicate.
    let items: Vec<Item<'_>> = items
        .into_iter()
        .map(|item| {
            let policy = policy_for(publisher, sources, source, &item);
            protect(item, policy, verified.headers())
        })
        .collect();
    let delivered =
        deliver_batch(publisher, metrics, &source.name, &items, request.headers).await?;
    let mut dead_lettered = 0;
    let mut too_large = None;
    for (item, delivered) in items.iter().zip(delivered) {
        match delivered {
            Delivered::Event => {}
            Delivered::DeadLettered { .. } => dead_lettered += 1,
            // Only its size and digest are stored: the event itself is not, and the answer must
            // say so as it does for a single event (413), not "accepted".
            Delivered::DigestOnly => {
                too_large.get_or_insert_with(|| item.id().to_owned());
            }
        }
    }
    if let Some(id) = too_large {
        return Err(IngestError::TooLargeForKafka { id });
    }
    let ids = items.iter().map(|item| item.id().to_owned()).collect();
    Ok(Ingested::Batch { ids, dead_lettered })
}

/// Delivers a batch's items all at once; returns how each went, in the items' order, or the
/// first retryable failure. The records are handed to librdkafka in the body's order (each
/// delivery's first poll goes as far as `send_result`, and `join_all` first polls them in
/// order), and the idempotent producer keeps that order within a partition, so one
/// connection's events land in the body's order without waiting for each other: the batch
/// waits about one acknowledgement, each at most `kafka.ack_timeout` (then, for a refused one,
/// its dead letter's).
async fn deliver_batch(
    publisher: &Publisher,
    metrics: &Metrics,
    label: &str,
    items: &[Item<'_>],
    headers: &HeaderMap,
) -> Result<Vec<Delivered>, PublishError> {
    let deliveries = items
        .iter()
        .map(|item| deliver(publisher, metrics, label, item, headers));
    futures::future::join_all(deliveries)
        .await
        .into_iter()
        .collect()
}

/// What a verified webhook body holds, read: one item, or a batch's items in the body's order.
// One item, the webhook hot path, stays unboxed: it is moved once, a box would be an allocation
// per webhook.
#[allow(clippy::large_enum_variant)]
pub enum BodyItems<'a> {
    One(Item<'a>),
    Batch(Vec<Item<'a>>),
}

impl<'a> BodyItems<'a> {
    pub fn into_items(self) -> Vec<Item<'a>> {
        match self {
            BodyItems::One(item) => vec![item],
            BodyItems::Batch(items) => items,
        }
    }
}

/// How [`read_body`] takes a body its source takes batches of but cannot split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsplittable {
    /// One dead letter holding all of it, marked [`BatchPart::Whole`] so that `finhook
    /// redrive` splits it again rather than read it as one event: live traffic.
    DeadLetter,
    /// One event: a dead letter written before finhook marked batch parts, which may hold one
    /// event of a batch (such an event does not split as a batch).
    OneEvent,
}

/// Reads a verified webhook body as its source does: split into its events when the source
/// takes batches, each read on its own and its origin saying which part of the batch it is;
/// otherwise one event. Live traffic and `finhook redrive` both read bodies here.
pub fn read_body<'a>(
    source: &Source,
    verified: &Verified<'a>,
    origin: &Origin<'a>,
    unsplittable: Unsplittable,
) -> BodyItems<'a> {
    let headers = verified.headers();
    let whole = |facts| item(origin, facts, verified.body(), headers);
    let split = source.split(verified).map(|events| {
        events.and_then(|events| match events.len() {
            count if count > MAX_BATCH_EVENTS => Err(NormalizeError::TooManyEvents(count)),
            _ => Ok(events),
        })
    });
    match split {
        None => BodyItems::One(whole(source.read(verified))),
        Some(Ok(events)) => BodyItems::Batch(
            events
                .into_iter()
                .enumerate()
                .map(|(index, raw)| {
                    let origin = Origin {
                        batch: Some(BatchPart::Event(index)),
                        ..*origin
                    };
                    item(&origin, source.read(&verified.part(raw)), raw, headers)
                })
                .collect(),
        ),
        Some(Err(error)) => match unsplittable {
            Unsplittable::DeadLetter => {
                let origin = Origin {
                    batch: Some(BatchPart::Whole),
                    ..*origin
                };
                BodyItems::One(item(&origin, Err(error), verified.body(), headers))
            }
            Unsplittable::OneEvent => BodyItems::One(whole(source.read(verified))),
        },
    }
}

/// The protection an event gets: its route's policy when the route names one, else its
/// source's.
pub fn policy_for<'s>(
    publisher: &Publisher,
    sources: &'s Sources,
    source: &'s Source,
    item: &Item<'_>,
) -> Option<&'s Policy> {
    choose_policy(
        publisher.routing(),
        |name| sources.policy(name).map(|policy| policy.as_ref()),
        source.protection.as_deref(),
        item,
    )
}

/// The route's policy (looked up by `by_name`) when the item's route names one, else
/// `fallback` (its source's or poller's).
pub fn choose_policy<'p>(
    routing: &Routing,
    by_name: impl Fn(&str) -> Option<&'p Policy>,
    fallback: Option<&'p Policy>,
    item: &Item<'_>,
) -> Option<&'p Policy> {
    if let Item::Event { envelope, .. } = item {
        if let Some(name) = routing.protect_for(envelope.canonical, envelope.provider) {
            return by_name(name);
        }
    }
    fallback
}

/// Delivers the one item of a webhook and says how it went.
async fn finish_one(
    publisher: &Publisher,
    metrics: &Metrics,
    source: &Source,
    request: &Request<'_>,
    item: Item<'_>,
) -> Result<Ingested, IngestError> {
    let delivered = deliver(publisher, metrics, &source.name, &item, request.headers).await?;
    let id = item.into_id();
    match delivered {
        Delivered::Event => Ok(Ingested::Published { id }),
        Delivered::DeadLettered { reason } => Ok(Ingested::DeadLettered { id, reason }),
        Delivered::DigestOnly => Err(IngestError::TooLargeForKafka { id }),
    }
}
