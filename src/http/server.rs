//! The HTTP server loop: accepts connections on a bound listener (at most
//! [`ConnectionLimits::max_connections`] open at once), hands each to one of the
//! [`ConnectionThreads`], bounds how long a client may take to send its headers, closes
//! connections that stay idle, and on stop closes the listener and lets open connections finish
//! for a grace period.
//!
//! Written on hyper-util rather than `axum::serve` because that has no header timeout (slow
//! clients would pin connections) and no hook for TLS.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::tls::{ClientCertificate, ReloadingTls, HANDSHAKE_TIMEOUT};

/// Limits applied to every connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A client must send its request line and headers within this time; a connection with
    /// no request under way (none sent yet, or kept alive after its last) is closed after it.
    pub header_read_timeout: Duration,
    /// A request line plus headers larger than this is answered 431 (HTTP/1.1: hyper's read
    /// buffer is capped at it; HTTP/2: the advertised header list size).
    pub max_header_bytes: usize,
    /// Connections open at once; beyond, new ones wait in the listen backlog until one closes.
    pub max_connections: usize,
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until `stop`; then stops
/// accepting and waits up to `grace` for open connections to finish their requests. Connections
/// run on `threads` when given (and stop with them), else on the calling runtime.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<ReloadingTls>>,
    stop: CancellationToken,
    grace: Duration,
    mut threads: Option<ConnectionThreads>,
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
    // Each connection holds hyper's buffers and a descriptor: bounded, so that clients opening
    // connections faster than they close cannot exhaust either.
    let connection_slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut warned_full_at: Option<Instant> = None;
    loop {
        if connection_slots.available_permits() == 0
            && warned_full_at.is_none_or(|at| at.elapsed() >= FULL_WARNING_INTERVAL)
        {
            warned_full_at = Some(Instant::now());
            tracing::warn!(
                listen = ?listener.local_addr().ok(),
                max_connections = limits.max_connections,
                "connections at server.max_connections; new ones wait until one closes"
            );
        }
        let slot = tokio::select! {
            _ = stop.cancelled() => break,
            slot = Arc::clone(&connection_slots).acquire_owned() => slot.expect("never closed"),
        };
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
        let connection = Connection {
            builder: builder.clone(),
            watcher: graceful.watcher(),
            router: router.clone(),
            tls: tls.clone(),
            peer,
            idle_timeout: limits.header_read_timeout,
            _slot: slot,
        };
        let Some(threads) = threads.as_mut() else {
            drop(tokio::spawn(connection.serve(stream)));
            continue;
        };
        // Handed over as a plain socket: the thread that drives the connection registers it
        // with its own reactor, so readiness wakes that thread directly rather than through
        // the accepting runtime.
        match stream.into_std() {
            Ok(stream) => threads.spawn(async move {
                match tokio::net::TcpStream::from_std(stream) {
                    Ok(stream) => connection.serve(stream).await,
                    Err(error) => {
                        tracing::debug!(%peer, %error, "a connection could not be handed over");
                    }
                }
            }),
            Err(error) => tracing::debug!(%peer, %error, "a connection could not be handed over"),
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => {
            tracing::warn!(?grace, "connections still open at the end of the grace period; closing them");
        }
    }
    if let Some(threads) = threads {
        threads.stop().await;
    }
}

