//! A forecaster of the patient's own: a linear model of the glucose change
//! 30 and 60 minutes ahead from the last hour's 5-minute grid, learned on the
//! hub from this patient's readings by recursive least squares with
//! forgetting.
//!
//! It starts from the population's linear model (a ridge regression over the
//! training patients, `personal_prior` in detector.json) with a covariance
//! that trusts it moderately, and moves to the patient as truths arrive.
//!
//! The shared forecaster learned population dynamics from simulated people;
//! this one learns how *this* body and *this* sensor move (its smoothing,
//! its noise, how fast meals show). The combination gives it weight only as
//! its running error earns it.

use crate::features::{DELTA_SCALE, FORECAST_FEATURES, LOOKBACK_STEPS};

/// Inputs: the 12 grid deltas of the last hour and a bias.
pub const INPUTS: usize = LOOKBACK_STEPS + 1;
/// Forgetting factor per update (memory of about 500 resolved forecasts,
/// two days at 5 minutes). Chosen a priori.
const FORGETTING: f32 = 0.998;
/// Starting covariance scale: how far the first truths may move the weights.
const INITIAL_P: f32 = 0.01;
/// A covariance grown past this is reset (long runs of identical inputs).
const MAX_P: f32 = 1.0e4;
/// Largest change forecast, in DELTA_SCALE units (250 mg/dL).
const MAX_DELTA: f32 = 5.0;

#[derive(Debug, Clone)]
pub struct PersonalForecaster {
    theta: [[f32; INPUTS]; 2],
    /// Inverse covariance per horizon, row-major INPUTS x INPUTS.
    p: [Vec<f32>; 2],
    updates: [u32; 2],
}

impl Default for PersonalForecaster {
    fn default() -> Self {
        Self::new([[0.0; INPUTS]; 2])
    }
}

fn identity(scale: f32) -> Vec<f32> {
    let mut m = vec![0.0; INPUTS * INPUTS];
    for i in 0..INPUTS {
        m[i * INPUTS + i] = scale;
    }
    m
}

impl PersonalForecaster {
    /// Starts from `prior` weights (zeros forecast the last value).
    pub fn new(prior: [[f32; INPUTS]; 2]) -> Self {
        PersonalForecaster {
            theta: prior,
            p: [identity(INITIAL_P), identity(INITIAL_P)],
            updates: [0; 2],
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.p.iter().map(|m| m.capacity() * 4).sum()
    }

    pub fn updates(&self) -> [u32; 2] {
        self.updates
    }

    /// The model's inputs from the forecaster's features (same grid, same
    /// scale: deltas to the current value / 50).
    pub fn inputs(features: &[f32; FORECAST_FEATURES]) -> [f32; INPUTS] {
        let mut x = [1.0; INPUTS];
        x[..LOOKBACK_STEPS].copy_from_slice(&features[1..=LOOKBACK_STEPS]);
        x
    }

    /// Forecast (mg/dL) at 30 and 60 minutes from the current value.
    pub fn forecast(&self, current_mg_dl: f32, x: &[f32; INPUTS]) -> [f32; 2] {
        [0, 1].map(|h| {
            let delta: f32 = self.theta[h].iter().zip(x).map(|(t, v)| t * v).sum();
            let delta = if delta.is_finite() {
                delta.clamp(-MAX_DELTA, MAX_DELTA)
            } else {
                0.0
            };
            current_mg_dl + delta * DELTA_SCALE
        })
    }

    /// One recursive-least-squares step for horizon `h`: inputs `x` made at
    /// a reading of `then_mg_dl`, truth `truth_mg_dl`.
    pub fn learn(&mut self, h: usize, x: &[f32; INPUTS], then_mg_dl: f32, truth_mg_dl: f32) {
        let h = h.min(1);
        let target = (truth_mg_dl - then_mg_dl) / DELTA_SCALE;
        if !target.is_finite() || x.iter().any(|v| !v.is_finite()) {
            return;
        }
        let target = target.clamp(-MAX_DELTA, MAX_DELTA);
        let p = &mut self.p[h];
        // px = P x
        let mut px = [0.0f32; INPUTS];
        for (i, out) in px.iter_mut().enumerate() {
            *out = (0..INPUTS).map(|j| p[i * INPUTS + j] * x[j]).sum();
        }
        let denominator = FORGETTING + x.iter().zip(&px).map(|(a, b)| a * b).sum::<f32>();
        if !(denominator.is_finite() && denominator > 1e-6) {
            return;
        }
        let gain: [f32; INPUTS] = px.map(|v| v / denominator);
        let predicted: f32 = self.theta[h].iter().zip(x).map(|(t, v)| t * v).sum();
        let error = target - predicted;
        for (t, k) in self.theta[h].iter_mut().zip(&gain) {
            *t += k * error;
        }
        // P = (P - k (P x)^T) / lambda; P stays symmetric since P x = x^T P.
        let mut overflow = false;
        for i in 0..INPUTS {
            for j in 0..INPUTS {
                let value = (p[i * INPUTS + j] - gain[i] * px[j]) / FORGETTING;
                overflow |= !value.is_finite() || (i == j && value > MAX_P);
                p[i * INPUTS + j] = value;
            }
        }
        if overflow || self.theta[h].iter().any(|t| !t.is_finite()) {
            // Keep what was learned when it is sane, restart the covariance.
            if self.theta[h].iter().any(|t| !t.is_finite()) {
                self.theta[h] = [0.0; INPUTS];
            }
            self.p[h] = identity(INITIAL_P);
        }
        self.updates[h] = self.updates[h].saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_patients_linear_dynamics() {
        // Truth: the 30-min change is 3x the last 5-minute change (a trend
        // that continues); the 60-min change 5x.
        let mut model = PersonalForecaster::default();
        let mut seed = 7u64;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        for _ in 0..3000 {
            let mut x = [1.0; INPUTS];
            for v in x.iter_mut().take(LOOKBACK_STEPS) {
                *v = next();
            }
            let change_5 = -x[0] * DELTA_SCALE;
            model.learn(0, &x, 100.0, 100.0 + 3.0 * change_5);
            model.learn(1, &x, 100.0, 100.0 + 5.0 * change_5);
        }
        let mut x = [1.0; INPUTS];
        x[..LOOKBACK_STEPS].fill(0.0);
        x[0] = -0.2; // 10 mg/dL rise in the last 5 minutes
        let forecast = model.forecast(100.0, &x);
        assert!((forecast[0] - 130.0).abs() < 1.0, "{forecast:?}");
        assert!((forecast[1] - 150.0).abs() < 1.5, "{forecast:?}");
        assert_eq!(model.updates(), [3000, 3000]);
    }

    #[test]
    fn untrained_forecasts_the_last_value_and_bad_input_is_ignored() {
        let mut model = PersonalForecaster::default();
        let x = [0.3; INPUTS];
        assert_eq!(model.forecast(120.0, &x), [120.0, 120.0]);
        model.learn(0, &[f32::NAN; INPUTS], 100.0, 90.0);
        model.learn(0, &x, 100.0, f32::INFINITY);
        assert_eq!(model.updates(), [0, 0]);
        // Identical inputs forever: the covariance stays bounded.
        for _ in 0..20_000 {
            model.learn(0, &x, 100.0, 100.0);
        }
        assert!(model.p[0].iter().all(|v| v.is_finite() && *v <= MAX_P));
        assert!(model.forecast(100.0, &x)[0].is_finite());
    }
}
