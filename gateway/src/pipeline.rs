//! Where admitted readings go: the journal first (durably), then to whoever
//! listens for stored readings (status, the anomaly detector). Replays found
//! by the journal become node-behaviour events here, whatever the transport.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use glyco_contracts::DeviceIdentity;
use tokio::sync::broadcast;

use crate::behaviour::{Behaviour, RefusalReason};
use crate::journal::{AppendOutcome, JournalError, JournalWriter};
use crate::nodewatch::WireMeta;
use crate::reading::{Reading, UnixMillis};
use glyco_ml::behaviour::ArrivalOutcome;

/// What happened to an admitted reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Durably stored; `seq` is the reading's (hub-assigned ones filled in).
    New { seq: u64 },
    /// A resend of a reading stored before.
    Duplicate,
    /// The sequence number was already used for different content: refused.
    Replayed,
}

/// Whether the journal is taking readings (status).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageStatus {
    /// Why the journal refuses readings, while it does (a full disk, say).
    pub failing: Option<String>,
    pub failing_since: Option<UnixMillis>,
    /// Readings refused (not acknowledged) because they could not be stored.
    pub readings_refused: u64,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    journal: JournalWriter,
    behaviour: Behaviour,
    stored: broadcast::Sender<Reading>,
    latest: Arc<Mutex<BTreeMap<DeviceIdentity, Reading>>>,
    storage: Arc<Mutex<StorageStatus>>,
}

impl Pipeline {
    pub fn new(journal: JournalWriter, behaviour: Behaviour, latest: Vec<Reading>) -> Self {
        let latest = latest.into_iter().map(|r| (r.device.clone(), r)).collect();
        Self {
            journal,
            behaviour,
            stored: broadcast::channel(1024).0,
            latest: Arc::new(Mutex::new(latest)),
            storage: Arc::default(),
        }
    }

    pub fn storage(&self) -> StorageStatus {
        self.storage.lock().clone()
    }

    fn note_storage(&self, result: &Result<AppendOutcome, JournalError>) {
        let mut storage = self.storage.lock();
        match result {
            Ok(_) => {
                if storage.failing.take().is_some() {
                    storage.failing_since = None;
                    tracing::info!("the journal stores readings again");
                }
            }
            Err(e) => {
                storage.readings_refused += 1;
                if storage.failing.is_none() {
                    tracing::error!(error = %e, "the journal cannot store readings; refusing them until it can");
                    storage.failing_since = Some(crate::reading::now_millis());
                }
                storage.failing = Some(e.to_string());
            }
        }
    }

    pub fn behaviour(&self) -> &Behaviour {
        &self.behaviour
    }

    /// Every newly stored reading, in the order stored. A slow listener
    /// misses readings (they stay in the journal); it never slows ingestion.
    pub fn subscribe(&self) -> broadcast::Receiver<Reading> {
        self.stored.subscribe()
    }

    /// The latest stored reading of each device.
    pub fn latest(&self) -> BTreeMap<DeviceIdentity, Reading> {
        self.latest.lock().clone()
    }

    /// Stores an admitted reading; returns once it is durable (or refused).
    pub async fn store(&self, reading: Reading) -> Result<Stored, JournalError> {
        self.store_with(reading, None).await
    }

    /// Stores an admitted reading that came with a wire payload (MQTT), so
    /// the behaviour model also sees its size and shape.
    pub async fn store_with(
        &self,
        mut reading: Reading,
        wire: Option<WireMeta>,
    ) -> Result<Stored, JournalError> {
        let appended = self.journal.append(reading.clone()).await;
        self.note_storage(&appended);
        let watch = self.behaviour.watch();
        match appended? {
            AppendOutcome::Stored { seq, .. } => {
                watch.arrival(&reading, ArrivalOutcome::New, wire);
                reading.seq = seq;
                tracing::debug!(device = %reading.device, seq, kind = reading.measurement.kind(), "stored");
                self.latest
                    .lock()
                    .insert(reading.device.clone(), reading.clone());
                let _ = self.stored.send(reading);
                Ok(Stored::New { seq })
            }
            AppendOutcome::Duplicate { .. } => {
                watch.arrival(&reading, ArrivalOutcome::Duplicate, wire);
                Ok(Stored::Duplicate)
            }
            AppendOutcome::Replayed { journal_seq } => {
                self.behaviour.refuse(
                    Some(&reading.device.to_string()),
                    reading.transport,
                    RefusalReason::ReplayedSequence,
                    format!(
                        "sequence number {} was already used for a different reading (journal #{journal_seq})",
                        reading.seq
                    ),
                );
                Ok(Stored::Replayed)
            }
        }
    }
}
