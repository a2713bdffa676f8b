//! The hub's behaviour model: robust running statistics of each device's
//! own behaviour, with leaky CUSUMs where an effect builds up over events
//! and direct checks where one event says enough (a takeover from another
//! address while the device is alive, a device clock in the future).
//!
//! Everything starts from per-class priors ([`DeviceClass`]) and becomes
//! the device's own as it talks; statistics are frozen while their CUSUM is
//! half-way to an alarm, so a slow attack is not learned as normal.

use super::stats::{
    DecayingCount, LeakyCusum, RecentCount, RobustStat, RotatingBloom, SmallSet, mix,
};
use super::{
    ArrivalOutcome, BehaviourDetector, BehaviourKind, DeviceClass, NodeObservation, Observed,
    RefusalGroup, Reported,
};
use crate::finding::{Finding, FindingKind, Severity};

/// The model's knobs; the defaults are what `glyco-ml behaviour-eval`
/// measured (docs/ML.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BehaviourSettings {
    /// CUSUM alarm level, in scales.
    pub threshold: f32,
    /// CUSUM slack per event, in scales.
    pub slack: f32,
    /// CUSUMs forget with this time constant.
    pub leak_ms: i64,
    /// A kind is reported at most once per device in this time.
    pub cooldown_ms: i64,
    /// Findings that need the device's own history wait for this many
    /// arrivals and this much time.
    pub learning_arrivals: u32,
    pub learning_ms: i64,
    /// Statistics remember about this many events.
    pub memory: u32,
}

impl Default for BehaviourSettings {
    fn default() -> Self {
        Self {
            threshold: 8.0,
            slack: 2.0,
            leak_ms: 3_600_000,
            cooldown_ms: 3_600_000,
            learning_arrivals: 20,
            learning_ms: 24 * 3_600_000,
            memory: 500,
        }
    }
}

const MINUTE_MS: i64 = 60_000;
/// Most one event adds to a CUSUM, in scales.
const Z_CAP: f32 = 6.0;
/// Glucose sequences covering this long identify a stretch of a trace
/// (6 readings of a 5-minute CGM, 25 of a 1-minute one: a slow, straight
/// stretch of a few readings recurs in any trace).
const GRAM_SPAN_S: f32 = 1500.0;
const GRAM_MAX: usize = 32;
/// A replayed trace shows as this many remembered sequences among the last 8 checked.
const GRAM_HITS: u32 = 3;

/// The newest new reading, for intervals, pacing and value texture.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Previous {
    hub_ms: i64,
    device_ms: Option<i64>,
    value: Option<f32>,
}

/// Memory of glucose sequences (CGMs only): a replayed stretch of the
/// device's own trace, re-stamped, repeats sequences a live sensor never
/// repeats exactly.
#[derive(Debug, Clone, PartialEq)]
struct Grams {
    bloom: RotatingBloom,
    window: [i32; GRAM_MAX],
    filled: usize,
    /// Readings per sequence, fixed once the cadence is learned.
    length: Option<usize>,
    /// Hits among the last 8 checks, one bit each.
    hits: u8,
}

impl Grams {
    fn new() -> Self {
        // 2 x 2 KiB, 1,500 sequences per generation, 6 hashes: ~0.6 % false
        // positives per generation. Half the sequences are kept (chosen by
        // content, so a replay hits the same half): a 5-minute CGM is
        // remembered for 10-20 days, a 1-minute one for 2-4.
        Self {
            bloom: RotatingBloom::new(256, 1_500, 6),
            window: [0; GRAM_MAX],
            filled: 0,
            length: None,
            hits: 0,
        }
    }

