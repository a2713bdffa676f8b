//! Adapter supervision: find the adapter, serve its devices, notice when it
//! goes away.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bluer::{Adapter, AdapterEvent, AddressType, Session, SessionEvent};
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep, timeout};
use tokio_util::sync::CancellationToken;

use super::device::{self, TaskEnd};
use super::{Ctx, EventsClosed, StopReason};
use crate::Uuid;
use crate::config::BleConfig;
use crate::counters::Counter;
use crate::error::{Operation, SessionError};
use crate::event::BleEvent;
use crate::gatt::HEALTH_SERVICES;
use crate::identity::{BdAddr, SkipReason, classify};

/// BlueZ's adapter add/remove signals.
pub(crate) type AdapterEvents = BoxStream<'static, SessionEvent>;

/// How long a device task gets to report its disconnection when stopped.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// BlueZ removes an adapter's device objects just before the adapter
/// itself. A device removal is acted on after this pause, so that when the
/// whole adapter is going its sessions end as "adapter lost", not "device
/// removed". (Shorter than the device task's own settle pause.)
const REMOVAL_GRACE: Duration = Duration::from_millis(300);

pub(crate) enum Wait {
    Ready(String),
    Stop,
    BusLost,
}

pub(crate) enum End {
    Stop,
    Lost,
    BusLost,
}

/// The configured adapter, or BlueZ's default choice: "hci0" if present,
/// else the first by name.
async fn pick(session: &Session, config: &BleConfig) -> Result<Option<String>, SessionError> {
    let mut names = session
        .adapter_names()
        .await
        .map_err(|e| SessionError::bluetooth(Operation::Adapters, e))?;
    Ok(match &config.adapter {
        Some(want) => names.into_iter().find(|n| n == want),
        None => {
            names.sort();
            match names.iter().position(|n| n == "hci0") {
                Some(i) => Some(names.swap_remove(i)),
                None => names.into_iter().next(),
            }
        }
    })
}

