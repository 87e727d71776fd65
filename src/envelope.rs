//! The envelope every consumer sees: a CloudEvents 1.0 event in structured JSON mode, with the
//! same attributes as `ce_*` Kafka headers (the CloudEvents Kafka protocol binding).
//!
//! docs/envelope.md is the consumer-facing description; schemas/envelope.schema.json is checked
//! against every envelope the tests produce.

use std::borrow::Cow;

use serde::Serialize;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::vocabulary::{EventFacts, EventType, Ingress, ProviderKind};

/// `content-type` of a structured-mode record.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json; charset=UTF-8";

/// Provider payloads are JSON, carried unchanged in `data`.
pub const DATA_CONTENT_TYPE: &str = "application/json";
pub const SPEC_VERSION: &str = "1.0";

/// Which attributes an envelope record copies into `ce_` headers (`kafka.attribute_headers`).
/// librdkafka allocates, writes and frees every header of every record on its own: about
/// 0.28 µs each on the benchmark machine, 5.5 µs for the 20 of a Linxo envelope against 41 µs
/// for producing the raw body alone (BENCHMARKS.md, eleventh pass).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttributeHeaders {
    /// Every attribute but `data` (the default).
    #[default]
    All,
    /// CloudEvents' required attributes only: `ce_specversion`, `ce_id`, `ce_source`, `ce_type`
    /// (with `content-type`). For consumers that read the value, as CloudEvents SDKs do in
    /// structured mode, and filter on no other header.
    Required,
}

/// Where an event came from: known before its body is read. Besides the request's headers
/// (which travel on their own), what a dead letter needs to be read again as it was (`finhook
/// redrive`) is here, so every letter made from an origin, wherever it is made, carries it.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub provider: ProviderKind,
    /// The configured source (webhook endpoint or poller) name.
    pub source_name: &'a str,
    pub ingress: Ingress,
    pub received_at: OffsetDateTime,
    /// A polled event's user: whose queue it came from.
    pub user_id: Option<&'a str>,
    /// The URL's event segment of a webhook posted to `/webhooks/<source>/<event>`.
    pub path_event: Option<&'a str>,
    /// For a webhook body its source splits into events: which part of the batch this is.
    pub batch: Option<BatchPart>,
}

/// The part of a batch webhook body an event or dead letter holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchPart {
    /// The whole body: it could not be split into its events.
    Whole,
    /// The event at this position of the batch (from 0), on its own.
    Event(usize),
}

impl<'a> Origin<'a> {
    /// An origin with no user, path event or batch part.
    pub fn new(
        provider: ProviderKind,
        source_name: &'a str,
        ingress: Ingress,
        received_at: OffsetDateTime,
    ) -> Self {
        Self {
            provider,
            source_name,
            ingress,
            received_at,
            user_id: None,
            path_event: None,
            batch: None,
        }
    }

    /// The CloudEvents `source`: provider and configured source, e.g. `finhook://bridge/main`.
    pub fn source_uri(&self) -> String {
        ["finhook://", self.provider.as_str(), "/", self.source_name].concat()
    }
}

/// A derived event id for providers without one: the same provider and bytes give the same id,
/// so a provider's retry of an event is recognisable downstream.
pub fn derived_id(provider: ProviderKind, raw: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(provider.as_str().as_bytes());
    hasher.update(b"\n");
    hasher.update(raw);
    lower_hex(&hasher.finalize())
}

/// `bytes` as lower-case hex. `hex::encode` builds its string a `char` at a time, which was a
/// visible part of a Bridge webhook's CPU (derived ids); this writes the bytes in one pass.
pub fn lower_hex(bytes: &[u8]) -> String {
    let mut text = vec![0; bytes.len() * 2];
    hex::encode_to_slice(bytes, &mut text).expect("the buffer holds two digits per byte");
    String::from_utf8(text).expect("hex digits are ASCII")
}

/// An id unique to one delivery of `raw`, for events whose bytes do not tell them from the
/// next (a test event, a notice with no id and no time, a polled event without an id): the
/// derived id of the bytes, the moment they were received, and, for a polled event, whose
/// queue it came from and its position in the page. A poll takes its events off the queue, so
/// nothing is delivered twice; equal bytes in one page (`{"name":"SYNC_STARTED"}` per channel)
/// must not share an id.
pub fn per_delivery_id(origin: &Origin<'_>, position: Option<usize>, raw: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(origin.provider.as_str().as_bytes());
    hasher.update(b"\n");
    hasher.update(origin.received_at.unix_timestamp_nanos().to_be_bytes());
    if let Some(user) = origin.user_id {
        hasher.update(user.as_bytes());
        hasher.update(b"\n");
    }
    if let Some(position) = position {
        hasher.update((position as u64).to_be_bytes());
    }
    hasher.update(raw);
    lower_hex(&hasher.finalize())
}

