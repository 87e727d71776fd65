//! Registry mode: which replica polls which users is decided by a Kafka consumer group
//! (cooperative-sticky) on the users registry topic. No coordinator of our own.
//!
//! - **Assigned** partitions are read from the beginning (compacted: the current user set) up to
//!   their end, together with the same partitions of the state topic; then their users are
//!   polled, resuming the queue a previous owner left when it is still alive. Later records
//!   start, change or (tombstone) stop users within seconds.
//! - **Revoked** partitions: their users stop fetching, publish what they hold and save their
//!   queue state; only then does the rebalance callback return and the group hand the partitions
//!   on. A **lost** assignment (session timed out) stops them the same way, at once.
//! - **Stop**: every user is stopped the same way, then the consumer leaves the group.
//!
//! The group consumer runs on a thread of its own: librdkafka calls the rebalance callback from
//! `poll`, and the callback blocks until the async side has finished the handoff.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::FutureExt;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientContext, TopicPartitionList};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::backoff::jitter;
use super::user::StateSink;
use super::Poller;
use crate::keyring::Keyring;
use crate::metrics::Metrics;
use crate::publish::Publisher;
use crate::registry::admin::{RegistryKafka, StoredRecord};
use crate::registry::record::{self, RegisteredUser, RegistryEntry};
use crate::registry::state::QueueState;

/// How many times a state partition is read before its users start without their queues.
const STATE_LOAD_ATTEMPTS: u32 = 3;

/// A state partition's queue states, for the assignment (generation) they were read for.
type LoadedStates = (i32, u64, HashMap<String, QueueState>);

/// How often the users topic's partition count is read again.
const PARTITION_RECOUNT: Duration = Duration::from_secs(60);

/// What the group consumer thread reports.
enum GroupEvent {
    Assigned(Vec<i32>),
    Revoked {
        partitions: Vec<i32>,
        lost: bool,
        done: std::sync::mpsc::Sender<()>,
    },
    Record(StoredRecord),
    /// The consumer reached the current end of a partition.
    CaughtUp(i32),
}

struct GroupContext {
    topic: String,
    events: mpsc::UnboundedSender<GroupEvent>,
    /// The longest a revocation waits for users to hand off.
    handoff_timeout: Duration,
}

impl ClientContext for GroupContext {
    fn error(&self, error: KafkaError, reason: &str) {
        crate::registry::admin::report_client_error(error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let partitions = partitions_of(list, &self.topic);
        if partitions.is_empty() {
            return;
        }
        let (done, finished) = std::sync::mpsc::channel();
        let event = GroupEvent::Revoked {
            partitions,
            lost: consumer.assignment_lost(),
            done,
        };
        // Block the rebalance until the users have published what they hold and saved their
        // queues: only then may another replica take them.
        if self.events.send(event).is_ok() {
            let _ = finished.recv_timeout(self.handoff_timeout);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let partitions = partitions_of(list, &self.topic);
            if !partitions.is_empty() {
                let _ = self.events.send(GroupEvent::Assigned(partitions));
            }
        }
    }
}

fn partitions_of(list: &TopicPartitionList, topic: &str) -> Vec<i32> {
    list.elements()
        .iter()
        .filter(|element| element.topic() == topic)
        .map(|element| element.partition())
        .collect()
}

/// The group consumer's thread: polls until `stop`, then leaves the group.
fn run_group_consumer(
    consumer: BaseConsumer<GroupContext>,
    events: mpsc::UnboundedSender<GroupEvent>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => {
                let record = StoredRecord {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().map(<[u8]>::to_vec),
                };
                if events.send(GroupEvent::Record(record)).is_err() {
                    break;
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                let _ = events.send(GroupEvent::CaughtUp(partition));
            }
            Some(Err(error)) => {
                tracing::debug!(%error, "registry consumer error (librdkafka retries)");
            }
        }
    }
    // Dropping the consumer closes it: it leaves the group, so the others rebalance at once.
    drop(consumer);
}

