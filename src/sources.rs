//! Webhook sources at run time: configuration resolved (secret files read) into what a request
//! is checked against — the caller's credentials or signature, and its address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::config::{AuthMode, Config, ConfigError, IpRange, Secret};
use crate::http::tls::ClientCertificate;
use crate::providers::{bridge, ProviderKind};

/// How a source's callers prove who they are.
#[derive(Debug)]
pub enum SourceAuth {
    /// Bridge: `BridgeApi-Signature` over the body, under any of these secrets.
    BridgeSignature(Vec<Secret>),
    /// HTTP Basic with this user name and any of these passwords.
    Basic {
        username: String,
        secrets: Vec<Secret>,
    },
    /// `Authorization: Bearer` with any of these tokens.
    Bearer(Vec<Secret>),
    /// Anyone (configured explicitly).
    None,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("the client address is not allowed for this source")]
    AddressNotAllowed,
    #[error("credentials are missing")]
    MissingCredentials,
    #[error("credentials do not match")]
    WrongCredentials,
    #[error(transparent)]
    Signature(#[from] bridge::VerifyError),
    #[error("this source requires a client certificate")]
    ClientCertificateRequired,
    #[error("the client certificate's names are not accepted for this source")]
    ClientCertificateNotAccepted,
}

#[derive(Debug)]
pub struct Source {
    pub name: String,
    pub kind: ProviderKind,
    pub auth: SourceAuth,
    pub allowed_ips: Vec<IpRange>,
    pub body_limit: usize,
    pub client_cert_required: bool,
    pub client_cert_names: Vec<String>,
}

impl Source {
    /// Checks the caller's address (when the source restricts it) and any credentials carried
    /// in headers. Runs before the body is read, so strangers cannot make finhook read bodies.
    pub fn authenticate_request(
        &self,
        client: Option<IpAddr>,
        client_certificate: Option<&ClientCertificate>,
        headers: &HeaderMap,
    ) -> Result<(), AuthError> {
        if !self.allowed_ips.is_empty() {
            let allowed = client.is_some_and(|address| {
                self.allowed_ips.iter().any(|range| range.contains(address))
            });
            if !allowed {
                return Err(AuthError::AddressNotAllowed);
            }
        }
        match client_certificate {
            None if self.client_cert_required => return Err(AuthError::ClientCertificateRequired),
            Some(certificate)
                if !self.client_cert_names.is_empty()
                    && !certificate.matches_any(&self.client_cert_names) =>
            {
                return Err(AuthError::ClientCertificateNotAccepted)
            }
            _ => {}
        }
        match &self.auth {
            SourceAuth::BridgeSignature(_) | SourceAuth::None => Ok(()),
            SourceAuth::Basic { username, secrets } => {
                let presented = credentials(headers, "Basic")?;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(presented)
                    .map_err(|_| AuthError::WrongCredentials)?;
                let matched = secrets
                    .iter()
                    .fold(subtle::Choice::from(0), |matched, secret| {
                        let expected = format!("{username}:{}", secret.expose());
                        matched | decoded.as_slice().ct_eq(expected.as_bytes())
                    });
                bool::from(matched)
                    .then_some(())
                    .ok_or(AuthError::WrongCredentials)
            }
            SourceAuth::Bearer(secrets) => {
                let presented = credentials(headers, "Bearer")?;
                let matched = secrets
                    .iter()
                    .fold(subtle::Choice::from(0), |matched, secret| {
                        matched | presented.ct_eq(secret.expose().as_bytes())
                    });
                bool::from(matched)
                    .then_some(())
                    .ok_or(AuthError::WrongCredentials)
            }
        }
    }

