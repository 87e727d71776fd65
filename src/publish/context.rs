//! The producer's librdkafka context: its logs go to `tracing`, its statistics to metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use tokio::sync::Notify;

use crate::metrics::Metrics;

pub struct FinhookContext {
    metrics: Metrics,
    /// librdkafka reports cumulative resend counts; the metric takes the increase.
    last_broker_retries: AtomicU64,
    /// Told of a fatal error, so that the producer is replaced without waiting for a probe.
    fatal_raised: Arc<Notify>,
}

impl FinhookContext {
    pub fn new(metrics: Metrics, fatal_raised: Arc<Notify>) -> Self {
        Self {
            metrics,
            last_broker_retries: AtomicU64::new(0),
            fatal_raised,
        }
    }
}

impl ClientContext for FinhookContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        // librdkafka logs every refused connection as an error; finhook keeps ERROR for data loss
        // and operator action (a fatal producer), reported by `error` and the health watcher.
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn stats(&self, statistics: Statistics) {
        let total: u64 = statistics
            .brokers
            .values()
            .map(|broker| broker.txretries)
            .sum();
        let previous = self.last_broker_retries.swap(total, Ordering::Relaxed);
        if total > previous {
            self.metrics.publish_retried("broker", total - previous);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        use rdkafka::types::RDKafkaErrorCode;
        // Connection errors repeat while Kafka is down; the health watcher logs the transition
        // once, and readiness and metrics carry the state.
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::Fatal) => {
                tracing::error!(target: "librdkafka", %error, reason, "kafka client fatal error");
                self.fatal_raised.notify_one();
            }
            Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown) => {
                tracing::debug!(target: "librdkafka", %error, reason, "kafka connection error")
            }
            _ => tracing::warn!(target: "librdkafka", %error, reason, "kafka client error"),
        }
    }
}
