//! Failed-login throttling. Device secrets are 256 bits, so guessing is
//! hopeless; what matters is that nobody may try at full speed unnoticed, and
//! that a device with the right secret keeps working while someone guesses.
//!
//! Failures are counted per source address and per device name (a digest of
//! it: the name is attacker text). After `failures_before_delay` failures in
//! the window, each further failure is answered only after a delay that
//! doubles up to a maximum (the connection holds one of its address's few
//! slots meanwhile). An address with `ban_after` failures in the window is
//! banned for `ban` (its connections are closed at once). A correct login is
//! never delayed. The tables are bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::config::LimitsConfig;

/// Addresses and names remembered; the least recent are forgotten first.
const MAX_TRACKED: usize = 4096;

#[derive(Debug, Clone, Copy)]
pub struct LoginPolicy {
    pub failures_before_delay: u32,
    pub max_delay: Duration,
    pub ban_after: u32,
    pub window: Duration,
    pub ban: Duration,
}

impl From<&LimitsConfig> for LoginPolicy {
    fn from(limits: &LimitsConfig) -> Self {
        Self {
            failures_before_delay: limits.login_failures_before_delay,
            max_delay: Duration::from_secs(limits.max_login_delay_secs),
            ban_after: limits.ban_after_failures,
            window: Duration::from_secs(limits.login_window_secs),
            ban: Duration::from_secs(limits.ban_secs),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first: Instant,
    last: Instant,
}

#[derive(Debug, Default)]
struct Tables {
    by_address: HashMap<IpAddr, Failures>,
    by_name: HashMap<[u8; 16], Failures>,
    banned: HashMap<IpAddr, Instant>,
    bans_total: u64,
}

/// What a failed login leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Penalty {
    /// Wait this long before answering.
    pub delay: Duration,
    /// The address was banned by this failure.
    pub banned: bool,
}

#[derive(Debug)]
pub struct LoginThrottle {
    policy: LoginPolicy,
    tables: Mutex<Tables>,
}

/// The status of the throttle, for `glyco-hub status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ThrottleStatus {
    pub banned_now: Vec<IpAddr>,
    pub bans_total: u64,
    pub addresses_failing: usize,
}