    /// Adds a value; true when the recent sequences look replayed.
    /// `cadence_s` is `Some` once the device's cadence is learned.
    fn push(&mut self, value: f32, cadence_s: Option<f32>) -> bool {
        self.window.rotate_left(1);
        self.window[GRAM_MAX - 1] = (value * 10.0).round() as i32;
        self.filled = (self.filled + 1).min(GRAM_MAX);
        let Some(cadence_s) = cadence_s else {
            return false;
        };
        let length = *self.length.get_or_insert(
            ((GRAM_SPAN_S / cadence_s.max(1.0)).round() as usize).clamp(6, GRAM_MAX),
        );
        if self.filled < length {
            return false;
        }
        let gram = &self.window[GRAM_MAX - length..];
        let (low, high) = gram
            .iter()
            .fold((i32::MAX, i32::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
        // Flat stretches recur in any trace; only moving ones identify it.
        if i64::from(high) - i64::from(low) < 100 {
            return false;
        }
        let key = gram
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, v| mix(h ^ (*v as u32 as u64)));
        if !key.is_multiple_of(2) {
            return false;
        }
        let hit = self.bloom.contains(key);
        self.hits = (self.hits << 1) | u8::from(hit);
        self.bloom.insert(key);
        self.hits.count_ones() >= GRAM_HITS
    }
}

/// One device's behaviour model.
#[derive(Debug, Clone, PartialEq)]
pub struct RobustBehaviour {
    class: DeviceClass,
    settings: BehaviourSettings,
    first_ms: Option<i64>,
    arrivals: u32,
    previous: Option<Previous>,
    last_heard_ms: Option<i64>,
    pause_announced: bool,
    silence_reported: bool,
    in_session: bool,
    /// ln(seconds between readings), device clock where it has one.
    interval: RobustStat,
    chatty: LeakyCusum,
    /// Seconds from the device's clock to the hub's on paced arrivals.
    offset: RobustStat,
    /// Longest time from measuring to arrival seen (s): a spot device that
    /// always sends at once (a Wi-Fi scale) makes a late reading news.
    max_delay_s: f32,
    /// ln(0.2 + |Δglucose| per minute), CGMs.
    texture: RobustStat,
    texture_cusum: LeakyCusum,
    bytes: RobustStat,
    /// Fresh messages and refusals in about the last minute.
    burst: DecayingCount,
    /// Refusals in about the last ten minutes.
    refusals: DecayingCount,
    replays: RecentCount<4>,
    old_duplicates: RecentCount<4>,
    shapes: SmallSet<8>,
    new_shape: Option<(u64, u8)>,
    sources: SmallSet<4>,
    takeovers: RecentCount<4>,
    rssi: RobustStat,
    lookalikes: RecentCount<4>,
    grams: Option<Box<Grams>>,
    /// The latest gaps between new readings (hub clock, ms), for the
    /// stale-data alarm.
    gaps: [f32; 8],
    gap_count: usize,
    stale_reported: bool,
    reported: Reported,
}

impl RobustBehaviour {
    pub fn new(class: DeviceClass) -> Self {
        Self::with_settings(class, BehaviourSettings::default())
    }

    pub fn with_settings(class: DeviceClass, settings: BehaviourSettings) -> Self {
        let memory = settings.memory;
        Self {
            class,
            settings,
            first_ms: None,
            arrivals: 0,
            previous: None,
            last_heard_ms: None,
            pause_announced: false,
            silence_reported: false,
            in_session: false,
            interval: RobustStat::new(
                class.nominal_interval_s().ln(),
                class.prior_log_spread(),
                0.1,
                memory,
                5,
            ),
            chatty: LeakyCusum::default(),
            offset: RobustStat::new(0.0, 30.0, 5.0, memory, 5),
            max_delay_s: 0.0,
            texture: RobustStat::new(0.0, 0.8, 0.3, memory, 5),
            texture_cusum: LeakyCusum::default(),
            bytes: RobustStat::new(0.0, 1000.0, 2.0, memory, 1),
            burst: DecayingCount::default(),
            refusals: DecayingCount::default(),
            replays: RecentCount::default(),
            old_duplicates: RecentCount::default(),
            shapes: SmallSet::default(),
            new_shape: None,
            sources: SmallSet::default(),
            takeovers: RecentCount::default(),
            rssi: RobustStat::new(-70.0, 10.0, 3.0, memory, 0),
            lookalikes: RecentCount::default(),
            grams: (class == DeviceClass::Cgm).then(|| Box::new(Grams::new())),
            gaps: [0.0; 8],
            gap_count: 0,
            stale_reported: false,
            reported: Reported::default(),
        }
    }

