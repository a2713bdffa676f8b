//! Misbehaviour injected into normal traffic: what the behaviour model is
//! for. Each scenario rewrites one device's stream from a start time and
//! says which finding kinds count as having found it.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::stats::mix;
use super::traffic::{DeviceTraffic, MINUTE_MS, Profile, normal};
use super::{Arrival, ArrivalOutcome, BehaviourKind, NodeObservation, Observed};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// 50 fresh messages a second for a minute.
    Flood,
    /// Old messages again: stored readings resent verbatim.
    Replay,
    /// The device's own trace from days ago, re-stamped and numbered as new
    /// (CGMs): a forger with the credentials.
    Restamped,
    /// The device's credentials used from a second address while it runs.
    StolenCredentials,
    /// The device clock set 10-60 minutes off.
    ClockSkew,
    /// The device clock stepped by 1-24 hours.
    ClockJump,
    /// The device stops (a dead battery, a crashed firmware).
    Silent,
    /// The device reports ten times as often as it should.
    Chatty,
    /// A BLE device comes back under a new identity.
    IdentityChange,
    /// A clone under the same identity sends another patient's trace
    /// alongside the real one.
    Cloned,
    /// A firmware change: a new payload shape from now on.
    FirmwareShape,
}

/// When the misbehaviour started and what counts as finding it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truth {
    pub start_ms: i64,
    pub accepted: &'static [BehaviourKind],
}

