//! Personal data protected before it reaches Kafka: field policies applied to an envelope's
//! `data`, chosen per source (`protect = "<policy>"`).
//!
//! A policy names fields by JSON path (`resource.accounts.*.iban`, `*` for any array element or
//! member) and by presets for the data providers send (`iban`, `account_number`, `owner_name`,
//! `email`, `phone`, matched by member name at any depth), each with an action:
//! - `redact`: the value becomes `"[redacted]"`;
//! - `pseudonymize`: the value becomes `"psn:" + hex(HMAC-SHA256(key, text))[..32]` — stable under
//!   one key, so consumers can join and count without seeing the value (`text` is a string's
//!   own text, or another value's JSON);
//! - `encrypt`: the value becomes a sealed object, AES-256-GCM under the current key of a key
//!   list (rotation: older keys still open what they sealed), that an authorized consumer opens
//!   with its standard library or `finhook decrypt`:
//!   `{"sealed": "finhook-field:v1", "kid", "alg": "A256GCM", "nonce": base64(12 bytes),
//!   "ciphertext": base64(ct || tag)}`, additional authenticated data `finhook-field:v1`,
//!   plaintext the value's JSON text.
//!
//! The envelope says which policy was applied (`dataprotection`), so consumers know what they
//! read. docs/envelope.md, "Personal data", is the consumer's description.

use std::sync::Arc;

use serde_json::{Map, Value};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::keyring::{CryptoError, Keyring, Sealed};
use crate::secret::Secret;

/// The marker of a sealed field and its additional authenticated data.
pub const SEALED_FIELD: &str = "finhook-field:v1";
/// What a redacted value becomes.
pub const REDACTED_VALUE: &str = "[redacted]";

/// What is done to a chosen field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Redact,
    Pseudonymize,
    Encrypt,
}

/// Fields providers are known to send personal data in, chosen by member name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    Iban,
    AccountNumber,
    OwnerName,
    Email,
    Phone,
}

impl Preset {
    pub const ALL: [Preset; 5] = [
        Preset::Iban,
        Preset::AccountNumber,
        Preset::OwnerName,
        Preset::Email,
        Preset::Phone,
    ];

    /// Whether the member `name` of an object held under `parent` (the nearest member name
    /// above, through arrays) is this preset's. Both are [`normalized`] (no case, `_` or `-`).
    fn matches(self, name: &str, parent: Option<&str>) -> bool {
        match self {
            Preset::Iban => name == "iban",
            Preset::AccountNumber => {
                ["accountnumber", "bban", "sortcode", "accountno"].contains(&name)
            }
            Preset::OwnerName => {
                const NAMES: &[&str] = &[
                    "ownername",
                    "holdername",
                    "accountholdername",
                    "recipientname",
                    "payername",
                    "payeename",
                    "creditorname",
                    "debtorname",
                    "beneficiaryname",
                ];
                const PARENTS: &[&str] = &[
                    "owner",
                    "owners",
                    "holder",
                    "holders",
                    "accountholder",
                    "payer",
                    "payee",
                    "creditor",
                    "debtor",
                    "beneficiary",
                ];
                NAMES.contains(&name)
                    || (["name", "fullname"].contains(&name)
                        && parent.is_some_and(|parent| PARENTS.contains(&parent)))
            }
            Preset::Email => ["email", "emailaddress", "mail"].contains(&name),
            Preset::Phone => {
                ["phone", "phonenumber", "mobile", "mobilephone", "telephone"].contains(&name)
            }
        }
    }
}

/// Two letters, two digits and 11 to 30 letters or digits (an IBAN's shape, ISO 13616), alone or
/// as an `iban://` URI.
fn looks_like_iban(text: &str) -> bool {
    let text = text.strip_prefix("iban://").unwrap_or(text);
    let bytes = text.as_bytes();
    (15..=34).contains(&bytes.len())
        && bytes[..2].iter().all(u8::is_ascii_uppercase)
        && bytes[2..4].iter().all(u8::is_ascii_digit)
        && bytes[4..]
            .iter()
            .all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit())
}

fn normalized(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// One segment of a field path: a member name or index, or `*` for any.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Name(String),
    Any,
}

/// A field path, `resource.accounts.*.iban`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath(Vec<Segment>);

