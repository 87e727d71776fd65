//! Prometheus metrics, registered into a registry that is passed in (tests read their own).
//!
//! Every label takes its values from a small fixed set: configured source names, outcomes,
//! providers, canonical types, reasons. Never an id, a path or an address.

mod poller;
mod registry;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub use self::poller::{PollOutcome, PollerMetrics, KAFKA_RETRY};
pub use self::registry::RegistryMetrics;
use crate::vocabulary::{EventType, Ingress, NormalizeError, ProviderKind};

/// Label value for requests to a path that names no configured source.
pub const UNKNOWN_SOURCE: &str = "unknown";

/// The `reason` label of `finhook_publish_failures_total`: every value
/// `publish::PublishError::reason` gives.
pub const PUBLISH_FAILURE_REASONS: [&str; 6] = [
    "not_ready",
    "timeout",
    "queue_full",
    "broker",
    "too_large",
    "refused",
];

/// Dead-letter reasons for records Kafka refused (beside the normalizers' reasons).
pub const RECORD_TOO_LARGE: &str = "record_too_large";
pub const KAFKA_REFUSED: &str = "kafka_refused";

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const LAG_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
];

/// How a webhook request ended; the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Published and acknowledged: 200.
    Accepted,
    /// Authenticated but not understood; on the dead-letter topic: 200.
    DeadLettered,
    Unauthorized,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    MethodNotAllowed,
    BadRequest,
    /// Kafka not ready, slow or failing: 503.
    Unavailable,
    /// Too many requests in flight: 503 at once.
    Overloaded,
    /// The client was too slow sending its body: 408.
    RequestTimeout,
}

impl WebhookOutcome {
    pub const ALL: [WebhookOutcome; 11] = [
        WebhookOutcome::Accepted,
        WebhookOutcome::DeadLettered,
        WebhookOutcome::Unauthorized,
        WebhookOutcome::Forbidden,
        WebhookOutcome::NotFound,
        WebhookOutcome::PayloadTooLarge,
        WebhookOutcome::MethodNotAllowed,
        WebhookOutcome::BadRequest,
        WebhookOutcome::Unavailable,
        WebhookOutcome::Overloaded,
        WebhookOutcome::RequestTimeout,
    ];

    /// Its place in [`Self::ALL`] (a unit test checks every kind is there).
    fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookOutcome::Accepted => "accepted",
            WebhookOutcome::DeadLettered => "dead_lettered",
            WebhookOutcome::Unauthorized => "unauthorized",
            WebhookOutcome::Forbidden => "forbidden",
            WebhookOutcome::NotFound => "not_found",
            WebhookOutcome::PayloadTooLarge => "payload_too_large",
            WebhookOutcome::MethodNotAllowed => "method_not_allowed",
            WebhookOutcome::BadRequest => "bad_request",
            WebhookOutcome::Unavailable => "unavailable",
            WebhookOutcome::Overloaded => "overloaded",
            WebhookOutcome::RequestTimeout => "request_timeout",
        }
    }
}

/// Which kind of record a Kafka measurement is about; the `record` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Event,
    DeadLetter,
}

impl RecordKind {
    pub const ALL: [RecordKind; 2] = [RecordKind::Event, RecordKind::DeadLetter];

