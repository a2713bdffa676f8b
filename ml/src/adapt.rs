//! On-device learning: a per-patient correction of the forecaster, learned
//! with candle from the patient's own readings as they arrive.
//!
//! The shared forecaster was trained on virtual patients; a real patient's
//! forecasts may be biased in ways that depend on the level and trend (slow
//! absorption, a sensor that reads low). Each forecast is remembered; when
//! the 30- and 60-minute truth arrives, a normalised-LMS step moves a tiny
//! linear model of the residual, `residual ≈ W · [1, level, trend]`. The
//! correction is bounded and only applied after a warm-up, so a bad day can
//! nudge the forecast but never take it over.

use std::collections::VecDeque;

use candle_core::{Device, Tensor};

use crate::error::MlError;
use crate::features::{DELTA_SCALE, FORECAST_FEATURES};
use crate::history::{CgmHistory, MINUTE_MS};

const INPUTS: usize = 3;
const HORIZONS_MIN: [i64; 2] = [30, 60];
/// Step size of the normalised LMS update.
const LEARNING_RATE: f32 = 0.05;
/// Largest correction applied, mg/dL, per horizon.
const LIMIT_MG_DL: [f32; 2] = [20.0, 35.0];
/// Resolved forecasts needed before a correction is applied.
const WARM_UP: u32 = 24;
/// Forecasts remembered at most 5 minutes apart: 13 cover the 60-minute horizon.
const PENDING_CAPACITY: usize = 16;

fn adapter_error(error: candle_core::Error) -> MlError {
    MlError::Adapter(error.to_string())
}

#[derive(Debug, Clone)]
struct Pending {
    at_ms: i64,
    inputs: [f32; INPUTS],
    /// The shared model's forecast (absolute mg/dL) per horizon.
    base_mg_dl: [f32; 2],
    resolved: [bool; 2],
}

/// Per-patient adapter state: 6 weights and at most 16 pending forecasts.
#[derive(Debug, Clone)]
pub struct ForecastAdapter {
    /// [2 horizons, 3 inputs], in units of DELTA_SCALE, row-major. Kept as a
    /// plain array so the state is small and construction cannot fail; candle
    /// does the arithmetic on tensors made from it.
    weights: [f32; 2 * INPUTS],
    pending: VecDeque<Pending>,
    updates: u32,
}

impl Default for ForecastAdapter {
    fn default() -> Self {
        Self::new()
    }
}

impl ForecastAdapter {
    pub fn new() -> Self {
        ForecastAdapter {
            // A zeros tensor on the CPU cannot fail to allocate in practice;
            // if it did, the adapter would stay inactive (see `correction`).
            weights: [0.0; 2 * INPUTS],
            pending: VecDeque::with_capacity(PENDING_CAPACITY),
            updates: 0,
        }
    }

    /// Heap bytes held (for the memory benchmark): weights and pending slots.
    pub fn heap_bytes(&self) -> usize {
        self.pending.capacity() * std::mem::size_of::<Pending>()
    }

    pub fn updates(&self) -> u32 {
        self.updates
    }

    /// The adapter's view of a reading: bias, level, 15-minute trend.
    pub fn inputs(features: &[f32; FORECAST_FEATURES]) -> [f32; INPUTS] {
        let level = (features[0] * 100.0 - 140.0) / 100.0;
        let trend = -features[3];
        [1.0, level, trend]
    }

    fn weights_tensor(&self) -> Result<Tensor, MlError> {
        Tensor::from_slice(&self.weights, (2, INPUTS), &Device::Cpu).map_err(adapter_error)
    }

    /// Correction (mg/dL) to add to the 30- and 60-minute forecasts.
    pub fn correction(&self, inputs: &[f32; INPUTS]) -> Result<[f32; 2], MlError> {
        if self.updates < WARM_UP {
            return Ok([0.0; 2]);
        }
        let x = Tensor::new(&inputs[..], &Device::Cpu)
            .map_err(adapter_error)?
            .reshape((INPUTS, 1))
            .map_err(adapter_error)?;
        let out = self
            .weights_tensor()?
            .matmul(&x)
            .map_err(adapter_error)?
            .flatten_all()
            .map_err(adapter_error)?;
        let out: Vec<f32> = out.to_vec1().map_err(adapter_error)?;
        let mut correction = [0.0; 2];
        for h in 0..2 {
            let value = out.get(h).copied().unwrap_or(0.0) * DELTA_SCALE;
            correction[h] = if value.is_finite() {
                value.clamp(-LIMIT_MG_DL[h], LIMIT_MG_DL[h])
            } else {
                0.0
            };
        }
        Ok(correction)
    }

