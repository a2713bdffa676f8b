//! Small online statistics for the behaviour model: a robust location and
//! scale, a leaky CUSUM, a sliding event count, a tiny set and a Bloom
//! filter. Each is a few words of state; none allocates per event.

/// Robust running location and scale (Huber-style EWMA): an outlier moves
/// the estimate by at most a few scales, so one odd event does not teach
/// the model that odd is normal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RobustStat {
    mean: f32,
    scale: f32,
    count: u32,
    /// The scale never falls below this (a perfectly regular device would
    /// otherwise make every jitter an alarm).
    floor: f32,
    /// After this many updates the estimate forgets at rate 1/memory.
    memory: u32,
}

impl RobustStat {
    /// Starts from a prior worth `prior_weight` observations.
    pub fn new(mean: f32, scale: f32, floor: f32, memory: u32, prior_weight: u32) -> Self {
        Self {
            mean,
            scale: scale.max(floor),
            count: prior_weight,
            floor,
            memory: memory.max(1),
        }
    }

    pub fn mean(&self) -> f32 {
        self.mean
    }

    pub fn scale(&self) -> f32 {
        self.scale
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// How many scales `x` lies from the location.
    pub fn z(&self, x: f32) -> f32 {
        (x - self.mean) / self.scale
    }

    pub fn update(&mut self, x: f32) {
        if !x.is_finite() {
            return;
        }
        self.count = self.count.saturating_add(1);
        let rate = 1.0 / self.count.min(self.memory) as f32;
        let r = x - self.mean;
        self.mean += rate * r.clamp(-3.0 * self.scale, 3.0 * self.scale);
        // 1.25 E|r| is the standard deviation for Gaussian residuals.
        let deviation = 1.25 * r.abs().min(4.0 * self.scale);
        self.scale = (self.scale + rate * (deviation - self.scale)).max(self.floor);
    }
}

/// One-sided CUSUM on z-scores that leaks with time, so rare events that
/// are each a little odd (a meter re-test today, another next week) do not
/// add up to an alarm the way a burst of them does.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LeakyCusum {
    sum: f32,
    last_ms: Option<i64>,
}

impl LeakyCusum {
    /// Adds `z - slack` (never below zero) after leaking for the time since
    /// the last step; returns the new sum.
    pub fn step(&mut self, z: f32, slack: f32, at_ms: i64, leak_ms: i64) -> f32 {
        if let Some(last) = self.last_ms {
            let dt = at_ms.saturating_sub(last).max(0) as f32;
            self.sum *= (-dt / leak_ms.max(1) as f32).exp();
        }
        self.last_ms = Some(at_ms);
        if z.is_finite() {
            self.sum = (self.sum + z - slack).max(0.0);
        }
        self.sum
    }

    pub fn sum(&self) -> f32 {
        self.sum
    }

    pub fn reset(&mut self) {
        self.sum = 0.0;
    }
}

/// An exponentially decaying event count: about the events of the last
/// `window_ms`, in two words whatever the rate.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DecayingCount {
    value: f32,
    last_ms: Option<i64>,
}

impl DecayingCount {
    fn decay_to(&mut self, at_ms: i64, window_ms: i64) {
        if let Some(last) = self.last_ms {
            let dt = at_ms.saturating_sub(last).max(0) as f32;
            self.value *= (-dt / window_ms.max(1) as f32).exp();
        }
        self.last_ms = Some(self.last_ms.map_or(at_ms, |last| last.max(at_ms)));
    }

    /// Adds `n` events at `at_ms`; returns the count.
    pub fn add(&mut self, n: f32, at_ms: i64, window_ms: i64) -> f32 {
        self.decay_to(at_ms, window_ms);
        self.value += n;
        self.value
    }

    pub fn value_at(&self, at_ms: i64, window_ms: i64) -> f32 {
        let mut copy = *self;
        copy.decay_to(at_ms, window_ms);
        copy.value
    }
}

/// Events within the last `window_ms`, kept as at most `N` timestamps (a
/// count above `N` saturates at `N`, which is all a threshold needs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecentCount<const N: usize> {
    times: [i64; N],
    next: usize,
    filled: usize,
}

impl<const N: usize> Default for RecentCount<N> {
    fn default() -> Self {
        Self {
            times: [0; N],
            next: 0,
            filled: 0,
        }
    }
}

impl<const N: usize> RecentCount<N> {
    pub fn push(&mut self, at_ms: i64) {
        self.times[self.next] = at_ms;
        self.next = (self.next + 1) % N;
        self.filled = (self.filled + 1).min(N);
    }

    /// Events in `(now - window_ms, now]`.
    pub fn within(&self, now_ms: i64, window_ms: i64) -> usize {
        self.times[..self.filled]
            .iter()
            .filter(|&&t| t > now_ms.saturating_sub(window_ms) && t <= now_ms)
            .count()
    }
}

/// A set of at most `N` small tokens (payload shapes, source addresses);
/// when full, the least recently seen is forgotten.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SmallSet<const N: usize> {
    items: [(u64, i64); N],
    len: usize,
}

impl<const N: usize> Default for SmallSet<N> {
    fn default() -> Self {
        Self {
            items: [(0, 0); N],
            len: 0,
        }
    }
}

