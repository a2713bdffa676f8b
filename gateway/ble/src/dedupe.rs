//! De-duplication of glucometer records within one connection: a meter
//! may notify a record live and again in the RACP report that follows the
//! connect, and some re-send a record they were not sure was received.
//! Across connections nothing is dropped here: the RACP asks only for what
//! the hub has not stored, and what it asks for again (in flight, failed or
//! refused the last time) must get through. The key is the sequence number
//! together with the base time: a resent record has both equal, while a
//! glucometer that was reset and restarted its numbering produces new
//! records with old numbers but new times, which must not be lost. The
//! window is bounded (oldest keys fall out first) so a long connection does
//! not grow without limit.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;

/// A bounded set of record keys that remembers the newest `capacity` of
/// them (oldest fall out first). The sessions key glucose records by
/// (sequence number, base time); the hub uses it for records it refused.
#[derive(Debug)]
pub struct RecordWindow<K> {
    seen: HashSet<K>,
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Copy + Eq + Hash> RecordWindow<K> {
    /// A window holding at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Self {
        RecordWindow {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// True when the key is new (and remembers it); false for a repeat.
    pub fn insert(&mut self, key: K) -> bool {
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }

    /// Whether the key is remembered.
    pub fn contains(&self, key: &K) -> bool {
        self.seen.contains(key)
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::DateTime;

    fn at(minute: u8) -> DateTime {
        DateTime {
            year: 2024,
            month: 3,
            day: 15,
            hours: 7,
            minutes: minute,
            seconds: 0,
        }
    }

    #[test]
    fn drops_repeats_keeps_renumbered_records() {
        let mut w: RecordWindow<(u16, DateTime)> = RecordWindow::new(16);
        assert!(w.insert((1, at(0))));
        assert!(w.insert((2, at(1))));
        assert!(!w.insert((1, at(0))), "resent record");
        assert!(
            w.insert((1, at(30))),
            "same number after a device reset, new time"
        );
    }

    #[test]
    fn window_is_bounded() {
        let mut w: RecordWindow<(u16, DateTime)> = RecordWindow::new(2);
        assert!(w.insert((1, at(0))));
        assert!(w.insert((2, at(0))));
        assert!(w.insert((3, at(0))));
        assert_eq!(w.seen.len(), 2);
        assert!(w.insert((1, at(0))), "fell out of the window");
        assert!(!w.insert((3, at(0))));
    }
}