/// One CloudEvent. `data` borrows the provider's text: it is forwarded, never re-encoded.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope<'a> {
    pub specversion: &'static str,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<Timestamp>,
    pub datacontenttype: &'static str,
    pub provider: ProviderKind,
    pub providertype: String,
    pub ingress: Ingress,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connectionid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channelid: Option<String>,
    pub partitionkey: String,
    pub receivedtime: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accountcount: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accountstruncated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newtransactions: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub providerstatus: Option<String>,
    /// The personal-data policy applied to `data`, when one was (see [`crate::protection`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataprotection: Option<String>,
    /// The provider's payload, exactly as received; [`Envelope::to_json`] writes it last, on
    /// one line. Valid JSON by construction (see [`Envelope::new`]).
    #[serde(skip)]
    pub data: Cow<'a, str>,
    /// Not serialized: kept for routing and the lag metric.
    #[serde(skip)]
    pub canonical: EventType,
    #[serde(skip)]
    pub event_time: Option<OffsetDateTime>,
}

impl<'a> Envelope<'a> {
    /// Builds the envelope for one provider event whose exact bytes are `raw`. `data` is the
    /// same event as text, and must be valid JSON: the provider's normalizer parsed all of it
    /// (syntax) and the caller checked it is UTF-8, so it is not parsed a third time.
    pub fn new(origin: &Origin<'_>, facts: EventFacts, raw: &[u8], data: &'a str) -> Self {
        let id = match facts.provider_event_id {
            Some(id) => id,
            None if facts.unique_per_delivery => per_delivery_id(origin, None, raw),
            None => derived_id(origin.provider, raw),
        };
        let partitionkey = match facts
            .connection_id
            .as_deref()
            .or(facts.fallback_key.as_deref())
        {
            // `concat` allocates the exact length once; `format!` guesses from its literal
            // text (nothing when it starts with an argument), then grows.
            Some(key) => [origin.provider.as_str(), ":", key].concat(),
            None => [origin.provider.as_str(), ":event:", &id].concat(),
        };
        Envelope {
            specversion: SPEC_VERSION,
            source: origin.source_uri(),
            event_type: facts.event_type.as_str(),
            subject: facts.connection_id.clone(),
            // A provider's time the envelope cannot write (a year outside 0–9999 in UTC) is no
            // time: the event is still published.
            time: facts.time.and_then(Timestamp::new),
            datacontenttype: DATA_CONTENT_TYPE,
            provider: origin.provider,
            providertype: facts.provider_type,
            ingress: origin.ingress,
            connectionid: facts.connection_id,
            userid: facts.user_id,
            channelid: facts.channel_id,
            partitionkey,
            receivedtime: Timestamp::received(origin.received_at),
            reason: facts.reason,
            accountcount: facts.account_count,
            accountstruncated: facts.accounts_truncated,
            newtransactions: facts.new_transactions,
            providerstatus: facts.provider_status,
            dataprotection: None,
            data: Cow::Borrowed(data),
            canonical: facts.event_type,
            event_time: facts.time,
            id,
        }
    }

    /// The Kafka record value: the whole event as JSON, `data` last.
    pub fn to_json(&self) -> Vec<u8> {
        // Sized for the payload plus the attributes, so the buffer is allocated once.
        let mut buffer = Vec::with_capacity(self.data.len() + 1024);
        serde_json::to_writer(&mut buffer, self).expect("an envelope always serializes");
        // The attributes make an object `{...}`: reopen it and splice the payload in as it is.
        debug_assert_eq!(buffer.last(), Some(&b'}'));
        buffer.pop();
        buffer.extend_from_slice(b",\"data\":");
        extend_on_one_line(&mut buffer, self.data.as_bytes());
        buffer.push(b'}');
        buffer
    }

