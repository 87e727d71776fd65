//! One user's polling loop: token → subscribe → poll → publish the whole page and wait for
//! every acknowledgement → poll again.
//!
//! The rules, in one place:
//! - a page is published completely before the next poll; while Kafka refuses it, the page is
//!   held in memory and retried with back-off, and nothing more is fetched;
//! - events of one connection are published one after the other, each after the previous one's
//!   acknowledgement, so they can never be reordered; different connections go in parallel;
//! - 401 → a new token (password grant), then the request again; 404, 410 or another 4xx on a
//!   known queue → subscribe again; 429, 5xx, timeouts, network errors → back-off with jitter;
//! - on stop: no further fetch; a held page keeps being published for the grace period.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::backoff::{around, Backoff};
use super::client::{PollError, Polled, QueueApi, RequestSlot};
use super::page;
use crate::config::poller::{longest_interval, queue_may_lapse};
use crate::config::UserCredentials;
use crate::envelope::Origin;
use crate::ingest::{self, Item};
use crate::metrics::{Metrics, PollOutcome, KAFKA_RETRY};
use crate::protection::Policy;
use crate::providers::linxo::Linxo;
use crate::providers::Provider;
use crate::publish::Publisher;
use crate::registry::state::QueueState;
use crate::secret::Secret;
use crate::vocabulary::Ingress;

/// A token is renewed this long before it expires (or at 90 % of its life if that is shorter).
const TOKEN_RENEWAL_MARGIN: Duration = Duration::from_secs(60);

/// After a page of events the queue is polled again at once, since more may be waiting; after
/// this many such polls in a row it waits the interval, so no user is ever polled in a loop.
pub const MAX_DRAIN_POLLS: u32 = 10;

/// Timing rules shared by all users of a poller.
#[derive(Debug, Clone)]
pub struct LoopSettings {
    pub interval: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How long a held page keeps being retried after stop.
    pub shutdown_grace: Duration,
    /// The longest a provider request may take (the poller's `request_timeout`).
    pub request_timeout: Duration,
    /// Personal-data protection: the poller's policy, and every policy by name (routes may
    /// name one).
    pub protection: Protection,
}

/// The poller's protection policy and every policy by name.
#[derive(Debug, Clone, Default)]
pub struct Protection {
    pub own: Option<Arc<Policy>>,
    pub by_name: Arc<BTreeMap<String, Arc<Policy>>>,
}

pub struct UserLoop<Api> {
    pub poller: Arc<str>,
    pub user_id: String,
    pub credentials: UserCredentials,
    pub client: Arc<Api>,
    pub publisher: Arc<Publisher>,
    pub metrics: Metrics,
    pub settings: LoopSettings,
    /// Wait before the first poll (the queue is subscribed to at once, before it): spreads the
    /// users present at start over one interval; zero for a user added while running.
    pub first_poll_delay: Duration,
    /// Queue subscription topics of this user (the poller's, unless the registry gives others).
    pub topics: Vec<String>,
    /// A queue to poll instead of subscribing: one a previous owner left (still alive), or one
    /// the provider's widget flow gave. If it turns out gone, the loop subscribes anew.
    pub resume: Option<Url>,
    /// Where the queue state is saved (registry mode), so another replica can resume it.
    pub state: Option<StateSink>,
    /// Cancelled when what the loop holds must reach Kafka within the grace period or be given
    /// up: the process stopping, the user's registry partition handed to another replica. A
    /// loop stopped because its user changed or left is not (its next loop, if any, waits for
    /// it): it keeps trying to publish what it took off the queue for as long as Kafka refuses.
    pub give_up: CancellationToken,
}

/// Saves one user's queue state on the state topic, in the partition of the user's registry
/// record.
pub struct StateSink {
    pub publisher: Arc<Publisher>,
    pub topic: String,
    pub partition: i32,
    /// How often the last query time is saved while polling.
    pub interval: Duration,
    /// Set when the user left the registry: the loop then ends by deleting its state (a
    /// tombstone) rather than saving it, so the compacted topic does not keep every user ever
    /// polled, and no later owner resumes the queue of a user who is gone.
    pub forgotten: Arc<std::sync::atomic::AtomicBool>,
}

/// What the loop knows of its queue, for the state topic.
#[derive(Default)]
struct QueueClock {
    subscribed_at: Option<SystemTime>,
    last_query_at: Option<SystemTime>,
    saved_at: Option<Instant>,
    /// When this loop last queried the queue or subscribed to it (the runtime's clock): unknown
    /// for a queue it resumed until it polls it, as that queue's last query is not its own.
    touched_at: Option<Instant>,
}

struct CachedToken {
    value: Secret,
    renew_at: Option<Instant>,
}

