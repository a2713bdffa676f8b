//! Normal traffic of a home hub's devices, for evaluating behaviour models:
//! a CGM every 1 or 5 minutes over Wi-Fi, a meter a few times a day and a
//! cuff daily over BLE, a heart-rate strap in workouts, a Wi-Fi scale each
//! morning. The traps a model must not fire on are part of normal: jitter,
//! Wi-Fi drop-outs followed by a backlog and a few resends, an address
//! change after a drop-out, sensor change-overs, meter re-tests and
//! readings taken away from home and uploaded later, empty batteries, a
//! neighbour's device of the same kind in radio range, a rare second
//! payload shape.
//!
//! The parameters are our judgement of a typical home, not measurements;
//! docs/ML.md lists them.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::stats::mix;
use super::{Arrival, ArrivalOutcome, DeviceClass, NodeObservation, Observed};

/// 2026-01-01T00:00:00Z: the generated traffic starts here (hub clock).
pub const START_MS: i64 = 1_767_225_600_000;
pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;
/// MQTT keep-alive: a dropped Wi-Fi device's session ends this long after.
const KEEP_ALIVE_MS: i64 = 90_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Profile {
    Cgm { cadence_s: u32 },
    Meter { per_day: u32 },
    Cuff,
    HeartRateStrap,
    Scale,
}

impl Profile {
    pub fn class(self) -> DeviceClass {
        match self {
            Profile::Cgm { .. } => DeviceClass::Cgm,
            Profile::Meter { .. } => DeviceClass::Meter,
            Profile::Cuff => DeviceClass::Cuff,
            Profile::HeartRateStrap => DeviceClass::HeartRate,
            Profile::Scale => DeviceClass::Scale,
        }
    }

    pub fn name(self) -> String {
        match self {
            Profile::Cgm { cadence_s } => format!("CGM {} min", cadence_s / 60),
            Profile::Meter { per_day } => format!("meter {per_day}/day"),
            Profile::Cuff => "cuff".into(),
            Profile::HeartRateStrap => "HR strap".into(),
            Profile::Scale => "scale".into(),
        }
    }

    /// Wi-Fi (MQTT) rather than BLE.
    pub fn over_wifi(self) -> bool {
        matches!(self, Profile::Cgm { .. } | Profile::Scale)
    }

    /// Sends a device time with each reading.
    pub fn has_clock(self) -> bool {
        !matches!(self, Profile::HeartRateStrap)
    }

    /// The five devices of one hub; seeds alternate 5- and 1-minute CGMs.
    pub fn hub(seed: u64) -> [Profile; 5] {
        let cadence_s = if seed.is_multiple_of(2) { 300 } else { 60 };
        [
            Profile::Cgm { cadence_s },
            Profile::Meter {
                per_day: 2 + (seed % 5) as u32,
            },
            Profile::Cuff,
            Profile::HeartRateStrap,
            Profile::Scale,
        ]
    }
}

/// One device's generated traffic and what an injector needs to know about it.
#[derive(Debug, Clone)]
pub struct DeviceTraffic {
    pub profile: Profile,
    /// Sorted by hub time.
    pub observations: Vec<NodeObservation>,
    /// Keyed hash of the device's home address (Wi-Fi devices).
    pub home_source: u64,
    pub main_shape: u64,
    /// Mean signal strength at the hub (BLE devices), dBm.
    pub rssi_dbm: f32,
    pub days: u32,
}

impl DeviceTraffic {
    /// New readings as (hub ms, device ms, value), in order.
    pub fn readings(&self) -> Vec<(i64, Option<i64>, f32)> {
        self.observations
            .iter()
            .filter_map(|o| match o.what {
                Observed::Arrival(a) if a.outcome == ArrivalOutcome::New => {
                    Some((o.at_ms, a.device_time_ms, a.value.unwrap_or(0.0)))
                }
                _ => None,
            })
            .collect()
    }

