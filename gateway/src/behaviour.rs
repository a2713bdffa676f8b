//! Node-behaviour events: every refusal the hub makes, with the device it
//! concerns, the transport and the reason. They are counted for the status
//! output and kept in the journal for the anomaly detector.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::reading::{Transport, UnixMillis, now_millis};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// The device is not registered to this hub's patient on chain.
    Unregistered,
    /// The device was registered but has been removed.
    Removed,
    /// Wrong secret, unknown device name, or a client id that is not the username.
    BadCredentials,
    /// Published or subscribed outside the device's own topics.
    WrongTopic,
    /// The payload could not be read (JSON, schema, unit, size).
    InvalidPayload,
    /// The values or the device time are outside the accepted bounds.
    InvalidReading,
    /// A sequence number already used by different content.
    ReplayedSequence,
    /// A BLE frame that does not parse.
    MalformedFrame,
    /// The MQTT connection broke the protocol (first packet not CONNECT, bad framing).
    ProtocolViolation,
}

impl RefusalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unregistered => "unregistered",
            Self::Removed => "removed",
            Self::BadCredentials => "bad_credentials",
            Self::WrongTopic => "wrong_topic",
            Self::InvalidPayload => "invalid_payload",
            Self::InvalidReading => "invalid_reading",
            Self::ReplayedSequence => "replayed_sequence",
            Self::MalformedFrame => "malformed_frame",
            Self::ProtocolViolation => "protocol_violation",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEvent {
    pub at: UnixMillis,
    /// The identity the device claimed (MQTT username, BLE address), if any.
    pub device: Option<String>,
    pub transport: Transport,
    pub reason: RefusalReason,
    /// The specific cause, for people.
    pub detail: String,
}

/// Counts refusals and hands each event to the journal without ever blocking
/// the path that refused: a flood of bad input must not slow good input.
#[derive(Debug, Clone)]
pub struct Behaviour {
    counts: Arc<Mutex<BTreeMap<(Transport, RefusalReason), u64>>>,
    dropped: Arc<Mutex<u64>>,
    sink: mpsc::Sender<NodeEvent>,
}

impl Behaviour {
    /// A recorder whose events go to `sink` (the journal writer), starting
    /// from counts persisted earlier.
    pub fn new(
        sink: mpsc::Sender<NodeEvent>,
        persisted: BTreeMap<(Transport, RefusalReason), u64>,
    ) -> Self {
        Self {
            counts: Arc::new(Mutex::new(persisted)),
            dropped: Arc::new(Mutex::new(0)),
            sink,
        }
    }

    pub fn refuse(
        &self,
        device: Option<&str>,
        transport: Transport,
        reason: RefusalReason,
        detail: impl Into<String>,
    ) {
        let event = NodeEvent {
            at: now_millis(),
            device: device.map(str::to_owned),
            transport,
            reason,
            detail: detail.into(),
        };
        tracing::warn!(
            device = event.device.as_deref().unwrap_or("-"),
            transport = ?transport,
            reason = reason.as_str(),
            detail = %event.detail,
            "refused"
        );
        *self
            .counts
            .lock()
            .expect("counts lock")
            .entry((transport, reason))
            .or_default() += 1;
        if self.sink.try_send(event).is_err() {
            *self.dropped.lock().expect("dropped lock") += 1;
        }
    }

    /// Refusal counts by (transport, reason).
    pub fn counts(&self) -> BTreeMap<(Transport, RefusalReason), u64> {
        self.counts.lock().expect("counts lock").clone()
    }

    /// Events counted but not journaled because the journal fell behind.
    pub fn dropped(&self) -> u64 {
        *self.dropped.lock().expect("dropped lock")
    }
}
