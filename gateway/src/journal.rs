//! The hub's durable store (redb): admitted readings, the sequence numbers
//! already used per device, node-behaviour events, and the registry mirror.
//!
//! A reading is acknowledged to its device only after the transaction that
//! holds it has committed with `Durability::Immediate` (fsync). Writes are
//! grouped: one writer task commits whatever queued up while the previous
//! commit ran, so the fsync cost is shared when many devices publish at once.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::behaviour::{NodeEvent, RefusalReason};
use crate::reading::{Measurement, Reading, SeqOrigin, Transport};

/// Journal sequence number -> reading (JSON).
const READINGS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("readings");
/// (device id, device sequence number).
type DeviceSeq<'a> = (&'a [u8; 32], u64);
/// (content hash, journal sequence number).
type SeenEntry<'a> = (&'a [u8; 32], u64);
/// A device's sequence numbers already used, and for what.
const SEEN: TableDefinition<'_, DeviceSeq<'_>, SeenEntry<'_>> = TableDefinition::new("seen");
/// (device id, content hash) -> journal sequence number, for readings the
/// hub numbers that carry the device's own time (see [`dedupe_by_content`]):
/// a cuff or scale that sends its stored measurements again at every
/// connection sends the same content, which is one reading, not a new one
/// each time.
const TIMED_CONTENT: TableDefinition<'_, (&[u8; 32], &[u8; 32]), u64> =
    TableDefinition::new("timed_content");
/// Device id -> next hub-assigned sequence number.
const HUB_SEQ: TableDefinition<'_, &[u8; 32], u64> = TableDefinition::new("hub_seq");
/// Device id -> journal sequence number of its latest reading.
const LATEST: TableDefinition<'_, &[u8; 32], u64> = TableDefinition::new("latest");
/// Event number -> node-behaviour event (JSON); the newest `MAX_EVENTS` kept.
const EVENTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("node_events");
/// "transport/reason" -> count, kept forever.
const EVENT_COUNTS: TableDefinition<'_, &str, u64> = TableDefinition::new("node_event_counts");
/// Free-form small state (the registry mirror's checkpoint, ...).
pub(crate) const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");

/// Node-behaviour events kept in full; older ones survive only in the counts.
pub const MAX_EVENTS: u64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("opening the journal {path}: {source}")]
    Open {
        path: String,
        source: redb::DatabaseError,
    },
    #[error("journal storage: {0}")]
    Storage(String),
    #[error("the journal writer has stopped")]
    WriterGone,
}

macro_rules! storage_err {
    ($($t:ty),*) => {$(
        impl From<$t> for JournalError {
            fn from(e: $t) -> Self {
                JournalError::Storage(e.to_string())
            }
        }
    )*};
}
storage_err!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
    serde_json::Error
);

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
    measurement: &'a crate::reading::Measurement,
    device_time: Option<i64>,
    reported_unit: &'a str,
    flags: &'a [crate::reading::SensorFlag],
}