    /// The hub's mean gap between new readings, seconds.
    pub fn cadence_s(&self) -> f32 {
        match self.profile {
            Profile::Cgm { cadence_s } => cadence_s as f32,
            Profile::HeartRateStrap => 1.0,
            other => other.class().nominal_interval_s(),
        }
    }
}

pub(crate) fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box-Muller; one of the pair is enough here.
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn exponential(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    -mean * rng.random::<f64>().max(1e-12).ln()
}

/// A Poisson process: event times in `[from, to)` at `per_day`.
fn poisson_times(rng: &mut ChaCha8Rng, from: i64, to: i64, per_day: f64) -> Vec<i64> {
    let mut times = Vec::new();
    if per_day <= 0.0 {
        return times;
    }
    let mut t = from as f64;
    loop {
        t += exponential(rng, DAY_MS as f64 / per_day);
        if t >= to as f64 {
            return times;
        }
        times.push(t as i64);
    }
}

/// The device's clock: a fixed offset and a slow drift.
#[derive(Debug, Clone, Copy)]
struct Clock {
    offset_ms: f64,
    drift_ms_per_day: f64,
}

impl Clock {
    fn new(rng: &mut ChaCha8Rng, offset_s: f64, drift_s_per_day: f64) -> Self {
        Self {
            offset_ms: normal(rng) * offset_s * 1000.0,
            drift_ms_per_day: normal(rng) * drift_s_per_day * 1000.0,
        }
    }

    fn at(&self, true_ms: i64) -> i64 {
        let days = (true_ms - START_MS) as f64 / DAY_MS as f64;
        true_ms + (self.offset_ms + self.drift_ms_per_day * days) as i64
    }
}

struct Builder {
    rng: ChaCha8Rng,
    out: Vec<NodeObservation>,
    shapes: [u64; 2],
}

impl Builder {
    fn push(&mut self, at_ms: i64, what: Observed) {
        self.out.push(NodeObservation { at_ms, what });
    }

    fn arrival(
        &mut self,
        at_ms: i64,
        device_ms: Option<i64>,
        value: f32,
        outcome: ArrivalOutcome,
        wifi: bool,
    ) {
        // BLE shapes include which optional fields are present; Wi-Fi
        // shapes leave optional keys out (the hub's `shape_of`).
        let alternate = !wifi && self.rng.random_bool(0.02);
        let shape = self.shapes[usize::from(alternate)];
        let digits = if value >= 100.0 { 3 } else { 2 };
        let bytes = wifi.then(|| 58 + digits + if alternate { 14 } else { 0 });
        self.push(
            at_ms,
            Observed::Arrival(Arrival {
                outcome,
                device_time_ms: device_ms,
                bytes,
                shape,
                value: Some(value),
                pause_announced: false,
            }),
        );
    }
}

/// Generates `days` of one device's normal traffic.
pub fn generate(seed: u64, profile: Profile, days: u32) -> DeviceTraffic {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed ^ mix(profile_tag(profile))));
    let shapes = [mix(rng.random()), mix(rng.random())];
    let home_source = mix(rng.random());
    let rssi_dbm = -55.0 - 15.0 * rng.random::<f32>();
    let mut builder = Builder {
        rng,
        out: Vec::new(),
        shapes,
    };
    let end = START_MS + i64::from(days) * DAY_MS;
    match profile {
        Profile::Cgm { cadence_s } => cgm(&mut builder, cadence_s, home_source, end),
        Profile::Meter { per_day } => {
            ble_spot(&mut builder, rssi_dbm, end, SpotKind::Meter(per_day))
        }
        Profile::Cuff => ble_spot(&mut builder, rssi_dbm, end, SpotKind::Cuff),
        Profile::HeartRateStrap => strap(&mut builder, rssi_dbm, end),
        Profile::Scale => scale(&mut builder, home_source, end),
    }
    if !profile.over_wifi() {
        // A neighbour's device of the same kind, far away, now and then.
        for t in poisson_times(&mut builder.rng, START_MS, end, 0.2 / 7.0) {
            let rssi = (-88.0 + 4.0 * normal(&mut builder.rng)) as i16;
            builder.push(t, Observed::Lookalike { rssi: Some(rssi) });
        }
    }
    let mut observations = builder.out;
    observations.sort_by_key(|o| o.at_ms);
    DeviceTraffic {
        profile,
        observations,
        home_source,
        main_shape: shapes[0],
        rssi_dbm,
        days,
    }
}

