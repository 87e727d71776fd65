//! Poller configuration: Oxlin queue pollers (`[pollers.NAME]`) and their users.
//!
//! The user list lives inline (`users = [...]`, fixed until restart) and/or in `users_file`,
//! re-read on SIGHUP and when the file changes, so thousands of users can be added and removed
//! without a restart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use super::ConfigError;
use crate::secret::{self, Secret};

/// Oxlin forgets a queue 15 minutes after its last query.
pub const QUEUE_EXPIRY: Duration = Duration::from_secs(15 * 60);
/// What a healthy poller must stay under between two queries of a queue.
const QUEUE_SAFETY_MARGIN: Duration = Duration::from_secs(60);
/// The longest time between two queries of a queue that keeps it alive, with a margin.
pub const QUEUE_BUDGET: Duration = QUEUE_EXPIRY.saturating_sub(QUEUE_SAFETY_MARGIN);

/// Whether a queue may lapse if `wait` passes before the next query is sent: the last query's
/// answer and a token request before the next one take up to `request_timeout` each.
pub fn queue_may_lapse(wait: Duration, request_timeout: Duration) -> bool {
    wait + request_timeout * 2 > QUEUE_BUDGET
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PollerKind {
    Oxlin,
}

/// Oxlin's published environments; `custom` takes `api_url` and `token_url` as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OxlinEnvironment {
    Sandbox,
    Production,
    Custom,
}

impl OxlinEnvironment {
    /// (API base URL, token endpoint) of a named environment.
    pub fn urls(self) -> Option<(&'static str, &'static str)> {
        match self {
            OxlinEnvironment::Sandbox => Some((
                "https://sandbox-api.oxlin.io/v2.1/",
                "https://sandbox-auth.oxlin.io/token",
            )),
            OxlinEnvironment::Production => {
                Some(("https://api.oxlin.io/v2.1/", "https://auth.oxlin.io/token"))
            }
            OxlinEnvironment::Custom => None,
        }
    }
}

/// How the token endpoint wants its request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenRequestFormat {
    Json,
    Form,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollerConfig {
    pub kind: PollerKind,
    pub environment: OxlinEnvironment,
    /// A `[protection.policies]` name applied to this poller's events (as a source's `protect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protect: Option<String>,
    /// Overrides the environment's API base URL (required with `environment = "custom"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<Url>,
    /// Overrides the environment's token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<Url>,
    /// Required; with `client_secret` (or `client_secret_file`) it authenticates the password
    /// grant.
    #[serde(default)]
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    /// OAuth2 scope asked for with the password grant.
    #[serde(default = "defaults::scope")]
    pub scope: String,
    #[serde(default = "defaults::token_request_format")]
    pub token_request_format: TokenRequestFormat,
    /// Queue subscription topics.
    #[serde(default = "defaults::topics")]
    pub topics: Vec<String>,
    /// Wait between two polls of an empty queue.
    #[serde(with = "humantime_serde", default = "defaults::interval")]
    pub interval: Duration,
    /// First and largest wait after a failed request (exponential, with jitter).
    #[serde(with = "humantime_serde", default = "defaults::backoff_initial")]
    pub backoff_initial: Duration,
    #[serde(with = "humantime_serde", default = "defaults::backoff_max")]
    pub backoff_max: Duration,
    /// Timeout of one HTTP request to Oxlin.
    #[serde(with = "humantime_serde", default = "defaults::request_timeout")]
    pub request_timeout: Duration,
    /// Outbound requests in flight at once, over all users of this poller.
    #[serde(default = "defaults::max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// How often `users_file` is checked for changes (SIGHUP also reloads it).
    #[serde(with = "humantime_serde", default = "defaults::reload_interval")]
    pub reload_interval: Duration,
    /// Users polled until restart.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// Users re-read on change: a TOML file of `[[users]]` tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users_file: Option<PathBuf>,
}

/// One polled Oxlin user: a static access token, or the password grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The Oxlin user id (carried in envelopes as `userid`).
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

impl PartialEq for Secret {
    /// Equality for change detection on reload (a user whose credentials changed restarts).
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

/// A user's resolved credentials.
#[derive(Debug, Clone, PartialEq)]
pub enum UserCredentials {
    AccessToken(Secret),
    Password { username: Secret, password: Secret },
}

/// The `users_file` format.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    users: Vec<UserConfig>,
}

