//! The HTTP server loop: accepts connections on a bound listener, bounds how long a client may
//! take to send its headers, and on stop closes the listener and lets open connections finish
//! for a grace period.
//!
//! Written on hyper-util rather than `axum::serve` because that has no header timeout (slow
//! clients would pin connections) and no hook for TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::tls::{ClientCertificate, ReloadingTls, HANDSHAKE_TIMEOUT};

/// Limits applied to every connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A client must send its request line and headers within this time.
    pub header_read_timeout: Duration,
    /// A request line plus headers larger than this is answered 431 (HTTP/1.1: hyper's read
    /// buffer is capped at it; HTTP/2: the advertised header list size).
    pub max_header_bytes: usize,
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until `stop`; then stops
/// accepting and waits up to `grace` for open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<ReloadingTls>>,
    stop: CancellationToken,
    grace: Duration,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let router = router.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let Some(tls) = tls else {
                serve_connection(builder, watcher, router, stream, peer, None).await;
                return;
            };
            let acceptor = TlsAcceptor::from(tls.current());
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
            let Ok(Ok(stream)) = handshake else {
                tracing::debug!(%peer, "TLS handshake failed or timed out");
                return;
            };
            let certificate = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| ClientCertificate::from_der(leaf));
            serve_connection(builder, watcher, router, stream, peer, certificate).await;
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => {
            tracing::warn!(?grace, "connections still open at the end of the grace period; closing them");
        }
    }
}

/// Serves one connection's requests, each carrying the peer address and, over mutual TLS, the
/// verified client certificate.
async fn serve_connection<Io>(
    builder: Builder<TokioExecutor>,
    watcher: Watcher,
    router: Router,
    stream: Io,
    peer: SocketAddr,
    certificate: Option<ClientCertificate>,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = router.map_request(move |mut request: hyper::Request<Incoming>| {
        request
            .extensions_mut()
            .insert(ConnectInfo::<SocketAddr>(peer));
        if let Some(certificate) = &certificate {
            request.extensions_mut().insert(certificate.clone());
        }
        request
    });
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
        .into_owned();
    // Errors here are the client's (reset, timeout, garbage): nothing to report.
    let _ = watcher.watch(connection).await;
}
