//! Where admitted readings go: the journal first (durably), then to whoever
//! listens for stored readings (status, the anomaly detector). Replays found
//! by the journal become node-behaviour events here, whatever the transport.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

use glyco_contracts::DeviceIdentity;
use tokio::sync::broadcast;

use crate::behaviour::{Behaviour, RefusalReason};
use crate::journal::{AppendOutcome, JournalError, JournalWriter};
use crate::reading::Reading;

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

#[derive(Debug, Clone)]
pub struct Pipeline {
    journal: JournalWriter,
    behaviour: Behaviour,
    stored: broadcast::Sender<Reading>,
    latest: Arc<Mutex<BTreeMap<DeviceIdentity, Reading>>>,
}

impl Pipeline {
    pub fn new(journal: JournalWriter, behaviour: Behaviour, latest: Vec<Reading>) -> Self {
        let latest = latest.into_iter().map(|r| (r.device.clone(), r)).collect();
        Self {
            journal,
            behaviour,
            stored: broadcast::channel(1024).0,
            latest: Arc::new(Mutex::new(latest)),
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
    pub async fn store(&self, mut reading: Reading) -> Result<Stored, JournalError> {
        match self.journal.append(reading.clone()).await? {
            AppendOutcome::Stored { seq, .. } => {
                reading.seq = seq;
                tracing::debug!(device = %reading.device, seq, kind = reading.measurement.kind(), "stored");
                self.latest
                    .lock()
                    .insert(reading.device.clone(), reading.clone());
                let _ = self.stored.send(reading);
                Ok(Stored::New { seq })
            }
            AppendOutcome::Duplicate { .. } => Ok(Stored::Duplicate),
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
