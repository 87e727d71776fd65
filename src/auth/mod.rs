//! Authenticating webhook requests: the schemes providers share, the error every scheme answers
//! with, and [`Verified`], the only thing a normalizer accepts.
//!
//! A provider picks a scheme here rather than writing its own: shared credentials
//! ([`credentials`]: Basic, bearer, a token), HMAC over a content template ([`hmac`]: Bridge,
//! Tink, GitHub-, Shopify- and Stripe-style senders), Standard Webhooks ([`standard_webhooks`]:
//! HMAC and ed25519), and key sets fetched over HTTP for asymmetric signatures ([`keys`]: Plaid,
//! TrueLayer). A scheme that only one provider uses lives in that provider's file.

pub mod credentials;
pub mod hmac;
pub mod keys;
pub mod standard_webhooks;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::future::Either;
use http::request::Parts;
use http::{HeaderMap, HeaderName, Method};
use time::OffsetDateTime;

/// Why a request is refused before anything of it is read as an event. Messages name what was
/// wrong, never a value from the request or a secret.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("the client address is not allowed for this source")]
    AddressNotAllowed,
    #[error("this source requires a client certificate")]
    ClientCertificateRequired,
    #[error("the client certificate's names are not accepted for this source")]
    ClientCertificateNotAccepted,
    #[error("credentials are missing")]
    MissingCredentials,
    #[error("credentials do not match")]
    WrongCredentials,
    #[error("the signature header is missing")]
    MissingSignature,
    #[error("the signature header holds no signature in a supported scheme")]
    NoSupportedSignature,
    #[error("the signature is malformed: {0}")]
    MalformedSignature(&'static str),
    #[error("no signature matches the request")]
    SignatureMismatch,
    #[error("the signed timestamp is missing, malformed or outside the accepted tolerance")]
    StaleTimestamp,
    #[error("the signature's algorithm is not the one this provider uses")]
    AlgorithmNotAllowed,
    #[error("the signature names a key URL that is not allowed")]
    KeyUrlNotAllowed,
    #[error("the signature names a key that is unknown or expired")]
    UnknownKey,
    /// The provider's key server could not be reached: the request may be genuine, so it is
    /// answered 503 and the provider retries.
    #[error("the provider's verification keys are unavailable; retry later")]
    KeysUnavailable,
}

impl AuthError {
    /// Whether the request may be genuine and should be retried (503) rather than refused.
    pub fn is_transient(&self) -> bool {
        matches!(self, AuthError::KeysUnavailable)
    }
}

/// The names a verified client certificate carries: its DNS and URI subject alternative names,
/// or, only when it has none, its subject common names (RFC 6125: a certificate that lists
/// alternative names is not also vouching for its CN). Inserted into each request of a
/// mutual-TLS connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub names: Vec<String>,
}

impl ClientCertificate {
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut names: Vec<String> = Vec::new();
        if let Ok(Some(alternatives)) = certificate.subject_alternative_name() {
            for name in &alternatives.value.general_names {
                match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => {
                        names.push((*dns).to_owned())
                    }
                    x509_parser::extensions::GeneralName::URI(uri) => names.push((*uri).to_owned()),
                    _ => {}
                }
            }
        }
        if names.is_empty() {
            names = certificate
                .subject()
                .iter_common_name()
                .filter_map(|name| name.as_str().ok().map(str::to_owned))
                .collect();
        }
        Some(Self { names })
    }

    /// Whether any of the certificate's names is one of `accepted` (case-insensitive).
    pub fn matches_any(&self, accepted: &[String]) -> bool {
        self.names.iter().any(|name| {
            accepted
                .iter()
                .any(|wanted| wanted.eq_ignore_ascii_case(name))
        })
    }
}

/// A webhook request as a verifier sees it: everything is raw, nothing is trusted yet.
#[derive(Debug, Clone, Copy)]
pub struct Request<'r> {
    pub method: &'r Method,
    /// The request path as received (proxies may have rewritten it; schemes that sign the path
    /// use the path registered with the provider instead).
    pub path: &'r str,
    pub headers: &'r HeaderMap,
    pub body: &'r [u8],
    /// When finhook received it: the reference for timestamp tolerances.
    pub received_at: OffsetDateTime,
    /// The path segment after the source name (`/webhooks/<source>/<event>`), for providers
    /// that give each event kind its own URL (Powens, Salt Edge).
    pub path_event: Option<&'r str>,
    /// The URL's query string, if any (a query token is a credential).
    pub query: Option<&'r str>,
}

/// A body whose request passed its source's verification. Normalizers take this type, so bytes
/// that were not verified cannot reach one by mistake: the only constructors are
/// [`verify`], and [`Verified::assume`] and [`Verified::assume_at`], whose names say what they
/// do (the queue path uses them: a page finhook fetched itself from the provider's API).
#[derive(Debug, Clone, Copy)]
pub struct Verified<'r> {
    body: &'r [u8],
    headers: &'r HeaderMap,
    path_event: Option<&'r str>,
}

impl<'r> Verified<'r> {
    /// Bytes trusted without a check of their own: a queue page finhook fetched from the
    /// provider's API with its own credentials, a dead letter being redriven, a test or a bench.
    pub fn assume(body: &'r [u8], headers: &'r HeaderMap) -> Self {
        Self {
            body,
            headers,
            path_event: None,
        }
    }

    /// The same, received at `/webhooks/<source>/<path_event>`.
    pub fn assume_at(body: &'r [u8], headers: &'r HeaderMap, path_event: &'r str) -> Self {
        Self {
            body,
            headers,
            path_event: Some(path_event),
        }
    }