fn name_digest(name: &str) -> [u8; 16] {
    let digest = Sha256::digest(name.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

fn bump<K: std::hash::Hash + Eq + Copy>(
    table: &mut HashMap<K, Failures>,
    key: K,
    window: Duration,
    now: Instant,
) -> u32 {
    if table.len() >= MAX_TRACKED && !table.contains_key(&key) {
        table.retain(|_, f| now.saturating_duration_since(f.first) < window);
        if table.len() >= MAX_TRACKED
            && let Some(oldest) = table.iter().min_by_key(|(_, f)| f.last).map(|(k, _)| *k)
        {
            table.remove(&oldest);
        }
    }
    let entry = table.entry(key).or_insert(Failures {
        count: 0,
        first: now,
        last: now,
    });
    if now.saturating_duration_since(entry.first) >= window {
        *entry = Failures {
            count: 0,
            first: now,
            last: now,
        };
    }
    entry.count = entry.count.saturating_add(1);
    entry.last = now;
    entry.count
}

impl LoginThrottle {
    pub fn new(policy: LoginPolicy) -> Self {
        Self {
            policy,
            tables: Mutex::new(Tables::default()),
        }
    }

    /// Whether connections from `address` are to be closed at once.
    pub fn is_banned(&self, address: IpAddr, now: Instant) -> bool {
        let mut tables = self.tables.lock();
        match tables.banned.get(&address) {
            Some(until) if *until > now => true,
            Some(_) => {
                tables.banned.remove(&address);
                false
            }
            None => false,
        }
    }

    /// Records a failed login; says how long to wait before answering and
    /// whether the address is now banned.
    pub fn failed(&self, address: IpAddr, name: &str, now: Instant) -> Penalty {
        let policy = self.policy;
        let mut tables = self.tables.lock();
        let by_address = bump(&mut tables.by_address, address, policy.window, now);
        let by_name = bump(&mut tables.by_name, name_digest(name), policy.window, now);
        let worst = by_address.max(by_name);
        let over = worst.saturating_sub(policy.failures_before_delay);
        let delay = if over == 0 {
            Duration::ZERO
        } else {
            let factor = 1u32 << over.min(16);
            (Duration::from_millis(100) * factor).min(policy.max_delay)
        };
        let banned = by_address >= policy.ban_after && !tables.banned.contains_key(&address);
        if banned {
            if tables.banned.len() >= MAX_TRACKED {
                tables.banned.retain(|_, until| *until > now);
            }
            if tables.banned.len() < MAX_TRACKED {
                tables.banned.insert(address, now + policy.ban);
                tables.bans_total += 1;
            }
        }
        Penalty { delay, banned }
    }

    /// A correct login: the name's failures are forgotten (the address's are
    /// not: a device with a valid secret must not launder its address's record).
    pub fn succeeded(&self, name: &str) {
        self.tables.lock().by_name.remove(&name_digest(name));
    }

    pub fn status(&self, now: Instant) -> ThrottleStatus {
        let tables = self.tables.lock();
        let mut banned_now: Vec<IpAddr> = tables
            .banned
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(address, _)| *address)
            .collect();
        banned_now.sort();
        banned_now.truncate(16);
        ThrottleStatus {
            banned_now,
            bans_total: tables.bans_total,
            addresses_failing: tables.by_address.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LoginPolicy {
        LoginPolicy {
            failures_before_delay: 3,
            max_delay: Duration::from_secs(30),
            ban_after: 20,
            window: Duration::from_secs(600),
            ban: Duration::from_secs(900),
        }
    }

    #[test]
    fn delays_double_after_a_few_failures_and_an_address_is_banned_then_released() {
        let throttle = LoginThrottle::new(policy());
        let attacker: IpAddr = "192.0.2.9".parse().unwrap();
        let t0 = Instant::now();
        let delays: Vec<u128> = (0..8)
            .map(|i| {
                throttle
                    .failed(attacker, &format!("guess-{i}"), t0)
                    .delay
                    .as_millis()
            })
            .collect();
        assert_eq!(delays, [0, 0, 0, 200, 400, 800, 1600, 3200]);
        let mut banned_at = None;
        for i in 8..30 {
            if throttle.failed(attacker, &format!("guess-{i}"), t0).banned {
                banned_at = Some(i + 1);
            }
        }
        assert_eq!(banned_at, Some(20));
        assert!(throttle.is_banned(attacker, t0));
        assert_eq!(throttle.status(t0).banned_now, vec![attacker]);
        assert!(!throttle.is_banned(attacker, t0 + Duration::from_secs(901)));
    }

    #[test]
    fn a_guessed_name_is_delayed_from_any_address_but_the_right_secret_never_is() {
        let throttle = LoginThrottle::new(policy());
        let t0 = Instant::now();
        for i in 0..6u8 {
            let address = IpAddr::from([192, 0, 2, 100 + i]);
            throttle.failed(address, "cuff-1", t0);
        }
        let other: IpAddr = "192.0.2.50".parse().unwrap();
        assert!(throttle.failed(other, "cuff-1", t0).delay > Duration::ZERO);
        // The device itself logs in (not delayed: delays apply to failures);
        // its success clears the name's record.
        throttle.succeeded("cuff-1");
        let fresh: IpAddr = "192.0.2.51".parse().unwrap();
        assert_eq!(throttle.failed(fresh, "cuff-1", t0).delay, Duration::ZERO);
    }

    #[test]
    fn the_tables_stay_bounded_under_a_flood_of_names_and_addresses() {
        let throttle = LoginThrottle::new(policy());
        let t0 = Instant::now();
        for i in 0..20_000u32 {
            let address = IpAddr::from(i.to_be_bytes());
            throttle.failed(address, &format!("n{i}"), t0);
        }
        let tables = throttle.tables.lock();
        assert!(tables.by_address.len() <= MAX_TRACKED);
        assert!(tables.by_name.len() <= MAX_TRACKED);
    }
}
