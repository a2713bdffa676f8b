//! The forecast the hub uses: a per-patient combination of five forecasters
//! weighted by how well each has done *for this patient*.
//!
//! The learned model was trained on virtual patients; on real people it can
//! lose to the simple forecasters (issue 12: 6 % worse than AR2 on real
//! traces). So the hub never trusts one forecaster. For each horizon it
//! combines the learned model, Nightscout's AR2, the last value, a damped
//! linear trend and the patient's own linear model (`personal`, learned on
//! the hub). The weights are the minimum-variance combination of Bates and
//! Granger (1969): w = S⁻¹1 / 1ᵀS⁻¹1, where S is this patient's running
//! second-moment matrix of the components' errors, shrunk towards its
//! diagonal (shrinkage 1 gives inverse-MSE weights). Correlated errors are
//! what make the full matrix worth it: two forecasters that err together
//! add nothing, one that errs the other way does. Every forecast is
//! remembered; when its 30- or 60-minute truth arrives the matrix updates.
//! The arithmetic is plain Rust on 5x5 arrays: candle did it first, but its
//! per-operation overhead (about 7 µs each, some twenty per reading) put the
//! p99 per reading at 188 µs against a 100 µs budget (docs/BENCHMARKS.md).
//! It starts from the matrix measured on the validation
//! patients, so the combination is on from the first reading, and forgets
//! slowly, so a patient whose sensor or body favours another forecaster
//! moves the weights there within a day or two.
//!
//! The same running error of the *combined* forecast is the patient's own
//! forecast uncertainty, which the predicted-low decision uses.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::ar2;
use crate::error::MlError;
use crate::history::{CgmHistory, MINUTE_MS};
use crate::personal::{self, PersonalForecaster};

pub const COMPONENTS: usize = 5;
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
    Personal,
}

impl Component {
    pub const ALL: [Component; COMPONENTS] = [
        Component::Learned,
        Component::Ar2,
        Component::LastValue,
        Component::DampedTrend,
        Component::Personal,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Component::Learned => "learned",
            Component::Ar2 => "AR2",
            Component::LastValue => "last value",
            Component::DampedTrend => "damped trend",
            Component::Personal => "personal",
        }
    }
}

/// Settings of the combination, measured on the validation patients
/// (`glyco-ml tune`) and stored in detector.json.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CombinationSettings {
    /// 0: the full error matrix; 1: its diagonal only (inverse-MSE weights).
    pub shrinkage: f32,
    /// Starting second moments of the components' errors per horizon
    /// (30, 60 min), mg/dL² (rows and columns in `Component::ALL` order).
    pub prior_error_moments: [[[f32; COMPONENTS]; COMPONENTS]; 2],
    /// Starting RMSE of the combined forecast per horizon, mg/dL.
    pub prior_combined_rmse_mg_dl: [f32; 2],
    /// How many resolved forecasts the priors count for.
    pub prior_weight: f32,
    /// Smallest update rate of the running errors (1/500: about two days of
    /// 5-minute readings).
    pub forgetting: f32,
}

fn diagonal(values: [f32; COMPONENTS]) -> [[f32; COMPONENTS]; COMPONENTS] {
    let mut m = [[0.0; COMPONENTS]; COMPONENTS];
    for (k, v) in values.iter().enumerate() {
        m[k][k] = *v;
    }
    m
}

impl Default for CombinationSettings {
    fn default() -> Self {
        CombinationSettings {
            shrinkage: 1.0,
            prior_error_moments: [diagonal([225.0; COMPONENTS]), diagonal([625.0; COMPONENTS])],
            prior_combined_rmse_mg_dl: [15.0, 25.0],
            prior_weight: 300.0,
            forgetting: 0.002,
        }
    }
}

