//! Wiring: configuration → metrics, producer, sources → two HTTP listeners, until shutdown.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, UserCredentials};
use crate::http::server::{self, ConnectionLimits, ConnectionThreads};
use crate::http::tls::ReloadingTls;
use crate::http::{ops_router, webhook_router, AppState, RefusalLog};
use crate::metrics::Metrics;
use crate::poller::assignment::RegistryPolling;
use crate::poller::client::OxlinClient;
use crate::poller::Poller;
use crate::publish::embedded::EmbeddedKafka;
use crate::publish::Publisher;
use crate::registry::admin::RegistryKafka;
use crate::sources::Sources;

/// How long the producer may take to deliver what it still holds at shutdown.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// How long after the stop signal the process may take before it exits regardless: the grace
/// period and the producer's flush; with pollers, also the longest `request_timeout` and two
/// acknowledgements. A poll sent just before the stop may be answered that much later, and its
/// events, already off the provider's queue, then get the whole grace period to reach Kafka;
/// in registry mode the queue state is saved last (the handoff's own limit is the same sum).
pub fn shutdown_deadline(config: &Config) -> Duration {
    let pollers = config
        .pollers
        .values()
        .map(|poller| poller.request_timeout)
        .max()
        .map_or(Duration::ZERO, |longest_poll| {
            longest_poll + config.kafka.ack_timeout * 2
        });
    config.server.shutdown_grace + pollers + FLUSH_TIMEOUT
}

/// A configured finhook, ready to serve.
pub struct App {
    state: Arc<AppState>,
    /// Queue pollers with their configured users, in file mode.
    pollers: Vec<(Poller, Vec<(String, UserCredentials)>)>,
    /// In registry mode: every poller, its users taken from the registry's consumer group.
    registry_polling: Option<RegistryPolling>,
    health_interval: Duration,
    limits: ConnectionLimits,
    /// HTTPS for the webhook listener, reloaded when its files change.
    tls: Option<Arc<ReloadingTls>>,
    shutdown_grace: Duration,
    /// Threads serving webhook connections (`server.threads`, resolved).
    webhook_threads: usize,
    /// Kept alive for as long as the app: the producer talks to it.
    embedded_kafka: Option<Arc<EmbeddedKafka>>,
}

