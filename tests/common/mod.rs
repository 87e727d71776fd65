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

/// A webhook body fixture and what a real request for it carries besides the body: headers and
/// the URL's event segment (`/webhooks/<source>/<event>`), from the provider folder's optional
/// `requests.json` (`{"<name>": {"path_event": "...", "headers": {"name": "value"}}}`).
pub struct Fixture {
    pub name: String,
    pub body: Vec<u8>,
    pub path_event: Option<String>,
    pub headers: http::HeaderMap,
}

impl Fixture {
    pub fn bare(body: &[u8]) -> Self {
        Fixture {
            name: String::new(),
            body: body.to_vec(),
            path_event: None,
            headers: http::HeaderMap::new(),
        }
    }

    pub fn verified(&self) -> finhook::auth::Verified<'_> {
        match &self.path_event {
            Some(event) => finhook::auth::Verified::assume_at(&self.body, &self.headers, event),
            None => finhook::auth::Verified::assume(&self.body, &self.headers),
        }
    }
}

/// Every webhook body fixture of a provider, by name.
pub fn webhook_fixtures(provider: &str) -> Vec<Fixture> {
    let folder = fixtures_dir().join(provider);
    let requests: Value = std::fs::read(folder.join("requests.json"))
        .map(|bytes| serde_json::from_slice(&bytes).expect("requests.json parses"))
        .unwrap_or(Value::Null);
    let Ok(entries) = std::fs::read_dir(&folder) else {
        return Vec::new();
    };
    let mut found: Vec<Fixture> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .filter(|path| {
            let file = path.file_name().unwrap().to_str().unwrap();
            !file.starts_with("signature-") && file != "requests.json"
        })
        .map(|path| {
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let request = &requests[&name];
            let mut headers = http::HeaderMap::new();
            if let Some(pairs) = request["headers"].as_object() {
                for (header, value) in pairs {
                    headers.insert(
                        http::HeaderName::from_bytes(header.as_bytes()).unwrap(),
                        value.as_str().unwrap().parse().unwrap(),
                    );
                }
            }
            Fixture {
                path_event: request["path_event"].as_str().map(str::to_owned),
                body: std::fs::read(&path).unwrap(),
                name,
                headers,
            }
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
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
/// caller's `FINHOOK_` environment or `RUST_LOG`, which would otherwise override the test's
/// configuration (its log level included).
pub fn binary(path: &str) -> std::process::Command {
    let mut command = std::process::Command::new(path);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("FINHOOK_")) {
        command.env_remove(name);
    }
    command.env_remove("RUST_LOG");
    command
}

/// The `finhook` binary, as [`binary`] runs it.
pub fn finhook() -> std::process::Command {
    binary(env!("CARGO_BIN_EXE_finhook"))
}

/// The `finhook-sim` binary, as [`binary`] runs it.
pub fn finhook_sim() -> std::process::Command {
    binary(env!("CARGO_BIN_EXE_finhook-sim"))
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

/// Whether `program` with `probe` runs (e.g. a Python module imports). On a developer's machine
/// a missing tool skips the test that needs it, saying so; in CI (.ci/run installs every tool)
/// it fails the test.
pub fn tool_available(program: &str, probe: &[&str], what: &str) -> bool {
    let available = std::process::Command::new(program)
        .args(probe)
        .status()
        .is_ok_and(|status| status.success());
    if !available {
        assert!(std::env::var_os("CI").is_none(), "CI must have {what}");
        eprintln!("SKIPPED: {what} is not installed");
    }
    available
}
