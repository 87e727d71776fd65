//! `[sources.<name>]`: the keys every webhook source has (its `kind`, its secret and the one
//! being rotated out, address and certificate restrictions, a body limit), plus its provider's
//! own keys, read by the provider (see [`crate::providers::Provider::Settings`]).

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{ConfigError, IpRange};
use crate::providers;
use crate::secret::{self, Secret};
use crate::vocabulary::ProviderKind;

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub kind: ProviderKind,
    pub secret: Option<Secret>,
    pub secret_file: Option<PathBuf>,
    pub previous_secret: Option<Secret>,
    pub previous_secret_file: Option<PathBuf>,
    pub allowed_ips: Vec<IpRange>,
    pub body_limit_bytes: Option<usize>,
    pub client_cert_required: bool,
    pub client_cert_names: Vec<String>,
    /// The `[protection.policies]` policy applied to this source's payloads.
    pub protect: Option<String>,
    /// The provider's own keys.
    pub settings: Arc<dyn providers::Settings>,
}

/// The keys every source has, as written in configuration.
#[derive(Deserialize)]
struct CommonKeys {
    kind: ProviderKind,
    /// The signing secret, password or token, as the provider uses it.
    #[serde(default)]
    secret: Option<Secret>,
    #[serde(default)]
    secret_file: Option<PathBuf>,
    /// The secret being rotated out, still accepted.
    #[serde(default)]
    previous_secret: Option<Secret>,
    #[serde(default)]
    previous_secret_file: Option<PathBuf>,
    /// Client addresses allowed to post; empty allows any.
    #[serde(default)]
    allowed_ips: Vec<IpRange>,
    /// Overrides `server.body_limit_bytes`.
    #[serde(default)]
    body_limit_bytes: Option<usize>,
    /// Callers must present a client certificate (mutual TLS; needs `server.tls.client_ca_file`).
    #[serde(default)]
    client_cert_required: bool,
    /// When non-empty, a client certificate must carry one of these names (subject common name,
    /// DNS or URI subject alternative name).
    #[serde(default)]
    client_cert_names: Vec<String>,
    /// A `[protection.policies]` name: personal data protected before Kafka.
    #[serde(default)]
    protect: Option<String>,
    /// Everything else: the provider's keys.
    #[serde(flatten)]
    provider_keys: serde_json::Map<String, serde_json::Value>,
}

impl<'de> Deserialize<'de> for SourceConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let common = CommonKeys::deserialize(deserializer)?;
        let entry =
            providers::entry(common.kind.as_str()).expect("a ProviderKind names a catalogue entry");
        let settings = entry
            .settings(serde_json::Value::Object(common.provider_keys))
            .map_err(|error| {
                serde::de::Error::custom(format!("{} source: {error}", common.kind))
            })?;
        Ok(SourceConfig {
            kind: common.kind,
            secret: common.secret,
            secret_file: common.secret_file,
            previous_secret: common.previous_secret,
            previous_secret_file: common.previous_secret_file,
            allowed_ips: common.allowed_ips,
            body_limit_bytes: common.body_limit_bytes,
            client_cert_required: common.client_cert_required,
            client_cert_names: common.client_cert_names,
            protect: common.protect,
            settings,
        })
    }
}

impl Serialize for SourceConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            kind: ProviderKind,
            #[serde(skip_serializing_if = "Option::is_none")]
            secret: &'a Option<Secret>,
            #[serde(skip_serializing_if = "Option::is_none")]
            secret_file: &'a Option<PathBuf>,
            #[serde(skip_serializing_if = "Option::is_none")]
            previous_secret: &'a Option<Secret>,
            #[serde(skip_serializing_if = "Option::is_none")]
            previous_secret_file: &'a Option<PathBuf>,
            allowed_ips: &'a [IpRange],
            #[serde(skip_serializing_if = "Option::is_none")]
            body_limit_bytes: &'a Option<usize>,
            client_cert_required: bool,
            client_cert_names: &'a [String],
            #[serde(skip_serializing_if = "Option::is_none")]
            protect: &'a Option<String>,
            #[serde(flatten)]
            settings: serde_json::Value,
        }
        Shown {
            kind: self.kind,
            secret: &self.secret,
            secret_file: &self.secret_file,
            previous_secret: &self.previous_secret,
            previous_secret_file: &self.previous_secret_file,
            allowed_ips: &self.allowed_ips,
            body_limit_bytes: &self.body_limit_bytes,
            client_cert_required: self.client_cert_required,
            client_cert_names: &self.client_cert_names,
            protect: &self.protect,
            settings: self.settings.to_json(),
        }
        .serialize(serializer)
    }
}

/// Source names become URL path segments and metric label values: keep them small and plain.
pub fn is_valid_source_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

impl SourceConfig {
    /// Whether a client certificate is required: asked for, or implied by names to accept
    /// (a certificate must carry one of them, so none at all is not accepted).
    pub fn requires_client_certificate(&self) -> bool {
        self.client_cert_required || !self.client_cert_names.is_empty()
    }

    pub(super) fn validate(&self, name: &str, problems: &mut Vec<String>) {
        let key = format!("sources.{name}");
        if !is_valid_source_name(name) {
            problems.push(format!(
                "{key}: source names are 1-64 characters of a-z, 0-9, '_' and '-'"
            ));
        }
        if self.secret.is_some() && self.secret_file.is_some() {
            problems.push(format!("{key}: give `secret` or `secret_file`, not both"));
        }
        if self.previous_secret.is_some() && self.previous_secret_file.is_some() {
            problems.push(format!(
                "{key}: give `previous_secret` or `previous_secret_file`, not both"
            ));
        }
        let has_secret = self.secret.is_some() || self.secret_file.is_some();
        let has_previous = self.previous_secret.is_some() || self.previous_secret_file.is_some();
        if has_previous && !has_secret {
            problems.push(format!(
                "{key}.previous_secret: only used beside a current `secret`"
            ));
        }
        if self.body_limit_bytes == Some(0) {
            problems.push(format!("{key}.body_limit_bytes: must be greater than 0"));
        }
        self.settings.validate(&key, has_secret, problems);
    }

    /// The accepted secrets, current first, with files read.
    pub fn resolve_secrets(&self, name: &str) -> Result<Vec<Secret>, ConfigError> {
        let read = |key: &str, inline: &Option<Secret>, file: &Option<PathBuf>| {
            secret::resolve(inline, file).map_err(|source| ConfigError::SecretFile {
                key: format!("sources.{name}.{key}_file"),
                path: file.clone().unwrap_or_default(),
                source,
            })
        };
        let current = read("secret", &self.secret, &self.secret_file)?;
        let previous = read(
            "previous_secret",
            &self.previous_secret,
            &self.previous_secret_file,
        )?;
        let secrets: Vec<Secret> = current.into_iter().chain(previous).collect();
        if secrets.iter().any(|secret| secret.expose().is_empty()) {
            return Err(ConfigError::Invalid(vec![format!(
                "sources.{name}.secret: an empty secret would accept anyone"
            )]));
        }
        Ok(secrets)
    }
}
