//! The node-behaviour stage: what each device does (arrivals and their
//! outcome, refusals, sessions and their source address) goes to its own
//! behaviour model (glyco-ml `RobustBehaviour`), and findings go to the
//! analysis like reading findings: status, the journal's findings outbox,
//! the log.
//!
//! Observing never waits: the ingest paths `try_send` into a bounded
//! channel, and what does not fit is counted. Only devices the hub has
//! admitted a reading from get a model, at most [`MAX_DEVICES`]; refusals
//! about names it never admitted are the refusal counters' business.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use glyco_contracts::DeviceIdentity;
use glyco_ml::behaviour::{
    Arrival, ArrivalOutcome, BehaviourDetector, DeviceClass, NodeObservation, Observed,
    RefusalGroup, RobustBehaviour,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::analysis::DeviceFinding;
use crate::behaviour::RefusalReason;
use crate::reading::{Measurement, Reading, SensorFlag, now_millis};

/// Devices with a behaviour model (a hub serves one patient's few devices).
pub const MAX_DEVICES: usize = 256;
/// Observations waiting for the stage.
const QUEUE: usize = 8192;
/// How often silence is looked for.
const TICK_MS: u64 = 5_000;

/// What the stage did, for the status output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeWatchStatus {
    pub enabled: bool,
    pub devices: usize,
    pub observations: u64,
    /// Observations dropped because the stage fell behind.
    pub dropped: u64,
    /// Observations about devices without a model (never admitted, or
    /// over the device bound).
    pub unmodelled: u64,
}

/// What the MQTT path knows about a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireMeta {
    pub bytes: u32,
    pub shape: u64,
}

#[derive(Debug)]
enum Event {
    Arrival {
        device: DeviceIdentity,
        class: DeviceClass,
        arrival: Arrival,
    },
    Other {
        device: String,
        what: Observed,
    },
    /// A bonded BLE identity of this class, not registered, sent a reading.
    Lookalike {
        class: DeviceClass,
        rssi: Option<i16>,
    },
}

/// The ingest paths' handle: cheap to clone; a disabled one does nothing.
#[derive(Debug, Clone, Default)]
pub struct NodeWatch {
    tx: Option<mpsc::Sender<(i64, Event)>>,
    status: Arc<Mutex<NodeWatchStatus>>,
    /// Keys the hash of source addresses, so the models never hold an
    /// address (and a hash cannot be looked up in a table of addresses).
    salt: u64,
}

/// The receiving half, for [`run`].
pub struct NodeWatchTask {
    rx: mpsc::Receiver<(i64, Event)>,
    status: Arc<Mutex<NodeWatchStatus>>,
}

impl NodeWatch {
    /// A handle and its stage; run the stage with [`run`].
    pub fn new() -> (Self, NodeWatchTask) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let status = Arc::new(Mutex::new(NodeWatchStatus {
            enabled: true,
            ..Default::default()
        }));
        let mut salt = [0u8; 8];
        // A fresh salt each start is fine: sources are compared within a run.
        let _ = getrandom::fill(&mut salt);
        (
            Self {
                tx: Some(tx),
                status: status.clone(),
                salt: u64::from_le_bytes(salt),
            },
            NodeWatchTask { rx, status },
        )
    }

    /// A handle that observes nothing (analysis off, tests).
    pub fn disabled() -> Self {
        Self::default()
    }

    pub fn status(&self) -> NodeWatchStatus {
        self.status.lock().clone()
    }

    fn send(&self, event: Event) {
        let Some(tx) = &self.tx else {
            return;
        };
        if tx.try_send((now_millis(), event)).is_err() {
            self.status.lock().dropped += 1;
        }
    }

    fn source_hash(&self, address: IpAddr) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.salt.hash(&mut hasher);
        address.hash(&mut hasher);
        hasher.finish()
    }

    /// A reading the journal answered for.
    pub fn arrival(&self, reading: &Reading, outcome: ArrivalOutcome, wire: Option<WireMeta>) {
        let pause_announced = reading
            .flags
            .iter()
            .any(|f| matches!(f, SensorFlag::SessionStopped | SensorFlag::SensorWarmup));
        let arrival = Arrival {
            outcome,
            device_time_ms: reading.device_time,
            bytes: wire.map(|w| w.bytes),
            shape: wire.map_or(0, |w| w.shape),
            value: Some(main_value(&reading.measurement)),
            pause_announced,
        };
        self.send(Event::Arrival {
            device: reading.device.clone(),
            class: class_of(&reading.measurement),
            arrival,
        });
    }

    /// A refusal about a claimed device.
    pub fn refusal(&self, device: &str, reason: RefusalReason) {
        let group = match reason {
            RefusalReason::BadCredentials | RefusalReason::LoginThrottled => {
                RefusalGroup::Credentials
            }
            RefusalReason::InvalidPayload
            | RefusalReason::InvalidReading
            | RefusalReason::MalformedFrame => RefusalGroup::Payload,
            RefusalReason::ReplayedSequence => RefusalGroup::Replay,
            RefusalReason::OverLimit => RefusalGroup::OverLimit,
            RefusalReason::WrongTopic | RefusalReason::ProtocolViolation => RefusalGroup::Protocol,
            RefusalReason::Unregistered | RefusalReason::Removed => RefusalGroup::Removed,
        };
        self.send(Event::Other {
            device: key_of(device),
            what: Observed::Refusal(group),
        });
    }

    /// A session of the device began, from `source`; `replaced` is the
    /// address of the session it took over, if one was open.
    pub fn session_start(
        &self,
        device: &str,
        source: Option<IpAddr>,
        replaced: Option<Option<IpAddr>>,
    ) {
        self.send(Event::Other {
            device: key_of(device),
            what: Observed::SessionStart {
                source: source.map(|a| self.source_hash(a)),
                replaced: replaced.map(|r| r.map(|a| self.source_hash(a))),
            },
        });
    }

    /// A bonded but unregistered BLE identity sent a reading of `class`:
    /// news for the registered BLE devices of that class (a device back
    /// under a new identity, or an impostor).
    pub fn lookalike(&self, class: DeviceClass, rssi: Option<i16>) {
        self.send(Event::Lookalike { class, rssi });
    }

    /// A BLE device heard at `dbm`.
    pub fn rssi(&self, device: &str, dbm: i16) {
        self.send(Event::Other {
            device: key_of(device),
            what: Observed::Rssi(dbm),
        });
    }

    pub fn session_end(&self, device: &str) {
        self.send(Event::Other {
            device: key_of(device),
            what: Observed::SessionEnd,
        });
    }
}

