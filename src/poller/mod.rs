//! Oxlin event-queue polling: one supervised loop per user. In file mode the users come from
//! the configuration, reloaded on SIGHUP or when the users file changes (one replica); in
//! registry mode from the users registry on Kafka, shared by any number of replicas through a
//! consumer group (see [`assignment`]).

pub mod assignment;
mod backoff;
pub mod client;
pub(crate) mod page;
mod user;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use reqwest::Url;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::backoff::jitter;
pub use self::backoff::Backoff;
use self::client::OxlinClient;
pub use self::user::Protection;
use self::user::{LoopSettings, UserLoop};
use crate::config::{ConfigError, PollerConfig, UserCredentials};
use crate::metrics::Metrics;
use crate::publish::Publisher;

/// When the first poll of a newly started user loop goes out (each subscribes at once).
#[derive(Debug, Clone, Copy)]
enum Start {
    /// Users present at start: first polls spread over one interval, so thousands of users
    /// do not fire together.
    Spread,
    /// A user added while running: polled at once, since its synchronization may be starting.
    AtOnce,
}

struct RunningUser {
    credentials: UserCredentials,
    stop: CancellationToken,
    /// The loop; it ends only when stopped, with the queue it was polling.
    task: JoinHandle<Option<Url>>,
}

/// The loops of one poller (file mode): those running, by user id, and those of removed users
/// still publishing what they hold.
#[derive(Default)]
struct UserLoops {
    running: HashMap<String, RunningUser>,
    /// Loops of removed users, by user id, until they end: one may hold a page until Kafka
    /// takes it, and a user added back starts after it (the two never poll together).
    retiring: HashMap<String, JoinHandle<Option<Url>>>,
}

/// One configured poller and the users it runs.
pub struct Poller {
    name: Arc<str>,
    config: PollerConfig,
    client: Arc<OxlinClient>,
    publisher: Arc<Publisher>,
    metrics: Metrics,
    settings: LoopSettings,
    reload: Arc<Notify>,
}

