//! The users registry's record format, version 1: key = the Oxlin user id, value = a small JSON
//! document (schemas/user-record.schema.json), or null (a tombstone) to remove the user.

use serde::{Deserialize, Serialize};

use crate::config::UserCredentials;
use crate::keyring::{CryptoError, Keyring, Sealed};
use crate::secret::Secret;

pub const RECORD_VERSION: u32 = 1;

/// A registry record's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    /// Always 1 for this format; a reader refuses versions it does not know.
    pub version: u32,
    /// The `[pollers.NAME]` that polls this user.
    pub poller: String,
    /// A disabled user stays registered but is not polled.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Queue subscription topics; absent: the poller's `topics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
    /// A queue the provider already gave this user (its widget flows return one): polled instead
    /// of a fresh subscription while it lives. An id, a `/queues/{id}` path or a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// The credentials, encrypted (see `keyring`).
    pub credentials: Sealed,
}

fn enabled_by_default() -> bool {
    true
}

/// What sealed credentials hold: a static access token, or the password grant's pair.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlainCredentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl PlainCredentials {
    pub fn from_credentials(credentials: &UserCredentials) -> Self {
        match credentials {
            UserCredentials::AccessToken(token) => Self {
                access_token: Some(token.expose().to_owned()),
                username: None,
                password: None,
            },
            UserCredentials::Password { username, password } => Self {
                access_token: None,
                username: Some(username.expose().to_owned()),
                password: Some(password.expose().to_owned()),
            },
        }
    }

    pub fn into_credentials(self) -> Result<UserCredentials, RecordError> {
        let filled = |value: Option<String>| value.filter(|value| !value.is_empty());
        match (
            filled(self.access_token),
            filled(self.username),
            filled(self.password),
        ) {
            (Some(token), None, None) => Ok(UserCredentials::AccessToken(Secret::new(token))),
            (None, Some(username), Some(password)) => Ok(UserCredentials::Password {
                username: Secret::new(username),
                password: Secret::new(password),
            }),
            _ => Err(RecordError::Credentials),
        }
    }
}

/// A user as the registry says it should be polled.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredUser {
    pub id: String,
    pub poller: String,
    pub enabled: bool,
    pub topics: Option<Vec<String>>,
    pub queue: Option<String>,
    pub credentials: UserCredentials,
}

/// Why a registry record was skipped. Reasons come from a fixed set (a metric label); messages
/// never hold a secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("the record key is not a user id")]
    Key,
    #[error("the record is not a version-1 user record: {0}")]
    Format(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("the credentials hold neither an access_token nor a username and password")]
    Credentials,
}

impl RecordError {
    pub const REASONS: [&'static str; 4] = [
        "invalid_key",
        "invalid_record",
        "undecryptable",
        "invalid_credentials",
    ];

    pub fn reason(&self) -> &'static str {
        match self {
            RecordError::Key => "invalid_key",
            RecordError::Format(_) => "invalid_record",
            RecordError::Crypto(_) => "undecryptable",
            RecordError::Credentials => "invalid_credentials",
        }
    }
}

/// A registry record, read: a user to poll, or a tombstone.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistryEntry {
    User(Box<RegisteredUser>),
    Removed(String),
}

/// The user id a record key names.
pub fn user_id(key: Option<&[u8]>) -> Result<String, RecordError> {
    let id = std::str::from_utf8(key.ok_or(RecordError::Key)?).map_err(|_| RecordError::Key)?;
    if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
        return Err(RecordError::Key);
    }
    Ok(id.to_owned())
}

/// Reads one record of the users topic.
pub fn decode(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    keyring: &Keyring,
) -> Result<RegistryEntry, RecordError> {
    let id = user_id(key)?;
    let Some(value) = value else {
        return Ok(RegistryEntry::Removed(id));
    };
    // Only the kind of error and its position: serde's messages can quote a value (a token a
    // producer mistakenly wrote in clear, say), and this one is logged.
    let record: UserRecord = serde_json::from_slice(value).map_err(|error| {
        RecordError::Format(format!(
            "{:?} error at line {} column {}",
            error.classify(),
            error.line(),
            error.column()
        ))
    })?;
    if record.version != RECORD_VERSION {
        return Err(RecordError::Format(format!(
            "version {} is not {RECORD_VERSION}",
            record.version
        )));
    }
    let plaintext = keyring.open(&id, &record.credentials)?;
    let plain: PlainCredentials =
        serde_json::from_slice(&plaintext).map_err(|_| RecordError::Credentials)?;
    Ok(RegistryEntry::User(Box::new(RegisteredUser {
        credentials: plain.into_credentials()?,
        id,
        poller: record.poller,
        enabled: record.enabled,
        topics: record.topics.filter(|topics| !topics.is_empty()),
        queue: record.queue.filter(|queue| !queue.trim().is_empty()),
    })))
}

