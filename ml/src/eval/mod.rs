//! `glyco-ml eval`: the glyco detectors and their baselines, run side by side
//! over the same readings in one pass, scored into one table.

mod baseline;
mod metrics;
mod table;

use std::sync::Arc;

use crate::ar2;
use crate::data::{Dataset, Source};
use crate::error::MlError;
use crate::finding::FaultKind;
use crate::history::{Arrival, CgmHistory, CgmPoint, MINUTE_MS};
use crate::models::Models;
use crate::monitor::{MonitorConfig, PatientMonitor};
use crate::sample::{Measurement, Sample};
use crate::truth::Truth;

pub use metrics::{FaultScore, ForecastScore, LowScore};
pub use table::render;

/// The methods compared in the table, in column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Model,
    Adaptive,
    Ar2,
    Baseline,
}

pub const METHODS: [Method; 4] = [
    Method::Model,
    Method::Adaptive,
    Method::Ar2,
    Method::Baseline,
];

impl Method {
    pub fn title(self) -> &'static str {
        match self {
            Method::Model => "glyco models",
            Method::Adaptive => "glyco + on-device adaptation",
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
    pub patient_days: f64,
    pub low_events: usize,
    pub labelled: bool,
    pub forecast: [ForecastScore; 4],
    pub lows: [LowScore; 4],
    /// Per labelled fault kind: scores of the glyco detector and of the
    /// fixed-threshold baseline.
    pub faults: Vec<(FaultKind, FaultScore, FaultScore)>,
}

/// Runs every method over every subject.
pub fn evaluate(data: &Dataset, models: &Arc<Models>) -> Result<Report, MlError> {
    let mut scored_subjects = Vec::new();
    let mut rejected = 0usize;
    let mut days = 0.0;
    for records in data.subjects.values() {
        let truth = Truth::build(records);
        days += truth.days();
        let mut model = PatientMonitor::with_config(Arc::clone(models), MonitorConfig::default());
        let mut adaptive = PatientMonitor::with_config(
            Arc::clone(models),
            MonitorConfig {
                adapt: true,
                ..MonitorConfig::default()
            },
        );
        let mut history = CgmHistory::new();
        let mut scored = Vec::new();
        for (record, segment_index) in records.iter().zip(&truth.segment_of) {
            let measurement = match record.source {
                Source::Cgm => Measurement::CgmGlucose {
                    mg_dl: record.mg_dl,
                },
                Source::Capillary => Measurement::CapillaryGlucose {
                    mg_dl: record.mg_dl,
                },
            };
            let sample = Sample::new(record.at_ms, measurement);
            let model_said = model.assess(&sample);
            let adaptive_said = adaptive.assess(&sample);
            if record.source == Source::Capillary {
                continue;
            }
            let (Ok(model_said), Ok(adaptive_said)) = (model_said, adaptive_said) else {
                rejected += 1;
                continue;
            };
            let arrival = history.admit(CgmPoint {
                at_ms: record.at_ms,
                mg_dl: record.mg_dl as f32,
            });
            let mut said = [Said::default(); 4];
            for (slot, assessment) in [(0, &model_said), (1, &adaptive_said)] {
                if let Some(cgm) = assessment.cgm {
                    said[slot] = Said {
                        forecast: cgm.forecast.map(|f| [f.at_30_min_mg_dl, f.at_60_min_mg_dl]),
                        predicted_low: cgm.predicted_low,
                        fault: cgm.fault,
                    };
                }
            }
            let timing_fault = match arrival {
                Arrival::AfterGap { .. } => Some(FaultKind::Gap),
                Arrival::ClockWentBack { .. } => Some(FaultKind::ClockJump),
                _ => None,
            };
            let enough_history = history.value_at(record.at_ms - 10 * MINUTE_MS).is_some();
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
                fault: None,
            };
            said[3] = Said {
                forecast: Some([record.mg_dl; 2]),
                predicted_low: baseline::approaching_low(record.mg_dl),
                fault: timing_fault
                    .or_else(|| baseline::fault(&history))
                    .or(said[0].fault.filter(|k| *k == FaultKind::Drift)),
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
        scored_subjects.push((truth, scored));
    }
    Ok(metrics::score(data, scored_subjects, rejected, days))
}