/// How often, at most, a full connection table is logged.
const FULL_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// What an accepted connection is served with.
struct Connection {
    builder: Builder<TokioExecutor>,
    watcher: Watcher,
    router: Router,
    tls: Option<Arc<ReloadingTls>>,
    peer: SocketAddr,
    idle_timeout: Duration,
    /// The connection's place under `max_connections`, given back when it is dropped.
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    /// The TLS handshake when the listener has TLS, then the connection's requests.
    async fn serve(self, stream: tokio::net::TcpStream) {
        let Some(tls) = self.tls.clone() else {
            self.serve_requests(stream, None).await;
            return;
        };
        let acceptor = TlsAcceptor::from(tls.current());
        let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
        let Ok(Ok(stream)) = handshake else {
            tracing::debug!(peer = %self.peer, "TLS handshake failed or timed out");
            return;
        };
        let certificate = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| ClientCertificate::from_der(leaf));
        self.serve_requests(stream, certificate).await;
    }

    /// Serves the connection's requests, each carrying the peer address and, over mutual TLS,
    /// the verified client certificate; closes the connection once no request was under way
    /// and none began or ended for a whole `idle_timeout` (so between one and two of them after
    /// the last activity).
    ///
    /// hyper bounds a request's head once it has begun, but not the wait before: HTTP/1 and
    /// HTTP/2 are told apart by the first bytes (hyper-util reads them with no deadline), and
    /// an HTTP/2 connection has no idle timeout at all. A client that connects and says
    /// nothing, or only the HTTP/2 preface, would hold its connection for ever.
    async fn serve_requests<Io>(self, stream: Io, certificate: Option<ClientCertificate>)
    where
        Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            builder,
            watcher,
            router,
            peer,
            idle_timeout,
            ..
        } = self;
        let activity = Arc::new(Activity::default());
        let requests = Arc::clone(&activity);
        let service = router
            .map_request(move |mut request: hyper::Request<Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                if let Some(certificate) = &certificate {
                    request.extensions_mut().insert(certificate.clone());
                }
                request
            })
            .map_future(move |handling| {
                // Under way until the handler answers or is dropped (a reset HTTP/2 stream).
                let under_way = requests.begin();
                async move {
                    let response = handling.await;
                    drop(under_way);
                    response
                }
            });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        // Served by a task of its own, while this one wakes once per `idle_timeout` to end it
        // when idle: a timer polled with the connection itself would be polled on every wake-up
        // of every request (about 1 % of a webhook's CPU in a profile). Errors are the
        // client's (reset, timeout, garbage).
        let mut serving = tokio::spawn(watcher.watch(connection));
        let mut changes_before = 0;
        loop {
            tokio::select! {
                _ = &mut serving => return,
                () = tokio::time::sleep(idle_timeout) => {
                    let (under_way, changes) = activity.load();
                    if under_way == 0 && changes == changes_before {
                        tracing::debug!(%peer, "closing an idle connection");
                        serving.abort();
                        return;
                    }
                    changes_before = changes;
                }
            }
        }
    }
}

/// A connection's requests under way, and how many times one began or ended: its idle check
/// closes it when none is under way and nothing changed for a whole period.
#[derive(Default)]
struct Activity {
    under_way: AtomicU64,
    changes: AtomicU64,
}

impl Activity {
    fn begin(self: &Arc<Self>) -> RequestUnderWay {
        self.under_way.fetch_add(1, Ordering::Relaxed);
        self.changes.fetch_add(1, Ordering::Relaxed);
        RequestUnderWay(Arc::clone(self))
    }

    fn load(&self) -> (u64, u64) {
        (
            self.under_way.load(Ordering::Relaxed),
            self.changes.load(Ordering::Relaxed),
        )
    }
}

/// One request under way on a connection, until dropped.
struct RequestUnderWay(Arc<Activity>);

impl Drop for RequestUnderWay {
    fn drop(&mut self) {
        self.0.under_way.fetch_sub(1, Ordering::Relaxed);
        self.0.changes.fetch_add(1, Ordering::Relaxed);
    }
}

/// Threads that serve connections, each driving its own single-threaded runtime. A connection
/// is handed to one of them (in turn) and stays there from accept to close: its socket, its
/// timers and the wake-up of each request by its Kafka acknowledgement all land on that one
/// thread. On tokio's work-stealing runtime a webhook went between workers (woken by the
/// reactor on one, by its acknowledgement on another, idle workers woken to steal). Kept on one
/// thread, finhook answered 15-20 % more webhooks at 64 connections, for 6-12 % less CPU per
/// webhook under load (BENCHMARKS.md, fourth pass).
pub struct ConnectionThreads {
    runtimes: Vec<tokio::runtime::Handle>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// The thread the next connection goes to, modulo their number (only the accept loop
    /// hands connections over).
    next: usize,
    /// Cancelled on stop or drop: each thread then leaves its runtime, which drops what still
    /// runs there.
    stop: CancellationToken,
}

impl ConnectionThreads {
    /// Starts `count` threads (at least one), named `finhook-http-N`. On failure the threads
    /// already started are stopped.
    pub fn start(count: usize) -> std::io::Result<Self> {
        let count = count.max(1);
        let mut started = Self {
            runtimes: Vec::with_capacity(count),
            threads: Vec::with_capacity(count),
            next: 0,
            stop: CancellationToken::new(),
        };
        for index in 0..count {
            let (handle_sender, handle_receiver) = std::sync::mpsc::sync_channel(1);
            let stopped = started.stop.clone().cancelled_owned();
            let thread = std::thread::Builder::new()
                .name(format!("finhook-http-{index}"))
                .spawn(move || {
                    // Built and dropped on this thread: a runtime dropped on a thread that is
                    // inside another runtime panics.
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(error) => {
                            let _ = handle_sender.send(Err(error));
                            return;
                        }
                    };
                    let _ = handle_sender.send(Ok(runtime.handle().clone()));
                    runtime.block_on(stopped);
                    // Blocking work started by a connection (a DNS lookup) is not waited for.
                    runtime.shutdown_timeout(Duration::from_secs(1));
                })?;
            started.threads.push(thread);
            let runtime = handle_receiver
                .recv()
                .map_err(|_| std::io::Error::other("a webhook thread ended while starting"))??;
            started.runtimes.push(runtime);
        }
        Ok(started)
    }

    /// Runs a connection's future on the next thread, in turn.
    fn spawn(&mut self, connection: impl Future<Output = ()> + Send + 'static) {
        let runtime = &self.runtimes[self.next % self.runtimes.len()];
        self.next = self.next.wrapping_add(1);
        drop(runtime.spawn(connection));
    }

    /// Stops the threads and waits for them to end: what still ran there (connections past
    /// the grace period) is dropped before this returns, so nothing holds the app's state
    /// while the producer is flushed.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

