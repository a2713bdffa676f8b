//! What the sessions tell the hub, in order per device, on one channel.

use std::time::{Duration, SystemTime};

use crate::error::SessionError;
use crate::gatt::{Characteristic, Measurement};
use crate::identity::{BdAddr, Identity, SkipReason};
use crate::profiles::ParseError;
use crate::profiles::racp::{RacpRequest, RacpResponse};

/// One event from the BLE side. Every device event carries the device's
/// bonded identity — the key for admission — never a rotating address.
#[derive(Debug, Clone, PartialEq)]
pub enum BleEvent {
    /// The adapter is there and sessions are starting (first time).
    AdapterReady {
        /// Adapter name.
        adapter: String,
    },
    /// The adapter disappeared; every session on it stopped (each with a
    /// `Disconnected { reason: AdapterLost }` if it was connected).
    AdapterLost {
        /// Adapter name.
        adapter: String,
    },
    /// The adapter came back after [`BleEvent::AdapterLost`]; sessions
    /// restart.
    AdapterReturned {
        /// Adapter name.
        adapter: String,
    },
    /// A device BlueZ knows is not served: it has no stable identity.
    DeviceSkipped {
        /// Its current (unstable) address.
        address: BdAddr,
        /// Why.
        reason: SkipReason,
    },
    /// A connect attempt starts (1-based, since the last stable connection).
    Connecting {
        /// The device.
        identity: Identity,
        /// Attempt number.
        attempt: u32,
    },
    /// The attempt failed; a [`BleEvent::RetryScheduled`] follows.
    ConnectFailed {
        /// The device.
        identity: Identity,
        /// Attempt number.
        attempt: u32,
        /// Why.
        error: SessionError,
    },
    /// Connected (services not yet resolved).
    Connected {
        /// The device.
        identity: Identity,
    },
    /// The adapter hears the connected device at this strength (at most
    /// one a minute per session; the hub's behaviour model learns it).
    SignalStrength {
        /// The device.
        identity: Identity,
        /// Received signal strength, dBm.
        dbm: i16,
    },
    /// Notifications/indications are on for these characteristics.
    Subscribed {
        /// The device.
        identity: Identity,
        /// What was subscribed.
        characteristics: Vec<Characteristic>,
    },
    /// The connection ended.
    Disconnected {
        /// The device.
        identity: Identity,
        /// Why.
        reason: DisconnectReason,
    },
    /// The next connect attempt waits this long (or until the device
    /// connects on its own).
    RetryScheduled {
        /// The device.
        identity: Identity,
        /// The number the next attempt will have (1 again after a stable
        /// connection).
        next_attempt: u32,
        /// The jittered backoff delay.
        delay: Duration,
    },
    /// A CGM's session characteristics, read at connect (each `None` when
    /// the CGM does not offer it or it did not parse).
    CgmSession {
        /// The device.
        identity: Identity,
        /// What was read.
        session: CgmSession,
    },
    /// A reading.
    Measurement {
        /// The device.
        identity: Identity,
        /// Hub clock when the notification arrived.
        received_at: SystemTime,
        /// For a record that carries only a relative time (a CGM record's
        /// minutes since its session started): when it was measured, on
        /// the hub's clock, estimated from the session's notifications.
        /// `None` for records that carry their own time or none.
        measured_at: Option<SystemTime>,
        /// The parsed reading, units as sent.
        measurement: Measurement,
    },
    /// A frame failed to parse; the session goes on.
    ParseError {
        /// The device.
        identity: Identity,
        /// Which characteristic sent it.
        characteristic: Characteristic,
        /// Hub clock when it arrived.
        received_at: SystemTime,
        /// Why it was refused.
        error: ParseError,
        /// The frame as received, for the node-behaviour record.
        frame: Vec<u8>,
    },
    /// A glucose record this session had already emitted was dropped.
    DuplicateDropped {
        /// The device.
        identity: Identity,
        /// Its sequence number.
        sequence_number: u16,
    },
    /// The glucometer was asked for its stored records.
    RacpRequested {
        /// The device.
        identity: Identity,
        /// The request written.
        request: RacpRequest,
    },
    /// The glucometer's final RACP indication.
    RacpCompleted {
        /// The device.
        identity: Identity,
        /// Its answer.
        response: RacpResponse,
    },
    /// The RACP request failed (write refused, or no answer in time).
    RacpFailed {
        /// The device.
        identity: Identity,
        /// Why.
        error: SessionError,
    },
    /// A BlueZ call outside a connect attempt failed.
    BluetoothError {
        /// The device concerned, if one.
        identity: Option<Identity>,
        /// The error.
        error: SessionError,
    },
}

impl BleEvent {
    /// The device an event is about, if any.
    pub fn identity(&self) -> Option<&Identity> {
        use BleEvent::*;
        match self {
            AdapterReady { .. }
            | AdapterLost { .. }
            | AdapterReturned { .. }
            | DeviceSkipped { .. } => None,
            BluetoothError { identity, .. } => identity.as_ref(),
            Connecting { identity, .. }
            | ConnectFailed { identity, .. }
            | Connected { identity }
            | SignalStrength { identity, .. }
            | Subscribed { identity, .. }
            | CgmSession { identity, .. }
            | Disconnected { identity, .. }
            | RetryScheduled { identity, .. }
            | Measurement { identity, .. }
            | ParseError { identity, .. }
            | DuplicateDropped { identity, .. }
            | RacpRequested { identity, .. }
            | RacpCompleted { identity, .. }
            | RacpFailed { identity, .. } => Some(identity),
        }
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// BlueZ reported the link down (out of range, device switched off,
    /// device ended the connection).
    LinkLost,
    /// The device was removed from BlueZ (unpaired).
    DeviceRemoved,
    /// The characteristics went away under us (service change).
    ServicesGone,
    /// The adapter disappeared.
    AdapterLost,
    /// The hub is shutting down.
    Shutdown,
    /// Connected, but resolving services or subscribing failed; the session
    /// disconnected and will retry.
    SetupFailed(SessionError),
}

/// A CGM's session as it reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CgmSession {
    /// CGM Session Start Time.
    pub start: Option<crate::profiles::cgm_session::CgmSessionStart>,
    /// CGM Session Run Time, in hours.
    pub run_time_hours: Option<u16>,
    /// CGM Status.
    pub status: Option<crate::profiles::cgm_status::CgmStatus>,
}