impl<const N: usize> SmallSet<N> {
    pub fn contains(&self, token: u64) -> bool {
        self.items[..self.len].iter().any(|(t, _)| *t == token)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Remembers `token` as seen at `at_ms`.
    pub fn insert(&mut self, token: u64, at_ms: i64) {
        if let Some(item) = self.items[..self.len].iter_mut().find(|(t, _)| *t == token) {
            item.1 = at_ms;
            return;
        }
        if self.len < N {
            self.items[self.len] = (token, at_ms);
            self.len += 1;
        } else if let Some(oldest) = self.items.iter_mut().min_by_key(|(_, seen)| *seen) {
            *oldest = (token, at_ms);
        }
    }
}

/// A Bloom filter in two generations: inserts go to the current one, which
/// becomes the old one when it holds `capacity` items, so the filter
/// remembers between one and two generations of history at a bounded
/// false-positive rate.
#[derive(Debug, Clone, PartialEq)]
pub struct RotatingBloom {
    current: Box<[u64]>,
    old: Box<[u64]>,
    inserted: u32,
    capacity: u32,
    hashes: u32,
}

impl RotatingBloom {
    /// `words` 64-bit words per generation.
    pub fn new(words: usize, capacity: u32, hashes: u32) -> Self {
        Self {
            current: vec![0; words.max(1)].into_boxed_slice(),
            old: vec![0; words.max(1)].into_boxed_slice(),
            inserted: 0,
            capacity: capacity.max(1),
            hashes: hashes.max(1),
        }
    }

    /// The (word, mask) pairs of `key` (double hashing).
    fn bits(words: usize, hashes: u32, key: u64) -> impl Iterator<Item = (usize, u64)> {
        let bits = (words * 64) as u64;
        let (a, b) = (mix(key), mix(key ^ 0x9e37_79b9_7f4a_7c15) | 1);
        (0..u64::from(hashes)).map(move |i| {
            let bit = a.wrapping_add(i.wrapping_mul(b)) % bits;
            ((bit / 64) as usize, 1u64 << (bit % 64))
        })
    }

    pub fn contains(&self, key: u64) -> bool {
        let all = |generation: &[u64]| {
            Self::bits(generation.len(), self.hashes, key).all(|(w, m)| generation[w] & m != 0)
        };
        all(&self.current) || all(&self.old)
    }

    pub fn insert(&mut self, key: u64) {
        if self.inserted >= self.capacity {
            std::mem::swap(&mut self.current, &mut self.old);
            self.current.fill(0);
            self.inserted = 0;
        }
        for (w, m) in Self::bits(self.current.len(), self.hashes, key) {
            self.current[w] |= m;
        }
        self.inserted += 1;
    }

    pub fn bytes(&self) -> usize {
        (self.current.len() + self.old.len()) * 8
    }
}

/// SplitMix64's finaliser: a cheap, well-mixed 64-bit hash of a 64-bit key.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robust_stat_resists_one_outlier_and_learns_a_shift() {
        let mut stat = RobustStat::new(0.0, 1.0, 0.1, 100, 5);
        for _ in 0..200 {
            stat.update(10.0);
        }
        assert!((stat.mean() - 10.0).abs() < 0.5, "{stat:?}");
        let before = stat.mean();
        stat.update(1e6);
        assert!(
            (stat.mean() - before).abs() < 1.0,
            "one outlier moves it a little"
        );
        stat.update(f32::NAN);
        assert!(stat.mean().is_finite());
    }

    #[test]
    fn leaky_cusum_forgets_rare_events_but_adds_up_bursts() {
        let mut cusum = LeakyCusum::default();
        let day = 86_400_000;
        for i in 0..10 {
            cusum.step(4.0, 0.5, i * day, 3_600_000);
        }
        assert!(cusum.sum() < 4.0, "a day apart: {cusum:?}");
        let mut burst = LeakyCusum::default();
        for i in 0..4 {
            burst.step(4.0, 0.5, i * 60_000, 3_600_000);
        }
        assert!(burst.sum() > 12.0, "a minute apart: {burst:?}");
    }

    #[test]
    fn recent_count_and_small_set() {
        let mut count = RecentCount::<8>::default();
        for t in [0, 10, 20, 1000] {
            count.push(t);
        }
        assert_eq!(count.within(1000, 100), 1);
        assert_eq!(count.within(1000, 2000), 4);
        let mut set = SmallSet::<2>::default();
        set.insert(1, 0);
        set.insert(2, 1);
        set.insert(1, 2);
        set.insert(3, 3);
        assert!(set.contains(1) && set.contains(3) && !set.contains(2));
    }

    #[test]
    fn bloom_remembers_two_generations_and_forgets_the_third() {
        let mut bloom = RotatingBloom::new(64, 100, 5);
        for k in 0..100 {
            bloom.insert(k);
        }
        for k in 1000..1100 {
            bloom.insert(k);
        }
        assert!((0..100).all(|k| bloom.contains(k)));
        for k in 2000..2100 {
            bloom.insert(k);
        }
        let remembered = (0..100).filter(|k| bloom.contains(*k)).count();
        assert!(remembered < 10, "{remembered}");
        let false_positives = (5000..6000).filter(|k| bloom.contains(*k)).count();
        assert!(false_positives < 50, "{false_positives}");
    }
}