    /// Kafka headers, given one by one to `emit` (no intermediate allocation): `content-type`
    /// for structured mode, then the attributes `headers` asks for as `ce_<name>`, so consumers
    /// can filter without parsing the value: every one but `data`, or CloudEvents' required
    /// four (`specversion`, `id`, `source`, `type`). The value holds them all either way.
    pub fn each_kafka_header(
        &self,
        headers: AttributeHeaders,
        mut emit: impl FnMut(&'static str, &str),
    ) {
        emit("content-type", STRUCTURED_CONTENT_TYPE);
        emit("ce_specversion", self.specversion);
        emit("ce_id", &self.id);
        emit("ce_source", &self.source);
        emit("ce_type", self.event_type);
        if headers == AttributeHeaders::Required {
            return;
        }
        emit("ce_datacontenttype", self.datacontenttype);
        emit("ce_provider", self.provider.as_str());
        emit("ce_providertype", &self.providertype);
        emit("ce_ingress", self.ingress.as_str());
        emit("ce_partitionkey", &self.partitionkey);
        emit("ce_receivedtime", self.receivedtime.as_str());
        let optional = [
            ("ce_subject", self.subject.as_deref()),
            ("ce_time", self.time.as_ref().map(Timestamp::as_str)),
            ("ce_connectionid", self.connectionid.as_deref()),
            ("ce_userid", self.userid.as_deref()),
            ("ce_channelid", self.channelid.as_deref()),
            ("ce_reason", self.reason.as_deref()),
            ("ce_providerstatus", self.providerstatus.as_deref()),
            ("ce_dataprotection", self.dataprotection.as_deref()),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                emit(name, value);
            }
        }
        if let Some(count) = self.accountcount {
            emit("ce_accountcount", itoa::Buffer::new().format(count));
        }
        let flags = [
            ("ce_accountstruncated", self.accountstruncated),
            ("ce_newtransactions", self.newtransactions),
        ];
        for (name, flag) in flags {
            if let Some(flag) = flag {
                emit(name, if flag { "true" } else { "false" });
            }
        }
    }
}

/// Appends a JSON text to `buffer` on one line, which is what `tail`, `kcat` and log shippers
/// expect of a record: every line break becomes a space. JSON strings cannot hold a raw line
/// break, so each one is insignificant whitespace, and a space is whitespace too: the value, its
/// length and every other byte of the provider's payload stay as they were. (Removing all
/// insignificant whitespace instead cost a third of the CPU of a pretty-printed 25 KB webhook.)
fn extend_on_one_line(buffer: &mut Vec<u8>, json: &[u8]) {
    // One pass that copies and replaces, which the compiler vectorizes (no branch: the value is
    // selected). A copy then a pass over the copy read and wrote the payload twice, about 3 µs
    // on a 25 KB body; a search call per break (memchr2) cost about 1 µs per 2.7 KB webhook.
    buffer.extend(json.iter().map(|&byte| {
        let is_break = (byte == b'\n') | (byte == b'\r');
        if is_break {
            b' '
        } else {
            byte
        }
    }));
}

/// A time as RFC 3339 text in UTC, as CloudEvents `time` requires, kept inline: an envelope
/// carries one or two, and a `String` each was two allocations per event. The longest is 30
/// bytes (`2026-11-26T10:12:19.123456789Z`): four-digit years, nanoseconds at most.
#[derive(Clone)]
pub struct Timestamp {
    text: [u8; 32],
    len: u8,
}

impl Timestamp {
    /// `None` for a time RFC 3339 cannot write: a year outside 0–9999 once in UTC (a provider
    /// may send `0000-01-01T00:30:00+01:00`).
    pub fn new(time: OffsetDateTime) -> Option<Self> {
        let utc = time.checked_to_offset(time::UtcOffset::UTC)?;
        let mut text = [0; 32];
        let mut unwritten = &mut text[..];
        utc.format_into(&mut unwritten, &Rfc3339).ok()?;
        // Measured from what is left, not from `format_into`'s count, which time 0.3.55 gives
        // short for a time with a fraction of a second (21 of 30 bytes).
        let len = (32 - unwritten.len()) as u8;
        Some(Self { text, len })
    }

    /// When finhook received something: its own clock, always within RFC 3339's years.
    pub fn received(time: OffsetDateTime) -> Self {
        Self::new(time).expect("finhook's clock is within years 0-9999")
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text[..usize::from(self.len)]).expect("RFC 3339 is ASCII")
    }
}