/// Why the loop stopped before the end of a cycle.
enum Stop {
    Requested,
}

impl<Api: QueueApi> UserLoop<Api> {
    /// Polls until `stop`; returns the queue it was polling, for a loop that takes over.
    ///
    /// An `async` block rather than an `async fn`: an `async fn` keeps a second copy of its
    /// arguments in its future (rust-lang/rust#62958), here the whole loop, for every user.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would keep the loop twice (rust-lang/rust#62958)"
    )]
    pub fn run(self, stop: CancellationToken) -> impl Future<Output = Option<Url>> + Send {
        async move {
            let mut queue: Option<Url> = self.resume.clone();
            let mut clock = QueueClock::default();
            self.poll_until_stopped(&mut queue, &mut clock, &stop).await;
            match &self.state {
                Some(sink) if sink.forgotten.load(std::sync::atomic::Ordering::Relaxed) => {
                    self.forget_state(sink).await;
                }
                // What a replica taking this user over needs: the queue and its last query.
                _ => self.save_state(&queue, &mut clock, true).await,
            }
            queue
        }
    }

    async fn poll_until_stopped(
        &self,
        queue: &mut Option<Url>,
        clock: &mut QueueClock,
        stop: &CancellationToken,
    ) {
        let mut token: Option<CachedToken> = None;
        let resumed = queue.is_some();
        // The queue must exist before the user's next synchronization starts: subscribe now.
        if Box::pin(self.cycle(&mut token, queue, clock, Step::Subscribe, stop))
            .await
            .is_err()
        {
            return;
        }
        self.save_state(queue, clock, false).await;
        // A resumed queue holds events stacked since its last owner stopped: poll at once.
        let first_wait = if resumed {
            Duration::ZERO
        } else {
            self.first_poll_delay
        };
        if sleep_or_stop(first_wait, stop).await.is_err() {
            return;
        }
        let mut drain_polls = 0u32;
        loop {
            if stop.is_cancelled() {
                return;
            }
            // With Kafka down, events left on the provider's queue are safer than a page held
            // in memory (a restart loses it): skip polls while the queue can wait another round.
            if self.kafka_down_and_queue_can_wait(clock) {
                tracing::debug!(poller = %self.poller, user = %self.user_id, "kafka is not ready; leaving the events on the queue for now");
                if sleep_or_stop(around(self.settings.interval), stop)
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            // Boxed, like every HTTP or Kafka step of this loop (the state's write in
            // `state_write`): a user spends nearly all its time asleep between polls, and an
            // unboxed future is as large as its largest step (the request, the page's
            // publication), about 2 KB more per user, all the time.
            let outcome = Box::pin(self.cycle(&mut token, queue, clock, Step::Poll, stop)).await;
            self.save_state(queue, clock, false).await;
            let wait = match outcome {
                Ok(CycleResult::Published) if drain_polls < MAX_DRAIN_POLLS => {
                    // More may be waiting: poll again at once, a bounded number of times.
                    drain_polls += 1;
                    Duration::ZERO
                }
                Ok(_) => {
                    drain_polls = 0;
                    around(self.settings.interval)
                }
                Err(Stop::Requested) => return,
            };
            if sleep_or_stop(wait, stop).await.is_err() {
                return;
            }
        }
    }

    /// Whether Kafka is not ready and the queue would still be alive after one more interval
    /// without a query (and a token request and a query of `request_timeout` each).
    fn kafka_down_and_queue_can_wait(&self, clock: &QueueClock) -> bool {
        if self.publisher.health().is_ready() {
            return false;
        }
        // A resumed queue's age is not known until it is polled: poll it.
        let Some(touched_at) = clock.touched_at else {
            return false;
        };
        let next_query = touched_at.elapsed() + longest_interval(self.settings.interval);
        !queue_may_lapse(next_query, self.settings.request_timeout)
    }

    /// Saves the queue state when it changed (a new queue), when `state.interval` passed since
    /// the last save, or when `last` (the loop is ending). Failures are logged: the next owner
    /// then subscribes anew, which loses nothing that was published.
    async fn save_state(&self, queue: &Option<Url>, clock: &mut QueueClock, last: bool) {
        if let Some(write) = self.state_write(queue, clock, last) {
            write.await;
            // Tried again after the interval either way: an outage must not add a write (and
            // a warning) per poll.
            clock.saved_at = Some(Instant::now());
        }
    }

    /// Deletes the user's queue state (a tombstone). A failure leaves a state no owner will
    /// read for long: the user's registry record is gone, so nobody starts it.
    async fn forget_state(&self, sink: &StateSink) {
        let deleted = Box::pin(sink.publisher.publish_state(
            &sink.topic,
            sink.partition,
            &self.user_id,
            None,
        ))
        .await;
        if let Err(error) = deleted {
            tracing::debug!(poller = %self.poller, user = %self.user_id, %error, "queue state of a removed user not deleted");
        }
    }

    /// The write [`Self::save_state`] waits for, when one is due. Boxed, and made only when
    /// due: most calls have nothing to save, and an unboxed write would make every user's
    /// future as large as a Kafka send, for all the time it sleeps between polls.
    fn state_write(
        &self,
        queue: &Option<Url>,
        clock: &QueueClock,
        last: bool,
    ) -> Option<Pin<Box<impl Future<Output = ()> + Send + '_>>> {
        let (Some(sink), Some(queue)) = (&self.state, queue) else {
            return None;
        };
        let subscribed_at = clock.subscribed_at?;
        let due = clock
            .saved_at
            .is_none_or(|saved| saved.elapsed() >= sink.interval);
        if !(last || due) {
            return None;
        }
        let last_query_at = clock.last_query_at.unwrap_or(subscribed_at);
        let state = QueueState::new(queue.as_str(), subscribed_at, last_query_at).encode();
        Some(Box::pin(async move {
            let saved = sink
                .publisher
                .publish_state(&sink.topic, sink.partition, &self.user_id, Some(&state))
                .await;
            if let Err(error) = saved {
                if last {
                    tracing::warn!(poller = %self.poller, user = %self.user_id, %error, "queue state not saved at handoff; the next owner subscribes anew");
                } else {
                    tracing::debug!(poller = %self.poller, user = %self.user_id, %error, "queue state not saved");
                }
            }
        }))
    }

    /// One token/subscribe/poll/publish round, retrying failures with back-off until it
    /// completes or stop is requested.
    async fn cycle(
        &self,
        token: &mut Option<CachedToken>,
        queue: &mut Option<Url>,
        clock: &mut QueueClock,
        step: Step,
        stop: &CancellationToken,
    ) -> Result<CycleResult, Stop> {
        let mut backoff = Backoff::new(self.settings.backoff_initial, self.settings.backoff_max);
        // One immediate token renewal and one immediate resubscription per round; repeats wait.
        let mut renewed = false;
        let mut resubscribed = false;
        loop {
            if stop.is_cancelled() {
                return Err(Stop::Requested);
            }
            let error = match self.attempt(token, queue, clock, step, stop).await {
                Ok(Attempted::Stopped) => return Err(Stop::Requested),
                Ok(Attempted::Subscribed) => return Ok(CycleResult::Subscribed),
                Ok(Attempted::Empty) => return Ok(CycleResult::Empty),
                Ok(Attempted::Page { page, took }) => {
                    return self.publish_page(page, took).await;
                }
                Err(error) => error,
            };
            match &error {
                PollError::Unauthorized => {
                    *token = None;
                    let renewable = matches!(self.credentials, UserCredentials::Password { .. });
                    if renewable && !renewed {
                        renewed = true;
                        continue;
                    }
                }
                // Only a poll of a known queue says the queue is gone; a refused subscription
                // is a failure like any other.
                PollError::QueueGone(status) if queue.is_some() => {
                    tracing::info!(poller = %self.poller, user = %self.user_id, %status, "queue gone; subscribing again");
                    *queue = None;
                    clock.subscribed_at = None;
                    self.metrics.poller.resubscribed(&self.poller);
                    if !resubscribed {
                        resubscribed = true;
                        continue;
                    }
                }
                _ => {}
            }
            let mut wait = backoff.next_delay();
            if let PollError::Throttled {
                retry_after: Some(asked),
            } = &error
            {
                wait = wait.max((*asked).min(self.settings.backoff_max));
            }
            if matches!(error, PollError::Unauthorized | PollError::TokenRefused(_)) {
                tracing::warn!(poller = %self.poller, user = %self.user_id, %error, ?wait, "oxlin refuses this user's credentials");
            } else {
                tracing::debug!(poller = %self.poller, user = %self.user_id, %error, ?wait, "poll failed; backing off");
            }
            self.metrics.poller.retried(&self.poller, error.reason());
            sleep_or_stop(wait, stop).await?;
        }
    }

    /// Token, queue, then one poll (none for [`Step::Subscribe`]). Stop is looked at before
    /// each request (and while waiting for a request slot), never during one: a poll cut short
    /// could lose the events it took off the queue, and the shutdown and hand-off budgets count
    /// on at most one request after stop.
    async fn attempt(
        &self,
        token: &mut Option<CachedToken>,
        queue: &mut Option<Url>,
        clock: &mut QueueClock,
        step: Step,
        stop: &CancellationToken,
    ) -> Result<Attempted, PollError> {
        let current = match token {
            Some(cached) if cached.renew_at.is_none_or(|at| Instant::now() < at) => {
                cached.value.clone()
            }
            _ => {
                let Some(fresh) = self.fetch_token(stop).await? else {
                    return Ok(Attempted::Stopped);
                };
                let value = fresh.value.clone();
                *token = Some(fresh);
                value
            }
        };
        let queue_url = match queue {
            Some(url) => url.clone(),
            None => {
                let Some(slot) = self.slot_unless_stopped(stop).await else {
                    return Ok(Attempted::Stopped);
                };
                let url = self.client.subscribe(slot, &current, &self.topics).await?;
                tracing::debug!(poller = %self.poller, user = %self.user_id, "subscribed to a queue");
                *queue = Some(url.clone());
                clock.subscribed_at = Some(SystemTime::now());
                clock.touched_at = Some(Instant::now());
                clock.saved_at = None;
                url
            }
        };
        if step == Step::Subscribe {
            // A resumed queue: its subscription time is not ours to know; "now" only bounds
            // its age from below.
            clock.subscribed_at.get_or_insert_with(SystemTime::now);
            return Ok(Attempted::Subscribed);
        }
        let Some(slot) = self.slot_unless_stopped(stop).await else {
            return Ok(Attempted::Stopped);
        };
        let started = std::time::Instant::now();
        clock.last_query_at = Some(SystemTime::now());
        clock.touched_at = Some(Instant::now());
        let result = self.client.poll(slot, &current, &queue_url).await;
        let took = started.elapsed();
        match result {
            // A page is counted once read, by `publish_page`: only then is it known to hold
            // events, and reading it here too would double the poller's JSON work.
            Ok(Polled::Page(page)) => Ok(Attempted::Page { page, took }),
            Ok(Polled::Empty) => {
                self.metrics
                    .poller
                    .polled(&self.poller, PollOutcome::Empty, took);
                Ok(Attempted::Empty)
            }
            Err(error) => {
                self.metrics
                    .poller
                    .polled(&self.poller, error.outcome(), took);
                Err(error)
            }
        }
    }

    /// A request slot, or none when stop comes first (then nothing was sent).
    async fn slot_unless_stopped(&self, stop: &CancellationToken) -> Option<RequestSlot> {
        tokio::select! {
            biased;
            () = stop.cancelled() => None,
            slot = self.client.request_slot() => Some(slot),
        }
    }

    /// A token for the user's credentials; none when stop came before the request.
    async fn fetch_token(
        &self,
        stop: &CancellationToken,
    ) -> Result<Option<CachedToken>, PollError> {
        match &self.credentials {
            UserCredentials::AccessToken(value) => Ok(Some(CachedToken {
                value: value.clone(),
                renew_at: None,
            })),
            UserCredentials::Password { username, password } => {
                let Some(slot) = self.slot_unless_stopped(stop).await else {
                    return Ok(None);
                };
                let result = self.client.password_token(slot, username, password).await;
                self.metrics
                    .poller
                    .token_refreshed(&self.poller, result.is_ok());
                let token = result?;
                // A lifetime too long for the clock (an absurd `expires_in`) is no deadline.
                let renew_at = token.expires_in.and_then(|lifetime| {
                    let margin = TOKEN_RENEWAL_MARGIN.min(lifetime / 10);
                    Instant::now().checked_add(lifetime - margin)
                });
                Ok(Some(CachedToken {
                    value: token.value,
                    renew_at,
                }))
            }
        }
    }

    /// Where this loop's events come from: its user's queue at the provider, under the
    /// poller's name.
    fn origin(&self, received_at: OffsetDateTime) -> Origin<'_> {
        Origin {
            user_id: Some(&self.user_id),
            ..Origin::new(Linxo::KIND, &self.poller, Ingress::Queue, received_at)
        }
    }

    /// Publishes every event of a page (polled in `took`), in order per connection, waiting
    /// for each acknowledgement and retrying until all are on Kafka (or the grace period after
    /// `give_up` passes). A page without events (`[]`, `{"events": []}`) is "nothing yet",
    /// like a 204.
    async fn publish_page(&self, page: Bytes, took: Duration) -> Result<CycleResult, Stop> {
        let origin = self.origin(OffsetDateTime::now_utc());
        let protection = &self.settings.protection;
        let items = page::items(&origin, &page, |item| {
            let policy = ingest::choose_policy(
                self.publisher.routing(),
                |name| protection.by_name.get(name).map(|policy| policy.as_ref()),
                protection.own.as_deref(),
                &item,
            );
            ingest::protect(item, policy, &HeaderMap::new())
        })
        .expect("a poller polls a provider with queues");
        if items.is_empty() {
            self.metrics
                .poller
                .polled(&self.poller, PollOutcome::Empty, took);
            return Ok(CycleResult::Empty);
        }
        self.metrics
            .poller
            .polled(&self.poller, PollOutcome::Events, took);
        let held = items.len() as i64;
        self.metrics.poller.add_events_held(&self.poller, held);

        // Per-key chains keep one connection's order; chains run in parallel.
        let chains = page::chains(&items);
        let deadline = StopDeadline::new(&self.give_up, self.settings.shutdown_grace);
        let deadline = &deadline;
        let published = futures::future::join_all(chains.iter().map(|chain| async move {
            let mut done = 0i64;
            for item in chain {
                if !self.publish_with_retry(item, deadline).await {
                    break;
                }
                done += 1;
                self.metrics.poller.add_events_held(&self.poller, -1);
            }
            done
        }))
        .await;
        let published: i64 = published.into_iter().sum();
        if published < held {
            self.metrics
                .poller
                .add_events_held(&self.poller, published - held);
            tracing::error!(
                poller = %self.poller,
                user = %self.user_id,
                lost = held - published,
                "stopped before Kafka acknowledged every polled event; those not acknowledged are lost unless librdkafka still delivers them before exit"
            );
            return Err(Stop::Requested);
        }
        Ok(CycleResult::Published)
    }

    /// Returns whether the item is on Kafka; false only when the stop deadline passed.
    async fn publish_with_retry(&self, item: &Item<'_>, deadline: &StopDeadline<'_>) -> bool {
        let mut backoff = Backoff::new(self.settings.backoff_initial, self.settings.backoff_max);
        let no_headers = HeaderMap::new();
        loop {
            // An event Kafka refuses for good is diverted to the dead-letter topic by the
            // publisher, so it never jams the user's queue; only retryable failures come back.
            // The publisher waits for librdkafka's verdict (see `Publisher::until_verdict`),
            // which can take long while Kafka struggles: past the stop's grace period, stop
            // waiting (the record may still land; the event then counts as not published).
            let delivery = ingest::deliver(
                &self.publisher,
                &self.metrics,
                &self.poller,
                item,
                &no_headers,
            );
            let result = tokio::select! {
                biased;
                result = delivery => result,
                () = deadline.passed() => return false,
            };
            let Err(error) = result else {
                return true;
            };
            self.metrics.poller.retried(&self.poller, KAFKA_RETRY);
            let wait = backoff.next_delay();
            tracing::debug!(poller = %self.poller, %error, ?wait, "kafka refused a polled event; holding it");
            if !deadline.sleep(wait).await {
                return false;
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Get a token and a queue, nothing more.
    Subscribe,
    /// Then poll the queue once, and publish what it gives.
    Poll,
}

/// What one [`UserLoop::attempt`] got: a subscription only, an empty queue (a 204, or a 200
/// with nothing but whitespace), or a page still to be read.
enum Attempted {
    /// Stop came before a request was sent.
    Stopped,
    Subscribed,
    Empty,
    Page {
        page: Bytes,
        took: Duration,
    },
}

enum CycleResult {
    Subscribed,
    Empty,
    Published,
}

/// "Keep trying until stop, then for the grace period."
struct StopDeadline<'s> {
    stop: &'s CancellationToken,
    grace: Duration,
    /// Set when stop is first seen: the end of the grace period.
    deadline: std::sync::Mutex<Option<Instant>>,
}

impl<'s> StopDeadline<'s> {
    fn new(stop: &'s CancellationToken, grace: Duration) -> Self {
        Self {
            stop,
            grace,
            deadline: std::sync::Mutex::new(None),
        }
    }

    /// The end of the grace period, counted from the first time stop is seen.
    fn end(&self) -> Instant {
        *self
            .deadline
            .lock()
            .expect("never poisoned")
            .get_or_insert_with(|| Instant::now() + self.grace)
    }

    /// Resolves once the grace period after stop is over (never before stop).
    async fn passed(&self) {
        self.stop.cancelled().await;
        tokio::time::sleep_until(self.end()).await;
    }

    /// Sleeps `wait` before another try; false when the grace period after stop is over.
    async fn sleep(&self, wait: Duration) -> bool {
        if !self.stop.is_cancelled() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => return true,
                _ = self.stop.cancelled() => {}
            }
        }
        let deadline = self.end();
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep(wait.min(deadline - now)).await;
        Instant::now() < deadline
    }
}

