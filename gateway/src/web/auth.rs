//! Signing in to the hub's web app: the patient's PIN (argon2id, set at
//! enrolment with `glyco-hub web set-pin`), failed attempts slowed down per
//! address and overall, sessions held in memory with an idle and an
//! absolute limit, and one CSRF token per session.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use parking_lot::Mutex;

use crate::reading::now_millis;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "glyco_session";
/// A session ends after this long without a request...
pub const IDLE_MS: i64 = 30 * 60 * 1000;
/// ...and after this long in any case.
pub const ABSOLUTE_MS: i64 = 12 * 3_600_000;
/// Sessions held at once; a new one pushes out the least recently used.
const MAX_SESSIONS: usize = 16;
/// Failed PINs from one address before it must wait.
const FREE_FAILURES: u32 = 3;
/// Failed PINs from anywhere, within `GLOBAL_WINDOW_MS`, before everyone waits.
const GLOBAL_FAILURES: u32 = 20;
const GLOBAL_WINDOW_MS: i64 = 10 * 60 * 1000;
/// The longest wait imposed.
const MAX_LOCK_MS: i64 = 3_600_000;
/// Addresses remembered by the throttle.
const MAX_ADDRESSES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("a PIN is 6 to 12 digits")]
    Shape,
    #[error("hashing the PIN: {0}")]
    Hash(String),
    #[error("the PIN file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

/// argon2id with OWASP's minimum (19 MiB, 2 passes): about a tenth of a
/// second on a Raspberry Pi 4, which is also what each guess costs.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn check_pin_shape(pin: &str) -> Result<(), PinError> {
    if (6..=12).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(PinError::Shape)
    }
}

/// Hashes `pin` into a PHC string.
pub fn hash_pin(pin: &str) -> Result<String, PinError> {
    check_pin_shape(pin)?;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PinError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PinError::Hash(e.to_string()))?;
    hasher()
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PinError::Hash(e.to_string()))
}

/// Whether `pin` matches the PHC string `stored` (slow on purpose).
pub fn verify_pin(stored: &str, pin: &str) -> bool {
    if check_pin_shape(pin).is_err() {
        return false;
    }
    PasswordHash::new(stored)
        .is_ok_and(|hash| hasher().verify_password(pin.as_bytes(), &hash).is_ok())
}

/// Writes the PIN's hash to `path`, mode 0600.
pub fn set_pin(path: &Path, pin: &str) -> Result<(), PinError> {
    let hash = hash_pin(pin)?;
    glyco_contracts::files::write_atomically(path, hash.as_bytes()).map_err(|source| {
        PinError::File {
            path: path.display().to_string(),
            source,
        }
    })
}

/// The PIN's hash, if one was set.
pub fn load_pin(path: &Path) -> Result<Option<String>, PinError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PinError::File {
            path: path.display().to_string(),
            source,
        }),
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    pub created_ms: i64,
    pub last_ms: i64,
    /// Order of last use, for evicting the least recently used.
    last_use: u64,
}

/// Sessions by token.
#[derive(Debug, Default)]
pub struct Sessions {
    by_token: Mutex<HashMap<String, Session>>,
    uses: std::sync::atomic::AtomicU64,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    hex::encode(bytes)
}

impl Sessions {
    /// A new session: its token (for the cookie) and CSRF token.
    pub fn create(&self) -> (String, String) {
        let now = now_millis();
        let token = random_hex();
        let csrf = random_hex();
        let mut sessions = self.by_token.lock();
        sessions.retain(|_, s| live(s, now));
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_use)
                .map(|(t, _)| t.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            token.clone(),
            Session {
                csrf: csrf.clone(),
                created_ms: now,
                last_ms: now,
                last_use: self.next_use(),
            },
        );
        (token, csrf)
    }

    /// The live session of `token`, touched.
    pub fn get(&self, token: &str) -> Option<Session> {
        let now = now_millis();
        let mut sessions = self.by_token.lock();
        let session = sessions.get_mut(token)?;
        if !live(session, now) {
            sessions.remove(token);
            return None;
        }
        session.last_ms = now;
        session.last_use = self.uses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(session.clone())
    }

    fn next_use(&self) -> u64 {
        self.uses.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    pub fn end(&self, token: &str) {
        self.by_token.lock().remove(token);
    }

    pub fn count(&self) -> usize {
        self.by_token.lock().len()
    }
}

fn live(session: &Session, now: i64) -> bool {
    now - session.last_ms < IDLE_MS && now - session.created_ms < ABSOLUTE_MS
}

/// Compares secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[derive(Debug, Default, Clone, Copy)]
struct Failures {
    count: u32,
    locked_until_ms: i64,
    last_ms: i64,
}

/// Slows PIN guessing: after a few failures an address waits, the wait
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
    fn a_pin_is_six_to_twelve_digits_and_its_hash_verifies_only_it() {
        assert!(hash_pin("12345").is_err());
        assert!(hash_pin("12345a").is_err());
        assert!(hash_pin("1234567890123").is_err());
        let stored = hash_pin("271828").unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(verify_pin(&stored, "271828"));
        assert!(!verify_pin(&stored, "271829"));
        assert!(!verify_pin("not a hash", "271828"));
        assert_ne!(stored, hash_pin("271828").unwrap(), "salted");
    }

    #[test]
    fn sessions_are_bounded_and_end() {
        let sessions = Sessions::default();
        let (first, csrf) = sessions.create();
        assert_eq!(sessions.get(&first).unwrap().csrf, csrf);
        for _ in 0..MAX_SESSIONS {
            sessions.create();
        }
        assert_eq!(sessions.count(), MAX_SESSIONS);
        assert!(
            sessions.get(&first).is_none(),
            "the least recently used went"
        );
        let (token, _) = sessions.create();
        sessions.end(&token);
        assert!(sessions.get(&token).is_none());
    }

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

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
