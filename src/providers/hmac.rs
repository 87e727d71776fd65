//! Generic HMAC sources (`kind = "hmac"`): any sender that signs with a shared secret, described
//! by configuration alone — GitHub (`X-Hub-Signature-256: sha256=<hex>` over the body), Shopify
//! (`X-Shopify-Hmac-Sha256: <base64>`), Stripe (`Stripe-Signature: t=…,v1=…` over `t.body`)
//! and the like. The scheme is an [`HmacScheme`]; the event's type, id, connection and time are
//! read from configured JSON paths or headers. docs/providers.md has the three examples.

use std::str::FromStr;
use std::time::Duration;

use http::HeaderName;
use serde::{Deserialize, Serialize};

use super::{
    at, parse_value, text_at, time_of, BuildContext, EventFacts, NormalizeError, Provider,
    ProviderKind,
};
use crate::auth::hmac::{Algorithm, Encoding, HmacScheme, Layout, Template, TimestampSource};
use crate::auth::{Verified, Verify};
use crate::secret::Secret;
use crate::vocabulary::EventType;

pub struct GenericHmac;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacSettings {
    /// The header carrying the signature(s), e.g. `X-Hub-Signature-256`. Required.
    #[serde(default)]
    pub header: String,
    /// `sha256` (default), `sha512`, or `sha1` for legacy senders.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// `hex` (default; either case accepted), `hex_upper` (the same, signing upper-case) or
    /// `base64`.
    #[serde(default)]
    pub encoding: Encoding,
    /// Written before each signature, e.g. `sha256=`; stripped before decoding.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// When set, the header is comma-separated `key=value` pairs (Stripe, Tink) and the
    /// signatures are the values under this key (e.g. `v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_key: Option<String>,
    /// With `signature_key`: the key of the signed timestamp pair (e.g. `t`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_key: Option<String>,
    /// A header carrying the signed timestamp (Unix seconds), when it is not in the pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// The signed content: `{body}` (default), or with `{timestamp}` and `{header:Name}`
    /// placeholders, e.g. `{timestamp}.{body}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_content: Option<String>,
    /// How far a signed timestamp may be from finhook's clock, either way (default 5m).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub tolerance: Option<Duration>,
    /// The event type: a header (e.g. `X-GitHub-Event`) or a JSON path (default `type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type_path: Option<String>,
    /// The sender's event id, kept for deduplication: a header (e.g. `X-GitHub-Delivery`) or a
    /// JSON path (e.g. `id`). Without one the id is derived from the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id_path: Option<String>,
    /// JSON path of the connection (ordering) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id_path: Option<String>,
    /// JSON path of the event time (RFC 3339 text, or Unix seconds or milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_path: Option<String>,
    /// For senders that batch: the top-level member holding an array of events (e.g.
    /// `events`), or `.` for a body that is itself an array. Each event is published on its own,
    /// read with the paths above relative to the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_path: Option<String>,
}

const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