async fn sleep_or_stop(wait: Duration, stop: &CancellationToken) -> Result<(), Stop> {
    if wait.is_zero() {
        return if stop.is_cancelled() {
            Err(Stop::Requested)
        } else {
            Ok(())
        };
    }
    tokio::select! {
        _ = tokio::time::sleep(wait) => Ok(()),
        _ = stop.cancelled() => Err(Stop::Requested),
    }
}

#[cfg(test)]
mod tests {
    //! The loop's rules against a scripted queue API, in paused tokio time.

    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use reqwest::StatusCode;

    use super::*;
    use crate::config::Config;
    use crate::poller::client::{OxlinClient, Token};

    #[derive(Default)]
    struct ScriptedApi {
        script: Mutex<VecDeque<Result<Polled, PollError>>>,
        polls: Mutex<Vec<Instant>>,
        tokens: AtomicUsize,
        subscriptions: AtomicUsize,
        /// The `expires_in` of issued tokens; none: an hour.
        token_lifetime: Option<Duration>,
        /// Request slots, as the real client's `max_concurrent_requests`; none: unbounded.
        slots: Option<Arc<tokio::sync::Semaphore>>,
    }

    impl QueueApi for ScriptedApi {
        async fn request_slot(&self) -> RequestSlot {
            if let Some(slots) = &self.slots {
                // Held until a permit comes; the test adds none while the loop runs.
                let _permit = slots.acquire().await.expect("never closed");
            }
            RequestSlot::unbounded()
        }

