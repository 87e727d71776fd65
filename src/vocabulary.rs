//! The shared vocabulary at the bottom of the crate: provider kinds, canonical event types,
//! what a provider reads out of an event, and how events arrive. Envelope, configuration,
//! providers, publishing and metrics all import it; it imports none of them.

use std::fmt;

use serde::{Serialize, Serializer};
use time::OffsetDateTime;

/// A provider's name: `kind` in a source's configuration, `provider` in the envelope, the prefix
/// of its Kafka keys and a metric label. The names that exist are the entries of
/// `providers::CATALOGUE`; this type only carries one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProviderKind(&'static str);

impl ProviderKind {
    /// For a provider's own `KIND` constant; a name is 1-32 characters of a-z, 0-9 and `_`.
    pub const fn new(name: &'static str) -> Self {
        Self(name)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for ProviderKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

/// What every canonical type starts with.
pub const PREFIX: &str = "io.finhook.";

/// Canonical, provider-neutral event types. All share the `io.finhook.` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    ConnectionCreated,
    ConnectionUpdated,
    ConnectionDeleted,
    ConnectionSyncSucceeded,
    ConnectionSyncFailed,
    ConnectionActionRequired,
    AccountCreated,
    AccountUpdated,
    AccountDeleted,
    UserCreated,
    UserDeleted,
    PaymentTransactionCreated,
    PaymentTransactionUpdated,
    PaymentLinkUpdated,
    PaymentTransferCreated,
    PaymentTransferUpdated,
    PaymentTransferAccountCreated,
    PaymentTransferAccountUpdated,
    Test,
    /// A provider event finhook has no canonical name for: still published, never dropped.
    Unmapped,
}

impl EventType {
    pub const ALL: [EventType; 20] = [
        EventType::ConnectionCreated,
        EventType::ConnectionUpdated,
        EventType::ConnectionDeleted,
        EventType::ConnectionSyncSucceeded,
        EventType::ConnectionSyncFailed,
        EventType::ConnectionActionRequired,
        EventType::AccountCreated,
        EventType::AccountUpdated,
        EventType::AccountDeleted,
        EventType::UserCreated,
        EventType::UserDeleted,
        EventType::PaymentTransactionCreated,
        EventType::PaymentTransactionUpdated,
        EventType::PaymentLinkUpdated,
        EventType::PaymentTransferCreated,
        EventType::PaymentTransferUpdated,
        EventType::PaymentTransferAccountCreated,
        EventType::PaymentTransferAccountUpdated,
        EventType::Test,
        EventType::Unmapped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ConnectionCreated => "io.finhook.connection.created",
            EventType::ConnectionUpdated => "io.finhook.connection.updated",
            EventType::ConnectionDeleted => "io.finhook.connection.deleted",
            EventType::ConnectionSyncSucceeded => "io.finhook.connection.sync.succeeded",
            EventType::ConnectionSyncFailed => "io.finhook.connection.sync.failed",
            EventType::ConnectionActionRequired => "io.finhook.connection.action_required",
            EventType::AccountCreated => "io.finhook.account.created",
            EventType::AccountUpdated => "io.finhook.account.updated",
            EventType::AccountDeleted => "io.finhook.account.deleted",
            EventType::UserCreated => "io.finhook.user.created",
            EventType::UserDeleted => "io.finhook.user.deleted",
            EventType::PaymentTransactionCreated => "io.finhook.payment.transaction.created",
            EventType::PaymentTransactionUpdated => "io.finhook.payment.transaction.updated",
            EventType::PaymentLinkUpdated => "io.finhook.payment.link.updated",
            EventType::PaymentTransferCreated => "io.finhook.payment.transfer.created",
            EventType::PaymentTransferUpdated => "io.finhook.payment.transfer.updated",
            EventType::PaymentTransferAccountCreated => {
                "io.finhook.payment.transfer_account.created"
            }
            EventType::PaymentTransferAccountUpdated => {
                "io.finhook.payment.transfer_account.updated"
            }
            EventType::Test => "io.finhook.test",
            EventType::Unmapped => "io.finhook.unmapped",
        }
    }

    /// The canonical type named without its prefix (`connection.sync.succeeded`), for senders
    /// that already speak finhook's vocabulary (Standard Webhooks sources).
    pub fn from_short_name(name: &str) -> Option<EventType> {
        EventType::ALL
            .into_iter()
            .find(|kind| kind.short_name() == name && *kind != EventType::Unmapped)
    }

