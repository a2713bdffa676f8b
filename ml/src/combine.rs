//! The forecast the hub uses: a per-patient combination of four forecasters
//! weighted by how well each has done *for this patient*.
//!
//! The learned model was trained on virtual patients; on real people it can
//! lose to the simple forecasters (issue 12: 6 % worse than AR2 on real
//! traces). So the hub never trusts one forecaster. For each horizon it
//! combines the learned model, Nightscout's AR2, the last value and a damped
//! linear trend, with weights proportional to `rmse^-exponent` of each
//! component's recent errors on this patient (Bates-Granger weights, sharpened).
//! Every forecast is remembered; when its 30- or 60-minute truth arrives the
//! squared errors update. The running errors start from priors measured on
//! the validation patients, so the combination is on from the first reading,
//! and forget slowly, so a patient whose sensor or body favours another
//! forecaster moves the weights there within a day or two. The arithmetic
//! runs on candle tensors; the state is a few hundred bytes.
//!
//! The same running error of the *combined* forecast is the patient's own
//! forecast uncertainty, which the predicted-low decision uses.

use std::collections::VecDeque;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::ar2;
use crate::error::MlError;
use crate::history::{CgmHistory, MINUTE_MS};

pub const COMPONENTS: usize = 4;
pub const HORIZONS_MIN: [i64; 2] = [30, 60];
/// Forecasts remembered at most 5 minutes apart: 13 cover the 60-minute horizon.
const PENDING_CAPACITY: usize = 16;
/// One bad reading may not move the errors by more than (100 mg/dL)^2.
const MAX_SQUARED_ERROR: f32 = 100.0 * 100.0;
/// The damped trend loses 2 % of its slope per minute (half-life ~35 min);
/// chosen a priori, not tuned.
const TREND_DAMPING_PER_MIN: f32 = 0.98;

/// The forecasters combined, in weight order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Learned,
    Ar2,
    LastValue,
    DampedTrend,
}

impl Component {
    pub const ALL: [Component; COMPONENTS] = [
        Component::Learned,
        Component::Ar2,
        Component::LastValue,
        Component::DampedTrend,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Component::Learned => "learned",
            Component::Ar2 => "AR2",
            Component::LastValue => "last value",
            Component::DampedTrend => "damped trend",
        }
    }
}

/// Settings of the combination, measured on the validation patients
/// (`glyco-ml tune`) and stored in detector.json.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CombinationSettings {
    /// Weight of a component ∝ rmse^-exponent (2 = inverse MSE).
    pub exponent: f32,
    /// Starting RMSE per horizon (30, 60 min) and component, mg/dL.
    pub prior_rmse_mg_dl: [[f32; COMPONENTS]; 2],
    /// Starting RMSE of the combined forecast per horizon, mg/dL.
    pub prior_combined_rmse_mg_dl: [f32; 2],
    /// How many resolved forecasts the priors count for.
    pub prior_weight: f32,
    /// Smallest update rate of the running errors (1/500: about two days of
    /// 5-minute readings).
    pub forgetting: f32,
}

impl Default for CombinationSettings {
    fn default() -> Self {
        CombinationSettings {
            exponent: 2.0,
            prior_rmse_mg_dl: [[15.0; COMPONENTS], [25.0; COMPONENTS]],
            prior_combined_rmse_mg_dl: [15.0, 25.0],
            prior_weight: 50.0,
            forgetting: 0.002,
        }
    }
}

impl CombinationSettings {
    pub fn validate(&self) -> Result<(), MlError> {
        let bad = |what: &str| Err(MlError::Config(format!("combination: {what}")));
        if !(0.0..=16.0).contains(&self.exponent) {
            return bad("exponent outside 0..=16");
        }
        let priors = self
            .prior_rmse_mg_dl
            .iter()
            .flatten()
            .chain(&self.prior_combined_rmse_mg_dl);
        for rmse in priors {
            if !(0.5..=200.0).contains(rmse) {
                return bad("prior RMSE outside 0.5..=200 mg/dL");
            }
        }
        if !(1.0..=100_000.0).contains(&self.prior_weight) {
            return bad("prior weight outside 1..=100000");
        }
        if !(1e-5..=0.5).contains(&self.forgetting) {
            return bad("forgetting outside 0.00001..=0.5");
        }
        Ok(())
    }
}

fn combiner_error(error: candle_core::Error) -> MlError {
    MlError::Adapter(error.to_string())
}

