//! The hub's side of the broker: every publish on a readings topic is
//! admitted, stored, and only then acknowledged on the device's ack topic
//! (docs/WIRE.md). The broker's own PUBACK means only "in the broker's
//! memory"; a device that resends until it gets this ack loses nothing.

use std::sync::Arc;

use glyco_contracts::DeviceIdentity;
use rumqttd::Notification;
use rumqttd::local::{LinkRx, LinkTx};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::shape::shape_of;
use super::topics::{ALL_READINGS, acks_topic, device_of_readings_topic};
use super::wire::{Ack, AckStatus};
use crate::admission::{Admission, Decision};
use crate::nodewatch::WireMeta;
use crate::pipeline::{Pipeline, Stored};
use crate::reading::{Transport, now_millis};

/// Readings being stored at once; beyond this the hub stops taking new
/// publishes from the broker (which buffers them) until some complete.
const MAX_IN_FLIGHT: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the broker link failed: {0}")]
    Link(String),
}

/// Runs until shutdown or until the broker link breaks.
pub async fn run(
    link: (LinkTx, LinkRx),
    admission: Admission,
    pipeline: Pipeline,
    shutdown: CancellationToken,
) -> Result<(), IngestError> {
    let (mut link_tx, mut link_rx) = link;
    link_tx
        .subscribe(ALL_READINGS)
        .map_err(|e| IngestError::Link(e.to_string()))?;

    // One task owns the link's sending half and publishes every ack.
    let (acks, mut ack_rx) = mpsc::channel::<(String, Ack)>(4096);
    let ack_task = tokio::spawn(async move {
        while let Some((device, ack)) = ack_rx.recv().await {
            if let Err(e) = link_tx.publish(acks_topic(&device), ack.to_json()) {
                tracing::error!(error = %e, "ack not published; the device will resend");
            }
        }
    });

    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let result = loop {
        let notification = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            n = link_rx.next() => n,
        };
        match notification {
            Ok(Some(Notification::Forward(forward))) => {
                let topic = String::from_utf8_lossy(&forward.publish.topic);
                let Some(name) = device_of_readings_topic(&topic) else {
                    continue;
                };
                let Ok(device) = DeviceIdentity::name(name) else {
                    continue;
                };
                let name = name.to_owned();
                let wire = WireMeta {
                    bytes: forward.publish.payload.len() as u32,
                    shape: shape_of(&forward.publish.payload),
                };
                match admission.mqtt(&device, &forward.publish.payload, now_millis()) {
                    Decision::Refuse {
                        reason,
                        detail,
                        seq,
                    } => {
                        pipeline
                            .behaviour()
                            .refuse(Some(&name), Transport::Mqtt, reason, &detail);
                        let _ = acks
                            .send((name, Ack::new(seq, AckStatus::Rejected, Some(detail))))
                            .await;
                    }
                    Decision::Admit(reading) => {
                        let Ok(permit) = in_flight.clone().acquire_owned().await else {
                            break Ok(());
                        };
                        let pipeline = pipeline.clone();
                        let acks = acks.clone();
                        tokio::spawn(async move {
                            let seq = reading.seq;
                            let ack = match pipeline.store_with(reading, Some(wire)).await {
                                Ok(Stored::New { .. }) => {
                                    Some(Ack::new(Some(seq), AckStatus::Stored, None))
                                }
                                Ok(Stored::Duplicate) => {
                                    Some(Ack::new(Some(seq), AckStatus::Duplicate, None))
                                }
                                Ok(Stored::Replayed) => Some(Ack::new(
                                    Some(seq),
                                    AckStatus::Rejected,
                                    Some(format!(
                                        "sequence number {seq} was already used for a different reading"
                                    )),
                                )),
                                // Not stored: say nothing, so the device resends.
                                Err(e) => {
                                    tracing::error!(error = %e, device = %name, seq, "reading not stored");
                                    None
                                }
                            };
                            if let Some(ack) = ack {
                                let _ = acks.send((name, ack)).await;
                            }
                            drop(permit);
                        });
                    }
                }
            }
            Ok(Some(Notification::Unschedule)) => {
                if let Err(e) = link_rx.wake().await {
                    break Err(IngestError::Link(e.to_string()));
                }
            }
            Ok(Some(_)) | Ok(None) => {}
            Err(e) => break Err(IngestError::Link(e.to_string())),
        }
    };
    // Let stored readings get their acks out before stopping.
    let _ = in_flight.acquire_many(MAX_IN_FLIGHT as u32).await;
    drop(acks);
    let _ = ack_task.await;
    result
}