    pub fn class(&self) -> DeviceClass {
        self.class
    }

    /// The device's learned cadence, seconds.
    pub fn cadence_s(&self) -> f32 {
        self.interval.mean().exp()
    }

    /// Whether the device's own history has replaced the priors. A cuff
    /// reads once a day, so it learns from fewer readings than a CGM.
    pub fn learned(&self, at_ms: i64) -> bool {
        let needed = if self.class.streams() {
            self.settings.learning_arrivals
        } else {
            self.settings.learning_arrivals.div_ceil(4)
        };
        self.arrivals >= needed
            && self
                .first_ms
                .is_some_and(|first| at_ms.saturating_sub(first) >= self.settings.learning_ms)
    }

    /// When a regular device is overdue: it missed two readings (+25 %).
    /// `None` for a device without a regular cadence or during a pause.
    pub fn overdue_after_ms(&self) -> Option<i64> {
        if self.pause_announced || self.interval.count() < 10 {
            return None;
        }
        let streaming =
            self.class.streams() && (!self.class.streams_in_sessions() || self.in_session);
        let cadence_ms = (self.cadence_s() * 1000.0) as i64;
        let last = self.last_heard_ms?;
        if streaming {
            // A home Wi-Fi outage of a few minutes is normal and looks the
            // same; ten minutes is the shortest silence reported.
            Some(last.saturating_add((cadence_ms * 5 / 2 + 1000).max(10 * MINUTE_MS)))
        } else {
            // Meters and cuffs have no cadence to miss; a week without them is news.
            Some(last.saturating_add((7 * 24 * 60 * MINUTE_MS).max(cadence_ms * 4)))
        }
    }

    /// When a streaming device has missed two of its expected readings
    /// (+25 %), by the median of its latest gaps: the stale-data alarm.
    pub fn stale_after_ms(&self) -> Option<i64> {
        let streaming =
            self.class.streams() && (!self.class.streams_in_sessions() || self.in_session);
        if !streaming || self.pause_announced || self.gap_count < 4 {
            return None;
        }
        let mut gaps = self.gaps;
        let filled = self.gap_count.min(gaps.len());
        gaps[..filled].sort_by(f32::total_cmp);
        let median = gaps[filled / 2];
        Some(self.last_heard_ms?.saturating_add((2.25 * median) as i64))
    }

    fn finding(
        &mut self,
        kind: BehaviourKind,
        severity: Severity,
        confidence: f32,
        at_ms: i64,
        explanation: String,
        out: &mut Vec<Finding>,
    ) {
        if self
            .reported
            .may_report(kind, at_ms, self.settings.cooldown_ms)
        {
            out.push(Finding {
                kind: FindingKind::NodeBehaviour(kind),
                severity,
                confidence: confidence.clamp(0.0, 1.0),
                explanation,
                at_ms,
            });
        }
    }

    fn cusum_confidence(&self, sum: f32) -> f32 {
        let h = self.settings.threshold;
        (1.0 - (-(sum - h) / h).exp()).clamp(0.5, 0.99)
    }

    /// Fresh messages and refusals count towards a flood; a backlog sent
    /// after a drop-out (old device times) does not.
    /// Fresh messages a minute above which it is a flood: from the class's
    /// cadence until the device's own is learned, so a flood in the first
    /// day is not taken for the device's habit.
    fn flood_limit(&self, at_ms: i64) -> f32 {
        let cadence_s = if self.learned(at_ms) {
            self.cadence_s()
        } else {
            self.class.nominal_interval_s()
        };
        (5.0 * 60.0 / cadence_s.max(0.05) + 10.0).max(20.0)
    }

    fn count_burst(&mut self, at_ms: i64, out: &mut Vec<Finding>) {
        let count = self.burst.add(1.0, at_ms, MINUTE_MS);
        let limit = self.flood_limit(at_ms);
        if count > limit {
            let explanation = format!(
                "{:.0} messages in about a minute; over {limit:.0} is a flood for this device",
                count.ceil()
            );
            self.finding(
                BehaviourKind::Flood,
                Severity::Urgent,
                0.95,
                at_ms,
                explanation,
                out,
            );
        }
    }

