//! Verification keys fetched from a provider over HTTP (Plaid's key endpoint, TrueLayer's JWKS):
//! cached by id, fetched again when an unknown id appears or a cached key grows old.
//!
//! A key id comes from the request before anything is verified, so a stranger chooses it:
//! - a fetch for an id not in the cache that finds nothing (or fails) holds off further fetches
//!   for unknown ids for `miss_interval`; requests for unknown ids meanwhile are answered 503
//!   ([`AuthError::KeysUnavailable`]), so a genuine event signed with a newly rotated key is
//!   retried by its provider rather than refused;
//! - refreshing an old key that fails is tried again only after `miss_interval`, and the cached
//!   key keeps working meanwhile;
//! - concurrent fetches are serialized, so a burst shares one.
//!
//! So a stranger causes at most one fetch per `miss_interval`, and a key server outage does not
//! refuse events signed with a key finhook already has.

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

/// Keys by id. `K` is whatever a verifier needs (a parsed public key, a JWKS document).
pub struct KeyCache<K> {
    policy: CachePolicy,
    keys: RwLock<HashMap<String, Cached<K>>>,
    /// Serializes fetches; holds when a fetch for an unknown id last found nothing or failed.
    fetching: tokio::sync::Mutex<Option<Instant>>,
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
            fetching: tokio::sync::Mutex::new(None),
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
        let mut last_miss = self.fetching.lock().await;
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
        if last_miss.is_some_and(|at| at.elapsed() < self.policy.miss_interval) {
            // Too soon to ask the key server again: the request may be genuine, so 503.
            return Err(AuthError::KeysUnavailable);
        }
        match fetch().await {
            Ok(found) => {
                let key = self.store(id, found);
                if key.is_none() {
                    *last_miss = Some(Instant::now());
                }
                Ok(key)
            }
            Err(error) => {
                *last_miss = Some(Instant::now());
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
    async fn unknown_ids_fetch_at_most_once_per_interval_then_answer_503() {
        let cache = KeyCache::<u8>::new(policy(60_000, 60_000));
        let fetches = AtomicUsize::new(0);
        let mut answers = Vec::new();
        for id in ["a", "b", "c"] {
            answers.push(
                cache
                    .get(id, || async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        Ok(vec![])
                    })
                    .await,
            );
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert_eq!(
            answers,
            [
                Ok(None),
                Err(AuthError::KeysUnavailable),
                Err(AuthError::KeysUnavailable)
            ]
        );
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