    /// The type without its `io.finhook.` prefix.
    pub fn short_name(self) -> &'static str {
        self.as_str()
            .strip_prefix(PREFIX)
            .expect("every type has the prefix")
    }
}

/// How an event reached finhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ingress {
    Webhook,
    Queue,
}

impl Ingress {
    pub fn as_str(self) -> &'static str {
        match self {
            Ingress::Webhook => "webhook",
            Ingress::Queue => "queue",
        }
    }
}

/// What a provider reads out of one event; the envelope (`Envelope::new`) adds the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFacts {
    /// The provider's own event id, when it has one (Linxo does, Bridge does not).
    pub provider_event_id: Option<String>,
    pub event_type: EventType,
    /// The provider's name for the event, kept verbatim.
    pub provider_type: String,
    /// When the provider says the event happened.
    pub time: Option<OffsetDateTime>,
    pub connection_id: Option<String>,
    pub user_id: Option<String>,
    /// Linxo's `channel_definition_id`.
    pub channel_id: Option<String>,
    /// Ordering key for events without a connection, e.g. `user:<uuid>`.
    pub fallback_key: Option<String>,
    /// Why a sync failed or needs the user (a provider status code or name).
    pub reason: Option<String>,
    /// Linxo: accounts on the connection, and whether the event's list left them out (>100).
    pub account_count: Option<u64>,
    pub accounts_truncated: Option<bool>,
    /// Linxo: whether the synchronization brought new transactions.
    pub new_transactions: Option<bool>,
    /// The provider's status for what the event is about (Oxlin's `event_status`, a Linxo
    /// channel's status), verbatim.
    pub provider_status: Option<String>,
    /// The event's bytes do not tell it from the next one (a test delivery; a notice with no id
    /// and no time): its id is unique per delivery rather than derived from its bytes alone,
    /// so a deduplicating consumer does not drop the second. A retry then has an id of its own.
    pub unique_per_delivery: bool,
}

impl EventFacts {
    pub fn new(event_type: EventType, provider_type: impl Into<String>) -> Self {
        Self {
            provider_event_id: None,
            event_type,
            provider_type: provider_type.into(),
            time: None,
            connection_id: None,
            user_id: None,
            channel_id: None,
            fallback_key: None,
            reason: None,
            account_count: None,
            accounts_truncated: None,
            new_transactions: None,
            provider_status: None,
            unique_per_delivery: false,
        }
    }
}

/// Why an authenticated body could not be understood; it goes to the dead-letter topic.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NormalizeError {
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("body is not a JSON object")]
    NotAnObject,
    #[error("required field `{0}` is missing or has the wrong type")]
    MissingField(&'static str),
    #[error("a batch of {0} events, more than the {max} finhook splits", max = MAX_BATCH_EVENTS)]
    TooManyEvents(usize),
}

/// Events one webhook body may hold. Each becomes an item (an envelope, or a dead letter with
/// a copy of the request's headers) before the first is published: a larger batch is kept whole
/// on the dead-letter topic instead, so that one body cannot take memory without bound.
pub const MAX_BATCH_EVENTS: usize = 1000;

impl NormalizeError {
    /// A metric label and dead-letter header value from a fixed set.
    pub fn reason_code(&self) -> &'static str {
        match self {
            NormalizeError::InvalidJson(_) => "invalid_json",
            NormalizeError::NotAnObject => "not_an_object",
            NormalizeError::MissingField(_) => "missing_field",
            NormalizeError::TooManyEvents(_) => "too_many_events",
        }
    }

    pub const REASON_CODES: [&'static str; 4] = [
        "invalid_json",
        "not_an_object",
        "missing_field",
        "too_many_events",
    ];
    /// Turns a serde error into the right variant. Provider structs read every field leniently
    /// (see `providers::id_string` and `providers::text`), so a data error can only mean the top level is not an
    /// object. Serde's syntax messages give a position, never the input's values.
    pub(crate) fn from_serde(error: serde_json::Error) -> Self {
        if error.is_data() {
            NormalizeError::NotAnObject
        } else {
            NormalizeError::InvalidJson(error.to_string())
        }
    }
}

/// A [`EventFacts::fallback_key`] for events about `id` of a kind (`user`, `payment`, ...):
/// `kind:id`, allocated once at its exact length.
pub fn fallback_key(kind: &str, id: &str) -> String {
    [kind, ":", id].concat()
}
