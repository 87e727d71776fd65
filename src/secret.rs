//! Secrets in configuration: never printed, given inline, by environment or as a file path.

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The text every secret prints as, in `Debug`, in logs and in `check-config`.
pub const REDACTED: &str = "[redacted]";

/// A secret value. `Debug` and `Serialize` print [`REDACTED`]; only [`Secret::expose`] reveals it.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The secret's bytes, for the one place that needs them (an HMAC key, a comparison).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Reads a secret mounted as a file. A single trailing newline is removed, because
    /// `echo secret > file` and most secret stores write one, and it is never part of a secret.
    pub fn from_file(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        let trimmed = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(&text);
        Ok(Self::new(trimmed))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

/// Resolves a secret written as `KEY` (inline or from the environment, which figment merges into
/// the same key) or `KEY_file` (a path). Giving both is refused by validation before this runs.
pub fn resolve(inline: &Option<Secret>, file: &Option<PathBuf>) -> std::io::Result<Option<Secret>> {
    match (inline, file) {
        (Some(secret), _) => Ok(Some(secret.clone())),
        (None, Some(path)) => Secret::from_file(path).map(Some),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_serialize_never_show_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(
            serde_json::to_string(&secret).unwrap(),
            format!("\"{REDACTED}\"")
        );
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn file_secret_loses_one_trailing_newline_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "  spaced secret \n").unwrap();
        assert_eq!(
            Secret::from_file(&path).unwrap().expose(),
            "  spaced secret "
        );
    }
}