    fn arrival(&mut self, at_ms: i64, arrival: &super::Arrival, out: &mut Vec<Finding>) {
        let mut arrival = *arrival;
        arrival.value = arrival.value.filter(|v| v.is_finite());
        let arrival = &arrival;
        self.first_ms.get_or_insert(at_ms);
        self.last_heard_ms = Some(at_ms);
        self.silence_reported = false;
        let cadence_ms = self.cadence_s() * 1000.0;
        let fresh = arrival.device_time_ms.is_none_or(|device| {
            (at_ms.saturating_sub(device).saturating_abs() as f32)
                < (2.0 * cadence_ms).max(120_000.0)
        });
        if fresh {
            self.count_burst(at_ms, out);
        }
        match arrival.outcome {
            ArrivalOutcome::Duplicate => {
                let age = arrival
                    .device_time_ms
                    .map(|device| at_ms.saturating_sub(device));
                if age.is_some_and(|age| age > 2 * 3_600_000) {
                    self.old_duplicates.push(at_ms);
                    if self.old_duplicates.within(at_ms, 10 * MINUTE_MS) >= 2 {
                        let hours = age.unwrap_or(0) as f32 / 3_600_000.0;
                        let explanation = format!(
                            "readings stored long ago arrive again ({hours:.1} h old); a resend after a drop-out is minutes old"
                        );
                        self.finding(
                            BehaviourKind::Replay,
                            Severity::Urgent,
                            0.9,
                            at_ms,
                            explanation,
                            out,
                        );
                    }
                }
                return;
            }
            ArrivalOutcome::Replayed => {
                self.note_replayed_sequence(at_ms, out);
                return;
            }
            ArrivalOutcome::New => {}
        }
        self.arrivals = self.arrivals.saturating_add(1);
        self.stale_reported = false;
        let learned = self.learned(at_ms);
        self.pause_announced = arrival.pause_announced;
        let previous = self.previous;
        self.previous = Some(Previous {
            hub_ms: at_ms,
            device_ms: arrival.device_time_ms,
            value: arrival.value,
        });
        self.check_shape(at_ms, arrival, learned, out);
        let Some(previous) = previous else {
            return;
        };
        let hub_dt = at_ms.saturating_sub(previous.hub_ms) as f32;
        // Gaps of a stream as sent (a backlog's bursts say nothing of it).
        if fresh && hub_dt > 0.0 {
            self.gaps[self.gap_count % 8] = hub_dt;
            self.gap_count = self.gap_count.saturating_add(1);
        }
        let device_dt = match (arrival.device_time_ms, previous.device_ms) {
            (Some(now), Some(before)) => Some(now.saturating_sub(before) as f32),
            _ => None,
        };
        self.check_interval(at_ms, hub_dt, device_dt, learned, out);
        if let Some(device_ms) = arrival.device_time_ms {
            self.check_clock(at_ms, device_ms, hub_dt, device_dt, out);
        }
        if let (Some(value), Some(before), Some(dt)) = (arrival.value, previous.value, device_dt) {
            self.check_texture(at_ms, value, before, dt, learned, out);
        }
        let cadence_s = learned.then(|| self.cadence_s());
        if let (Some(grams), Some(value)) = (self.grams.as_mut(), arrival.value)
            && grams.push(value, cadence_s)
        {
            let explanation = "the glucose values repeat a stretch this sensor sent before, value for value; a live sensor does not".to_owned();
            self.finding(
                BehaviourKind::Replay,
                Severity::Urgent,
                0.9,
                at_ms,
                explanation,
                out,
            );
        }
    }

    fn note_replayed_sequence(&mut self, at_ms: i64, out: &mut Vec<Finding>) {
        self.replays.push(at_ms);
        let recent = self.replays.within(at_ms, 10 * MINUTE_MS);
        if recent >= 2 {
            let explanation =
                format!("{recent} sequence numbers reused for different readings in 10 minutes");
            self.finding(
                BehaviourKind::Replay,
                Severity::Urgent,
                0.9,
                at_ms,
                explanation,
                out,
            );
        }
    }