impl Scenario {
    pub const ALL: [Scenario; 11] = [
        Scenario::Flood,
        Scenario::Replay,
        Scenario::Restamped,
        Scenario::StolenCredentials,
        Scenario::ClockSkew,
        Scenario::ClockJump,
        Scenario::Silent,
        Scenario::Chatty,
        Scenario::IdentityChange,
        Scenario::Cloned,
        Scenario::FirmwareShape,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Flood => "flood (50/s)",
            Scenario::Replay => "replay of old messages",
            Scenario::Restamped => "own trace re-stamped (CGM)",
            Scenario::StolenCredentials => "stolen credentials, 2nd address",
            Scenario::ClockSkew => "clock skew 10-60 min",
            Scenario::ClockJump => "clock jump 1-24 h",
            Scenario::Silent => "device gone silent",
            Scenario::Chatty => "chatty device (10x)",
            Scenario::IdentityChange => "BLE identity change",
            Scenario::Cloned => "cloned device, another's values",
            Scenario::FirmwareShape => "firmware change, payload shape",
        }
    }

    pub fn applies_to(self, profile: Profile) -> bool {
        match self {
            Scenario::StolenCredentials => profile.over_wifi(),
            Scenario::ClockSkew | Scenario::ClockJump => profile.has_clock(),
            Scenario::Silent | Scenario::Cloned | Scenario::Restamped => {
                matches!(profile, Profile::Cgm { .. })
            }
            Scenario::IdentityChange => !profile.over_wifi(),
            Scenario::Replay => profile.has_clock(),
            Scenario::Flood | Scenario::Chatty | Scenario::FirmwareShape => true,
        }
    }

    fn accepted(self) -> &'static [BehaviourKind] {
        use BehaviourKind as K;
        match self {
            Scenario::Flood => &[K::Flood, K::Chatty],
            Scenario::Replay => &[K::Replay, K::Flood],
            Scenario::Restamped => &[K::Replay, K::ValueTexture],
            Scenario::StolenCredentials => &[K::SecondSource],
            Scenario::ClockSkew | Scenario::ClockJump => &[K::ClockSkew, K::ClockJump],
            Scenario::Silent => &[K::Silent],
            Scenario::Chatty => &[K::Chatty, K::Flood],
            Scenario::IdentityChange => &[K::IdentityChange],
            Scenario::Cloned => &[K::ValueTexture, K::Chatty, K::Replay],
            Scenario::FirmwareShape => &[K::PayloadShape],
        }
    }

    /// Rewrites `traffic` from `start_ms`; `None` if nothing of the device
    /// happens after `start_ms` that the scenario could act on.
    pub fn inject(
        self,
        traffic: &DeviceTraffic,
        start_ms: i64,
        rng: &mut ChaCha8Rng,
    ) -> Option<(Vec<NodeObservation>, Truth)> {
        let mut out: Vec<NodeObservation> = traffic.observations.clone();
        let accepted = self.accepted();
        let fresh_arrival = |at_ms: i64, value: f32, shape: u64| NodeObservation {
            at_ms,
            what: Observed::Arrival(Arrival {
                outcome: ArrivalOutcome::New,
                device_time_ms: traffic.profile.has_clock().then_some(at_ms - 400),
                bytes: traffic.profile.over_wifi().then_some(61),
                shape,
                value: Some(value),
                pause_announced: false,
            }),
        };
        let typical = traffic.readings().last().map_or(120.0, |r| r.2);
        let mut truth_start = start_ms;
        match self {
            Scenario::Flood => {
                for i in 0..3000 {
                    out.push(fresh_arrival(
                        start_ms + i * 20,
                        typical,
                        traffic.main_shape,
                    ));
                }
            }
            Scenario::Chatty => {
                let every = ((traffic.cadence_s() * 100.0) as i64).clamp(100, 2 * MINUTE_MS);
                let mut t = start_ms;
                while t < start_ms + 30 * MINUTE_MS {
                    let value = typical + (2.0 * normal(rng)) as f32;
                    out.push(fresh_arrival(t, value.round(), traffic.main_shape));
                    t += every;
                }
            }
            Scenario::Replay | Scenario::Restamped => {
                let readings = traffic.readings();
                if self == Scenario::Restamped {
                    // From now on the values are the sensor's own from 1-3 days ago.
                    let lag = rng.random_range(24 * 60..72 * 60) * MINUTE_MS;
                    let past: Vec<(i64, f32)> = readings.iter().map(|r| (r.0, r.2)).collect();
                    let mut started = false;
                    for o in out.iter_mut().filter(|o| o.at_ms >= start_ms) {
                        if let Observed::Arrival(a) = &mut o.what
                            && a.outcome == ArrivalOutcome::New
                        {
                            let i = past.partition_point(|(t, _)| *t < o.at_ms - lag);
                            a.value = past.get(i).map(|p| p.1).or(a.value);
                            if !started {
                                truth_start = o.at_ms;
                                started = true;
                            }
                        }
                    }
                    if !started {
                        return None;
                    }
                } else {
                    // Captured messages from 1-5 days ago, resent one every 2 s.
                    let from = start_ms - rng.random_range(1..=5) * 24 * 60 * MINUTE_MS;
                    let old: Vec<_> = readings
                        .iter()
                        .filter(|r| r.0 >= from && r.0 < start_ms)
                        .take(30)
                        .collect();
                    if old.len() < 3 {
                        return None;
                    }
                    for (i, (_, device_ms, value)) in old.into_iter().enumerate() {
                        out.push(NodeObservation {
                            at_ms: start_ms + i as i64 * 2_000,
                            what: Observed::Arrival(Arrival {
                                outcome: ArrivalOutcome::Duplicate,
                                device_time_ms: *device_ms,
                                bytes: traffic.profile.over_wifi().then_some(61),
                                shape: traffic.main_shape,
                                value: Some(*value),
                                pause_announced: false,
                            }),
                        });
                    }
                }
            }
            Scenario::StolenCredentials => {
                let thief = mix(rng.random());
                let mut t = start_ms;
                // The thief connects; the device reconnects and takes its
                // session back; and so on, for ten minutes.
                let mut holder = traffic.home_source;
                while t < start_ms + 10 * MINUTE_MS {
                    let next = if holder == thief {
                        traffic.home_source
                    } else {
                        thief
                    };
                    out.push(NodeObservation {
                        at_ms: t,
                        what: Observed::SessionStart {
                            source: Some(next),
                            replaced: Some(Some(holder)),
                        },
                    });
                    if next == thief {
                        out.push(fresh_arrival(t + 1_000, typical, traffic.main_shape));
                    }
                    holder = next;
                    t += rng.random_range(5_000..20_000);
                }
            }
            Scenario::ClockSkew | Scenario::ClockJump => {
                let minutes = if self == Scenario::ClockSkew {
                    rng.random_range(10..=60)
                } else {
                    rng.random_range(60..=24 * 60)
                };
                let shift = minutes * MINUTE_MS * if rng.random_bool(0.5) { 1 } else { -1 };
                let mut any = false;
                for o in out.iter_mut().filter(|o| o.at_ms >= start_ms) {
                    if let Observed::Arrival(a) = &mut o.what
                        && let Some(device) = a.device_time_ms.as_mut()
                    {
                        *device += shift;
                        if !any {
                            truth_start = o.at_ms;
                        }
                        any = true;
                    }
                }
                if !any {
                    return None;
                }
            }
            Scenario::Silent => {
                let first_missed = out
                    .iter()
                    .find(|o| o.at_ms >= start_ms && matches!(o.what, Observed::Arrival(_)))?
                    .at_ms;
                truth_start = first_missed;
                out.retain(|o| o.at_ms < first_missed);
                out.push(NodeObservation {
                    at_ms: first_missed + 90_000,
                    what: Observed::SessionEnd,
                });
            }
            Scenario::IdentityChange => {
                // The registered identity is gone; where it would have
                // connected, a new one of the same kind asks, close by.
                let connects: Vec<i64> = out
                    .iter()
                    .filter(|o| {
                        o.at_ms >= start_ms && matches!(o.what, Observed::SessionStart { .. })
                    })
                    .map(|o| o.at_ms)
                    .collect();
                let first = *connects.first()?;
                truth_start = first;
                out.retain(|o| o.at_ms < first || matches!(o.what, Observed::Lookalike { .. }));
                for t in connects.into_iter().take(5) {
                    for attempt in 0..3 {
                        let rssi = (traffic.rssi_dbm + 4.0 * normal(rng) as f32) as i16;
                        out.push(NodeObservation {
                            at_ms: t + attempt * 20_000,
                            what: Observed::Lookalike { rssi: Some(rssi) },
                        });
                    }
                }
            }
            Scenario::Cloned => {
                let other =
                    super::traffic::generate(mix(rng.random()), traffic.profile, traffic.days);
                let half = (traffic.cadence_s() * 500.0) as i64;
                let values = other.readings();
                let mut t = start_ms + half;
                for (_, _, value) in values.iter().skip_while(|r| r.0 < start_ms).take(30) {
                    out.push(fresh_arrival(t, *value, traffic.main_shape));
                    t += 2 * half;
                }
            }
            Scenario::FirmwareShape => {
                let shape = mix(rng.random());
                let mut any = false;
                for o in out.iter_mut().filter(|o| o.at_ms >= start_ms) {
                    if let Observed::Arrival(a) = &mut o.what {
                        a.shape = shape;
                        a.bytes = a.bytes.map(|b| b + 11);
                        if !any {
                            truth_start = o.at_ms;
                        }
                        any = true;
                    }
                }
                if !any {
                    return None;
                }
            }
        }
        out.sort_by_key(|o| o.at_ms);
        Some((
            out,
            Truth {
                start_ms: truth_start,
                accepted,
            },
        ))
    }
}