/// The model key of a claimed device: MQTT paths know a bare name, the
/// pipeline and BLE the identity (`name:…`, `ble:…`).
fn key_of(claimed: &str) -> String {
    if claimed.starts_with("name:") || claimed.starts_with("ble:") {
        claimed.to_owned()
    } else {
        format!("name:{claimed}")
    }
}

/// The behaviour model's class for a device, from what it measures.
pub fn class_of(measurement: &Measurement) -> DeviceClass {
    match measurement {
        Measurement::CgmGlucose { .. } => DeviceClass::Cgm,
        Measurement::CapillaryGlucose { .. } => DeviceClass::Meter,
        Measurement::BloodPressure { .. } => DeviceClass::Cuff,
        Measurement::HeartRate { .. } => DeviceClass::HeartRate,
        Measurement::Weight { .. } => DeviceClass::Scale,
        Measurement::Temperature { .. } => DeviceClass::Thermometer,
        Measurement::Spo2 { .. } => DeviceClass::Oximeter,
    }
}

fn main_value(measurement: &Measurement) -> f32 {
    (match *measurement {
        Measurement::CgmGlucose { mg_dl } | Measurement::CapillaryGlucose { mg_dl } => mg_dl,
        Measurement::BloodPressure { systolic_mmhg, .. } => systolic_mmhg,
        Measurement::HeartRate { bpm } => bpm,
        Measurement::Weight { kg } => kg,
        Measurement::Temperature { celsius } => celsius,
        Measurement::Spo2 { percent, .. } => percent,
    }) as f32
}

struct Models {
    by_name: HashMap<String, RobustBehaviour>,
    /// A session that began before the device's first reading since the
    /// hub started (its class is not known yet): replayed into the model
    /// when the reading comes.
    pending_sessions: HashMap<String, NodeObservation>,
}

impl Models {
    /// One event into the models it concerns; their findings.
    fn take(
        &mut self,
        at_ms: i64,
        event: Event,
        status: &Mutex<NodeWatchStatus>,
    ) -> Vec<DeviceFinding> {
        let (name, create, what) = match event {
            Event::Arrival {
                device,
                class,
                arrival,
            } => (device.to_string(), Some(class), Observed::Arrival(arrival)),
            Event::Other { device, what } => (device, None, what),
            Event::Lookalike { class, rssi } => {
                status.lock().observations += 1;
                let observation = NodeObservation {
                    at_ms,
                    what: Observed::Lookalike { rssi },
                };
                let mut found = Vec::new();
                for (name, model) in &mut self.by_name {
                    if name.starts_with("ble:") && model.class() == class {
                        found.extend(model.observe(&observation).into_iter().map(|finding| {
                            DeviceFinding {
                                device: name.clone(),
                                finding,
                            }
                        }));
                    }
                }
                return found;
            }
        };
        let observed = self.observe(&name, create, NodeObservation { at_ms, what });
        {
            let mut status = status.lock();
            status.observations += 1;
            status.devices = self.by_name.len();
            if observed.is_none() {
                status.unmodelled += 1;
            }
        }
        observed
            .into_iter()
            .flatten()
            .map(|finding| DeviceFinding {
                device: name.clone(),
                finding,
            })
            .collect()
    }