impl CombinationSettings {
    pub fn validate(&self) -> Result<(), MlError> {
        let bad = |what: &str| Err(MlError::Config(format!("combination: {what}")));
        if !(0.0..=1.0).contains(&self.shrinkage) {
            return bad("shrinkage outside 0..=1");
        }
        for matrix in &self.prior_error_moments {
            for (i, row) in matrix.iter().enumerate() {
                for (j, value) in row.iter().enumerate() {
                    if !value.is_finite() || value.abs() > 40_000.0 {
                        return bad("prior error moment not finite or beyond (200 mg/dL)^2");
                    }
                    if i == j && *value < 0.25 {
                        return bad("prior error moment on the diagonal below (0.5 mg/dL)^2");
                    }
                    if (value - matrix[j][i]).abs() > 1e-3 * value.abs().max(1.0) {
                        return bad("prior error moments not symmetric");
                    }
                }
            }
        }
        for rmse in &self.prior_combined_rmse_mg_dl {
            if !(0.5..=200.0).contains(rmse) {
                return bad("prior combined RMSE outside 0.5..=200 mg/dL");
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

/// The safety net: a second, fast-forgetting running error per component
/// and for the combination (memory of about 100 resolved forecasts). When
/// the combination has recently done clearly worse than one of its
/// components, that component is used alone until the combination recovers.
/// It guards against a component that breaks for this patient faster than
/// the slow matrix can learn it (a model meeting a sensor it never saw).
const FAST_RATE: f32 = 0.01;
const FAST_PRIOR_WEIGHT: f32 = 20.0;
/// Resolved forecasts before the safety net may act.
const FALLBACK_AFTER: u32 = 30;
/// How much worse (in mean squared error) the combination must be.
const FALLBACK_RATIO: f32 = 1.2;

/// RMSE of each component per horizon: the square roots of the error
/// matrices' diagonals.
pub fn rmse_of(moments: &[[[f32; COMPONENTS]; COMPONENTS]; 2]) -> [[f32; COMPONENTS]; 2] {
    moments.map(|m| std::array::from_fn(|k| m[k][k].max(0.0).sqrt()))
}

/// Weights no component may leave: a near-singular matrix could otherwise
/// ask for wild extrapolation between two similar forecasters.
const WEIGHT_RANGE: (f64, f64) = (-1.0, 2.0);

/// Minimum-variance weights w = S⁻¹1 / 1ᵀS⁻¹1 of a moment matrix shrunk
/// towards its diagonal; inverse-MSE weights when the matrix cannot be
/// solved. Rows sum to 1.
pub fn optimal_weights(
    moments: &[[f32; COMPONENTS]; COMPONENTS],
    shrinkage: f32,
) -> [f32; COMPONENTS] {
    let alpha = f64::from(shrinkage.clamp(0.0, 1.0));
    let mut s = [[0.0f64; COMPONENTS]; COMPONENTS];
    for i in 0..COMPONENTS {
        for j in 0..COMPONENTS {
            let value = f64::from(moments[i][j]);
            s[i][j] = if i == j {
                value.max(0.25)
            } else {
                (1.0 - alpha) * value
            };
        }
    }
    let inverse_mse = || {
        let raw: [f64; COMPONENTS] = std::array::from_fn(|k| 1.0 / s[k][k]);
        let total: f64 = raw.iter().sum();
        raw.map(|w| (w / total) as f32)
    };
    // Cholesky S = L Lᵀ, then solve L Lᵀ x = 1.
    let mut l = [[0.0f64; COMPONENTS]; COMPONENTS];
    for i in 0..COMPONENTS {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = s[i][i] - sum;
                if d.is_nan() || d <= 1e-9 * s[i][i] {
                    return inverse_mse();
                }
                l[i][j] = d.sqrt();
            } else {
                l[i][j] = (s[i][j] - sum) / l[j][j];
            }
        }
    }
    let mut y = [0.0f64; COMPONENTS];
    for i in 0..COMPONENTS {
        let sum: f64 = (0..i).map(|k| l[i][k] * y[k]).sum();
        y[i] = (1.0 - sum) / l[i][i];
    }
    let mut x = [0.0f64; COMPONENTS];
    for i in (0..COMPONENTS).rev() {
        let sum: f64 = (i + 1..COMPONENTS).map(|k| l[k][i] * x[k]).sum();
        x[i] = (y[i] - sum) / l[i][i];
    }
    let total: f64 = x.iter().sum();
    if !(total.is_finite() && total > 0.0) {
        return inverse_mse();
    }
    let clipped = x.map(|v| (v / total).clamp(WEIGHT_RANGE.0, WEIGHT_RANGE.1));
    let total: f64 = clipped.iter().sum();
    let weights = clipped.map(|w| w / total);
    // Clipping can leave a sum near zero, and renormalising would then blow
    // the weights up again: a matrix that asks for that is not trusted.
    let in_range = |w: &f64| w.is_finite() && (WEIGHT_RANGE.0..=WEIGHT_RANGE.1).contains(w);
    if !weights.iter().all(in_range) {
        return inverse_mse();
    }
    weights.map(|w| w as f32)
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
    personal_mg_dl: [f32; 2],
) -> Option<[[f32; COMPONENTS]; 2]> {
    let last = history.last()?.mg_dl;
    let ar2 = [
        ar2::forecast_history(history, 30)? as f32,
        ar2::forecast_history(history, 60)? as f32,
    ];
    let trend = damped_trend(history)?;
    Some([0, 1].map(|h| [learned_mg_dl[h], ar2[h], last, trend[h], personal_mg_dl[h]]))
}

/// The combined forecast and how it was made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Combined {
    /// The forecast to use.
    pub mg_dl: [f32; 2],
    /// The minimum-variance combination (equal to `mg_dl` unless the safety
    /// net chose one component); its errors are what the combiner tracks.
    pub minimum_variance_mg_dl: [f32; 2],
    /// The component used alone by the safety net, per horizon.
    pub fallback: [Option<Component>; 2],
    /// Weight of each component per horizon (rows sum to 1; a weight may be
    /// negative when two components err together).
    pub weights: [[f32; COMPONENTS]; 2],
}

#[derive(Debug, Clone)]
struct Pending {
    at_ms: i64,
    mg_dl: f32,
    personal_inputs: [f32; personal::INPUTS],
    components: [[f32; COMPONENTS]; 2],
    combined: [f32; 2],
    resolved: [bool; 2],
}

/// A forecast to learn from once its truth arrives.
#[derive(Debug, Clone, Copy)]
pub struct Remembered {
    pub at_ms: i64,
    pub mg_dl: f32,
    pub personal_inputs: [f32; personal::INPUTS],
    pub components: [[f32; COMPONENTS]; 2],
    pub combined: [f32; 2],
}

/// Per-patient combination state: two 5x5 error matrices, 2 running errors,
/// 2 counters, the personal forecaster and at most 16 pending forecasts
/// (about 3 KiB).
#[derive(Debug, Clone)]
pub struct ForecastCombiner {
    moments: [[[f32; COMPONENTS]; COMPONENTS]; 2],
    combined_mse: [f32; 2],
    fast_mse: [[f32; COMPONENTS]; 2],
    fast_combined_mse: [f32; 2],
    resolved: [u32; 2],
    personal: PersonalForecaster,
    pending: VecDeque<Pending>,
}

impl ForecastCombiner {
    pub fn new(
        settings: &CombinationSettings,
        personal_prior: [[f32; personal::INPUTS]; 2],
    ) -> Self {
        ForecastCombiner {
            moments: settings.prior_error_moments,
            combined_mse: settings.prior_combined_rmse_mg_dl.map(|r| r * r),
            fast_mse: settings
                .prior_error_moments
                .map(|m| std::array::from_fn(|k| m[k][k])),
            fast_combined_mse: settings.prior_combined_rmse_mg_dl.map(|r| r * r),
            resolved: [0; 2],
            personal: PersonalForecaster::new(personal_prior),
            pending: VecDeque::with_capacity(PENDING_CAPACITY),
        }
    }