/// One user started from the registry.
struct RunningUser {
    user: RegisteredUser,
    stop: CancellationToken,
    /// The loop's [`UserLoop::give_up`](super::user::UserLoop::give_up): cancelled only when
    /// the partition is handed off (or the process stops).
    give_up: CancellationToken,
    /// Set before `stop` when the user left the registry (see [`StateSink::forgotten`]).
    forgotten: Arc<AtomicBool>,
    /// Ends with the queue the loop was polling.
    task: JoinHandle<Option<Url>>,
}

/// A registry partition this replica owns.
struct OwnedPartition {
    /// Which assignment this is: a queue-state load started for an earlier assignment of the
    /// same partition (revoked and assigned again meanwhile) is stale and ignored.
    generation: u64,
    assigned_at: Instant,
    /// Set once the partition was read to its end after assignment.
    caught_up: bool,
    /// The state topic's partition, once read: queue state by user, until the partition's
    /// users start (then empty).
    queue_states: Option<HashMap<String, QueueState>>,
    /// What the registry wants polled (enabled users of known pollers).
    wanted: HashMap<String, RegisteredUser>,
    running: HashMap<String, RunningUser>,
    /// Loops told to stop (user removed, disabled or changed) that may still be handing off,
    /// with their give-up token.
    stopping: HashMap<String, (RegisteredUser, CancellationToken, JoinHandle<Option<Url>>)>,
}

impl OwnedPartition {
    fn restored(&self) -> bool {
        self.caught_up && self.queue_states.is_some()
    }

    /// Every loop of the partition, running or stopping, for a handoff.
    fn into_tasks(self) -> impl Iterator<Item = UserTask> {
        let running = self
            .running
            .into_values()
            .map(|user| (vec![user.stop, user.give_up], user.task));
        let stopping = self
            .stopping
            .into_values()
            .map(|(_, give_up, task)| (vec![give_up], task));
        running.chain(stopping)
    }
}

/// A user loop to wait for, with the tokens that stop it and make it give up.
type UserTask = (Vec<CancellationToken>, JoinHandle<Option<Url>>);

/// The registry-mode supervisor of every poller of this process.
pub struct RegistryPolling {
    pub pollers: HashMap<String, Poller>,
    pub kafka: RegistryKafka,
    pub keyring: Arc<Keyring>,
    pub publisher: Arc<Publisher>,
    pub metrics: Metrics,
    /// How long stopping users may take to publish what they hold.
    pub grace: Duration,
}