/// A damped linear trend: the least-squares slope of the last 20 minutes
/// (5-minute grid), extrapolated with its slope fading. Less sensitive to one
/// noisy reading than AR2's two-point difference.
pub fn damped_trend(history: &CgmHistory) -> Option<[f32; 2]> {
    let grid = history.grid(4);
    let g0 = grid.first().copied().flatten()?;
    let known: Vec<(f32, f32)> = grid
        .iter()
        .enumerate()
        .filter_map(|(k, v)| v.map(|v| (-(k as f32) * 5.0, v)))
        .collect();
    if known.len() < 3 {
        return None;
    }
    let n = known.len() as f32;
    let mean_t = known.iter().map(|(t, _)| t).sum::<f32>() / n;
    let mean_v = known.iter().map(|(_, v)| v).sum::<f32>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (t, v) in &known {
        sxy += (t - mean_t) * (v - mean_v);
        sxx += (t - mean_t) * (t - mean_t);
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let phi = TREND_DAMPING_PER_MIN;
    Some(HORIZONS_MIN.map(|h| {
        let steps = phi * (1.0 - phi.powi(h as i32)) / (1.0 - phi);
        g0 + slope * steps
    }))
}

/// Every component's forecast (mg/dL) per horizon; `None` until the history
/// reaches 5 minutes back (AR2 needs it).
pub fn component_forecasts(
    history: &CgmHistory,
    learned_mg_dl: [f32; 2],
) -> Option<[[f32; COMPONENTS]; 2]> {
    let last = history.last()?.mg_dl;
    let ar2 = [
        ar2::forecast_history(history, 30)? as f32,
        ar2::forecast_history(history, 60)? as f32,
    ];
    let trend = damped_trend(history)?;
    Some([0, 1].map(|h| [learned_mg_dl[h], ar2[h], last, trend[h]]))
}

/// The combined forecast and how it was made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Combined {
    pub mg_dl: [f32; 2],
    /// Weight of each component per horizon (rows sum to 1).
    pub weights: [[f32; COMPONENTS]; 2],
    /// The patient's running RMSE of the combined forecast per horizon.
    pub uncertainty_mg_dl: [f32; 2],
    /// What each component said, and its running RMSE for this patient.
    pub components: [[f32; COMPONENTS]; 2],
    pub component_rmse_mg_dl: [[f32; COMPONENTS]; 2],
}

impl Combined {
    /// Probability that glucose is below `level_mg_dl` at horizon `h` (0: 30
    /// min, 1: 60 min), from the mixture of the components' forecasts: each a
    /// normal around its forecast with its own running RMSE, weighted as in
    /// the combination. A mixture keeps the warning of a component that
    /// foresees a fall, where the weighted mean would average it away.
    pub fn probability_below(&self, level_mg_dl: f64, h: usize) -> f64 {
        let h = h.min(1);
        let mut total = 0.0;
        for k in 0..COMPONENTS {
            let weight = f64::from(self.weights[h][k]);
            let sigma = f64::from(self.component_rmse_mg_dl[h][k]).max(1.0);
            let z = (level_mg_dl - f64::from(self.components[h][k])) / sigma;
            if weight.is_finite() && z.is_finite() {
                total += weight * normal_cdf(z);
            }
        }
        total.clamp(0.0, 1.0)
    }
}

#[derive(Debug, Clone)]
struct Pending {
    at_ms: i64,
    components: [[f32; COMPONENTS]; 2],
    combined: [f32; 2],
    resolved: [bool; 2],
}

/// Per-patient combination state: 10 running errors, 2 counters and at most
/// 16 pending forecasts.
#[derive(Debug, Clone)]
pub struct ForecastCombiner {
    mse: [[f32; COMPONENTS]; 2],
    combined_mse: [f32; 2],
    resolved: [u32; 2],
    pending: VecDeque<Pending>,
}

impl ForecastCombiner {
    pub fn new(settings: &CombinationSettings) -> Self {
        ForecastCombiner {
            mse: settings.prior_rmse_mg_dl.map(|row| row.map(|r| r * r)),
            combined_mse: settings.prior_combined_rmse_mg_dl.map(|r| r * r),
            resolved: [0; 2],
            pending: VecDeque::with_capacity(PENDING_CAPACITY),
        }
    }

    /// Heap bytes held (for the memory benchmark).
    pub fn heap_bytes(&self) -> usize {
        self.pending.capacity() * std::mem::size_of::<Pending>()
    }

    /// Forecasts resolved so far per horizon.
    pub fn resolved(&self) -> [u32; 2] {
        self.resolved
    }

