//! Broker reachability for /readyz: a periodic metadata probe; and the producer's fatal state,
//! which the same watcher mends by replacing the producer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::Producer;

use super::Publisher;

/// How long a metadata probe may take before Kafka counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The least time between two producer replacements. A cause that outlives the producer (an
/// ACL without `IDEMPOTENT_WRITE`, say) fails each new one at once; this keeps that from
/// becoming a loop of client builds and error lines.
const REPLACEMENT_SPACING: Duration = Duration::from_secs(10);

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

    /// The producer hit an unrecoverable error (e.g. an idempotence sequence violation) and
    /// could not be replaced yet: /healthz fails while it lasts.
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
    let mut next_replacement = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticker.tick() => {}
            _ = publisher.producer.fatal_raised() => {}
        }
        let health = &publisher.health;
        let fatal = publisher.producer.current().client().fatal_error();
        health.fatal.store(fatal.is_some(), Ordering::Relaxed);
        publisher.metrics.set_kafka_fatal(fatal.is_some());
        if let Some((code, reason)) = fatal {
            if tokio::time::Instant::now() < next_replacement {
                tracing::debug!(
                    ?code,
                    "kafka producer failed fatally again; replacing it once the spacing has passed"
                );
            } else {
                tracing::error!(?code, reason, "kafka producer failed fatally; replacing it");
                next_replacement = replace_producer(&publisher).await;
            }
        }
        let probing = Arc::clone(&publisher);
        // Metadata requests block the calling thread; keep them off the async workers.
        let reachable = tokio::task::spawn_blocking(move || probe(&probing, probe_timeout))
            .await
            .unwrap_or(false);
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

/// Replaces the failed producer (off the async workers: building a client and purging the old
/// one block) and marks it healthy again; returns when the next replacement may come. The
/// spacing is for producers that fail again once built: a build that failed is tried again at
/// the next probe.
async fn replace_producer(publisher: &Arc<Publisher>) -> tokio::time::Instant {
    let replacing = Arc::clone(publisher);
    let now = tokio::time::Instant::now();
    match tokio::task::spawn_blocking(move || replacing.producer.replace()).await {
        Ok(Ok(())) => {
            publisher.health.fatal.store(false, Ordering::Relaxed);
            publisher.metrics.set_kafka_fatal(false);
            tracing::warn!("kafka producer replaced; the records it held are sent again");
            now + REPLACEMENT_SPACING
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "kafka producer could not be replaced; trying again at the next probe");
            now
        }
        Err(join_error) => {
            tracing::error!(%join_error, "kafka producer replacement panicked; trying again at the next probe");
            now
        }
    }
}

fn probe(publisher: &Publisher, timeout: Duration) -> bool {
    let topic = publisher.routing.default_topic();
    publisher
        .producer
        .current()
        .client()
        .fetch_metadata(Some(topic), timeout)
        .is_ok()
}
