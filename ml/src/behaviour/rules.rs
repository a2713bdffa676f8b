//! The baseline: fixed thresholds on each device class's nominal cadence,
//! the way a hand-written watchdog would do it. It is evaluated next to the
//! learned model so the model has to earn its place (docs/ML.md).

use super::stats::{RecentCount, SmallSet};
use super::{
    ArrivalOutcome, BehaviourDetector, BehaviourKind, DeviceClass, NodeObservation, Observed,
    Reported,
};
use crate::finding::{Finding, FindingKind, Severity};

const MINUTE_MS: i64 = 60_000;
const COOLDOWN_MS: i64 = 3_600_000;

#[derive(Debug, Clone, PartialEq)]
pub struct FixedRules {
    class: DeviceClass,
    /// Arrivals in the current 10-minute window (a tumbling count).
    window: (i64, usize),
    short_intervals: u32,
    refusals_10min: RecentCount<16>,
    last_heard_ms: Option<i64>,
    last_new: Option<(i64, Option<f32>)>,
    silence_reported: bool,
    in_session: bool,
    first_bytes: Option<u32>,
    shapes: SmallSet<8>,
    arrivals: u32,
    reported: Reported,
}

impl FixedRules {
    pub fn new(class: DeviceClass) -> Self {
        Self {
            class,
            window: (0, 0),
            short_intervals: 0,
            refusals_10min: RecentCount::default(),
            last_heard_ms: None,
            last_new: None,
            silence_reported: false,
            in_session: false,
            first_bytes: None,
            shapes: SmallSet::default(),
            arrivals: 0,
            reported: Reported::default(),
        }
    }

    fn report(
        &mut self,
        kind: BehaviourKind,
        at_ms: i64,
        explanation: String,
        out: &mut Vec<Finding>,
    ) {
        if self.reported.may_report(kind, at_ms, COOLDOWN_MS) {
            out.push(Finding {
                kind: FindingKind::NodeBehaviour(kind),
                severity: Severity::Warning,
                confidence: 1.0,
                explanation,
                at_ms,
            });
        }
    }

    fn nominal_ms(&self) -> f32 {
        self.class.nominal_interval_s() * 1000.0
    }
}

impl BehaviourDetector for FixedRules {
    fn observe(&mut self, observation: &NodeObservation) -> Vec<Finding> {
        let mut out = Vec::new();
        let at = observation.at_ms;
        match observation.what {
            Observed::Arrival(arrival) => {
                self.last_heard_ms = Some(at);
                self.silence_reported = false;
                if at.saturating_sub(self.window.0) >= 10 * MINUTE_MS {
                    self.window = (at, 0);
                }
                self.window.1 += 1;
                // More than three times the nominal count in 10 minutes, +20.
                let limit = (3.0 * 600_000.0 / self.nominal_ms()) as usize + 20;
                if self.window.1 > limit {
                    self.report(
                        BehaviourKind::Flood,
                        at,
                        "too many readings in 10 minutes".into(),
                        &mut out,
                    );
                }
                if let Some(device) = arrival.device_time_ms
                    && at.saturating_sub(device).saturating_abs() > 5 * MINUTE_MS
                    && arrival.outcome == ArrivalOutcome::New
                {
                    self.report(
                        BehaviourKind::ClockSkew,
                        at,
                        "device clock more than 5 min off".into(),
                        &mut out,
                    );
                }
                match arrival.outcome {
                    ArrivalOutcome::Replayed => self.report(
                        BehaviourKind::Replay,
                        at,
                        "a sequence number reused".into(),
                        &mut out,
                    ),
                    ArrivalOutcome::Duplicate => {
                        if arrival
                            .device_time_ms
                            .is_some_and(|d| at.saturating_sub(d) > 3_600_000)
                        {
                            self.report(
                                BehaviourKind::Replay,
                                at,
                                "an hour-old reading again".into(),
                                &mut out,
                            );
                        }
                    }
                    ArrivalOutcome::New => {
                        self.arrivals += 1;
                        if let Some((before, value_before)) = self.last_new {
                            if (at.saturating_sub(before) as f32) < 0.25 * self.nominal_ms() {
                                self.short_intervals += 1;
                            } else {
                                self.short_intervals = 0;
                            }
                            if self.short_intervals >= 5 {
                                self.report(
                                    BehaviourKind::Chatty,
                                    at,
                                    "five readings in a row under a quarter of the cadence".into(),
                                    &mut out,
                                );
                            }
                            if self.class == DeviceClass::Cgm
                                && let (Some(v), Some(b)) = (arrival.value, value_before)
                                && (v - b).abs() > 30.0
                            {
                                self.report(
                                    BehaviourKind::ValueTexture,
                                    at,
                                    "glucose moved over 30 mg/dL between readings".into(),
                                    &mut out,
                                );
                            }
                        }
                        self.last_new = Some((at, arrival.value));
                        if let Some(bytes) = arrival.bytes {
                            let first = *self.first_bytes.get_or_insert(bytes);
                            if (bytes as f32 - first as f32).abs() > 0.5 * first as f32 {
                                self.report(
                                    BehaviourKind::PayloadShape,
                                    at,
                                    "payload size off by half".into(),
                                    &mut out,
                                );
                            }
                        }
                        if arrival.shape != 0 {
                            if self.arrivals > 10 && !self.shapes.contains(arrival.shape) {
                                self.report(
                                    BehaviourKind::PayloadShape,
                                    at,
                                    "a new payload shape".into(),
                                    &mut out,
                                );
                            }
                            self.shapes.insert(arrival.shape, at);
                        }
                    }
                }
            }
            Observed::Refusal(_) => {
                self.refusals_10min.push(at);
                if self.refusals_10min.within(at, 10 * MINUTE_MS) > 10 {
                    self.report(
                        BehaviourKind::Refusals,
                        at,
                        "over 10 refusals in 10 minutes".into(),
                        &mut out,
                    );
                }
            }
            Observed::SessionStart { source, replaced } => {
                self.in_session = true;
                if let (Some(new), Some(Some(old))) = (source, replaced)
                    && new != old
                {
                    self.report(
                        BehaviourKind::SecondSource,
                        at,
                        "a takeover from another address".into(),
                        &mut out,
                    );
                }
            }
            Observed::SessionEnd => self.in_session = false,
            Observed::Rssi(_) => {}
            Observed::Lookalike { .. } => self.report(
                BehaviourKind::IdentityChange,
                at,
                "a lookalike identity".into(),
                &mut out,
            ),
            Observed::Tick => {
                let streaming = !self.class.streams_in_sessions() || self.in_session;
                if let Some(last) = self.last_heard_ms
                    && !self.silence_reported
                    && streaming
                    && at.saturating_sub(last) as f32 > 3.0 * self.nominal_ms()
                {
                    self.silence_reported = true;
                    self.report(
                        BehaviourKind::Silent,
                        at,
                        "silent for three nominal intervals".into(),
                        &mut out,
                    );
                }
            }
        }
        out
    }

    fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
    }

    fn name(&self) -> &'static str {
        "fixed rules"
    }
}