fn profile_tag(profile: Profile) -> u64 {
    match profile {
        Profile::Cgm { cadence_s } => 1 + u64::from(cadence_s),
        Profile::Meter { per_day } => 1000 + u64::from(per_day),
        Profile::Cuff => 2000,
        Profile::HeartRateStrap => 3000,
        Profile::Scale => 4000,
    }
}

/// A glucose trace: a damped random slope, kept within 40..400.
struct Glucose {
    level: f64,
    slope: f64,
}

impl Glucose {
    fn step(&mut self, rng: &mut ChaCha8Rng, minutes: f64) -> f32 {
        for _ in 0..(minutes.round() as u32).max(1) {
            self.slope = 0.97 * self.slope + 0.25 * normal(rng) + 0.002 * (130.0 - self.level);
            self.level = (self.level + self.slope).clamp(40.0, 400.0);
        }
        self.level.round() as f32
    }
}

fn cgm(b: &mut Builder, cadence_s: u32, home: u64, end: i64) {
    let cadence_ms = i64::from(cadence_s) * 1000;
    let clock = Clock::new(&mut b.rng, 20.0, 2.0);
    let mut glucose = Glucose {
        level: 120.0,
        slope: 0.0,
    };
    // Wi-Fi drop-outs: about one a day, mostly a few minutes.
    let mut drops: Vec<(i64, i64)> = poisson_times(&mut b.rng, START_MS, end, 1.0)
        .into_iter()
        .map(|t| {
            let minutes = (3.0 * (1.0 * normal(&mut b.rng)).exp()).min(60.0);
            (t, t + (minutes * MINUTE_MS as f64) as i64)
        })
        .collect();
    drops.sort();
    // Overlapping drop-outs are one.
    let mut merged: Vec<(i64, i64)> = Vec::new();
    for (start, stop) in drops {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(stop),
            _ => merged.push((start, stop)),
        }
    }
    let drops = merged;
    // Sensor change-overs every 10 days: the old sensor says it stops, the
    // new one warms up for 30-120 minutes.
    let mut changes: Vec<(i64, i64)> = Vec::new();
    for n in 1.. {
        let t = START_MS + n * 10 * DAY_MS + b.rng.random_range(0..DAY_MS);
        if t >= end {
            break;
        }
        changes.push((t, t + b.rng.random_range(30..=120) * MINUTE_MS));
    }
    b.push(
        START_MS - 1000,
        Observed::SessionStart {
            source: Some(home),
            replaced: None,
        },
    );
    let mut source = home;
    let mut drop_index = 0;
    let mut backlog: Vec<(i64, f32)> = Vec::new();
    let mut sent: Vec<(i64, f32)> = Vec::new();
    let mut t = START_MS + b.rng.random_range(0..cadence_ms);
    while t < end {
        if let Some((_, warm_end)) = changes.iter().find(|(s, e)| t >= *s && t < *e) {
            t = *warm_end;
            continue;
        }
        // Drop-outs that ended before this reading: reconnect, send the backlog.
        while let Some(&(start, stop)) = drops.get(drop_index)
            && stop <= t
        {
            drop_index += 1;
            // A new address now and then (a new DHCP lease).
            let new_source = if b.rng.random_bool(0.02) {
                mix(b.rng.random())
            } else {
                source
            };
            let replaced = if stop - start < KEEP_ALIVE_MS {
                Some(Some(source))
            } else {
                b.push(start + KEEP_ALIVE_MS, Observed::SessionEnd);
                None
            };
            source = new_source;
            b.push(
                stop,
                Observed::SessionStart {
                    source: Some(source),
                    replaced,
                },
            );
            let mut at = stop + 200;
            // The acks of the last readings before the drop were lost: resent.
            if b.rng.random_bool(0.3) {
                for &(device_ms, value) in sent.iter().rev().take(2) {
                    b.arrival(at, Some(device_ms), value, ArrivalOutcome::Duplicate, true);
                    at += 50;
                }
            }
            for (device_ms, value) in backlog.drain(..) {
                b.arrival(at, Some(device_ms), value, ArrivalOutcome::New, true);
                sent.push((device_ms, value));
                at += 50;
            }
        }
        let value = glucose.step(&mut b.rng, cadence_s as f64 / 60.0);
        let device_ms = clock.at(t);
        let pause = changes.iter().any(|(s, _)| *s > t && *s <= t + cadence_ms);
        let in_drop = drops
            .get(drop_index)
            .is_some_and(|(s, e)| t >= *s && t < *e);
        if in_drop {
            backlog.push((device_ms, value));
        } else {
            let delay = (300.0 + exponential(&mut b.rng, 800.0)) as i64;
            b.arrival(t + delay, Some(device_ms), value, ArrivalOutcome::New, true);
            if pause
                && let Some(last) = b.out.last_mut()
                && let Observed::Arrival(a) = &mut last.what
            {
                a.pause_announced = true;
            }
            sent.push((device_ms, value));
        }
        t += cadence_ms;
        if sent.len() > 64 {
            sent.drain(..32);
        }
    }
}

