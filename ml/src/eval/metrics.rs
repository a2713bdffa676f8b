//! Scores: forecast error, predicted-low timing, fault precision and recall.
//!
//! Definitions (also in docs/ML.md):
//! - Forecast error is measured at clean readings whose clean truth 30 or 60
//!   minutes later is known, on the readings where every method forecasts.
//! - A low event is clean readings below 70 mg/dL for at least 10 minutes
//!   (lows less than 30 minutes apart merge). It is predicted when a method
//!   raised a predicted low in the 60 minutes up to its onset; the lead time is
//!   onset minus the earliest such alarm.
//! - Alarms less than 30 minutes apart are one alarm; an alarm is false when
//!   no clean reading is below 70 mg/dL in the 60 minutes after it.
//! - Faults are scored per reading (precision, recall, false detections =
//!   readings of other labels flagged as this fault) and per episode (a run of
//!   readings with the label counts as found when any of them is flagged).

use super::{METHODS, Report, Scored};
use crate::data::Dataset;
use crate::finding::FaultKind;
use crate::history::MINUTE_MS;
use crate::monitor::LowConfirmation;
use crate::truth::Truth;

type Subject = (String, Truth, Vec<Scored>);

/// How much data there was, three ways.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Days {
    pub data: f64,
    pub span: f64,
    pub sufficient: (usize, usize),
}

/// One operating point of the hub's predicted low.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    pub probability: f32,
    pub score: LowScore,
}

/// Probability thresholds the curve shows.
pub const CURVE_PROBABILITIES: [f32; 14] = [
    0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7,
];