    /// Its place in [`Self::ALL`].
    fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Event => "event",
            RecordKind::DeadLetter => "dead_letter",
        }
    }
}

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `finhook_webhook_requests_total{source, outcome}`.
    webhook_requests: IntCounterVec,
    /// `finhook_webhook_request_duration_seconds{source, outcome}`: arrival to answer.
    webhook_duration: HistogramVec,
    /// `finhook_publish_failures_total{record, reason}`: timeout, queue_full, broker, not_ready.
    publish_failures: IntCounterVec,
    /// `finhook_publish_retries_total{reason}`: sends repeated before an outcome; `broker` is
    /// librdkafka's own resends, read from its statistics.
    publish_retries: IntCounterVec,
    /// `finhook_dead_letters_total{source, reason}`.
    dead_letters: IntCounterVec,
    /// `finhook_kafka_ready`: 1 when a broker answered the last health probe.
    kafka_ready: IntGauge,
    /// `finhook_kafka_fatal_error`: 1 while the producer is fatally failed and not yet replaced.
    kafka_fatal: IntGauge,
    /// `finhook_kafka_producer_replacements_total`: producers built anew after a fatal error.
    kafka_producer_replacements: IntCounter,
    /// The queue pollers' collectors.
    pub poller: PollerMetrics,
    /// The users registry's collectors (registry mode).
    pub users_registry: RegistryMetrics,
    /// The series every published record touches, resolved in [`Metrics::new`].
    records: Arc<RecordSeries>,
    /// The webhook series of each source, set by [`Metrics::register_sources`]; until then
    /// (and for a name that is no source) they are looked up.
    webhooks: Arc<OnceLock<HashMap<String, SourceSeries>>>,
}

/// One source's requests counter and duration histogram per outcome, in
/// [`WebhookOutcome::ALL`]'s order.
type SourceSeries = Vec<(IntCounter, Histogram)>;

/// The series a published record touches, resolved once. A `with_label_values` hashes its
/// labels, takes the vec's lock and clones an `Arc`, on cache lines that every connection
/// thread writes; a webhook made five of them (three of these, two webhook series).
/// Each family is kept beside its handles, for the labels no handle was kept for.
struct RecordSeries {
    /// `finhook_kafka_ack_duration_seconds{record}` (produce call to delivery report), one
    /// series per record kind, in [`RecordKind::ALL`]'s order.
    acks: [Histogram; RecordKind::ALL.len()],
    /// `finhook_event_lag_seconds{provider, ingress}`: provider's event time to Kafka ack.
    event_lag: HistogramVec,
    /// Its series per catalogued provider and ingress.
    lags: HashMap<(ProviderKind, Ingress), Histogram>,
    /// `finhook_events_published_total{provider, ingress, type}`.
    events_published: IntCounterVec,
    /// Its series per catalogued provider, ingress and type, made on first use, unlike the
    /// others: a series at zero for every type of every provider would fill the exposition with
    /// hundreds of lines nobody asked for.
    published: HashMap<(ProviderKind, Ingress, EventType), OnceLock<IntCounter>>,
}

impl RecordSeries {
    fn new(
        ack_duration: &HistogramVec,
        event_lag: HistogramVec,
        events_published: IntCounterVec,
    ) -> Self {
        let mut lags = HashMap::new();
        let mut published = HashMap::new();
        for provider in crate::providers::kinds() {
            for ingress in [Ingress::Webhook, Ingress::Queue] {
                let lag = event_lag.with_label_values(&[provider.as_str(), ingress.as_str()]);
                lags.insert((provider, ingress), lag);
                for event_type in EventType::ALL {
                    published.insert((provider, ingress, event_type), OnceLock::new());
                }
            }
        }
        Self {
            acks: RecordKind::ALL.map(|record| ack_duration.with_label_values(&[record.as_str()])),
            event_lag,
            lags,
            events_published,
            published,
        }
    }
}

