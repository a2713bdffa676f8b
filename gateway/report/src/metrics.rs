//! The international consensus CGM metrics (Battelino et al., Diabetes Care
//! 2019): mean, standard deviation and coefficient of variation, GMI
//! (Bergenstal et al. 2018: 3.31 + 0.02392 × mean mg/dL) and the shares of
//! readings in the five ranges.

use serde::Serialize;

/// Range limits, mg/dL: very low is < 54, low 54–69, in range 70–180,
/// high 181–250, very high > 250 (fractional values: high starts above 180).
pub const VERY_LOW_BELOW: f64 = 54.0;
pub const LOW_BELOW: f64 = 70.0;
pub const HIGH_ABOVE: f64 = 180.0;
pub const VERY_HIGH_ABOVE: f64 = 250.0;

/// Shares of readings, percent; they add up to 100.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimeInRanges {
    pub very_low: f64,
    pub low: f64,
    pub in_range: f64,
    pub high: f64,
    pub very_high: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GlucoseMetrics {
    pub readings: usize,
    pub mean_mg_dl: f64,
    /// Sample standard deviation (n − 1), as the consensus tools report it.
    pub sd_mg_dl: f64,
    /// SD / mean, percent; ≤ 36 % is considered stable.
    pub cv_percent: f64,
    /// Glucose management indicator, percent.
    pub gmi_percent: f64,
    pub ranges: TimeInRanges,
}

pub fn gmi_percent(mean_mg_dl: f64) -> f64 {
    3.31 + 0.02392 * mean_mg_dl
}

/// The metrics of `values` (mg/dL); `None` when there are none. Values that
/// are not finite are not readings and are skipped.
pub fn glucose_metrics(values: impl IntoIterator<Item = f64>) -> Option<GlucoseMetrics> {
    let (mut n, mut sum, mut sum_sq) = (0usize, 0.0f64, 0.0f64);
    let mut counts = [0usize; 5];
    for g in values.into_iter().filter(|g| g.is_finite()) {
        n += 1;
        sum += g;
        sum_sq += g * g;
        counts[range_index(g)] += 1;
    }
    if n == 0 {
        return None;
    }
    let mean = sum / n as f64;
    // Σ(g − mean)² = Σg² − n·mean²; clamped: rounding can make it a hair below 0.
    let squares = (sum_sq - n as f64 * mean * mean).max(0.0);
    let sd = if n > 1 {
        (squares / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    let share = |i: usize| 100.0 * counts[i] as f64 / n as f64;
    Some(GlucoseMetrics {
        readings: n,
        mean_mg_dl: mean,
        sd_mg_dl: sd,
        cv_percent: if mean > 0.0 { 100.0 * sd / mean } else { 0.0 },
        gmi_percent: gmi_percent(mean),
        ranges: TimeInRanges {
            very_low: share(0),
            low: share(1),
            in_range: share(2),
            high: share(3),
            very_high: share(4),
        },
    })
}

/// Which of the five ranges `g` falls in, 0 (very low) to 4 (very high).
pub fn range_index(g: f64) -> usize {
    if g < VERY_LOW_BELOW {
        0
    } else if g < LOW_BELOW {
        1
    } else if g <= HIGH_ABOVE {
        2
    } else if g <= VERY_HIGH_ABOVE {
        3
    } else {
        4
    }
}

/// The `p`-th percentile (0–100) of `sorted` by linear interpolation between
/// closest ranks (Hyndman & Fan type 7, numpy's and pandas' default).
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=100.0).contains(&p) {
        return None;
    }
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let below = rank.floor() as usize;
    let above = rank.ceil() as usize;
    let fraction = rank - below as f64;
    Some(sorted[below] + (sorted[above] - sorted[below]) * fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_at_the_consensus_limits() {
        let values = [
            40.0, 53.9, 54.0, 69.0, 70.0, 180.0, 180.5, 250.0, 251.0, 400.0,
        ];
        let m = glucose_metrics(values).unwrap();
        let r = m.ranges;
        assert_eq!(
            (r.very_low, r.low, r.in_range, r.high, r.very_high),
            (20.0, 20.0, 20.0, 20.0, 20.0)
        );
        assert!((r.very_low + r.low + r.in_range + r.high + r.very_high - 100.0).abs() < 1e-9);
    }

    #[test]
    fn mean_sd_cv_and_gmi_follow_their_definitions() {
        let m = glucose_metrics([100.0, 120.0, 140.0, f64::NAN]).unwrap();
        assert_eq!(m.readings, 3);
        assert!((m.mean_mg_dl - 120.0).abs() < 1e-12);
        assert!((m.sd_mg_dl - 20.0).abs() < 1e-12, "sample SD");
        assert!((m.cv_percent - 100.0 * 20.0 / 120.0).abs() < 1e-9);
        assert!((m.gmi_percent - (3.31 + 0.02392 * 120.0)).abs() < 1e-12);
        assert!(glucose_metrics([]).is_none());
        assert_eq!(glucose_metrics([90.0]).unwrap().sd_mg_dl, 0.0);
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let sorted = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&sorted, 50.0), Some(2.5));
        assert_eq!(percentile(&sorted, 0.0), Some(1.0));
        assert_eq!(percentile(&sorted, 100.0), Some(4.0));
        // numpy.percentile([1, 2, 3, 4], 5) == 1.15
        assert!((percentile(&sorted, 5.0).unwrap() - 1.15).abs() < 1e-12);
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&sorted, 101.0), None);
    }
}
