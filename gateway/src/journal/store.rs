//! The journal's write path. Only its owner (the journal thread) holds a
//! [`JournalStore`]; one call commits one transaction.

use std::sync::Arc;

use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{
    ANCHORS, EVENT_COUNTS, EVENTS, FINDINGS, HUB_SEQ, JournalError, JournalLimits, LATEST, META,
    Outbox, PRUNED, READINGS, REPLICATED, SEALED, SEEN, TIMED_CONTENT, counts_key,
};
use crate::behaviour::NodeEvent;
use crate::reading::{Measurement, Reading, SeqOrigin};

/// What the journal did with one reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Stored now, under this journal sequence number; `seq` is the reading's
    /// sequence number (hub-assigned ones are filled in here).
    Stored { journal_seq: u64, seq: u64 },
    /// The same reading was stored before: an idempotent resend.
    Duplicate { journal_seq: u64 },
    /// The device reused a sequence number for different content.
    Replayed { journal_seq: u64 },
}

/// The fields that make two submissions the same reading. The hub's receive
/// time is left out: a resend arrives later but is the same measurement.
#[derive(Serialize)]
struct Identity<'a> {
    measurement: &'a Measurement,
    device_time: Option<i64>,
    reported_unit: &'a str,
    flags: &'a [crate::reading::SensorFlag],
}

fn content_hash(reading: &Reading) -> Result<[u8; 32], JournalError> {
    let identity = Identity {
        measurement: &reading.measurement,
        device_time: reading.device_time,
        reported_unit: &reading.reported_unit,
        flags: &reading.flags,
    };
    Ok(Sha256::digest(serde_json::to_vec(&identity)?).into())
}

/// Whether a reading the hub numbers is told from a resend by its content.
/// Only when the device's own clock dated it: a CGM record's BLE time is
/// the hub's estimate (it can move as the estimate improves), and a
/// cuff's pulse is stored or skipped with its pressure reading by the BLE
/// ingest (two measurements in the same minute may share a pulse).
fn dedupe_by_content(reading: &Reading) -> bool {
    reading.seq_origin == SeqOrigin::Hub
        && reading.device_time.is_some()
        && !matches!(
            reading.measurement,
            Measurement::CgmGlucose { .. } | Measurement::HeartRate { .. }
        )
}

/// META key set once `TIMED_CONTENT` holds every stored reading it should
/// (journals written before the table existed are filled at open).
const TIMED_CONTENT_FILLED: &str = "timed_content_filled";

/// One group of changes, committed in one transaction.
#[derive(Debug, Default)]
pub struct Batch {
    pub readings: Vec<Reading>,
    pub events: Vec<NodeEvent>,
    pub meta: Vec<(String, Vec<u8>)>,
    /// Outbox records (sealed batches, anchors), each a new number or an
    /// update of one.
    pub outbox: Vec<(Outbox, u64, Vec<u8>)>,
}

/// The journal's only write path.
#[derive(Debug)]
pub struct JournalStore {
    db: Arc<Database>,
    limits: JournalLimits,
    /// The journal file's directory (for the free-space check).
    dir: std::path::PathBuf,
}

impl JournalStore {
    pub(super) fn new(
        db: Arc<Database>,
        limits: JournalLimits,
        dir: std::path::PathBuf,
    ) -> Result<Self, JournalError> {
        let store = Self { db, limits, dir };
        // Create every table up front so readers never meet a missing one.
        let txn = store.db.begin_write()?;
        txn.open_table(READINGS)?;
        txn.open_table(SEEN)?;
        txn.open_table(HUB_SEQ)?;
        txn.open_table(TIMED_CONTENT)?;
        txn.open_table(LATEST)?;
        txn.open_table(EVENTS)?;
        txn.open_table(EVENT_COUNTS)?;
        txn.open_table(META)?;
        txn.open_table(SEALED)?;
        txn.open_table(ANCHORS)?;
        txn.open_table(REPLICATED)?;
        txn.open_table(PRUNED)?;
        txn.open_table(FINDINGS)?;
        txn.open_table(super::ALERTS)?;
        txn.open_table(super::EVIDENCE)?;
        txn.commit()?;
        store.fill_timed_content()?;
        Ok(store)
    }