enum SpotKind {
    Meter(u32),
    Cuff,
}

/// Meters and cuffs: the patient measures, the device connects, uploads and
/// disconnects. Readings taken away from home come with the next one.
fn ble_spot(b: &mut Builder, rssi: f32, end: i64, kind: SpotKind) {
    let clock = Clock::new(&mut b.rng, 60.0, 3.0);
    let habits: &[i64] = match kind {
        SpotKind::Meter(_) => &[450, 750, 1110, 1320, 600, 900],
        SpotKind::Cuff => &[480, 1200],
    };
    let (per_day, spread_min, skip, retest) = match kind {
        SpotKind::Meter(n) => (n as usize, 40.0, 0.1, 0.05),
        SpotKind::Cuff => (1, 60.0, 0.15, 0.1),
    };
    // An empty battery: 1-3 days without readings, about every 60 days.
    let battery: Vec<(i64, i64)> = poisson_times(&mut b.rng, START_MS, end, 1.0 / 60.0)
        .into_iter()
        .map(|t| (t, t + b.rng.random_range(1..=3) * DAY_MS))
        .collect();
    let mut times = Vec::new();
    let mut day = START_MS;
    while day < end {
        for (i, minute) in habits.iter().enumerate() {
            let wanted =
                i < per_day || (matches!(kind, SpotKind::Cuff) && i == 1 && b.rng.random_bool(0.2));
            if !wanted || b.rng.random_bool(skip) {
                continue;
            }
            let t = day
                + minute * MINUTE_MS
                + (normal(&mut b.rng) * spread_min * MINUTE_MS as f64) as i64;
            times.push(t);
            if b.rng.random_bool(retest) {
                times.push(t + b.rng.random_range(2..=8) * MINUTE_MS);
            }
        }
        day += DAY_MS;
    }
    times.sort();
    let mut away: Vec<(i64, f32)> = Vec::new();
    for t in times {
        if t < START_MS || t >= end || battery.iter().any(|(s, e)| t >= *s && t < *e) {
            continue;
        }
        let value = match kind {
            SpotKind::Meter(_) => (90.0 + 40.0 * normal(&mut b.rng))
                .clamp(40.0, 400.0)
                .round() as f32,
            SpotKind::Cuff => (128.0 + 12.0 * normal(&mut b.rng)).round() as f32,
        };
        let device_ms = clock.at(t);
        if b.rng.random_bool(0.1) {
            away.push((device_ms, value));
            continue;
        }
        let connect = t + b.rng.random_range(2_000..8_000);
        b.push(
            connect,
            Observed::SessionStart {
                source: None,
                replaced: None,
            },
        );
        let heard = (rssi + 4.0 * normal(&mut b.rng) as f32) as i16;
        b.push(connect + 500, Observed::Rssi(heard));
        let mut at = connect + 1_500;
        for (device_ms, value) in away.drain(..) {
            b.arrival(at, Some(device_ms), value, ArrivalOutcome::New, false);
            at += 200;
        }
        b.arrival(at, Some(device_ms), value, ArrivalOutcome::New, false);
        let linger = b.rng.random_range(5_000..30_000);
        b.push(at + linger, Observed::SessionEnd);
    }
}