    /// Checks what needs the body: Bridge's signature over the exact bytes.
    pub fn authenticate_body(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), AuthError> {
        match &self.auth {
            SourceAuth::BridgeSignature(secrets) => {
                let values = headers
                    .get_all(bridge::SIGNATURE_HEADER)
                    .iter()
                    .map(|value| value.as_bytes());
                bridge::verify_signature(values, body, secrets)?;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The credentials after `scheme ` in the Authorization header.
fn credentials<'h>(headers: &'h HeaderMap, scheme: &str) -> Result<&'h [u8], AuthError> {
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

/// The configured sources by name.
#[derive(Debug, Default, Clone)]
pub struct Sources(HashMap<String, Arc<Source>>);

impl Sources {
    /// Resolves every source's secrets (reading `*_file` paths).
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let mut sources = HashMap::new();
        for (name, source) in &config.sources {
            let secrets = source.resolve_secrets(name)?;
            let auth = match (source.kind, source.auth) {
                (ProviderKind::Bridge, _) => SourceAuth::BridgeSignature(secrets),
                (_, Some(AuthMode::Basic)) => SourceAuth::Basic {
                    username: source.username.clone().unwrap_or_default(),
                    secrets,
                },
                (_, Some(AuthMode::Bearer)) => SourceAuth::Bearer(secrets),
                (_, Some(AuthMode::None) | None) => SourceAuth::None,
            };
            let resolved = Source {
                name: name.clone(),
                kind: source.kind,
                auth,
                allowed_ips: source.allowed_ips.clone(),
                body_limit: source
                    .body_limit_bytes
                    .unwrap_or(config.server.body_limit_bytes),
                client_cert_required: source.client_cert_required,
                client_cert_names: source.client_cert_names.clone(),
            };
            sources.insert(name.clone(), Arc::new(resolved));
        }
        Ok(Self(sources))
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Source>> {
        self.0.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Source> {
        self.0.values().map(Arc::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linxo(auth: SourceAuth) -> Source {
        Source {
            name: "linxo".into(),
            kind: ProviderKind::Linxo,
            auth,
            allowed_ips: vec![],
            body_limit: 1024,
            client_cert_required: false,
            client_cert_names: vec![],
        }
    }

    fn with_authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn basic_auth_accepts_current_and_previous_password_only() {
        let source = linxo(SourceAuth::Basic {
            username: "linxo".into(),
            secrets: vec![Secret::new("new"), Secret::new("old")],
        });
        let encode = |pair: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        };
        for good in ["linxo:new", "linxo:old"] {
            assert_eq!(
                source.authenticate_request(None, None, &with_authorization(&encode(good))),
                Ok(())
            );
        }
        for bad in ["linxo:nope", "other:new", "linxo:new "] {
            assert_eq!(
                source.authenticate_request(None, None, &with_authorization(&encode(bad))),
                Err(AuthError::WrongCredentials)
            );
        }
        assert_eq!(
            source.authenticate_request(None, None, &HeaderMap::new()),
            Err(AuthError::MissingCredentials)
        );
    }

    #[test]
    fn bearer_requires_the_scheme_and_the_token() {
        let source = linxo(SourceAuth::Bearer(vec![Secret::new("tok")]));
        assert_eq!(
            source.authenticate_request(None, None, &with_authorization("Bearer tok")),
            Ok(())
        );
        assert_eq!(
            source.authenticate_request(None, None, &with_authorization("bearer tok")),
            Ok(())
        );
        assert_eq!(
            source.authenticate_request(None, None, &with_authorization("Basic tok")),
            Err(AuthError::WrongCredentials)
        );
        assert_eq!(
            source.authenticate_request(None, None, &with_authorization("Bearer tok2")),
            Err(AuthError::WrongCredentials)
        );
    }

    #[test]
    fn allowlist_refuses_unknown_and_missing_addresses() {
        let mut source = linxo(SourceAuth::None);
        source.allowed_ips = vec!["63.32.31.5".parse().unwrap()];
        let headers = HeaderMap::new();
        assert_eq!(
            source.authenticate_request(Some("63.32.31.5".parse().unwrap()), None, &headers),
            Ok(())
        );
        assert_eq!(
            source.authenticate_request(Some("1.2.3.4".parse().unwrap()), None, &headers),
            Err(AuthError::AddressNotAllowed)
        );
        assert_eq!(
            source.authenticate_request(None, None, &headers),
            Err(AuthError::AddressNotAllowed)
        );
    }
}
