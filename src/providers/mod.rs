//! Providers: one file per aggregator or signature family, each a [`Provider`]: its settings
//! (the keys of its `[sources.<name>]` table), its verifier, and how it reads an event out of a
//! verified body. [`CATALOGUE`] lists them; the webhook path, configuration, envelope schema,
//! metrics and docs take the names from it. (The Oxlin poller names Linxo, whose queues it
//! polls: a polled provider is a provider with a queue reader, [`Provider::read_queue_page`].)
//!
//! # Adding a provider
//!
//! 1. Write `src/providers/<name>.rs`: a unit struct implementing [`Provider`]. A body holds one
//!    event unless the provider splits it ([`Provider::split_webhook`], e.g. the generic HMAC
//!    provider's `events_path`); a polled provider reads queue pages
//!    ([`Provider::read_queue_page`]). Pick the verification from [`crate::auth`]
//!    (credentials, [`crate::auth::hmac::HmacScheme`], Standard Webhooks, a
//!    [`crate::auth::keys::KeyCache`] for fetched keys) rather than writing a new one; read the body leniently (the streaming readers of `lenient.rs` for hot paths,
//!    or [`parse_value`] and `text_at` by path) so a field of an unexpected type is absent, not
//!    fatal; map the provider's event names to
//!    canonical [`EventType`]s, and keep unknown names as [`EventType::Unmapped`]. Say in the
//!    doc comment which facts are confirmed by the provider's documentation and which inferred.
//! 2. Add one line to [`CATALOGUE`].
//! 3. Add fixtures under `tests/fixtures/<name>/` (with `requests.json` for headers or a URL
//!    event) and their golden envelopes (`UPDATE_GOLDEN=1 cargo test --test normalizers`).
//! 4. Document it: a commented example in `config/default.toml` and a row and section in
//!    `docs/providers.md`.
//! 5. In `tests/api/providers.rs`, a `[sources.<name>]` in `sources_toml` (a shared-secret
//!    provider is then signed through its verifier) or, for an asymmetric one, an arm in
//!    `Providers::sign`.
//!
//! The tests iterate the catalogue, so a provider missing any of these fails them.
//!
//! The envelope schema, the configuration's `kind`, the metric labels and `finhook providers`
//! take the names from the catalogue.

pub mod bridge;
pub mod hmac;
mod lenient;
pub mod linxo;
pub mod plaid;
pub mod powens;
pub mod saltedge;
pub mod standard;
pub mod tink;
pub mod truelayer;

pub(crate) use self::lenient::{boolean, count, id_string, list, number, object, text};

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::auth::{Verified, Verify};
use crate::secret::Secret;
pub use crate::vocabulary::{EventFacts, EventType, NormalizeError, ProviderKind};

/// Every provider finhook knows, one line each.
pub static CATALOGUE: &[&dyn Entry] = &[
    &Registered::<bridge::Bridge>(PhantomData),
    &Registered::<linxo::Linxo>(PhantomData),
    &Registered::<standard::Standard>(PhantomData),
    &Registered::<hmac::GenericHmac>(PhantomData),
    &Registered::<tink::Tink>(PhantomData),
    &Registered::<plaid::Plaid>(PhantomData),
    &Registered::<truelayer::TrueLayer>(PhantomData),
    &Registered::<saltedge::SaltEdge>(PhantomData),
    &Registered::<powens::Powens>(PhantomData),
];

/// What finhook gives a provider when it builds a source's verifier.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The shared HTTP client for key fetches, with finhook's timeouts.
    pub http: reqwest::Client,
}

impl BuildContext {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(10))
            // A key URL is allow-listed as it is: a redirect would make it "wherever it points",
            // and a redirected Plaid key request would carry the API secret elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("finhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a rustls client with timeouts always builds");
        Self { http }
    }
}

impl Default for BuildContext {
    fn default() -> Self {
        Self::new()
    }
}

/// One provider: what its sources are configured with, how their requests are verified, and
/// how an event is read out of a verified body.
pub trait Provider: 'static {
    /// `kind` in configuration, `provider` in the envelope, the prefix of its Kafka keys.
    const KIND: ProviderKind;
    /// How requests are verified, in a few words (docs/providers.md, `finhook providers`).
    const VERIFICATION: &'static str;
    /// Whether its sources also take `POST /webhooks/<source>/<event>`, for providers that
    /// register one URL per event kind. Others answer such a path 404.
    const PATH_EVENTS: bool = false;
    /// The keys of a source's table besides the common ones (`kind`, `secret`,
    /// `previous_secret` and their `_file` forms, `allowed_ips`, `body_limit_bytes`,
    /// `client_cert_required`, `client_cert_names`). Unknown keys must be refused
    /// (`#[serde(deny_unknown_fields)]`) and `None`s skipped when serializing.
    type Settings: DeserializeOwned + Serialize + fmt::Debug + Clone + Default + Send + Sync;

    /// Checks the settings without IO; every problem names its key under `key`.
    /// `has_secret`: whether the source gives `secret` or `secret_file`.
    fn validate(settings: &Self::Settings, key: &str, has_secret: bool, problems: &mut Vec<String>);

    /// Builds the verifier from valid settings and the source's secrets (current first).
    fn verifier(
        settings: &Self::Settings,
        secrets: Vec<Secret>,
        context: &BuildContext,
    ) -> Result<Box<dyn Verify>, String>;

    /// Reads the event a verified webhook body holds.
    fn read(settings: &Self::Settings, body: &Verified<'_>) -> Result<EventFacts, NormalizeError>;

    /// Providers whose webhook bodies may hold several events (a batch): each event's exact
    /// bytes, every one then read by [`Provider::read`] on its own. `None` (the default): the
    /// body is one event.
    fn split_webhook<'b>(
        _settings: &Self::Settings,
        _body: &Verified<'b>,
    ) -> Option<Result<Vec<&'b [u8]>, NormalizeError>> {
        None
    }

    /// Polled providers only: the events of one queue page fetched for `user_id`, each with
    /// its exact bytes and what was read of it. `None` (the default): no queues.
    fn read_queue_page<'p>(
        _settings: &Self::Settings,
        _page: &'p [u8],
        _user_id: &str,
    ) -> Option<QueuePage<'p>> {
        None
    }
}