        async fn password_token(
            &self,
            _: RequestSlot,
            _: &Secret,
            _: &Secret,
        ) -> Result<Token, PollError> {
            let issued = self.tokens.fetch_add(1, Ordering::SeqCst);
            Ok(Token {
                value: Secret::new(format!("token-{issued}")),
                expires_in: Some(self.token_lifetime.unwrap_or(Duration::from_secs(3600))),
            })
        }

        async fn subscribe(
            &self,
            _: RequestSlot,
            _: &Secret,
            _: &[String],
        ) -> Result<Url, PollError> {
            let queue = self.subscriptions.fetch_add(1, Ordering::SeqCst);
            Ok(Url::parse(&format!("http://oxlin.test/queues/{queue}")).unwrap())
        }

        async fn poll(&self, _: RequestSlot, _: &Secret, _: &Url) -> Result<Polled, PollError> {
            self.polls.lock().unwrap().push(Instant::now());
            self.script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Ok(Polled::Empty))
        }
    }

    fn settings() -> LoopSettings {
        LoopSettings {
            interval: Duration::from_secs(10),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(8),
            shutdown_grace: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            protection: Protection::default(),
        }
    }

    /// Runs one user's loop against `script` for `run_for` of paused time.
    async fn run_script(
        script: Vec<Result<Polled, PollError>>,
        credentials: UserCredentials,
        run_for: Duration,
    ) -> Arc<ScriptedApi> {
        let api = ScriptedApi::default();
        api.script.lock().unwrap().extend(script);
        run_against(api, credentials, run_for).await
    }

    /// Runs one user's loop against `api` for `run_for` of paused time, then stops it; fails
    /// if the loop panicked.
    async fn run_against(
        api: ScriptedApi,
        credentials: UserCredentials,
        run_for: Duration,
    ) -> Arc<ScriptedApi> {
        let api = Arc::new(api);
        let user_loop = user_loop(Arc::clone(&api), credentials);
        let stop = CancellationToken::new();
        let task = tokio::spawn(user_loop.run(stop.clone()));
        tokio::time::sleep(run_for).await;
        stop.cancel();
        task.await.expect("the loop did not panic");
        api
    }

    /// A loop of user `u1` on `client`, publishing to a broker that is never reached.
    fn user_loop<Api: QueueApi>(client: Arc<Api>, credentials: UserCredentials) -> UserLoop<Api> {
        let config = Config::over_defaults("").unwrap();
        let metrics = Metrics::new(prometheus::Registry::new()).unwrap();
        let publisher = Publisher::new(&config.kafka, "127.0.0.1:1", &[], metrics.clone()).unwrap();
        // Polls go out as with a broker up; a page's records find none (see each test).
        publisher.health().assume_reachable();
        UserLoop {
            poller: Arc::from("test"),
            user_id: "u1".to_owned(),
            credentials,
            client,
            publisher,
            metrics,
            settings: settings(),
            first_poll_delay: Duration::ZERO,
            topics: vec!["connections".to_owned()],
            resume: None,
            state: None,
            give_up: CancellationToken::new(),
        }
    }

    /// Every polled user is a task whose future sleeps between polls nearly all its life: it
    /// must stay about the size of the loop's own fields, whatever its HTTP and Kafka steps
    /// hold. In a test build the future takes about 1.06 KB for a 552-byte loop; it fails when
    /// the poll cycle is awaited unboxed (2.4 KB with the real client), or when `run` keeps the
    /// loop twice, as an `async fn` does (1.6 KB). Sizes are fixed at compile time: the test
    /// cannot flake, but a new compiler may move them.
    #[tokio::test]
    async fn a_sleeping_user_costs_little_more_than_its_loop() {
        let config = Config::over_defaults(
            r#"
            [pollers.oxlin]
            kind = "oxlin"
            environment = "custom"
            api_url = "http://127.0.0.1:1/v2.1"
            token_url = "http://127.0.0.1:1/token"
            client_id = "finhook"
            client_secret = "secret"
            users_file = "/dev/null"
            "#,
        )
        .unwrap();
        let client = OxlinClient::new(reqwest::Client::new(), &config.pollers["oxlin"], None);
        let user_loop = user_loop(Arc::new(client), password());
        let loop_size = std::mem::size_of_val(&user_loop);
        let future = user_loop.run(CancellationToken::new());
        let future_size = std::mem::size_of_val(&future);
        assert!(
            future_size < loop_size + 768,
            "a user's future takes {future_size} bytes for a loop of {loop_size}"
        );
    }

    fn password() -> UserCredentials {
        UserCredentials::Password {
            username: Secret::new("user"),
            password: Secret::new("pass"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_lifetime_beyond_the_clock_is_kept_without_a_renewal_deadline() {
        // `expires_in` as large as the provider can write: adding it to the clock overflowed
        // and the user's loop panicked (never to poll again).
        let api = ScriptedApi {
            token_lifetime: Some(Duration::from_secs(u64::MAX)),
            ..ScriptedApi::default()
        };
        let api = run_against(api, password(), Duration::from_secs(60)).await;
        assert!(api.polls.lock().unwrap().len() >= 3, "it kept polling");
        assert_eq!(
            api.tokens.load(Ordering::SeqCst),
            1,
            "one token, never renewed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_user_stopped_while_waiting_for_a_request_slot_ends_without_a_request() {
        // Every slot taken (other users' requests): the loop waits to ask for its token.
        let slots = Arc::new(tokio::sync::Semaphore::new(0));
        let api = Arc::new(ScriptedApi {
            slots: Some(Arc::clone(&slots)),
            ..ScriptedApi::default()
        });
        let user_loop = user_loop(Arc::clone(&api), password());
        let stop = CancellationToken::new();
        let task = tokio::spawn(user_loop.run(stop.clone()));
        tokio::time::sleep(Duration::from_secs(30)).await;
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            // Before, the wait for a slot ignored stop: the loop ended only once a slot freed
            // up and its request had gone out.
            .expect("the loop ends at once, without waiting for a slot")
            .unwrap();
        slots.add_permits(8);
        tokio::task::yield_now().await;
        assert_eq!(api.tokens.load(Ordering::SeqCst), 0, "no token asked for");
        assert_eq!(
            api.subscriptions.load(Ordering::SeqCst),
            0,
            "no subscription"
        );
        assert!(api.polls.lock().unwrap().is_empty(), "no poll");
    }

    #[tokio::test(start_paused = true)]
    async fn a_user_stopped_while_kafka_refuses_keeps_its_page_until_the_loop_must_give_up() {
        // The user changed or left while its page waits for Kafka (never reached here): the
        // events are off the provider's queue, and nothing asks to hurry.
        let api = Arc::new(ScriptedApi::default());
        let page = Bytes::from_static(br#"[{"id":"q-1","name":"SYNC_STARTED"}]"#);
        api.script.lock().unwrap().push_back(Ok(Polled::Page(page)));
        let user_loop = user_loop(Arc::clone(&api), password());
        let give_up = user_loop.give_up.clone();
        let stop = CancellationToken::new();
        let task = tokio::spawn(user_loop.run(stop.clone()));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(api.polls.lock().unwrap().len(), 1, "the page was taken");
        stop.cancel();
        // Far past the grace period (1 s): still holding the page, not giving it up.
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert!(
            !task.is_finished(),
            "gave up a page while nothing required it"
        );
        assert_eq!(api.polls.lock().unwrap().len(), 1, "no poll after stop");
        // The process stops: the grace period starts, then the loop gives up and ends.
        give_up.cancel();
        tokio::time::timeout(Duration::from_secs(70), task)
            .await
            .expect("the loop ends after the grace period")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn with_kafka_down_the_events_wait_on_the_queue() {
        let api = Arc::new(ScriptedApi::default());
        let mut user_loop = user_loop(Arc::clone(&api), password());
        let config = Config::over_defaults("").unwrap();
        let metrics = Metrics::new(prometheus::Registry::new()).unwrap();
        // A publisher whose broker never answered a probe: not ready.
        user_loop.publisher =
            Publisher::new(&config.kafka, "127.0.0.1:1", &[], metrics.clone()).unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(user_loop.run(stop.clone()));
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(
            api.subscriptions.load(Ordering::SeqCst),
            1,
            "the queue exists"
        );
        assert!(
            api.polls.lock().unwrap().is_empty(),
            "no events taken off the queue while Kafka cannot take them"
        );
        // Until the queue nears its expiry (15 minutes after its subscription): then it is
        // polled to keep it alive, once, and left alone again.
        tokio::time::sleep(Duration::from_secs(13 * 60)).await;
        let polls = api.polls.lock().unwrap().clone();
        assert_eq!(polls.len(), 1, "one poll keeps the queue alive: {polls:?}");
        let subscribed_at = Instant::now() - Duration::from_secs(15 * 60);
        let age = polls[0] - subscribed_at;
        assert!(
            age < crate::config::poller::QUEUE_BUDGET,
            "polled {age:?} after the subscription"
        );
        stop.cancel();
        task.await.unwrap();
    }

    fn gaps(api: &ScriptedApi) -> Vec<Duration> {
        let polls = api.polls.lock().unwrap();
        polls.windows(2).map(|pair| pair[1] - pair[0]).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn server_errors_back_off_exponentially_with_jitter_then_polling_resumes() {
        let unavailable = || Err(PollError::Server(StatusCode::SERVICE_UNAVAILABLE));
        let script = vec![
            unavailable(),
            unavailable(),
            unavailable(),
            unavailable(),
            unavailable(),
        ];
        let api = run_script(script, password(), Duration::from_secs(60)).await;
        let gaps = gaps(&api);
        // 1 s, 2 s, 4 s, 8 s, then the 8 s cap; each wait in the upper half of its step.
        for (gap, step) in gaps.iter().zip([1u64, 2, 4, 8, 8]) {
            let step = Duration::from_secs(step);
            assert!(
                *gap >= step / 2 && *gap <= step,
                "waited {gap:?} for a {step:?} step: {gaps:?}"
            );
        }
        // Then the queue answers 204 and polling goes back to the interval (± 10 %).
        let after_recovery = gaps[5];
        assert!(
            after_recovery >= Duration::from_secs(9) && after_recovery <= Duration::from_secs(11),
            "{gaps:?}"
        );
        assert_eq!(
            api.tokens.load(Ordering::SeqCst),
            1,
            "a 5xx does not renew the token"
        );
        assert_eq!(api.subscriptions.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn unauthorized_renews_the_token_once_and_retries_at_once() {
        let api = run_script(
            vec![Err(PollError::Unauthorized)],
            password(),
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(api.tokens.load(Ordering::SeqCst), 2);
        assert_eq!(
            gaps(&api)[0],
            Duration::ZERO,
            "no back-off before the retry"
        );
        assert_eq!(
            api.subscriptions.load(Ordering::SeqCst),
            1,
            "the queue is kept"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_unauthorized_backs_off_after_one_renewal() {
        let script = vec![
            Err(PollError::Unauthorized),
            Err(PollError::Unauthorized),
            Err(PollError::Unauthorized),
        ];
        let api = run_script(script, password(), Duration::from_secs(30)).await;
        let gaps = gaps(&api);
        assert_eq!(gaps[0], Duration::ZERO);
        assert!(
            gaps[1] >= Duration::from_millis(500),
            "the second refusal waits: {gaps:?}"
        );
        assert_eq!(
            api.tokens.load(Ordering::SeqCst),
            4,
            "one renewal per attempt after the first"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn static_token_is_never_renewed() {
        let credentials = UserCredentials::AccessToken(Secret::new("static"));
        let api = run_script(
            vec![Err(PollError::Unauthorized)],
            credentials,
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(api.tokens.load(Ordering::SeqCst), 0);
        assert!(
            gaps(&api)[0] >= Duration::from_millis(500),
            "backs off instead"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn gone_queue_is_subscribed_again_at_once() {
        let script = vec![
            Err(PollError::QueueGone(StatusCode::NOT_FOUND)),
            Err(PollError::QueueGone(StatusCode::GONE)),
        ];
        let api = run_script(script, password(), Duration::from_secs(30)).await;
        assert_eq!(api.subscriptions.load(Ordering::SeqCst), 3);
        let gaps = gaps(&api);
        assert_eq!(gaps[0], Duration::ZERO, "first resubscription is immediate");
        assert!(
            gaps[1] >= Duration::from_millis(500),
            "a second one in a row waits: {gaps:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_honours_retry_after_up_to_the_cap() {
        let script = vec![Err(PollError::Throttled {
            retry_after: Some(Duration::from_secs(5)),
        })];
        let api = run_script(script, password(), Duration::from_secs(30)).await;
        let gap = gaps(&api)[0];
        assert!(
            gap >= Duration::from_secs(5) && gap <= Duration::from_secs(6),
            "{gap:?}"
        );
    }
}