    fn fill_timed_content(&self) -> Result<(), JournalError> {
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            if meta.get(TIMED_CONTENT_FILLED)?.is_some() {
                return Ok(());
            }
            let stored = txn.open_table(READINGS)?;
            let mut timed = txn.open_table(TIMED_CONTENT)?;
            for entry in stored.iter()? {
                let (journal_seq, bytes) = entry?;
                let reading: Reading = serde_json::from_slice(bytes.value())?;
                if dedupe_by_content(&reading) {
                    let device = reading.device.local_digest().0;
                    timed.insert((&device, &content_hash(&reading)?), journal_seq.value())?;
                }
            }
            meta.insert(TIMED_CONTENT_FILLED, [1u8].as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Commits a batch in one transaction: readings (deciding for each whether
    /// it is new, a resend or a replay), events and named state. Durable
    /// (fsync) when it holds readings or state; events alone ride along with
    /// the next durable commit.
    pub fn commit(&mut self, batch: &mut Batch) -> Result<Vec<AppendOutcome>, JournalError> {
        crate::disk::check_reserve(&self.dir, self.limits.min_free_bytes)
            .map_err(|(available, reserve)| JournalError::DiskFull { available, reserve })?;
        let mut txn = self.db.begin_write()?;
        let durable =
            !batch.readings.is_empty() || !batch.meta.is_empty() || !batch.outbox.is_empty();
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        let outcomes = append(&txn, &mut batch.readings)?;
        record_events(&txn, &batch.events, self.limits.max_events)?;
        {
            let mut meta = txn.open_table(META)?;
            for (key, value) in &batch.meta {
                meta.insert(key.as_str(), value.as_slice())?;
            }
        }
        for (outbox, number, record) in &batch.outbox {
            txn.open_table(outbox.table())?
                .insert(*number, record.as_slice())?;
        }
        txn.commit()?;
        Ok(outcomes)
    }

    /// Appends readings durably (one transaction).
    pub fn append(&mut self, readings: &mut [Reading]) -> Result<Vec<AppendOutcome>, JournalError> {
        let mut batch = Batch {
            readings: readings.to_vec(),
            ..Batch::default()
        };
        let outcomes = self.commit(&mut batch)?;
        readings.clone_from_slice(&batch.readings);
        Ok(outcomes)
    }

    /// Records node-behaviour events and their counts.
    pub fn record_events(&mut self, events: &[NodeEvent]) -> Result<(), JournalError> {
        let mut batch = Batch {
            events: events.to_vec(),
            ..Batch::default()
        };
        self.commit(&mut batch).map(|_| ())
    }

    /// Saves a small named record durably.
    pub fn save_meta(&mut self, key: &str, value: &[u8]) -> Result<(), JournalError> {
        let mut batch = Batch {
            meta: vec![(key.to_owned(), value.to_vec())],
            ..Batch::default()
        };
        self.commit(&mut batch).map(|_| ())
    }
}

fn append(
    txn: &WriteTransaction,
    readings: &mut [Reading],
) -> Result<Vec<AppendOutcome>, JournalError> {
    let mut outcomes = Vec::with_capacity(readings.len());
    let mut stored = txn.open_table(READINGS)?;
    let mut seen = txn.open_table(SEEN)?;
    let mut hub_seq = txn.open_table(HUB_SEQ)?;
    let mut timed = txn.open_table(TIMED_CONTENT)?;
    let mut latest = txn.open_table(LATEST)?;
    let mut next = stored.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
    for reading in readings.iter_mut() {
        let device = reading.device.local_digest().0;
        match reading.seq_origin {
            SeqOrigin::Hub => {
                if dedupe_by_content(reading) {
                    let hash = content_hash(reading)?;
                    if let Some(journal_seq) = timed.get((&device, &hash))? {
                        outcomes.push(AppendOutcome::Duplicate {
                            journal_seq: journal_seq.value(),
                        });
                        continue;
                    }
                    timed.insert((&device, &hash), next)?;
                }
                let seq = hub_seq.get(&device)?.map(|v| v.value()).unwrap_or(1);
                hub_seq.insert(&device, seq.saturating_add(1))?;
                reading.seq = seq;
            }
            SeqOrigin::Device => {
                let hash = content_hash(reading)?;
                if let Some(previous) = seen.get((&device, reading.seq))? {
                    let (previous_hash, journal_seq) = previous.value();
                    outcomes.push(if *previous_hash == hash {
                        AppendOutcome::Duplicate { journal_seq }
                    } else {
                        AppendOutcome::Replayed { journal_seq }
                    });
                    continue;
                }
                seen.insert((&device, reading.seq), (&hash, next))?;
            }
        }
        stored.insert(next, serde_json::to_vec(&*reading)?.as_slice())?;
        latest.insert(&device, next)?;
        outcomes.push(AppendOutcome::Stored {
            journal_seq: next,
            seq: reading.seq,
        });
        next += 1;
    }
    Ok(outcomes)
}

/// Records events and their counts; keeps the newest `max_events`.
fn record_events(
    txn: &WriteTransaction,
    events: &[NodeEvent],
    max_events: u64,
) -> Result<(), JournalError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut table = txn.open_table(EVENTS)?;
    let mut counts = txn.open_table(EVENT_COUNTS)?;
    let first = table.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
    for (number, event) in (first..).zip(events) {
        table.insert(number, serde_json::to_vec(event)?.as_slice())?;
        let key = counts_key(event.transport, event.reason);
        let count = counts.get(key.as_str())?.map(|v| v.value()).unwrap_or(0);
        counts.insert(key.as_str(), count.saturating_add(event.count.max(1)))?;
    }
    while table.len()? > max_events {
        table.pop_first()?;
    }
    Ok(())
}
