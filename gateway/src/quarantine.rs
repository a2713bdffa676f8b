//! Quarantine: with `behaviour.policy = "quarantine"`, an urgent
//! node-behaviour finding (a second source, a flood, a replay...) puts the
//! device in quarantine until the patient releases it (`glyco-hub device
//! release`) or removes it on chain (`glyco-hub device remove`).
//!
//! A quarantined device is not refused: its readings are admitted, stored
//! and acknowledged as before (refusing would make a genuine device resend,
//! and the data may be genuine). They are marked instead: sealed batches
//! list their journal numbers (`BatchBody.quarantined`), and findings on
//! them are computed and kept but never alert anyone. Entries (open and the
//! latest closed) are kept in the journal's META, so a restart keeps them.

use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

/// Where the entries are kept in the journal's META.
pub const META_KEY: &str = "quarantine";
/// Entries kept (open ones are never dropped; the oldest closed go first).
const MAX_ENTRIES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    /// The device's identity (`name:…`, `ble:…`).
    pub device: String,
    pub since_ms: i64,
    /// Readings from this journal number on are marked...
    pub from_journal_seq: u64,
    /// ...up to this one, once released.
    pub until_journal_seq: Option<u64>,
    pub released_at_ms: Option<i64>,
    /// The finding that put it here.
    pub kind: String,
    pub explanation: String,
}

impl QuarantineEntry {
    pub fn is_open(&self) -> bool {
        self.until_journal_seq.is_none()
    }

    fn covers(&self, device: &str, journal_seq: u64) -> bool {
        self.device == device
            && journal_seq >= self.from_journal_seq
            && self
                .until_journal_seq
                .is_none_or(|until| journal_seq <= until)
    }
}

/// Shared by the behaviour stage (begins), the analysis (asks), the sealer
/// (marks) and the status socket (releases).
#[derive(Debug, Clone, Default)]
pub struct Quarantine {
    entries: Arc<RwLock<Vec<QuarantineEntry>>>,
}

impl Quarantine {
    pub fn from_entries(entries: Vec<QuarantineEntry>) -> Self {
        Self {
            entries: Arc::new(RwLock::new(entries)),
        }
    }

    pub fn entries(&self) -> Vec<QuarantineEntry> {
        self.entries.read().clone()
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&*self.entries.read()).unwrap_or_default()
    }

    pub fn is_quarantined(&self, device: &str) -> bool {
        self.entries
            .read()
            .iter()
            .any(|e| e.device == device && e.is_open())
    }

    /// Whether the reading `journal_seq` of `device` came while quarantined.
    pub fn covers(&self, device: &str, journal_seq: u64) -> bool {
        self.entries
            .read()
            .iter()
            .any(|e| e.covers(device, journal_seq))
    }

    /// Puts `device` in quarantine from `from_journal_seq`; false if it is already.
    pub fn begin(
        &self,
        device: &str,
        kind: &str,
        explanation: &str,
        now_ms: i64,
        from_journal_seq: u64,
    ) -> bool {
        let mut entries = self.entries.write();
        if entries.iter().any(|e| e.device == device && e.is_open()) {
            return false;
        }
        if entries.len() >= MAX_ENTRIES
            && let Some(oldest_closed) = entries.iter().position(|e| !e.is_open())
        {
            entries.remove(oldest_closed);
        }
        entries.push(QuarantineEntry {
            device: device.to_owned(),
            since_ms: now_ms,
            from_journal_seq,
            until_journal_seq: None,
            released_at_ms: None,
            kind: kind.to_owned(),
            explanation: explanation.to_owned(),
        });
        true
    }

    /// Ends `device`'s quarantine after reading `last_journal_seq`.
    pub fn release(
        &self,
        device: &str,
        now_ms: i64,
        last_journal_seq: u64,
    ) -> Result<QuarantineEntry, String> {
        let mut entries = self.entries.write();
        let entry = entries
            .iter_mut()
            .find(|e| e.device == device && e.is_open())
            .ok_or_else(|| format!("{device} is not in quarantine"))?;
        entry.until_journal_seq =
            Some(last_journal_seq.max(entry.from_journal_seq.saturating_sub(1)));
        entry.released_at_ms = Some(now_ms);
        Ok(entry.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_covered_from_the_finding_until_the_release() {
        let q = Quarantine::default();
        assert!(q.begin("name:cgm", "node_behaviour:flood", "x", 0, 10));
        assert!(
            !q.begin("name:cgm", "node_behaviour:flood", "x", 0, 11),
            "once"
        );
        assert!(q.is_quarantined("name:cgm") && !q.is_quarantined("name:cuff"));
        assert!(!q.covers("name:cgm", 9) && q.covers("name:cgm", 10) && q.covers("name:cgm", 1000));
        assert!(!q.covers("name:cuff", 10));
        let released = q.release("name:cgm", 5, 20).unwrap();
        assert_eq!(released.until_journal_seq, Some(20));
        assert!(q.covers("name:cgm", 20) && !q.covers("name:cgm", 21));
        assert!(!q.is_quarantined("name:cgm"));
        assert!(q.release("name:cgm", 6, 30).is_err());
        let back = Quarantine::from_entries(serde_json::from_slice(&q.to_json()).unwrap());
        assert!(back.covers("name:cgm", 15));
    }

    #[test]
    fn closed_entries_are_bounded() {
        let q = Quarantine::default();
        for i in 0..(MAX_ENTRIES as u64 + 50) {
            q.begin("name:d", "k", "x", 0, i * 10);
            q.release("name:d", 0, i * 10 + 5).unwrap();
        }
        assert!(q.entries().len() <= MAX_ENTRIES);
        assert!(q.covers("name:d", (MAX_ENTRIES as u64 + 49) * 10));
    }
}
