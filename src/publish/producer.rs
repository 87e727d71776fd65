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

    /// The producer to send with now (a reference-counted handle: cheap, and valid after a
    /// replacement, when it refuses records as the failed producer it is).
    pub(super) fn current(&self) -> KafkaProducer {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Resolves when the producer reports a fatal error (or at once if one was reported since
    /// the last wait).
    pub(super) async fn fatal_raised(&self) {
        self.fatal_raised.notified().await
    }

    /// Puts a new producer in place of the current one and drops the old, which fails what it
    /// still holds back to its senders. Blocks up to half a second (the old producer's purge),
    /// so call it off the async workers.
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