    /// Running RMSE of the combined forecast per horizon, mg/dL.
    pub fn uncertainty(&self) -> [f32; 2] {
        self.combined_mse.map(f32::sqrt)
    }

    /// Running RMSE per horizon and component, mg/dL.
    pub fn component_rmse(&self) -> [[f32; COMPONENTS]; 2] {
        self.mse.map(|row| row.map(f32::sqrt))
    }

    /// Combines the component forecasts with this patient's weights.
    pub fn combine(
        &self,
        components: &[[f32; COMPONENTS]; 2],
        settings: &CombinationSettings,
    ) -> Result<Combined, MlError> {
        let device = Device::Cpu;
        let flat_mse: Vec<f32> = self.mse.iter().flatten().copied().collect();
        let flat_forecasts: Vec<f32> = components.iter().flatten().copied().collect();
        let mse = Tensor::from_vec(flat_mse, (2, COMPONENTS), &device).map_err(combiner_error)?;
        let forecasts =
            Tensor::from_vec(flat_forecasts, (2, COMPONENTS), &device).map_err(combiner_error)?;
        // rmse^-p = mse^(-p/2), normalised per horizon.
        let raw = mse
            .clamp(0.25f32, f32::MAX)
            .and_then(|m| m.powf(-f64::from(settings.exponent) / 2.0))
            .map_err(combiner_error)?;
        let weights = raw
            .sum_keepdim(1)
            .and_then(|total| raw.broadcast_div(&total))
            .map_err(combiner_error)?;
        let combined = (&weights * &forecasts)
            .and_then(|t| t.sum(1))
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(combiner_error)?;
        let weights = weights.to_vec2::<f32>().map_err(combiner_error)?;
        let mut out = Combined {
            mg_dl: [components[0][0], components[1][0]],
            weights: [[0.0; COMPONENTS]; 2],
            uncertainty_mg_dl: self.combined_mse.map(f32::sqrt),
            components: *components,
            component_rmse_mg_dl: self.component_rmse(),
        };
        for h in 0..2 {
            let (Some(value), Some(row)) = (combined.get(h), weights.get(h)) else {
                continue;
            };
            // Non-finite arithmetic falls back to the learned model.
            if value.is_finite() && row.len() == COMPONENTS && row.iter().all(|w| w.is_finite()) {
                out.mg_dl[h] = *value;
                out.weights[h].copy_from_slice(row);
            } else {
                out.weights[h][0] = 1.0;
            }
        }
        Ok(out)
    }

    /// Remembers a forecast made at `at_ms` to learn from when its truth comes.
    pub fn remember(&mut self, at_ms: i64, components: [[f32; COMPONENTS]; 2], combined: [f32; 2]) {
        if self
            .pending
            .back()
            .is_some_and(|p| at_ms - p.at_ms < 5 * MINUTE_MS)
        {
            return;
        }
        if self.pending.len() == PENDING_CAPACITY {
            self.pending.pop_front();
        }
        self.pending.push_back(Pending {
            at_ms,
            components,
            combined,
            resolved: [false; 2],
        });
    }

    /// Forget pending forecasts (the clock went back, or a new sensor).
    pub fn forget_pending(&mut self) {
        self.pending.clear();
    }

    /// Updates the running errors with every remembered forecast whose
    /// horizon has now passed. `trusted` is false while the newest reading is
    /// doubted (an artefact is not truth).
    pub fn learn(&mut self, history: &CgmHistory, settings: &CombinationSettings, trusted: bool) {
        let Some(now) = history.last() else {
            return;
        };
        for index in 0..self.pending.len() {
            for (h, horizon) in HORIZONS_MIN.iter().enumerate() {
                let Some(pending) = self.pending.get(index) else {
                    continue;
                };
                let due = pending.at_ms + horizon * MINUTE_MS;
                if pending.resolved[h] || now.at_ms < due {
                    continue;
                }
                let truth = history.value_at(due).filter(|_| trusted);
                let (components, combined) = (pending.components[h], pending.combined[h]);
                if let Some(pending) = self.pending.get_mut(index) {
                    pending.resolved[h] = true;
                }
                if let Some(truth) = truth {
                    self.update(h, &components, combined, truth, settings);
                }
            }
        }
        self.pending.retain(|p| !(p.resolved[0] && p.resolved[1]));
    }