impl std::fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_id_depends_on_provider_and_every_byte() {
        let one = derived_id(ProviderKind::new("bridge"), b"{}");
        assert_eq!(one, derived_id(ProviderKind::new("bridge"), b"{}"));
        assert_ne!(one, derived_id(ProviderKind::new("linxo"), b"{}"));
        assert_ne!(one, derived_id(ProviderKind::new("bridge"), b"{} "));
    }

    #[test]
    fn times_are_rfc3339_in_utc_to_the_nanosecond_shown() {
        let text = |time| Timestamp::new(time).unwrap().as_str().to_owned();
        let whole = OffsetDateTime::from_unix_timestamp(1_764_137_711).unwrap();
        assert_eq!(text(whole), "2025-11-26T06:15:11Z");
        let finest = whole + time::Duration::nanoseconds(123_456_789);
        assert_eq!(text(finest), "2025-11-26T06:15:11.123456789Z");
        let elsewhere = finest.to_offset(time::UtcOffset::from_hms(-5, 0, 0).unwrap());
        assert_eq!(text(elsewhere), "2025-11-26T06:15:11.123456789Z");
        // Kept inline: the longest text there is fits, and it is written as a JSON string.
        let latest = time::macros::datetime!(9999-12-31 23:59:59.999_999_999 UTC);
        assert_eq!(text(latest), "9999-12-31T23:59:59.999999999Z");
        assert_eq!(
            serde_json::to_string(&Timestamp::new(finest)).unwrap(),
            r#""2025-11-26T06:15:11.123456789Z""#
        );
        assert_eq!(
            format!("{:?}", Timestamp::new(whole).unwrap()),
            r#""2025-11-26T06:15:11Z""#
        );
        // Years RFC 3339 cannot write once in UTC are no time, not a panic.
        let offset = |hours| time::UtcOffset::from_hms(hours, 0, 0).unwrap();
        let before_year_0 = time::macros::datetime!(0000-01-01 00:30:00).assume_offset(offset(1));
        let after_9999 = time::macros::datetime!(9999-12-31 23:30:00).assume_offset(offset(-1));
        assert!(Timestamp::new(before_year_0).is_none());
        assert!(Timestamp::new(after_9999).is_none());
        let just_in = time::macros::datetime!(9999-12-31 22:30:00).assume_offset(offset(-1));
        assert_eq!(text(just_in), "9999-12-31T23:30:00Z");
        // An event with such a time keeps everything but the time.
        let mut facts = EventFacts::new(EventType::Unmapped, "x");
        facts.time = Some(before_year_0);
        let origin = Origin::new(ProviderKind::new("tink"), "t", Ingress::Webhook, whole);
        let envelope = Envelope::new(&origin, facts, b"{}", "{}");
        assert!(envelope.time.is_none());
        assert_eq!(envelope.receivedtime.as_str(), "2025-11-26T06:15:11Z");
    }

    #[test]
    fn derived_ids_are_the_lower_case_hex_of_the_sha256() {
        assert_eq!(
            derived_id(ProviderKind::new("bridge"), b"{}"),
            hex::encode(Sha256::digest(b"bridge\n{}"))
        );
        assert_eq!(lower_hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(lower_hex(&[]), "");
    }

    fn one_line(json: &[u8]) -> Vec<u8> {
        let mut line = b"{}".to_vec();
        extend_on_one_line(&mut line, json);
        assert_eq!(&line[..2], b"{}", "appended after what the buffer holds");
        line.split_off(2)
    }

    #[test]
    fn pretty_payloads_become_one_line_with_strings_untouched() {
        let pretty = "{\n  \"a\": \"x  y\\\" \\n\",\r\n  \"b\": [1, 2]\n}";
        let line = String::from_utf8(one_line(pretty.as_bytes())).unwrap();
        assert_eq!(line, "{   \"a\": \"x  y\\\" \\n\",    \"b\": [1, 2] }");
        let before: serde_json::Value = serde_json::from_str(pretty).unwrap();
        let after: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(before, after);
    }

    #[test]
    fn only_line_breaks_change_on_one_line() {
        let every_byte = one_line(&(0..=255).collect::<Vec<u8>>());
        assert_eq!(every_byte.len(), 256);
        for (value, byte) in every_byte.iter().enumerate() {
            let expected = if value == 10 || value == 13 {
                b' '
            } else {
                value as u8
            };
            assert_eq!(*byte, expected, "byte {value}");
        }
    }

    proptest::proptest! {
        #[test]
        fn one_line_keeps_the_value(
            value in proptest::collection::btree_map(
                "[ -~é\\\\\"\n\t]{0,12}",
                proptest::collection::vec(("[ -~é\\\\\"\t]{0,12}", proptest::arbitrary::any::<i32>()), 0..4),
                0..5,
            )
        ) {
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            let bytes = one_line(pretty.as_bytes());
            proptest::prop_assert!(!bytes.contains(&b'\n'));
            let before: serde_json::Value = serde_json::from_str(&pretty).unwrap();
            let after: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            proptest::prop_assert_eq!(before, after);
        }
    }

    #[test]
    fn the_payload_is_spliced_in_as_the_last_member() {
        let facts = EventFacts::new(EventType::Unmapped, "x");
        let origin = Origin::new(
            ProviderKind::new("linxo"),
            "l",
            Ingress::Webhook,
            OffsetDateTime::UNIX_EPOCH,
        );
        let envelope = Envelope::new(
            &origin,
            facts,
            b"[1, {\"k\": \"v\"}]",
            "[1, {\"k\": \"v\"}]",
        );
        let json: serde_json::Value = serde_json::from_slice(&envelope.to_json()).unwrap();
        assert_eq!(json["data"], serde_json::json!([1, {"k": "v"}]));
        assert_eq!(json["type"], "io.finhook.unmapped");
    }

    #[test]
    fn test_events_get_an_id_per_delivery() {
        let mut facts = EventFacts::new(EventType::Test, "TEST_EVENT");
        facts.unique_per_delivery = true;
        facts.fallback_key = Some("test".to_owned());
        let raw = "{}";
        let at = |seconds| {
            Origin::new(
                ProviderKind::new("bridge"),
                "b",
                Ingress::Webhook,
                OffsetDateTime::from_unix_timestamp(seconds).unwrap(),
            )
        };
        let first = Envelope::new(&at(1), facts.clone(), b"{}", raw);
        let second = Envelope::new(&at(2), facts, b"{}", raw);
        assert_ne!(first.id, second.id);
        assert_ne!(first.id, derived_id(ProviderKind::new("bridge"), b"{}"));
        assert_eq!(first.partitionkey, "bridge:test");
        assert_eq!(first.subject, None);
    }

    /// Consumers filter on the `ce_` headers without reading the value: each must be there,
    /// with the very text of its attribute in the JSON value, and no header without one.
    #[test]
    fn every_attribute_but_data_is_a_header_with_the_same_text() {
        let mut facts = EventFacts::new(EventType::ConnectionUpdated, "CONNECTIONS.UPDATED");
        facts.connection_id = Some("c1".to_owned());
        facts.time = Some(OffsetDateTime::UNIX_EPOCH + time::Duration::nanoseconds(5_000));
        facts.user_id = Some("u1".to_owned());
        facts.channel_id = Some("ch1".to_owned());
        facts.reason = Some("why".to_owned());
        facts.account_count = Some(3);
        facts.accounts_truncated = Some(false);
        facts.new_transactions = Some(true);
        facts.provider_status = Some("SUCCESS".to_owned());
        let received = OffsetDateTime::from_unix_timestamp(1_764_137_711).unwrap();
        let origin = Origin::new(ProviderKind::new("linxo"), "l", Ingress::Webhook, received);
        let mut envelope = Envelope::new(&origin, facts, b"{\"a\": 1}", "{\"a\": 1}");
        envelope.dataprotection = Some("default".to_owned());

        let mut headers = Vec::new();
        envelope.each_kafka_header(AttributeHeaders::All, |name, value| {
            headers.push((name, value.to_owned()))
        });
        assert_eq!(
            headers[0],
            ("content-type", STRUCTURED_CONTENT_TYPE.to_owned())
        );
        let emitted = headers.len() - 1;
        let headers: std::collections::BTreeMap<String, String> = headers[1..]
            .iter()
            .map(|(name, value)| {
                let attribute = name.strip_prefix("ce_").expect("a ce_ header");
                (attribute.to_owned(), value.clone())
            })
            .collect();
        assert_eq!(headers.len(), emitted, "no header twice");
        let serde_json::Value::Object(mut json) =
            serde_json::from_slice(&envelope.to_json()).expect("the value is JSON")
        else {
            panic!("the value is an object");
        };
        assert!(json.remove("data").is_some());
        let attributes: std::collections::BTreeMap<String, String> = json
            .into_iter()
            .map(|(name, value)| match value {
                serde_json::Value::String(text) => (name, text),
                other => (name, other.to_string()),
            })
            .collect();
        assert_eq!(headers, attributes);
        // Every optional attribute was set, so every header was exercised.
        assert_eq!(attributes.len(), 21, "{attributes:?}");
        assert_eq!(attributes["time"], "1970-01-01T00:00:00.000005Z");
        assert_eq!(attributes["accountcount"], "3");
    }

    #[test]
    fn every_type_shares_the_prefix_and_is_distinct() {
        let names: std::collections::HashSet<_> =
            EventType::ALL.iter().map(|kind| kind.as_str()).collect();
        assert_eq!(names.len(), EventType::ALL.len());
        assert!(names.iter().all(|name| name.starts_with("io.finhook.")));
    }
}