    /// Heap bytes held (for the memory benchmark).
    pub fn heap_bytes(&self) -> usize {
        self.pending.capacity() * std::mem::size_of::<Pending>() + self.personal.heap_bytes()
    }

    /// The patient's own forecaster.
    pub fn personal(&self) -> &PersonalForecaster {
        &self.personal
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
        rmse_of(&self.moments)
    }

    /// Combines the component forecasts with this patient's weights.
    pub fn combine(
        &self,
        components: &[[f32; COMPONENTS]; 2],
        settings: &CombinationSettings,
    ) -> Combined {
        let weights = self
            .moments
            .map(|m| optimal_weights(&m, settings.shrinkage));
        let combined: [f32; 2] = std::array::from_fn(|h| {
            weights[h]
                .iter()
                .zip(&components[h])
                .map(|(w, f)| w * f)
                .sum()
        });
        let mut out = Combined {
            mg_dl: [components[0][0], components[1][0]],
            minimum_variance_mg_dl: [components[0][0], components[1][0]],
            weights: [[0.0; COMPONENTS]; 2],
            fallback: [None; 2],
        };
        for h in 0..2 {
            let value = combined[h];
            // Non-finite arithmetic falls back to the learned model.
            if value.is_finite() && weights[h].iter().all(|w| w.is_finite()) {
                out.mg_dl[h] = value;
                out.minimum_variance_mg_dl[h] = value;
                out.weights[h] = weights[h];
            } else {
                out.weights[h][0] = 1.0;
            }
            if let Some(best) = self.fallback(h)
                && components[h][best].is_finite()
            {
                out.mg_dl[h] = components[h][best];
                out.weights[h] = [0.0; COMPONENTS];
                out.weights[h][best] = 1.0;
                out.fallback[h] = Some(Component::ALL[best]);
            }
        }
        out
    }

