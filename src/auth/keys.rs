//! Verification keys fetched from a provider over HTTP (Plaid's key endpoint, TrueLayer's JWKS):
//! cached by id, fetched again when an unknown id appears or a cached key grows old.
//!
//! A key id comes from the request before anything is verified, so a stranger chooses it:
//! - an id a fetch did not find (or failed for) is remembered for `miss_interval`: the same id
//!   meanwhile is refused (not found) or answered 503 (the fetch failed) without a new fetch;
//! - fetches for ids not in the cache draw on a budget of [`UNKNOWN_ID_FETCHES`] per
//!   `miss_interval`; past it, requests for new unknown ids are answered 503
//!   ([`AuthError::KeysUnavailable`]), so a genuine event signed with a newly rotated key is
//!   retried by its provider rather than refused. A stranger's miss costs one unit of the budget
//!   and holds off nobody else: to keep a genuine new key out, it would have to send new ids
//!   faster than the budget refills (and the key server's outage answers, which are not its);
//! - refreshing an old key that fails is tried again only after `miss_interval`, and the cached
//!   key keeps working meanwhile;
//! - concurrent fetches are serialized, so a burst shares one.
//!
//! So a stranger causes at most [`UNKNOWN_ID_FETCHES`] fetches per `miss_interval`, and a key
//! server outage does not refuse events signed with a key finhook already has.

use std::collections::HashMap;
use std::future::Future;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use super::AuthError;

/// Why a fetch failed; logged (it names no secret), then answered as `KeysUnavailable`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

impl From<reqwest::Error> for FetchError {
    fn from(error: reqwest::Error) -> Self {
        // Without the URL: keep every message free of anything request-specific.
        FetchError(error.without_url().to_string())
    }
}

/// How long keys are trusted before they are fetched again, and how often a stranger's key id
/// (or a failing refresh) may cause a fetch.
#[derive(Debug, Clone, Copy)]
pub struct CachePolicy {
    pub ttl: Duration,
    pub miss_interval: Duration,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(60 * 60),
            miss_interval: Duration::from_secs(10),
        }
    }
}

struct Cached<K> {
    key: K,
    fetched: Instant,
    /// After a failed refresh: not before this.
    retry_at: Option<Instant>,
}

/// Fetches for unknown ids allowed per `miss_interval` (and at once, after a quiet spell).
pub const UNKNOWN_ID_FETCHES: u32 = 5;

/// Missed ids remembered at most; past it the oldest are forgotten.
const MAX_REMEMBERED_MISSES: usize = 1024;

/// What fetches for unknown ids left behind: which ids missed, and what is left of the budget.
struct Misses {
    by_id: HashMap<String, Miss>,
    /// Fetches left (fractional: it refills continuously), and when that was counted.
    budget: f64,
    counted_at: Instant,
}

#[derive(Clone, Copy)]
struct Miss {
    at: Instant,
    /// The provider answered without the id (a stranger's id); else the fetch failed.
    not_found: bool,
}

impl Misses {
    /// Takes one fetch from the budget, refilled at [`UNKNOWN_ID_FETCHES`] per `interval`.
    fn take_fetch(&mut self, interval: Duration) -> bool {
        let now = Instant::now();
        let capacity = f64::from(UNKNOWN_ID_FETCHES);
        let refill = if interval.is_zero() {
            capacity
        } else {
            now.duration_since(self.counted_at).as_secs_f64() / interval.as_secs_f64() * capacity
        };
        self.budget = (self.budget + refill).min(capacity);
        self.counted_at = now;
        if self.budget < 1.0 {
            return false;
        }
        self.budget -= 1.0;
        true
    }

    fn remember(&mut self, id: &str, not_found: bool) {
        if self.by_id.len() >= MAX_REMEMBERED_MISSES && !self.by_id.contains_key(id) {
            let oldest = self
                .by_id
                .iter()
                .min_by_key(|(_, miss)| miss.at)
                .map(|(id, _)| id.clone())
                .expect("the map is not empty");
            self.by_id.remove(&oldest);
        }
        let miss = Miss {
            at: Instant::now(),
            not_found,
        };
        self.by_id.insert(id.to_owned(), miss);
    }

    /// The miss of `id` within the last `interval`, if any.
    fn recent(&self, id: &str, interval: Duration) -> Option<Miss> {
        self.by_id
            .get(id)
            .copied()
            .filter(|miss| miss.at.elapsed() < interval)
    }
}

/// Keys by id. `K` is whatever a verifier needs (a parsed public key, a JWKS document).
pub struct KeyCache<K> {
    policy: CachePolicy,
    keys: RwLock<HashMap<String, Cached<K>>>,
    /// Serializes fetches; what fetches for unknown ids found and may still do.
    fetching: tokio::sync::Mutex<Misses>,
}

