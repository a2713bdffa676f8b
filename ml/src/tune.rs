//! `glyco-ml tune`: the decisions the hub's forecast combination and
//! predicted low need, measured on the *validation* patients only.
//!
//! 1. Prior RMSE of every component (learned, AR2, last value, damped trend,
//!    personal) per horizon, from the validation readings.
//!    Also their errors' second-moment matrices, the combination's prior.
//! 2. The shrinkage towards the diagonal, from {0, 0.1, 0.25, 0.5, 1}, and
//!    how fast the patient's own errors take over (`ADAPTATION`): the pair
//!    with the lowest combined 30-minute RMSE.
//! 3. The combined forecast's prior RMSE at that choice.
//! 4. The predicted-low probability: the most sensitive point of the curve
//!    with at most `max_false_per_day` false alarms per patient-day (the
//!    aim's 1 by default).
//!
//! Evaluation patients are never read here.

use std::sync::Arc;

use crate::combine::{COMPONENTS, CombinationSettings, HORIZONS_MIN, rmse_of};
use crate::data::{Dataset, Source, sensor_changes};
use crate::error::MlError;
use crate::eval::{self, Report};
use crate::history::MINUTE_MS;
use crate::models::{Models, PredictedLowSettings};
use crate::monitor::{MonitorConfig, PatientMonitor};
use crate::truth::Truth;

pub const SHRINKAGES: [f32; 5] = [0.0, 0.1, 0.25, 0.5, 1.0];
/// (prior weight, forgetting): how fast a patient's own errors take over
/// from the validation priors — within about a day, three days, a week.
pub const ADAPTATION: [(f32, f32); 3] = [(300.0, 0.002), (1000.0, 0.001), (3000.0, 0.0005)];

/// What tuning chose, and what it saw.
#[derive(Debug, Clone)]
pub struct Tuned {
    pub combination: CombinationSettings,
    pub predicted_low: PredictedLowSettings,
    /// Combined 30-min RMSE on the validation patients per (prior weight,
    /// forgetting, shrinkage) tried.
    pub tried: Vec<(f32, f32, f32, f64)>,
    /// The validation report at the chosen settings.
    pub report: Report,
}

type Moments = [[[f32; COMPONENTS]; COMPONENTS]; 2];

/// Second moments of the components' errors per horizon over clean readings
/// with known truth, as the hub's monitors compute them (the personal
/// forecaster learns online as it would on the hub).
pub fn error_moments(data: &Dataset, models: &Arc<Models>) -> Result<Moments, MlError> {
    let mut sums = [[[0.0f64; COMPONENTS]; COMPONENTS]; 2];
    let mut counts = [0usize; 2];
    for records in data.subjects.values() {
        let truth = Truth::build(records);
        let mut monitor = PatientMonitor::with_config(Arc::clone(models), MonitorConfig::default());
        let changes = sensor_changes(records);
        for ((record, segment), new_sensor) in records.iter().zip(&truth.segment_of).zip(changes) {
            let assessment = monitor.assess(&record.sample(new_sensor));
            if record.source != Source::Cgm || record.label.flatten().is_some() {
                continue;
            }
            let Some(components) = assessment
                .ok()
                .and_then(|a| a.cgm)
                .and_then(|c| c.forecast)
                .and_then(|f| f.components)
            else {
                continue;
            };
            for (h, horizon) in HORIZONS_MIN.iter().enumerate() {
                let Some(truth) =
                    truth.segments[*segment].value_at(record.at_ms + horizon * MINUTE_MS)
                else {
                    continue;
                };
                counts[h] += 1;
                let errors = components[h].map(|f| f64::from(f - truth));
                for i in 0..COMPONENTS {
                    for j in 0..COMPONENTS {
                        sums[h][i][j] += errors[i] * errors[j];
                    }
                }
            }
        }
    }
    if counts.contains(&0) {
        return Err(MlError::Config(
            "no validation readings with a known 30- and 60-minute truth".into(),
        ));
    }
    Ok([0, 1].map(|h| sums[h].map(|row| row.map(|s| (s / counts[h] as f64) as f32))))
}

fn shared<T>(
    models: Models,
    work: impl FnOnce(&Arc<Models>) -> Result<T, MlError>,
) -> Result<(Models, T), MlError> {
    let shared = Arc::new(models);
    let out = work(&shared)?;
    let models = Arc::try_unwrap(shared)
        .map_err(|_| MlError::Config("models still shared after evaluation".into()))?;
    Ok((models, out))
}

/// Runs the whole tuning on `validation`; `models` keeps its fault detector
/// and forecaster, its combination and predicted-low settings are replaced.
pub fn tune(
    validation: &Dataset,
    models: Models,
    max_false_per_day: f64,
) -> Result<Tuned, MlError> {
    let (mut models, moments) = shared(models, |m| error_moments(validation, m))?;
    let rmse = rmse_of(&moments);
    let mut settings = CombinationSettings {
        prior_error_moments: moments,
        prior_combined_rmse_mg_dl: [0, 1].map(|h| rmse[h].iter().copied().fold(f32::MAX, f32::min)),
        ..CombinationSettings::default()
    };
    let mut tried = Vec::new();
    let mut best: Option<(CombinationSettings, f64, [f64; 2])> = None;
    for (prior_weight, forgetting) in ADAPTATION {
        for shrinkage in SHRINKAGES {
            settings.prior_weight = prior_weight;
            settings.forgetting = forgetting;
            settings.shrinkage = shrinkage;
            models.set_combination(settings)?;
            let (returned, report) = shared(models, |m| eval::evaluate(validation, m))?;
            models = returned;
            let rmse = report.forecast[0].rmse;
            tried.push((prior_weight, forgetting, shrinkage, rmse[0]));
            if best.is_none_or(|(_, r, _)| rmse[0] < r) {
                best = Some((settings, rmse[0], rmse));
            }
        }
    }
    let (chosen, _, combined) =
        best.ok_or_else(|| MlError::Config("no setting was evaluated".into()))?;
    settings = chosen;
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
        tried,
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
            "shrinkage": c.shrinkage,
            "prior_error_moments": c.prior_error_moments.map(|m| m.map(|row| row.map(round))),
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
