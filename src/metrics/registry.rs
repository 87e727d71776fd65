//! Users-registry metrics (registry mode): partitions and users this replica owns, rebalances,
//! handoffs, restores, refused records. Labels come from fixed sets, never a user id.

use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct RegistryMetrics {
    /// `finhook_registry_partitions`: partitions of the users topic (every replica reports it;
    /// compared with the sum of owned partitions to find partitions nobody polls).
    partitions: IntGauge,
    /// `finhook_registry_partitions_owned`: users-topic partitions assigned to this replica.
    partitions_owned: IntGauge,
    /// `finhook_registry_users_owned`: enabled users in this replica's partitions.
    users_owned: IntGauge,
    /// `finhook_registry_rebalances_total{kind}`: `assigned`, `revoked`, `lost`.
    rebalances: IntCounterVec,
    /// `finhook_registry_handoffs_total{outcome}`: users started with a previous owner's
    /// queue state: `resumed` (the queue was still alive) or `subscribed` (too old: a new one).
    handoffs: IntCounterVec,
    /// `finhook_registry_restore_duration_seconds`: from assignment to polling a partition.
    restore_duration: Histogram,
    /// `finhook_registry_records_rejected_total{reason}`: records skipped (see
    /// `registry::record::RecordError::REASONS`, and `unknown_poller`).
    rejected: IntCounterVec,
}

impl RegistryMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let partitions = IntGauge::new(
            "finhook_registry_partitions",
            "Partitions of the users registry topic.",
        )?;
        let partitions_owned = IntGauge::new(
            "finhook_registry_partitions_owned",
            "Users-registry partitions assigned to this replica.",
        )?;
        let users_owned = IntGauge::new(
            "finhook_registry_users_owned",
            "Enabled registry users in this replica's partitions.",
        )?;
        let rebalances = IntCounterVec::new(
            Opts::new(
                "finhook_registry_rebalances_total",
                "Consumer-group rebalances seen by this replica, by kind.",
            ),
            &["kind"],
        )?;
        let handoffs = IntCounterVec::new(
            Opts::new(
                "finhook_registry_handoffs_total",
                "Users taken over with a previous owner's queue state, by outcome.",
            ),
            &["outcome"],
        )?;
        let restore_duration = Histogram::with_opts(
            HistogramOpts::new(
                "finhook_registry_restore_duration_seconds",
                "From a partition's assignment to polling its users.",
            )
            .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
        )?;
        let rejected = IntCounterVec::new(
            Opts::new(
                "finhook_registry_records_rejected_total",
                "Registry records that could not be used, by reason.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(partitions.clone()))?;
        registry.register(Box::new(partitions_owned.clone()))?;
        registry.register(Box::new(users_owned.clone()))?;
        registry.register(Box::new(rebalances.clone()))?;
        registry.register(Box::new(handoffs.clone()))?;
        registry.register(Box::new(restore_duration.clone()))?;
        registry.register(Box::new(rejected.clone()))?;
        let metrics = Self {
            partitions,
            partitions_owned,
            users_owned,
            rebalances,
            handoffs,
            restore_duration,
            rejected,
        };
        for kind in ["assigned", "revoked", "lost"] {
            metrics.rebalances.with_label_values(&[kind]);
        }
        for outcome in ["resumed", "subscribed"] {
            metrics.handoffs.with_label_values(&[outcome]);
        }
        for reason in crate::registry::record::RecordError::REASONS
            .into_iter()
            .chain(["unknown_poller"])
        {
            metrics.rejected.with_label_values(&[reason]);
        }
        Ok(metrics)
    }

    pub fn set_partitions(&self, count: i32) {
        self.partitions.set(i64::from(count));
    }

    pub fn set_owned(&self, partitions: usize, users: usize) {
        self.partitions_owned.set(partitions as i64);
        self.users_owned.set(users as i64);
    }

    pub fn rebalanced(&self, kind: &'static str) {
        self.rebalances.with_label_values(&[kind]).inc();
    }

    pub fn handed_off(&self, resumed: bool) {
        let outcome = if resumed { "resumed" } else { "subscribed" };
        self.handoffs.with_label_values(&[outcome]).inc();
    }

    pub fn restored(&self, elapsed: Duration) {
        self.restore_duration.observe(elapsed.as_secs_f64());
    }

    pub fn rejected(&self, reason: &'static str) {
        self.rejected.with_label_values(&[reason]).inc();
    }
}
