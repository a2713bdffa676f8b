//! The hub's durable store (redb): admitted readings, the sequence numbers
//! already used per device, node-behaviour events, and small state such as
//! the registry mirror's checkpoint.
//!
//! One owner writes: [`JournalStore`] holds the only write path and is moved
//! onto the journal thread ([`actor`]), which takes commands from a
//! [`JournalWriter`] handle and commits them in groups. Everyone else reads
//! through a [`Journal`] handle (redb readers never block the writer). A
//! reading is acknowledged to its device only after the transaction that
//! holds it committed with `Durability::Immediate` (fsync).
//!
//! The file is created 0600, redb's page cache is bounded, and the event
//! table keeps only the newest events (their counts are kept for ever).

mod actor;
pub mod repair;
mod store;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::behaviour::{NodeEvent, RefusalReason};
use crate::reading::{Reading, Transport};

pub use actor::{JournalTask, JournalWriter};
pub use store::{AppendOutcome, JournalStore};

/// Journal sequence number -> reading (JSON).
const READINGS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("readings");
/// (device digest, device sequence number).
type DeviceSeq<'a> = (&'a [u8; 32], u64);
/// (content hash, journal sequence number).
type SeenEntry<'a> = (&'a [u8; 32], u64);
/// A device's sequence numbers already used, and for what.
const SEEN: TableDefinition<'_, DeviceSeq<'_>, SeenEntry<'_>> = TableDefinition::new("seen");
/// (device digest, content hash) -> journal sequence number, for readings the
/// hub numbers that carry the device's own time (see `store::dedupe_by_content`).
const TIMED_CONTENT: TableDefinition<'_, (&[u8; 32], &[u8; 32]), u64> =
    TableDefinition::new("timed_content");
/// Device digest -> next hub-assigned sequence number.
const HUB_SEQ: TableDefinition<'_, &[u8; 32], u64> = TableDefinition::new("hub_seq");
/// Device digest -> journal sequence number of its latest reading.
const LATEST: TableDefinition<'_, &[u8; 32], u64> = TableDefinition::new("latest");
/// Event number -> node-behaviour event (JSON); the newest kept.
const EVENTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("node_events");
/// "transport/reason" -> count, kept forever.
const EVENT_COUNTS: TableDefinition<'_, &str, u64> = TableDefinition::new("node_event_counts");
/// Small named state (the registry mirror's checkpoint, ...).
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
/// Batch number -> sealed batch record (JSON, `crate::seal::records`).
const SEALED: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("sealed_batches");
/// Anchor number -> anchor record (JSON, `crate::seal::records`).
const ANCHORS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("anchors");
/// Batch number -> a replica's confirmation (JSON, `crate::seal::serve`).
const REPLICATED: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("replicated_batches");
/// Finding number -> an on-hub finding (JSON, `crate::analysis`), for batches.
const FINDINGS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("findings");
pub(crate) const ALERTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("alerts");
pub(crate) const EVIDENCE: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("evidence");
/// Batch number -> when its local blob was pruned (JSON, `crate::seal::pruner`).
const PRUNED: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("pruned_batches");

/// The durable outboxes after the journal: what was sealed, anchored,
/// replicated and pruned, keyed by batch number (anchors by anchor number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbox {
    Sealed,
    Anchors,
    Replicated,
    Pruned,
    /// Findings, numbered from 1; batches carry them in order.
    Findings,
    /// Alerts by number, each overwritten as it changes (docs/HUB.md).
    Alerts,
    /// Digests of alerts delivered and acknowledgements received, numbered
    /// from 1; batches carry them in order.
    Evidence,
}

impl Outbox {
    fn table(self) -> TableDefinition<'static, u64, &'static [u8]> {
        match self {
            Self::Sealed => SEALED,
            Self::Anchors => ANCHORS,
            Self::Replicated => REPLICATED,
            Self::Pruned => PRUNED,
            Self::Findings => FINDINGS,
            Self::Alerts => ALERTS,
            Self::Evidence => EVIDENCE,
        }
    }
}

/// How much the journal may hold and use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalLimits {
    /// Node-behaviour events kept in full; older ones survive in the counts.
    pub max_events: u64,
    /// redb's page cache, in bytes.
    pub cache_bytes: usize,
    /// Free space the journal leaves on its filesystem: a commit that would
    /// start below it is refused (`DiskFull`), so redb never meets a full
    /// disk (after an I/O error redb must be reopened).
    pub min_free_bytes: u64,
}

