//! Sessions held in memory: a random token (the cookie) for each, with a
//! CSRF token, what the session is for (the signed-in patient, or the
//! physician's address), an idle and an absolute limit, and a bound on how
//! many are held (a new one pushes out the least recently used).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::{now_millis, random_hex};

/// A session ends after this long without a request...
pub const IDLE_MS: i64 = 30 * 60 * 1000;
/// ...and after this long in any case.
pub const ABSOLUTE_MS: i64 = 12 * 3_600_000;
/// Sessions held at once unless the app asks for another bound.
pub const DEFAULT_MAX_SESSIONS: usize = 16;

#[derive(Debug, Clone)]
pub struct Session<S> {
    /// Who signed in.
    pub subject: S,
    pub csrf: String,
    pub created_ms: i64,
    pub last_ms: i64,
    /// Order of last use, for evicting the least recently used.
    last_use: u64,
}

/// Sessions by token.
#[derive(Debug)]
pub struct Sessions<S> {
    by_token: Mutex<HashMap<String, Session<S>>>,
    uses: AtomicU64,
    max: usize,
}

impl<S: Clone> Default for Sessions<S> {
    fn default() -> Self {
        Self::with_max(DEFAULT_MAX_SESSIONS)
    }
}

fn live<S>(session: &Session<S>, now: i64) -> bool {
    now - session.last_ms < IDLE_MS && now - session.created_ms < ABSOLUTE_MS
}

impl<S: Clone> Sessions<S> {
    pub fn with_max(max: usize) -> Self {
        Self {
            by_token: Mutex::new(HashMap::new()),
            uses: AtomicU64::new(0),
            max: max.max(1),
        }
    }

    /// A new session for `subject`: its token (for the cookie) and CSRF token.
    pub fn create(&self, subject: S) -> (String, String) {
        let now = now_millis();
        let token = random_hex();
        let csrf = random_hex();
        let mut sessions = self.by_token.lock();
        sessions.retain(|_, s| live(s, now));
        if sessions.len() >= self.max
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
                subject,
                csrf: csrf.clone(),
                created_ms: now,
                last_ms: now,
                last_use: self.uses.fetch_add(1, Ordering::Relaxed),
            },
        );
        (token, csrf)
    }

    /// The live session of `token`, touched.
    pub fn get(&self, token: &str) -> Option<Session<S>> {
        let now = now_millis();
        let mut sessions = self.by_token.lock();
        let session = sessions.get_mut(token)?;
        if !live(session, now) {
            sessions.remove(token);
            return None;
        }
        session.last_ms = now;
        session.last_use = self.uses.fetch_add(1, Ordering::Relaxed);
        Some(session.clone())
    }

    /// The live session named by the request's cookie `cookie_name`, with
    /// its token.
    pub fn from_headers(
        &self,
        headers: &axum::http::HeaderMap,
        cookie_name: &str,
    ) -> Option<(String, Session<S>)> {
        let token = crate::cookie(headers, cookie_name)?;
        let session = self.get(&token)?;
        Some((token, session))
    }

    pub fn end(&self, token: &str) {
        self.by_token.lock().remove(token);
    }

    pub fn count(&self) -> usize {
        self.by_token.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_bounded_and_end() {
        let sessions = Sessions::default();
        let (first, csrf) = sessions.create(1u8);
        let got = sessions.get(&first).unwrap();
        assert_eq!((got.csrf.as_str(), got.subject), (csrf.as_str(), 1));
        for _ in 0..DEFAULT_MAX_SESSIONS {
            sessions.create(2);
        }
        assert_eq!(sessions.count(), DEFAULT_MAX_SESSIONS);
        assert!(
            sessions.get(&first).is_none(),
            "the least recently used went"
        );
        let (token, _) = sessions.create(3);
        sessions.end(&token);
        assert!(sessions.get(&token).is_none());
    }
}