impl Metrics {
    pub fn new(registry: Registry) -> prometheus::Result<Self> {
        let webhook_requests = IntCounterVec::new(
            Opts::new(
                "finhook_webhook_requests_total",
                "Webhook requests by source and outcome.",
            ),
            &["source", "outcome"],
        )?;
        let webhook_duration = HistogramVec::new(
            HistogramOpts::new(
                "finhook_webhook_request_duration_seconds",
                "Time from a webhook's arrival to its answer.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["source", "outcome"],
        )?;
        let kafka_ack_duration = HistogramVec::new(
            HistogramOpts::new(
                "finhook_kafka_ack_duration_seconds",
                "Time from producing a record to Kafka's acknowledgement.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["record"],
        )?;
        let event_lag = HistogramVec::new(
            HistogramOpts::new(
                "finhook_event_lag_seconds",
                "Time from the provider's event time to Kafka's acknowledgement.",
            )
            .buckets(LAG_BUCKETS.to_vec()),
            &["provider", "ingress"],
        )?;
        let events_published = IntCounterVec::new(
            Opts::new(
                "finhook_events_published_total",
                "Events acknowledged by Kafka.",
            ),
            &["provider", "ingress", "type"],
        )?;
        let publish_failures = IntCounterVec::new(
            Opts::new(
                "finhook_publish_failures_total",
                "Records Kafka did not acknowledge.",
            ),
            &["record", "reason"],
        )?;
        let publish_retries = IntCounterVec::new(
            Opts::new(
                "finhook_publish_retries_total",
                "Record sends that were repeated.",
            ),
            &["reason"],
        )?;
        let dead_letters = IntCounterVec::new(
            Opts::new(
                "finhook_dead_letters_total",
                "Authenticated inputs written to the dead-letter topic.",
            ),
            &["source", "reason"],
        )?;
        let kafka_ready = IntGauge::new("finhook_kafka_ready", "1 when Kafka is reachable.")?;
        let kafka_fatal = IntGauge::new(
            "finhook_kafka_fatal_error",
            "1 while the Kafka producer has failed fatally and finhook has not replaced it yet.",
        )?;
        let kafka_producer_replacements = IntCounter::new(
            "finhook_kafka_producer_replacements_total",
            "Kafka producers built anew after the previous one failed fatally.",
        )?;
        // `finhook_build_info{version}`: always 1; the registry keeps it alive.
        let build_info = IntGaugeVec::new(
            Opts::new("finhook_build_info", "The running finhook version."),
            &["version"],
        )?;

        registry.register(Box::new(webhook_requests.clone()))?;
        registry.register(Box::new(webhook_duration.clone()))?;
        registry.register(Box::new(kafka_ack_duration.clone()))?;
        registry.register(Box::new(event_lag.clone()))?;
        registry.register(Box::new(events_published.clone()))?;
        registry.register(Box::new(publish_failures.clone()))?;
        registry.register(Box::new(publish_retries.clone()))?;
        registry.register(Box::new(dead_letters.clone()))?;
        registry.register(Box::new(kafka_ready.clone()))?;
        registry.register(Box::new(kafka_fatal.clone()))?;
        registry.register(Box::new(kafka_producer_replacements.clone()))?;
        registry.register(Box::new(build_info.clone()))?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        let poller = PollerMetrics::new(&registry)?;
        let users_registry = RegistryMetrics::new(&registry)?;
        let records = Arc::new(RecordSeries::new(
            &kafka_ack_duration,
            event_lag,
            events_published,
        ));
        Ok(Self {
            poller,
            users_registry,
            registry,
            webhook_requests,
            webhook_duration,
            publish_failures,
            publish_retries,
            dead_letters,
            kafka_ready,
            kafka_fatal,
            kafka_producer_replacements,
            records,
            webhooks: Arc::default(),
        })
    }

    /// Creates every series a dashboard expects for these sources, at zero, so rates and alerts
    /// work before the first request of each kind, and keeps the handles the webhook path uses.
    /// Called once, when the sources are known: a second call creates its series but keeps the
    /// first call's handles (the others' are looked up on each use).
    pub fn register_sources<'a>(&self, sources: impl IntoIterator<Item = &'a str>) {
        let mut webhooks = HashMap::new();
        for source in sources {
            let series = WebhookOutcome::ALL
                .iter()
                .map(|outcome| {
                    let labels = [source, outcome.as_str()];
                    (
                        self.webhook_requests.with_label_values(&labels),
                        self.webhook_duration.with_label_values(&labels),
                    )
                })
                .collect();
            webhooks.insert(source.to_owned(), series);
            let refusals = [RECORD_TOO_LARGE, KAFKA_REFUSED];
            for reason in NormalizeError::REASON_CODES.into_iter().chain(refusals) {
                self.dead_letters.with_label_values(&[source, reason]);
            }
        }
        for record in RecordKind::ALL {
            for reason in PUBLISH_FAILURE_REASONS {
                self.publish_failures
                    .with_label_values(&[record.as_str(), reason]);
            }
        }
        self.publish_retries.with_label_values(&["broker"]);
        // Ignored when already set: see above.
        let _ = self.webhooks.set(webhooks);
    }

    pub fn webhook_finished(&self, source: &str, outcome: WebhookOutcome, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let hot = self
            .webhooks
            .get()
            .and_then(|webhooks| webhooks.get(source));
        // `get`, not indexing: an outcome missing from `ALL` is looked up rather than panic.
        if let Some((requests, duration)) = hot.and_then(|series| series.get(outcome.index())) {
            requests.inc();
            duration.observe(seconds);
            return;
        }
        let labels = [source, outcome.as_str()];
        self.webhook_requests.with_label_values(&labels).inc();
        self.webhook_duration
            .with_label_values(&labels)
            .observe(seconds);
    }

    pub fn kafka_acknowledged(&self, record: RecordKind, elapsed: Duration) {
        self.records.acks[record.index()].observe(elapsed.as_secs_f64());
    }

    /// An event is on Kafka: count it, and how long after the provider's event time.
    pub fn event_published(
        &self,
        provider: ProviderKind,
        ingress: Ingress,
        event_type: EventType,
        lag: Option<Duration>,
    ) {
        // A provider outside the catalogue (only tests make one) has no kept handles.
        let labels = [provider.as_str(), ingress.as_str()];
        let count = || {
            self.records.events_published.with_label_values(&[
                labels[0],
                labels[1],
                event_type.as_str(),
            ])
        };
        match self.records.published.get(&(provider, ingress, event_type)) {
            Some(cached) => cached.get_or_init(count).inc(),
            None => count().inc(),
        }
        let Some(lag) = lag else {
            return;
        };
        match self.records.lags.get(&(provider, ingress)) {
            Some(histogram) => histogram.observe(lag.as_secs_f64()),
            None => self
                .records
                .event_lag
                .with_label_values(&labels)
                .observe(lag.as_secs_f64()),
        }
    }

    pub fn publish_failed(&self, record: RecordKind, reason: &'static str) {
        self.publish_failures
            .with_label_values(&[record.as_str(), reason])
            .inc();
    }

    pub fn publish_retried(&self, reason: &'static str, count: u64) {
        self.publish_retries
            .with_label_values(&[reason])
            .inc_by(count);
    }

    pub fn dead_lettered(&self, source: &str, reason: &'static str) {
        self.dead_letters.with_label_values(&[source, reason]).inc();
    }

    pub fn set_kafka_ready(&self, ready: bool) {
        self.kafka_ready.set(i64::from(ready));
    }

    pub fn set_kafka_fatal(&self, fatal: bool) {
        self.kafka_fatal.set(i64::from(fatal));
    }

    pub fn kafka_producer_replaced(&self) {
        self.kafka_producer_replacements.inc();
    }

    /// The text exposition of every registered collector.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding of gathered metrics cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value on the exposition line that starts with `series` (name and labels).
    fn value(metrics: &Metrics, series: &str) -> Option<f64> {
        let rendered = metrics.render();
        let line = rendered.lines().find(|line| line.starts_with(series))?;
        line.rsplit(' ').next()?.parse().ok()
    }

    #[test]
    fn every_record_kind_is_in_all_at_its_index() {
        for (position, kind) in RecordKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), position, "{kind:?}");
        }
        // An exhaustive match: a new kind does not compile here until it is listed, then
        // fails until it is in `ALL` (its series would be an index past `acks`).
        let in_all = |kind: RecordKind| match kind {
            RecordKind::Event | RecordKind::DeadLetter => RecordKind::ALL.contains(&kind),
        };
        assert!(in_all(RecordKind::Event) && in_all(RecordKind::DeadLetter));
    }

    #[test]
    fn the_kept_handles_are_the_exposed_series() {
        let provider = crate::providers::kinds().next().unwrap();
        let other_provider = crate::providers::kinds().nth(1).unwrap();
        // Before `register_sources` the webhook series are looked up, after it they are kept
        // handles; the record series are kept from the start. Either way they must count in the
        // very series the exposition shows.
        for registered in [false, true] {
            let metrics = Metrics::new(Registry::new()).unwrap();
            if registered {
                metrics.register_sources(["main"]);
            }
            assert_eq!(metrics.webhooks.get().is_some(), registered);
            let elapsed = Duration::from_millis(3);
            metrics.webhook_finished("main", WebhookOutcome::Unavailable, elapsed);
            metrics.webhook_finished("main", WebhookOutcome::Unavailable, elapsed);
            metrics.webhook_finished("main", WebhookOutcome::Accepted, elapsed);
            // A label no handle was kept for (the unknown source) is looked up.
            metrics.webhook_finished(UNKNOWN_SOURCE, WebhookOutcome::NotFound, elapsed);
            metrics.kafka_acknowledged(RecordKind::DeadLetter, elapsed);
            let deleted = EventType::ConnectionDeleted;
            metrics.event_published(provider, Ingress::Queue, deleted, Some(elapsed));
            metrics.event_published(provider, Ingress::Queue, deleted, None);
            metrics.event_published(other_provider, Ingress::Webhook, deleted, Some(elapsed));
            // A provider outside the catalogue has no kept handles: looked up.
            let uncatalogued = ProviderKind::new("uncatalogued");
            metrics.event_published(uncatalogued, Ingress::Webhook, deleted, Some(elapsed));

            let requests = "finhook_webhook_requests_total";
            let durations = "finhook_webhook_request_duration_seconds_count";
            let main = |outcome: &str| format!("{{outcome=\"{outcome}\",source=\"main\"}}");
            assert_eq!(
                value(&metrics, &(requests.to_owned() + &main("unavailable"))),
                Some(2.0)
            );
            assert_eq!(
                value(&metrics, &(durations.to_owned() + &main("unavailable"))),
                Some(2.0)
            );
            assert_eq!(
                value(&metrics, &(durations.to_owned() + &main("accepted"))),
                Some(1.0)
            );
            let unknown = r#"{outcome="not_found",source="unknown"}"#;
            assert_eq!(value(&metrics, &(requests.to_owned() + unknown)), Some(1.0));
            let acks = "finhook_kafka_ack_duration_seconds_count";
            assert_eq!(
                value(&metrics, &format!(r#"{acks}{{record="dead_letter"}}"#)),
                Some(1.0)
            );
            let published = |provider: ProviderKind, ingress: &str| {
                let labels = format!(
                    r#"{{ingress="{ingress}",provider="{}",type="{}"}}"#,
                    provider.as_str(),
                    deleted.as_str()
                );
                value(&metrics, &format!("finhook_events_published_total{labels}"))
            };
            assert_eq!(published(provider, "queue"), Some(2.0));
            assert_eq!(published(other_provider, "webhook"), Some(1.0));
            let lag = |provider: ProviderKind, ingress: &str| {
                let labels = format!(
                    r#"{{ingress="{ingress}",provider="{}"}}"#,
                    provider.as_str()
                );
                value(
                    &metrics,
                    &format!("finhook_event_lag_seconds_count{labels}"),
                )
            };
            assert_eq!(lag(provider, "queue"), Some(1.0));
            assert_eq!(lag(other_provider, "webhook"), Some(1.0));
            assert_eq!(published(uncatalogued, "webhook"), Some(1.0));
            assert_eq!(lag(uncatalogued, "webhook"), Some(1.0));
            // Types that were never published have no series, registered or not.
            let created = EventType::ConnectionCreated.as_str();
            assert!(!metrics.render().contains(&format!(r#"type="{created}""#)));
        }
    }

    #[test]
    fn outcomes_and_record_kinds_are_listed_in_their_index_order() {
        for (index, outcome) in WebhookOutcome::ALL.into_iter().enumerate() {
            assert_eq!(outcome.index(), index, "{outcome:?}");
        }
        for (index, record) in RecordKind::ALL.into_iter().enumerate() {
            assert_eq!(record.index(), index, "{record:?}");
        }
    }
}
