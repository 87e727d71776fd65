//! Verification keys fetched from a provider over HTTP (Plaid's key endpoint, TrueLayer's JWKS):
//! cached by id, fetched again when an unknown id appears or a cached key grows old, never on
//! every request.
//!
//! A key id comes from the request before anything is verified, so a stranger chooses it: fetches
//! for ids not in the cache are rate-limited (one per `miss_interval` for the whole cache), and
//! concurrent misses share one fetch. When the key server is down a cached key keeps working;
//! a request whose key was never fetched is answered 503 ([`AuthError::KeysUnavailable`]), so
//! the provider retries rather than giving up on a genuine event.

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
        // Without the URL: a Plaid key request carries credentials in its body, not its URL,
        // but keep every message free of anything request-specific.
        FetchError(error.without_url().to_string())
    }
}

/// How long keys are trusted before they are fetched again, and how often an unknown id may
/// cause a fetch.
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
}

/// Keys by id. `K` is whatever a verifier needs (a parsed public key, a JWKS document).
pub struct KeyCache<K> {
    policy: CachePolicy,
    keys: RwLock<HashMap<String, Cached<K>>>,
    /// Serializes fetches; holds when the last fetch for an unknown id happened and whether
    /// it reached the key server.
    fetching: tokio::sync::Mutex<Option<MissFetch>>,
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

#[derive(Debug, Clone, Copy)]
struct MissFetch {
    at: Instant,
    reached_server: bool,
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
    /// returns the keys it found by id (a JWKS has several); `Ok(None)` from this function means
    /// the provider does not know the id (or a fetch for an unknown id ran too recently).
    pub async fn get<F, Fut>(&self, id: &str, fetch: F) -> Result<Option<K>, AuthError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<(String, K)>, FetchError>>,
    {
        let (cached, stale) = self.lookup(id);
        if let (Some(key), false) = (&cached, stale) {
            return Ok(Some(key.clone()));
        }
        let mut last_miss_fetch = self.fetching.lock().await;
        // Another request may have fetched it while this one waited.
        let (cached, stale) = self.lookup(id);
        if let (Some(key), false) = (&cached, stale) {
            return Ok(Some(key.clone()));
        }
        if cached.is_none() {
            if let Some(last) = *last_miss_fetch {
                if last.at.elapsed() < self.policy.miss_interval {
                    // Too soon to ask again. If the server could not be reached, the request
                    // may still be genuine: keep answering 503 so the provider retries.
                    return match last.reached_server {
                        true => Ok(None),
                        false => Err(AuthError::KeysUnavailable),
                    };
                }
            }
        }
        let result = fetch().await;
        if cached.is_none() {
            *last_miss_fetch = Some(MissFetch {
                at: Instant::now(),
                reached_server: result.is_ok(),
            });
        }
        match result {
            Ok(found) => {
                let now = Instant::now();
                let mut keys = self
                    .keys
                    .write()
                    .expect("the key cache lock is never poisoned");
                // A key the provider no longer lists is gone: not found.
                keys.remove(id);
                for (found_id, key) in found {
                    keys.insert(found_id, Cached { key, fetched: now });
                }
                while keys.len() > MAX_CACHED_KEYS {
                    let oldest = keys
                        .iter()
                        .min_by_key(|(_, cached)| cached.fetched)
                        .map(|(id, _)| id.clone())
                        .expect("the map is not empty");
                    keys.remove(&oldest);
                }
                Ok(keys.get(id).map(|cached| cached.key.clone()))
            }
            Err(error) => match cached {
                Some(key) => {
                    tracing::warn!(%error, "refreshing a verification key failed; using the cached one");
                    Ok(Some(key))
                }
                None => {
                    tracing::warn!(%error, "fetching a verification key failed; answering 503");
                    Err(AuthError::KeysUnavailable)
                }
            },
        }
    }

    /// The cached key and whether it is past its TTL.
    fn lookup(&self, id: &str) -> (Option<K>, bool) {
        let keys = self
            .keys
            .read()
            .expect("the key cache lock is never poisoned");
        match keys.get(id) {
            Some(cached) => (
                Some(cached.key.clone()),
                cached.fetched.elapsed() >= self.policy.ttl,
            ),
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
    async fn unknown_ids_fetch_at_most_once_per_interval() {
        let cache = KeyCache::<u8>::new(policy(60_000, 60_000));
        let fetches = AtomicUsize::new(0);
        for id in ["a", "b", "c"] {
            let key = cache
                .get(id, || async {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    Ok(vec![])
                })
                .await;
            assert_eq!(key, Ok(None));
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
