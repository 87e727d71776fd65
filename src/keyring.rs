//! Credentials at rest in the users registry: AES-256-GCM under a key finhook reads from a
//! secret, with a key id in every record so that old keys keep decrypting during a rotation.
//!
//! The sealed form is plain JSON a service in any language can produce with its standard
//! library (see docs/operations.md, "The users registry"):
//! `{"kid": "k1", "alg": "A256GCM", "nonce": base64(12 bytes), "ciphertext": base64(ct || tag)}`,
//! with the additional authenticated data `finhook-user:v1:{user id}`, so a sealed value cannot be
//! moved to another user.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

pub const ALGORITHM: &str = "A256GCM";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the key `{0}` is not 32 bytes of base64 (or 64 hex digits)")]
    BadKey(String),
    #[error("no key with id `{0}` is configured")]
    UnknownKey(String),
    #[error("unsupported algorithm `{0}`")]
    Algorithm(String),
    #[error("the sealed credentials are malformed")]
    Malformed,
    #[error("the credentials do not decrypt (wrong key, other user, or tampered)")]
    Rejected,
}

/// Encrypted credentials as they sit in a registry record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sealed {
    pub kid: String,
    pub alg: String,
    pub nonce: String,
    pub ciphertext: String,
}

/// The current key (for sealing) and older ones (still opening records written before a
/// rotation).
pub struct Keyring {
    current: (String, Aes256Gcm),
    previous: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current.0)
            .field(
                "previous",
                &self.previous.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Reads a 256-bit key written as base64 (44 characters) or hex (64 digits).
pub fn parse_key(id: &str, text: &Secret) -> Result<Aes256Gcm, CryptoError> {
    let text = text.expose().trim();
    let bytes = BASE64
        .decode(text)
        .ok()
        .filter(|bytes| bytes.len() == 32)
        .or_else(|| hex::decode(text).ok().filter(|bytes| bytes.len() == 32))
        .ok_or_else(|| CryptoError::BadKey(id.to_owned()))?;
    Ok(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)))
}

/// A fresh random key, base64, for `finhook users keygen`.
pub fn generate_key() -> String {
    BASE64.encode(Aes256Gcm::generate_key(OsRng))
}

fn associated_data(user_id: &str) -> Vec<u8> {
    format!("finhook-user:v1:{user_id}").into_bytes()
}

impl Keyring {
    pub fn new(current_id: &str, current: &Secret) -> Result<Self, CryptoError> {
        Ok(Self {
            current: (current_id.to_owned(), parse_key(current_id, current)?),
            previous: Vec::new(),
        })
    }

    pub fn with_previous(mut self, id: &str, key: &Secret) -> Result<Self, CryptoError> {
        self.previous.push((id.to_owned(), parse_key(id, key)?));
        Ok(self)
    }

    pub fn current_id(&self) -> &str {
        &self.current.0
    }

    /// Encrypts `plaintext` for `user_id` under the current key, with a fresh random nonce.
    pub fn seal(&self, user_id: &str, plaintext: &[u8]) -> Sealed {
        self.seal_with(&associated_data(user_id), plaintext)
    }

    /// Decrypts credentials sealed for `user_id` under any key of the ring.
    pub fn open(&self, user_id: &str, sealed: &Sealed) -> Result<Vec<u8>, CryptoError> {
        self.open_with(&associated_data(user_id), sealed)
    }

    /// Encrypts `plaintext` under the current key, bound to `aad` (what it may be opened as).
    pub fn seal_with(&self, aad: &[u8], plaintext: &[u8]) -> Sealed {
        let (id, cipher) = &self.current;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("AES-GCM encrypts any message under 64 GiB");
        Sealed {
            kid: id.clone(),
            alg: ALGORITHM.to_owned(),
            nonce: BASE64.encode(nonce),
            ciphertext: BASE64.encode(ciphertext),
        }
    }

    /// Decrypts what was sealed for `aad` under any key of the ring.
    pub fn open_with(&self, aad: &[u8], sealed: &Sealed) -> Result<Vec<u8>, CryptoError> {
        if sealed.alg != ALGORITHM {
            return Err(CryptoError::Algorithm(sealed.alg.clone()));
        }
        let cipher = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|(id, _)| *id == sealed.kid)
            .map(|(_, cipher)| cipher)
            .ok_or_else(|| CryptoError::UnknownKey(sealed.kid.clone()))?;
        let nonce = BASE64
            .decode(&sealed.nonce)
            .ok()
            .filter(|nonce| nonce.len() == 12)
            .ok_or(CryptoError::Malformed)?;
        let ciphertext = BASE64
            .decode(&sealed.ciphertext)
            .map_err(|_| CryptoError::Malformed)?;
        cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Secret {
        Secret::new(BASE64.encode([byte; 32]))
    }

    #[test]
    fn sealed_credentials_round_trip_and_never_repeat_a_nonce() {
        let ring = Keyring::new("k1", &key(1)).unwrap();
        let first = ring.seal("321", b"{\"access_token\":\"t\"}");
        let second = ring.seal("321", b"{\"access_token\":\"t\"}");
        assert_ne!(first.nonce, second.nonce);
        assert_ne!(first.ciphertext, second.ciphertext);
        assert_eq!(
            ring.open("321", &first).unwrap(),
            b"{\"access_token\":\"t\"}"
        );
        assert!(!first.ciphertext.contains("access_token"));
    }

    #[test]
    fn old_keys_keep_decrypting_after_a_rotation() {
        let old = Keyring::new("k0", &key(0)).unwrap();
        let sealed = old.seal("u", b"secret");
        let rotated = Keyring::new("k1", &key(1))
            .unwrap()
            .with_previous("k0", &key(0))
            .unwrap();
        assert_eq!(rotated.open("u", &sealed).unwrap(), b"secret");
        assert_eq!(rotated.seal("u", b"x").kid, "k1");
        let forgotten = Keyring::new("k1", &key(1)).unwrap();
        assert_eq!(
            forgotten.open("u", &sealed),
            Err(CryptoError::UnknownKey("k0".to_owned()))
        );
    }

    #[test]
    fn tampered_or_moved_ciphertext_is_rejected() {
        let ring = Keyring::new("k1", &key(1)).unwrap();
        let sealed = ring.seal("alice", b"secret");
        assert_eq!(ring.open("bob", &sealed), Err(CryptoError::Rejected));
        let mut bytes = BASE64.decode(&sealed.ciphertext).unwrap();
        bytes[0] ^= 1;
        let tampered = Sealed {
            ciphertext: BASE64.encode(bytes),
            ..sealed.clone()
        };
        assert_eq!(ring.open("alice", &tampered), Err(CryptoError::Rejected));
        let same_id_other_key = Keyring::new("k1", &key(2)).unwrap();
        assert_eq!(
            same_id_other_key.open("alice", &sealed),
            Err(CryptoError::Rejected)
        );
        let garbled = Sealed {
            nonce: "!!".to_owned(),
            ..sealed
        };
        assert_eq!(ring.open("alice", &garbled), Err(CryptoError::Malformed));
    }

    #[test]
    fn keys_are_32_bytes_of_base64_or_hex() {
        assert!(parse_key("a", &Secret::new(generate_key())).is_ok());
        assert!(parse_key("h", &Secret::new("ab".repeat(32))).is_ok());
        assert_eq!(
            parse_key("s", &Secret::new("c2hvcnQ=")).err(),
            Some(CryptoError::BadKey("s".to_owned()))
        );
    }
}