fn content_hash(reading: &Reading) -> [u8; 32] {
    let identity = Identity {
        measurement: &reading.measurement,
        device_time: reading.device_time,
        reported_unit: &reading.reported_unit,
        flags: &reading.flags,
    };
    Sha256::digest(serde_json::to_vec(&identity).expect("identity serialises")).into()
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

fn counts_key(transport: Transport, reason: RefusalReason) -> String {
    let transport = match transport {
        Transport::Mqtt => "mqtt",
        Transport::Ble => "ble",
    };
    format!("{transport}/{}", reason.as_str())
}

fn parse_counts_key(key: &str) -> Option<(Transport, RefusalReason)> {
    let (transport, reason) = key.split_once('/')?;
    let transport = match transport {
        "mqtt" => Transport::Mqtt,
        "ble" => Transport::Ble,
        _ => return None,
    };
    let reason: RefusalReason =
        serde_json::from_value(serde_json::Value::String(reason.to_owned())).ok()?;
    Some((transport, reason))
}

/// The synchronous store. Use [`JournalWriter`] from async code.
#[derive(Debug, Clone)]
pub struct Journal {
    db: Arc<Database>,
}

impl Journal {
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let db = Database::create(path).map_err(|source| JournalError::Open {
            path: path.display().to_string(),
            source,
        })?;
        let journal = Self { db: Arc::new(db) };
        // Create every table up front so readers never meet a missing one.
        let txn = journal.db.begin_write()?;
        txn.open_table(READINGS)?;
        txn.open_table(SEEN)?;
        txn.open_table(HUB_SEQ)?;
        txn.open_table(TIMED_CONTENT)?;
        txn.open_table(LATEST)?;
        txn.open_table(EVENTS)?;
        txn.open_table(EVENT_COUNTS)?;
        txn.open_table(META)?;
        txn.commit()?;
        journal.fill_timed_content()?;
        Ok(journal)
    }

    /// Fills `TIMED_CONTENT` from the stored readings, once.
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
                    timed.insert((&device, &content_hash(&reading)), journal_seq.value())?;
                }
            }
            meta.insert(TIMED_CONTENT_FILLED, [1u8].as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    /// Appends readings in one durable transaction, deciding for each whether
    /// it is new, a resend, or a replay.
    pub fn append(&self, readings: &mut [Reading]) -> Result<Vec<AppendOutcome>, JournalError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let mut outcomes = Vec::with_capacity(readings.len());
        {
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
                            let hash = content_hash(reading);
                            if let Some(journal_seq) = timed.get((&device, &hash))? {
                                outcomes.push(AppendOutcome::Duplicate {
                                    journal_seq: journal_seq.value(),
                                });
                                continue;
                            }
                            timed.insert((&device, &hash), next)?;
                        }
                        let seq = hub_seq.get(&device)?.map(|v| v.value()).unwrap_or(1);
                        hub_seq.insert(&device, seq + 1)?;
                        reading.seq = seq;
                    }
                    SeqOrigin::Device => {
                        let hash = content_hash(reading);
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
        }
        txn.commit()?;
        Ok(outcomes)
    }

    /// Records node-behaviour events and their counts; keeps the newest
    /// [`MAX_EVENTS`] events.
    pub fn record_events(&self, events: &[NodeEvent]) -> Result<(), JournalError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(EVENTS)?;
            let mut counts = txn.open_table(EVENT_COUNTS)?;
            let first = table.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
            for (number, event) in (first..).zip(events) {
                table.insert(number, serde_json::to_vec(event)?.as_slice())?;
                let key = counts_key(event.transport, event.reason);
                let count = counts.get(key.as_str())?.map(|v| v.value()).unwrap_or(0);
                counts.insert(key.as_str(), count + 1)?;
            }
            while table.len()? > MAX_EVENTS {
                table.pop_first()?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    pub fn reading_count(&self) -> Result<u64, JournalError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(READINGS)?.len()?)
    }

    /// Readings with journal sequence numbers in `[from, from + limit)`.
    pub fn readings_from(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Reading)>, JournalError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(READINGS)?;
        let mut out = Vec::new();
        for entry in table.range(from..)?.take(limit) {
            let (k, v) = entry?;
            out.push((k.value(), serde_json::from_slice(v.value())?));
        }
        Ok(out)
    }

    /// The newest `limit` readings, oldest first.
    pub fn recent_readings(&self, limit: usize) -> Result<Vec<Reading>, JournalError> {
        self.newest(READINGS, limit)
    }

    /// The newest `limit` JSON records of a table keyed by sequence, oldest first.
    fn newest<T: serde::de::DeserializeOwned>(
        &self,
        definition: TableDefinition<'static, u64, &'static [u8]>,
        limit: usize,
    ) -> Result<Vec<T>, JournalError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(definition)?;
        let mut out = Vec::new();
        for entry in table.iter()?.rev().take(limit) {
            let (_, v) = entry?;
            out.push(serde_json::from_slice(v.value())?);
        }
        out.reverse();
        Ok(out)
    }

    /// The highest device-assigned sequence number stored for `device` (BLE
    /// glucose meters are asked for their records after this one).
    pub fn last_device_seq(
        &self,
        device: &glyco_contracts::DeviceIdentity,
    ) -> Result<Option<u64>, JournalError> {
        let txn = self.db.begin_read()?;
        let seen = txn.open_table(SEEN)?;
        let id = device.local_digest().0;
        let last = seen
            .range((&id, 0)..=(&id, u64::MAX))?
            .next_back()
            .transpose()?;
        Ok(last.map(|(key, _)| key.value().1))
    }

    /// The latest reading of every device that sent one.
    pub fn latest_readings(&self) -> Result<Vec<Reading>, JournalError> {
        let txn = self.db.begin_read()?;
        let latest = txn.open_table(LATEST)?;
        let readings = txn.open_table(READINGS)?;
        let mut out = Vec::new();
        for entry in latest.iter()? {
            let (_, journal_seq) = entry?;
            if let Some(bytes) = readings.get(journal_seq.value())? {
                out.push(serde_json::from_slice(bytes.value())?);
            }
        }
        Ok(out)
    }

    pub fn event_counts(&self) -> Result<BTreeMap<(Transport, RefusalReason), u64>, JournalError> {
        let txn = self.db.begin_read()?;
        let counts = txn.open_table(EVENT_COUNTS)?;
        let mut out = BTreeMap::new();
        for entry in counts.iter()? {
            let (k, v) = entry?;
            if let Some(key) = parse_counts_key(k.value()) {
                out.insert(key, v.value());
            }
        }
        Ok(out)
    }

    /// The newest `limit` node-behaviour events, oldest first.
    pub fn recent_events(&self, limit: usize) -> Result<Vec<NodeEvent>, JournalError> {
        self.newest(EVENTS, limit)
    }
}