impl std::str::FromStr for FieldPath {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let segments: Vec<Segment> = text
            .split('.')
            .map(|segment| match segment {
                "" => Err(format!("`{text}` has an empty segment")),
                _ if segment.contains(['[', ']', '$']) => Err(format!(
                    "`{text}`: segments are member names or `*` (for any array element), e.g. `resource.accounts.*.iban`"
                )),
                "*" => Ok(Segment::Any),
                name => Ok(Segment::Name(name.to_owned())),
            })
            .collect::<Result<_, _>>()?;
        Ok(FieldPath(segments))
    }
}

impl FieldPath {
    fn matches(&self, path: &[String]) -> bool {
        self.0.len() == path.len()
            && self
                .0
                .iter()
                .zip(path)
                .all(|(segment, step)| match segment {
                    Segment::Any => true,
                    Segment::Name(name) => name == step,
                })
    }
}

/// What protecting a payload can run into; the event then goes to the dead-letter topic rather
/// than out unprotected.
#[derive(Debug, thiserror::Error)]
pub enum ProtectError {
    /// serde_json refuses payloads nested deeper than 128 levels, which also bounds the
    /// recursion of [`Policy::apply`]'s walk.
    #[error("the payload cannot be read to protect it: {0}")]
    Unreadable(#[from] serde_json::Error),
}

/// A named policy with the keys it needs.
pub struct Policy {
    pub name: String,
    presets: Vec<Preset>,
    preset_action: Action,
    fields: Vec<(FieldPath, Action)>,
    /// HMAC-SHA256 keyed once; each token clones it (no key schedule per value).
    pseudonymizer: Option<Hmac<Sha256>>,
    keyring: Option<Arc<Keyring>>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("name", &self.name)
            .field("presets", &self.presets)
            .field("preset_action", &self.preset_action)
            .field("fields", &self.fields.len())
            .finish()
    }
}

impl Policy {
    pub fn new(
        name: &str,
        presets: Vec<Preset>,
        preset_action: Action,
        fields: Vec<(FieldPath, Action)>,
        pseudonymize_key: Option<Secret>,
        keyring: Option<Arc<Keyring>>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            presets,
            preset_action,
            fields,
            pseudonymizer: pseudonymize_key.map(|key| {
                <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(key.expose().as_bytes())
                    .expect("HMAC takes keys of any length")
            }),
            keyring,
        }
    }

    /// The payload `data` (valid JSON) with the policy applied, as compact JSON.
    pub fn apply(&self, data: &str) -> Result<String, ProtectError> {
        let mut value: Value = serde_json::from_str(data)?;
        let mut path = Vec::new();
        self.visit(&mut value, &mut path, None);
        Ok(serde_json::to_string(&value).expect("a JSON value serializes"))
    }

    /// `path` is kept only when the policy has explicit fields (it costs an allocation per
    /// member); `parent` is the nearest member name above, normalized.
    fn visit(&self, value: &mut Value, path: &mut Vec<String>, parent: Option<&str>) {
        let track = !self.fields.is_empty();
        match value {
            Value::Object(members) => {
                for (name, member) in members.iter_mut() {
                    if track {
                        path.push(name.clone());
                    }
                    let normal = (!self.presets.is_empty()).then(|| normalized(name));
                    match self.action_for(path, normal.as_deref(), parent) {
                        Some(action) => *member = self.protect(action, member),
                        None => self.visit(member, path, normal.as_deref()),
                    }
                    if track {
                        path.pop();
                    }
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter_mut().enumerate() {
                    if track {
                        path.push(index.to_string());
                    }
                    match track.then(|| self.explicit_action(path)).flatten() {
                        Some(action) => *item = self.protect(action, item),
                        None => self.visit(item, path, parent),
                    }
                    if track {
                        path.pop();
                    }
                }
            }
            // An IBAN where no member name says so (Tink's `"uri": "iban://FR76…"`).
            Value::String(text)
                if self.presets.contains(&Preset::Iban) && looks_like_iban(text) =>
            {
                *value = self.protect(self.preset_action, value);
            }
            _ => {}
        }
    }

    fn explicit_action(&self, path: &[String]) -> Option<Action> {
        self.fields
            .iter()
            .find(|(field, _)| field.matches(path))
            .map(|(_, action)| *action)
    }

    /// An explicit field rule wins over a preset. `name` is normalized (absent without
    /// presets).
    fn action_for(
        &self,
        path: &[String],
        name: Option<&str>,
        parent: Option<&str>,
    ) -> Option<Action> {
        let explicit = if self.fields.is_empty() {
            None
        } else {
            self.explicit_action(path)
        };
        explicit.or_else(|| {
            let name = name?;
            self.presets
                .iter()
                .any(|preset| preset.matches(name, parent))
                .then_some(self.preset_action)
        })
    }

    fn protect(&self, action: Action, value: &Value) -> Value {
        // `null` carries nothing to protect, and turning it into a token would invent data.
        if value.is_null() {
            return Value::Null;
        }
        match action {
            Action::Redact => Value::String(REDACTED_VALUE.to_owned()),
            Action::Pseudonymize => {
                let mut hmac = self
                    .pseudonymizer
                    .clone()
                    .expect("validation requires a pseudonymize key for this action");
                match value {
                    Value::String(text) => hmac.update(text.as_bytes()),
                    other => hmac.update(other.to_string().as_bytes()),
                }
                let token = hmac.finalize().into_bytes();
                Value::String(format!("psn:{}", hex::encode(&token[..16])))
            }
            Action::Encrypt => {
                let keyring = self
                    .keyring
                    .as_ref()
                    .expect("validation requires an encryption key for this action");
                let sealed =
                    keyring.seal_with(SEALED_FIELD.as_bytes(), value.to_string().as_bytes());
                sealed_value(sealed)
            }
        }
    }
}