/// The events of a queue page, each with its bytes and what its provider read of it; or why the
/// page as a whole cannot be read.
pub type QueuePage<'p> = Result<Vec<QueueEvent<'p>>, NormalizeError>;
pub type QueueEvent<'p> = (&'p [u8], Result<EventFacts, NormalizeError>);

/// A provider in the catalogue, with its type erased.
pub trait Entry: Sync {
    fn kind(&self) -> ProviderKind;
    fn verification(&self) -> &'static str;
    /// Reads a source's provider-specific keys.
    fn settings(&self, table: serde_json::Value) -> Result<Arc<dyn Settings>, String>;
    /// The settings every key left out gives (for tests, benches and tools that read bodies
    /// without a configured source).
    fn default_settings(&self) -> Arc<dyn Settings>;
}

/// A source's provider-specific settings, with the provider's functions bound to them.
pub trait Settings: fmt::Debug + Send + Sync {
    fn kind(&self) -> ProviderKind;
    fn takes_path_events(&self) -> bool;
    fn validate(&self, key: &str, has_secret: bool, problems: &mut Vec<String>);
    fn verifier(
        &self,
        secrets: Vec<Secret>,
        context: &BuildContext,
    ) -> Result<Box<dyn Verify>, String>;
    fn read(&self, body: &Verified<'_>) -> Result<EventFacts, NormalizeError>;
    fn read_queue_page<'p>(&self, page: &'p [u8], user_id: &str) -> Option<QueuePage<'p>>;
    fn split_webhook<'b>(
        &self,
        body: &Verified<'b>,
    ) -> Option<Result<Vec<&'b [u8]>, NormalizeError>>;
    /// The settings as configuration keys (secrets redacted), for `check-config`.
    fn to_json(&self) -> serde_json::Value;
}

struct Registered<P>(PhantomData<fn() -> P>);

impl<P: Provider> Entry for Registered<P> {
    fn kind(&self) -> ProviderKind {
        P::KIND
    }

    fn verification(&self) -> &'static str {
        P::VERIFICATION
    }

    fn settings(&self, table: serde_json::Value) -> Result<Arc<dyn Settings>, String> {
        let settings: P::Settings =
            serde_json::from_value(table).map_err(|error| error.to_string())?;
        Ok(Arc::new(Typed::<P>(settings)))
    }

    fn default_settings(&self) -> Arc<dyn Settings> {
        Arc::new(Typed::<P>(P::Settings::default()))
    }
}

struct Typed<P: Provider>(P::Settings);

impl<P: Provider> fmt::Debug for Typed<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<P: Provider> Settings for Typed<P> {
    fn kind(&self) -> ProviderKind {
        P::KIND
    }

    fn takes_path_events(&self) -> bool {
        P::PATH_EVENTS
    }

    fn validate(&self, key: &str, has_secret: bool, problems: &mut Vec<String>) {
        P::validate(&self.0, key, has_secret, problems)
    }

    fn verifier(
        &self,
        secrets: Vec<Secret>,
        context: &BuildContext,
    ) -> Result<Box<dyn Verify>, String> {
        P::verifier(&self.0, secrets, context)
    }

    fn read(&self, body: &Verified<'_>) -> Result<EventFacts, NormalizeError> {
        P::read(&self.0, body)
    }

    fn read_queue_page<'p>(&self, page: &'p [u8], user_id: &str) -> Option<QueuePage<'p>> {
        P::read_queue_page(&self.0, page, user_id)
    }

    fn split_webhook<'b>(
        &self,
        body: &Verified<'b>,
    ) -> Option<Result<Vec<&'b [u8]>, NormalizeError>> {
        P::split_webhook(&self.0, body)
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.0).unwrap_or(serde_json::Value::Null)
    }
}

/// Key servers are reached over HTTPS; plain HTTP only on loopback (tests, a local proxy).
pub(crate) fn check_key_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|_| "not a URL".to_owned())?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(address)) => address.is_loopback(),
        Some(url::Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err("must be an https URL (http only on loopback)".to_owned()),
    }
}

