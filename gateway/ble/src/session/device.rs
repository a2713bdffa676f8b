//! One device's session: connect, resolve, subscribe, fetch stored glucose
//! records, serve notifications; on any end, back off and go again, until
//! the supervisor stops it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bluer::gatt::remote::Characteristic as RemoteCharacteristic;
use bluer::{Device, DeviceEvent, DeviceProperty};
use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, StreamExt};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until, timeout};

use super::cgm_clock::CgmClock;
use super::notifications::{self, DeviceMemory};
use super::{Ctx, EventsClosed, StopReason};
use crate::Uuid;
use crate::backoff::Backoff;
use crate::counters::Counter;
use crate::dedupe::RecordWindow;
use crate::error::{Operation, SessionError};
use crate::event::{BleEvent, CgmSession, DisconnectReason};
use crate::gatt::{Characteristic, GLUCOSE_SERVICE};
use crate::identity::{Identity, SkipReason};
use crate::profiles::racp::{RacpRequest, RecordFilter};
use crate::profiles::{cgm_session, cgm_status};

type Stop = watch::Receiver<Option<StopReason>>;

/// How a device task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TaskEnd {
    /// Stopped by the supervisor, or nobody listens any more.
    Stopped,
    /// Connected, but the device has nothing we subscribe to: not a health
    /// device. Not retried (a bonded keyboard must not be reconnected every
    /// two minutes); the supervisor leaves it alone until BlueZ re-adds it
    /// or lists other services for it than these, listed when it looked.
    NothingToServe(BTreeSet<Uuid>),
}

/// The task body; ends when stopped, when the hub's channel closes, or for
/// a device with nothing to serve.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    device: Device,
    identity: Identity,
    mut stop: Stop,
) -> TaskEnd {
    let end = sessions(&ctx, &device, identity, &mut stop)
        .await
        .unwrap_or(TaskEnd::Stopped);
    tracing::debug!(%identity, ?end, "device task ended");
    end
}

enum Outcome {
    Stopped,
    Failed(SessionError),
    Ended {
        reason: DisconnectReason,
        lasted: Duration,
    },
}

async fn sessions(
    ctx: &Ctx,
    device: &Device,
    identity: Identity,
    stop: &mut Stop,
) -> Result<TaskEnd, EventsClosed> {
    let mut backoff = Backoff::new(ctx.config.backoff);
    let mut memory = DeviceMemory {
        window: RecordWindow::new(ctx.config.dedupe_window),
        cgm_clock: CgmClock::new(std::time::Instant::now()),
    };
    // Jitter needs no secrecy; if the OS has no randomness to give, the
    // address and the clock still spread devices apart.
    let mut rng = StdRng::try_from_os_rng().unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let [a, b, c, d, e, f] = identity.address.0;
        StdRng::seed_from_u64(u64::from_le_bytes([a, b, c, d, e, f, 0, 0]) ^ u64::from(nanos))
    });
    let mut attempt = 1u32;
    loop {
        ctx.emit(BleEvent::Connecting { identity, attempt }).await?;
        match connection(ctx, device, identity, &mut memory, stop).await? {
            Outcome::Stopped => return Ok(TaskEnd::Stopped),
            Outcome::Ended {
                reason: reason @ DisconnectReason::SetupFailed(SessionError::NothingToSubscribe),
                ..
            } => {
                tracing::info!(%identity, "no supported health service; leaving the device alone");
                ctx.counters.bump(Counter::Disconnects);
                ctx.emit(BleEvent::Disconnected { identity, reason })
                    .await?;
                ctx.counters.bump(Counter::SkippedDevices);
                ctx.emit(BleEvent::DeviceSkipped {
                    address: identity.address,
                    reason: SkipReason::NoSupportedService,
                })
                .await?;
                let listed = device.uuids().await.ok().flatten().unwrap_or_default();
                return Ok(TaskEnd::NothingToServe(listed.into_iter().collect()));
            }
            Outcome::Failed(error) => {
                tracing::info!(%identity, attempt, %error, "connect attempt failed");
                ctx.counters.bump(Counter::ConnectFailures);
                ctx.emit(BleEvent::ConnectFailed {
                    identity,
                    attempt,
                    error,
                })
                .await?;
                attempt += 1;
            }
            Outcome::Ended { reason, lasted } => {
                tracing::info!(%identity, ?reason, ?lasted, "disconnected");
                ctx.counters.bump(Counter::Disconnects);
                ctx.emit(BleEvent::Disconnected { identity, reason })
                    .await?;
                attempt = if backoff.connection_ended(lasted) {
                    1
                } else {
                    attempt + 1
                };
            }
        }
        let delay = backoff.next_delay(rng.random());
        ctx.emit(BleEvent::RetryScheduled {
            identity,
            next_attempt: attempt,
            delay,
        })
        .await?;
        if !wait_retry(device, delay, stop).await {
            return Ok(TaskEnd::Stopped);
        }
    }
}