    fn check_interval(
        &mut self,
        at_ms: i64,
        hub_dt: f32,
        device_dt: Option<f32>,
        learned: bool,
        out: &mut Vec<Finding>,
    ) {
        // The device's clock spaces a backlog correctly; the hub's does not.
        let dt_ms = device_dt.filter(|dt| *dt > 0.0).unwrap_or(hub_dt);
        let x = (dt_ms / 1000.0).max(0.05).ln();
        let z = self.interval.z(x);
        let (h, k, leak) = (
            self.settings.threshold,
            self.settings.slack,
            self.settings.leak_ms,
        );
        // One odd interval (a re-test) adds at most Z_CAP; three in a row alarm.
        let sum = self.chatty.step((-z).min(Z_CAP), k, at_ms, leak);
        if !learned {
            // The priors are a class's, not this device's: learn, never alarm.
            self.chatty.reset();
        } else if sum > h {
            let confidence = self.cusum_confidence(sum);
            let explanation = format!(
                "readings {:.0} s apart; this device's cadence is {:.0} s (z = {z:.1})",
                dt_ms / 1000.0,
                self.cadence_s()
            );
            self.finding(
                BehaviourKind::Chatty,
                Severity::Warning,
                confidence,
                at_ms,
                explanation,
                out,
            );
            self.chatty.reset();
        }
        // Nothing is learned during a flood or half-way to an alarm.
        let flooding = self.burst.value_at(at_ms, MINUTE_MS) > self.flood_limit(at_ms);
        if self.chatty.sum() < h / 2.0 && !flooding {
            self.interval.update(x);
        }
    }

    fn check_clock(
        &mut self,
        at_ms: i64,
        device_ms: i64,
        hub_dt: f32,
        device_dt: Option<f32>,
        out: &mut Vec<Finding>,
    ) {
        let skew_s = at_ms.saturating_sub(device_ms) as f32 / 1000.0;
        let off = skew_s - self.offset.mean();
        // Sent as measured: hub and device agree on the time between readings.
        // Transmission delays do not grow with the interval; clock drift
        // does, by at most about 1 ms per second.
        let paced =
            device_dt.is_some_and(|dt| dt > 0.0 && (hub_dt - dt).abs() <= 15_000.0 + 0.001 * dt);
        let margin = (6.0 * self.offset.scale()).max(180.0);
        // A device clock ahead of the hub is never a delay; behind it is one
        // only for readings that were not sent as measured (a backlog).
        // The prior (in sync within seconds, as BLE time sync and NTP keep
        // devices) holds until the device's own offset is learned.
        let ahead = off < -margin;
        // A spot device that never sent late (a Wi-Fi scale) is not late
        // now. A CGM's backlog after an outage is late; its next reading
        // shows whether the clock moved (paced).
        let never_late = self.arrivals >= 10 && !self.class.streams() && self.max_delay_s < 120.0;
        self.max_delay_s = self.max_delay_s.max(skew_s - self.offset.mean());
        let behind = off > margin.max(300.0) && (paced || never_late);
        if ahead || behind {
            let (kind, severity) = if off.abs() >= 3600.0 {
                (BehaviourKind::ClockJump, Severity::Warning)
            } else {
                (BehaviourKind::ClockSkew, Severity::Warning)
            };
            let explanation = format!(
                "device clock {} the hub's by {}, usually {:+.0} s",
                if off < 0.0 { "ahead of" } else { "behind" },
                human_seconds(off.abs()),
                -self.offset.mean()
            );
            self.finding(kind, severity, 0.9, at_ms, explanation, out);
            return;
        }
        if paced {
            self.offset.update(skew_s);
        }
    }