struct WriteRequest {
    reading: Reading,
    reply: oneshot::Sender<Result<AppendOutcome, String>>,
}

/// The async face of the journal: a single writer task that groups appends.
#[derive(Debug, Clone)]
pub struct JournalWriter {
    requests: mpsc::Sender<WriteRequest>,
}

impl std::fmt::Debug for WriteRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteRequest").finish_non_exhaustive()
    }
}

/// Largest group of readings committed together.
const MAX_GROUP: usize = 512;

impl JournalWriter {
    /// Starts the writer for readings, and the one for node-behaviour events
    /// (fed by the returned sender). Both stop when every sender is dropped,
    /// after writing what they were given.
    pub fn start(journal: Journal) -> (Self, mpsc::Sender<NodeEvent>, tokio::task::JoinHandle<()>) {
        let (requests, mut rx) = mpsc::channel::<WriteRequest>(4 * MAX_GROUP);
        let (events_tx, mut events_rx) = mpsc::channel::<NodeEvent>(4096);
        let events_journal = journal.clone();
        let events_task = tokio::spawn(async move {
            let mut batch = Vec::new();
            while events_rx.recv_many(&mut batch, MAX_GROUP).await > 0 {
                let events = std::mem::take(&mut batch);
                let journal = events_journal.clone();
                let result =
                    tokio::task::spawn_blocking(move || journal.record_events(&events)).await;
                if let Ok(Err(e)) | Err(e) =
                    result.map_err(|e| JournalError::Storage(e.to_string()))
                {
                    tracing::error!(error = %e, "node-behaviour events not journaled");
                }
            }
        });
        let task = tokio::spawn(async move {
            let mut group = Vec::new();
            while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
                let (mut readings, replies): (Vec<_>, Vec<_>) = std::mem::take(&mut group)
                    .into_iter()
                    .map(|r| (r.reading, r.reply))
                    .unzip();
                let journal = journal.clone();
                let result = tokio::task::spawn_blocking(move || journal.append(&mut readings))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()));
                match result {
                    Ok(outcomes) => {
                        for (reply, outcome) in replies.into_iter().zip(outcomes) {
                            let _ = reply.send(Ok(outcome));
                        }
                    }
                    Err(e) => {
                        // Nothing of the group was committed: every device is
                        // told so and will resend; nothing is acknowledged.
                        tracing::error!(error = %e, "journal append failed");
                        for reply in replies {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            }
            let _ = events_task.await;
        });
        (Self { requests }, events_tx, task)
    }

    /// Stores a reading durably; returns once it is committed (or refused as
    /// a duplicate or replay).
    pub async fn append(&self, reading: Reading) -> Result<AppendOutcome, JournalError> {
        let (reply, outcome) = oneshot::channel();
        self.requests
            .send(WriteRequest { reading, reply })
            .await
            .map_err(|_| JournalError::WriterGone)?;
        outcome
            .await
            .map_err(|_| JournalError::WriterGone)?
            .map_err(JournalError::Storage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::{Measurement, Transport};
    use glyco_contracts::DeviceIdentity;

    fn reading(device: &str, seq: u64, mg_dl: f64, origin: SeqOrigin) -> Reading {
        Reading {
            device: DeviceIdentity::name(device).unwrap(),
            transport: Transport::Mqtt,
            seq,
            seq_origin: origin,
            device_time: Some(1_000),
            received_at: 2_000,
            measurement: Measurement::CgmGlucose { mg_dl },
            reported_unit: "mg/dL".into(),
            flags: vec![],
        }
    }

    fn open() -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("hub.redb")).unwrap();
        (dir, journal)
    }