fn sealed_value(sealed: Sealed) -> Value {
    let mut object = Map::new();
    object.insert("sealed".to_owned(), Value::String(SEALED_FIELD.to_owned()));
    object.insert("kid".to_owned(), Value::String(sealed.kid));
    object.insert("alg".to_owned(), Value::String(sealed.alg));
    object.insert("nonce".to_owned(), Value::String(sealed.nonce));
    object.insert("ciphertext".to_owned(), Value::String(sealed.ciphertext));
    Value::Object(object)
}

/// Opens every sealed field of `value` in place (what `finhook decrypt` does to `data`).
pub fn open_sealed_fields(keyring: &Keyring, value: &mut Value) -> Result<usize, CryptoError> {
    let mut opened = 0;
    match value {
        Value::Object(members)
            if members.get("sealed").and_then(Value::as_str) == Some(SEALED_FIELD) =>
        {
            let field = |name: &str| {
                members
                    .get(name)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or(CryptoError::Malformed)
            };
            let sealed = Sealed {
                kid: field("kid")?,
                alg: field("alg")?,
                nonce: field("nonce")?,
                ciphertext: field("ciphertext")?,
            };
            let plaintext = keyring.open_with(SEALED_FIELD.as_bytes(), &sealed)?;
            *value = serde_json::from_slice(&plaintext).map_err(|_| CryptoError::Malformed)?;
            opened += 1;
        }
        Value::Object(members) => {
            for member in members.values_mut() {
                opened += open_sealed_fields(keyring, member)?;
            }
        }
        Value::Array(items) => {
            for item in items {
                opened += open_sealed_fields(keyring, item)?;
            }
        }
        _ => {}
    }
    Ok(opened)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn keyring(id: &str) -> Arc<Keyring> {
        Arc::new(Keyring::new(id, &Secret::new(KEY)).unwrap())
    }

    fn policy(presets: Vec<Preset>, action: Action, fields: &[(&str, Action)]) -> Policy {
        Policy::new(
            "test",
            presets,
            action,
            fields
                .iter()
                .map(|(path, action)| (path.parse().unwrap(), *action))
                .collect(),
            Some(Secret::new("pseudonym-key")),
            Some(keyring("f1")),
        )
    }

    const BODY: &str = r#"{"resource":{"owner":{"name":"M JEAN DUPONT"},"accounts":[
        {"iban":"FR7612345678901234567890123","account_number":"12345678901","balance":10,
         "owner":{"name":"Mr Jean Dupont"},"name":"Compte Courant"},
        {"IBAN":null,"accountNumber":"09876543210","name":"Livret A"}]},
        "user":{"email":"jean@example.com","phone_number":"+33600000000"}}"#;

    #[test]
    fn presets_find_the_fields_at_any_depth_and_leave_the_rest() {
        let protected = policy(Preset::ALL.to_vec(), Action::Redact, &[])
            .apply(BODY)
            .unwrap();
        let value: Value = serde_json::from_str(&protected).unwrap();
        for secret in [
            "FR76",
            "12345678901",
            "09876543210",
            "DUPONT",
            "Dupont",
            "jean@",
            "+336",
        ] {
            assert!(!protected.contains(secret), "{secret} left in {protected}");
        }
        assert_eq!(
            value["resource"]["accounts"][0]["name"], "Compte Courant",
            "an account's name is not an owner's"
        );
        assert_eq!(value["resource"]["accounts"][0]["balance"], 10);
        assert_eq!(
            value["resource"]["accounts"][1]["IBAN"],
            Value::Null,
            "null stays null"
        );
        assert_eq!(value["resource"]["owner"]["name"], REDACTED_VALUE);
    }

    #[test]
    fn an_iban_is_found_by_its_shape_where_no_name_says_so() {
        let body = r#"{"source":{"uri":"iban://FR7611808009101234567890147","note":"FR76 is France"},"ref":"AB12"}"#;
        let protected = policy(vec![Preset::Iban], Action::Redact, &[])
            .apply(body)
            .unwrap();
        assert!(
            !protected.contains("FR7611808009101234567890147"),
            "{protected}"
        );
        assert!(protected.contains("FR76 is France") && protected.contains("AB12"));
    }

    #[test]
    fn pseudonyms_are_stable_per_key_and_differ_between_values() {
        let one = policy(vec![Preset::Iban], Action::Pseudonymize, &[]);
        let a: Value = serde_json::from_str(&one.apply(BODY).unwrap()).unwrap();
        let b: Value = serde_json::from_str(&one.apply(BODY).unwrap()).unwrap();
        let token = a["resource"]["accounts"][0]["iban"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(token.starts_with("psn:") && token.len() == 36, "{token}");
        assert_eq!(token, b["resource"]["accounts"][0]["iban"]);
        // Computed outside finhook (Python's hmac): hex(HMAC-SHA256("pseudonym-key", IBAN))[:32].
        assert_eq!(token, "psn:62511fa826d70f285e21a030d192d58a");
    }

    #[test]
    fn explicit_paths_with_wildcards_win_over_presets() {
        let rules = policy(
            vec![Preset::Iban],
            Action::Pseudonymize,
            &[
                ("resource.accounts.*.iban", Action::Redact),
                ("resource.accounts.*.balance", Action::Encrypt),
            ],
        );
        let value: Value = serde_json::from_str(&rules.apply(BODY).unwrap()).unwrap();
        assert_eq!(value["resource"]["accounts"][0]["iban"], REDACTED_VALUE);
        assert_eq!(
            value["resource"]["accounts"][0]["balance"]["sealed"],
            SEALED_FIELD
        );
        assert!(value["resource"]["accounts"][1].get("balance").is_none());
    }

    #[test]
    fn encrypted_fields_open_with_the_key_list_after_a_rotation() {
        let before = policy(vec![Preset::Iban, Preset::OwnerName], Action::Encrypt, &[]);
        let mut old: Value = serde_json::from_str(&before.apply(BODY).unwrap()).unwrap();
        assert_eq!(old["resource"]["accounts"][0]["iban"]["kid"], "f1");
        // Rotated: f2 seals, f1 still opens.
        let rotated = Keyring::new("f2", &Secret::new(crate::keyring::generate_key()))
            .unwrap()
            .with_previous("f1", &Secret::new(KEY))
            .unwrap();
        let opened = open_sealed_fields(&rotated, &mut old).unwrap();
        assert_eq!(
            opened, 3,
            "one IBAN (the other is null) and two owner names"
        );
        let original: Value = serde_json::from_str(BODY).unwrap();
        assert_eq!(old, original);
        // A key that was dropped no longer opens.
        let other = Keyring::new("f3", &Secret::new(crate::keyring::generate_key())).unwrap();
        let mut again: Value = serde_json::from_str(&before.apply(BODY).unwrap()).unwrap();
        assert!(open_sealed_fields(&other, &mut again).is_err());
    }

    #[test]
    fn paths_in_another_syntax_are_refused_rather_than_never_matching() {
        for bad in ["resource.accounts[*].iban", "$.resource", "a..b"] {
            assert!(bad.parse::<FieldPath>().is_err(), "{bad}");
        }
        assert!("resource.accounts.*.iban".parse::<FieldPath>().is_ok());
    }

    #[test]
    fn too_deep_a_payload_is_refused_not_published_unprotected() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let error = policy(vec![Preset::Iban], Action::Redact, &[])
            .apply(&deep)
            .unwrap_err();
        assert!(error.to_string().contains("recursion limit"), "{error}");
    }
}
