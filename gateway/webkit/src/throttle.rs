//! Slowing down guessing at a sign-in: per address, and overall.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use parking_lot::Mutex;

use crate::now_millis;

/// Failed sign-ins from one address before it must wait.
const FREE_FAILURES: u32 = 3;
/// Failed sign-ins from anywhere, within `GLOBAL_WINDOW_MS`, before everyone waits.
const GLOBAL_FAILURES: u32 = 20;
const GLOBAL_WINDOW_MS: i64 = 10 * 60 * 1000;
/// The longest wait imposed.
const MAX_LOCK_MS: i64 = 3_600_000;
/// Addresses remembered by the throttle.
const MAX_ADDRESSES: usize = 1024;

#[derive(Debug, Default, Clone, Copy)]
struct Failures {
    count: u32,
    locked_until_ms: i64,
    last_ms: i64,
}

/// Slows guessing (PINs, signatures): after a few failures an address waits, the wait
/// doubling with each further failure (30 s up to an hour); many failures
/// from anywhere make everyone wait a minute.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    inner: Mutex<ThrottleState>,
}

#[derive(Debug, Default)]
struct ThrottleState {
    by_address: HashMap<IpAddr, Failures>,
    global: Vec<i64>,
    global_locked_until_ms: i64,
}

impl LoginThrottle {
    /// `Err(wait)` while `ip` (or everyone) must wait.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = now_millis();
        let state = self.inner.lock();
        let until = state
            .by_address
            .get(&ip)
            .map_or(0, |f| f.locked_until_ms)
            .max(state.global_locked_until_ms);
        if until > now {
            return Err(Duration::from_millis((until - now) as u64));
        }
        Ok(())
    }

    pub fn failed(&self, ip: IpAddr) {
        let now = now_millis();
        let mut state = self.inner.lock();
        if state.by_address.len() >= MAX_ADDRESSES && !state.by_address.contains_key(&ip) {
            state
                .by_address
                .retain(|_, f| f.locked_until_ms > now || now - f.last_ms < GLOBAL_WINDOW_MS);
            if state.by_address.len() >= MAX_ADDRESSES {
                // Still full of fresh failures: treat it as one attack.
                state.global_locked_until_ms = now + 60_000;
                return;
            }
        }
        let failures = state.by_address.entry(ip).or_default();
        failures.count += 1;
        failures.last_ms = now;
        if failures.count > FREE_FAILURES {
            let doublings = (failures.count - FREE_FAILURES - 1).min(7);
            let wait = (30_000i64 << doublings).min(MAX_LOCK_MS);
            failures.locked_until_ms = now + wait;
        }
        state.global.retain(|at| now - at < GLOBAL_WINDOW_MS);
        state.global.push(now);
        if state.global.len() as u32 >= GLOBAL_FAILURES {
            state.global_locked_until_ms = now + 60_000;
        }
    }

    pub fn succeeded(&self, ip: IpAddr) {
        self.inner.lock().by_address.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_make_an_address_wait_longer() {
        let throttle = LoginThrottle::default();
        let ip: IpAddr = "192.168.1.9".parse().unwrap();
        let other: IpAddr = "192.168.1.10".parse().unwrap();
        for _ in 0..FREE_FAILURES {
            throttle.failed(ip);
            assert!(throttle.check(ip).is_ok());
        }
        throttle.failed(ip);
        let first = throttle.check(ip).unwrap_err();
        assert!(first > Duration::from_secs(25), "{first:?}");
        throttle.failed(ip);
        assert!(throttle.check(ip).unwrap_err() > Duration::from_secs(55));
        assert!(
            throttle.check(other).is_ok(),
            "another address is not held up"
        );
        throttle.succeeded(ip);
        assert!(throttle.check(ip).is_ok());
    }

    #[test]
    fn many_failures_from_many_addresses_hold_everyone() {
        let throttle = LoginThrottle::default();
        for i in 0..GLOBAL_FAILURES {
            throttle.failed(IpAddr::from([10, 0, (i / 200) as u8, (i % 200) as u8]));
        }
        assert!(throttle.check("10.9.9.9".parse().unwrap()).is_err());
    }
}
