//! Sessions over BlueZ (bluer): one supervisor per adapter, one task per
//! device, all reporting on the hub's channel.
//!
//! - [`run`] opens the D-Bus session, waits for the adapter (signals, no
//!   polling), supervises it until it disappears, then waits for it again.
//! - [`adapter`] finds the devices to serve and starts/stops their tasks.
//! - [`device`] connects, subscribes, fetches stored glucose records, and
//!   reconnects with backoff.
//! - [`notifications`] turns frames into events.

mod adapter;
mod cgm_clock;
mod device;
mod notifications;

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::BleConfig;
use crate::counters::{BleCounters, Counter};
use crate::error::{BleError, Operation, SessionError};
use crate::event::{BleEvent, DisconnectReason};
use crate::identity::Identity;

/// Where the hub keeps its glucose cursor: the highest sequence number it
/// has durably stored for a device. After every (re)connect the session
/// asks the glucometer for records from `last + 1` (all records when
/// `None`). The hub's journal is the truth: records the session emitted but
/// the hub had not stored (still in flight, failed, or refused) are asked
/// for again and emitted again, so the hub must treat a record with the
/// same sequence number and base time as a duplicate.
pub trait SequenceCursor: Send + Sync + 'static {
    /// The last stored sequence number for this device, if any.
    fn last_sequence(&self, identity: &Identity) -> Option<u16>;
}

impl<F> SequenceCursor for F
where
    F: Fn(&Identity) -> Option<u16> + Send + Sync + 'static,
{
    fn last_sequence(&self, identity: &Identity) -> Option<u16> {
        self(identity)
    }
}

/// The hub's channel went away: nobody listens, so the sessions stop.
#[derive(Debug)]
pub(crate) struct EventsClosed;

/// What every task shares.
pub(crate) struct Ctx {
    pub(crate) config: BleConfig,
    pub(crate) cursor: Arc<dyn SequenceCursor>,
    pub(crate) events: mpsc::Sender<BleEvent>,
    pub(crate) counters: Arc<BleCounters>,
}

impl Ctx {
    /// Sends an event, waiting for room: the hub's pace bounds ours.
    pub(crate) async fn emit(&self, event: BleEvent) -> Result<(), EventsClosed> {
        self.events.send(event).await.map_err(|_| EventsClosed)
    }

    /// Counts and reports a BlueZ failure that is not part of a connect
    /// attempt.
    pub(crate) async fn bluetooth_error(
        &self,
        identity: Option<Identity>,
        error: SessionError,
    ) -> Result<(), EventsClosed> {
        tracing::warn!(?identity, %error, "BlueZ call failed");
        self.counters.bump(Counter::BluetoothErrors);
        self.emit(BleEvent::BluetoothError { identity, error })
            .await
    }
}

/// Why the supervisor stops a device task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    Shutdown,
    AdapterLost,
    DeviceRemoved,
}

impl From<StopReason> for DisconnectReason {
    fn from(r: StopReason) -> Self {
        match r {
            StopReason::Shutdown => DisconnectReason::Shutdown,
            StopReason::AdapterLost => DisconnectReason::AdapterLost,
            StopReason::DeviceRemoved => DisconnectReason::DeviceRemoved,
        }
    }
}

/// Runs the BLE side until `shutdown` is cancelled or the receiver of
/// `events` is dropped (both: `Ok`). Errors only for a refused
/// configuration or an unreachable/lost system bus; everything else —
/// adapters coming and going, devices failing, bad frames — is reported as
/// events and counted in `counters`, and the sessions carry on.
///
/// BlueZ is reached on the D-Bus system bus; like every libdbus client,
/// bluer takes its address from `DBUS_SYSTEM_BUS_ADDRESS` when set.
pub async fn run(
    config: BleConfig,
    cursor: Arc<dyn SequenceCursor>,
    events: mpsc::Sender<BleEvent>,
    counters: Arc<BleCounters>,
    shutdown: CancellationToken,
) -> Result<(), BleError> {
    config.validate()?;
    let session = bluer::Session::new()
        .await
        .map_err(|e| BleError::Bus(SessionError::bluetooth(Operation::OpenSession, e)))?;
    // Subscribed before the first look at the adapters, so an adapter that
    // appears in between is not missed.
    let mut adapter_events = session
        .events()
        .await
        .map_err(|e| BleError::Bus(SessionError::bluetooth(Operation::Adapters, e)))?
        .boxed();
    let ctx = Arc::new(Ctx {
        config,
        cursor,
        events,
        counters,
    });
    let mut lost_before = false;
    loop {
        let name =
            match adapter::wait_for_adapter(&session, &ctx, &mut adapter_events, &shutdown).await {
                adapter::Wait::Ready(name) => name,
                adapter::Wait::Stop => return Ok(()),
                adapter::Wait::BusLost => return Err(BleError::BusLost),
            };
        let ready = if lost_before {
            BleEvent::AdapterReturned {
                adapter: name.clone(),
            }
        } else {
            BleEvent::AdapterReady {
                adapter: name.clone(),
            }
        };
        if ctx.emit(ready).await.is_err() {
            return Ok(());
        }
        tracing::info!(adapter = %name, "adapter ready");
        match adapter::supervise(&session, &ctx, &name, &mut adapter_events, &shutdown).await {
            adapter::End::Stop => return Ok(()),
            adapter::End::BusLost => return Err(BleError::BusLost),
            adapter::End::Lost => {
                tracing::warn!(adapter = %name, "adapter lost");
                ctx.counters.bump(Counter::AdapterLosses);
                lost_before = true;
                if ctx
                    .emit(BleEvent::AdapterLost { adapter: name })
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
        }
    }
}