impl Drop for ConnectionThreads {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// One `GET /` on a new connection; the answer's body.
    async fn get_body(address: SocketAddr) -> String {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let (_head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        body.to_owned()
    }

    /// Serves, on two connection threads, a `GET /` that answers the name of its thread.
    async fn serve_thread_names() -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = Router::new().route(
            "/",
            get(|| async { std::thread::current().name().unwrap_or("?").to_owned() }),
        );
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(5),
            max_header_bytes: 16 * 1024,
            max_connections: 64,
        };
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            router,
            limits,
            None,
            stop.clone(),
            Duration::from_secs(1),
            Some(ConnectionThreads::start(2).unwrap()),
        ));
        (address, stop, server)
    }

    async fn stop_serving(stop: CancellationToken, server: tokio::task::JoinHandle<()>) {
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the server stops")
            .unwrap();
    }

    /// Runs on `threads` a task that never ends; the receiver learns when it is dropped.
    fn hold_a_task(threads: &mut ConnectionThreads) -> tokio::sync::oneshot::Receiver<()> {
        let (held, released) = tokio::sync::oneshot::channel::<()>();
        threads.spawn(async move {
            let _held = held;
            std::future::pending::<()>().await;
        });
        released
    }

    #[tokio::test]
    async fn connections_are_served_on_the_connection_threads_in_turn() {
        let (address, stop, server) = serve_thread_names().await;
        let mut served_on = Vec::new();
        for _ in 0..4 {
            served_on.push(get_body(address).await);
        }
        let distinct: BTreeSet<&str> = served_on.iter().map(String::as_str).collect();
        assert_eq!(
            distinct,
            BTreeSet::from(["finhook-http-0", "finhook-http-1"]),
            "{served_on:?}"
        );
        assert!(
            served_on.windows(2).all(|pair| pair[0] != pair[1]),
            "handed out in turn: {served_on:?}"
        );

        stop_serving(stop, server).await;
    }

    #[tokio::test]
    async fn a_kept_alive_connection_stays_on_its_thread() {
        let (address, stop, server) = serve_thread_names().await;
        let client = reqwest::Client::new();
        let url = format!("http://{address}/");
        let mut served_on = Vec::new();
        for _ in 0..3 {
            served_on.push(client.get(&url).send().await.unwrap().text().await.unwrap());
        }
        assert!(served_on[0].starts_with("finhook-http-"), "{served_on:?}");
        assert!(
            served_on.iter().all(|name| *name == served_on[0]),
            "one connection, one thread: {served_on:?}"
        );
        drop(client);
        stop_serving(stop, server).await;
    }

    #[tokio::test]
    async fn http2_streams_run_on_their_connection_thread() {
        let (address, stop, server) = serve_thread_names().await;
        let client = reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let url = format!("http://{address}/");
        let (first, second) = tokio::join!(client.get(&url).send(), client.get(&url).send());
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(first.version(), reqwest::Version::HTTP_2);
        let (first, second) = (first.text().await.unwrap(), second.text().await.unwrap());
        assert!(first.starts_with("finhook-http-"), "{first}");
        assert_eq!(first, second, "one connection, one thread");
        drop(client);
        stop_serving(stop, server).await;
    }

    #[tokio::test]
    async fn stopping_the_connection_threads_waits_until_what_ran_on_them_is_dropped() {
        let mut threads = ConnectionThreads::start(1).unwrap();
        let mut released = hold_a_task(&mut threads);
        threads.stop().await;
        assert_eq!(
            released.try_recv(),
            Err(tokio::sync::oneshot::error::TryRecvError::Closed),
            "dropped before stop returned"
        );
    }

    #[tokio::test]
    async fn dropping_the_connection_threads_drops_what_runs_on_them() {
        let mut threads = ConnectionThreads::start(1).unwrap();
        let released = hold_a_task(&mut threads);
        drop(threads);
        let outcome = tokio::time::timeout(Duration::from_secs(5), released)
            .await
            .expect("the task is dropped, not left running");
        assert!(outcome.is_err(), "the sender was dropped without sending");
    }
}
