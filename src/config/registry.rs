//! `[registry]`: pollers' users kept on Kafka (a compacted users topic, a compacted queue-state
//! topic) and shared between replicas through a consumer group, instead of a users file.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::keyring::{CryptoError, Keyring};
use crate::secret::{self, Secret};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Off: pollers take their users from `users` / `users_file`.
    pub enabled: bool,
    /// Compacted; key = user id, value = a user record (schemas/user-record.schema.json).
    pub users_topic: String,
    /// Compacted; key = user id, value = the user's queue state. Same partition count as
    /// `users_topic`: partition p of one belongs with partition p of the other.
    pub state_topic: String,
    /// Partitions of both topics when finhook creates them; the unit of assignment between
    /// replicas, so at least the largest replica count you will run.
    pub partitions: i32,
    /// Replication factor of both topics when finhook creates them.
    pub replication_factor: i32,
    /// The consumer group of every replica that polls.
    pub group_id: String,
    /// A replica that stops heartbeating loses its users after this long.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// How often a polled user's last query time is saved (it is also saved at every handoff).
    #[serde(with = "humantime_serde")]
    pub state_interval: Duration,
    /// Id of the key new records are encrypted with (`kid` in records).
    pub key_id: String,
    /// 32 bytes, base64 (`finhook users keygen`); or `key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Older keys, still decrypting records written before a rotation.
    #[serde(default)]
    pub previous_keys: Vec<PreviousKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousKey {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

/// A key given inline or as a file (`name` is the config key errors report); `None` when
/// neither is given.
pub(crate) fn read_key(
    name: &str,
    inline: &Option<Secret>,
    file: &Option<PathBuf>,
) -> Result<Option<Secret>, ConfigError> {
    secret::resolve(inline, file).map_err(|source| ConfigError::SecretFile {
        key: name.to_owned(),
        path: file.clone().unwrap_or_default(),
        source,
    })
}

/// The checks on a list of previous keys (`list` names it in problems), for the registry and
/// for field encryption alike, made when the configuration is loaded (so `check-config
/// --skip-files` makes them too): each gives exactly one of key and key_file, and none reuses
/// `current_id` or the id of a key before it.
pub(crate) fn check_previous_keys(
    list: &str,
    current_id: Option<&str>,
    previous_keys: &[PreviousKey],
    problems: &mut Vec<String>,
) {
    for (index, previous) in previous_keys.iter().enumerate() {
        let earlier = &previous_keys[..index];
        if previous.key.is_some() == previous.key_file.is_some() {
            problems.push(format!(
                "{list}[{index}]: give exactly one of key and key_file"
            ));
        }
        if current_id == Some(previous.id.as_str()) {
            problems.push(format!(
                "{list}[{index}].id: `{}` is the current key id",
                previous.id
            ));
        } else if earlier.iter().any(|earlier| earlier.id == previous.id) {
            problems.push(format!(
                "{list}[{index}].id: `{}` is given twice",
                previous.id
            ));
        }
    }
}

/// A keyring of the current key `id` and every previous key, for the registry and for field
/// encryption alike, once [`check_previous_keys`] passed. `section` and `list` name them in
/// errors (`registry`, `registry.previous_keys`).
pub(crate) fn build_keyring(
    section: &str,
    list: &str,
    id: &str,
    current: &Secret,
    previous: &[PreviousKey],
) -> Result<Keyring, ConfigError> {
    let invalid = |error: CryptoError| ConfigError::Invalid(vec![format!("{section}: {error}")]);
    let mut ring = Keyring::new(id, current).map_err(invalid)?;
    for (index, previous) in previous.iter().enumerate() {
        let entry = format!("{list}[{index}]");
        let key = read_key(
            &format!("{entry}.key_file"),
            &previous.key,
            &previous.key_file,
        )?
        // Validation refuses an entry with neither (`check_previous_keys`); kept as an error, not
        // a panic, for a keyring built from a configuration that skipped it.
        .ok_or_else(|| ConfigError::Invalid(vec![format!("{entry}: key or key_file missing")]))?;
        ring = ring.with_previous(&previous.id, &key).map_err(invalid)?;
    }
    Ok(ring)
}

impl RegistryConfig {
    pub(super) fn validate(&self, problems: &mut Vec<String>) {
        if !self.enabled {
            return;
        }
        for (key, topic) in [
            ("registry.users_topic", &self.users_topic),
            ("registry.state_topic", &self.state_topic),
        ] {
            super::check_topic_name(key, topic, problems);
        }
        if self.users_topic == self.state_topic {
            problems.push("registry.state_topic: must differ from users_topic".to_owned());
        }
        if !(1..=10_000).contains(&self.partitions) {
            problems.push("registry.partitions: between 1 and 10000".to_owned());
        }
        if self.replication_factor < 1 {
            problems.push("registry.replication_factor: at least 1".to_owned());
        }
        if self.group_id.trim().is_empty() {
            problems.push("registry.group_id: must not be empty".to_owned());
        }
        if self.session_timeout < Duration::from_secs(1) {
            problems.push("registry.session_timeout: at least 1s".to_owned());
        }
        if self.state_interval.is_zero() {
            problems.push("registry.state_interval: must be above 0".to_owned());
        }
        if self.key_id.is_empty() {
            problems.push("registry.key_id: must not be empty".to_owned());
        }
        if self.key.is_some() == self.key_file.is_some() {
            problems.push("registry: give exactly one of key and key_file".to_owned());
        }
        check_previous_keys(
            "registry.previous_keys",
            Some(&self.key_id),
            &self.previous_keys,
            problems,
        );
    }

    /// Reads the key files and builds the keyring.
    pub fn keyring(&self) -> Result<Keyring, ConfigError> {
        let current = read_key("registry.key_file", &self.key, &self.key_file)?
            .ok_or_else(|| ConfigError::Invalid(vec!["registry.key_file: missing".to_owned()]))?;
        build_keyring(
            "registry",
            "registry.previous_keys",
            &self.key_id,
            &current,
            &self.previous_keys,
        )
    }
}