/// Resolves once the supervisor asks us to stop.
async fn stopped(stop: &mut Stop) -> StopReason {
    loop {
        if let Some(reason) = *stop.borrow_and_update() {
            return reason;
        }
        if stop.changed().await.is_err() {
            // The supervisor is gone without a word: treat as shutdown.
            return StopReason::Shutdown;
        }
    }
}

/// Sleeps `delay`, or less if BlueZ connects the device by itself (it does
/// for bonded devices that advertise). False when stopped.
async fn wait_retry(device: &Device, delay: Duration, stop: &mut Stop) -> bool {
    let mut events = device.events().await.ok().map(StreamExt::boxed);
    let connected_by_itself = async {
        if let Some(events) = events.as_mut() {
            while let Some(event) = events.next().await {
                if matches!(
                    event,
                    DeviceEvent::PropertyChanged(DeviceProperty::Connected(true))
                ) {
                    return;
                }
            }
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = sleep(delay) => true,
        _ = connected_by_itself => true,
        _ = stopped(stop) => false,
    }
}

struct Found {
    kind: Characteristic,
    remote: RemoteCharacteristic,
}

/// The supported characteristics this device offers, measurements first
/// so their notifications are on before the RACP is asked for records.
async fn find_characteristics(device: &Device) -> Result<Vec<Found>, SessionError> {
    let resolve = |e| SessionError::bluetooth(Operation::ResolveServices, e);
    let mut found = Vec::new();
    for service in device.services().await.map_err(resolve)? {
        let service_uuid = service.uuid().await.map_err(resolve)?;
        for remote in service.characteristics().await.map_err(resolve)? {
            let Some(kind) = Characteristic::from_uuid(remote.uuid().await.map_err(resolve)?)
            else {
                continue;
            };
            // CGM and other services have RACPs with other filters; only
            // the Glucose service's is driven here.
            if kind == Characteristic::RecordAccessControlPoint && service_uuid != GLUCOSE_SERVICE {
                continue;
            }
            let flags = remote.flags().await.map_err(resolve)?;
            let usable = match kind {
                Characteristic::RecordAccessControlPoint => flags.write && flags.indicate,
                kind if kind.is_read() => flags.read,
                _ => flags.notify || flags.indicate,
            };
            if usable {
                found.push(Found { kind, remote });
            }
        }
    }
    let has_glucose = found
        .iter()
        .any(|f| f.kind == Characteristic::GlucoseMeasurement);
    found.retain(|f| f.kind != Characteristic::RecordAccessControlPoint || has_glucose);
    if found.iter().all(|f| f.kind.is_read()) {
        return Err(SessionError::NothingToSubscribe);
    }
    found.sort_by_key(|f| f.kind);
    Ok(found)
}

/// What to ask a glucometer for after a (re)connect.
pub(crate) fn racp_request(last_stored: Option<u16>) -> RacpRequest {
    // After 0xFFFF nothing is "greater"; a glucometer that wrapped its
    // numbering is asked for everything and de-duplication sorts it out.
    match last_stored.and_then(|n| n.checked_add(1)) {
        Some(next) => RacpRequest::ReportStoredRecords(RecordFilter::SequenceAtLeast(next)),
        None => RacpRequest::ReportStoredRecords(RecordFilter::All),
    }
}

/// One connection, from Connect to its end.
async fn connection(
    ctx: &Ctx,
    device: &Device,
    identity: Identity,
    memory: &mut DeviceMemory,
    stop: &mut Stop,
) -> Result<Outcome, EventsClosed> {
    // Watch first, so a drop right after connecting is not missed.
    let mut device_events = match device.events().await {
        Ok(s) => s.boxed(),
        Err(e) => {
            return Ok(Outcome::Failed(SessionError::bluetooth(
                Operation::DeviceEvents,
                e,
            )));
        }
    };
    let already = match device.is_connected().await {
        Ok(c) => c,
        Err(e) => {
            return Ok(Outcome::Failed(SessionError::bluetooth(
                Operation::DeviceProperties,
                e,
            )));
        }
    };
    if !already {
        ctx.counters.bump(Counter::ConnectAttempts);
        let limit = ctx.config.connect_timeout;
        tokio::select! {
            result = timeout(limit, device.connect()) => match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Ok(Outcome::Failed(SessionError::bluetooth(Operation::Connect, e))),
                Err(_) => {
                    // Cancels BlueZ's pending connection before we retry.
                    let _ = device.disconnect().await;
                    return Ok(Outcome::Failed(SessionError::Timeout { operation: Operation::Connect, after: limit }));
                }
            },
            _ = stopped(stop) => return Ok(Outcome::Stopped),
        }
    }
    let since = Instant::now();
    // Signal strength goes to the hub at most once a minute per session.
    let mut rssi_reported: Option<Instant> = None;
    tracing::info!(%identity, "connected");
    // A record the hub did not store (it was in flight when the link went,
    // or refused because the meter was not registered yet) must get
    // through when the meter sends it again, so repeats are dropped only
    // within one connection; across them the hub's cursor decides.
    memory.window = RecordWindow::new(ctx.config.dedupe_window);
    ctx.emit(BleEvent::Connected { identity }).await?;

    let limit = ctx.config.setup_timeout;
    let found = tokio::select! {
        result = timeout(limit, find_characteristics(device)) => match result {
            Ok(Ok(found)) => found,
            Ok(Err(error)) => return Ok(setup_failed(device, error, since).await),
            Err(_) => {
                let error = SessionError::Timeout { operation: Operation::ResolveServices, after: limit };
                return Ok(setup_failed(device, error, since).await);
            }
        },
        reason = stopped(stop) => {
            ctx.emit(BleEvent::Disconnected { identity, reason: reason.into() }).await?;
            return Ok(Outcome::Stopped);
        }
    };

    let mut streams: SelectAll<BoxStream<'_, (Characteristic, Vec<u8>)>> = SelectAll::new();
    let mut subscribed = Vec::new();
    let mut racp = None;
    for f in found.iter().filter(|f| !f.kind.is_read()) {
        let stream = match timeout(limit, f.remote.notify()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Ok(setup_failed(
                    device,
                    SessionError::bluetooth(Operation::Subscribe, e),
                    since,
                )
                .await);
            }
            Err(_) => {
                let error = SessionError::Timeout {
                    operation: Operation::Subscribe,
                    after: limit,
                };
                return Ok(setup_failed(device, error, since).await);
            }
        };
        let kind = f.kind;
        streams.push(stream.map(move |frame| (kind, frame)).boxed());
        subscribed.push(kind);
        if kind == Characteristic::RecordAccessControlPoint {
            racp = Some(&f.remote);
        }
    }
    ctx.emit(BleEvent::Subscribed {
        identity,
        characteristics: subscribed,
    })
    .await?;
    let session_reads: Vec<&Found> = found.iter().filter(|f| f.kind.is_read()).collect();
    if !session_reads.is_empty() {
        read_cgm_session(ctx, identity, memory, &session_reads, limit).await?;
    }

    let mut racp_deadline = None;
    if let Some(racp) = racp {
        let request = racp_request(ctx.cursor.last_sequence(&identity));
        tracing::info!(%identity, ?request, "asking the glucometer for stored records");
        ctx.counters.bump(Counter::RacpRequests);
        ctx.emit(BleEvent::RacpRequested { identity, request })
            .await?;
        let failure = match timeout(limit, racp.write(&request.encode())).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(SessionError::bluetooth(Operation::WriteRacp, e)),
            Err(_) => Some(SessionError::Timeout {
                operation: Operation::WriteRacp,
                after: limit,
            }),
        };
        match failure {
            None => racp_deadline = Some(Instant::now() + ctx.config.racp_timeout),
            Some(error) => {
                ctx.counters.bump(Counter::BluetoothErrors);
                ctx.emit(BleEvent::RacpFailed { identity, error }).await?;
            }
        }
    }

    loop {
        let racp_wait = async {
            match racp_deadline {
                Some(deadline) => sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // Data before bookkeeping: frames already here are handled
            // before a disconnection that arrived after them.
            biased;
            item = streams.next() => match item {
                Some((kind, frame)) if kind == Characteristic::RecordAccessControlPoint => {
                    // bluer gives each characteristic its own stream, so
                    // the order between them is lost. Records the meter
                    // notified before this indication are already queued
                    // on theirs: handle them first, so that "report
                    // finished" follows the records it reports on.
                    let mut racp_frames = vec![frame];
                    while let Some(Some((k, f))) = streams.next().now_or_never() {
                        if k == Characteristic::RecordAccessControlPoint {
                            racp_frames.push(f);
                        } else {
                            notifications::handle(ctx, identity, memory, k, f).await?;
                        }
                    }
                    for f in racp_frames {
                        if notifications::handle(ctx, identity, memory, kind, f).await? {
                            racp_deadline = None;
                        }
                    }
                }
                Some((kind, frame)) => {
                    notifications::handle(ctx, identity, memory, kind, frame).await?;
                }
                None => return settle(ctx, identity, stop, DisconnectReason::ServicesGone, since).await,
            },
            event = device_events.next() => match event {
                Some(DeviceEvent::PropertyChanged(DeviceProperty::Connected(false))) => {
                    drain(ctx, identity, memory, &mut streams).await?;
                    return Ok(Outcome::Ended { reason: DisconnectReason::LinkLost, lasted: since.elapsed() });
                }
                Some(DeviceEvent::PropertyChanged(DeviceProperty::Rssi(dbm))) => {
                    if rssi_reported.is_none_or(|at| at.elapsed() >= RSSI_EVERY) {
                        rssi_reported = Some(Instant::now());
                        ctx.emit(BleEvent::SignalStrength { identity, dbm }).await?;
                    }
                }
                Some(_) => {}
                None => {
                    drain(ctx, identity, memory, &mut streams).await?;
                    return settle(ctx, identity, stop, DisconnectReason::DeviceRemoved, since).await;
                }
            },
            _ = racp_wait => {
                racp_deadline = None;
                ctx.counters.bump(Counter::BluetoothErrors);
                let error = SessionError::Timeout { operation: Operation::RacpResponse, after: ctx.config.racp_timeout };
                ctx.emit(BleEvent::RacpFailed { identity, error }).await?;
            }
            reason = stopped(stop) => {
                drain(ctx, identity, memory, &mut streams).await?;
                ctx.emit(BleEvent::Disconnected { identity, reason: reason.into() }).await?;
                return Ok(Outcome::Stopped);
            }
        }
    }
}

