//! Shared-secret credentials for providers that sign nothing (Linxo, Powens): HTTP Basic, a
//! bearer token, a token in the URL's query, or — said explicitly — nobody at all.
//!
//! Credentials are checked on the request head, before the body is read.

use base64::Engine;
use http::request::Parts;
use http::{HeaderMap, HeaderName};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::{ready, AuthError, Request, Verify, VerifyFuture};
use crate::secret::Secret;

/// How a source's callers authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// HTTP Basic: `username` and the secret as password (also what a URL's `user:password@`
    /// becomes).
    Basic,
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// The secret in the URL's query, `?<query_parameter>=<secret>`, for senders that can only
    /// be given a URL.
    Query,
    /// Anyone may post. Must be chosen explicitly; warned about at start.
    None,
}

/// The settings of a credential-authenticated source (`auth`, `username`, `query_parameter`);
/// the secret itself is the source's `secret` (and `previous_secret` during a rotation).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthMode>,
    /// With `auth = "basic"`: the expected user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// With `auth = "query"`: the query parameter holding the secret (default `token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_parameter: Option<String>,
}

const DEFAULT_QUERY_PARAMETER: &str = "token";

impl CredentialSettings {
    /// Checks the combination; `kind` names the provider in messages.
    pub fn validate(&self, key: &str, kind: &str, has_secret: bool, problems: &mut Vec<String>) {
        let Some(auth) = self.auth else {
            problems.push(format!(
                "{key}.auth: required for {kind} sources; one of \"basic\", \"bearer\", \"query\", \"none\""
            ));
            return;
        };
        if auth != AuthMode::Basic && self.username.is_some() {
            problems.push(format!("{key}.username: only used with auth = \"basic\""));
        }
        if auth != AuthMode::Query && self.query_parameter.is_some() {
            problems.push(format!(
                "{key}.query_parameter: only used with auth = \"query\""
            ));
        }
        match auth {
            AuthMode::Basic if self.username.as_deref().unwrap_or("").is_empty() => {
                problems.push(format!("{key}.username: required with auth = \"basic\""));
            }
            AuthMode::Query if self.query_parameter.as_deref() == Some("") => {
                problems.push(format!("{key}.query_parameter: must not be empty"));
            }
            _ => {}
        }
        match auth {
            AuthMode::None if has_secret => {
                problems.push(format!("{key}: auth = \"none\" takes no `secret`"))
            }
            AuthMode::Basic | AuthMode::Bearer | AuthMode::Query if !has_secret => {
                problems.push(format!(
                    "{key}.secret: required with auth = \"{}\" (the password or token)",
                    auth.as_str()
                ))
            }
            _ => {}
        }
    }

    /// The check for these settings with the source's resolved secrets.
    pub fn verifier(&self, secrets: Vec<Secret>) -> Credentials {
        match self.auth.unwrap_or(AuthMode::None) {
            AuthMode::Basic => {
                Credentials::basic(self.username.as_deref().unwrap_or_default(), &secrets)
            }
            AuthMode::Bearer => Credentials::Bearer(secrets),
            AuthMode::Query => Credentials::Query {
                parameter: self
                    .query_parameter
                    .clone()
                    .unwrap_or_else(|| DEFAULT_QUERY_PARAMETER.to_owned()),
                secrets,
            },
            AuthMode::None => Credentials::Anyone,
        }
    }
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Basic => "basic",
            AuthMode::Bearer => "bearer",
            AuthMode::Query => "query",
            AuthMode::None => "none",
        }
    }
}

/// Credentials a request must carry, any of the listed secrets accepted.
#[derive(Debug)]
pub enum Credentials {
    /// HTTP Basic: the base64 of `username:password` for each accepted password, as a request
    /// carries it.
    Basic {
        encoded: Vec<Secret>,
    },
    Bearer(Vec<Secret>),
    Query {
        parameter: String,
        secrets: Vec<Secret>,
    },
    Anyone,
}

