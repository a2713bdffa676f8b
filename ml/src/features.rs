//! Model inputs, computed from a `CgmHistory` whose newest point is the
//! reading being assessed.
//!
//! This is the single definition of the features: the training pipeline gets
//! them from `glyco-ml features` (this code), so training and the hub cannot
//! drift apart. Change anything here and the models must be retrained;
//! `FEATURE_VERSION` guards that at load time.

use crate::history::{CgmHistory, MINUTE_MS};

/// Bumped whenever a feature changes meaning; stored in detector.json.
pub const FEATURE_VERSION: u32 = 3;
/// Grid steps of 5 minutes the models look back (one hour).
pub const LOOKBACK_STEPS: usize = 12;
pub const FORECAST_FEATURES: usize = LOOKBACK_STEPS + 3;
pub const FAULT_FEATURES: usize = LOOKBACK_STEPS + 16;
/// Glucose differences are divided by this so inputs stay near unit scale.
pub const DELTA_SCALE: f32 = 50.0;

/// Grid deltas (value k steps back minus now) / 50, with holes filled by the
/// nearest newer known value, and the fraction of the grid that was known.
fn grid_deltas(history: &CgmHistory, g0: f32) -> ([f32; LOOKBACK_STEPS], f32) {
    let grid = history.grid(LOOKBACK_STEPS);
    let mut deltas = [0.0; LOOKBACK_STEPS];
    let mut carried = g0;
    let mut known = 0usize;
    for k in 1..=LOOKBACK_STEPS {
        if let Some(value) = grid[k] {
            carried = value;
            known += 1;
        }
        deltas[k - 1] = (carried - g0) / DELTA_SCALE;
    }
    (deltas, known as f32 / LOOKBACK_STEPS as f32)
}

/// The steepest 15-minute fall in the last hour.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SteepestFall {
    /// mg/dL fallen in 15 minutes (0 when glucose never fell).
    pub mg_dl: f32,
    /// Minutes ago the fall ended.
    pub minutes_ago: f32,
    /// Glucose where the fall started.
    pub from_mg_dl: f32,
}

/// Compression lows fall faster, and by a larger share of the level, than
/// glucose can; a slow real fall never shows a steep step.
pub fn steepest_fall(history: &CgmHistory) -> SteepestFall {
    let grid = history.grid(LOOKBACK_STEPS);
    let mut best = SteepestFall::default();
    for k in 0..=(LOOKBACK_STEPS - 3) {
        if let (Some(now), Some(before)) = (grid[k], grid[k + 3]) {
            let fall = before - now;
            if fall > best.mg_dl {
                best = SteepestFall {
                    mg_dl: fall,
                    minutes_ago: (k * 5) as f32,
                    from_mg_dl: before,
                };
            }
        }
    }
    best
}

fn cadence_feature(history: &CgmHistory) -> f32 {
    let minutes = history.cadence_ms().unwrap_or(5 * MINUTE_MS) as f32 / MINUTE_MS as f32;
    (minutes / 15.0).min(2.0)
}

/// Forecaster input: current glucose / 100, 12 grid deltas, grid coverage,
/// sensor cadence / 15 min. `None` on an empty history.
pub fn forecast_features(history: &CgmHistory) -> Option<[f32; FORECAST_FEATURES]> {
    let g0 = history.last()?.mg_dl;
    let (deltas, coverage) = grid_deltas(history, g0);
    let mut out = [0.0; FORECAST_FEATURES];
    out[0] = g0 / 100.0;
    out[1..=LOOKBACK_STEPS].copy_from_slice(&deltas);
    out[LOOKBACK_STEPS + 1] = coverage;
    out[LOOKBACK_STEPS + 2] = cadence_feature(history);
    Some(out)
}

