//! The inbox's durable store: per recipient an append-only log of the
//! alerts kept for them, and one log of acknowledgements. Each record is a
//! u32 big-endian length and its CBOR, written and fsynced before the hub
//! or physician is answered; a torn last record (a crash mid-write) is cut
//! off when the log is opened.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use glyco_contracts::Address;
use glyco_seal::alerts::{self, AlertAck, AlertEnvelope, NumberedAck, Signed};
use serde::{Deserialize, Serialize};

/// Alerts kept per recipient; beyond, deliveries are refused ("full") and
/// the hub keeps them in its outbox.
pub const MAX_ALERTS_PER_RECIPIENT: usize = 10_000;
/// Acknowledgements kept in memory for polls (all stay in the log).
pub const MAX_ACKS: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum InboxStoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("encoding: {0}")]
    Encode(String),
}

/// One alert as kept, numbered per recipient from 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAlert {
    pub seq: u64,
    pub received_at_ms: i64,
    pub envelope: Signed<AlertEnvelope>,
}

#[derive(Default)]
struct Recipient {
    alerts: Vec<StoredAlert>,
    ids: HashSet<[u8; 16]>,
}

pub struct InboxStore {
    dir: PathBuf,
    recipients: HashMap<Address, Recipient>,
    acks: Vec<NumberedAck>,
    acked: HashSet<([u8; 16], Address)>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InboxStoreError + '_ {
    move |source| InboxStoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads every whole record of a log; cuts a torn tail.
fn read_log<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, InboxStoreError> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut file) => {
            file.read_to_end(&mut bytes).map_err(io(path))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path)(e)),
    }
    let mut records = Vec::new();
    let mut at = 0;
    while at + 4 <= bytes.len() {
        let length =
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let Some(body) = bytes.get(at + 4..at + 4 + length) else {
            break;
        };
        match alerts::decode(body) {
            Ok(record) => records.push(record),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "an inbox record does not decode; the log is cut there");
                break;
            }
        }
        at += 4 + length;
    }
    if at < bytes.len() {
        tracing::warn!(path = %path.display(), kept = at, length = bytes.len(), "a torn inbox record is cut off");
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io(path))?;
        file.set_len(at as u64).map_err(io(path))?;
        file.sync_all().map_err(io(path))?;
    }
    Ok(records)
}

fn append<T: Serialize>(path: &Path, record: &T) -> Result<(), InboxStoreError> {
    let body = alerts::encode(record).map_err(|e| InboxStoreError::Encode(e.to_string()))?;
    let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&body);
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io(path))?;
    file.write_all(&bytes).map_err(io(path))?;
    file.sync_data().map_err(io(path))
}

/// What keeping an alert did.
#[derive(Debug, Clone, PartialEq)]
pub enum Kept {
    New(Box<StoredAlert>),
    Already,
    Full,
}

impl InboxStore {
    pub fn open(dir: &Path) -> Result<Self, InboxStoreError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut store = Self {
            dir: dir.to_owned(),
            recipients: HashMap::new(),
            acks: Vec::new(),
            acked: HashSet::new(),
        };
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(address) = name
                .strip_suffix(".alerts")
                .and_then(|a| a.parse::<Address>().ok())
            else {
                continue;
            };
            let recipient = store.recipients.entry(address).or_default();
            for alert in read_log::<StoredAlert>(&path)? {
                recipient.ids.insert(alert.envelope.body.id);
                recipient.alerts.push(alert);
            }
        }
        for ack in read_log::<NumberedAck>(&store.acks_path())? {
            store.acked.insert((ack.ack.body.alert, ack.ack.body.by));
            store.acks.push(ack);
        }
        Ok(store)
    }

    fn acks_path(&self) -> PathBuf {
        self.dir.join("acks.log")
    }

    fn log_path(&self, recipient: Address) -> PathBuf {
        self.dir.join(format!("{recipient}.alerts"))
    }

    /// Keeps an alert for its recipient (durably) unless it is there.
    pub fn keep(
        &mut self,
        envelope: Signed<AlertEnvelope>,
        now_ms: i64,
    ) -> Result<Kept, InboxStoreError> {
        let recipient = envelope.body.recipient;
        let path = self.log_path(recipient);
        let entry = self.recipients.entry(recipient).or_default();
        if entry.ids.contains(&envelope.body.id) {
            return Ok(Kept::Already);
        }
        if entry.alerts.len() >= MAX_ALERTS_PER_RECIPIENT {
            return Ok(Kept::Full);
        }
        let stored = StoredAlert {
            seq: entry.alerts.last().map_or(1, |a| a.seq + 1),
            received_at_ms: now_ms,
            envelope,
        };
        append(&path, &stored)?;
        entry.ids.insert(stored.envelope.body.id);
        entry.alerts.push(stored.clone());
        Ok(Kept::New(Box::new(stored)))
    }

    /// The recipient's alerts numbered after `after`.
    pub fn alerts_after(&self, recipient: Address, after: u64) -> Vec<StoredAlert> {
        self.recipients.get(&recipient).map_or_else(Vec::new, |r| {
            let start = r.alerts.partition_point(|a| a.seq <= after);
            r.alerts[start..].to_vec()
        })
    }

    /// The alert `id` of `recipient`, if kept.
    pub fn find(&self, recipient: Address, id: &[u8; 16]) -> Option<&StoredAlert> {
        let r = self.recipients.get(&recipient)?;
        if !r.ids.contains(id) {
            return None;
        }
        r.alerts.iter().rev().find(|a| &a.envelope.body.id == id)
    }

    /// Records an acknowledgement (durably); false if it was recorded before.
    pub fn record_ack(&mut self, ack: Signed<AlertAck>) -> Result<bool, InboxStoreError> {
        let key = (ack.body.alert, ack.body.by);
        if self.acked.contains(&key) {
            return Ok(false);
        }
        let numbered = NumberedAck {
            no: self.acks.last().map_or(1, |a| a.no + 1),
            ack,
        };
        append(&self.acks_path(), &numbered)?;
        self.acked.insert(key);
        self.acks.push(numbered);
        if self.acks.len() > MAX_ACKS {
            self.acks.drain(..MAX_ACKS / 10);
        }
        Ok(true)
    }

    /// Acknowledgements of `hub`'s alerts numbered after `after`.
    pub fn acks_for(&self, hub: Address, after: u64, limit: usize) -> Vec<NumberedAck> {
        let start = self.acks.partition_point(|a| a.no <= after);
        self.acks[start..]
            .iter()
            .filter(|a| a.ack.body.hub == hub)
            .take(limit)
            .cloned()
            .collect()
    }
}
