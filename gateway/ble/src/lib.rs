//! Bluetooth LE health devices for the Glyco hub.
//!
//! Two layers, usable apart:
//!
//! * **Parsers** ([`profiles`], [`ieee11073`]): pure functions from the
//!   bytes of a Bluetooth SIG health characteristic to a typed reading —
//!   Glucose Measurement 0x2A18 (+ Record Access Control Point 0x2A52), CGM
//!   Measurement 0x2AA7, Blood Pressure 0x2A35, Heart Rate 0x2A37, Weight
//!   0x2A9D, Temperature 0x2A1C, PLX Spot-check 0x2A5E — keeping the units
//!   the device sent and IEEE-11073 special values (NaN, NRes, ±INF) as
//!   their own variants. Bad frames are a typed [`ParseError`], never a
//!   panic. [`parse_measurement`] dispatches by [`Characteristic`].
//! * **Sessions** ([`run`]): over BlueZ via bluer, serve every bonded device
//!   (or an allow-list), subscribe to the supported characteristics, fetch
//!   a glucometer's stored records with the RACP from the hub's cursor,
//!   reconnect with jittered exponential backoff ([`BackoffPolicy`]), follow
//!   the adapter as it disappears and returns, and report everything as
//!   [`BleEvent`]s on a tokio channel, each carrying the device's bonded
//!   [`Identity`] (see [`identity`] for the address policy).
//!
//! ```no_run
//! use std::sync::Arc;
//! use glyco_ble::{BleConfig, BleCounters, BleEvent, Identity};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo() -> Result<(), glyco_ble::BleError> {
//! let (tx, mut rx) = tokio::sync::mpsc::channel(256);
//! // The hub's journal answers "last stored glucose sequence number".
//! let cursor = Arc::new(|_id: &Identity| -> Option<u16> { None });
//! let counters = Arc::new(BleCounters::default());
//! let shutdown = CancellationToken::new();
//! tokio::spawn(glyco_ble::run(BleConfig::default(), cursor, tx, counters, shutdown.clone()));
//! while let Some(event) = rx.recv().await {
//!     if let BleEvent::Measurement { identity, measurement, .. } = event {
//!         println!("{identity}: {measurement:?}");
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! The crate knows nothing of the gateway's types; the gateway maps
//! [`Measurement`]s to its readings and units.
//!
//! With the `testing` feature, `glyco_ble::testing` provides a mock BlueZ on a
//! private dbus-daemon for tests (here and in the gateway's).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backoff;
mod config;
mod counters;
mod crc;
mod dedupe;
mod error;
mod event;
mod gatt;
pub mod identity;
pub mod ieee11073;
pub mod pairing;
pub mod profiles;
mod session;

#[cfg(feature = "testing")]
pub mod testing;

pub use backoff::{Backoff, BackoffPolicy};
pub use config::{BleConfig, ConfigError, RescanNow};
pub use counters::{BleCounters, CountersSnapshot};
pub use crc::crc16_mcrf4xx;
pub use dedupe::RecordWindow;
pub use error::{BleError, Operation, SessionError};
pub use event::{BleEvent, DisconnectReason};
pub use gatt::{
    Characteristic, GLUCOSE_SERVICE, HEALTH_SERVICES, Measurement, parse_measurement, sig_uuid,
};
pub use identity::{BdAddr, Identity, IdentityKind, SkipReason};
pub use profiles::{ParseError, ParseErrorKind, Profile};
pub use session::{SequenceCursor, run};
/// UUIDs as used in [`BleEvent`] and [`Characteristic::uuid`].
pub use uuid::Uuid;
