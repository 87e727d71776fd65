//! `[server]`, `[metrics]` and `[log]`: the listeners and what finhook writes about itself.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::IpRange;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Largest accepted body unless a source overrides it. With the envelope around it, it must
    /// fit the producer's `message.max.bytes` (checked by [`super::Config::validate`]).
    pub body_limit_bytes: usize,
    /// Most bytes a request line plus headers may take; larger heads are answered 431, so slow
    /// clients cannot pin large buffers.
    pub max_header_bytes: usize,
    /// Time a client has to send its request line and headers.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Time a client has to send its body.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// Webhook requests handled at once; beyond, 503 at once.
    pub max_in_flight: usize,
    /// Webhook connections open at once; beyond, new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Threads serving webhook connections, each a single-threaded runtime that keeps the
    /// connections it is given from accept to close; 0: one per available core.
    pub threads: usize,
    /// How long in-flight requests and pollers get to finish after SIGTERM.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Peers whose `X-Forwarded-For` is believed when checking a source's `allowed_ips`.
    #[serde(default)]
    pub trusted_proxies: Vec<IpRange>,
    /// HTTPS on the webhook listener; absent: plain HTTP (TLS ends at a proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

impl ServerConfig {
    /// How many threads serve webhook connections: `threads`, or one per available core (which
    /// counts a container's CPU limit).
    pub fn webhook_threads(&self) -> usize {
        match self.threads {
            0 => {
                std::thread::available_parallelism().map_or(1, |cores| cores.get().min(MAX_THREADS))
            }
            threads => threads,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// PEM CA bundle for client certificates (mutual TLS); absent: none are asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
    /// How often the files are checked for changes (SIGHUP also reloads them).
    #[serde(with = "humantime_serde", default = "default_tls_reload_interval")]
    pub reload_interval: Duration,
}

fn default_tls_reload_interval() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// The operations listener: /metrics, /healthz, /readyz.
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter directive; `RUST_LOG` wins when set.
    pub level: String,
}

/// hyper's smallest read buffer, and a ceiling well above any real provider's headers.
pub(crate) const MIN_HEADER_BYTES: usize = 8 * 1024;
pub(crate) const MAX_HEADER_BYTES: usize = 1024 * 1024;
/// Most webhook threads a configuration may ask for: far more than cores only adds switching.
pub(crate) const MAX_THREADS: usize = 256;
