//! `glyco-ml eval`: the glyco detectors and their baselines, run side by side
//! over the same readings in one pass, scored into one table.

mod baseline;
mod metrics;
mod table;

use std::sync::Arc;

use crate::ar2;
use crate::data::{Dataset, Source, sensor_changes};
use crate::error::MlError;
use crate::finding::FaultKind;
use crate::history::{Arrival, CgmHistory, CgmPoint, MINUTE_MS};
use crate::models::Models;
use crate::monitor::{MonitorConfig, PatientMonitor};
use crate::truth::Truth;

pub use metrics::{CurvePoint, FaultScore, ForecastScore, LowScore, SubjectForecast};
pub use table::render;

/// The methods compared in the table, in column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// What the hub runs: the per-patient combination and the probabilistic
    /// predicted low.
    Model,
    /// The learned forecaster alone (predicted low: its 30-min forecast < 70).
    Learned,
    Ar2,
    Baseline,
}

pub const METHODS: [Method; 4] = [
    Method::Model,
    Method::Learned,
    Method::Ar2,
    Method::Baseline,
];

impl Method {
    pub fn title(self) -> &'static str {
        match self {
            Method::Model => "glyco (hub default: combination)",
            Method::Learned => "learned model alone",
            Method::Ar2 => "AR2 (Nightscout)",
            Method::Baseline => "fixed thresholds / last value",
        }
    }
}

/// What each method said about one CGM reading.
#[derive(Debug, Clone, Copy, Default)]
struct Said {
    forecast: Option<[f64; 2]>,
    predicted_low: bool,
    fault: Option<FaultKind>,
    /// The hub's low probability and confirmations needed (method 0 only),
    /// replayed at other operating points for the curve.
    low_probability: f32,
    low_needed: u8,
}

/// One scored CGM reading of one subject.
#[derive(Debug, Clone)]
struct Scored {
    at_ms: i64,
    segment: usize,
    label: Option<Option<FaultKind>>,
    truth: [Option<f64>; 2],
    said: [Said; 4],
}

/// Everything the table shows.
#[derive(Debug, Clone)]
pub struct Report {
    pub subjects: usize,
    pub readings: usize,
    pub rejected_readings: usize,
    /// Days with CGM data (see `Truth::days`).
    pub patient_days: f64,
    /// First-to-last days, the old count.
    pub span_days: f64,
    /// (days with >= 70 % of expected readings, days with any reading).
    pub sufficient_days: (usize, usize),
    pub low_events: usize,
    pub labelled: bool,
    pub forecast: [ForecastScore; 4],
    pub lows: [LowScore; 4],
    /// The hub's predicted lows at other probability thresholds.
    pub low_curve: Vec<CurvePoint>,
    /// Per subject: 30-minute RMSE of each method.
    pub per_subject: Vec<SubjectForecast>,
    /// The operating point the hub's table row used.
    pub low_probability: f32,
    /// Per labelled fault kind: scores of the glyco detector and of the
    /// fixed-threshold baseline.
    pub faults: Vec<(FaultKind, FaultScore, FaultScore)>,
}

/// Runs every method over every subject.
pub fn evaluate(data: &Dataset, models: &Arc<Models>) -> Result<Report, MlError> {
    let mut scored_subjects = Vec::new();
    let mut rejected = 0usize;
    let (mut days, mut span_days, mut sufficient) = (0.0, 0.0, (0, 0));
    for (subject, records) in &data.subjects {
        let truth = Truth::build(records);
        days += truth.days();
        span_days += truth.span_days();
        let (enough, any) = truth.sufficient_days();
        sufficient = (sufficient.0 + enough, sufficient.1 + any);
        let mut monitor = PatientMonitor::with_config(Arc::clone(models), MonitorConfig::default());
        let mut history = CgmHistory::new();
        let mut scored = Vec::new();
        let changes = sensor_changes(records);
        for ((record, segment_index), new_sensor) in
            records.iter().zip(&truth.segment_of).zip(changes)
        {
            let said_by_monitor = monitor.assess(&record.sample(new_sensor));
            if record.source == Source::Capillary {
                continue;
            }
            let Ok(model_said) = said_by_monitor else {
                rejected += 1;
                continue;
            };
            if new_sensor {
                history.clear();
            }
            let arrival = history.admit(CgmPoint {
                at_ms: record.at_ms,
                mg_dl: record.mg_dl as f32,
            });
            let mut said = [Said::default(); 4];
            let enough_history = history.value_at(record.at_ms - 10 * MINUTE_MS).is_some();
            if let Some(cgm) = model_said.cgm {
                said[0] = Said {
                    forecast: cgm.forecast.map(|f| [f.at_30_min_mg_dl, f.at_60_min_mg_dl]),
                    predicted_low: cgm.predicted_low,
                    fault: cgm.fault,
                    low_probability: cgm.low_probability,
                    low_needed: cgm.low_confirmations_needed,
                };
                let learned = cgm.forecast.map(|f| f.learned_mg_dl);
                said[1] = Said {
                    forecast: learned,
                    predicted_low: enough_history
                        && record.mg_dl >= 70.0
                        && learned.is_some_and(|f| f[0] < 70.0),
                    fault: cgm.fault,
                    ..Said::default()
                };
            }
            let timing_fault = match arrival {
                Arrival::AfterGap { .. } => Some(FaultKind::Gap),
                Arrival::ClockWentBack { .. } => Some(FaultKind::ClockJump),
                _ => None,
            };
            let ar2_forecast = match (
                ar2::forecast_history(&history, 30),
                ar2::forecast_history(&history, 60),
            ) {
                (Some(a), Some(b)) => Some([a, b]),
                _ => None,
            };
            said[2] = Said {
                forecast: ar2_forecast,
                predicted_low: enough_history
                    && record.mg_dl >= 70.0
                    && ar2_forecast.is_some_and(|f| f[0] < 70.0),
                ..Said::default()
            };
            said[3] = Said {
                forecast: Some([record.mg_dl; 2]),
                predicted_low: baseline::approaching_low(record.mg_dl),
                fault: timing_fault
                    .or_else(|| baseline::fault(&history))
                    .or(said[0].fault.filter(|k| *k == FaultKind::Drift)),
                ..Said::default()
            };
            let segment = &truth.segments[*segment_index];
            let clean = record.label.flatten().is_none();
            let truth_at = |minutes: i64| {
                segment
                    .value_at(record.at_ms + minutes * MINUTE_MS)
                    .filter(|_| clean)
                    .map(f64::from)
            };
            scored.push(Scored {
                at_ms: record.at_ms,
                segment: *segment_index,
                label: record.label,
                truth: [truth_at(30), truth_at(60)],
                said,
            });
        }
        scored_subjects.push((subject.clone(), truth, scored));
    }
    let days = metrics::Days {
        data: days,
        span: span_days,
        sufficient,
    };
    Ok(metrics::score(
        data,
        scored_subjects,
        rejected,
        days,
        models.predicted_low().probability,
    ))
}
