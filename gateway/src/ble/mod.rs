//! The hub's side of Bluetooth LE: runs the glyco-ble sessions over BlueZ,
//! turns each parsed measurement into readings, admits them by the device's
//! bonded identity address, and stores them through the same pipeline as
//! MQTT. A glucometer is asked for its stored records after the last
//! sequence number the journal holds, so nothing it kept while out of range
//! is missed and nothing is stored twice.

pub mod convert;
mod refused;

use std::collections::BTreeSet;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, SystemTime};

use glyco_ble::{BdAddr, BleCounters, BleEvent, Identity};
use glyco_contracts::DeviceIdentity;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::admission::{Admission, Decision};
use crate::behaviour::RefusalReason;
use crate::journal::Journal;
use crate::pipeline::{Pipeline, Stored};
use crate::reading::{Transport, UnixMillis, now_millis};
pub use convert::{DeviceClock, Unusable};
use refused::{RefusedRecords, refused_records};

/// How long to wait before trying BlueZ again when the system bus or
/// bluetoothd is not there (a hub may start before bluetoothd does).
const BUS_RETRY: Duration = Duration::from_secs(30);

/// What `glyco-hub status` shows about BLE; shared with the event loop.
#[derive(Debug, Clone, Default)]
pub struct BleStatus {
    inner: Arc<Mutex<StatusInner>>,
    counters: Arc<BleCounters>,
}

#[derive(Debug, Default)]
struct StatusInner {
    state: String,
    connected: BTreeSet<BdAddr>,
    /// Heart-rate frames sent while the strap was off the skin: a normal
    /// state (a strap on the table notifies every second), so counted
    /// here and not as refusals, which would flood the event log.
    without_contact: u64,
}

impl BleStatus {
    fn set_state(&self, state: impl Into<String>) {
        self.inner.lock().state = state.into();
    }

    /// Nothing is connected any more (the adapter or BlueZ went away).
    fn clear_connected(&self) {
        self.inner.lock().connected.clear();
    }

    fn count_without_contact(&self) {
        self.inner.lock().without_contact += 1;
    }

    fn set_connected(&self, address: BdAddr, connected: bool) {
        let mut inner = self.inner.lock();
        if connected {
            inner.connected.insert(address);
        } else {
            inner.connected.remove(&address);
        }
    }

    /// Identities of the devices connected now.
    pub fn connected(&self) -> Vec<DeviceIdentity> {
        let inner = self.inner.lock();
        inner
            .connected
            .iter()
            .map(|a| DeviceIdentity::Ble(a.0))
            .collect()
    }

    /// One line: adapter state, connections, and what the sessions counted.
    pub fn summary(&self) -> String {
        let inner = self.inner.lock();
        let c = self.counters.snapshot();
        format!(
            "{}; {} connected; {} measurements, {} malformed frames, {} repeats dropped, {} without skin contact, {} RACP requests, {} connect failures",
            if inner.state.is_empty() {
                "starting"
            } else {
                &inner.state
            },
            inner.connected.len(),
            c.measurements,
            c.parse_errors,
            c.duplicates_dropped,
            inner.without_contact,
            c.racp_requests,
            c.connect_failures,
        )
    }
}

/// Everything the BLE side needs from the hub.
pub struct BleIngest {
    pub config: glyco_ble::BleConfig,
    pub clock: DeviceClock,
    pub admission: Admission,
    pub pipeline: Pipeline,
    pub journal: Journal,
    pub status: BleStatus,
}

fn millis(time: SystemTime) -> UnixMillis {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as UnixMillis)
        .unwrap_or_default()
}

fn identity_of(identity: &Identity) -> DeviceIdentity {
    DeviceIdentity::Ble(identity.address.0)
}

