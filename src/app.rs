//! Wiring: configuration → metrics, producer, sources → two HTTP listeners, until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{AuthMode, Config};
use crate::http::{ops_router, webhook_router, AppState};
use crate::metrics::Metrics;
use crate::publish::embedded::EmbeddedKafka;
use crate::publish::Publisher;
use crate::sources::Sources;

/// How long the producer may take to deliver what it still holds at shutdown.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// A configured finhook, ready to serve.
pub struct App {
    state: AppState,
    health_interval: Duration,
    /// Kept alive for as long as the app: the producer talks to it.
    embedded_kafka: Option<Arc<EmbeddedKafka>>,
}

impl App {
    /// Builds everything that does not need a listener. Kafka is not contacted yet.
    pub fn build(config: &Config) -> anyhow::Result<Self> {
        let metrics = Metrics::new(Registry::new()).context("registering metrics")?;
        let sources = Sources::from_config(config)?;
        for (name, source) in &config.sources {
            if source.auth == Some(AuthMode::None) {
                tracing::warn!(source = %name, "webhook source accepts unauthenticated requests (auth = \"none\")");
            }
        }
        let embedded_kafka = if config.kafka.embedded {
            let embedded =
                EmbeddedKafka::start(1).context("starting the embedded Kafka mock cluster")?;
            tracing::info!(
                bootstrap = embedded.bootstrap_servers(),
                "embedded Kafka started (in memory, for trying finhook); read it with: finhook tail --brokers {} --topic {}",
                embedded.bootstrap_servers(),
                config.kafka.topics.default,
            );
            Some(Arc::new(embedded))
        } else {
            None
        };
        let bootstrap = embedded_kafka
            .as_ref()
            .map_or(config.kafka.brokers.clone(), |embedded| {
                embedded.bootstrap_servers().to_owned()
            });
        let properties = config.resolve_kafka_properties()?;
        let publisher = Publisher::new(&config.kafka, &bootstrap, &properties, metrics.clone())
            .context("creating the Kafka producer")?;
        metrics.register_sources(sources.names());
        let state = AppState {
            sources,
            publisher,
            metrics,
            trusted_proxies: config.server.trusted_proxies.clone().into(),
            retry_after_seconds: config.kafka.retry_after_seconds,
        };
        Ok(Self {
            state,
            health_interval: config.kafka.health_interval,
            embedded_kafka,
        })
    }

    pub fn embedded_kafka(&self) -> Option<Arc<EmbeddedKafka>> {
        self.embedded_kafka.clone()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.state.metrics
    }

    /// Serves webhooks and operations endpoints on the given listeners until `shutdown`
    /// resolves, then stops accepting, lets in-flight requests finish and flushes the producer.
    pub async fn serve(
        self,
        webhook_listener: TcpListener,
        ops_listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let publisher = Arc::clone(&self.state.publisher);
        let health = tokio::spawn(
            Arc::clone(&publisher)
                .watch_health(self.health_interval, stop.clone().cancelled_owned()),
        );
        tracing::info!(
            webhooks = %webhook_listener.local_addr()?,
            operations = %ops_listener.local_addr()?,
            sources = self.state.sources.names().count(),
            "finhook serving"
        );
        let webhooks = axum::serve(
            webhook_listener,
            webhook_router(self.state.clone()).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stop.clone().cancelled_owned());
        let operations = axum::serve(ops_listener, ops_router(self.state.clone()))
            .with_graceful_shutdown(stop.clone().cancelled_owned());
        let trigger = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections, finishing in-flight requests");
            trigger.cancel();
        });
        let (webhooks, operations) = tokio::join!(webhooks, operations);
        webhooks.context("webhook listener failed")?;
        operations.context("operations listener failed")?;
        stop.cancel();
        let _ = health.await;
        let flushing = Arc::clone(&publisher);
        let flushed = tokio::task::spawn_blocking(move || flushing.flush(FLUSH_TIMEOUT)).await?;
        if let Err(error) = flushed {
            tracing::warn!(%error, "the producer did not deliver everything before exit");
        }
        // The producer goes before the embedded broker it talks to.
        let Self {
            state,
            embedded_kafka,
            ..
        } = self;
        drop(state);
        drop(publisher);
        drop(embedded_kafka);
        tracing::info!("finhook stopped");
        Ok(())
    }
}

/// Binds the configured listeners and serves until `shutdown`.
pub async fn run(
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = App::build(config)?;
    let webhook_listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding server.listen = {}", config.server.listen))?;
    let ops_listener = TcpListener::bind(config.metrics.listen)
        .await
        .with_context(|| format!("binding metrics.listen = {}", config.metrics.listen))?;
    app.serve(webhook_listener, ops_listener, shutdown).await
}
