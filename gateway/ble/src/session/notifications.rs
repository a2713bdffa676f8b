//! Frames in, events out: parse, de-duplicate glucose records, count.

use std::time::SystemTime;

use super::{Ctx, EventsClosed};
use crate::counters::Counter;
use crate::dedupe::RecordWindow;
use crate::event::BleEvent;
use crate::gatt::{Characteristic, Measurement, parse_measurement};
use crate::identity::Identity;
use crate::profiles::racp;

/// What a device's session remembers across its reconnects.
pub(crate) struct DeviceMemory {
    pub(crate) window: RecordWindow,
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
    match parse_measurement(characteristic, &frame) {
        Ok(measurements) => {
            // A CGM notification may pack several records; the last is the
            // current one. Earlier ones are dated back by their time-offset
            // difference, so each record keeps its own time.
            let newest_cgm_offset = measurements.iter().rev().find_map(|m| match m {
                Measurement::Cgm(c) => Some(c.time_offset_minutes),
                _ => None,
            });
            for measurement in measurements {
                let received_at = match (&measurement, newest_cgm_offset) {
                    (Measurement::Cgm(c), Some(newest)) => {
                        let earlier = u64::from(newest.saturating_sub(c.time_offset_minutes));
                        received_at
                            .checked_sub(std::time::Duration::from_secs(earlier * 60))
                            .unwrap_or(received_at)
                    }
                    _ => received_at,
                };
                if let Measurement::Glucose(g) = &measurement
                    && !memory.window.insert(g.sequence_number, g.base_time)
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
