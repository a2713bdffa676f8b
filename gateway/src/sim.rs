//! Simulated MQTT devices, for the demo, tests and hardware-in-the-loop rigs.
//! A simulated device behaves as docs/WIRE.md asks of a real one: it
//! publishes each reading at QoS 1 on its own topic and resends it until the
//! hub's application-level ack says stored, duplicate or rejected.

use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::mqtt::topics::{acks_topic, readings_topic};
use crate::mqtt::wire::{Ack, AckStatus};
use crate::reading::UnixMillis;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the hub refused the connection: {0:?}")]
    Refused(ConnectReturnCode),
    #[error("connection failed: {0}")]
    Connection(String),
    #[error("no ack for seq {seq} after {attempts} attempts")]
    NoAck { seq: u64, attempts: u32 },
    #[error("the connection closed")]
    Closed,
}

/// One device connected to the hub's MQTT listener.
pub struct SimulatedDevice {
    name: String,
    client: AsyncClient,
    acks: mpsc::Receiver<Ack>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for SimulatedDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedDevice")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Drop for SimulatedDevice {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SimulatedDevice {
    /// Connects as `name` with `secret` and subscribes to its ack topic.
    pub async fn connect(hub: SocketAddr, name: &str, secret: &str) -> Result<Self, SimError> {
        let mut options = MqttOptions::new(name, hub.ip().to_string(), hub.port());
        options.set_credentials(name, secret);
        options.set_keep_alive(Duration::from_secs(10));
        options.set_clean_session(true);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let (connected_tx, connected_rx) = oneshot::channel();
        let (acks_tx, acks) = mpsc::channel(256);
        let ack_topic = acks_topic(name);
        let task = tokio::spawn(async move {
            let mut connected = Some(connected_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        if let Some(tx) = connected.take() {
                            let _ = tx.send(Ok(ack.code));
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == ack_topic => {
                        if let Ok(ack) = serde_json::from_slice::<Ack>(&p.payload) {
                            let _ = acks_tx.send(ack).await;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if let Some(tx) = connected.take() {
                            let _ = tx.send(Err(e.to_string()));
                        }
                        // A simulated device stops at the first broken connection:
                        // tests want to see a disconnect, not hide it.
                        return;
                    }
                }
            }
        });
        match tokio::time::timeout(Duration::from_secs(10), connected_rx).await {
            Ok(Ok(Ok(ConnectReturnCode::Success))) => {}
            Ok(Ok(Ok(code))) => return Err(SimError::Refused(code)),
            Ok(Ok(Err(e))) => {
                // rumqttc reports a refused CONNACK as an error.
                return Err(match e {
                    e if e.contains("BadUserNamePassword") => {
                        SimError::Refused(ConnectReturnCode::BadUserNamePassword)
                    }
                    e if e.contains("NotAuthorized") => {
                        SimError::Refused(ConnectReturnCode::NotAuthorized)
                    }
                    e => SimError::Connection(e),
                });
            }
            Ok(Err(_)) | Err(_) => return Err(SimError::Connection("no CONNACK".into())),
        }
        client
            .subscribe(acks_topic(name), QoS::AtLeastOnce)
            .await
            .map_err(|e| SimError::Connection(e.to_string()))?;
        Ok(Self {
            name: name.to_owned(),
            client,
            acks,
            task,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Publishes a raw payload once (QoS 1) on the device's readings topic.
    pub async fn publish(&self, payload: Vec<u8>) -> Result<(), SimError> {
        self.client
            .publish(readings_topic(&self.name), QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|_| SimError::Closed)
    }

    /// Publishes to any topic (to test that the hub refuses it).
    pub async fn publish_to(&self, topic: &str, payload: Vec<u8>) -> Result<(), SimError> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|_| SimError::Closed)
    }

    /// The next ack, if one arrives within `wait`.
    pub async fn next_ack(&mut self, wait: Duration) -> Option<Ack> {
        tokio::time::timeout(wait, self.acks.recv())
            .await
            .ok()
            .flatten()
    }

    /// Sends `payload` (whose `seq` is `seq`) until the hub acknowledges it.
    pub async fn send_until_acked(
        &mut self,
        seq: u64,
        payload: Vec<u8>,
        attempts: u32,
    ) -> Result<Ack, SimError> {
        for _ in 0..attempts {
            self.publish(payload.clone()).await?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while let Ok(Some(ack)) = tokio::time::timeout_at(deadline, self.acks.recv()).await {
                if ack.seq == Some(seq) {
                    return Ok(ack);
                }
            }
        }
        Err(SimError::NoAck { seq, attempts })
    }

    /// Sends many readings without waiting for each ack (a device catching
    /// up on its backlog): publishes them all, then resends those without a
    /// final ack, up to `attempts` rounds.
    pub async fn send_all_acked(
        &mut self,
        readings: Vec<(u64, Vec<u8>)>,
        attempts: u32,
    ) -> Result<(), SimError> {
        // A window of readings in flight at once: the ack channel is bounded,
        // so acks are read while the rest are sent.
        const WINDOW: usize = 64;
        for chunk in readings.chunks(WINDOW) {
            let mut waiting: std::collections::BTreeMap<u64, &Vec<u8>> =
                chunk.iter().map(|(seq, payload)| (*seq, payload)).collect();
            for _ in 0..attempts {
                for payload in waiting.values() {
                    self.publish((*payload).clone()).await?;
                }
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while !waiting.is_empty() {
                    match tokio::time::timeout_at(deadline, self.acks.recv()).await {
                        Ok(Some(ack)) => {
                            if is_final(&ack)
                                && let Some(seq) = ack.seq
                            {
                                waiting.remove(&seq);
                            }
                        }
                        _ => break,
                    }
                }
                if waiting.is_empty() {
                    break;
                }
            }
            if let Some(seq) = waiting.keys().next() {
                return Err(SimError::NoAck {
                    seq: *seq,
                    attempts,
                });
            }
        }
        Ok(())
    }

    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
    }
}

/// Whether an ack ends the device's resending.
pub fn is_final(ack: &Ack) -> bool {
    matches!(
        ack.status,
        AckStatus::Stored | AckStatus::Duplicate | AckStatus::Rejected
    )
}

/// A glucose reading payload in wire format v1.
pub fn glucose_payload(seq: u64, time_ms: UnixMillis, value: f64, unit: &str) -> Vec<u8> {
    json!({"v": 1, "seq": seq, "time_ms": time_ms,
           "measurement": {"kind": "glucose", "value": value, "unit": unit}})
    .to_string()
    .into_bytes()
}

/// A CGM reading payload in wire format v1.
pub fn cgm_payload(seq: u64, time_ms: UnixMillis, mg_dl: f64) -> Vec<u8> {
    json!({"v": 1, "seq": seq, "time_ms": time_ms,
           "measurement": {"kind": "cgm_glucose", "value": mg_dl, "unit": "mg/dL"}})
    .to_string()
    .into_bytes()
}

/// A blood-pressure reading payload in wire format v1.
pub fn blood_pressure_payload(
    seq: u64,
    time_ms: UnixMillis,
    systolic: f64,
    diastolic: f64,
) -> Vec<u8> {
    json!({"v": 1, "seq": seq, "time_ms": time_ms,
           "measurement": {"kind": "blood_pressure", "systolic": systolic, "diastolic": diastolic, "unit": "mmHg"}})
    .to_string()
    .into_bytes()
}