    fn check_texture(
        &mut self,
        at_ms: i64,
        value: f32,
        before: f32,
        device_dt_ms: f32,
        learned: bool,
        out: &mut Vec<Finding>,
    ) {
        if self.class != DeviceClass::Cgm || !(30_000.0..=1_200_000.0).contains(&device_dt_ms) {
            return;
        }
        let per_minute = (value - before).abs() / (device_dt_ms / 60_000.0);
        let x = (0.2 + per_minute).ln();
        if !x.is_finite() {
            return;
        }
        let z = self.texture.z(x);
        let (h, k, leak) = (
            self.settings.threshold,
            self.settings.slack,
            self.settings.leak_ms,
        );
        let sum = self.texture_cusum.step(z.min(Z_CAP), k, at_ms, leak);
        if !learned {
            self.texture_cusum.reset();
        } else if sum > h {
            let confidence = self.cusum_confidence(sum);
            let explanation = format!(
                "glucose moves {per_minute:.1} mg/dL/min between readings, unlike this sensor (z = {z:.1}); two streams under one identity?"
            );
            self.finding(
                BehaviourKind::ValueTexture,
                Severity::Urgent,
                confidence,
                at_ms,
                explanation,
                out,
            );
            self.texture_cusum.reset();
        }
        if self.texture_cusum.sum() < h / 2.0 {
            self.texture.update(x);
        }
    }

    fn check_shape(
        &mut self,
        at_ms: i64,
        arrival: &super::Arrival,
        learned: bool,
        out: &mut Vec<Finding>,
    ) {
        let bytes_z = arrival.bytes.map(|b| self.bytes.z(b as f32));
        if let Some(bytes) = arrival.bytes {
            self.bytes.update(bytes as f32);
        }
        if arrival.shape == 0 {
            return;
        }
        if !learned || self.shapes.contains(arrival.shape) {
            self.shapes.insert(arrival.shape, at_ms);
            self.new_shape = None;
            return;
        }
        let seen = match self.new_shape {
            Some((shape, n)) if shape == arrival.shape => n.saturating_add(1),
            _ => 1,
        };
        self.new_shape = Some((arrival.shape, seen));
        // A changed shape must persist for a second reading: BLE devices
        // send optional fields (meal context, measurement status) now and
        // then. Wi-Fi shapes leave optional keys out, so one reading of a
        // spot device (a scale) is enough there.
        let confirm = if self.class.streams() || arrival.bytes.is_none() {
            2
        } else {
            1
        };
        if seen >= confirm {
            let explanation = format!(
                "the payload has a shape this device never sent before ({} known shapes{})",
                self.shapes.len(),
                bytes_z.map_or(String::new(), |z| format!(", size z = {z:.1}"))
            );
            self.finding(
                BehaviourKind::PayloadShape,
                Severity::Warning,
                0.8,
                at_ms,
                explanation,
                out,
            );
            self.shapes.insert(arrival.shape, at_ms);
            self.new_shape = None;
        }
    }

    fn refusal(&mut self, at_ms: i64, group: RefusalGroup, out: &mut Vec<Finding>) {
        self.count_burst(at_ms, out);
        let window = 10 * MINUTE_MS;
        let count = self.refusals.add(1.0, at_ms, window);
        if group == RefusalGroup::Replay {
            self.note_replayed_sequence(at_ms, out);
        }
        if count > 10.0 {
            let explanation = format!(
                "{count:.0} refusals about this device in about ten minutes (latest: {group:?})"
            );
            self.finding(
                BehaviourKind::Refusals,
                Severity::Warning,
                0.9,
                at_ms,
                explanation,
                out,
            );
        }
    }

    fn session_start(
        &mut self,
        at_ms: i64,
        source: Option<u64>,
        replaced: Option<Option<u64>>,
        out: &mut Vec<Finding>,
    ) {
        self.in_session = true;
        if self.class.streams_in_sessions() {
            // Silence inside a session counts from its start.
            self.last_heard_ms = Some(at_ms);
        }
        let Some(source) = source else {
            return;
        };
        if let Some(Some(old)) = replaced
            && old != source
        {
            self.takeovers.push(at_ms);
            let cadence_ms = (self.cadence_s() * 1000.0) as i64;
            let alive_window = (cadence_ms * 5 / 2).clamp(2 * MINUTE_MS, 30 * MINUTE_MS);
            let alive = self
                .last_heard_ms
                .is_some_and(|last| at_ms.saturating_sub(last) <= alive_window);
            let flapping = self.takeovers.within(at_ms, 30 * MINUTE_MS) >= 2;
            if alive || flapping {
                let explanation = format!(
                    "a second address took over this device's open session while it was {}; stolen credentials?",
                    if flapping {
                        "switching back and forth"
                    } else {
                        "sending"
                    }
                );
                self.finding(
                    BehaviourKind::SecondSource,
                    Severity::Urgent,
                    0.95,
                    at_ms,
                    explanation,
                    out,
                );
            }
        }
        self.sources.insert(source, at_ms);
    }