impl<K> std::fmt::Debug for KeyCache<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cached = self.keys.read().map_or(0, |keys| keys.len());
        f.debug_struct("KeyCache")
            .field("policy", &self.policy)
            .field("cached", &cached)
            .finish()
    }
}

/// Keys cached at most; past it the oldest are dropped (a provider has a handful).
const MAX_CACHED_KEYS: usize = 64;

impl<K: Clone> KeyCache<K> {
    pub fn new(policy: CachePolicy) -> Self {
        Self {
            policy,
            keys: RwLock::new(HashMap::new()),
            fetching: tokio::sync::Mutex::new(Misses {
                by_id: HashMap::new(),
                budget: f64::from(UNKNOWN_ID_FETCHES),
                counted_at: Instant::now(),
            }),
        }
    }

    /// The key `id`, fetched by `fetch` when it is unknown or older than the TTL. `fetch`
    /// returns the keys it found by id (a JWKS has several); `Ok(None)` means the provider does
    /// not know the id.
    pub async fn get<F, Fut>(&self, id: &str, fetch: F) -> Result<Option<K>, AuthError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<(String, K)>, FetchError>>,
    {
        if let (Some(key), false) = self.lookup(id) {
            return Ok(Some(key));
        }
        let mut misses = self.fetching.lock().await;
        // Another request may have fetched it while this one waited.
        let (cached, stale) = self.lookup(id);
        if let (Some(key), false) = (&cached, stale) {
            return Ok(Some(key.clone()));
        }
        if let Some(key) = cached {
            // An old key: refresh it, and keep using it if that fails.
            return match fetch().await {
                Ok(found) => Ok(self.store(id, found)),
                Err(error) => {
                    tracing::warn!(%error, "refreshing a verification key failed; using the cached one");
                    self.retry_later(id);
                    Ok(Some(key))
                }
            };
        }
        match misses.recent(id, self.policy.miss_interval) {
            // The provider did not know this id a moment ago: a stranger's.
            Some(Miss {
                not_found: true, ..
            }) => return Ok(None),
            // The fetch failed a moment ago: the request may be genuine, so 503.
            Some(Miss {
                not_found: false, ..
            }) => return Err(AuthError::KeysUnavailable),
            None => {}
        }
        if !misses.take_fetch(self.policy.miss_interval) {
            // Too many unknown ids lately to ask the key server again: the request may be
            // genuine, so 503.
            tracing::debug!("fetch budget for unknown key ids spent; answering 503");
            return Err(AuthError::KeysUnavailable);
        }
        match fetch().await {
            Ok(found) => {
                let key = self.store(id, found);
                if key.is_none() {
                    misses.remember(id, true);
                }
                Ok(key)
            }
            Err(error) => {
                misses.remember(id, false);
                tracing::warn!(%error, "fetching a verification key failed; answering 503");
                Err(AuthError::KeysUnavailable)
            }
        }
    }

    /// Stores what a fetch for `id` found and returns `id`'s key. A key the provider no longer
    /// lists is gone.
    fn store(&self, id: &str, found: Vec<(String, K)>) -> Option<K> {
        let now = Instant::now();
        let mut keys = self
            .keys
            .write()
            .expect("the key cache lock is never poisoned");
        keys.remove(id);
        for (found_id, key) in found {
            let cached = Cached {
                key,
                fetched: now,
                retry_at: None,
            };
            keys.insert(found_id, cached);
        }
        while keys.len() > MAX_CACHED_KEYS {
            let oldest = keys
                .iter()
                .min_by_key(|(_, cached)| cached.fetched)
                .map(|(id, _)| id.clone())
                .expect("the map is not empty");
            keys.remove(&oldest);
        }
        keys.get(id).map(|cached| cached.key.clone())
    }

    fn retry_later(&self, id: &str) {
        let mut keys = self
            .keys
            .write()
            .expect("the key cache lock is never poisoned");
        if let Some(cached) = keys.get_mut(id) {
            cached.retry_at = Some(Instant::now() + self.policy.miss_interval);
        }
    }

