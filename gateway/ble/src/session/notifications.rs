//! Frames in, events out: parse, de-duplicate glucose records, count.

use std::time::{Instant, SystemTime};

use super::cgm_clock::CgmClock;
use super::{Ctx, EventsClosed};
use crate::counters::Counter;
use crate::dedupe::RecordWindow;
use crate::event::BleEvent;
use crate::gatt::{Characteristic, Measurement, parse_measurement_with};
use crate::identity::Identity;
use crate::profiles::{DateTime, racp};

/// What a device's task remembers.
pub(crate) struct DeviceMemory {
    /// Glucose records seen on the current connection (reset at each).
    pub(crate) window: RecordWindow<(u16, DateTime)>,
    /// The CGM session's time line; kept across reconnects.
    pub(crate) cgm_clock: CgmClock,
}

/// Handles one notification. Returns true when it was the RACP's final
/// indication (the stored-record report is over).
pub(crate) async fn handle(
    ctx: &Ctx,
    identity: Identity,
    memory: &mut DeviceMemory,
    characteristic: Characteristic,
    frame: Vec<u8>,
) -> Result<bool, EventsClosed> {
    let received_at = SystemTime::now();
    let arrived = Instant::now();
    if characteristic == Characteristic::RecordAccessControlPoint {
        return match racp::parse_response(&frame) {
            Ok(response) => {
                tracing::info!(%identity, ?response, "RACP report finished");
                ctx.emit(BleEvent::RacpCompleted { identity, response })
                    .await?;
                Ok(true)
            }
            Err(error) => {
                refuse(ctx, identity, characteristic, received_at, error, frame).await?;
                Ok(false)
            }
        };
    }
    let order = ctx.config.cgm_status_order(identity.address);
    match parse_measurement_with(characteristic, &frame, order) {
        Ok(measurements) => {
            // A CGM notification may pack several records; the newest was
            // measured about now, and all are dated on the session's one
            // time line (see `cgm_clock`).
            let newest_cgm_offset = measurements
                .iter()
                .filter_map(|m| match m {
                    Measurement::Cgm(c) => Some(c.time_offset_minutes),
                    _ => None,
                })
                .max();
            if let Some(newest) = newest_cgm_offset {
                memory.cgm_clock.observe(arrived, newest);
            }
            for measurement in measurements {
                let measured_at = match &measurement {
                    Measurement::Cgm(c) => memory
                        .cgm_clock
                        .date(c.time_offset_minutes, (received_at, arrived)),
                    _ => None,
                };
                if let Measurement::Glucose(g) = &measurement
                    && !memory.window.insert((g.sequence_number, g.base_time))
                {
                    tracing::debug!(%identity, sequence = g.sequence_number, "repeated glucose record dropped");
                    ctx.counters.bump(Counter::DuplicatesDropped);
                    ctx.emit(BleEvent::DuplicateDropped {
                        identity,
                        sequence_number: g.sequence_number,
                    })
                    .await?;
                    continue;
                }
                ctx.counters.bump(Counter::Measurements);
                ctx.emit(BleEvent::Measurement {
                    identity,
                    received_at,
                    measured_at,
                    measurement,
                })
                .await?;
            }
        }
        Err(error) => refuse(ctx, identity, characteristic, received_at, error, frame).await?,
    }
    Ok(false)
}

async fn refuse(
    ctx: &Ctx,
    identity: Identity,
    characteristic: Characteristic,
    received_at: SystemTime,
    error: crate::profiles::ParseError,
    frame: Vec<u8>,
) -> Result<(), EventsClosed> {
    tracing::warn!(%identity, %error, "frame refused");
    ctx.counters.bump(Counter::ParseErrors);
    ctx.emit(BleEvent::ParseError {
        identity,
        characteristic,
        received_at,
        error,
        frame,
    })
    .await
}