/// Fault-detector input: the forecaster's view plus what artefacts look like
/// reading to reading — implausible rates, jumps off the recent trend, runs of
/// identical values, roughness, distance from the last hour's range.
pub fn fault_features(history: &CgmHistory) -> Option<[f32; FAULT_FEATURES]> {
    let now = history.last()?;
    let g0 = now.mg_dl;
    let points: Vec<_> = history.points().rev().take(200).copied().collect();
    let minutes = |a: i64, b: i64| ((a - b) as f32 / MINUTE_MS as f32).max(1.0 / 60.0);

    let rate = |i: usize| -> f32 {
        match (points.get(i), points.get(i + 1)) {
            (Some(a), Some(b)) => (a.mg_dl - b.mg_dl) / minutes(a.at_ms, b.at_ms),
            _ => 0.0,
        }
    };
    let dt_prev = points.get(1).map_or(0.0, |p| minutes(now.at_ms, p.at_ms));
    // Where the two readings before this one pointed.
    let off_trend = match (points.get(1), points.get(2)) {
        (Some(b), Some(c)) => {
            let slope = (b.mg_dl - c.mg_dl) / minutes(b.at_ms, c.at_ms);
            g0 - (b.mg_dl + slope * minutes(now.at_ms, b.at_ms))
        }
        (Some(b), None) => g0 - b.mg_dl,
        _ => 0.0,
    };
    let mut flat_count = 0usize;
    let mut flat_since = now.at_ms;
    for p in points.iter().skip(1) {
        if p.mg_dl != g0 {
            break;
        }
        flat_count += 1;
        flat_since = p.at_ms;
    }
    let flat_minutes = (now.at_ms - flat_since) as f32 / MINUTE_MS as f32;
    let hour_ago = now.at_ms - 60 * MINUTE_MS;
    let last_hour: Vec<_> = points.iter().take_while(|p| p.at_ms >= hour_ago).collect();
    let mut abs_rates: Vec<f32> = last_hour
        .windows(2)
        .map(|w| (w[0].mg_dl - w[1].mg_dl).abs() / minutes(w[0].at_ms, w[1].at_ms))
        .collect();
    abs_rates.sort_by(f32::total_cmp);
    let roughness = abs_rates.get(abs_rates.len() / 2).copied().unwrap_or(0.0);
    let max_hour = last_hour.iter().map(|p| p.mg_dl).fold(g0, f32::max);
    let min_hour = last_hour.iter().map(|p| p.mg_dl).fold(g0, f32::min);
    let (deltas, coverage) = grid_deltas(history, g0);

    let mut out = [0.0; FAULT_FEATURES];
    out[0] = g0 / 100.0;
    out[1] = (dt_prev / 15.0).min(4.0);
    out[2] = (rate(0) / 5.0).clamp(-4.0, 4.0);
    out[3] = (rate(1) / 5.0).clamp(-4.0, 4.0);
    out[4] = (off_trend / DELTA_SCALE).clamp(-4.0, 4.0);
    out[5] = (flat_minutes / 60.0).min(3.0);
    out[6] = (flat_count as f32 / 10.0).min(3.0);
    out[7] = (roughness / 5.0).min(4.0);
    out[8] = (max_hour - g0) / DELTA_SCALE;
    out[9] = (g0 - min_hour) / DELTA_SCALE;
    out[10] = coverage;
    out[11] = cadence_feature(history);
    out[12..12 + LOOKBACK_STEPS].copy_from_slice(&deltas);
    let fall = steepest_fall(history);
    out[12 + LOOKBACK_STEPS] = fall.mg_dl / DELTA_SCALE;
    out[13 + LOOKBACK_STEPS] = fall.minutes_ago / 60.0;
    out[14 + LOOKBACK_STEPS] = if fall.from_mg_dl > 0.0 {
        fall.mg_dl / fall.from_mg_dl
    } else {
        0.0
    };
    // Still down from where the fall started (a plateau), or recovered?
    out[15 + LOOKBACK_STEPS] = if fall.mg_dl > 0.0 {
        (fall.from_mg_dl - g0) / DELTA_SCALE
    } else {
        0.0
    };
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::CgmPoint;

    fn history(cadence_min: i64, values: &[f32]) -> CgmHistory {
        let mut h = CgmHistory::new();
        for (i, v) in values.iter().enumerate() {
            h.admit(CgmPoint {
                at_ms: i as i64 * cadence_min * MINUTE_MS,
                mg_dl: *v,
            });
        }
        h
    }

    #[test]
    fn same_trend_same_features_at_every_cadence() {
        // A fall of 1 mg/dL/min seen by 1-, 5- and 15-minute sensors.
        let make = |cadence: i64| {
            let values: Vec<f32> = (0..=(90 / cadence))
                .map(|i| 200.0 - (i * cadence) as f32)
                .collect();
            forecast_features(&history(cadence, &values)).unwrap_or([f32::NAN; FORECAST_FEATURES])
        };
        let (one, five, fifteen) = (make(1), make(5), make(15));
        for k in 0..=LOOKBACK_STEPS {
            assert!((one[k] - five[k]).abs() < 1e-4, "feature {k}");
            assert!((fifteen[k] - five[k]).abs() < 1e-4, "feature {k}");
        }
        assert!((five[1] - 0.1).abs() < 1e-6, "5 min back is 5 mg/dL higher");
        assert_eq!(five[LOOKBACK_STEPS + 1], 1.0);
    }

    #[test]
    fn flat_runs_and_spikes_show() {
        let flat = fault_features(&history(5, &[120.0, 121.0, 130.0, 130.0, 130.0, 130.0]))
            .unwrap_or([0.0; FAULT_FEATURES]);
        assert_eq!(flat[6], 0.3, "three repeats");
        assert!((flat[5] - 15.0 / 60.0).abs() < 1e-6);
        let spike = fault_features(&history(5, &[120.0, 121.0, 122.0, 200.0]))
            .unwrap_or([0.0; FAULT_FEATURES]);
        assert!((spike[4] - 77.0 / 50.0).abs() < 1e-4, "off trend by 77");
        assert!(spike.iter().all(|f| f.is_finite()));
    }

    #[test]
    fn single_reading_is_finite() {
        let h = history(5, &[100.0]);
        assert!(forecast_features(&h).is_some_and(|f| f.iter().all(|x| x.is_finite())));
        assert!(fault_features(&h).is_some_and(|f| f.iter().all(|x| x.is_finite())));
        assert!(forecast_features(&CgmHistory::new()).is_none());
    }
}
