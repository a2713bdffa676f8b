//! Node behaviour: how each device talks to the hub, learned per device,
//! and findings when it stops talking like itself.
//!
//! The hub turns what it sees (an arrival and its outcome, a refusal, a
//! session start or end, a signal strength, a lookalike identity, the clock
//! ticking) into [`NodeObservation`]s, transport-agnostic, so the hub's
//! model, the fixed-threshold baseline and the offline evaluation share one
//! definition. Everything is judged on the hub's clock (`at_ms`); the
//! device's own clock is one of the things being judged.
//!
//! [`RobustBehaviour`] is the model the hub runs: robust running statistics
//! of each feature with leaky CUSUMs, small sets of payload shapes and
//! source addresses, and a Bloom filter of glucose sequences for replays.
//! [`FixedRules`] is the baseline with absolute thresholds, evaluated next
//! to it (`glyco-ml behaviour-eval`; docs/ML.md "Node behaviour").

pub mod model;
pub mod rules;
pub mod stats;

#[cfg(feature = "eval")]
pub mod eval;
#[cfg(feature = "eval")]
pub mod scenarios;
#[cfg(feature = "eval")]
pub mod traffic;

pub use model::{BehaviourSettings, RobustBehaviour};
pub use rules::FixedRules;

use crate::finding::Finding;

/// What kind of misbehaviour a finding names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BehaviourKind {
    /// Far more messages than the device ever sends, in seconds.
    Flood,
    /// Readings more often than the device's own cadence.
    Chatty,
    /// A regular device missed two of its expected readings.
    Silent,
    /// Old messages again: duplicates of long-stored readings, reused
    /// sequence numbers, or a replayed stretch of glucose values.
    Replay,
    /// The device clock is off from the hub by minutes.
    ClockSkew,
    /// The device clock stepped by an hour or more.
    ClockJump,
    /// The device's credentials in use from a second address while it is
    /// alive: stolen credentials.
    SecondSource,
    /// A BLE device of the same kind under a new identity, close by, where
    /// the registered one used to be.
    IdentityChange,
    /// The payload's shape changed and stayed changed (firmware, or an
    /// impostor).
    PayloadShape,
    /// Values move unlike the device's own history (two streams under one
    /// identity, a clone).
    ValueTexture,
    /// Many refusals about this device.
    Refusals,
}

impl BehaviourKind {
    pub const ALL: [BehaviourKind; 11] = [
        BehaviourKind::Flood,
        BehaviourKind::Chatty,
        BehaviourKind::Silent,
        BehaviourKind::Replay,
        BehaviourKind::ClockSkew,
        BehaviourKind::ClockJump,
        BehaviourKind::SecondSource,
        BehaviourKind::IdentityChange,
        BehaviourKind::PayloadShape,
        BehaviourKind::ValueTexture,
        BehaviourKind::Refusals,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BehaviourKind::Flood => "flood",
            BehaviourKind::Chatty => "chatty",
            BehaviourKind::Silent => "silent",
            BehaviourKind::Replay => "replay",
            BehaviourKind::ClockSkew => "clock_skew",
            BehaviourKind::ClockJump => "clock_jump",
            BehaviourKind::SecondSource => "second_source",
            BehaviourKind::IdentityChange => "identity_change",
            BehaviourKind::PayloadShape => "payload_shape",
            BehaviourKind::ValueTexture => "value_texture",
            BehaviourKind::Refusals => "refusals",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

impl std::fmt::Display for BehaviourKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What sort of device this is; it sets the priors (a CGM reads every few
/// minutes, a cuff once a day) until the device's own history takes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceClass {
    Cgm,
    Meter,
    Cuff,
    HeartRate,
    Scale,
    Thermometer,
    Oximeter,
}

impl DeviceClass {
    /// Typical seconds between readings.
    pub fn nominal_interval_s(self) -> f32 {
        match self {
            DeviceClass::Cgm => 300.0,
            DeviceClass::Meter => 6.0 * 3600.0,
            DeviceClass::Cuff | DeviceClass::Scale => 86_400.0,
            DeviceClass::Thermometer => 12.0 * 3600.0,
            DeviceClass::HeartRate | DeviceClass::Oximeter => 1.0,
        }
    }

    /// Spread of log(interval) expected before the device has a history.
    fn prior_log_spread(self) -> f32 {
        match self {
            DeviceClass::Cgm | DeviceClass::HeartRate | DeviceClass::Oximeter => 0.2,
            DeviceClass::Meter | DeviceClass::Thermometer => 1.5,
            DeviceClass::Cuff | DeviceClass::Scale => 0.8,
        }
    }

    /// Streams readings while it runs: a pause of a few cadences is news.
    pub fn streams(self) -> bool {
        matches!(
            self,
            DeviceClass::Cgm | DeviceClass::HeartRate | DeviceClass::Oximeter
        )
    }

    /// Streams only while connected (a strap in a workout), so silence
    /// counts only inside a session.
    pub fn streams_in_sessions(self) -> bool {
        matches!(self, DeviceClass::HeartRate | DeviceClass::Oximeter)
    }
}

/// What the journal made of an arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrivalOutcome {
    New,
    /// The same reading again (a resend).
    Duplicate,
    /// A used sequence number with different content.
    Replayed,
}

/// One admitted reading as the hub received it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    pub outcome: ArrivalOutcome,
    /// When the device says it measured (unix ms), if it says.
    pub device_time_ms: Option<i64>,
    /// Payload bytes on the wire (MQTT), if known.
    pub bytes: Option<u32>,
    /// A hash of the payload's structure (key order, number formats,
    /// optional fields), digits left out; 0 if unknown.
    pub shape: u64,
    /// The main value (glucose mg/dL, systolic, bpm, kg, °C, %).
    pub value: Option<f32>,
    /// The device announced a pause (sensor session stopped, warm-up): the
    /// silence that follows is expected.
    pub pause_announced: bool,
}

/// Refusals, grouped by what they suggest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalGroup {
    Credentials,
    Payload,
    Replay,
    OverLimit,
    Protocol,
    Removed,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observed {
    Arrival(Arrival),
    Refusal(RefusalGroup),
    /// A connection of the device began. `source` is a keyed hash of the
    /// network address (MQTT); `replaced` is `Some(source of the session it
    /// took over)` when another session of the device was still open.
    SessionStart {
        source: Option<u64>,
        replaced: Option<Option<u64>>,
    },
    SessionEnd,
    /// Received signal strength (BLE), dBm.
    Rssi(i16),
    /// An unregistered identity offering this device's service was refused,
    /// heard at this strength.
    Lookalike {
        rssi: Option<i16>,
    },
    /// Time passes (silence is found on ticks).
    Tick,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeObservation {
    /// Hub clock, unix ms.
    pub at_ms: i64,
    pub what: Observed,
}

/// A model of one device's behaviour: the hub's and the baseline.
pub trait BehaviourDetector {
    fn observe(&mut self, observation: &NodeObservation) -> Vec<Finding>;
    /// Bytes of state this device costs.
    fn state_bytes(&self) -> usize;
    fn name(&self) -> &'static str;
}

/// Per-kind cool-down: a kind reported for a device is not reported again
/// for that device within `cooldown_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Reported([Option<i64>; BehaviourKind::ALL.len()]);

impl Reported {
    pub(crate) fn may_report(&mut self, kind: BehaviourKind, at_ms: i64, cooldown_ms: i64) -> bool {
        let slot = &mut self.0[kind.index()];
        if slot.is_some_and(|last| at_ms.saturating_sub(last) < cooldown_ms) {
            return false;
        }
        *slot = Some(at_ms);
        true
    }
}