    fn lookalike(&mut self, at_ms: i64, rssi: Option<i16>, out: &mut Vec<Finding>) {
        self.lookalikes.push(at_ms);
        let close = match rssi {
            Some(dbm) if self.rssi.count() >= 5 => self.rssi.z(f32::from(dbm)) > -3.0,
            _ => false,
        };
        let persistent = self.lookalikes.within(at_ms, 10 * MINUTE_MS) >= 3;
        if !self.in_session && (close || persistent) {
            let explanation = format!(
                "a device of this kind under a new identity{} asks to connect while this one is away",
                rssi.map_or(String::new(), |d| format!(
                    " at {d} dBm (this one: {:.0} dBm)",
                    self.rssi.mean()
                ))
            );
            self.finding(
                BehaviourKind::IdentityChange,
                Severity::Urgent,
                0.8,
                at_ms,
                explanation,
                out,
            );
        }
    }

    fn tick(&mut self, at_ms: i64, out: &mut Vec<Finding>) {
        if !self.stale_reported
            && let (Some(due), Some(last)) = (self.stale_after_ms(), self.last_heard_ms)
            && at_ms > due
        {
            self.stale_reported = true;
            out.push(Finding {
                kind: FindingKind::StaleData,
                severity: Severity::Warning,
                confidence: 1.0,
                explanation: format!(
                    "no reading for {}; this device sends about every {} (two missed)",
                    human_seconds(at_ms.saturating_sub(last) as f32 / 1000.0),
                    human_seconds((due - last) as f32 / 2250.0)
                ),
                at_ms,
            });
        }
        if self.silence_reported || !self.learned(at_ms) {
            return;
        }
        let (Some(due), Some(last)) = (self.overdue_after_ms(), self.last_heard_ms) else {
            return;
        };
        if at_ms > due {
            self.silence_reported = true;
            let explanation = format!(
                "nothing for {}; this device sends every {}",
                human_seconds(at_ms.saturating_sub(last) as f32 / 1000.0),
                human_seconds(self.cadence_s())
            );
            self.finding(
                BehaviourKind::Silent,
                Severity::Warning,
                0.9,
                at_ms,
                explanation,
                out,
            );
        }
    }
}

impl BehaviourDetector for RobustBehaviour {
    fn observe(&mut self, observation: &NodeObservation) -> Vec<Finding> {
        let mut out = Vec::new();
        let at_ms = observation.at_ms;
        match observation.what {
            Observed::Arrival(arrival) => self.arrival(at_ms, &arrival, &mut out),
            Observed::Refusal(group) => self.refusal(at_ms, group, &mut out),
            Observed::SessionStart { source, replaced } => {
                self.session_start(at_ms, source, replaced, &mut out)
            }
            Observed::SessionEnd => self.in_session = false,
            Observed::Rssi(dbm) => self.rssi.update(f32::from(dbm)),
            Observed::Lookalike { rssi } => self.lookalike(at_ms, rssi, &mut out),
            Observed::Tick => self.tick(at_ms, &mut out),
        }
        out
    }

    fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .grams
                .as_ref()
                .map_or(0, |g| std::mem::size_of::<Grams>() + g.bloom.bytes())
    }

    fn name(&self) -> &'static str {
        "robust"
    }
}

/// "42 s", "12 min", "3.5 h", "2.0 days".
pub fn human_seconds(seconds: f32) -> String {
    if seconds < 90.0 {
        format!("{seconds:.0} s")
    } else if seconds < 5400.0 {
        format!("{:.0} min", seconds / 60.0)
    } else if seconds < 172_800.0 {
        format!("{:.1} h", seconds / 3600.0)
    } else {
        format!("{:.1} days", seconds / 86_400.0)
    }
}
