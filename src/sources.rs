//! Webhook sources at run time: configuration resolved (secret files read, verifiers built) into
//! what a request is checked against — its address, its client certificate, and its provider's
//! verification.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use http::request::Parts;

use crate::auth::{AuthError, ClientCertificate, Verified, Verify};
use crate::config::{Config, ConfigError, IpRange};
use crate::protection::Policy;
use crate::providers::{self, BuildContext};
use crate::vocabulary::{EventFacts, NormalizeError, ProviderKind};

#[derive(Debug)]
pub struct Source {
    pub name: String,
    pub kind: ProviderKind,
    verifier: Box<dyn Verify>,
    settings: Arc<dyn providers::Settings>,
    pub allowed_ips: Vec<IpRange>,
    pub body_limit: usize,
    /// A client certificate is required: asked for, or implied by `client_cert_names`.
    pub client_cert_required: bool,
    pub client_cert_names: Vec<String>,
    /// Personal data protected in this source's payloads before Kafka.
    pub protection: Option<Arc<Policy>>,
}

impl Source {
    /// Checks the caller's address (when the source restricts it), its client certificate, and
    /// any credentials carried in the head. Runs before the body is read, so strangers cannot
    /// make finhook read bodies.
    pub fn authenticate_request(
        &self,
        client: Option<IpAddr>,
        client_certificate: Option<&ClientCertificate>,
        head: &Parts,
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
        self.verifier.admit(head)
    }

    /// The provider's verification, for [`crate::auth::verify`].
    pub fn verifier(&self) -> &dyn Verify {
        self.verifier.as_ref()
    }

    /// Reads the event a verified body holds, as this source's provider and settings say.
    pub fn read(&self, body: &Verified<'_>) -> Result<EventFacts, NormalizeError> {
        self.settings.read(body)
    }

    /// The events of a batch body, each as its own bytes; `None` when the body is one event.
    pub fn split<'b>(&self, body: &Verified<'b>) -> Option<Result<Vec<&'b [u8]>, NormalizeError>> {
        self.settings.split_webhook(body)
    }

    /// Whether `/webhooks/<source>/<event>` is one of this source's URLs.
    pub fn takes_path_events(&self) -> bool {
        self.settings.takes_path_events()
    }

    /// Whether anyone may post (no credentials, no client certificate).
    pub fn is_open(&self) -> bool {
        self.verifier.is_open() && !self.client_cert_required
    }
}

/// The configured sources by name, and every protection policy by name (routes name them too).
#[derive(Debug, Default, Clone)]
pub struct Sources {
    by_name: HashMap<String, Arc<Source>>,
    /// Every `[protection]` policy, built once (key files read, HMAC keyed) and shared with
    /// the pollers.
    policies: Arc<BTreeMap<String, Arc<Policy>>>,
}

impl Sources {
    /// Resolves every source: secret files read, verifiers built (keys parsed, HTTP client
    /// shared for key fetches).
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let context = BuildContext::new();
        let policies = Arc::new(config.protection.policies()?);
        let mut sources = HashMap::new();
        for (name, source) in &config.sources {
            let secrets = source.resolve_secrets(name)?;
            let verifier = source
                .settings
                .verifier(secrets, &context)
                .map_err(|problem| {
                    ConfigError::Invalid(vec![format!("sources.{name}: {problem}")])
                })?;
            let resolved = Source {
                name: name.clone(),
                kind: source.kind,
                verifier,
                settings: Arc::clone(&source.settings),
                allowed_ips: source.allowed_ips.clone(),
                body_limit: source
                    .body_limit_bytes
                    .unwrap_or(config.server.body_limit_bytes),
                client_cert_required: source.requires_client_certificate(),
                client_cert_names: source.client_cert_names.clone(),
                protection: source
                    .protect
                    .as_ref()
                    .and_then(|name| policies.get(name).cloned()),
            };
            sources.insert(name.clone(), Arc::new(resolved));
        }
        Ok(Self {
            by_name: sources,
            policies,
        })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Source>> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Source> {
        self.by_name.values().map(Arc::as_ref)
    }

    /// A protection policy by name.
    pub fn policy(&self, name: &str) -> Option<&Arc<Policy>> {
        self.policies.get(name)
    }

    /// All the policies by name, for the pollers (the same objects the sources use).
    pub fn policies(&self) -> Arc<BTreeMap<String, Arc<Policy>>> {
        Arc::clone(&self.policies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::credentials::Credentials;
    use crate::providers::Provider;

    fn open_source(allowed_ips: Vec<IpRange>) -> Source {
        Source {
            name: "linxo".into(),
            kind: providers::linxo::Linxo::KIND,
            verifier: Box::new(Credentials::Anyone),
            settings: providers::entry("linxo").unwrap().default_settings(),
            allowed_ips,
            body_limit: 1024,
            client_cert_required: false,
            client_cert_names: vec![],
            protection: None,
        }
    }

    #[test]
    fn allowlist_refuses_unknown_and_missing_addresses() {
        let source = open_source(vec!["63.32.31.5".parse().unwrap()]);
        let head = http::Request::post("/").body(()).unwrap().into_parts().0;
        assert_eq!(
            source.authenticate_request(Some("63.32.31.5".parse().unwrap()), None, &head),
            Ok(())
        );
        assert_eq!(
            source.authenticate_request(Some("1.2.3.4".parse().unwrap()), None, &head),
            Err(AuthError::AddressNotAllowed)
        );
        assert_eq!(
            source.authenticate_request(None, None, &head),
            Err(AuthError::AddressNotAllowed)
        );
    }
}