/// Reads a CGM's session characteristics (start time, run time, status) at
/// connect: the start time dates its records, the run time bounds the
/// session (`cgm_clock`). A read that fails or does not parse leaves that
/// part unknown: the records are then dated from their arrivals alone.
async fn read_cgm_session(
    ctx: &Ctx,
    identity: Identity,
    memory: &mut DeviceMemory,
    reads: &[&Found],
    limit: Duration,
) -> Result<(), EventsClosed> {
    let mut session = CgmSession::default();
    for f in reads {
        let frame = match timeout(limit, f.remote.read()).await {
            // Nothing kept: nothing to tell.
            Ok(Ok(frame)) if frame.is_empty() => continue,
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => {
                tracing::debug!(%identity, characteristic = ?f.kind, error = %e, "CGM session read failed");
                continue;
            }
            Err(_) => continue,
        };
        let parsed = match f.kind {
            Characteristic::CgmSessionStartTime => {
                cgm_session::parse_start(&frame).map(|s| session.start = Some(s))
            }
            Characteristic::CgmSessionRunTime => {
                cgm_session::parse_run_time(&frame).map(|h| session.run_time_hours = Some(h))
            }
            Characteristic::CgmStatus => {
                cgm_status::parse(&frame).map(|s| session.status = Some(s))
            }
            _ => Ok(()),
        };
        if let Err(error) = parsed {
            tracing::warn!(%identity, %error, "CGM session characteristic does not parse; dating by arrivals");
            ctx.counters.bump(Counter::ParseErrors);
        }
    }
    let now = (SystemTime::now(), std::time::Instant::now());
    let used = memory.cgm_clock.set_session(
        session.start.and_then(|s| session_start_utc(&s)),
        session
            .run_time_hours
            .map(|h| Duration::from_secs(u64::from(h) * 3600)),
        now,
    );
    if !used {
        tracing::warn!(%identity, "the CGM's session start disagrees with its arrivals; dating by arrivals");
    }
    ctx.emit(BleEvent::CgmSession { identity, session }).await
}