impl HmacSettings {
    /// The scheme these settings describe, or what is wrong with them.
    pub fn scheme(&self, keys: Vec<Vec<u8>>) -> Result<HmacScheme, String> {
        let header = HeaderName::from_str(self.header.trim())
            .map_err(|_| "header: must be a header name".to_owned())?;
        if self.signature_key.is_some() && !self.prefix.is_empty() {
            return Err("prefix: not used with signature_key (pairs carry no prefix)".into());
        }
        let layout = match (&self.signature_key, &self.timestamp_key) {
            (Some(signature_key), timestamp_key) => Layout::Pairs {
                signature_key: signature_key.clone(),
                timestamp_key: timestamp_key.clone().unwrap_or_default(),
            },
            (None, Some(_)) => return Err("timestamp_key: only used with signature_key".into()),
            (None, None) => Layout::List {
                separator: ',',
                prefix: self.prefix.clone(),
            },
        };
        let timestamp = match (&self.timestamp_header, &self.timestamp_key) {
            (Some(_), Some(_)) => {
                return Err("give timestamp_header or timestamp_key, not both".into())
            }
            (Some(name), None) => TimestampSource::Header(
                HeaderName::from_str(name.trim())
                    .map_err(|_| "timestamp_header: must be a header name".to_owned())?,
            ),
            (None, Some(_)) => TimestampSource::Pair,
            (None, None) => TimestampSource::None,
        };
        let content: Template = match &self.signed_content {
            Some(template) => template
                .parse()
                .map_err(|problem| format!("signed_content: {problem}"))?,
            None if timestamp != TimestampSource::None => "{timestamp}.{body}".parse()?,
            None => Template::body_only(),
        };
        if content.uses_timestamp() && timestamp == TimestampSource::None {
            return Err(
                "signed_content: {timestamp} needs timestamp_header or timestamp_key".into(),
            );
        }
        // A timestamp checked but not signed bounds no replay: a replay gives a fresh one.
        let timestamp_signed = content.uses_timestamp()
            || matches!(&timestamp, TimestampSource::Header(name) if content.signs_header(name));
        if timestamp != TimestampSource::None && !timestamp_signed {
            return Err(
                "signed_content: must sign the timestamp ({timestamp}), or it bounds no replay"
                    .into(),
            );
        }
        Ok(HmacScheme {
            header,
            layout,
            algorithm: self.algorithm,
            encoding: self.encoding,
            content,
            timestamp,
            tolerance: self.tolerance.unwrap_or(DEFAULT_TOLERANCE),
            keys,
        })
    }
}

impl Provider for GenericHmac {
    const KIND: ProviderKind = ProviderKind::new("hmac");
    const VERIFICATION: &'static str = "HMAC (SHA-256/512/1) of a configured content template, hex or base64, in a configured header, optional signed timestamp ±tolerance";
    type Settings = HmacSettings;

    fn validate(settings: &HmacSettings, key: &str, has_secret: bool, problems: &mut Vec<String>) {
        if settings.header.trim().is_empty() {
            problems.push(format!(
                "{key}.header: required (the signature header's name)"
            ));
        } else if let Err(problem) = settings.scheme(Vec::new()) {
            problems.push(format!("{key}.{problem}"));
        }
        if !has_secret {
            problems.push(format!(
                "{key}.secret: an hmac source needs its shared secret"
            ));
        }
        if settings.event_type_header.is_some() && settings.event_type_path.is_some() {
            problems.push(format!(
                "{key}: give event_type_header or event_type_path, not both"
            ));
        }
        if settings.event_id_header.is_some() && settings.event_id_path.is_some() {
            problems.push(format!(
                "{key}: give event_id_header or event_id_path, not both"
            ));
        }
        // A header names one id for the whole request: every event of a batch would share it,
        // and consumers deduplicating on (source, id) would keep only the first.
        if settings.event_id_header.is_some() && settings.events_path.is_some() {
            problems.push(format!(
                "{key}: event_id_header gives every event of a batch (events_path) the same id; use event_id_path, or neither (ids derived from each event's bytes)"
            ));
        }
    }

    fn verifier(
        settings: &HmacSettings,
        secrets: Vec<Secret>,
        _: &BuildContext,
    ) -> Result<Box<dyn Verify>, String> {
        let keys = secrets
            .iter()
            .map(|secret| secret.expose().as_bytes().to_vec())
            .collect();
        Ok(Box::new(settings.scheme(keys)?))
    }

    fn split_webhook<'b>(
        settings: &HmacSettings,
        body: &Verified<'b>,
    ) -> Option<Result<Vec<&'b [u8]>, NormalizeError>> {
        let path = settings.events_path.as_deref()?;
        Some(split_batch(body.body(), path))
    }

    fn read(settings: &HmacSettings, body: &Verified<'_>) -> Result<EventFacts, NormalizeError> {
        let value = parse_value(body.body())?;
        let provider_type = match &settings.event_type_header {
            Some(header) => body.header(header).map(str::to_owned),
            None => text_at(
                &value,
                settings.event_type_path.as_deref().unwrap_or("type"),
            ),
        }
        .ok_or(NormalizeError::MissingField("type"))?;
        let mut facts = EventFacts::new(EventType::Unmapped, provider_type);
        facts.provider_event_id = match (&settings.event_id_header, &settings.event_id_path) {
            (Some(header), _) => body.header(header).map(str::to_owned),
            (None, Some(path)) => text_at(&value, path),
            (None, None) => None,
        };
        facts.connection_id = settings
            .connection_id_path
            .as_deref()
            .and_then(|path| text_at(&value, path));
        facts.time = settings
            .time_path
            .as_deref()
            .and_then(|path| time_of(at(&value, path)));
        Ok(facts)
    }
}

