//! Providers: one file per aggregator, each turning its raw events into [`EventFacts`].
//!
//! Adding a provider means its own file here, a variant of [`ProviderKind`], one arm in
//! [`normalize_webhook`], its fixtures and its configuration.

pub mod bridge;
mod lenient;
pub mod linxo;

pub(crate) use self::lenient::{boolean, count, id_string, list, number, object, text};

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use serde_json::value::RawValue;

use crate::envelope::{Envelope, EventType, Origin};

/// The kinds of webhook source finhook understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Bridge,
    Linxo,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 2] = [ProviderKind::Bridge, ProviderKind::Linxo];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Bridge => "bridge",
            ProviderKind::Linxo => "linxo",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a provider reads out of one event; [`crate::envelope::Envelope::new`] adds the rest.
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
    /// The event is a test delivery: its id is unique per delivery rather than derived from
    /// its bytes alone, so a deduplicating consumer does not drop the second test.
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
}

impl NormalizeError {
    /// A metric label and dead-letter header value from a fixed set.
    pub fn reason_code(&self) -> &'static str {
        match self {
            NormalizeError::InvalidJson(_) => "invalid_json",
            NormalizeError::NotAnObject => "not_an_object",
            NormalizeError::MissingField(_) => "missing_field",
        }
    }

    pub const REASON_CODES: [&'static str; 3] = ["invalid_json", "not_an_object", "missing_field"];
    /// Turns a serde error into the right variant. Provider structs read every field leniently
    /// (see [`id_string`], [`text`]), so a data error can only mean the top level is not an
    /// object. Serde's syntax messages give a position, never the input's values.
    pub(crate) fn from_serde(error: serde_json::Error) -> Self {
        if error.is_data() {
            NormalizeError::NotAnObject
        } else {
            NormalizeError::InvalidJson(error.to_string())
        }
    }
}

/// Parses a JSON object into a provider struct. Serde would read a JSON array into a struct by
/// position, so the top level is checked to be an object first.
pub(crate) fn parse_object<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, NormalizeError> {
    let starts_as_object = body
        .iter()
        .find(|byte| !byte.is_ascii_whitespace())
        .is_some_and(|byte| *byte == b'{');
    if !starts_as_object {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => Err(NormalizeError::NotAnObject),
            Err(error) => Err(NormalizeError::InvalidJson(error.to_string())),
        };
    }
    serde_json::from_slice(body).map_err(NormalizeError::from_serde)
}

/// Reads a webhook body from a source of `kind`.
pub fn normalize_webhook(kind: ProviderKind, body: &[u8]) -> Result<EventFacts, NormalizeError> {
    match kind {
        ProviderKind::Bridge => bridge::normalize(body),
        ProviderKind::Linxo => linxo::normalize(body),
    }
}

/// Reads a webhook body into its envelope: `data` borrows `body`, unchanged.
pub fn webhook_envelope<'a>(
    origin: &Origin<'_>,
    body: &'a [u8],
) -> Result<Envelope<'a>, NormalizeError> {
    let facts = normalize_webhook(origin.provider, body)?;
    // The normalizer parsed all of the body, so its syntax is valid JSON; serde_json does not
    // check the UTF-8 of strings it skips, so that is checked here, once, at memory speed.
    let data = std::str::from_utf8(body)
        .map_err(|error| NormalizeError::InvalidJson(format!("not UTF-8: {error}")))?;
    Ok(Envelope::new(origin, facts, body, data))
}

/// Reads one event of an Oxlin queue page into its envelope. The poller knows the user whose
/// queue it polls: it is the envelope's `userid`, and the ordering key of events that name no
/// connection.
pub fn queue_envelope<'a>(
    origin: &Origin<'_>,
    raw: &'a RawValue,
    user_id: &str,
) -> Result<Envelope<'a>, NormalizeError> {
    let bytes = raw.get().as_bytes();
    let mut facts = linxo::normalize_queue_event(bytes)?;
    facts.user_id = Some(user_id.to_owned());
    facts.fallback_key = Some(format!("user:{user_id}"));
    Ok(Envelope::new(origin, facts, bytes, raw.get()))
}

/// Splits an Oxlin queue page into its events: a top-level array, or an object holding an
/// `events` array (other fields ignored). Each event stays raw, for its envelope or dead letter.
pub fn split_queue_page(body: &[u8]) -> Result<Vec<&RawValue>, NormalizeError> {
    #[derive(Deserialize)]
    struct Wrapped<'a> {
        #[serde(borrow)]
        events: Vec<&'a RawValue>,
    }
    let first = body.iter().find(|byte| !byte.is_ascii_whitespace());
    match first {
        Some(b'[') => serde_json::from_slice(body).map_err(NormalizeError::from_serde),
        Some(b'{') => {
            let wrapped: Wrapped<'_> = serde_json::from_slice(body).map_err(|error| {
                if error.is_data() {
                    NormalizeError::MissingField("events")
                } else {
                    NormalizeError::InvalidJson(error.to_string())
                }
            })?;
            Ok(wrapped.events)
        }
        _ => match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => Err(NormalizeError::NotAnObject),
            Err(error) => Err(NormalizeError::InvalidJson(error.to_string())),
        },
    }
}

/// Provider timestamps are Unix seconds, or milliseconds (Bridge's events, but not its test
/// event): anything past year 33658 in seconds is read as milliseconds.
pub(crate) fn unix_time(value: f64) -> Option<OffsetDateTime> {
    const MILLISECONDS_THRESHOLD: f64 = 1e12;
    if !value.is_finite() {
        return None;
    }
    // Whole microseconds: exact in an f64 for any real timestamp, so 1612782588323 ms prints
    // as .323 and not as .323000064.
    let micros_per_unit = if value.abs() >= MILLISECONDS_THRESHOLD {
        1e3
    } else {
        1e6
    };
    let micros = (value * micros_per_unit).round() as i128;
    let time = OffsetDateTime::from_unix_timestamp_nanos(micros.checked_mul(1000)?).ok()?;
    // RFC 3339 (CloudEvents `time`) has four-digit years: anything else is not a real event time.
    (0..=9999).contains(&time.year()).then_some(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_time_reads_seconds_and_milliseconds_alike() {
        let seconds = unix_time(1_611_681_789.0).unwrap();
        let millis = unix_time(1_611_681_789_000.0).unwrap();
        assert_eq!(seconds, millis);
        assert_eq!(seconds.unix_timestamp(), 1_611_681_789);
        let precise = unix_time(1_612_782_588_323.0).unwrap();
        assert_eq!(precise.millisecond(), 323);
    }

    #[test]
    fn unix_time_refuses_the_unrepresentable() {
        assert_eq!(unix_time(f64::INFINITY), None);
        assert_eq!(unix_time(1e300), None);
        // Year -1199: representable, but not in RFC 3339.
        assert_eq!(unix_time(-1e11), None);
        assert_eq!(unix_time(-1e11 * 1000.0), None);
    }
}