    /// The cached key and whether it should be refreshed now.
    fn lookup(&self, id: &str) -> (Option<K>, bool) {
        let keys = self
            .keys
            .read()
            .expect("the key cache lock is never poisoned");
        match keys.get(id) {
            Some(cached) => {
                let old = cached.fetched.elapsed() >= self.policy.ttl;
                let may_retry = cached.retry_at.is_none_or(|at| Instant::now() >= at);
                (Some(cached.key.clone()), old && may_retry)
            }
            None => (None, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn policy(ttl_ms: u64, miss_ms: u64) -> CachePolicy {
        CachePolicy {
            ttl: Duration::from_millis(ttl_ms),
            miss_interval: Duration::from_millis(miss_ms),
        }
    }

    #[tokio::test]
    async fn a_known_key_is_fetched_once() {
        let cache = KeyCache::new(policy(60_000, 0));
        let fetches = AtomicUsize::new(0);
        for _ in 0..3 {
            let key = cache
                .get("k1", || async {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    Ok(vec![("k1".to_owned(), 7u8)])
                })
                .await;
            assert_eq!(key, Ok(Some(7)));
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn unknown_ids_spend_a_bounded_budget_of_fetches_then_answer_503() {
        let cache = KeyCache::<u8>::new(policy(60_000, 60_000));
        let fetches = AtomicUsize::new(0);
        let mut answers = Vec::new();
        let ids: Vec<String> = (0..=UNKNOWN_ID_FETCHES).map(|n| format!("id{n}")).collect();
        for id in &ids {
            answers.push(
                cache
                    .get(id, || async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        Ok(vec![])
                    })
                    .await,
            );
        }
        assert_eq!(fetches.load(Ordering::SeqCst), UNKNOWN_ID_FETCHES as usize);
        let (last, fetched) = answers.split_last().unwrap();
        assert!(
            fetched.iter().all(|answer| *answer == Ok(None)),
            "{fetched:?}"
        );
        assert_eq!(*last, Err(AuthError::KeysUnavailable), "past the budget");
    }

    #[tokio::test]
    async fn an_id_the_provider_did_not_know_is_refused_again_without_a_fetch() {
        let cache = KeyCache::<u8>::new(policy(60_000, 60_000));
        assert_eq!(cache.get("junk", || async { Ok(vec![]) }).await, Ok(None));
        let never = || async { panic!("remembered: no fetch") };
        for _ in 0..10 {
            assert_eq!(cache.get("junk", never).await, Ok(None));
        }
    }

    #[tokio::test]
    async fn a_strangers_unknown_id_does_not_hold_off_a_genuine_new_key() {
        // A stranger's id first (before: every unknown id was then answered 503 for the
        // interval, and a stranger repeating it kept a newly rotated key out for good).
        let cache = KeyCache::new(policy(60_000, 60_000));
        assert_eq!(cache.get("junk", || async { Ok(vec![]) }).await, Ok(None));
        let genuine = cache
            .get("rotated", || async {
                Ok(vec![("rotated".to_owned(), 9u8)])
            })
            .await;
        assert_eq!(genuine, Ok(Some(9)));
    }

    #[tokio::test]
    async fn a_fetch_that_finds_its_key_does_not_hold_off_the_next() {
        let cache = KeyCache::new(policy(60_000, 60_000));
        let found = cache
            .get("a", || async { Ok(vec![("a".to_owned(), 1u8)]) })
            .await;
        assert_eq!(found, Ok(Some(1)));
        let next = cache
            .get("b", || async { Ok(vec![("b".to_owned(), 2u8)]) })
            .await;
        assert_eq!(next, Ok(Some(2)));
    }

    #[tokio::test]
    async fn a_failed_refresh_is_not_retried_on_every_request() {
        let cache = KeyCache::new(policy(0, 60_000));
        cache
            .get("k1", || async { Ok(vec![("k1".to_owned(), 1u8)]) })
            .await
            .unwrap();
        let fetches = AtomicUsize::new(0);
        for _ in 0..3 {
            let key = cache
                .get("k1", || async {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    Err(FetchError("down".into()))
                })
                .await;
            assert_eq!(key, Ok(Some(1)), "the cached key keeps serving");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_outage_serves_the_cached_key_and_503s_the_unknown() {
        let cache = KeyCache::new(policy(0, 0));
        let first = cache
            .get("k1", || async { Ok(vec![("k1".to_owned(), 1u8)]) })
            .await;
        assert_eq!(first, Ok(Some(1)));
        // TTL 0: every use refreshes; the refresh fails, the cached key still serves.
        let down = || async { Err(FetchError("connection refused".into())) };
        assert_eq!(cache.get("k1", down).await, Ok(Some(1)));
        assert_eq!(cache.get("k2", down).await, Err(AuthError::KeysUnavailable));
    }

    #[tokio::test]
    async fn while_throttled_after_an_outage_unknown_ids_still_answer_503() {
        let cache = KeyCache::<u8>::new(policy(60_000, 60_000));
        let down = || async { Err(FetchError("connection refused".into())) };
        assert_eq!(cache.get("k", down).await, Err(AuthError::KeysUnavailable));
        // No second fetch within the interval, and no 401 for a possibly genuine request.
        let never = || async { panic!("throttled: no fetch") };
        assert_eq!(cache.get("k", never).await, Err(AuthError::KeysUnavailable));
    }

    #[tokio::test]
    async fn a_key_the_provider_dropped_is_gone_after_its_ttl() {
        let cache = KeyCache::new(policy(0, 0));
        cache
            .get("old", || async { Ok(vec![("old".to_owned(), 1u8)]) })
            .await
            .unwrap();
        let now = cache
            .get("old", || async { Ok(vec![("new".to_owned(), 2u8)]) })
            .await;
        assert_eq!(now, Ok(None));
    }
}