/// Defaults of every optional poller key; config/default.toml documents them.
mod defaults {
    use std::time::Duration;

    use super::TokenRequestFormat;

    pub fn scope() -> String {
        "profile accounts_manage connections_manage connections_sync transactions_read".to_owned()
    }
    pub fn token_request_format() -> TokenRequestFormat {
        TokenRequestFormat::Json
    }
    pub fn topics() -> Vec<String> {
        vec!["connections".to_owned()]
    }
    pub fn interval() -> Duration {
        Duration::from_secs(10)
    }
    pub fn backoff_initial() -> Duration {
        Duration::from_secs(1)
    }
    pub fn backoff_max() -> Duration {
        Duration::from_secs(300)
    }
    pub fn request_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn reload_interval() -> Duration {
        Duration::from_secs(10)
    }
    pub fn max_concurrent_requests() -> usize {
        64
    }
}

impl PollerConfig {
    pub fn api_url(&self) -> Url {
        let base = self
            .api_url
            .clone()
            .or_else(|| {
                self.environment
                    .urls()
                    .map(|(api, _)| Url::parse(api).expect("preset URL"))
            })
            .expect("validated: custom environments give api_url");
        with_trailing_slash(base)
    }

    pub fn token_url(&self) -> Url {
        self.token_url
            .clone()
            .or_else(|| {
                self.environment
                    .urls()
                    .map(|(_, token)| Url::parse(token).expect("preset URL"))
            })
            .expect("validated: custom environments give token_url")
    }

    pub fn resolve_client_secret(&self, name: &str) -> Result<Option<Secret>, ConfigError> {
        secret::resolve(&self.client_secret, &self.client_secret_file).map_err(|source| {
            ConfigError::SecretFile {
                key: format!("pollers.{name}.client_secret_file"),
                path: self.client_secret_file.clone().unwrap_or_default(),
                source,
            }
        })
    }

    pub(super) fn validate(&self, name: &str, problems: &mut Vec<String>) {
        let key = format!("pollers.{name}");
        if !super::is_valid_source_name(name) {
            problems.push(format!(
                "{key}: poller names are 1-64 characters of a-z, 0-9, '_' and '-'"
            ));
        }
        if self.environment == OxlinEnvironment::Custom
            && (self.api_url.is_none() || self.token_url.is_none())
        {
            problems.push(format!(
                "{key}: environment = \"custom\" needs api_url and token_url"
            ));
        }
        if self.client_id.trim().is_empty() {
            problems.push(format!(
                "{key}.client_id: required: the client id Oxlin gave you"
            ));
        }
        match (&self.client_secret, &self.client_secret_file) {
            (Some(_), Some(_)) => problems.push(format!(
                "{key}: give client_secret or client_secret_file, not both"
            )),
            (None, None) => problems.push(format!(
                "{key}.client_secret: required (or client_secret_file): the token endpoint needs it"
            )),
            (Some(secret), None) if secret.expose().trim().is_empty() => {
                problems.push(format!("{key}.client_secret: must not be empty"))
            }
            _ => {}
        }
        if self.topics.is_empty() {
            problems.push(format!("{key}.topics: subscribe to at least one topic"));
        }
        if self.interval < Duration::from_millis(100) {
            problems.push(format!("{key}.interval: at least 100ms"));
        }
        if self.backoff_initial.is_zero() || self.backoff_initial > self.backoff_max {
            problems.push(format!(
                "{key}.backoff_initial: must be above 0 and at most backoff_max"
            ));
        }
        if self.request_timeout.is_zero() {
            problems.push(format!("{key}.request_timeout: must be above 0"));
        }
        // A queue expires 15 minutes after its last query. Between two queries a healthy loop
        // waits at most the interval with its jitter (or the longest back-off), after the
        // previous query's answer took up to request_timeout, plus a token request of up to
        // request_timeout before the next query: none of that may let the queue lapse.
        for (field, wait) in [
            ("interval", longest_interval(self.interval)),
            ("backoff_max", self.backoff_max),
        ] {
            if queue_may_lapse(wait, self.request_timeout) {
                problems.push(format!(
                    "{key}.{field}: {} (with jitter) plus twice request_timeout {} could let an Oxlin queue expire (15 min after the last query); keep the sum under {}",
                    humantime::format_duration(wait),
                    humantime::format_duration(self.request_timeout),
                    humantime::format_duration(QUEUE_BUDGET),
                ));
            }
        }
        if self.max_concurrent_requests == 0 {
            problems.push(format!("{key}.max_concurrent_requests: at least 1"));
        }
        if self.reload_interval.is_zero() {
            problems.push(format!("{key}.reload_interval: must be above 0"));
        }
        for (index, user) in self.users.iter().enumerate() {
            if let Err(problem) = user.check() {
                problems.push(format!("{key}.users[{index}]: {problem}"));
            }
        }
    }