impl Credentials {
    /// HTTP Basic with `username` and any of `passwords`. The expected header values are
    /// encoded once, here: a request is then checked by comparing its base64 text, which is
    /// the same check as decoding it (standard base64 with padding has one encoding per value,
    /// and the decoder refuses any other) without decoding or copying a password per request.
    pub fn basic(username: &str, passwords: &[Secret]) -> Self {
        let encoded = passwords
            .iter()
            .map(|password| {
                Secret::new(
                    base64::engine::general_purpose::STANDARD
                        .encode(format!("{username}:{}", password.expose())),
                )
            })
            .collect();
        Credentials::Basic { encoded }
    }

    /// Checks the credentials a request carries in its headers or its query.
    fn check(&self, headers: &HeaderMap, query: Option<&str>) -> Result<(), AuthError> {
        match self {
            Credentials::Anyone => Ok(()),
            Credentials::Basic { encoded } => {
                let presented = authorization(headers, "Basic")?;
                any_equal(presented, encoded.iter().map(Secret::expose))
            }
            Credentials::Bearer(secrets) => {
                let presented = authorization(headers, "Bearer")?;
                any_equal(presented, secrets.iter().map(Secret::expose))
            }
            Credentials::Query { parameter, secrets } => {
                let presented = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                    .find(|(name, _)| name == parameter.as_str())
                    .map(|(_, value)| value)
                    .ok_or(AuthError::MissingCredentials)?;
                any_equal(presented.as_bytes(), secrets.iter().map(Secret::expose))
            }
        }
    }
}

impl Verify for Credentials {
    /// Checked on the head, before the body is read: strangers cannot make finhook read bodies.
    fn admit(&self, head: &Parts) -> Result<(), AuthError> {
        self.check(&head.headers, head.uri.query())
    }

    /// Checked again with the body, so [`crate::auth::verify`] vouches for what it returns
    /// whatever its caller did before (the comparison is cheap).
    fn verify<'r>(&'r self, request: &'r Request<'r>) -> VerifyFuture<'r> {
        ready(self.check(request.headers, request.query))
    }

    fn is_open(&self) -> bool {
        matches!(self, Credentials::Anyone)
    }

    fn sign(&self, _body: &[u8], _at: OffsetDateTime) -> Option<Vec<(HeaderName, String)>> {
        let authorization = match self {
            Credentials::Basic { encoded } => format!("Basic {}", encoded.first()?.expose()),
            Credentials::Bearer(secrets) => format!("Bearer {}", secrets.first()?.expose()),
            // A query token goes in the URL, not a header.
            Credentials::Query { .. } | Credentials::Anyone => return Some(Vec::new()),
        };
        Some(vec![(http::header::AUTHORIZATION, authorization)])
    }
}

/// Compares against every expected value, so the time taken does not tell which one matched.
fn any_equal<T: AsRef<[u8]>>(
    presented: &[u8],
    expected: impl Iterator<Item = T>,
) -> Result<(), AuthError> {
    let matched = expected.fold(subtle::Choice::from(0), |matched, candidate| {
        matched | presented.ct_eq(candidate.as_ref())
    });
    bool::from(matched)
        .then_some(())
        .ok_or(AuthError::WrongCredentials)
}