/// The session start in UTC, when the sensor knows its date, zone and DST.
fn session_start_utc(start: &cgm_session::CgmSessionStart) -> Option<SystemTime> {
    let local = start.local;
    if !local.is_complete() || !local.is_valid() {
        return None;
    }
    let offset_minutes = start.utc_offset_minutes()?;
    let local_secs = local.unix_seconds()?;
    let utc = local_secs.checked_sub(i64::from(offset_minutes) * 60)?;
    let utc = u64::try_from(utc).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(utc))
}

/// Handles the frames that are already queued when the connection ends:
/// they were sent before the link went and are readings like any other.
async fn drain(
    ctx: &Ctx,
    identity: Identity,
    memory: &mut DeviceMemory,
    streams: &mut SelectAll<BoxStream<'_, (Characteristic, Vec<u8>)>>,
) -> Result<(), EventsClosed> {
    while let Some(Some((kind, frame))) = streams.next().now_or_never() {
        notifications::handle(ctx, identity, memory, kind, frame).await?;
    }
    Ok(())
}

/// BlueZ objects vanishing reach this task a moment before the
/// supervisor's verdict on why (the adapter went, the device was removed).
/// Waiting that moment lets the reported reason be the real one.
/// (Longer than the supervisor's grace for device removals.)
const SETTLE: Duration = Duration::from_secs(1);
/// The least time between two signal-strength events of one session.
const RSSI_EVERY: Duration = Duration::from_secs(60);

