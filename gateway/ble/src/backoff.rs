//! Reconnect pacing: jittered exponential backoff. Pure — the caller passes
//! the random draw — so the policy is unit-tested without clocks or RNGs.
//!
//! The n-th consecutive failure (n from 0) waits
//! `min(cap, base × multiplier^n) × (1 − jitter × u)` for a uniform draw
//! `u ∈ [0, 1)`: never more than the cap, at least `(1 − jitter)` of the
//! exponential step, so a fleet of devices that dropped together (the
//! adapter came back) does not reconnect in lock-step. A connection that
//! stayed up for `stable_after` resets the count: the next drop starts from
//! `base` again, while a device that connects and drops at once keeps
//! backing off.

use std::time::Duration;

use crate::config::ConfigError;

/// Backoff parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    /// First delay.
    pub base: Duration,
    /// Largest delay.
    pub cap: Duration,
    /// Growth factor per consecutive failure (≥ 1).
    pub multiplier: u32,
    /// Fraction of each delay that is randomised away, 0.0..=1.0.
    pub jitter: f64,
    /// A connection that lasted this long resets the backoff.
    pub stable_after: Duration,
}

impl Default for BackoffPolicy {
    /// 2 s doubling to 2 min, half of each delay jittered, reset after a
    /// minute connected. Health devices come into range when the patient
    /// uses them; two minutes bounds how long a reading waits for us.
    fn default() -> Self {
        BackoffPolicy {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(120),
            multiplier: 2,
            jitter: 0.5,
            stable_after: Duration::from_secs(60),
        }
    }
}

impl BackoffPolicy {
    /// Checks the parameters make sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |why: &str| Err(ConfigError::Backoff(why.to_string()));
        if self.base.is_zero() {
            return bad("base must be > 0");
        }
        if self.cap < self.base {
            return bad("cap must be ≥ base");
        }
        if self.multiplier == 0 {
            return bad("multiplier must be ≥ 1");
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return bad("jitter must be within 0.0..=1.0");
        }
        Ok(())
    }

    /// The un-jittered delay after `failures` consecutive failures
    /// (0-based), capped.
    pub fn step(&self, failures: u32) -> Duration {
        let grown =
            self.base.as_secs_f64() * f64::from(self.multiplier).powi(failures.min(1024) as i32);
        // min() before converting: the power overflows to +inf long before
        // `failures` wraps, and Duration::from_secs_f64 refuses inf.
        Duration::from_secs_f64(grown.min(self.cap.as_secs_f64()))
    }

    /// The jittered delay for a draw `unit` in [0, 1) (clamped into it).
    pub fn delay(&self, failures: u32, unit: f64) -> Duration {
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.step(failures).mul_f64(1.0 - self.jitter * unit)
    }
}

/// Backoff state for one device.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    failures: u32,
}

impl Backoff {
    /// Fresh state: the next delay is about `base`.
    pub fn new(policy: BackoffPolicy) -> Self {
        Backoff {
            policy,
            failures: 0,
        }
    }

    /// Consecutive failures counted so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The delay before the next attempt; counts one more failure.
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let d = self.policy.delay(self.failures, unit);
        self.failures = self.failures.saturating_add(1);
        d
    }

    /// Starts over: the next delay is about `base` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// A connection ended after `lasted`: resets the count when it was
    /// stable. Returns whether it reset.
    pub fn connection_ended(&mut self, lasted: Duration) -> bool {
        if lasted >= self.policy.stable_after {
            self.failures = 0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BackoffPolicy {
        BackoffPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            multiplier: 2,
            jitter: 0.5,
            stable_after: Duration::from_secs(10),
        }
    }

    #[test]
    fn grows_exponentially_up_to_the_cap() {
        let p = policy();
        let steps: Vec<u128> = (0..6).map(|n| p.step(n).as_millis()).collect();
        assert_eq!(steps, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.step(u32::MAX), Duration::from_secs(1), "no overflow");
    }

    #[test]
    fn jitter_stays_within_its_range() {
        let p = policy();
        // u = 0 → the full step; u → 1 → half of it (jitter 0.5).
        assert_eq!(p.delay(2, 0.0), Duration::from_millis(400));
        assert_eq!(p.delay(2, 0.5), Duration::from_millis(300));
        let near_one = p.delay(2, 0.999_999);
        assert!(near_one > Duration::from_millis(199) && near_one <= Duration::from_millis(201));
        // Out-of-range draws are clamped, never panic or exceed the cap.
        assert_eq!(p.delay(9, -3.0), Duration::from_secs(1));
        assert_eq!(p.delay(9, f64::NAN), Duration::from_secs(1));
        assert_eq!(p.delay(9, 7.0), Duration::from_millis(500));
        let no_jitter = BackoffPolicy { jitter: 0.0, ..p };
        assert_eq!(no_jitter.delay(1, 0.9), Duration::from_millis(200));
    }

    #[test]
    fn resets_only_after_a_stable_connection() {
        let mut b = Backoff::new(policy());
        assert_eq!(b.next_delay(0.0), Duration::from_millis(100));
        assert_eq!(b.next_delay(0.0), Duration::from_millis(200));
        assert!(
            !b.connection_ended(Duration::from_secs(3)),
            "a short connection keeps backing off"
        );
        assert_eq!(b.next_delay(0.0), Duration::from_millis(400));
        assert_eq!(b.failures(), 3);
        assert!(b.connection_ended(Duration::from_secs(10)));
        assert_eq!(b.failures(), 0);
        assert_eq!(b.next_delay(0.0), Duration::from_millis(100));
    }

    #[test]
    fn validation() {
        assert!(policy().validate().is_ok());
        assert!(BackoffPolicy::default().validate().is_ok());
        assert!(
            BackoffPolicy {
                base: Duration::ZERO,
                ..policy()
            }
            .validate()
            .is_err()
        );
        assert!(
            BackoffPolicy {
                cap: Duration::from_millis(10),
                ..policy()
            }
            .validate()
            .is_err()
        );
        assert!(
            BackoffPolicy {
                multiplier: 0,
                ..policy()
            }
            .validate()
            .is_err()
        );
        assert!(
            BackoffPolicy {
                jitter: 1.5,
                ..policy()
            }
            .validate()
            .is_err()
        );
        assert!(
            BackoffPolicy {
                jitter: f64::NAN,
                ..policy()
            }
            .validate()
            .is_err()
        );
    }
}