impl RegistryPolling {
    fn group_consumer(
        &self,
        events: mpsc::UnboundedSender<GroupEvent>,
    ) -> Result<BaseConsumer<GroupContext>, KafkaError> {
        let registry = &self.kafka.config;
        let session_ms = registry.session_timeout.as_millis().to_string();
        let heartbeat_ms = (registry.session_timeout / 3)
            .as_millis()
            .max(100)
            .to_string();
        let mut config: ClientConfig = self.kafka.client_config();
        config
            .set("group.id", &registry.group_id)
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "true")
            .set("allow.auto.create.topics", "false")
            .set("session.timeout.ms", session_ms)
            .set("heartbeat.interval.ms", heartbeat_ms)
            // The rebalance callback blocks for a handoff: stay a member meanwhile.
            .set(
                "max.poll.interval.ms",
                (self.handoff_limit() + Duration::from_secs(60))
                    .as_millis()
                    .max(300_000)
                    .to_string(),
            );
        let context = GroupContext {
            topic: registry.users_topic.clone(),
            events,
            handoff_timeout: self.handoff_limit() + Duration::from_secs(5),
        };
        let consumer: BaseConsumer<GroupContext> = config.create_with_context(context)?;
        consumer.subscribe(&[&registry.users_topic])?;
        Ok(consumer)
    }

    /// Polls the users of the partitions this replica is assigned, until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let kafka = self.kafka.clone();
        tokio::spawn(async move {
            if let Err(error) = kafka.ensure_topics().await {
                tracing::warn!(error = %format!("{error:#}"), "registry topics not checked");
            }
        });
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let consumer = match self.group_consumer(events_tx.clone()) {
            Ok(consumer) => consumer,
            Err(error) => {
                tracing::error!(%error, "the registry consumer cannot start; no user is polled");
                stop.cancelled().await;
                return;
            }
        };
        let thread_stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let thread_stop = Arc::clone(&thread_stop);
            let events_tx = events_tx.clone();
            std::thread::Builder::new()
                .name("finhook-registry".to_owned())
                .spawn(move || run_group_consumer(consumer, events_tx, thread_stop))
                .expect("spawning the registry consumer thread")
        };
        drop(events_tx);
        self.report_partition_count();
        let mut recount = tokio::time::interval(PARTITION_RECOUNT);
        let (states_tx, mut states) = mpsc::unbounded_channel::<LoadedStates>();
        let mut generations = 0u64;
        let mut owned: HashMap<i32, OwnedPartition> = HashMap::new();
        tracing::info!(group = %self.kafka.config.group_id, topic = %self.kafka.config.users_topic, "registry mode: waiting for partitions");
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                // The topic may have been created (or grown) since: keep the gauge current for
                // the "partitions nobody owns" alert.
                _ = recount.tick() => {
                    self.report_partition_count();
                    self.restart_ended_loops(&mut owned);
                }
                Some((partition, generation, loaded)) = states.recv() => {
                    if let Some(entry) = owned.get_mut(&partition).filter(|entry| entry.generation == generation) {
                        entry.queue_states = Some(loaded);
                        self.start_if_restored(partition, entry);
                    }
                }
                event = events.recv() => {
                    let Some(event) = event else { break };
                    match event {
                        GroupEvent::Assigned(partitions) => {
                            self.metrics.users_registry.rebalanced("assigned");
                            tracing::info!(?partitions, "registry partitions assigned");
                            for partition in partitions {
                                generations += 1;
                                owned.insert(partition, OwnedPartition {
                                    generation: generations,
                                    assigned_at: Instant::now(),
                                    caught_up: false,
                                    queue_states: None,
                                    wanted: HashMap::new(),
                                    running: HashMap::new(),
                                    stopping: HashMap::new(),
                                });
                                self.load_queue_states(partition, generations, states_tx.clone());
                            }
                        }
                        GroupEvent::Revoked { partitions, lost, done } => {
                            self.metrics.users_registry.rebalanced(if lost { "lost" } else { "revoked" });
                            tracing::info!(?partitions, lost, "registry partitions revoked; handing their users off");
                            let mut stopping = Vec::new();
                            for partition in &partitions {
                                if let Some(entry) = owned.remove(partition) {
                                    stopping.extend(entry.into_tasks());
                                }
                            }
                            self.stop_users(stopping).await;
                            let _ = done.send(());
                        }
                        GroupEvent::Record(stored) => self.apply_record(&mut owned, stored),
                        GroupEvent::CaughtUp(partition) => {
                            if let Some(entry) = owned.get_mut(&partition) {
                                if !entry.caught_up {
                                    entry.caught_up = true;
                                    self.start_if_restored(partition, entry);
                                }
                            }
                        }
                    }
                }
            }
            self.report_owned(&owned);
        }
        tracing::info!("registry mode: stopping every user, then leaving the group");
        let stopping: Vec<UserTask> = owned
            .into_values()
            .flat_map(OwnedPartition::into_tasks)
            .collect();
        self.stop_users(stopping).await;
        // Revocations raised while leaving find nobody listening and return at once.
        drop(events);
        thread_stop.store(true, Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        self.metrics.users_registry.set_owned(0, 0);
        for name in self.pollers.keys() {
            self.metrics.poller.set_users(name, 0);
        }
    }

    fn report_partition_count(&self) {
        let kafka = self.kafka.clone();
        let metrics = self.metrics.clone();
        tokio::task::spawn_blocking(move || {
            let Ok(count) = kafka.partition_count(&kafka.config.users_topic) else {
                return;
            };
            metrics.users_registry.set_partitions(count);
            // Partition p of the state topic holds the state of partition p's users.
            if let Ok(state) = kafka.partition_count(&kafka.config.state_topic) {
                if state != count {
                    tracing::error!(users = count, state, "the registry's users and state topics have different partition counts; queue state cannot follow its users (recreate the state topic with as many partitions)");
                }
            }
        });
    }

    /// Reads the state topic's partition in the background (three tries); the result comes
    /// back on `done`, tagged with the assignment it was read for.
    fn load_queue_states(
        &self,
        partition: i32,
        generation: u64,
        done: mpsc::UnboundedSender<LoadedStates>,
    ) {
        let kafka = self.kafka.clone();
        tokio::task::spawn_blocking(move || {
            let topic = kafka.config.state_topic.clone();
            let mut states = None;
            for attempt in 1..=STATE_LOAD_ATTEMPTS {
                match kafka.read_to_end(&topic, Some(&[partition])) {
                    Ok(records) => {
                        states = Some(
                            RegistryKafka::latest_by_key(records)
                                .into_iter()
                                .filter_map(|(key, record)| {
                                    let id = String::from_utf8(key).ok()?;
                                    Some((id, QueueState::decode(record.value.as_deref()?)?))
                                })
                                .collect(),
                        );
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(partition, attempt, error = %format!("{error:#}"), "queue state not read");
                        std::thread::sleep(Duration::from_secs(attempt.into()));
                    }
                }
            }
            // Still nothing: users subscribe anew. Nothing published is lost, but events left
            // in the previous owner's queues are (logged above).
            let _ = done.send((partition, generation, states.unwrap_or_default()));
        });
    }

    fn apply_record(&self, owned: &mut HashMap<i32, OwnedPartition>, stored: StoredRecord) {
        let Some(entry) = owned.get_mut(&stored.partition) else {
            return;
        };
        let user_id = match record::decode(
            stored.key.as_deref(),
            stored.value.as_deref(),
            &self.keyring,
        ) {
            Ok(RegistryEntry::Removed(id)) => {
                entry.wanted.remove(&id);
                id
            }
            Ok(RegistryEntry::User(user)) => {
                let id = user.id.clone();
                if !self.pollers.contains_key(&user.poller) {
                    self.metrics.users_registry.rejected("unknown_poller");
                    tracing::warn!(user = %id, poller = %user.poller, "registry user names no configured poller; skipped");
                    entry.wanted.remove(&id);
                } else if user.enabled {
                    entry.wanted.insert(id.clone(), *user);
                } else {
                    entry.wanted.remove(&id);
                }
                id
            }
            Err(error) => {
                self.metrics.users_registry.rejected(error.reason());
                let user = record::user_id(stored.key.as_deref()).unwrap_or_default();
                tracing::warn!(%user, partition = stored.partition, offset = stored.offset, reason = error.reason(), %error, "registry record skipped");
                return;
            }
        };
        if entry.restored() {
            // Added or changed while running: its synchronization may be starting; at once.
            self.reconcile(stored.partition, entry, &user_id, None, Duration::ZERO);
        }
    }

    fn start_if_restored(&self, partition: i32, entry: &mut OwnedPartition) {
        if !entry.restored() {
            return;
        }
        self.metrics
            .users_registry
            .restored(entry.assigned_at.elapsed());
        let ids: Vec<String> = entry.wanted.keys().cloned().collect();
        // Read here only, once per assignment (the second of "caught up" and "states loaded"
        // starts the partition): taken, not cloned, so the partition does not keep a queue
        // state per user for as long as it is owned. It stays `Some` (restored).
        let states = entry
            .queue_states
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        tracing::info!(
            partition,
            users = ids.len(),
            "registry partition restored; polling its users"
        );
        for id in ids {
            let state = states.get(&id);
            // Thousands of users start together: spread their first polls over one interval
            // (each subscribes at once; a resumed queue is polled at once regardless).
            let spread = self
                .pollers
                .get(&entry.wanted[&id].poller)
                .map_or(Duration::ZERO, |poller| jitter(poller.interval()));
            self.reconcile(partition, entry, &id, state, spread);
        }
    }

    /// A user loop ends only when stopped: one that ended while still wanted panicked. Looked
    /// for once a minute (with the partition count) and started again, as a new record of the
    /// user would (on a new subscription: its queue went with it).
    fn restart_ended_loops(&self, owned: &mut HashMap<i32, OwnedPartition>) {
        for (partition, entry) in owned.iter_mut() {
            let ended: Vec<String> = entry
                .running
                .iter()
                .filter(|(_, user)| user.task.is_finished() && !user.stop.is_cancelled())
                .map(|(id, _)| id.clone())
                .collect();
            for user_id in ended {
                tracing::error!(user = %user_id, "a user loop ended unexpectedly; starting it again");
                self.reconcile(*partition, entry, &user_id, None, Duration::ZERO);
            }
        }
    }

    /// Makes what runs for `user_id` match what the registry wants.
    fn reconcile(
        &self,
        partition: i32,
        entry: &mut OwnedPartition,
        user_id: &str,
        previous_state: Option<&QueueState>,
        first_poll_delay: Duration,
    ) {
        let wanted = entry.wanted.get(user_id);
        if let Some(running) = entry.running.get(user_id) {
            // A loop that ended on its own (a panic) is started again.
            if Some(&running.user) == wanted && !running.task.is_finished() {
                return;
            }
        }
        // Loops stopped earlier and now finished need no waiting for.
        entry.stopping.retain(|_, (_, _, task)| !task.is_finished());
        if let Some(running) = entry.running.remove(user_id) {
            if wanted.is_none() {
                running.forgotten.store(true, Ordering::Relaxed);
            }
            running.stop.cancel();
            entry.stopping.insert(
                user_id.to_owned(),
                (running.user, running.give_up, running.task),
            );
        }
        let Some(user) = wanted.cloned() else {
            return;
        };
        let Some(poller) = self.pollers.get(&user.poller) else {
            return;
        };
        // A loop of this user still stopping (changed, or removed and put back): the new one
        // starts once it has handed off, so the two never poll together.
        let previous = entry.stopping.remove(user_id);
        // Its live queue still holds what reached it since its last poll: keep polling it when
        // nothing else changed about the queue (same poller, same registry queue reference).
        let keep_previous_queue = previous.as_ref().is_some_and(|(before, _, _)| {
            before.poller == user.poller && before.queue == user.queue
        });
        let resume = self.queue_to_resume(poller, &user, previous_state);
        let stop = CancellationToken::new();
        // The loop still stopping, if any, gives up when this one does: the new one waits for
        // it, and a handoff cancels only what it finds running.
        let give_up = previous
            .as_ref()
            .map(|(_, give_up, _)| give_up.clone())
            .unwrap_or_default();
        let mut user_loop = poller.user_loop(
            &user.id,
            user.credentials.clone(),
            first_poll_delay,
            give_up.clone(),
        );
        if let Some(topics) = &user.topics {
            user_loop.topics = topics.clone();
        }
        user_loop.resume = resume;
        let forgotten = Arc::new(AtomicBool::new(false));
        user_loop.state = Some(StateSink {
            publisher: Arc::clone(&self.publisher),
            topic: self.kafka.config.state_topic.clone(),
            partition,
            interval: self.kafka.config.state_interval,
            forgotten: Arc::clone(&forgotten),
        });
        let loop_stop = stop.clone();
        let own_queue = poller.client().origin();
        let handed_over = async move {
            match previous {
                Some((_, _, task)) => task.await.ok().flatten(),
                None => None,
            }
        };
        // `then`, not one block awaiting both: the loop moves into its future in the place the
        // hand-over used, where a block would keep the spent copy of the loop beside it for as
        // long as the user is polled.
        let task = tokio::spawn(handed_over.then(move |previous_queue| {
            if keep_previous_queue {
                if let Some(queue) = previous_queue.filter(|queue| queue.origin() == own_queue) {
                    user_loop.resume = Some(queue);
                }
            }
            user_loop.run(loop_stop)
        }));
        entry.running.insert(
            user.id.clone(),
            RunningUser {
                user,
                stop,
                give_up,
                forgotten,
                task,
            },
        );
    }

    /// The queue a user starts on: a previous owner's, while Oxlin still keeps it; else one the
    /// registry record names (from the provider's widget); else none (subscribe).
    fn queue_to_resume(
        &self,
        poller: &Poller,
        user: &RegisteredUser,
        previous_state: Option<&QueueState>,
    ) -> Option<Url> {
        if let Some(state) = previous_state {
            let resumable = state.is_resumable(SystemTime::now());
            self.metrics.users_registry.handed_off(resumable);
            if resumable {
                match Url::parse(&state.queue) {
                    Ok(url) if url.origin() == poller.client().origin() => return Some(url),
                    // The user's token goes with every poll: never to another host than the
                    // provider's API, whatever a topic says.
                    _ => {
                        tracing::warn!(user = %user.id, "queue state names no queue of the provider's API; ignored")
                    }
                }
            }
        }
        let reference = user.queue.as_deref()?;
        match poller.client().queue_reference(reference) {
            Ok(url) if url.origin() == poller.client().origin() => Some(url),
            Ok(_) => {
                tracing::warn!(user = %user.id, "the registry's queue is not on the provider's API; subscribing");
                None
            }
            Err(error) => {
                tracing::warn!(user = %user.id, %error, "the registry's queue reference is unusable; subscribing");
                None
            }
        }
    }

    /// Stops users and waits (up to the grace period) for each to publish what it holds and
    /// save its queue state.
    ///
    /// A loop still running at the end of [`Self::handoff_limit`] is aborted: the partition is
    /// about to be polled by another replica, and two pollers of one queue would reorder its
    /// events. What that loop held is lost (logged): the limit covers a poll, the grace period
    /// and two acknowledgements, so only a broker outage longer than that gets there.
    async fn stop_users(&self, users: Vec<UserTask>) {
        let mut aborts = Vec::with_capacity(users.len());
        let mut tasks = Vec::with_capacity(users.len());
        for (tokens, task) in users {
            for token in tokens {
                token.cancel();
            }
            aborts.push(task.abort_handle());
            tasks.push(task);
        }
        let limit = self.handoff_limit();
        if tokio::time::timeout(limit, futures::future::join_all(tasks))
            .await
            .is_err()
        {
            let unfinished = aborts.iter().filter(|abort| !abort.is_finished()).count();
            for abort in aborts {
                abort.abort();
            }
            tracing::error!(
                ?limit,
                unfinished,
                "users still stopping at the handoff limit were aborted; events they held are lost"
            );
        }
    }

    /// The longest a handoff may take: a poll in flight, the grace period for what is held, two
    /// acknowledgements (the last events, the queue state).
    fn handoff_limit(&self) -> Duration {
        let request_timeout = self
            .pollers
            .values()
            .map(Poller::request_timeout)
            .max()
            .unwrap_or_default();
        request_timeout + self.grace + self.publisher.ack_timeout() * 2
    }

    fn report_owned(&self, owned: &HashMap<i32, OwnedPartition>) {
        let users: usize = owned.values().map(|entry| entry.wanted.len()).sum();
        self.metrics.users_registry.set_owned(owned.len(), users);
        let mut per_poller: HashMap<&str, usize> =
            self.pollers.keys().map(|name| (name.as_str(), 0)).collect();
        for entry in owned.values() {
            for running in entry.running.values() {
                *per_poller.entry(running.user.poller.as_str()).or_default() += 1;
            }
        }
        for (name, count) in per_poller {
            self.metrics.poller.set_users(name, count);
        }
    }
}
