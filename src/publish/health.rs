//! Broker reachability for /readyz: a periodic metadata probe, plus the producer's fatal state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::Producer;

use super::Publisher;

/// How long a metadata probe may take before Kafka counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Shared readiness flags, read on every request (two relaxed atomic loads).
#[derive(Debug, Default, Clone)]
pub struct KafkaHealth {
    reachable: Arc<AtomicBool>,
    fatal: Arc<AtomicBool>,
}

impl KafkaHealth {
    /// Kafka answered the last probe and the producer is usable.
    pub fn is_ready(&self) -> bool {
        self.reachable.load(Ordering::Relaxed) && !self.is_fatal()
    }

    /// Marks Kafka reachable, as a successful probe does (tests without a probing broker).
    #[cfg(test)]
    pub(crate) fn assume_reachable(&self) {
        self.reachable.store(true, Ordering::Relaxed);
    }

    /// The producer hit an unrecoverable error (e.g. an idempotence sequence violation): only a
    /// restart helps, so /healthz fails.
    pub fn is_fatal(&self) -> bool {
        self.fatal.load(Ordering::Relaxed)
    }
}

pub(super) async fn watch(
    publisher: Arc<Publisher>,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    // A slow broker is still a broker: only one that does not answer within this is "down".
    let probe_timeout = PROBE_TIMEOUT;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticker.tick() => {}
        }
        let probing = Arc::clone(&publisher);
        // Metadata requests block the calling thread; keep them off the async workers.
        let reachable = tokio::task::spawn_blocking(move || probe(&probing, probe_timeout))
            .await
            .unwrap_or(false);
        let health = &publisher.health;
        if let Some((code, reason)) = publisher.producer.client().fatal_error() {
            if !health.fatal.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    ?code,
                    reason,
                    "kafka producer failed fatally; restart finhook"
                );
                publisher.metrics.set_kafka_fatal();
            }
        }
        let was_reachable = health.reachable.swap(reachable, Ordering::Relaxed);
        if was_reachable != reachable {
            if reachable {
                tracing::info!("kafka is reachable");
            } else {
                tracing::warn!("kafka is not reachable; answering 503 until it is");
            }
        }
        publisher.metrics.set_kafka_ready(health.is_ready());
    }
}

fn probe(publisher: &Publisher, timeout: Duration) -> bool {
    let topic = publisher.routing.default_topic();
    publisher
        .producer
        .client()
        .fetch_metadata(Some(topic), timeout)
        .is_ok()
}