    /// Every configured user (inline, then from `users_file`), validated, files read.
    pub fn load_users(&self, name: &str) -> Result<Vec<(String, UserCredentials)>, ConfigError> {
        let mut users = Vec::new();
        for user in &self.users {
            users.push((
                user.id.clone(),
                user.resolve(&format!("pollers.{name}.users"))?,
            ));
        }
        if let Some(path) = &self.users_file {
            for (id, credentials) in read_users_file(path)? {
                users.push((id, credentials));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (id, _) in &users {
            if !seen.insert(id.as_str()) {
                return Err(ConfigError::Invalid(vec![format!(
                    "pollers.{name}: user {id} is listed twice"
                )]));
            }
        }
        Ok(users)
    }
}

/// Reads a users file: `[[users]]` tables with `id` and credentials.
pub fn read_users_file(path: &Path) -> Result<Vec<(String, UserCredentials)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
        key: "users_file".to_owned(),
        path: path.to_owned(),
        source,
    })?;
    let file: UsersFile = toml::from_str(&text).map_err(|error| {
        ConfigError::Invalid(vec![format!(
            "users_file {}: {}",
            path.display(),
            error.message()
        )])
    })?;
    let key = format!("users_file {}", path.display());
    let mut problems = Vec::new();
    for (index, user) in file.users.iter().enumerate() {
        if let Err(problem) = user.check() {
            problems.push(format!("{key}: users[{index}]: {problem}"));
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    file.users
        .iter()
        .map(|user| Ok((user.id.clone(), user.resolve(&key)?)))
        .collect()
}

impl UserConfig {
    fn check(&self) -> Result<(), String> {
        if self.id.is_empty() {
            return Err("id must not be empty".to_owned());
        }
        let token = self.access_token.is_some() as u8 + self.access_token_file.is_some() as u8;
        let password = self.password.is_some() as u8 + self.password_file.is_some() as u8;
        match (token, password, self.username.is_some()) {
            (1, 0, false) | (0, 1, true) => Ok(()),
            _ => Err(format!(
                "user {} needs exactly one of access_token / access_token_file, or username with password / password_file",
                self.id
            )),
        }
    }

    fn resolve(&self, key: &str) -> Result<UserCredentials, ConfigError> {
        let read = |inline: &Option<Secret>, file: &Option<PathBuf>| {
            secret::resolve(inline, file).map_err(|source| ConfigError::SecretFile {
                key: format!("{key} (user {})", self.id),
                path: file.clone().unwrap_or_default(),
                source,
            })
        };
        let credentials = match read(&self.access_token, &self.access_token_file)? {
            Some(token) => UserCredentials::AccessToken(token),
            None => UserCredentials::Password {
                username: self.username.clone().unwrap_or_else(|| Secret::new("")),
                password: read(&self.password, &self.password_file)?
                    .unwrap_or_else(|| Secret::new("")),
            },
        };
        // An empty value (an empty secret file, say) would only be refused by Oxlin, user by
        // user, at every poll; the registry refuses such records too.
        let empty = match &credentials {
            UserCredentials::AccessToken(token) => token.expose().is_empty(),
            UserCredentials::Password { username, password } => {
                username.expose().is_empty() || password.expose().is_empty()
            }
        };
        if empty {
            return Err(ConfigError::Invalid(vec![format!(
                "{key}: user {}: empty access token, username or password",
                self.id
            )]));
        }
        Ok(credentials)
    }
}

/// The longest wait between two polls of an empty queue: the interval plus its 10 % jitter
/// (see `poller::backoff::around`).
pub fn longest_interval(interval: Duration) -> Duration {
    interval + interval / 10
}

/// `Url::join` drops the last segment of a base without a trailing slash (`/v2.1` + `queues`
/// would give `/queues`): make every API base a directory.
fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}
