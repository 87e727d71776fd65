//! TLS on the webhook listener (rustls): certificate and key from files, reloaded when they
//! change or on SIGHUP, and optional client certificates checked against a CA bundle.
//!
//! Client certificates are *asked for* at the TLS level but not required there: whether one is
//! required, and which names are accepted, is decided per source (see `sources.rs`), so a
//! Linxo source can demand mutual TLS while a Bridge source on the same port does not.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

pub use crate::auth::ClientCertificate;
use crate::config::TlsConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("invalid TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("invalid client CA bundle: {0}")]
    ClientCa(String),
}

/// The current rustls configuration, swapped when the files change.
pub struct ReloadingTls {
    config: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
    version: RwLock<Vec<Option<SystemTime>>>,
}

impl ReloadingTls {
    pub fn load(config: &TlsConfig) -> Result<Arc<Self>, TlsError> {
        // The version before the read: files replaced while they are read are then seen as
        // changed at the next check, not taken for the ones just loaded.
        let version = files_version(config);
        let server_config = build(config)?;
        Ok(Arc::new(Self {
            config: config.clone(),
            current: RwLock::new(Arc::new(server_config)),
            version: RwLock::new(version),
        }))
    }

    /// The configuration new connections use.
    pub fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read().expect("never poisoned"))
    }

    /// Re-reads the files; keeps the current configuration when they are unreadable or wrong.
    pub fn reload(&self, reason: &str) {
        let version = files_version(&self.config);
        match build(&self.config) {
            Ok(server_config) => {
                *self.current.write().expect("never poisoned") = Arc::new(server_config);
                *self.version.write().expect("never poisoned") = version;
                tracing::info!(reason, "TLS certificate reloaded");
            }
            Err(error) => {
                tracing::warn!(reason, %error, "TLS certificate not reloaded; keeping the current one")
            }
        }
    }

    /// Reloads when the files change (checked every `reload_interval`) or on SIGHUP, until stop.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            let hangup_received = async {
                match hangup.as_mut() {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = hangup_received => self.reload("SIGHUP"),
                _ = tokio::time::sleep(self.config.reload_interval) => {
                    let changed = files_version(&self.config) != *self.version.read().expect("never poisoned");
                    if changed {
                        self.reload("files changed");
                    }
                }
            }
        }
    }
}

fn files_version(config: &TlsConfig) -> Vec<Option<SystemTime>> {
    let modified = |path: &Path| {
        std::fs::metadata(path)
            .and_then(|meta| meta.modified())
            .ok()
    };
    let mut version = vec![modified(&config.cert_file), modified(&config.key_file)];
    if let Some(ca) = &config.client_ca_file {
        version.push(modified(ca));
    }
    version
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|error| TlsError::Read {
            path: path.to_owned(),
            message: error.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}

fn build(config: &TlsConfig) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certificates(&config.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&config.key_file).map_err(|error| TlsError::Read {
        path: config.key_file.clone(),
        message: error.to_string(),
    })?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match &config.client_ca_file {
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for certificate in read_certificates(ca_file)? {
                roots
                    .add(certificate)
                    .map_err(|error| TlsError::ClientCa(error.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|error| TlsError::ClientCa(error.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut server_config = builder.with_single_cert(chain, key)?;
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(server_config)
}

/// How long a TLS handshake may take (slow clients must not pin connections).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