    fn observe(
        &mut self,
        name: &str,
        create: Option<DeviceClass>,
        observation: NodeObservation,
    ) -> Option<Vec<glyco_ml::Finding>> {
        if !self.by_name.contains_key(name) {
            let Some(class) = create else {
                if matches!(observation.what, Observed::SessionStart { .. })
                    && self.pending_sessions.len() < MAX_DEVICES
                {
                    self.pending_sessions.insert(name.to_owned(), observation);
                    return Some(Vec::new());
                }
                return None;
            };
            if self.by_name.len() >= MAX_DEVICES {
                return None;
            }
            let mut model = RobustBehaviour::new(class);
            if let Some(session) = self.pending_sessions.remove(name) {
                let _ = model.observe(&session);
            }
            self.by_name.insert(name.to_owned(), model);
        }
        let model = self.by_name.get_mut(name)?;
        Some(model.observe(&observation))
    }
}

/// With `behaviour.policy = "quarantine"`: what puts a device there.
pub struct QuarantinePolicy {
    pub quarantine: crate::quarantine::Quarantine,
    pub at_least: glyco_ml::Severity,
    pub journal: crate::journal::Journal,
    pub writer: crate::journal::JournalWriter,
}

impl QuarantinePolicy {
    async fn consider(&self, found: &[DeviceFinding]) {
        for DeviceFinding { device, finding } in found {
            let behaviour = matches!(finding.kind, glyco_ml::FindingKind::NodeBehaviour(_));
            if !behaviour || finding.severity < self.at_least {
                continue;
            }
            let from = self.journal.last_journal_seq().unwrap_or(0) + 1;
            let kind = finding.kind.name();
            if self
                .quarantine
                .begin(device, &kind, &finding.explanation, now_millis(), from)
            {
                tracing::warn!(%device, %kind, from_journal_seq = from, "device in quarantine: its readings are kept and marked, and alert no one, until the patient releases it");
                if let Err(e) = self
                    .writer
                    .save_meta(crate::quarantine::META_KEY, self.quarantine.to_json())
                    .await
                {
                    tracing::error!(error = %e, "quarantine not kept in the journal");
                }
            }
        }
    }
}

/// Runs the stage until shutdown; findings go to `findings` (the analysis
/// task records, logs and keeps them).
pub async fn run(
    task: NodeWatchTask,
    findings: mpsc::Sender<Vec<DeviceFinding>>,
    quarantine: Option<QuarantinePolicy>,
    shutdown: CancellationToken,
) {
    let NodeWatchTask { mut rx, status } = task;
    let mut models = Models {
        by_name: HashMap::new(),
        pending_sessions: HashMap::new(),
    };
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(TICK_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut found: Vec<DeviceFinding> = Vec::new();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                let at_ms = now_millis();
                for (name, model) in &mut models.by_name {
                    let observation = NodeObservation { at_ms, what: Observed::Tick };
                    found.extend(model.observe(&observation).into_iter().map(|finding| DeviceFinding {
                        device: name.clone(),
                        finding,
                    }));
                }
            }
            event = rx.recv() => {
                let Some((at_ms, event)) = event else { return };
                found.extend(models.take(at_ms, event, &status));
            }
        }
        if found.is_empty() {
            continue;
        }
        for DeviceFinding { device, finding } in &found {
            tracing::warn!(
                %device,
                kind = %finding.kind.name(),
                severity = ?finding.severity,
                confidence = finding.confidence,
                explanation = %finding.explanation,
                "node behaviour"
            );
        }
        if let Some(policy) = &quarantine {
            policy.consider(&found).await;
        }
        if findings.send(found).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::{SeqOrigin, Transport};

    fn meter_reading(device: &DeviceIdentity) -> Reading {
        Reading {
            device: device.clone(),
            transport: Transport::Ble,
            seq: 1,
            seq_origin: SeqOrigin::Device,
            device_time: Some(now_millis()),
            received_at: now_millis(),
            measurement: Measurement::CapillaryGlucose { mg_dl: 110.0 },
            reported_unit: "mg/dL".into(),
            flags: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_bonded_stranger_reaches_the_registered_ble_devices_of_its_kind_only() {
        let (watch, task) = NodeWatch::new();
        let (tx, mut rx) = mpsc::channel(16);
        let shutdown = CancellationToken::new();
        let stage = tokio::spawn(run(task, tx, None, shutdown.clone()));
        let meter = DeviceIdentity::Ble([0xC0, 0x26, 0xDA, 1, 2, 3]);
        watch.session_start(&meter.to_string(), None, None);
        watch.arrival(&meter_reading(&meter), ArrivalOutcome::New, None);
        watch.session_end(&meter.to_string());
        // Another kind's stranger is none of the meter's business.
        for _ in 0..3 {
            watch.lookalike(DeviceClass::Cuff, None);
        }
        // Three readings from a bonded, unregistered meter while ours is away.
        for _ in 0..3 {
            watch.lookalike(DeviceClass::Meter, None);
        }
        let found = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .expect("a finding")
            .expect("the stage runs");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].device, meter.to_string());
        assert_eq!(
            found[0].finding.kind.name(),
            "node_behaviour:identity_change"
        );
        let status = watch.status();
        assert_eq!((status.devices, status.unmodelled), (1, 0), "{status:?}");
        shutdown.cancel();
        stage.await.unwrap();
    }
}
