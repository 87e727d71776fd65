//! Poller metrics: labelled by configured poller name and fixed outcome sets, never a user.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// How one queue request ended; the `outcome` label of `finhook_polls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollOutcome {
    Events,
    Empty,
    Unauthorized,
    QueueGone,
    Throttled,
    ServerError,
    Timeout,
    NetworkError,
    ProtocolError,
}

impl PollOutcome {
    pub const ALL: [PollOutcome; 9] = [
        PollOutcome::Events,
        PollOutcome::Empty,
        PollOutcome::Unauthorized,
        PollOutcome::QueueGone,
        PollOutcome::Throttled,
        PollOutcome::ServerError,
        PollOutcome::Timeout,
        PollOutcome::NetworkError,
        PollOutcome::ProtocolError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PollOutcome::Events => "events",
            PollOutcome::Empty => "empty",
            PollOutcome::Unauthorized => "unauthorized",
            PollOutcome::QueueGone => "queue_gone",
            PollOutcome::Throttled => "throttled",
            PollOutcome::ServerError => "server_error",
            PollOutcome::Timeout => "timeout",
            PollOutcome::NetworkError => "network_error",
            PollOutcome::ProtocolError => "protocol_error",
        }
    }
}

/// The retry reason of a polled event Kafka did not take.
pub const KAFKA_RETRY: &str = "kafka";

#[derive(Clone)]
pub struct PollerMetrics {
    /// `finhook_polls_total{poller, outcome}`: queue GETs.
    polls: IntCounterVec,
    /// `finhook_poll_duration_seconds{poller}`: one queue GET.
    poll_duration: HistogramVec,
    /// `finhook_poll_retries_total{poller, reason}`: waits with back-off before trying again
    /// (reason: a poll outcome, `token_refused` or `kafka`).
    retries: IntCounterVec,
    /// `finhook_poll_resubscriptions_total{poller}`: queues found gone and subscribed again.
    resubscriptions: IntCounterVec,
    /// `finhook_poll_token_refreshes_total{poller, outcome}`: password grants (`ok`, `failed`).
    token_refreshes: IntCounterVec,
    /// `finhook_poll_users{poller}`: users this replica polls.
    users: IntGaugeVec,
    /// `finhook_poll_events_held{poller}`: fetched events waiting for Kafka.
    events_held: IntGaugeVec,
}

impl PollerMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let polls = IntCounterVec::new(
            Opts::new("finhook_polls_total", "Queue polls by outcome."),
            &["poller", "outcome"],
        )?;
        let poll_duration = HistogramVec::new(
            HistogramOpts::new(
                "finhook_poll_duration_seconds",
                "Duration of one queue poll.",
            )
            .buckets(vec![
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["poller"],
        )?;
        let retries = IntCounterVec::new(
            Opts::new(
                "finhook_poll_retries_total",
                "Poller back-offs before a retry, by reason.",
            ),
            &["poller", "reason"],
        )?;
        let resubscriptions = IntCounterVec::new(
            Opts::new(
                "finhook_poll_resubscriptions_total",
                "Queues found gone (expired, 404/410) and subscribed again.",
            ),
            &["poller"],
        )?;
        let token_refreshes = IntCounterVec::new(
            Opts::new(
                "finhook_poll_token_refreshes_total",
                "Access tokens obtained by password grant.",
            ),
            &["poller", "outcome"],
        )?;
        let users = IntGaugeVec::new(
            Opts::new("finhook_poll_users", "Users polled by this replica."),
            &["poller"],
        )?;
        let events_held = IntGaugeVec::new(
            Opts::new(
                "finhook_poll_events_held",
                "Polled events held in memory until Kafka acknowledges them.",
            ),
            &["poller"],
        )?;
        registry.register(Box::new(polls.clone()))?;
        registry.register(Box::new(poll_duration.clone()))?;
        registry.register(Box::new(retries.clone()))?;
        registry.register(Box::new(resubscriptions.clone()))?;
        registry.register(Box::new(token_refreshes.clone()))?;
        registry.register(Box::new(users.clone()))?;
        registry.register(Box::new(events_held.clone()))?;
        Ok(Self {
            polls,
            poll_duration,
            retries,
            resubscriptions,
            token_refreshes,
            users,
            events_held,
        })
    }

    /// Creates the poller's series at zero.
    pub fn register_poller(&self, poller: &str) {
        for outcome in PollOutcome::ALL {
            self.polls.with_label_values(&[poller, outcome.as_str()]);
        }
        self.poll_duration.with_label_values(&[poller]);
        self.resubscriptions.with_label_values(&[poller]);
        for outcome in ["ok", "failed"] {
            self.token_refreshes.with_label_values(&[poller, outcome]);
        }
        self.users.with_label_values(&[poller]);
        self.events_held.with_label_values(&[poller]);
        // At 0 from the start: FinhookPollerEventsHeld compares its increase with held events.
        self.retries.with_label_values(&[poller, KAFKA_RETRY]);
    }

    pub fn polled(&self, poller: &str, outcome: PollOutcome, elapsed: Duration) {
        self.polls
            .with_label_values(&[poller, outcome.as_str()])
            .inc();
        self.poll_duration
            .with_label_values(&[poller])
            .observe(elapsed.as_secs_f64());
    }

    pub fn retried(&self, poller: &str, reason: &'static str) {
        self.retries.with_label_values(&[poller, reason]).inc();
    }

    pub fn resubscribed(&self, poller: &str) {
        self.resubscriptions.with_label_values(&[poller]).inc();
    }

    pub fn token_refreshed(&self, poller: &str, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.token_refreshes
            .with_label_values(&[poller, outcome])
            .inc();
    }

    pub fn set_users(&self, poller: &str, count: usize) {
        self.users.with_label_values(&[poller]).set(count as i64);
    }

    pub fn add_events_held(&self, poller: &str, delta: i64) {
        self.events_held.with_label_values(&[poller]).add(delta);
    }
}