/// One subject's 30-minute forecast error per method.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectForecast {
    pub subject: String,
    pub points: usize,
    pub rmse_30: [f64; 4],
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ForecastScore {
    pub points: [usize; 2],
    pub rmse: [f64; 2],
    pub mae: [f64; 2],
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LowScore {
    pub events: usize,
    pub predicted: usize,
    pub median_lead_min: Option<f64>,
    pub alarms: usize,
    pub false_alarms: usize,
    pub false_per_day: f64,
}

impl LowScore {
    pub fn sensitivity(&self) -> Option<f64> {
        (self.events > 0).then(|| self.predicted as f64 / self.events as f64)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultScore {
    pub labelled: usize,
    pub flagged: usize,
    pub true_positives: usize,
    pub others: usize,
    pub episodes: usize,
    pub episodes_found: usize,
}

impl FaultScore {
    pub fn precision(&self) -> Option<f64> {
        (self.flagged > 0).then(|| self.true_positives as f64 / self.flagged as f64)
    }
    pub fn recall(&self) -> Option<f64> {
        (self.labelled > 0).then(|| self.true_positives as f64 / self.labelled as f64)
    }
    pub fn episode_recall(&self) -> Option<f64> {
        (self.episodes > 0).then(|| self.episodes_found as f64 / self.episodes as f64)
    }
    /// Readings not labelled with this fault that were flagged as it.
    pub fn false_detection_rate(&self) -> Option<f64> {
        (self.others > 0).then(|| (self.flagged - self.true_positives) as f64 / self.others as f64)
    }
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

fn forecast_score(subjects: &[Subject], method: usize) -> ForecastScore {
    let mut score = ForecastScore::default();
    for h in 0..2 {
        let (mut n, mut sq, mut abs) = (0usize, 0.0, 0.0);
        for (_, _, readings) in subjects {
            for r in readings {
                let Some(truth) = r.truth[h] else { continue };
                if r.said.iter().any(|s| s.forecast.is_none()) {
                    continue;
                }
                let Some(forecast) = r.said[method].forecast else {
                    continue;
                };
                let error = forecast[h] - truth;
                n += 1;
                sq += error * error;
                abs += error.abs();
            }
        }
        score.points[h] = n;
        if n > 0 {
            score.rmse[h] = (sq / n as f64).sqrt();
            score.mae[h] = abs / n as f64;
        }
    }
    score
}

fn subject_forecasts(subjects: &[Subject]) -> Vec<SubjectForecast> {
    subjects
        .iter()
        .map(|(name, truth, readings)| {
            let one = [(name.clone(), truth.clone(), readings.clone())];
            let scores = METHODS.map(|m| forecast_score(&one, m as usize));
            SubjectForecast {
                subject: name.clone(),
                points: scores[0].points[0],
                rmse_30: scores.map(|s| s.rmse[0]),
            }
        })
        .collect()
}

/// Alarms of one method, per reading, as it said them.
fn said_alarms(readings: &[Scored], method: usize) -> Vec<bool> {
    readings
        .iter()
        .map(|r| r.said[method].predicted_low)
        .collect()
}

/// The hub's alarms replayed at another probability threshold.
fn replayed_alarms(readings: &[Scored], probability: f32) -> Vec<bool> {
    let mut confirmation = LowConfirmation::default();
    readings
        .iter()
        .map(|r| {
            let said = &r.said[0];
            confirmation.step(
                r.at_ms,
                said.low_probability > 0.0 && said.low_probability >= probability,
                said.low_needed,
            )
        })
        .collect()
}

fn low_score(
    subjects: &[Subject],
    days: f64,
    alarms_of: impl Fn(&[Scored]) -> Vec<bool>,
) -> LowScore {
    let mut score = LowScore::default();
    let mut leads = Vec::new();
    let window = 60 * MINUTE_MS;
    for (_, truth, readings) in subjects {
        let raised = alarms_of(readings);
        for (index, segment) in truth.segments.iter().enumerate() {
            let alarms: Vec<i64> = readings
                .iter()
                .zip(&raised)
                .filter(|(r, alarm)| r.segment == index && **alarm)
                .map(|(r, _)| r.at_ms)
                .collect();
            let events = segment.low_events();
            for event in &events {
                score.events += 1;
                if let Some(first) = alarms
                    .iter()
                    .find(|t| **t >= event.onset_ms - window && **t <= event.onset_ms)
                {
                    score.predicted += 1;
                    leads.push((event.onset_ms - first) as f64 / MINUTE_MS as f64);
                }
            }
            let mut last_alarm: Option<i64> = None;
            for &at in &alarms {
                let new_alarm = last_alarm.is_none_or(|last| at - last >= 30 * MINUTE_MS);
                last_alarm = Some(at);
                if !new_alarm {
                    continue;
                }
                score.alarms += 1;
                let during = events.iter().any(|e| at >= e.onset_ms && at <= e.end_ms);
                if !during && !segment.any_low_between(at, at + window) {
                    score.false_alarms += 1;
                }
            }
        }
    }
    score.median_lead_min = median(&mut leads);
    score.false_per_day = if days > 0.0 {
        score.false_alarms as f64 / days
    } else {
        0.0
    };
    score
}

fn fault_score(subjects: &[Subject], method: usize, kind: FaultKind) -> FaultScore {
    let mut score = FaultScore::default();
    for (_, _, readings) in subjects {
        let mut in_episode = false;
        let mut episode_found = false;
        for r in readings {
            let Some(label) = r.label else { continue };
            let is_kind = label == Some(kind);
            let flagged = r.said[method].fault == Some(kind);
            if is_kind {
                score.labelled += 1;
                if !in_episode {
                    score.episodes += 1;
                    episode_found = false;
                }
                if flagged && !episode_found {
                    score.episodes_found += 1;
                    episode_found = true;
                }
            } else {
                score.others += 1;
            }
            in_episode = is_kind;
            if flagged {
                score.flagged += 1;
                if is_kind {
                    score.true_positives += 1;
                }
            }
        }
    }
    score
}

pub(super) fn score(
    data: &Dataset,
    subjects: Vec<Subject>,
    rejected: usize,
    days: Days,
    low_probability: f32,
) -> Report {
    let forecast = METHODS.map(|m| forecast_score(&subjects, m as usize));
    let lows = METHODS.map(|m| low_score(&subjects, days.data, |r| said_alarms(r, m as usize)));
    let low_curve = CURVE_PROBABILITIES
        .iter()
        .map(|p| CurvePoint {
            probability: *p,
            score: low_score(&subjects, days.data, |r| replayed_alarms(r, *p)),
        })
        .collect();
    let faults = if data.labelled {
        FaultKind::LABELLED
            .iter()
            .map(|kind| {
                (
                    *kind,
                    fault_score(&subjects, 0, *kind),
                    fault_score(&subjects, 3, *kind),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    Report {
        subjects: subjects.len(),
        readings: subjects.iter().map(|(_, _, r)| r.len()).sum(),
        rejected_readings: rejected,
        patient_days: days.data,
        span_days: days.span,
        sufficient_days: days.sufficient,
        low_events: lows[0].events,
        labelled: data.labelled,
        forecast,
        lows,
        low_curve,
        per_subject: subject_forecasts(&subjects),
        low_probability,
        faults,
    }
}
