//! Glucose records the hub refused for what they hold (a control-solution
//! test, a NaN, an impossible time). The meter is asked for everything past
//! the journal's cursor at each connection, so while such a record is its
//! newest it comes back every time; counting it again each time would make
//! a good meter look like it misbehaves. Only content refusals are kept
//! here: a record refused because the meter was not registered yet must get
//! its chance again.

use std::collections::{HashSet, VecDeque};

use glyco_ble::BdAddr;
use glyco_ble::profiles::DateTime;

/// A meter's record: its address, sequence number and base time (a meter
/// reset reuses numbers with new times).
pub type RecordKey = (BdAddr, u16, DateTime);

/// Kept per hub run, bounded: oldest keys fall out first.
const CAPACITY: usize = 4096;

#[derive(Debug, Default)]
pub struct RefusedRecords {
    seen: HashSet<RecordKey>,
    order: VecDeque<RecordKey>,
}

impl RefusedRecords {
    pub fn contains(&self, key: &RecordKey) -> bool {
        self.seen.contains(key)
    }

    pub fn insert(&mut self, key: RecordKey) {
        if self.seen.insert(key) {
            self.order.push_back(key);
            if self.order.len() > CAPACITY
                && let Some(old) = self.order.pop_front()
            {
                self.seen.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seq: u16) -> RecordKey {
        let time = DateTime {
            year: 2026,
            month: 11,
            day: 23,
            hours: 8,
            minutes: 0,
            seconds: 0,
        };
        (BdAddr([0xC0, 0x26, 0xDA, 1, 2, 3]), seq, time)
    }

    #[test]
    fn remembers_refused_records_within_its_bound() {
        let mut refused = RefusedRecords::default();
        refused.insert(key(1));
        refused.insert(key(1));
        assert!(refused.contains(&key(1)));
        assert!(!refused.contains(&key(2)));
        for seq in 2..=(CAPACITY as u16 + 1) {
            refused.insert(key(seq));
        }
        assert!(!refused.contains(&key(1)), "the oldest fell out");
        assert_eq!(refused.order.len(), CAPACITY);
        assert_eq!(refused.seen.len(), CAPACITY);
    }
}