/// Waits, without polling, until the adapter exists. The rescan timer is
/// only a safety net for a signal missed while BlueZ itself restarts.
pub(crate) async fn wait_for_adapter(
    session: &Session,
    ctx: &Ctx,
    events: &mut AdapterEvents,
    shutdown: &CancellationToken,
) -> Wait {
    loop {
        match pick(session, &ctx.config).await {
            Ok(Some(name)) => return Wait::Ready(name),
            Ok(None) => {
                tracing::info!(adapter = ?ctx.config.adapter, "waiting for the Bluetooth adapter")
            }
            Err(error) => {
                if ctx.bluetooth_error(None, error).await.is_err() {
                    return Wait::Stop;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Wait::Stop,
            _ = ctx.events.closed() => return Wait::Stop,
            event = events.next() => {
                if event.is_none() {
                    return Wait::BusLost;
                }
            }
            _ = sleep(ctx.config.rescan_interval) => {}
        }
    }
}

struct Task {
    stop: watch::Sender<Option<StopReason>>,
    handle: JoinHandle<TaskEnd>,
}

/// Why a device is left alone, as far as it can change.
enum Skipped {
    /// Its address says it cannot be followed; that never changes.
    ForGood,
    /// It offered no health service while BlueZ listed these services.
    /// BlueZ fills the list in as it resolves services (and a device's
    /// firmware can change it), so a different list is looked at again.
    Offered(BTreeSet<Uuid>),
}

struct Supervisor<'a> {
    ctx: &'a Arc<Ctx>,
    adapter: Adapter,
    tasks: HashMap<BdAddr, Task>,
    /// Devices not served, already reported (once, not per scan); cleared
    /// when BlueZ removes the device, or when the services it lists change.
    skipped: HashMap<BdAddr, Skipped>,
    /// Devices BlueZ removed, to be stopped when their grace ends.
    removed: HashMap<BdAddr, Instant>,
}

/// Serves the adapter's devices until the adapter goes, the bus goes, or
/// the hub stops us.
pub(crate) async fn supervise(
    session: &Session,
    ctx: &Arc<Ctx>,
    name: &str,
    events: &mut AdapterEvents,
    shutdown: &CancellationToken,
) -> End {
    let adapter = match session.adapter(name) {
        Ok(a) => a,
        Err(e) => {
            let _ = ctx
                .bluetooth_error(None, SessionError::bluetooth(Operation::Adapters, e))
                .await;
            return End::Lost;
        }
    };
    // Device signals first, then the listing: a device added in between is
    // seen by one or the other (twice is harmless).
    let mut device_events = match adapter.events().await {
        Ok(s) => s.boxed(),
        Err(e) => {
            let _ = ctx
                .bluetooth_error(None, SessionError::bluetooth(Operation::Devices, e))
                .await;
            return End::Lost;
        }
    };
    let mut sup = Supervisor {
        ctx,
        adapter,
        tasks: HashMap::new(),
        skipped: HashMap::new(),
        removed: HashMap::new(),
    };
    let every = ctx.config.rescan_interval;
    let mut rescan = interval_at(Instant::now(), every);
    rescan.set_missed_tick_behavior(MissedTickBehavior::Delay);

    let (end, reason) = loop {
        let next_removal = sup.removed.values().min().copied();
        let removal_due = async {
            match next_removal {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break (End::Stop, StopReason::Shutdown),
            _ = ctx.events.closed() => break (End::Stop, StopReason::Shutdown),
            event = events.next() => match event {
                Some(SessionEvent::AdapterRemoved(n)) if n == name => break (End::Lost, StopReason::AdapterLost),
                // Other adapters, and the announcement of ours (stale, from
                // before we started, or BlueZ re-announcing it).
                Some(_) => {}
                None => break (End::BusLost, StopReason::Shutdown),
            },
            event = device_events.next() => {
                let step = match event {
                    Some(AdapterEvent::DeviceAdded(address)) => {
                        // Back before its grace ended: the running task
                        // (same object path) carries on.
                        sup.removed.remove(&BdAddr(address.0));
                        sup.consider(BdAddr(address.0)).await
                    }
                    Some(AdapterEvent::DeviceRemoved(address)) => {
                        sup.removed.insert(BdAddr(address.0), Instant::now() + REMOVAL_GRACE);
                        Ok(())
                    }
                    Some(AdapterEvent::PropertyChanged(_)) => Ok(()),
                    // The adapter object is gone.
                    None => break (End::Lost, StopReason::AdapterLost),
                };
                if step.is_err() {
                    break (End::Stop, StopReason::Shutdown);
                }
            }
            _ = removal_due => {
                let now = Instant::now();
                let due: Vec<BdAddr> = sup.removed.iter().filter(|(_, at)| **at <= now).map(|(a, _)| *a).collect();
                for address in due {
                    sup.removed.remove(&address);
                    sup.remove(address).await;
                }
            }
            _ = ctx.config.rescan_now.requested() => {
                if sup.scan().await.is_err() {
                    break (End::Stop, StopReason::Shutdown);
                }
            }
            _ = rescan.tick() => {
                if sup.scan().await.is_err() {
                    break (End::Stop, StopReason::Shutdown);
                }
            }
        }
    };
    sup.stop_all(reason).await;
    if matches!(end, End::Lost) {
        // The adapter's removal reaches both streams at once; whichever we
        // did not act on is waiting already. Drop it so that it does not
        // end the next supervision when the adapter is back.
        while let Some(Some(_stale)) = events.next().now_or_never() {}
    }
    end
}

impl Supervisor<'_> {
    /// Starts tasks for every eligible device BlueZ lists.
    async fn scan(&mut self) -> Result<(), EventsClosed> {
        self.reap().await?;
        let addresses = match self.adapter.device_addresses().await {
            Ok(a) => a,
            Err(e) => {
                return self
                    .ctx
                    .bluetooth_error(None, SessionError::bluetooth(Operation::Devices, e))
                    .await;
            }
        };
        for address in addresses {
            self.consider(BdAddr(address.0)).await?;
        }
        Ok(())
    }

    /// Forgets finished tasks; one that found nothing to serve (and said
    /// so) marks its device as skipped so that it is not started again.
    async fn reap(&mut self) -> Result<(), EventsClosed> {
        let finished: Vec<BdAddr> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.handle.is_finished())
            .map(|(a, _)| *a)
            .collect();
        for address in finished {
            let Some(task) = self.tasks.remove(&address) else {
                continue;
            };
            if let Ok(TaskEnd::NothingToServe(listed)) = task.handle.await {
                self.skipped.insert(address, Skipped::Offered(listed));
            }
        }
        Ok(())
    }

    async fn skip(
        &mut self,
        address: BdAddr,
        reason: SkipReason,
        why: Skipped,
    ) -> Result<(), EventsClosed> {
        if self.skipped.insert(address, why).is_none() {
            tracing::info!(%address, ?reason, "device not served");
            self.ctx.counters.bump(Counter::SkippedDevices);
            self.ctx
                .emit(BleEvent::DeviceSkipped { address, reason })
                .await?;
        }
        Ok(())
    }

    /// The services BlueZ lists for a device (empty until resolved); None
    /// when they cannot be read.
    async fn listed_services(&self, address: BdAddr) -> Option<BTreeSet<Uuid>> {
        let device = self.adapter.device(bluer::Address(address.0)).ok()?;
        let uuids = device.uuids().await.ok()?;
        Some(uuids.unwrap_or_default().into_iter().collect())
    }

    /// Whether a skipped device stays skipped: yes, unless the services
    /// BlueZ lists for it changed since (then it is forgotten, to be looked
    /// at afresh).
    async fn still_skipped(&mut self, address: BdAddr) -> bool {
        let Some(Skipped::Offered(then)) = self.skipped.get(&address) else {
            return self.skipped.contains_key(&address);
        };
        match self.listed_services(address).await {
            Some(now) if now != *then => {
                tracing::info!(%address, "device lists other services now; looking at it again");
                self.skipped.remove(&address);
                false
            }
            _ => true,
        }
    }

    /// Starts a task for this device if it should be served and has none.
    async fn consider(&mut self, address: BdAddr) -> Result<(), EventsClosed> {
        if self.still_skipped(address).await {
            return Ok(());
        }
        if let Some(task) = self.tasks.get(&address) {
            if !task.handle.is_finished() {
                return Ok(());
            }
            self.reap().await?;
            if self.skipped.contains_key(&address) {
                return Ok(());
            }
        }
        let device = match self.adapter.device(bluer::Address(address.0)) {
            Ok(d) => d,
            Err(e) => {
                return self
                    .ctx
                    .bluetooth_error(None, SessionError::bluetooth(Operation::Devices, e))
                    .await;
            }
        };
        let wanted = match &self.ctx.config.allow {
            Some(allow) => allow.contains(&address),
            // bluer 0.17 has no Device1.Bonded (BlueZ ≥ 5.66); Paired is
            // what BlueZ had before and is true for every bonded device.
            None => match device.is_paired().await {
                Ok(paired) => paired,
                Err(e) => {
                    return self
                        .ctx
                        .bluetooth_error(
                            None,
                            SessionError::bluetooth(Operation::DeviceProperties, e),
                        )
                        .await;
                }
            },
        };
        if !wanted {
            return Ok(());
        }
        let random = match device.address_type().await {
            Ok(t) => t == AddressType::LeRandom,
            Err(e) => {
                return self
                    .ctx
                    .bluetooth_error(
                        None,
                        SessionError::bluetooth(Operation::DeviceProperties, e),
                    )
                    .await;
            }
        };
        let identity = match classify(address, random) {
            Ok(identity) => identity,
            Err(reason) => return self.skip(address, reason, Skipped::ForGood).await,
        };
        // A bonded device's services are known from pairing. When BlueZ
        // lists some and none is a health service, do not even connect;
        // when it lists none (not resolved yet), connecting finds out.
        if let Ok(Some(uuids)) = device.uuids().await
            && !uuids.is_empty()
            && !HEALTH_SERVICES.iter().any(|s| uuids.contains(s))
        {
            let offered = Skipped::Offered(uuids.into_iter().collect());
            return self
                .skip(address, SkipReason::NoSupportedService, offered)
                .await;
        }
        tracing::info!(%identity, "serving device");
        let (stop, stop_rx) = watch::channel(None);
        let handle = tokio::spawn(device::run(self.ctx.clone(), device, identity, stop_rx));
        self.tasks.insert(address, Task { stop, handle });
        Ok(())
    }

    async fn remove(&mut self, address: BdAddr) {
        self.skipped.remove(&address);
        if let Some(task) = self.tasks.remove(&address) {
            stop_task(task, StopReason::DeviceRemoved).await;
        }
    }

    async fn stop_all(&mut self, reason: StopReason) {
        let tasks: Vec<Task> = self.tasks.drain().map(|(_, t)| t).collect();
        for t in &tasks {
            let _ = t.stop.send(Some(reason));
        }
        for t in tasks {
            join_or_abort(t.handle).await;
        }
    }
}

async fn stop_task(task: Task, reason: StopReason) {
    let _ = task.stop.send(Some(reason));
    join_or_abort(task.handle).await;
}

/// Gives a task time to say goodbye; a task stuck on a full event channel
/// or a hung D-Bus call is aborted rather than waited for forever.
async fn join_or_abort(mut handle: JoinHandle<TaskEnd>) {
    if timeout(STOP_GRACE, &mut handle).await.is_err() {
        tracing::warn!("device task did not stop in time; aborting it");
        handle.abort();
    }
}
