//! Dead-letter records: authenticated input finhook could not understand, kept byte for byte.
//!
//! Each is a CloudEvent in *binary* mode: the Kafka value is the raw body as received, the
//! attributes are `ce_*` headers (`ce_type = io.finhook.deadletter`, `ce_reason`, ...), and the
//! request's headers follow as `http_<name>`, credentials removed.

use rdkafka::message::{Header, OwnedHeaders};
use sha2::{Digest, Sha256};

use crate::envelope::{derived_id, lower_hex, BatchPart, Origin, Timestamp, SPEC_VERSION};

pub const DEAD_LETTER_TYPE: &str = "io.finhook.deadletter";

/// Request headers never copied to the dead-letter topic: they carry credentials.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "x-auth-token",
];

#[derive(Debug)]
pub struct DeadLetter<'a> {
    pub id: String,
    pub origin: Origin<'a>,
    /// A code from a fixed set (`invalid_json`, `missing_field`, ...).
    pub reason: &'static str,
    /// What exactly was wrong, without input values.
    pub detail: String,
    pub raw: &'a [u8],
    /// The request's headers, credentials already removed.
    pub request_headers: Vec<(String, Vec<u8>)>,
    /// The request's content type, carried as the record's `content-type`.
    pub content_type: Option<String>,
    /// Set when `raw` is left out because it is too large for Kafka: the original body's size
    /// and SHA-256 (hex), so an operator can match it with the provider's records.
    pub omitted_body: Option<(usize, String)>,
}

impl<'a> DeadLetter<'a> {
    pub fn new(
        origin: Origin<'a>,
        reason: &'static str,
        detail: String,
        raw: &'a [u8],
        headers: &http::HeaderMap,
    ) -> Self {
        let request_headers = headers
            .iter()
            .filter(|(name, _)| !is_credential_header(name.as_str()))
            .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
            .collect();
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .filter(|content_type| !is_cloudevents_content_type(content_type))
            .map(str::to_owned);
        Self {
            id: derived_id(origin.provider, raw),
            origin,
            reason,
            detail,
            raw,
            request_headers,
            content_type,
            omitted_body: None,
        }
    }

    /// Whether the letter carries the request's headers (webhooks; a polled event has none).
    pub fn has_request_headers(&self) -> bool {
        !self.request_headers.is_empty()
    }

    /// The same letter without the request's headers (they may be what did not fit).
    pub fn without_request_headers(&self) -> DeadLetter<'a> {
        DeadLetter {
            id: self.id.clone(),
            origin: self.origin,
            reason: self.reason,
            detail: self.detail.clone(),
            raw: self.raw,
            request_headers: Vec::new(),
            content_type: self.content_type.clone(),
            omitted_body: None,
        }
    }

    /// The same letter without its body or the request's headers: attributes, the body's
    /// size and its digest only.
    pub fn digest_only(&self) -> DeadLetter<'a> {
        DeadLetter {
            raw: &[],
            omitted_body: Some((self.raw.len(), lower_hex(&Sha256::digest(self.raw)))),
            ..self.without_request_headers()
        }
    }

    pub fn kafka_headers(&self) -> OwnedHeaders {
        let source = self.origin.source_uri();
        let received = Timestamp::received(self.origin.received_at);
        let attributes = [
            ("ce_specversion", SPEC_VERSION),
            ("ce_id", self.id.as_str()),
            ("ce_source", source.as_str()),
            ("ce_type", DEAD_LETTER_TYPE),
            ("ce_time", received.as_str()),
            ("ce_provider", self.origin.provider.as_str()),
            ("ce_ingress", self.origin.ingress.as_str()),
            ("ce_reason", self.reason),
            ("ce_reasondetail", self.detail.as_str()),
        ];
        // Beside the attributes and request headers: at most the body's size and digest, four
        // context headers and the content type.
        let mut headers =
            OwnedHeaders::new_with_capacity(attributes.len() + self.request_headers.len() + 7);
        for (key, value) in attributes {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        if let Some((size, digest)) = &self.omitted_body {
            headers = headers
                .insert(Header {
                    key: "ce_bodysize",
                    value: Some(size.to_string().as_bytes()),
                })
                .insert(Header {
                    key: "ce_bodysha256",
                    value: Some(digest.as_bytes()),
                });
        }
        // What `finhook redrive` needs to read the bytes again as they were read: whose queue,
        // which URL, which part of a batch.
        let batch_index = match self.origin.batch {
            Some(BatchPart::Event(index)) => Some(index.to_string()),
            _ => None,
        };
        let context = [
            ("ce_userid", self.origin.user_id),
            ("ce_pathevent", self.origin.path_event),
            ("ce_batch", self.origin.batch.map(batch_attribute)),
            ("ce_batchindex", batch_index.as_deref()),
        ];
        for (key, value) in context {
            if let Some(value) = value {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                });
            }
        }
        if let Some(content_type) = &self.content_type {
            headers = headers.insert(Header {
                key: "content-type",
                value: Some(content_type.as_bytes()),
            });
        }
        for (name, value) in &self.request_headers {
            headers = headers.insert(Header {
                key: &format!("http_{name}"),
                value: Some(value.as_slice()),
            });
        }
        headers
    }
}

