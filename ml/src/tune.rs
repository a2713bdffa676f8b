//! `glyco-ml tune`: the decisions the hub's forecast combination and
//! predicted low need, measured on the *validation* patients only.
//!
//! 1. Prior RMSE of every component (learned, AR2, last value, damped trend)
//!    per horizon, from the validation readings.
//! 2. The weight exponent, from {1, 2, 4, 8}: the one with the lowest
//!    combined 30-minute RMSE.
//! 3. The combined forecast's prior RMSE at that exponent.
//! 4. The predicted-low probability: the most sensitive point of the curve
//!    with at most `max_false_per_day` false alarms per patient-day (the
//!    aim's 1 by default).
//!
//! Evaluation patients are never read here.

use std::sync::Arc;

use crate::combine::{COMPONENTS, CombinationSettings, HORIZONS_MIN, component_forecasts};
use crate::data::{Dataset, Source, sensor_changes};
use crate::error::MlError;
use crate::eval::{self, Report};
use crate::features::forecast_features;
use crate::history::{CgmHistory, CgmPoint, MINUTE_MS};
use crate::models::{Models, PredictedLowSettings};
use crate::truth::Truth;

pub const EXPONENTS: [f32; 4] = [1.0, 2.0, 4.0, 8.0];

/// What tuning chose, and what it saw.
#[derive(Debug, Clone)]
pub struct Tuned {
    pub combination: CombinationSettings,
    pub predicted_low: PredictedLowSettings,
    /// Combined 30-min RMSE on the validation patients per exponent tried.
    pub rmse_by_exponent: Vec<(f32, f64)>,
    /// The validation report at the chosen settings.
    pub report: Report,
}

/// RMSE of each component per horizon over clean readings with known truth.
pub fn component_rmse(data: &Dataset, models: &Models) -> Result<[[f32; COMPONENTS]; 2], MlError> {
    let mut squared = [[0.0f64; COMPONENTS]; 2];
    let mut counts = [0usize; 2];
    for records in data.subjects.values() {
        let truth = Truth::build(records);
        let mut history = CgmHistory::new();
        let changes = sensor_changes(records);
        for ((record, segment), new_sensor) in records.iter().zip(&truth.segment_of).zip(changes)
        {
            if record.source != Source::Cgm || !record.mg_dl.is_finite() {
                continue;
            }
            if new_sensor {
                history.clear();
            }
            history.admit(CgmPoint {
                at_ms: record.at_ms,
                mg_dl: record.mg_dl as f32,
            });
            if record.label.flatten().is_some() {
                continue;
            }
            let Some(features) = forecast_features(&history) else {
                continue;
            };
            let delta = models.forecast(&features)?;
            let g = record.mg_dl as f32;
            let learned = [g + delta.at_30_min, g + delta.at_60_min];
            let Some(components) = component_forecasts(&history, learned) else {
                continue;
            };
            for (h, horizon) in HORIZONS_MIN.iter().enumerate() {
                let Some(truth) = truth.segments[*segment].value_at(record.at_ms + horizon * MINUTE_MS)
                else {
                    continue;
                };
                counts[h] += 1;
                for (k, forecast) in components[h].iter().enumerate() {
                    squared[h][k] += f64::from(forecast - truth).powi(2);
                }
            }
        }
    }
    if counts.contains(&0) {
        return Err(MlError::Config(
            "no validation readings with a known 30- and 60-minute truth".into(),
        ));
    }
    Ok([0, 1].map(|h| squared[h].map(|s| (s / counts[h] as f64).sqrt() as f32)))
}

/// Runs the whole tuning on `validation`; `models` keeps its fault detector
/// and forecaster, its combination and predicted-low settings are replaced.
pub fn tune(validation: &Dataset, mut models: Models, max_false_per_day: f64) -> Result<Tuned, MlError> {
    let priors = component_rmse(validation, &models)?;
    let mut settings = CombinationSettings {
        prior_rmse_mg_dl: priors,
        prior_combined_rmse_mg_dl: [0, 1].map(|h| priors[h].iter().copied().fold(f32::MAX, f32::min)),
        ..CombinationSettings::default()
    };
    let mut rmse_by_exponent = Vec::new();
    let mut best: Option<(f32, f64, [f64; 2])> = None;
    for exponent in EXPONENTS {
        settings.exponent = exponent;
        models.set_combination(settings)?;
        let shared = Arc::new(models);
        let report = eval::evaluate(validation, &shared)?;
        models = Arc::try_unwrap(shared)
            .map_err(|_| MlError::Config("models still shared after evaluation".into()))?;
        let rmse = report.forecast[0].rmse;
        rmse_by_exponent.push((exponent, rmse[0]));
        if best.is_none_or(|(_, r, _)| rmse[0] < r) {
            best = Some((exponent, rmse[0], rmse));
        }
    }
    let (exponent, _, combined) =
        best.ok_or_else(|| MlError::Config("no exponent was evaluated".into()))?;
    settings.exponent = exponent;
    settings.prior_combined_rmse_mg_dl = combined.map(|r| (r as f32).clamp(0.5, 200.0));
    models.set_combination(settings)?;
    let shared = Arc::new(models);
    let report = eval::evaluate(validation, &shared)?;
    let current = shared.predicted_low();
    let chosen = report
        .low_curve
        .iter()
        .filter(|p| p.score.false_per_day <= max_false_per_day)
        .max_by(|a, b| {
            a.score
                .predicted
                .cmp(&b.score.predicted)
                // Among equally sensitive points, the fewer false alarms.
                .then(b.probability.total_cmp(&a.probability))
        })
        .map_or(current.probability, |p| p.probability);
    Ok(Tuned {
        combination: settings,
        predicted_low: PredictedLowSettings {
            probability: chosen,
            ..current
        },
        rmse_by_exponent,
        report,
    })
}

/// detector.json with the tuned settings written in (other fields kept).
pub fn updated_config(config_json: &[u8], tuned: &Tuned) -> Result<String, MlError> {
    let mut config: serde_json::Value = serde_json::from_slice(config_json)
        .map_err(|e| MlError::Config(format!("detector.json: {e}")))?;
    let object = config
        .as_object_mut()
        .ok_or_else(|| MlError::Config("detector.json is not an object".into()))?;
    let round = |v: f32| (f64::from(v) * 100.0).round() / 100.0;
    let c = &tuned.combination;
    object.insert(
        "combination".into(),
        serde_json::json!({
            "exponent": c.exponent,
            "prior_rmse_mg_dl": c.prior_rmse_mg_dl.map(|row| row.map(round)),
            "prior_combined_rmse_mg_dl": c.prior_combined_rmse_mg_dl.map(round),
            "prior_weight": c.prior_weight,
            "forgetting": c.forgetting,
        }),
    );
    object.insert(
        "predicted_low".into(),
        serde_json::json!({
            "probability": round(tuned.predicted_low.probability),
            "below_mg_dl": tuned.predicted_low.below_mg_dl,
        }),
    );
    serde_json::to_string_pretty(&config)
        .map(|s| s + "\n")
        .map_err(|e| MlError::Config(e.to_string()))
}