/// The events of a batch body: the array at the top-level member `path` (or the body itself
/// for `.`), each element as its exact bytes.
fn split_batch<'b>(body: &'b [u8], path: &str) -> Result<Vec<&'b [u8]>, NormalizeError> {
    use serde_json::value::RawValue;
    let array: &'b RawValue = if path == "." {
        serde_json::from_slice(body).map_err(NormalizeError::from_serde)?
    } else {
        let members: std::collections::HashMap<std::borrow::Cow<'b, str>, &'b RawValue> =
            super::parse_object(body)?;
        members
            .get(path)
            .copied()
            .ok_or(NormalizeError::MissingField("events (events_path)"))?
    };
    let events: Vec<&'b RawValue> = serde_json::from_str(array.get())
        .map_err(|_| NormalizeError::MissingField("events (events_path)"))?;
    Ok(events
        .into_iter()
        .map(|event| event.get().as_bytes())
        .collect())
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;

    fn settings(toml_text: &str) -> HmacSettings {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn github_shopify_and_stripe_are_configuration_only() {
        for (text, expected_layout) in [
            (
                r#"header = "X-Hub-Signature-256"
                   prefix = "sha256=""#,
                "List",
            ),
            (
                r#"header = "X-Shopify-Hmac-Sha256"
                   encoding = "base64""#,
                "List",
            ),
            (
                r#"header = "Stripe-Signature"
                   signature_key = "v1"
                   timestamp_key = "t""#,
                "Pairs",
            ),
        ] {
            let scheme = settings(text).scheme(vec![b"k".to_vec()]).unwrap();
            assert!(
                format!("{:?}", scheme.layout).starts_with(expected_layout),
                "{text}"
            );
        }
        let stripe = settings(
            r#"header = "Stripe-Signature"
               signature_key = "v1"
               timestamp_key = "t""#,
        )
        .scheme(vec![])
        .unwrap();
        assert_eq!(stripe.content.to_string(), "{timestamp}.{body}");
    }

    #[test]
    fn batches_split_into_their_events_byte_for_byte() {
        let body = br#"{"sent_at": 1, "events": [{"type":"a"}, {"type": "b", "x": [1, 2]}]}"#;
        let events = split_batch(body, "events").unwrap();
        assert_eq!(
            events,
            [&br#"{"type":"a"}"#[..], br#"{"type": "b", "x": [1, 2]}"#]
        );
        assert_eq!(split_batch(br#"[{"type":"a"}]"#, ".").unwrap().len(), 1);
        assert_eq!(
            split_batch(br#"{"other": []}"#, "events"),
            Err(NormalizeError::MissingField("events (events_path)"))
        );
        assert_eq!(
            split_batch(br#"{"events": {"type": "a"}}"#, "events"),
            Err(NormalizeError::MissingField("events (events_path)"))
        );
        assert!(split_batch(b"{not json", "events").is_err());
    }

    #[test]
    fn inconsistent_settings_are_named() {
        let mut problems = Vec::new();
        for text in [
            r#"header = "X-Sig"
               signed_content = "{timestamp}.{body}""#,
            r#"header = "X-Sig"
               timestamp_key = "t""#,
            r#"header = "bad header""#,
            r#"prefix = "sha256=""#,
            r#"header = "X-Sig"
               events_path = "events"
               event_id_header = "X-Delivery""#,
            r#"header = "X-Unsigned"
               timestamp_header = "X-Time"
               signed_content = "{body}""#,
        ] {
            GenericHmac::validate(&settings(text), "sources.h", true, &mut problems);
        }
        let text = problems.join("\n");
        assert!(
            text.contains("sources.h.signed_content: {timestamp} needs"),
            "{text}"
        );
        assert!(
            text.contains("sources.h.timestamp_key: only used with"),
            "{text}"
        );
        assert!(
            text.contains("sources.h.header: must be a header name"),
            "{text}"
        );
        assert!(text.contains("sources.h.header: required"), "{text}");
        assert!(
            text.contains("sources.h: event_id_header gives every event of a batch"),
            "{text}"
        );
        assert!(
            text.contains("sources.h.signed_content: must sign the timestamp"),
            "{text}"
        );
        // Signed through the header itself, the timestamp bounds replays too.
        let mut signed_header = Vec::new();
        let text = r#"header = "X-Sig"
               timestamp_header = "X-Time"
               signed_content = "{header:X-Time}.{body}""#;
        GenericHmac::validate(&settings(text), "sources.h", true, &mut signed_header);
        assert_eq!(signed_header, Vec::<String>::new());
        let mut batch_with_paths = Vec::new();
        let text = r#"header = "X-Sig"
               events_path = "events"
               event_id_path = "id""#;
        GenericHmac::validate(&settings(text), "sources.h", true, &mut batch_with_paths);
        assert_eq!(batch_with_paths, Vec::<String>::new());
    }

    #[test]
    fn empty_header_values_are_no_value() {
        let github = settings(
            r#"header = "X-Hub-Signature-256"
               event_type_header = "X-GitHub-Event"
               event_id_header = "X-GitHub-Delivery""#,
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-github-event", "push".parse().unwrap());
        headers.insert("x-github-delivery", "".parse().unwrap());
        let facts = GenericHmac::read(&github, &Verified::assume(b"{}", &headers)).unwrap();
        assert_eq!(
            facts.provider_event_id, None,
            "derived from the bytes instead"
        );
        headers.insert("x-github-event", "".parse().unwrap());
        assert_eq!(
            GenericHmac::read(&github, &Verified::assume(b"{}", &headers)),
            Err(NormalizeError::MissingField("type"))
        );
    }

    #[test]
    fn fields_come_from_headers_or_paths() {
        let github = settings(
            r#"header = "X-Hub-Signature-256"
               event_type_header = "X-GitHub-Event"
               event_id_header = "X-GitHub-Delivery"
               connection_id_path = "repository.id""#,
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-github-event", "push".parse().unwrap());
        headers.insert("x-github-delivery", "d-1".parse().unwrap());
        let body = br#"{"repository":{"id":42}}"#;
        let facts = GenericHmac::read(&github, &Verified::assume(body, &headers)).unwrap();
        assert_eq!(facts.provider_type, "push");
        assert_eq!(facts.provider_event_id.as_deref(), Some("d-1"));
        assert_eq!(facts.connection_id.as_deref(), Some("42"));
        assert_eq!(facts.event_type, EventType::Unmapped);

        let stripe = settings(
            r#"header = "Stripe-Signature"
               event_id_path = "id"
               time_path = "created"
               connection_id_path = "data.object.customer""#,
        );
        let body = br#"{"id":"evt_1","type":"invoice.paid","created":1700000000,"data":{"object":{"customer":"cus_9"}}}"#;
        let facts = GenericHmac::read(&stripe, &Verified::assume(body, &HeaderMap::new())).unwrap();
        assert_eq!(facts.provider_type, "invoice.paid");
        assert_eq!(facts.provider_event_id.as_deref(), Some("evt_1"));
        assert_eq!(facts.connection_id.as_deref(), Some("cus_9"));
        assert_eq!(facts.time.unwrap().unix_timestamp(), 1_700_000_000);
        assert_eq!(
            GenericHmac::read(&stripe, &Verified::assume(b"{}", &HeaderMap::new())),
            Err(NormalizeError::MissingField("type"))
        );
    }
}