impl BleIngest {
    /// Runs until shutdown; BlueZ going away is waited out, not fatal.
    pub async fn run(self, shutdown: CancellationToken) {
        let journal = self.journal.clone();
        // Where a glucometer's RACP fetch starts: after the highest record
        // number stored for it. A meter's numbers are 16 bits.
        let cursor = Arc::new(move |identity: &Identity| -> Option<u16> {
            match journal.last_device_seq(&identity_of(identity)) {
                Ok(seq) => seq.and_then(|s| u16::try_from(s).ok()),
                Err(e) => {
                    tracing::error!(error = %e, device = %identity, "cannot read the record cursor; fetching all records");
                    None
                }
            }
        });
        let mut refused = refused_records();
        loop {
            let (events_tx, mut events) = mpsc::channel(256);
            let session = tokio::spawn(glyco_ble::run(
                self.config.clone(),
                cursor.clone(),
                events_tx,
                self.status.counters.clone(),
                shutdown.clone(),
            ));
            // The channel closes when the sessions stop, whatever the reason.
            while let Some(event) = events.recv().await {
                self.handle(event, &mut refused).await;
            }
            let outcome = session.await;
            self.status.clear_connected();
            if shutdown.is_cancelled() {
                return;
            }
            let why = match outcome {
                Ok(Ok(())) => "BLE sessions stopped".to_owned(),
                Ok(Err(e)) => e.to_string(),
                Err(e) => format!("BLE task failed: {e}"),
            };
            tracing::warn!(error = %why, retry_in = ?BUS_RETRY, "BLE unavailable");
            self.status.set_state(format!(
                "unavailable ({why}); retrying every {}s",
                BUS_RETRY.as_secs()
            ));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(BUS_RETRY) => {}
            }
        }
    }

    async fn handle(&self, event: BleEvent, refused: &mut RefusedRecords) {
        match event {
            BleEvent::AdapterReady { adapter } | BleEvent::AdapterReturned { adapter } => {
                tracing::info!(%adapter, "Bluetooth adapter ready");
                self.status.set_state(format!("adapter {adapter} ready"));
            }
            BleEvent::AdapterLost { adapter } => {
                tracing::warn!(%adapter, "Bluetooth adapter lost; waiting for it to return");
                self.status
                    .set_state(format!("adapter {adapter} lost; waiting for it"));
                self.status.clear_connected();
            }
            BleEvent::Connected { identity } => {
                tracing::info!(device = %identity, "BLE device connected");
                self.status.set_connected(identity.address, true);
                // A BLE link has no source address: sessions count, not places.
                let device = identity_of(&identity).to_string();
                self.pipeline
                    .behaviour()
                    .watch()
                    .session_start(&device, None, None);
            }
            BleEvent::SignalStrength { identity, dbm } => {
                let device = identity_of(&identity).to_string();
                self.pipeline.behaviour().watch().rssi(&device, dbm);
            }
            BleEvent::Disconnected { identity, reason } => {
                tracing::info!(device = %identity, ?reason, "BLE device disconnected");
                self.status.set_connected(identity.address, false);
                let device = identity_of(&identity).to_string();
                self.pipeline.behaviour().watch().session_end(&device);
            }
            BleEvent::Measurement {
                identity,
                received_at,
                measured_at,
                measurement,
            } => {
                self.measurement(&identity, received_at, measured_at, &measurement, refused)
                    .await
            }
            BleEvent::ParseError {
                identity,
                characteristic,
                error,
                frame,
                ..
            } => {
                self.pipeline.behaviour().refuse(
                    Some(&identity_of(&identity).to_string()),
                    Transport::Ble,
                    RefusalReason::MalformedFrame,
                    format!("{characteristic:?} frame {}: {error}", hex::encode(&frame)),
                );
            }
            BleEvent::DuplicateDropped {
                identity,
                sequence_number,
            } => {
                tracing::debug!(device = %identity, sequence_number, "repeated glucose record dropped");
            }
            BleEvent::RacpRequested { identity, request } => {
                tracing::info!(device = %identity, ?request, "asking the meter for its stored records");
            }
            BleEvent::RacpCompleted { identity, response } => {
                tracing::info!(device = %identity, ?response, "stored records fetched");
            }
            BleEvent::RacpFailed { identity, error } => {
                tracing::warn!(device = %identity, error = %error, "stored-record fetch failed; retried on the next connection");
            }
            BleEvent::ConnectFailed {
                identity,
                attempt,
                error,
            } => {
                tracing::debug!(device = %identity, attempt, error = %error, "BLE connect failed");
            }
            BleEvent::DeviceSkipped { address, reason } => {
                tracing::info!(%address, ?reason, "BLE device skipped: no stable identity");
            }
            BleEvent::BluetoothError { identity, error } => {
                tracing::warn!(device = ?identity, error = %error, "BlueZ call failed");
            }
            BleEvent::CgmSession { identity, session } => {
                let stopped = session.status.is_some_and(|s| s.status.session_stopped());
                tracing::info!(
                    device = %identity,
                    start = ?session.start.map(|s| s.local),
                    utc_offset_minutes = ?session.start.and_then(|s| s.utc_offset_minutes()),
                    run_time_hours = ?session.run_time_hours,
                    stopped,
                    "CGM session read"
                );
                if stopped {
                    tracing::warn!(device = %identity, "the CGM reports its session stopped: no readings until a new sensor session");
                }
            }
            BleEvent::Connecting { .. }
            | BleEvent::Subscribed { .. }
            | BleEvent::RetryScheduled { .. } => {
                tracing::trace!(?event, "BLE session");
            }
        }
    }

    async fn measurement(
        &self,
        identity: &Identity,
        received_at: SystemTime,
        measured_at: Option<SystemTime>,
        measurement: &glyco_ble::Measurement,
        refused: &mut RefusedRecords,
    ) {
        let device = identity_of(identity);
        // Named as admission and the status output name it (`ble:…`).
        let name = device.to_string();
        let record = match measurement {
            glyco_ble::Measurement::Glucose(g) => {
                Some((identity.address, g.sequence_number, g.base_time))
            }
            glyco_ble::Measurement::GlucoseContext(c) => {
                tracing::info!(device = %name, seq = c.sequence_number, meal = ?c.meal, carbohydrate = ?c.carbohydrate, "glucose record context");
                None
            }
            _ => None,
        };
        if let Some(key) = &record
            && refused.contains(key)
        {
            tracing::debug!(device = %name, seq = key.1, "a record refused before, sent again; not counted again");
            return;
        }
        let behaviour = self.pipeline.behaviour();
        let readings = match convert::readings(
            &device,
            millis(received_at),
            measured_at.map(millis),
            self.clock,
            measurement,
        ) {
            Ok(readings) => readings,
            Err(Unusable::NoSkinContact) => {
                tracing::debug!(device = %name, "heart-rate frame without skin contact");
                self.status.count_without_contact();
                return;
            }
            Err(unusable) => {
                behaviour.refuse(
                    Some(&name),
                    Transport::Ble,
                    RefusalReason::InvalidReading,
                    unusable.to_string(),
                );
                if let Some(key) = record {
                    refused.insert(key);
                }
                return;
            }
        };
        for (index, reading) in readings.into_iter().enumerate() {
            let class = crate::nodewatch::class_of(&reading.measurement);
            match self.admission.reading(reading, now_millis()) {
                Decision::Refuse { reason, detail, .. } => {
                    if reason == RefusalReason::Unregistered {
                        behaviour.watch().lookalike(class, None);
                    }
                    behaviour.refuse(Some(&name), Transport::Ble, reason, detail);
                    // Registration can change; the content cannot.
                    if !matches!(reason, RefusalReason::Unregistered | RefusalReason::Removed)
                        && let Some(key) = record
                    {
                        refused.insert(key);
                    }
                }
                Decision::Admit(reading) => {
                    let seq = reading.seq;
                    match self.pipeline.store(reading).await {
                        // A cuff that sends its stored measurements again:
                        // the pulse that came with a stored pressure
                        // reading was stored with it.
                        Ok(Stored::Duplicate) if index == 0 => {
                            tracing::debug!(device = %name, "a measurement sent again; stored before");
                            break;
                        }
                        Ok(_) => {}
                        // A glucose record comes back with the RACP fetch
                        // of the next connection (the cursor is the
                        // journal's); a live value of other profiles is
                        // lost, and said so.
                        Err(e) => {
                            tracing::error!(error = %e, device = %name, seq, "BLE reading not stored");
                        }
                    }
                }
            }
        }
    }
}
