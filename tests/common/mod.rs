//! Helpers shared by the test binaries: fixtures and the envelope JSON Schema.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn fixture(relative: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(relative))
        .unwrap_or_else(|error| panic!("{relative}: {error}"))
}

/// Every webhook body fixture of a provider: (file name, bytes).
pub fn webhook_fixtures(provider: &str) -> Vec<(String, Vec<u8>)> {
    let mut found: Vec<(String, Vec<u8>)> = std::fs::read_dir(fixtures_dir().join(provider))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .filter(|path| {
            !path
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("signature-")
        })
        .map(|path| {
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    found.sort();
    found
}

pub struct EnvelopeSchema(jsonschema::Validator);

/// A JSON Schema of `schemas/`, compiled with format checks on.
fn compile_schema(file: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(file);
    let schema: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|error| panic!("{file} compiles: {error}"))
}

fn assert_conforms(validator: &jsonschema::Validator, instance: &Value, what: &str, schema: &str) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|error| format!("{} at {}", error, error.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} violates {schema}: {errors:#?}\n{instance:#}"
    );
}

impl EnvelopeSchema {
    pub fn load() -> Self {
        Self(compile_schema("envelope.schema.json"))
    }

    /// Panics with every violation when `envelope` does not conform.
    pub fn assert_valid(&self, envelope: &Value, what: &str) {
        assert_conforms(&self.0, envelope, what, "the envelope schema");
    }

    pub fn schema_types() -> Vec<String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/envelope.schema.json");
        let schema: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        schema["properties"]["type"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|value| value.as_str().unwrap().to_owned())
            .collect()
    }
}

/// A command running one of the package's binaries (`env!("CARGO_BIN_EXE_...")`) without the
/// caller's `FINHOOK_` environment, which would otherwise override the test's configuration.
pub fn binary(path: &str) -> std::process::Command {
    let mut command = std::process::Command::new(path);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("FINHOOK_")) {
        command.env_remove(name);
    }
    command
}

/// schemas/dead-letter.schema.json: a dead-letter record's headers as a JSON object.
pub struct DeadLetterSchema(jsonschema::Validator);

impl DeadLetterSchema {
    pub fn load() -> Self {
        Self(compile_schema("dead-letter.schema.json"))
    }

    pub fn assert_valid(&self, headers: &std::collections::BTreeMap<String, String>) {
        let instance = serde_json::to_value(headers).unwrap();
        assert_conforms(
            &self.0,
            &instance,
            "a dead letter",
            "the dead-letter schema",
        );
    }
}