/// The credentials after `scheme ` in the Authorization header.
fn authorization<'h>(headers: &'h HeaderMap, scheme: &str) -> Result<&'h [u8], AuthError> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or(AuthError::MissingCredentials)?
        .as_bytes();
    let (given_scheme, rest) = value
        .iter()
        .position(|byte| *byte == b' ')
        .map(|space| (&value[..space], &value[space + 1..]))
        .ok_or(AuthError::WrongCredentials)?;
    if !given_scheme.eq_ignore_ascii_case(scheme.as_bytes()) {
        return Err(AuthError::WrongCredentials);
    }
    Ok(rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(uri: &str, authorization: Option<&str>) -> Parts {
        let mut builder = http::Request::post(uri);
        if let Some(value) = authorization {
            builder = builder.header(http::header::AUTHORIZATION, value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn basic_auth_accepts_current_and_previous_password_only() {
        let check = Credentials::basic("linxo", &[Secret::new("new"), Secret::new("old")]);
        let encode = |pair: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        };
        for good in ["linxo:new", "linxo:old"] {
            assert_eq!(check.admit(&head("/", Some(&encode(good)))), Ok(()));
        }
        for bad in ["linxo:nope", "other:new", "linxo:new "] {
            assert_eq!(
                check.admit(&head("/", Some(&encode(bad)))),
                Err(AuthError::WrongCredentials)
            );
        }
        assert_eq!(
            check.admit(&head("/", None)),
            Err(AuthError::MissingCredentials)
        );
        // Only the one canonical encoding is accepted, as base64's strict decoder did before
        // the expected values were encoded once: not the pair unpadded or over-padded, not with
        // the last symbol's spare bits set (a lenient decoder reads "linxo:newer" from
        // "...ZXJ="), not in the URL-safe alphabet, not text that is no base64 at all.
        let padded = Credentials::basic("linxo", &[Secret::new("newer"), Secret::new("newer?>")]);
        let canonical = encode("linxo:newer");
        assert!(canonical.ends_with("ZXI="));
        let with_slash = encode("linxo:newer?>");
        assert!(with_slash.contains('/'));
        for good in [&canonical, &with_slash] {
            assert_eq!(padded.admit(&head("/", Some(good))), Ok(()));
        }
        // The scheme is case-insensitive and spaces around the value are not part of it.
        let relaxed = format!("basic   {}  ", canonical.trim_start_matches("Basic "));
        assert_eq!(padded.admit(&head("/", Some(&relaxed))), Ok(()));
        let bad = [
            canonical.trim_end_matches('=').to_owned(),
            format!("{canonical}="),
            canonical.replace("ZXI=", "ZXJ="),
            with_slash.replace('/', "_"),
            "Basic linxo:newer".to_owned(),
            "Basic %%%%".to_owned(),
        ];
        for bad in &bad {
            assert_eq!(
                padded.admit(&head("/", Some(bad))),
                Err(AuthError::WrongCredentials),
                "{bad}"
            );
        }
    }

    #[test]
    fn bearer_requires_the_scheme_and_the_token() {
        let check = Credentials::Bearer(vec![Secret::new("tok")]);
        assert_eq!(check.admit(&head("/", Some("Bearer tok"))), Ok(()));
        assert_eq!(check.admit(&head("/", Some("bearer tok"))), Ok(()));
        for bad in ["Basic tok", "Bearer tok2", "Bearertok"] {
            assert_eq!(
                check.admit(&head("/", Some(bad))),
                Err(AuthError::WrongCredentials),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_query_token_is_read_from_its_parameter_only() {
        let check = CredentialSettings {
            auth: Some(AuthMode::Query),
            username: None,
            query_parameter: None,
        }
        .verifier(vec![Secret::new("s3cret+/")]);
        assert_eq!(check.admit(&head("/w?token=s3cret%2B%2F", None)), Ok(()));
        assert_eq!(
            check.admit(&head("/w?a=1&token=s3cret%2B%2F", None)),
            Ok(())
        );
        assert_eq!(
            check.admit(&head("/w?token=s3cret", None)),
            Err(AuthError::WrongCredentials)
        );
        assert_eq!(
            check.admit(&head("/w?other=s3cret%2B%2F", None)),
            Err(AuthError::MissingCredentials)
        );
        assert_eq!(
            check.admit(&head("/w", None)),
            Err(AuthError::MissingCredentials)
        );
    }

    #[test]
    fn settings_name_what_is_missing() {
        let mut problems = Vec::new();
        CredentialSettings::default().validate("sources.p", "powens", true, &mut problems);
        CredentialSettings {
            auth: Some(AuthMode::Basic),
            ..Default::default()
        }
        .validate("sources.q", "linxo", false, &mut problems);
        CredentialSettings {
            auth: Some(AuthMode::None),
            ..Default::default()
        }
        .validate("sources.r", "linxo", true, &mut problems);
        let text = problems.join("\n");
        assert!(
            text.contains("sources.p.auth: required for powens"),
            "{text}"
        );
        assert!(text.contains("sources.q.username: required"), "{text}");
        assert!(text.contains("sources.q.secret: required"), "{text}");
        assert!(
            text.contains("sources.r: auth = \"none\" takes no"),
            "{text}"
        );
    }
}