/// A heart-rate strap in workouts: 1 Hz notifications, no device clock.
fn strap(b: &mut Builder, rssi: f32, end: i64) {
    let mut day = START_MS;
    while day < end {
        let sessions = match b.rng.random::<f64>() {
            p if p < 0.4 => 0,
            p if p < 0.85 => 1,
            _ => 2,
        };
        for n in 0..sessions {
            let start = day + (7 + 9 * n) * HOUR_MS + b.rng.random_range(0..3 * HOUR_MS);
            let length = b.rng.random_range(20..=90) * MINUTE_MS;
            let mut bpm = 75.0f64;
            b.push(
                start,
                Observed::SessionStart {
                    source: None,
                    replaced: None,
                },
            );
            // A link loss mid-workout now and then.
            let blip = b
                .rng
                .random_bool(0.1)
                .then(|| start + b.rng.random_range(0..length));
            let mut t = start + 1_000;
            while t < start + length && t < end {
                if let Some(at) = blip
                    && t >= at
                    && t < at + 1_000
                {
                    b.push(t, Observed::SessionEnd);
                    t += b.rng.random_range(5_000..20_000);
                    b.push(
                        t,
                        Observed::SessionStart {
                            source: None,
                            replaced: None,
                        },
                    );
                    continue;
                }
                if (t - start) % MINUTE_MS < 1_000 {
                    let heard = (rssi + 4.0 * normal(&mut b.rng) as f32) as i16;
                    b.push(t, Observed::Rssi(heard));
                }
                bpm = (bpm + 0.5 * normal(&mut b.rng) + 0.01 * (140.0 - bpm)).clamp(50.0, 190.0);
                if !b.rng.random_bool(0.01) {
                    let jitter = (normal(&mut b.rng) * 40.0) as i64;
                    b.arrival(
                        t + jitter.abs(),
                        None,
                        bpm.round() as f32,
                        ArrivalOutcome::New,
                        false,
                    );
                }
                t += 1_000;
            }
            b.push(t, Observed::SessionEnd);
        }
        day += DAY_MS;
    }
}

/// A Wi-Fi scale: connects each morning, sends one reading, disconnects.
fn scale(b: &mut Builder, home: u64, end: i64) {
    let clock = Clock::new(&mut b.rng, 2.0, 0.5);
    let mut source = home;
    let mut day = START_MS;
    let mut kg = 72.0f64;
    while day < end {
        if b.rng.random_bool(0.2) {
            day += DAY_MS;
            continue;
        }
        if b.rng.random_bool(1.0 / 60.0) {
            source = mix(b.rng.random());
        }
        let t = day + 7 * HOUR_MS + (normal(&mut b.rng) * 45.0 * MINUTE_MS as f64) as i64;
        kg += 0.1 * normal(&mut b.rng);
        b.push(
            t,
            Observed::SessionStart {
                source: Some(source),
                replaced: None,
            },
        );
        b.arrival(
            t + 2_500,
            Some(clock.at(t)),
            ((kg * 10.0).round() / 10.0) as f32,
            ArrivalOutcome::New,
            true,
        );
        b.push(t + 6_000, Observed::SessionEnd);
        day += DAY_MS;
    }
}