impl Poller {
    pub fn new(
        name: &str,
        config: PollerConfig,
        http: reqwest::Client,
        publisher: Arc<Publisher>,
        metrics: Metrics,
        shutdown_grace: Duration,
        protection: Protection,
    ) -> Result<Self, ConfigError> {
        let client_secret = config.resolve_client_secret(name)?;
        let client = Arc::new(OxlinClient::new(http, &config, client_secret));
        let settings = LoopSettings {
            interval: config.interval,
            backoff_initial: config.backoff_initial,
            backoff_max: config.backoff_max,
            // How long a stopping user keeps trying to publish what it already fetched.
            shutdown_grace,
            request_timeout: config.request_timeout,
            protection,
        };
        metrics.poller.register_poller(name);
        Ok(Self {
            name: Arc::from(name),
            config,
            client,
            publisher,
            metrics,
            settings,
            reload: Arc::new(Notify::new()),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The longest one request to the provider may take.
    pub(crate) fn request_timeout(&self) -> Duration {
        self.config.request_timeout
    }

    /// The wait between polls of an empty queue.
    pub(crate) fn interval(&self) -> Duration {
        self.settings.interval
    }

    pub(crate) fn client(&self) -> &OxlinClient {
        &self.client
    }

    /// A loop for one user of this poller, subscribing to the poller's topics; the caller may
    /// set the registry-mode fields (topics, resume, state) before running it.
    pub(crate) fn user_loop(
        &self,
        id: &str,
        credentials: UserCredentials,
        first_poll_delay: Duration,
        give_up: CancellationToken,
    ) -> UserLoop<OxlinClient> {
        UserLoop {
            poller: Arc::clone(&self.name),
            user_id: id.to_owned(),
            credentials,
            client: Arc::clone(&self.client),
            publisher: Arc::clone(&self.publisher),
            metrics: self.metrics.clone(),
            settings: self.settings.clone(),
            first_poll_delay,
            topics: self.client.topics().to_vec(),
            resume: None,
            state: None,
            give_up,
        }
    }

    /// Notifying this reloads the user list, like SIGHUP.
    pub fn reload_trigger(&self) -> Arc<Notify> {
        Arc::clone(&self.reload)
    }

    /// The configured users (file mode), files read.
    pub fn load_users(&self) -> Result<Vec<(String, UserCredentials)>, ConfigError> {
        self.config.load_users(&self.name)
    }

    /// Polls `users`, applying reloads, until `stop`; then waits for every user loop to finish
    /// (each publishes what it holds first).
    pub async fn run(self, users: Vec<(String, UserCredentials)>, stop: CancellationToken) {
        let mut loops = UserLoops::default();
        self.apply(users, &mut loops, &stop, Start::Spread);
        let mut hangup = hangup_signal();
        let mut file_version = self.users_file_version();
        loop {
            let reason = tokio::select! {
                _ = stop.cancelled() => break,
                _ = hangup.recv() => Some("SIGHUP"),
                _ = self.reload.notified() => Some("reload request"),
                _ = tokio::time::sleep(self.config.reload_interval) => {
                    let version = self.users_file_version();
                    (version != file_version).then(|| {
                        file_version = version;
                        "users file changed"
                    })
                }
            };
            self.restart_ended_loops(&mut loops, &stop);
            loops.retiring.retain(|_, task| !task.is_finished());
            let Some(reason) = reason else {
                continue;
            };
            match self.load_users() {
                Ok(users) => {
                    tracing::info!(poller = %self.name, reason, users = users.len(), "reloading users");
                    self.apply(users, &mut loops, &stop, Start::AtOnce);
                }
                Err(error) => {
                    tracing::warn!(poller = %self.name, reason, %error, "users not reloaded; keeping the current ones")
                }
            }
        }
        tracing::info!(poller = %self.name, "stopping: no more polls; publishing what is held");
        for user in loops.running.values() {
            user.stop.cancel();
        }
        let tasks = loops.running.into_values().map(|user| user.task);
        for task in tasks.chain(loops.retiring.into_values()) {
            let _ = task.await;
        }
        self.metrics.poller.set_users(&self.name, 0);
    }

    /// Starts loops for new users, stops removed ones, restarts those whose credentials
    /// changed: the new loop starts once the old one has published what it holds, and polls
    /// the queue the old one polled (what reached it since the old loop's last poll is still
    /// there; a new subscription would leave it behind), so the two never poll together.
    fn apply(
        &self,
        users: Vec<(String, UserCredentials)>,
        loops: &mut UserLoops,
        stop: &CancellationToken,
        start: Start,
    ) {
        let wanted: HashMap<String, UserCredentials> = users.into_iter().collect();
        let outdated: Vec<String> = loops
            .running
            .iter()
            .filter(|(id, user)| wanted.get(*id) != Some(&user.credentials))
            .map(|(id, _)| id.clone())
            .collect();
        let mut changed: HashMap<String, JoinHandle<Option<Url>>> = HashMap::new();
        for id in outdated {
            let user = loops.running.remove(&id).expect("listed above");
            user.stop.cancel();
            if wanted.contains_key(&id) {
                changed.insert(id, user.task);
            } else {
                loops.retiring.insert(id, user.task);
            }
        }
        for (id, credentials) in wanted {
            if loops.running.contains_key(&id) {
                continue;
            }
            let previous = changed.remove(&id).or_else(|| loops.retiring.remove(&id));
            let user = self.start_user(&id, credentials, start, stop, previous);
            loops.running.insert(id, user);
        }
        self.metrics
            .poller
            .set_users(&self.name, loops.running.len());
    }

    /// Starts one user's loop, after `previous` (the same user's loop, stopping) has ended and
    /// on the queue it returns.
    fn start_user(
        &self,
        id: &str,
        credentials: UserCredentials,
        start: Start,
        stop: &CancellationToken,
        previous: Option<JoinHandle<Option<Url>>>,
    ) -> RunningUser {
        let user_stop = stop.child_token();
        let first_poll_delay = match start {
            Start::Spread => jitter(self.settings.interval),
            Start::AtOnce => Duration::ZERO,
        };
        // A loop stopped because its user changed or left keeps what it holds until Kafka
        // takes it; only the process's stop starts the grace period.
        let mut user_loop = self.user_loop(id, credentials.clone(), first_poll_delay, stop.clone());
        let loop_stop = user_stop.clone();
        // The loop's own future, not one wrapped in a block that would keep a spent copy of the
        // loop beside it for as long as the user is polled (`then` moves it in when it starts).
        let task = match previous {
            None => tokio::spawn(user_loop.run(loop_stop)),
            Some(previous) => tokio::spawn(async move { previous.await.ok().flatten() }.then(
                move |queue| {
                    user_loop.resume = queue;
                    user_loop.run(loop_stop)
                },
            )),
        };
        RunningUser {
            credentials,
            stop: user_stop,
            task,
        }
    }

    /// A user loop ends only when stopped: one that ended while still wanted panicked. It is
    /// reported and started again (on a new subscription: its queue went with it).
    fn restart_ended_loops(&self, loops: &mut UserLoops, stop: &CancellationToken) {
        let ended: Vec<String> = loops
            .running
            .iter()
            .filter(|(_, user)| user.task.is_finished() && !user.stop.is_cancelled())
            .map(|(id, _)| id.clone())
            .collect();
        for id in ended {
            let user = loops.running.remove(&id).expect("listed above");
            tracing::error!(poller = %self.name, user = %id, "a user loop ended unexpectedly; starting it again");
            let restarted = self.start_user(&id, user.credentials, Start::AtOnce, stop, None);
            loops.running.insert(id, restarted);
        }
    }

    fn users_file_version(&self) -> Option<(SystemTime, u64)> {
        let metadata = std::fs::metadata(self.config.users_file.as_ref()?).ok()?;
        Some((metadata.modified().ok()?, metadata.len()))
    }
}

/// SIGHUP as a stream; never fires where there are no signals.
struct Hangup(Option<tokio::signal::unix::Signal>);

impl Hangup {
    async fn recv(&mut self) {
        match &mut self.0 {
            Some(signal) => {
                signal.recv().await;
            }
            None => std::future::pending().await,
        }
    }
}

fn hangup_signal() -> Hangup {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Hangup(Some(signal)),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; users reload only when their file changes");
            Hangup(None)
        }
    }
}