/// Whether a content type is CloudEvents' structured mode. A letter is binary mode (its `ce_`
/// headers say what it is): with this `content-type`, CloudEvents SDKs would read the raw
/// input as the event itself. The request's own value is still in `http_content-type`.
fn is_cloudevents_content_type(content_type: &str) -> bool {
    let media_type = content_type.trim_start().as_bytes();
    let prefix = b"application/cloudevents";
    media_type.len() >= prefix.len() && media_type[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// `ce_batch` of a letter of a source that takes batches: `whole` (a body that could not be
/// split into its events) or `event` (one event of it, its position in `ce_batchindex`).
fn batch_attribute(part: BatchPart) -> &'static str {
    match part {
        BatchPart::Whole => "whole",
        BatchPart::Event(_) => "event",
    }
}

/// The batch part a letter's `ce_batch` and `ce_batchindex` name, as
/// [`DeadLetter::kafka_headers`] writes them; `None` for a letter of no batch, or one written
/// before finhook marked batch parts. (The position only informs: a missing one reads as 0.)
pub fn batch_part(batch: Option<&str>, index: Option<&str>) -> Option<BatchPart> {
    match batch? {
        "whole" => Some(BatchPart::Whole),
        "event" => {
            let index = index.and_then(|index| index.parse().ok()).unwrap_or(0);
            Some(BatchPart::Event(index))
        }
        _ => None,
    }
}

pub fn is_credential_header(name: &str) -> bool {
    CREDENTIAL_HEADERS
        .iter()
        .any(|credential| credential.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Headers;
    use time::OffsetDateTime;

    use super::*;
    use crate::vocabulary::{Ingress, ProviderKind};

    /// The letter's context headers (who, which URL, which part of a batch), in order.
    fn context_headers(letter: &DeadLetter<'_>) -> Vec<(String, String)> {
        const CONTEXT: [&str; 4] = ["ce_userid", "ce_pathevent", "ce_batch", "ce_batchindex"];
        let headers = letter.kafka_headers();
        headers
            .iter()
            .filter(|header| CONTEXT.contains(&header.key))
            .map(|header| {
                let value = String::from_utf8_lossy(header.value.unwrap_or_default());
                (header.key.to_owned(), value.into_owned())
            })
            .collect()
    }

    #[test]
    fn a_structured_mode_content_type_is_not_the_letters_own() {
        let origin = Origin::new(
            ProviderKind::new("hmac"),
            "relay",
            Ingress::Webhook,
            OffsetDateTime::UNIX_EPOCH,
        );
        let content_type_of = |value: &'static str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::CONTENT_TYPE, value.parse().unwrap());
            let letter = DeadLetter::new(origin, "invalid_json", String::new(), b"{", &headers);
            let kafka_headers = letter.kafka_headers();
            let value = |key: &str| {
                let header = kafka_headers.iter().find(|header| header.key == key)?;
                Some(String::from_utf8(header.value?.to_vec()).unwrap())
            };
            (value("content-type"), value("http_content-type"))
        };
        assert_eq!(
            content_type_of("application/json"),
            (
                Some("application/json".into()),
                Some("application/json".into())
            )
        );
        let structured = "Application/CloudEvents+json; charset=UTF-8";
        assert_eq!(
            content_type_of(structured),
            (None, Some(structured.into())),
            "kept only as the request's header"
        );
    }

    #[test]
    fn a_letter_carries_what_its_origin_knows_of_where_its_bytes_came_from() {
        let plain = Origin::new(
            ProviderKind::new("hmac"),
            "relay",
            Ingress::Webhook,
            OffsetDateTime::UNIX_EPOCH,
        );
        let letter = |origin| {
            DeadLetter::new(
                origin,
                "invalid_json",
                String::new(),
                b"{",
                &http::HeaderMap::new(),
            )
        };
        assert!(context_headers(&letter(plain)).is_empty());

        let event = Origin {
            path_event: Some("payment"),
            batch: Some(BatchPart::Event(2)),
            ..plain
        };
        let expected = [
            ("ce_pathevent", "payment"),
            ("ce_batch", "event"),
            ("ce_batchindex", "2"),
        ]
        .map(|(key, value)| (key.to_owned(), value.to_owned()));
        assert_eq!(context_headers(&letter(event)), expected);
        // Also when the body is left out.
        assert_eq!(context_headers(&letter(event).digest_only()), expected);

        let whole = Origin {
            batch: Some(BatchPart::Whole),
            ..plain
        };
        assert_eq!(
            context_headers(&letter(whole)),
            [("ce_batch".to_owned(), "whole".to_owned())]
        );
        // What redrive reads back is what was written.
        for part in [BatchPart::Whole, BatchPart::Event(0), BatchPart::Event(7)] {
            let headers = context_headers(&letter(Origin {
                batch: Some(part),
                ..plain
            }));
            let value = |name: &str| {
                let found = headers.iter().find(|(key, _)| key == name);
                found.map(|(_, value)| value.as_str())
            };
            assert_eq!(
                batch_part(value("ce_batch"), value("ce_batchindex")),
                Some(part)
            );
        }
        assert_eq!(batch_part(None, None), None);
        assert_eq!(batch_part(Some("later"), None), None);
        let queue = Origin {
            ingress: Ingress::Queue,
            user_id: Some("u1"),
            ..plain
        };
        assert_eq!(
            context_headers(&letter(queue)),
            [("ce_userid".to_owned(), "u1".to_owned())]
        );
    }
}