/// Builds the record value for a user: credentials sealed under the ring's current key.
pub fn encode(user: &RegisteredUser, keyring: &Keyring) -> Vec<u8> {
    let plaintext = serde_json::to_vec(&PlainCredentials::from_credentials(&user.credentials))
        .expect("credentials serialize");
    let record = UserRecord {
        version: RECORD_VERSION,
        poller: user.poller.clone(),
        enabled: user.enabled,
        topics: user.topics.clone(),
        queue: user.queue.clone(),
        credentials: keyring.seal(&user.id, &plaintext),
    };
    serde_json::to_vec(&record).expect("a record serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        Keyring::new("k1", &Secret::new("ab".repeat(32))).unwrap()
    }

    fn user(credentials: UserCredentials) -> RegisteredUser {
        RegisteredUser {
            id: "321".to_owned(),
            poller: "oxlin".to_owned(),
            enabled: true,
            topics: None,
            queue: Some("/queues/abc".to_owned()),
            credentials,
        }
    }

    #[test]
    fn a_record_round_trips_and_holds_no_secret_in_clear() {
        let ring = ring();
        let original = user(UserCredentials::Password {
            username: Secret::new("jean@example.com"),
            password: Secret::new("hunter2"),
        });
        let value = encode(&original, &ring);
        let text = String::from_utf8(value.clone()).unwrap();
        assert!(
            !text.contains("jean@example.com") && !text.contains("hunter2"),
            "{text}"
        );
        let read = decode(Some(b"321"), Some(&value), &ring).unwrap();
        assert_eq!(read, RegistryEntry::User(Box::new(original)));
    }

    #[test]
    fn encoded_records_follow_the_published_schema() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/user-record.schema.json"
        );
        let schema: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let mut with_everything = user(UserCredentials::AccessToken(Secret::new("t")));
        with_everything.topics = Some(vec!["connections".to_owned()]);
        with_everything.enabled = false;
        for user in [
            with_everything,
            user(UserCredentials::Password {
                username: Secret::new("u"),
                password: Secret::new("p"),
            }),
        ] {
            let record: serde_json::Value =
                serde_json::from_slice(&encode(&user, &ring())).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&record)
                .map(|error| error.to_string())
                .collect();
            assert!(errors.is_empty(), "{errors:?}\n{record}");
        }
        // And the schema refuses what the reader refuses.
        let wrong_version = serde_json::json!({"version": 2, "poller": "oxlin",
            "credentials": {"kid": "k", "alg": "A256GCM", "nonce": "AAAAAAAAAAAAAAAA",
            "ciphertext": "AAAAAAAAAAAAAAAAAAAAAAAA"}});
        assert!(!validator.is_valid(&wrong_version));
    }

    #[test]
    fn a_malformed_record_never_quotes_its_values_in_the_error() {
        let value = br#"{"version":1,"poller":"oxlin","credentials":"plain-token-1234"}"#;
        let error = decode(Some(b"321"), Some(value), &ring()).unwrap_err();
        assert_eq!(error.reason(), "invalid_record");
        assert!(!error.to_string().contains("plain-token"), "{error}");
    }

    #[test]
    fn a_tombstone_removes_the_user() {
        assert_eq!(
            decode(Some(b"321"), None, &ring()).unwrap(),
            RegistryEntry::Removed("321".to_owned())
        );
    }

    #[test]
    fn unreadable_records_say_why_with_a_fixed_reason() {
        let ring = ring();
        let value = encode(&user(UserCredentials::AccessToken(Secret::new("t"))), &ring);
        let reason = |key: Option<&[u8]>, value: &[u8]| {
            decode(key, Some(value), &ring).unwrap_err().reason()
        };
        assert_eq!(reason(None, &value), "invalid_key");
        assert_eq!(reason(Some(b"321"), b"{not json"), "invalid_record");
        let future = String::from_utf8(value.clone())
            .unwrap()
            .replace("\"version\":1", "\"version\":2");
        assert_eq!(reason(Some(b"321"), future.as_bytes()), "invalid_record");
        // Sealed for user 321: moved under another key, it does not open.
        assert_eq!(reason(Some(b"999"), &value), "undecryptable");
        let empty = serde_json::to_vec(&UserRecord {
            version: 1,
            poller: "oxlin".to_owned(),
            enabled: true,
            topics: None,
            queue: None,
            credentials: ring.seal("321", b"{}"),
        })
        .unwrap();
        assert_eq!(reason(Some(b"321"), &empty), "invalid_credentials");
    }
}