    /// The component to use alone at horizon `h`, when the combination has
    /// recently done clearly worse than it.
    fn fallback(&self, h: usize) -> Option<usize> {
        if self.resolved[h] < FALLBACK_AFTER {
            return None;
        }
        let (best, best_mse) = self.fast_mse[h]
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))?;
        (self.fast_combined_mse[h] > FALLBACK_RATIO * best_mse).then_some(best)
    }

    /// Remembers a forecast to learn from when its truth comes.
    pub fn remember(&mut self, forecast: Remembered) {
        if self
            .pending
            .back()
            .is_some_and(|p| forecast.at_ms - p.at_ms < 5 * MINUTE_MS)
        {
            return;
        }
        if self.pending.len() == PENDING_CAPACITY {
            self.pending.pop_front();
        }
        self.pending.push_back(Pending {
            at_ms: forecast.at_ms,
            mg_dl: forecast.mg_dl,
            personal_inputs: forecast.personal_inputs,
            components: forecast.components,
            combined: forecast.combined,
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
                let (inputs, then) = (pending.personal_inputs, pending.mg_dl);
                if let Some(pending) = self.pending.get_mut(index) {
                    pending.resolved[h] = true;
                }
                if let Some(truth) = truth {
                    self.update(h, &components, combined, truth, settings);
                    self.personal.learn(h, &inputs, then, truth);
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
        if components.iter().any(|f| !f.is_finite()) {
            return;
        }
        let seen = self.resolved[h] as f32;
        let rate = (1.0 / (settings.prior_weight + seen)).max(settings.forgetting);
        let limit = MAX_SQUARED_ERROR.sqrt();
        let errors: [f32; COMPONENTS] = components.map(|f| (f - truth).clamp(-limit, limit));
        let mut updated = self.moments[h];
        for (i, row) in updated.iter_mut().enumerate() {
            for (j, value) in row.iter_mut().enumerate() {
                *value += rate * (errors[i] * errors[j] - *value);
            }
        }
        if updated.iter().flatten().all(|v| v.is_finite()) {
            self.moments[h] = updated;
        }
        let fast = (1.0 / (FAST_PRIOR_WEIGHT + seen)).max(FAST_RATE);
        for (mse, error) in self.fast_mse[h].iter_mut().zip(&errors) {
            *mse += fast * (error * error - *mse);
        }
        if combined.is_finite() {
            let squared = ((combined - truth).powi(2)).min(MAX_SQUARED_ERROR);
            self.combined_mse[h] += rate * (squared - self.combined_mse[h]);
            self.fast_combined_mse[h] += fast * (squared - self.fast_combined_mse[h]);
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
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
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

    /// One reading `i` (5 minutes apart) of `mg_dl`, as the monitor does it:
    /// older forecasts learn their truth, then a forecast made now is
    /// combined and remembered. Returns what the combiner said.
    fn reading(
        combiner: &mut ForecastCombiner,
        history: &mut CgmHistory,
        settings: &CombinationSettings,
        i: i64,
        mg_dl: f32,
        trusted: bool,
        components: [[f32; COMPONENTS]; 2],
    ) -> Combined {
        let at_ms = i * 5 * MINUTE_MS;
        history.admit(CgmPoint { at_ms, mg_dl });
        combiner.learn(history, settings, trusted);
        let combined = combiner.combine(&components, settings);
        combiner.remember(Remembered {
            at_ms,
            mg_dl,
            personal_inputs: [0.0; personal::INPUTS],
            components,
            combined: combined.minimum_variance_mg_dl,
        });
        combined
    }

    #[test]
    fn weight_moves_to_the_component_that_is_right_for_this_patient() {
        // Flat 120 mg/dL: the last value is exact, the "learned" component is
        // always 30 mg/dL off, AR2 and the trend are exact too.
        let settings = settings();
        let mut combiner = ForecastCombiner::new(&settings, [[0.0; personal::INPUTS]; 2]);
        let mut history = CgmHistory::new();
        let components = [[150.0, 120.0, 120.0, 120.0, 120.0]; 2];
        let before = combiner.combine(&components, &settings);
        assert!((before.weights[0][0] - 0.2).abs() < 1e-4, "{before:?}");
        for i in 0..400i64 {
            reading(
                &mut combiner,
                &mut history,
                &settings,
                i,
                120.0,
                true,
                components,
            );
        }
        let after = combiner.combine(&components, &settings);
        assert!(after.weights[0][0] < 0.01, "{after:?}");
        assert!((after.mg_dl[0] - 120.0).abs() < 0.5, "{after:?}");
        assert!(combiner.uncertainty()[0] < 2.0, "{after:?}");
        assert!(combiner.resolved()[1] > 300);
        assert!(combiner.pending.len() <= PENDING_CAPACITY);
    }

    #[test]
    fn doubted_truth_and_bad_numbers_do_not_move_the_errors() {
        let settings = settings();
        let mut combiner = ForecastCombiner::new(&settings, [[0.0; personal::INPUTS]; 2]);
        let mut history = CgmHistory::new();
        for i in 0..40i64 {
            let nan = [[f32::NAN; COMPONENTS]; 2];
            reading(&mut combiner, &mut history, &settings, i, 100.0, false, nan);
        }
        assert_eq!(combiner.resolved(), [0, 0]);
        let rmse = combiner.component_rmse();
        assert!((rmse[0][0] - 15.0).abs() < 1e-4);
        let combined = combiner.combine(&[[f32::NAN, 1.0, 1.0, 1.0, 1.0]; 2], &settings);
        assert!(combined.weights[0][0] == 1.0 || combined.mg_dl[0].is_nan());
    }

    #[test]
    fn the_safety_net_drops_a_component_that_breaks_for_this_patient() {
        // The priors trust the learned model (10 mg/dL against 20) and forget
        // slowly; on this patient it is 50 mg/dL off.
        let settings = CombinationSettings {
            prior_error_moments: [
                diagonal([100.0, 400.0, 400.0, 400.0, 400.0]),
                diagonal([100.0, 400.0, 400.0, 400.0, 400.0]),
            ],
            prior_weight: 3000.0,
            forgetting: 0.0005,
            shrinkage: 0.0,
            ..CombinationSettings::default()
        };
        let mut combiner = ForecastCombiner::new(&settings, [[0.0; personal::INPUTS]; 2]);
        let mut history = CgmHistory::new();
        let components = [[170.0, 121.0, 120.0, 122.0, 123.0]; 2];
        let first = combiner.combine(&components, &settings);
        assert_eq!(first.fallback, [None, None]);
        assert!(first.mg_dl[0] > 135.0, "{first:?}");
        let mut last = first;
        for i in 0..300i64 {
            last = reading(
                &mut combiner,
                &mut history,
                &settings,
                i,
                120.0,
                true,
                components,
            );
        }
        assert_eq!(last.fallback[0], Some(Component::LastValue), "{last:?}");
        assert!((last.mg_dl[0] - 120.0).abs() < 0.01, "{last:?}");
        assert!(last.minimum_variance_mg_dl[0] > last.mg_dl[0]);
    }

    #[test]
    fn minimum_variance_weights() {
        // Two forecasters whose errors cancel (correlation -0.5, same size):
        // half each; the rest are much worse and get little.
        let mut m = diagonal([100.0, 100.0, 900.0, 900.0, 900.0]);
        m[0][1] = -50.0;
        m[1][0] = -50.0;
        let w = optimal_weights(&m, 0.0);
        assert!((w[0] - w[1]).abs() < 1e-4 && w[0] > 0.4, "{w:?}");
        assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        // Shrinkage 1 ignores correlation: inverse-MSE weights.
        let w = optimal_weights(&m, 1.0);
        assert!(
            (w[0] - 0.9 / (0.9 * 2.0 + 0.1 * 3.0 / 3.0 * 1.0)).abs() < 0.05,
            "{w:?}"
        );
        // A component that errs exactly like another adds nothing: the
        // singular matrix falls back to inverse-MSE weights, still finite.
        let same = [[100.0; COMPONENTS]; COMPONENTS];
        let w = optimal_weights(&same, 0.0);
        assert!(
            w.iter().all(|v| v.is_finite() && (*v - 0.2).abs() < 1e-5),
            "{w:?}"
        );
        // No weight leaves its range however ill-conditioned the matrix.
        let mut nearly = diagonal([100.0, 100.0, 100.0, 100.0, 100.0]);
        nearly[0][1] = 99.9;
        nearly[1][0] = 99.9;
        let w = optimal_weights(&nearly, 0.0);
        assert!(
            w.iter()
                .all(|v| (-1.0..=2.0).contains(&(*v as f64 * 0.999))),
            "{w:?}"
        );
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
