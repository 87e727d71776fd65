//! The process's one Kafka producer, built anew in place when librdkafka declares it unusable.
//!
//! librdkafka raises a fatal error when an idempotent producer can no longer vouch for order or
//! once-ness: a produce request's sequence desynchronized from the broker's, a rewound sequence,
//! an unknown producer id it cannot retry past. Such a producer refuses every record for good.
//! Waiting for a restart would drop what the pollers hold (events already taken off a
//! provider's queue), so finhook builds a new producer from the same configuration instead: a
//! new producer id, sequences from zero. The records the old one still held fail back to their
//! senders (purged when it is dropped), which send them again on the new one: pollers retry,
//! webhooks answer 503 and the provider retries. A record the broker did write before the
//! failure may then be written twice, under the same event id, which consumers deduplicate on.

use std::sync::{Arc, PoisonError, RwLock};

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use tokio::sync::Notify;

use super::context::FinhookContext;
use crate::metrics::Metrics;

pub(super) type KafkaProducer = FutureProducer<FinhookContext>;

pub(super) struct ProducerSlot {
    current: RwLock<KafkaProducer>,
    config: ClientConfig,
    metrics: Metrics,
    /// Woken by the producer's context on a fatal error, so that the health watcher replaces
    /// the producer at once rather than at its next probe.
    fatal_raised: Arc<Notify>,
}

impl ProducerSlot {
    pub(super) fn new(config: ClientConfig, metrics: Metrics) -> Result<Self, KafkaError> {
        let fatal_raised = Arc::new(Notify::new());
        let producer = build(&config, &metrics, &fatal_raised)?;
        Ok(Self {
            current: RwLock::new(producer),
            config,
            metrics,
            fatal_raised,
        })
    }

    /// The producer now (a reference-counted handle, still usable after a replacement: it then
    /// refuses records as the failed producer it is). For blocking calls made off the async
    /// workers (probes, the shutdown flush); sends go through [`ProducerSlot::with_current`].
    pub(super) fn current(&self) -> KafkaProducer {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs `use_producer` on the producer now, without taking a handle of its own: a sender on
    /// an async worker must not hold the last handle of a replaced producer, whose drop blocks
    /// (it joins a thread, purges and flushes). The read lock keeps [`ProducerSlot::replace`]
    /// from swapping meanwhile, so the replacement always drops the last handle itself.
    pub(super) fn with_current<R>(&self, use_producer: impl FnOnce(&KafkaProducer) -> R) -> R {
        use_producer(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Resolves when the producer reports a fatal error (or at once if one was reported since
    /// the last wait).
    pub(super) async fn fatal_raised(&self) {
        self.fatal_raised.notified().await
    }

    /// Puts a new producer in place of the current one and drops the old, which fails what it
    /// still holds back to its senders. Blocks for the old producer's teardown (its polling
    /// thread joined, a purge, a flush of up to half a second), so call it off the async
    /// workers.
    pub(super) fn replace(&self) -> Result<(), KafkaError> {
        let replacement = build(&self.config, &self.metrics, &self.fatal_raised)?;
        let failed = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(PoisonError::into_inner),
            replacement,
        );
        drop(failed);
        self.metrics.kafka_producer_replaced();
        Ok(())
    }
}

fn build(
    config: &ClientConfig,
    metrics: &Metrics,
    fatal_raised: &Arc<Notify>,
) -> Result<KafkaProducer, KafkaError> {
    let context = FinhookContext::new(metrics.clone(), Arc::clone(fatal_raised));
    config.create_with_context(context)
}