    fn update(
        &mut self,
        h: usize,
        components: &[f32; COMPONENTS],
        combined: f32,
        truth: f32,
        settings: &CombinationSettings,
    ) {
        let seen = self.resolved[h] as f32;
        let rate = (1.0 / (settings.prior_weight + seen)).max(settings.forgetting);
        let squared = |forecast: f32| ((forecast - truth).powi(2)).min(MAX_SQUARED_ERROR);
        for (mse, forecast) in self.mse[h].iter_mut().zip(components) {
            if forecast.is_finite() {
                *mse += rate * (squared(*forecast) - *mse);
            }
        }
        if combined.is_finite() {
            self.combined_mse[h] += rate * (squared(combined) - self.combined_mse[h]);
        }
        self.resolved[h] = self.resolved[h].saturating_add(1);
    }
}

/// Standard normal CDF (Abramowitz-Stegun 7.1.26, error below 1.5e-7).
pub fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    if z >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::CgmPoint;

    fn settings() -> CombinationSettings {
        CombinationSettings {
            prior_weight: 10.0,
            forgetting: 0.01,
            ..CombinationSettings::default()
        }
    }

    #[test]
    fn weight_moves_to_the_component_that_is_right_for_this_patient() {
        // Flat 120 mg/dL: the last value is exact, the "learned" component is
        // always 30 mg/dL off, AR2 and the trend are exact too.
        let settings = settings();
        let mut combiner = ForecastCombiner::new(&settings);
        let mut history = CgmHistory::new();
        let components = [[150.0, 120.0, 120.0, 120.0], [150.0, 120.0, 120.0, 120.0]];
        let before = combiner.combine(&components, &settings).expect("combines");
        assert!((before.weights[0][0] - 0.25).abs() < 1e-4, "{before:?}");
        for i in 0..400i64 {
            let at_ms = i * 5 * MINUTE_MS;
            history.admit(CgmPoint {
                at_ms,
                mg_dl: 120.0,
            });
            combiner.learn(&history, &settings, true);
            let combined = combiner.combine(&components, &settings).expect("combines");
            combiner.remember(at_ms, components, combined.mg_dl);
        }
        let after = combiner.combine(&components, &settings).expect("combines");
        assert!(after.weights[0][0] < 0.01, "{after:?}");
        assert!((after.mg_dl[0] - 120.0).abs() < 0.5, "{after:?}");
        assert!(after.uncertainty_mg_dl[0] < 2.0, "{after:?}");
        assert!(combiner.resolved()[1] > 300);
        assert!(combiner.pending.len() <= PENDING_CAPACITY);
    }

    #[test]
    fn doubted_truth_and_bad_numbers_do_not_move_the_errors() {
        let settings = settings();
        let mut combiner = ForecastCombiner::new(&settings);
        let mut history = CgmHistory::new();
        for i in 0..40i64 {
            let at_ms = i * 5 * MINUTE_MS;
            history.admit(CgmPoint {
                at_ms,
                mg_dl: 100.0,
            });
            combiner.learn(&history, &settings, false);
            combiner.remember(at_ms, [[f32::NAN; COMPONENTS]; 2], [f32::NAN; 2]);
        }
        assert_eq!(combiner.resolved(), [0, 0]);
        let rmse = combiner.component_rmse();
        assert!((rmse[0][0] - 15.0).abs() < 1e-4);
        let combined = combiner
            .combine(&[[f32::NAN, 1.0, 1.0, 1.0]; 2], &settings)
            .expect("combines");
        assert!(combined.weights[0][0] == 1.0 || combined.mg_dl[0].is_nan());
    }

    #[test]
    fn damped_trend_extrapolates_a_fading_slope() {
        let mut history = CgmHistory::new();
        for k in 0..5 {
            history.admit(CgmPoint {
                at_ms: k * 5 * MINUTE_MS,
                mg_dl: 100.0 + 10.0 * k as f32,
            });
        }
        let trend = damped_trend(&history).expect("enough points");
        // 2 mg/dL/min from 140; 30 min damped is ~22 min of slope.
        assert!((trend[0] - (140.0 + 2.0 * 22.3)).abs() < 0.5, "{trend:?}");
        assert!(trend[1] > trend[0] && trend[1] < 140.0 + 2.0 * 60.0);
    }

    #[test]
    fn normal_cdf_matches_known_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.96) - 0.975).abs() < 1e-4);
        assert!((normal_cdf(-1.0) - 0.158_655).abs() < 1e-5);
    }

    #[test]
    fn settings_are_checked() {
        assert!(CombinationSettings::default().validate().is_ok());
        let bad = CombinationSettings {
            forgetting: 0.0,
            ..CombinationSettings::default()
        };
        assert!(bad.validate().is_err());
    }
}