async fn settle(
    ctx: &Ctx,
    identity: Identity,
    stop: &mut Stop,
    otherwise: DisconnectReason,
    since: Instant,
) -> Result<Outcome, EventsClosed> {
    match timeout(SETTLE, stopped(stop)).await {
        Ok(reason) => {
            ctx.emit(BleEvent::Disconnected {
                identity,
                reason: reason.into(),
            })
            .await?;
            Ok(Outcome::Stopped)
        }
        Err(_) => Ok(Outcome::Ended {
            reason: otherwise,
            lasted: since.elapsed(),
        }),
    }
}

/// Set-up failed after connecting: drop the link (best effort) so the next
/// attempt starts clean.
async fn setup_failed(device: &Device, error: SessionError, since: Instant) -> Outcome {
    tracing::warn!(%error, "connection set-up failed");
    let _ = timeout(Duration::from_secs(5), device.disconnect()).await;
    Outcome::Ended {
        reason: DisconnectReason::SetupFailed(error),
        lasted: since.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn racp_request_follows_the_cursor() {
        assert_eq!(
            racp_request(None),
            RacpRequest::ReportStoredRecords(RecordFilter::All)
        );
        assert_eq!(
            racp_request(Some(41)),
            RacpRequest::ReportStoredRecords(RecordFilter::SequenceAtLeast(42))
        );
        assert_eq!(
            racp_request(Some(u16::MAX)),
            RacpRequest::ReportStoredRecords(RecordFilter::All)
        );
    }
}
