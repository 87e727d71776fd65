//! `[protection]`: the keys and named policies that protect personal data before Kafka
//! (see [`crate::protection`]); a source uses one with `protect = "<name>"`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::registry::{build_keyring, read_key, PreviousKey};
use super::ConfigError;
use crate::keyring::Keyring;
use crate::protection::{Action, FieldPath, Policy, Preset};
use crate::secret::Secret;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectionConfig {
    /// The HMAC key of `pseudonymize`: tokens are stable for as long as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonymize_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonymize_key_file: Option<PathBuf>,
    /// The id of the AES-256 key `encrypt` seals with (written in every sealed field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key_id: Option<String>,
    /// That key: 32 bytes as base64 or hex (`finhook users keygen` makes one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key_file: Option<PathBuf>,
    /// Keys rotated out: `finhook decrypt` still opens what they sealed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_encryption_keys: Vec<PreviousKey>,
    #[serde(default)]
    pub policies: BTreeMap<String, PolicyConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Fields chosen by member name at any depth: `iban`, `account_number`, `owner_name`,
    /// `email`, `phone`.
    #[serde(default)]
    pub presets: Vec<Preset>,
    /// What the presets' fields get (default `pseudonymize`).
    #[serde(default = "default_preset_action")]
    pub preset_action: Action,
    /// Fields chosen by path, `resource.accounts.*.iban`; a path wins over a preset.
    #[serde(default)]
    pub fields: Vec<FieldRule>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    pub path: String,
    pub action: Action,
}

fn default_preset_action() -> Action {
    Action::Pseudonymize
}

impl PolicyConfig {
    fn actions(&self) -> impl Iterator<Item = Action> + '_ {
        let preset = (!self.presets.is_empty()).then_some(self.preset_action);
        preset
            .into_iter()
            .chain(self.fields.iter().map(|rule| rule.action))
    }
}

impl ProtectionConfig {
    /// Checks without IO; `used` are the policy names sources refer to, with the key that does.
    pub(super) fn validate(&self, used: &[(String, String)], problems: &mut Vec<String>) {
        for (key, name) in used {
            if !self.policies.contains_key(name) {
                problems.push(format!(
                    "{key}: no policy `{name}` under [protection.policies]"
                ));
            }
        }
        let has =
            |inline: &Option<Secret>, file: &Option<PathBuf>| inline.is_some() || file.is_some();
        for (name, policy) in &self.policies {
            let key = format!("protection.policies.{name}");
            if policy.presets.is_empty() && policy.fields.is_empty() {
                problems.push(format!("{key}: give `presets` or `fields`"));
            }
            for (index, rule) in policy.fields.iter().enumerate() {
                if let Err(problem) = rule.path.parse::<FieldPath>() {
                    problems.push(format!("{key}.fields[{index}].path: {problem}"));
                }
            }
            let actions: Vec<Action> = policy.actions().collect();
            if actions.contains(&Action::Pseudonymize)
                && !has(&self.pseudonymize_key, &self.pseudonymize_key_file)
            {
                problems.push(format!(
                    "{key}: pseudonymize needs protection.pseudonymize_key (or _file)"
                ));
            }
            if actions.contains(&Action::Encrypt)
                && (self.encryption_key_id.is_none()
                    || !has(&self.encryption_key, &self.encryption_key_file))
            {
                problems.push(format!(
                    "{key}: encrypt needs protection.encryption_key_id and encryption_key (or _file)"
                ));
            }
        }
        if self.pseudonymize_key.is_some() && self.pseudonymize_key_file.is_some() {
            problems.push(
                "protection: give pseudonymize_key or pseudonymize_key_file, not both".to_owned(),
            );
        }
        if self.encryption_key.is_some() && self.encryption_key_file.is_some() {
            problems.push(
                "protection: give encryption_key or encryption_key_file, not both".to_owned(),
            );
        }
        super::registry::check_previous_keys(
            "protection.previous_encryption_keys",
            self.encryption_key_id.as_deref(),
            &self.previous_encryption_keys,
            problems,
        );
    }

    /// The encryption keys, files read; `None` without an encryption key.
    pub fn keyring(&self) -> Result<Option<Keyring>, ConfigError> {
        let Some(id) = &self.encryption_key_id else {
            return Ok(None);
        };
        let Some(current) = read_key(
            "protection.encryption_key_file",
            &self.encryption_key,
            &self.encryption_key_file,
        )?
        else {
            return Ok(None);
        };
        build_keyring(
            "protection",
            "protection.previous_encryption_keys",
            id,
            &current,
            &self.previous_encryption_keys,
        )
        .map(Some)
    }

    /// Every policy, keys read, by name.
    pub fn policies(&self) -> Result<BTreeMap<String, Arc<Policy>>, ConfigError> {
        if self.policies.is_empty() {
            return Ok(BTreeMap::new());
        }
        let pseudonymize_key = read_key(
            "protection.pseudonymize_key_file",
            &self.pseudonymize_key,
            &self.pseudonymize_key_file,
        )?;
        let keyring = self.keyring()?.map(Arc::new);
        let mut policies = BTreeMap::new();
        for (name, policy) in &self.policies {
            let fields = policy
                .fields
                .iter()
                .map(|rule| {
                    rule.path
                        .parse()
                        .map(|path| (path, rule.action))
                        .map_err(|problem| {
                            ConfigError::Invalid(vec![format!(
                                "protection.policies.{name}: {problem}"
                            )])
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            policies.insert(
                name.clone(),
                Arc::new(Policy::new(
                    name,
                    policy.presets.clone(),
                    policy.preset_action,
                    fields,
                    pseudonymize_key.clone(),
                    keyring.clone(),
                )),
            );
        }
        Ok(policies)
    }
}
