//! Glucose records the hub refused for what they hold (a control-solution
//! test, a NaN, an impossible time). The meter is asked for everything past
//! the journal's cursor at each connection, so while such a record is its
//! newest it comes back every time; counting it again each time would make
//! a good meter look like it misbehaves. Only content refusals are kept
//! here: a record refused because the meter was not registered yet must get
//! its chance again.

use glyco_ble::profiles::DateTime;
use glyco_ble::{BdAddr, RecordWindow};

/// A meter's record: its address, sequence number and base time (a meter
/// reset reuses numbers with new times).
pub type RecordKey = (BdAddr, u16, DateTime);

/// Kept per hub run, bounded: oldest keys fall out first.
pub type RefusedRecords = RecordWindow<RecordKey>;

const CAPACITY: usize = 4096;

pub fn refused_records() -> RefusedRecords {
    RecordWindow::new(CAPACITY)
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
        let mut refused = refused_records();
        refused.insert(key(1));
        refused.insert(key(1));
        assert!(refused.contains(&key(1)));
        assert!(!refused.contains(&key(2)));
        for seq in 2..=(CAPACITY as u16 + 1) {
            refused.insert(key(seq));
        }
        assert!(!refused.contains(&key(1)), "the oldest fell out");
        assert_eq!(refused.len(), CAPACITY);
    }
}