impl Default for JournalLimits {
    fn default() -> Self {
        Self {
            max_events: 20_000,
            cache_bytes: 16 * 1024 * 1024,
            min_free_bytes: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(
        "opening the journal {path}: {source} (if the file is damaged, `glyco-hub repair-journal` recovers a torn tail and keeps the original)"
    )]
    Open {
        path: String,
        #[source]
        source: redb::DatabaseError,
    },
    #[error(
        "the journal {path} is damaged: it cannot be read (stop the hub; `glyco-hub repair-journal` recovers a torn tail and keeps the original)"
    )]
    Damaged { path: String },
    #[error("creating the journal file {path} (mode 0600): {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("journal storage: {0}")]
    Storage(#[from] redb::Error),
    #[error("a journal record does not decode: {0}")]
    Record(#[from] serde_json::Error),
    /// A group commit failed: nothing of the group was stored.
    #[error("the journal commit failed: {0}")]
    Commit(Arc<JournalError>),
    #[error("the disk is full: {available} bytes free, {reserve} kept in reserve")]
    DiskFull { available: u64, reserve: u64 },
    #[error("the journal thread has stopped")]
    WriterGone,
    #[error("cannot run the journal thread: {0}")]
    Thread(#[source] std::io::Error),
}

impl JournalError {
    /// Whether retrying later can help (a failed commit: a full disk, say),
    /// as opposed to the journal being gone.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::WriterGone | Self::Thread(_)) && !self.is_poisoned()
    }

    /// redb refuses every write after an I/O error until it is reopened.
    pub fn is_poisoned(&self) -> bool {
        match self {
            Self::Storage(redb::Error::PreviousIo) => true,
            Self::Commit(inner) => inner.is_poisoned(),
            _ => false,
        }
    }
}

macro_rules! storage_error {
    ($($t:ty),*) => {$(
        impl From<$t> for JournalError {
            fn from(e: $t) -> Self {
                JournalError::Storage(e.into())
            }
        }
    )*};
}
storage_error!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

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

/// Opens (or creates, mode 0600) the journal: a read handle for everyone,
/// and the store whose owner is the only writer.
pub fn open(path: &Path, limits: JournalLimits) -> Result<(Journal, JournalStore), JournalError> {
    // redb can panic on pages it cannot make sense of; a damaged file is an
    // error to report, not a crash.
    std::panic::catch_unwind(|| open_unguarded(path, limits)).unwrap_or_else(|_| {
        Err(JournalError::Damaged {
            path: path.display().to_string(),
        })
    })
}

fn open_unguarded(
    path: &Path,
    limits: JournalLimits,
) -> Result<(Journal, JournalStore), JournalError> {
    let file_error = |source| JournalError::File {
        path: path.display().to_string(),
        source,
    };
    // Created 0600 before redb opens it; an existing file is narrowed too.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(file_error)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(file_error)?;
    let open_error = |source| JournalError::Open {
        path: path.display().to_string(),
        source,
    };
    let backend = redb::backends::FileBackend::new(file).map_err(open_error)?;
    let db = Database::builder()
        .set_cache_size(limits.cache_bytes)
        .create_with_backend(backend)
        .map_err(open_error)?;
    let db = Arc::new(db);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    let store = JournalStore::new(db.clone(), limits, dir)?;
    Ok((Journal { db }, store))
}

/// A read handle: any number of readers, never blocking the writer.
#[derive(Debug, Clone)]
pub struct Journal {
    db: Arc<Database>,
}

impl Journal {
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

    /// Readings newest first (by arrival), each handed to `visit` until it
    /// returns false.
    pub fn scan_newest(&self, mut visit: impl FnMut(&Reading) -> bool) -> Result<(), JournalError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(READINGS)?;
        for entry in table.iter()?.rev() {
            let (_, v) = entry?;
            let reading: Reading = serde_json::from_slice(v.value())?;
            if !visit(&reading) {
                break;
            }
        }
        Ok(())
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

    pub fn event_count_kept(&self) -> Result<u64, JournalError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(EVENTS)?.len()?)
    }

    /// The outbox's last record, with its number.
    pub fn last_in<T: serde::de::DeserializeOwned>(
        &self,
        outbox: Outbox,
    ) -> Result<Option<(u64, T)>, JournalError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(outbox.table())?;
        match table.last()? {
            Some((k, v)) => Ok(Some((k.value(), serde_json::from_slice(v.value())?))),
            None => Ok(None),
        }
    }

    /// Outbox records numbered `from` on, at most `limit`.
    pub fn outbox_from<T: serde::de::DeserializeOwned>(
        &self,
        outbox: Outbox,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, T)>, JournalError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(outbox.table())?;
        let mut out = Vec::new();
        for entry in table.range(from..)?.take(limit) {
            let (k, v) = entry?;
            out.push((k.value(), serde_json::from_slice(v.value())?));
        }
        Ok(out)
    }

    /// One outbox record.
    pub fn outbox_get<T: serde::de::DeserializeOwned>(
        &self,
        outbox: Outbox,
        number: u64,
    ) -> Result<Option<T>, JournalError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(outbox.table())?;
        match table.get(number)? {
            Some(v) => Ok(Some(serde_json::from_slice(v.value())?)),
            None => Ok(None),
        }
    }

    /// The journal sequence number of the newest reading (0 when none).
    pub fn last_journal_seq(&self) -> Result<u64, JournalError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(READINGS)?;
        Ok(table.last()?.map(|(k, _)| k.value()).unwrap_or(0))
    }

    /// A small named record (the registry checkpoint), if saved.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, JournalError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META)?;
        Ok(table.get(key)?.map(|v| v.value().to_vec()))
    }
}
