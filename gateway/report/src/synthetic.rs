//! A deterministic synthetic CGM trace for tests, benchmarks and the demo:
//! three meals a day, an occasional night-time low, day-to-day drift and
//! sensor noise, as integer mg/dL (what CGMs report), optionally with a
//! two-hour sensor gap every third day. Not physiology: a trace with the
//! features a report must get right.

use crate::agp::CgmPoint;

const MINUTE: i64 = 60_000;
const DAY: i64 = 1440 * MINUTE;

/// Readings every `interval_minutes` from `from_ms` to `to_ms` (UTC time of
/// day), the same for the same `seed`; `gaps`: drop two hours every third
/// day, as a sensor change or a lost signal would.
pub fn cgm_trace(
    from_ms: i64,
    to_ms: i64,
    interval_minutes: i64,
    seed: u64,
    gaps: bool,
) -> Vec<CgmPoint> {
    let mut state = seed | 1;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 2001) as f64 / 100.0 - 10.0
    };
    let step = interval_minutes.max(1) * MINUTE;
    let mut points = Vec::new();
    let mut t = from_ms;
    while t <= to_ms {
        let minute = (t.rem_euclid(DAY) / MINUTE) as f64;
        let day = (t - from_ms) / DAY;
        if gaps && day % 3 == 1 && (600.0..720.0).contains(&minute) {
            t += step;
            continue;
        }
        let meals: f64 = [480.0, 780.0, 1140.0]
            .iter()
            .map(|m| {
                let since = minute - m;
                if (0.0..240.0).contains(&since) {
                    110.0 * (since / 240.0 * std::f64::consts::PI).sin()
                } else {
                    0.0
                }
            })
            .sum();
        let night_low = if day % 4 == 0 && (120.0..200.0).contains(&minute) {
            -75.0
        } else {
            0.0
        };
        let value = (125.0 + meals + night_low + 15.0 * (day as f64).sin() + noise()).round();
        points.push(CgmPoint {
            at_ms: t,
            mg_dl: value.clamp(40.0, 400.0),
        });
        t += step;
    }
    points
}