impl App {
    /// Builds everything that does not need a listener. Kafka is not contacted yet.
    pub fn build(config: &Config) -> anyhow::Result<Self> {
        let metrics = Metrics::new(Registry::new()).context("registering metrics")?;
        let sources = Sources::from_config(config)?;
        for source in sources.iter().filter(|source| source.is_open()) {
            tracing::warn!(source = %source.name, "webhook source accepts unauthenticated requests (auth = \"none\")");
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
        let http = OxlinClient::http_client().context("creating the HTTP client")?;
        let policies = sources.policies();
        // Pollers hold no connection open: they wait for librdkafka's verdict on each event, so
        // they never send a second copy of one still on its way.
        let queue_publisher = publisher.until_verdict();
        let mut pollers = Vec::new();
        for (name, poller_config) in &config.pollers {
            let protection = crate::poller::Protection {
                own: poller_config
                    .protect
                    .as_ref()
                    .and_then(|name| policies.get(name).cloned()),
                by_name: Arc::clone(&policies),
            };
            let poller = Poller::new(
                name,
                poller_config.clone(),
                http.clone(),
                Arc::clone(&queue_publisher),
                metrics.clone(),
                config.server.shutdown_grace,
                protection,
            )?;
            pollers.push(poller);
        }
        let (pollers, registry_polling) = if config.registry.enabled {
            let keyring = config.registry.keyring()?;
            if let Some(embedded) = &embedded_kafka {
                for topic in [&config.registry.users_topic, &config.registry.state_topic] {
                    embedded
                        .create_topic(topic, config.registry.partitions)
                        .context("creating the registry topics in the embedded Kafka")?;
                }
            }
            tracing::info!(pollers = pollers.len(), topic = %config.registry.users_topic, "queue pollers take their users from the registry");
            let polling = RegistryPolling {
                pollers: pollers
                    .into_iter()
                    .map(|poller| (poller.name().to_owned(), poller))
                    .collect(),
                kafka: RegistryKafka {
                    bootstrap: bootstrap.clone(),
                    properties: properties.clone(),
                    config: config.registry.clone(),
                },
                keyring: Arc::new(keyring),
                publisher: Arc::clone(&publisher),
                metrics: metrics.clone(),
                grace: config.server.shutdown_grace,
            };
            (Vec::new(), Some(polling))
        } else {
            let mut with_users = Vec::new();
            for poller in pollers {
                let users = poller.load_users()?;
                tracing::info!(poller = %poller.name(), users = users.len(), "queue poller configured");
                with_users.push((poller, users));
            }
            (with_users, None)
        };
        let refusals = RefusalLog::new(sources.names());
        let state = Arc::new(AppState {
            sources,
            publisher,
            metrics,
            trusted_proxies: config.server.trusted_proxies.clone().into(),
            retry_after_seconds: config.kafka.retry_after_seconds,
            in_flight: Arc::new(tokio::sync::Semaphore::new(config.server.max_in_flight)),
            body_read_timeout: config.server.body_read_timeout,
            shutting_down: Arc::default(),
            refusals,
        });
        let limits = ConnectionLimits {
            header_read_timeout: config.server.header_read_timeout,
            max_header_bytes: config.server.max_header_bytes,
            max_connections: config.server.max_connections,
        };
        let tls = match &config.server.tls {
            Some(tls) => Some(ReloadingTls::load(tls).context("loading server.tls")?),
            None => None,
        };
        Ok(Self {
            state,
            pollers,
            registry_polling,
            limits,
            tls,
            shutdown_grace: config.server.shutdown_grace,
            webhook_threads: config.server.webhook_threads(),
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

    /// Reload triggers of the pollers, by name (SIGHUP does the same for all).
    pub fn poller_reload_triggers(&self) -> Vec<(String, Arc<tokio::sync::Notify>)> {
        self.pollers
            .iter()
            .map(|(poller, _)| (poller.name().to_owned(), poller.reload_trigger()))
            .collect()
    }

    /// Serves webhooks and operations endpoints on the given listeners until `shutdown`
    /// resolves, then stops accepting, lets in-flight requests finish and flushes the producer.
    pub async fn serve(
        mut self,
        webhook_listener: TcpListener,
        ops_listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let webhook_threads = ConnectionThreads::start(self.webhook_threads)
            .context("starting the webhook threads")?;
        tracing::info!(
            webhooks = %webhook_listener.local_addr()?,
            operations = %ops_listener.local_addr()?,
            sources = self.state.sources.names().count(),
            pollers = self.pollers.len() + self.registry_polling.as_ref().map_or(0, |polling| polling.pollers.len()),
            "finhook serving"
        );
        let publisher = Arc::clone(&self.state.publisher);
        // Three stops, in order: webhooks and pollers first; then, once pollers have published
        // what they hold, the health probe and the operations listener (which keeps answering
        // /readyz 503 and /metrics while finhook drains).
        let stop = CancellationToken::new();
        let ops_stop = CancellationToken::new();
        let health = tokio::spawn(
            Arc::clone(&publisher)
                .watch_health(self.health_interval, ops_stop.clone().cancelled_owned()),
        );
        if let Some(tls) = &self.tls {
            tokio::spawn(Arc::clone(tls).watch(ops_stop.clone()));
        }
        let webhooks = tokio::spawn(server::serve(
            webhook_listener,
            webhook_router(self.state.clone()),
            self.limits,
            self.tls.clone(),
            stop.clone(),
            self.shutdown_grace,
            Some(webhook_threads),
        ));
        let operations = tokio::spawn(server::serve(
            ops_listener,
            ops_router(self.state.clone()),
            self.limits,
            None,
            ops_stop.clone(),
            Duration::from_secs(1),
            None,
        ));
        let mut poller_tasks = tokio::task::JoinSet::new();
        for (poller, users) in std::mem::take(&mut self.pollers) {
            poller_tasks.spawn(poller.run(users, stop.child_token()));
        }
        if let Some(registry_polling) = self.registry_polling.take() {
            poller_tasks.spawn(registry_polling.run(stop.child_token()));
        }

        shutdown.await;
        self.state.shutting_down.store(true, Ordering::Relaxed);
        tracing::info!(grace = ?self.shutdown_grace, "shutting down: not ready, no new connections, finishing in-flight requests");
        stop.cancel();
        // A listener that failed (panicked) is reported at the end: the pollers' held events and
        // the producer's queue are drained first whatever happened to it.
        let webhooks_ended = webhooks.await.context("webhook listener failed");
        // Pollers stop fetching and publish what they hold before the producer is flushed.
        while poller_tasks.join_next().await.is_some() {}
        let flushing = Arc::clone(&publisher);
        match tokio::task::spawn_blocking(move || flushing.flush(FLUSH_TIMEOUT)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "the producer did not deliver everything before exit")
            }
            Err(join_error) => tracing::error!(%join_error, "flushing the producer panicked"),
        }
        ops_stop.cancel();
        let _ = health.await;
        let operations_ended = operations.await.context("operations listener failed");
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
        webhooks_ended.and(operations_ended)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shutdown_deadline_leaves_a_poll_in_flight_its_answer_and_the_grace_period() {
        // Defaults: a 25 s grace period, a 10 s flush, 5 s acknowledgements.
        let without_pollers = Config::over_defaults("").unwrap();
        assert_eq!(shutdown_deadline(&without_pollers), Duration::from_secs(35));
        let slow = format!(
            "{}request_timeout = \"40s\"\n",
            crate::config::tests::POLLER
        );
        let with_poller = Config::over_defaults(&slow).unwrap();
        assert_eq!(
            shutdown_deadline(&with_poller),
            Duration::from_secs(25 + 40 + 2 * 5 + 10)
        );
    }
}
