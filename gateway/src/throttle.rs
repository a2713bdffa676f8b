//! Rate limits: a token bucket and a bounded table of buckets by key (an
//! address, a username digest), used to cap what one source can make the
//! hub log and journal and how fast a device may publish; and the accept
//! loops' back-off.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use glyco_ble::{Backoff, BackoffPolicy};

/// `capacity` tokens, refilled at `per_sec`; each event takes one.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(capacity: u32, per_sec: f64, now: Instant) -> Self {
        Self {
            capacity: f64::from(capacity),
            per_sec,
            tokens: f64::from(capacity),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        self.last = now;
    }

    /// Takes a token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Full again: nothing to remember about this key.
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.capacity
    }
}

/// One bucket per key, at most `max_keys` remembered (idle keys are
/// forgotten first, then the oldest), so a flood of new keys cannot grow it.
#[derive(Debug)]
pub struct KeyedBuckets<K> {
    buckets: HashMap<K, TokenBucket>,
    max_keys: usize,
    capacity: u32,
    per_sec: f64,
}

impl<K: Eq + Hash + Clone> KeyedBuckets<K> {
    pub fn new(max_keys: usize, capacity: u32, per_sec: f64) -> Self {
        Self {
            buckets: HashMap::new(),
            max_keys: max_keys.max(1),
            capacity,
            per_sec,
        }
    }

    pub fn take(&mut self, key: &K, now: Instant) -> bool {
        if !self.buckets.contains_key(key) && self.buckets.len() >= self.max_keys {
            self.evict(now);
        }
        let (capacity, per_sec) = (self.capacity, self.per_sec);
        self.buckets
            .entry(key.clone())
            .or_insert_with(|| TokenBucket::new(capacity, per_sec, now))
            .take(now)
    }

    fn evict(&mut self, now: Instant) {
        self.buckets.retain(|_, bucket| !bucket.is_full(now));
        if self.buckets.len() >= self.max_keys {
            let oldest = self
                .buckets
                .iter()
                .min_by_key(|(_, b)| b.last)
                .map(|(k, _)| k.clone());
            if let Some(key) = oldest {
                self.buckets.remove(&key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// Back-off for a loop that keeps failing (an accept loop when the process
/// is out of file descriptors): 10 ms doubling to `cap`, no jitter (one
/// loop, nobody to fall in step with); `reset` after a success.
pub fn accept_backoff(cap: Duration) -> Backoff {
    Backoff::new(BackoffPolicy {
        base: Duration::from_millis(10),
        cap,
        multiplier: 2,
        jitter: 0.0,
        stable_after: Duration::ZERO,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(3, 2.0, t0);
        assert!((0..3).all(|_| bucket.take(t0)));
        assert!(!bucket.take(t0));
        assert!(bucket.take(t0 + Duration::from_millis(500)));
        assert!(!bucket.take(t0 + Duration::from_millis(500)));
        assert!(bucket.is_full(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn keyed_buckets_stay_bounded_under_a_flood_of_keys() {
        let t0 = Instant::now();
        let mut buckets = KeyedBuckets::new(100, 1, 0.001);
        for key in 0..10_000u32 {
            buckets.take(&key, t0);
        }
        assert!(buckets.len() <= 100, "{}", buckets.len());
        // A key that is kept is limited on its own.
        let mut one = KeyedBuckets::new(100, 2, 0.001);
        assert!(one.take(&"a", t0) && one.take(&"a", t0));
        assert!(!one.take(&"a", t0));
        assert!(one.take(&"b", t0), "other keys are not affected");
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut backoff = accept_backoff(Duration::from_millis(50));
        let delays: Vec<_> = (0..5)
            .map(|_| backoff.next_delay(0.0).as_millis())
            .collect();
        assert_eq!(delays, [10, 20, 40, 50, 50]);
        backoff.reset();
        assert_eq!(backoff.next_delay(0.0).as_millis(), 10);
    }
}
