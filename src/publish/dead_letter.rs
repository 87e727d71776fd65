//! Dead-letter records: authenticated input finhook could not understand, kept byte for byte.
//!
//! Each is a CloudEvent in *binary* mode: the Kafka value is the raw body as received, the
//! attributes are `ce_*` headers (`ce_type = io.finhook.deadletter`, `ce_reason`, ...), and the
//! request's headers follow as `http_<name>`, credentials removed.

use rdkafka::message::{Header, OwnedHeaders};
use sha2::{Digest, Sha256};

use crate::envelope::{derived_id, rfc3339, Origin, SPEC_VERSION};

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
    /// A polled event's user (`ce_userid`), so `finhook redrive` can read it as the poller did.
    pub user_id: Option<String>,
    /// The URL's event segment of a webhook (`ce_pathevent`), for the same reason.
    pub path_event: Option<String>,
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
            user_id: None,
            path_event: None,
        }
    }

    /// The same letter without its body or the request's headers (they may be what did not
    /// fit): attributes, the body's size and its digest only.
    pub fn digest_only(&self) -> DeadLetter<'a> {
        DeadLetter {
            id: self.id.clone(),
            origin: self.origin,
            reason: self.reason,
            detail: self.detail.clone(),
            raw: &[],
            request_headers: Vec::new(),
            content_type: self.content_type.clone(),
            omitted_body: Some((self.raw.len(), hex::encode(Sha256::digest(self.raw)))),
            user_id: self.user_id.clone(),
            path_event: self.path_event.clone(),
        }
    }

    pub fn kafka_headers(&self) -> OwnedHeaders {
        let source = self.origin.source_uri();
        let received = rfc3339(self.origin.received_at);
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
        let mut headers =
            OwnedHeaders::new_with_capacity(attributes.len() + self.request_headers.len() + 1);
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
        let context = [
            ("ce_userid", &self.user_id),
            ("ce_pathevent", &self.path_event),
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

pub fn is_credential_header(name: &str) -> bool {
    CREDENTIAL_HEADERS
        .iter()
        .any(|credential| credential.eq_ignore_ascii_case(name))
}
