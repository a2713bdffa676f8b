//! Nightscout's AR2 forecast, the baseline every forecast is measured against.
//!
//! In log space y = ln(BG / 140) on 5-minute steps:
//! y(t+1) = -0.723 * y(t-1) + 1.716 * y(t).
//! Nightscout feeds it the last two readings; on irregular sensors we read
//! y(t-1) off the history 5 minutes before the newest reading instead.

use crate::history::{CgmHistory, MINUTE_MS};

const CENTRE_MG_DL: f64 = 140.0;
const A_PREV: f64 = -0.723;
const A_NOW: f64 = 1.716;

/// Iterates AR2 `steps` five-minute steps ahead from two values 5 minutes
/// apart (`previous`, then `current`). Returns mg/dL.
pub fn forecast(previous: f64, current: f64, steps: usize) -> f64 {
    let mut y_prev = (previous / CENTRE_MG_DL).ln();
    let mut y_now = (current / CENTRE_MG_DL).ln();
    for _ in 0..steps {
        let next = A_PREV * y_prev + A_NOW * y_now;
        y_prev = y_now;
        y_now = next;
    }
    CENTRE_MG_DL * y_now.exp()
}

/// AR2 from a history at `horizon_min` minutes (rounded to 5-minute steps);
/// `None` when the value 5 minutes back is unknown.
pub fn forecast_history(history: &CgmHistory, horizon_min: i64) -> Option<f64> {
    let last = history.last()?;
    let previous = history.value_at(last.at_ms - 5 * MINUTE_MS)?;
    let steps = (horizon_min / 5).max(0) as usize;
    Some(forecast(f64::from(previous), f64::from(last.mg_dl), steps))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::CgmPoint;

    #[test]
    fn steady_glucose_at_centre_stays() {
        assert!((forecast(140.0, 140.0, 12) - 140.0).abs() < 1e-9);
    }

    #[test]
    fn matches_hand_computed_steps() {
        // y(t-1) = ln(150/140) = 0.068993, y(t) = 0
        // y(t+1) = -0.723 * 0.068993 = -0.049882 -> 140 * e^-0.049882 = 133.188
        assert!((forecast(150.0, 140.0, 1) - 133.188).abs() < 0.01);
        // y(t+2) = -0.723 * 0 + 1.716 * -0.049882 = -0.085597 -> 128.515
        assert!((forecast(150.0, 140.0, 2) - 128.515).abs() < 0.01);
        // From 100 and 90: y = ln(100/140) = -0.336472, ln(90/140) = -0.441833;
        // y(t+1) = 0.243269 - 0.758185 = -0.514916 -> 83.657
        assert!((forecast(100.0, 90.0, 1) - 83.657).abs() < 0.01);
        assert_eq!(forecast(100.0, 90.0, 0), 90.0);
    }

    #[test]
    fn reads_the_history_at_any_cadence() {
        let mut h = CgmHistory::new();
        // A 15-minute sensor: 160 then 140; 5 minutes back interpolates to 146.67.
        h.admit(CgmPoint {
            at_ms: 0,
            mg_dl: 160.0,
        });
        h.admit(CgmPoint {
            at_ms: 15 * MINUTE_MS,
            mg_dl: 140.0,
        });
        let expected = forecast(140.0 + 20.0 / 3.0, 140.0, 6);
        assert!((forecast_history(&h, 30).unwrap_or(f64::NAN) - expected).abs() < 1e-3);
        assert!(expected < 140.0);
    }
}