    /// One event of this verified body (a batch's element): the same request, these bytes.
    /// `part` must be a slice of this body.
    pub fn part(&self, part: &'r [u8]) -> Verified<'r> {
        let range = self.body.as_ptr_range();
        debug_assert!(
            part.is_empty()
                || (range.start <= part.as_ptr() && part.as_ptr_range().end <= range.end),
            "a part of the verified body"
        );
        Verified {
            body: part,
            headers: self.headers,
            path_event: self.path_event,
        }
    }

    /// See [`Request::path_event`].
    pub fn path_event(&self) -> Option<&'r str> {
        self.path_event
    }

    pub fn body(&self) -> &'r [u8] {
        self.body
    }

    pub fn headers(&self) -> &'r HeaderMap {
        self.headers
    }

    /// A header as text, when present, valid and not empty.
    pub fn header(&self, name: &str) -> Option<&'r str> {
        header_text(self.headers, name)
    }
}

/// The future a verifier returns: most are ready at once ([`ready`], no allocation), key-set
/// schemes may fetch keys ([`later`]).
pub type VerifyFuture<'r> = Either<
    std::future::Ready<Result<(), AuthError>>,
    Pin<Box<dyn Future<Output = Result<(), AuthError>> + Send + 'r>>,
>;

/// How one source checks its requests. Built once from the source's settings (secrets read,
/// keys parsed, HTTP client shared), then called for every request.
pub trait Verify: fmt::Debug + Send + Sync {
    /// Checks on the headers alone, made before the body is read, so strangers cannot make
    /// finhook read bodies. Default: the [`Self::signature_header`] must be there.
    fn admit(&self, head: &Parts) -> Result<(), AuthError> {
        match self.signature_header() {
            Some(name) if !head.headers.contains_key(name) => Err(AuthError::MissingSignature),
            _ => Ok(()),
        }
    }

    /// The header a signature scheme's signature comes in: a request without it is refused
    /// before its body is read. `None`: no such header (credential schemes check in `admit`).
    fn signature_header(&self) -> Option<&str> {
        None
    }

    /// Checks the whole request.
    fn verify<'r>(&'r self, request: &'r Request<'r>) -> VerifyFuture<'r>;

    /// Whether anyone may post (`auth = "none"`): warned about at start.
    fn is_open(&self) -> bool {
        false
    }

    /// The headers a sender holding this source's secret would add to `body`, for
    /// `finhook sign` and the simulator; `None` for schemes whose secret is not finhook's
    /// (asymmetric signatures).
    fn sign(&self, _body: &[u8], _at: OffsetDateTime) -> Option<Vec<(HeaderName, String)>> {
        None
    }
}

/// Runs `verifier` over `request`: the one way a webhook body becomes [`Verified`].
pub async fn verify<'r>(
    verifier: &dyn Verify,
    request: &'r Request<'r>,
) -> Result<Verified<'r>, AuthError> {
    verifier.verify(request).await?;
    Ok(Verified {
        body: request.body,
        headers: request.headers,
        path_event: request.path_event,
    })
}

/// A verdict that needed no waiting, as a [`VerifyFuture`]. Not boxed: this is every
/// request's path for most schemes.
pub fn ready<'r>(result: Result<(), AuthError>) -> VerifyFuture<'r> {
    Either::Left(std::future::ready(result))
}

/// A verdict that may wait (for a key set), as a [`VerifyFuture`].
pub fn later<'r>(
    verdict: impl Future<Output = Result<(), AuthError>> + Send + 'r,
) -> VerifyFuture<'r> {
    Either::Right(Box::pin(verdict))
}

/// A header's value as text; `None` when absent, empty (an empty id or signature is none) or
/// not visible ASCII.
pub fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)?
        .to_str()
        .ok()
        .filter(|text| !text.is_empty())
}

/// Signatures one header may carry; more are refused before any is checked. A sender lists one
/// per key it signs with (two or three while rotating); each costs a check (for Standard
/// Webhooks' `v1a`, an ed25519 check over the whole body), so an unauthenticated header must
/// not be able to ask for hundreds.
pub(crate) const MAX_SIGNATURES: usize = 16;

/// Accepts a Unix timestamp within `tolerance` of `now`, in both directions: old enough is a
/// replay, too far ahead is a clock (or a forger) to distrust.
pub fn check_timestamp(
    timestamp: &str,
    now: OffsetDateTime,
    tolerance: Duration,
) -> Result<(), AuthError> {
    let seconds: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| AuthError::StaleTimestamp)?;
    // In i128: the timestamp is the sender's, not yet trusted, and may be any i64.
    let skew = (i128::from(now.unix_timestamp()) - i128::from(seconds)).unsigned_abs();
    if skew > u128::from(tolerance.as_secs()) {
        return Err(AuthError::StaleTimestamp);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_accepted_within_the_tolerance_both_ways() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let five_minutes = Duration::from_secs(300);
        for good in ["1700000000", "1699999700", "1700000300", " 1700000001 "] {
            assert_eq!(check_timestamp(good, now, five_minutes), Ok(()), "{good}");
        }
        for bad in [
            "1699999699",
            "1700000301",
            "",
            "17e8",
            "-",
            "99999999999999999999",
            "-9223372036854775808",
            "9223372036854775807",
        ] {
            assert_eq!(
                check_timestamp(bad, now, five_minutes),
                Err(AuthError::StaleTimestamp),
                "{bad}"
            );
        }
    }
}