    /// Remembers a forecast made at `at_ms` to learn from when its truth comes.
    pub fn remember(&mut self, at_ms: i64, inputs: [f32; INPUTS], base_mg_dl: [f32; 2]) {
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
            inputs,
            base_mg_dl,
            resolved: [false; 2],
        });
    }

    /// Forget pending forecasts (the clock went back: their times are void).
    pub fn forget_pending(&mut self) {
        self.pending.clear();
    }

    /// Learns from every remembered forecast whose horizon has now passed.
    pub fn learn(&mut self, history: &CgmHistory) -> Result<(), MlError> {
        let Some(now) = history.last() else {
            return Ok(());
        };
        let mut rows: Vec<([f32; INPUTS], [f32; 2], [f32; 2])> = Vec::new();
        for pending in &mut self.pending {
            let mut errors = [0.0; 2];
            let mut mask = [0.0; 2];
            for (h, horizon) in HORIZONS_MIN.iter().enumerate() {
                let due = pending.at_ms + horizon * MINUTE_MS;
                if pending.resolved[h] || now.at_ms < due {
                    continue;
                }
                pending.resolved[h] = true;
                if let Some(truth) = history.value_at(due) {
                    errors[h] = (truth - pending.base_mg_dl[h]) / DELTA_SCALE;
                    mask[h] = 1.0;
                }
            }
            if mask.iter().any(|m| *m > 0.0) {
                rows.push((pending.inputs, errors, mask));
            }
        }
        self.pending.retain(|p| !(p.resolved[0] && p.resolved[1]));
        for (inputs, residual, mask) in rows {
            self.step(&inputs, &residual, &mask)?;
        }
        Ok(())
    }

    /// One normalised-LMS step: W += lr * (r - W x) x^T / (1 + |x|^2), masked
    /// to the horizons whose truth arrived.
    fn step(
        &mut self,
        inputs: &[f32; INPUTS],
        residual: &[f32; 2],
        mask: &[f32; 2],
    ) -> Result<(), MlError> {
        let device = Device::Cpu;
        let x = Tensor::new(&inputs[..], &device)
            .map_err(adapter_error)?
            .reshape((INPUTS, 1))
            .map_err(adapter_error)?;
        let r = Tensor::new(&residual[..], &device)
            .map_err(adapter_error)?
            .reshape((2, 1))
            .map_err(adapter_error)?;
        let m = Tensor::new(&mask[..], &device)
            .map_err(adapter_error)?
            .reshape((2, 1))
            .map_err(adapter_error)?;
        let current = self.weights_tensor()?;
        let predicted = current.matmul(&x).map_err(adapter_error)?;
        let error = ((r - predicted).map_err(adapter_error)? * m).map_err(adapter_error)?;
        let norm: f32 = inputs.iter().map(|v| v * v).sum::<f32>() + 1.0;
        let gain = f64::from(LEARNING_RATE / norm);
        let update = error
            .matmul(&x.t().map_err(adapter_error)?)
            .map_err(adapter_error)?
            .affine(gain, 0.0)
            .map_err(adapter_error)?;
        let weights = (&current + update).map_err(adapter_error)?;
        let weights: Vec<f32> = weights
            .flatten_all()
            .and_then(|w| w.to_vec1::<f32>())
            .map_err(adapter_error)?;
        if weights.len() == self.weights.len() && weights.iter().all(|w| w.is_finite()) {
            self.weights.copy_from_slice(&weights);
            self.updates = self.updates.saturating_add(1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::CgmPoint;

    #[test]
    fn learns_a_constant_bias() {
        // The model always forecasts 20 mg/dL too low on a flat 120 mg/dL.
        let mut adapter = ForecastAdapter::new();
        let mut history = CgmHistory::new();
        let inputs = [1.0, -0.2, 0.0];
        assert_eq!(adapter.correction(&inputs).ok(), Some([0.0, 0.0]));
        for i in 0..600i64 {
            let at_ms = i * 5 * MINUTE_MS;
            history.admit(CgmPoint {
                at_ms,
                mg_dl: 120.0,
            });
            adapter.learn(&history).expect("learns");
            adapter.remember(at_ms, inputs, [100.0, 100.0]);
        }
        let correction = adapter.correction(&inputs).expect("corrects");
        assert!(adapter.updates() > WARM_UP);
        assert!((correction[0] - 20.0).abs() < 2.0, "{correction:?}");
        assert!(
            correction[1] > 15.0 && correction[1] <= 20.5,
            "{correction:?}"
        );
        assert!(adapter.pending.len() <= PENDING_CAPACITY);
    }
}