/// The catalogue's entry for `name`.
pub fn entry(name: &str) -> Option<&'static dyn Entry> {
    CATALOGUE
        .iter()
        .copied()
        .find(|entry| entry.kind().as_str() == name)
}

/// Every provider's kind, in catalogue order.
pub fn kinds() -> impl Iterator<Item = ProviderKind> {
    CATALOGUE.iter().map(|entry| entry.kind())
}

/// A provider name in configuration (`kind`, a route's `provider`) must be in the catalogue.
impl<'de> Deserialize<'de> for ProviderKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        entry(&name).map(|entry| entry.kind()).ok_or_else(|| {
            let known: Vec<&str> = kinds().map(ProviderKind::as_str).collect();
            serde::de::Error::custom(format!(
                "unknown provider `{name}`; one of {}",
                known.join(", ")
            ))
        })
    }
}

/// Reads a body as `kind` with default settings: for tests, benches and tools.
pub fn read_with_defaults(
    kind: ProviderKind,
    body: &Verified<'_>,
) -> Result<EventFacts, NormalizeError> {
    entry(kind.as_str())
        .expect("a ProviderKind names a catalogue entry")
        .default_settings()
        .read(body)
}

/// Parses a JSON object into a provider struct. Serde would read a JSON array into a struct by
/// position, so the top level is checked to be an object first.
///
/// JSON text is UTF-8 (RFC 8259). The whole body is checked in one pass at memory speed and then
/// read as a `str`: read from bytes, serde_json checked each string it read, every key
/// included, one call at a time, which took about 1 µs of a Linxo webhook under load.
pub(crate) fn parse_object<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, NormalizeError> {
    let text = std::str::from_utf8(body)
        .map_err(|error| NormalizeError::InvalidJson(format!("not UTF-8: {error}")))?;
    let starts_as_object = body
        .iter()
        .find(|byte| !byte.is_ascii_whitespace())
        .is_some_and(|byte| *byte == b'{');
    if !starts_as_object {
        return match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => Err(NormalizeError::NotAnObject),
            Err(error) => Err(NormalizeError::InvalidJson(error.to_string())),
        };
    }
    serde_json::from_str(text).map_err(NormalizeError::from_serde)
}

/// Parses a body whose top level must be an object into a JSON value, for providers that read
/// fields by path (Standard Webhooks, generic HMAC, Tink, Plaid, TrueLayer, Salt Edge, Powens).
/// These bodies are small; the Bridge and Linxo readers stream instead.
pub fn parse_value(body: &[u8]) -> Result<serde_json::Value, NormalizeError> {
    let value: serde_json::Map<String, serde_json::Value> = parse_object(body)?;
    Ok(serde_json::Value::Object(value))
}

/// The value at a dotted path (`data.object.id`, `accounts.0.id`), if any.
pub fn at<'v>(value: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    path.split('.')
        .filter(|segment| !segment.is_empty())
        .try_fold(value, |current, segment| match current {
            serde_json::Value::Object(map) => map.get(segment),
            serde_json::Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
            _ => None,
        })
}

/// A string (non-empty) or integer at `path`, as text: ids are either, depending on the provider.
pub(crate) fn text_at(value: &serde_json::Value, path: &str) -> Option<String> {
    match at(value, path)? {
        serde_json::Value::String(text) if !text.is_empty() => Some(text.clone()),
        serde_json::Value::Number(number) if number.is_i64() || number.is_u64() => {
            Some(number.to_string())
        }
        _ => None,
    }
}

/// A time written as RFC 3339 text or as Unix seconds or milliseconds.
pub(crate) fn time_of(value: Option<&serde_json::Value>) -> Option<OffsetDateTime> {
    match value? {
        serde_json::Value::String(text) => {
            OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
        }
        serde_json::Value::Number(number) => number.as_f64().and_then(unix_time),
        _ => None,
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

    #[test]
    fn an_object_with_invalid_utf8_anywhere_is_not_json() {
        #[derive(Deserialize, Debug)]
        struct Named<'a> {
            #[serde(borrow)]
            name: std::borrow::Cow<'a, str>,
        }
        let read: Named<'_> =
            parse_object(b" {\"name\":\"Caf\\u00e9 \xc3\xa9\",\"skipped\":\"x\"}").unwrap();
        assert_eq!(read.name, "Caf\u{e9} \u{e9}");
        // Invalid UTF-8 in a value serde_json would skip, and in a key it would match: both are
        // refused as not JSON, naming the cause.
        for body in [
            &b"{\"name\":\"a\",\"skipped\":\"\xff\"}"[..],
            &b"{\"na\xc3me\":\"a\"}"[..],
            &b"\xff{}"[..],
        ] {
            match parse_object::<Named<'_>>(body) {
                Err(NormalizeError::InvalidJson(message)) => {
                    assert!(message.starts_with("not UTF-8"), "{message}")
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            parse_object::<Named<'_>>(b" [1]"),
            Err(NormalizeError::NotAnObject)
        ));
    }
}
