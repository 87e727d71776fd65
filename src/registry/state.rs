//! Queue state on its compacted topic (key = user id, same partition as the user's registry
//! record): which queue a user is polled on and when it was last queried, so that a replica
//! taking the user over resumes that queue while Oxlin still keeps it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::poller::QUEUE_EXPIRY;

/// Oxlin's expiry less a margin for clocks and the request in flight: an older queue is not
/// resumed but subscribed anew.
pub const RESUMABLE_FOR: Duration = Duration::from_secs(QUEUE_EXPIRY.as_secs() - 60);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueState {
    pub version: u32,
    /// The queue's URL.
    pub queue: String,
    /// Unix milliseconds.
    pub subscribed_at: u64,
    /// Unix milliseconds of the last query known to the writer.
    pub last_query_at: u64,
}

pub fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

impl QueueState {
    pub fn new(queue: &str, subscribed_at: SystemTime, last_query_at: SystemTime) -> Self {
        Self {
            version: 1,
            queue: queue.to_owned(),
            subscribed_at: unix_millis(subscribed_at),
            last_query_at: unix_millis(last_query_at),
        }
    }

    pub fn decode(value: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(value)
            .ok()
            .filter(|state| state.version == 1)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("queue state serializes")
    }

    /// Whether the queue can still be alive at `now`: queried within [`RESUMABLE_FOR`].
    pub fn is_resumable(&self, now: SystemTime) -> bool {
        unix_millis(now).saturating_sub(self.last_query_at) < RESUMABLE_FOR.as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_is_resumable_until_shortly_before_oxlin_forgets_it() {
        let now = SystemTime::now();
        let fresh = QueueState::new("http://o/queues/1", now, now - Duration::from_secs(60));
        assert!(fresh.is_resumable(now));
        let old = QueueState::new(
            "http://o/queues/1",
            now,
            now - Duration::from_secs(14 * 60 + 1),
        );
        assert!(!old.is_resumable(now));
        assert_eq!(QueueState::decode(&fresh.encode()), Some(fresh));
        assert_eq!(QueueState::decode(b"{}"), None);
    }
}