    #[test]
    fn recent_readings_are_the_newest_oldest_first() {
        let (_dir, journal) = open();
        assert!(journal.recent_readings(3).unwrap().is_empty());
        let mut batch: Vec<Reading> = (1..=5)
            .map(|seq| reading("a", seq, 100.0 + seq as f64, SeqOrigin::Device))
            .collect();
        journal.append(&mut batch).unwrap();
        let seqs: Vec<u64> = journal
            .recent_readings(3)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, [3, 4, 5]);
        assert_eq!(journal.recent_readings(10).unwrap().len(), 5);
    }

    #[test]
    fn resends_are_duplicates_and_reused_numbers_are_replays() {
        let (_dir, journal) = open();
        let mut first = [reading("a", 1, 100.0, SeqOrigin::Device)];
        assert_eq!(
            journal.append(&mut first).unwrap(),
            vec![AppendOutcome::Stored {
                journal_seq: 1,
                seq: 1
            }]
        );
        // The same reading resent later (another receive time) is a duplicate.
        let mut resend = [Reading {
            received_at: 9_999,
            ..reading("a", 1, 100.0, SeqOrigin::Device)
        }];
        assert_eq!(
            journal.append(&mut resend).unwrap(),
            vec![AppendOutcome::Duplicate { journal_seq: 1 }]
        );
        // Same number, different value: a replay. Another device may use it.
        let mut batch = [
            reading("a", 1, 250.0, SeqOrigin::Device),
            reading("b", 1, 250.0, SeqOrigin::Device),
        ];
        assert_eq!(
            journal.append(&mut batch).unwrap(),
            vec![
                AppendOutcome::Replayed { journal_seq: 1 },
                AppendOutcome::Stored {
                    journal_seq: 2,
                    seq: 1
                }
            ]
        );
        assert_eq!(journal.reading_count().unwrap(), 2);
    }

    fn cuff(systolic_mmhg: f64, device_time: Option<i64>) -> Reading {
        Reading {
            device_time,
            measurement: Measurement::BloodPressure {
                systolic_mmhg,
                diastolic_mmhg: 80.0,
                mean_mmhg: None,
            },
            reported_unit: "mmHg".into(),
            ..reading("cuff", 0, 0.0, SeqOrigin::Hub)
        }
    }

    #[test]
    fn a_timed_reading_sent_again_is_one_reading() {
        let (_dir, journal) = open();
        let mut batch = [cuff(120.0, Some(5_000)), cuff(120.0, None)];
        journal.append(&mut batch).unwrap();
        // Re-sent at the next connection: the timed one is a duplicate;
        // one without a time cannot be told from a new one and is stored.
        let mut again = [
            Reading {
                received_at: 9_999,
                ..cuff(120.0, Some(5_000))
            },
            cuff(120.0, None),
            cuff(121.0, Some(5_000)),
        ];
        assert_eq!(
            journal.append(&mut again).unwrap(),
            vec![
                AppendOutcome::Duplicate { journal_seq: 1 },
                AppendOutcome::Stored {
                    journal_seq: 3,
                    seq: 3
                },
                AppendOutcome::Stored {
                    journal_seq: 4,
                    seq: 4
                },
            ]
        );
        // CGM times over BLE are the hub's estimates: not a key.
        let mut cgm = [
            reading("cgm", 0, 100.0, SeqOrigin::Hub),
            reading("cgm", 0, 100.0, SeqOrigin::Hub),
        ];
        let outcomes = journal.append(&mut cgm).unwrap();
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, AppendOutcome::Stored { .. })),
            "{outcomes:?}"
        );
    }

    #[test]
    fn a_journal_from_before_content_keys_is_filled_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.redb");
        {
            let journal = Journal::open(&path).unwrap();
            journal.append(&mut [cuff(130.0, Some(7_000))]).unwrap();
            // Make it look like a journal written before the table existed.
            let txn = journal.db.begin_write().unwrap();
            txn.delete_table(TIMED_CONTENT).unwrap();
            txn.open_table(META)
                .unwrap()
                .remove(TIMED_CONTENT_FILLED)
                .unwrap();
            txn.commit().unwrap();
        }
        let journal = Journal::open(&path).unwrap();
        assert_eq!(
            journal.append(&mut [cuff(130.0, Some(7_000))]).unwrap(),
            vec![AppendOutcome::Duplicate { journal_seq: 1 }]
        );
    }

    #[test]
    fn hub_assigned_numbers_continue_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.redb");
        {
            let journal = Journal::open(&path).unwrap();
            let mut batch = [
                reading("hr", 0, 60.0, SeqOrigin::Hub),
                reading("hr", 0, 61.0, SeqOrigin::Hub),
            ];
            journal.append(&mut batch).unwrap();
            assert_eq!((batch[0].seq, batch[1].seq), (1, 2));
        }
        let journal = Journal::open(&path).unwrap();
        let mut batch = [reading("hr", 0, 62.0, SeqOrigin::Hub)];
        assert_eq!(
            journal.append(&mut batch).unwrap(),
            vec![AppendOutcome::Stored {
                journal_seq: 3,
                seq: 3
            }]
        );
        let stored = journal.readings_from(1, 10).unwrap();
        assert_eq!(
            stored.iter().map(|(_, r)| r.seq).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn the_last_device_sequence_number_is_per_device() {
        let (_dir, journal) = open();
        let mut batch = [
            reading("a", 7, 100.0, SeqOrigin::Device),
            reading("a", 3, 100.0, SeqOrigin::Device),
            reading("b", 9, 100.0, SeqOrigin::Device),
            reading("c", 0, 100.0, SeqOrigin::Hub),
        ];
        journal.append(&mut batch).unwrap();
        let seq = |name: &str| {
            journal
                .last_device_seq(&DeviceIdentity::name(name).unwrap())
                .unwrap()
        };
        assert_eq!(seq("a"), Some(7));
        assert_eq!(seq("b"), Some(9));
        assert_eq!(seq("c"), None, "hub-assigned numbers are not the device's");
        assert_eq!(seq("d"), None);
    }

    #[test]
    fn latest_readings_are_per_device() {
        let (_dir, journal) = open();
        let mut batch = [
            reading("a", 1, 100.0, SeqOrigin::Device),
            reading("a", 2, 110.0, SeqOrigin::Device),
            reading("b", 1, 90.0, SeqOrigin::Device),
        ];
        journal.append(&mut batch).unwrap();
        let mut latest = journal.latest_readings().unwrap();
        latest.sort_by_key(|r| r.device.to_string());
        assert_eq!(latest.len(), 2);
        assert_eq!(latest[0].seq, 2);
        assert_eq!(latest[1].device.to_string(), "name:b");
    }

    #[test]
    fn events_are_counted_forever_but_kept_only_up_to_the_cap() {
        let (_dir, journal) = open();
        let event = |i: u64| NodeEvent {
            at: i as i64,
            device: Some("x".into()),
            transport: Transport::Mqtt,
            reason: RefusalReason::WrongTopic,
            detail: format!("#{i}"),
        };
        journal.record_events(&[event(1), event(2)]).unwrap();
        let counts = journal.event_counts().unwrap();
        assert_eq!(
            counts.get(&(Transport::Mqtt, RefusalReason::WrongTopic)),
            Some(&2)
        );
        let recent = journal.recent_events(1).unwrap();
        assert_eq!(recent[0].detail, "#2");
    }

    #[tokio::test]
    async fn the_writer_groups_concurrent_appends_and_answers_each() {
        let (_dir, journal) = open();
        let (writer, _events, task) = JournalWriter::start(journal.clone());
        let mut pending = Vec::new();
        for seq in 1..=200 {
            let writer = writer.clone();
            pending.push(tokio::spawn(async move {
                writer
                    .append(reading("a", seq, 100.0 + seq as f64, SeqOrigin::Device))
                    .await
            }));
        }
        for p in pending {
            assert!(matches!(
                p.await.unwrap().unwrap(),
                AppendOutcome::Stored { .. }
            ));
        }
        drop(writer);
        drop(_events);
        task.await.unwrap();
        assert_eq!(journal.reading_count().unwrap(), 200);
    }
}
