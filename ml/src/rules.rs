//! Clinical threshold rules. They always run, need no model, and are what a
//! physician would check by eye.
//!
//! Glucose levels follow the international consensus (level 1 < 70, level 2
//! < 54, > 180, > 250 mg/dL); a hypertensive crisis is >= 180 systolic or
//! >= 120 diastolic mmHg. All thresholds are configurable per monitor.

use crate::finding::{Finding, FindingKind, Severity};
use crate::sample::Measurement;

/// Thresholds of the rules; `Default` gives the clinical defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleThresholds {
    pub low_mg_dl: f64,
    pub very_low_mg_dl: f64,
    pub high_mg_dl: f64,
    pub very_high_mg_dl: f64,
    /// |rate| in mg/dL/min (over 15 minutes) that counts as rapid.
    pub rapid_rate_mg_dl_per_min: f64,
    pub crisis_systolic_mmhg: f64,
    pub crisis_diastolic_mmhg: f64,
    pub low_systolic_mmhg: f64,
    pub heart_rate_low_bpm: f64,
    pub heart_rate_very_low_bpm: f64,
    pub heart_rate_high_bpm: f64,
    pub heart_rate_very_high_bpm: f64,
    pub spo2_low_percent: f64,
    pub spo2_very_low_percent: f64,
    pub fever_celsius: f64,
    pub high_fever_celsius: f64,
    pub hypothermia_celsius: f64,
}

impl Default for RuleThresholds {
    fn default() -> Self {
        RuleThresholds {
            low_mg_dl: 70.0,
            very_low_mg_dl: 54.0,
            high_mg_dl: 180.0,
            very_high_mg_dl: 250.0,
            rapid_rate_mg_dl_per_min: 3.0,
            crisis_systolic_mmhg: 180.0,
            crisis_diastolic_mmhg: 120.0,
            low_systolic_mmhg: 90.0,
            heart_rate_low_bpm: 50.0,
            heart_rate_very_low_bpm: 40.0,
            heart_rate_high_bpm: 120.0,
            heart_rate_very_high_bpm: 150.0,
            spo2_low_percent: 92.0,
            spo2_very_low_percent: 88.0,
            fever_celsius: 38.0,
            high_fever_celsius: 39.5,
            hypothermia_celsius: 35.0,
        }
    }
}

fn finding(
    kind: FindingKind,
    severity: Severity,
    confidence: f32,
    at_ms: i64,
    explanation: String,
) -> Finding {
    Finding {
        kind,
        severity,
        confidence,
        explanation,
        at_ms,
    }
}

/// Level findings for one glucose value. `confidence` is below 1 when the
/// fault detector doubts the reading.
pub fn glucose_level(
    source: &str,
    mg_dl: f64,
    at_ms: i64,
    t: &RuleThresholds,
    confidence: f32,
) -> Option<Finding> {
    let (kind, severity, bound, word) = if mg_dl < t.very_low_mg_dl {
        (
            FindingKind::VeryLowGlucose,
            Severity::Urgent,
            t.very_low_mg_dl,
            "below",
        )
    } else if mg_dl < t.low_mg_dl {
        (
            FindingKind::LowGlucose,
            Severity::Warning,
            t.low_mg_dl,
            "below",
        )
    } else if mg_dl > t.very_high_mg_dl {
        (
            FindingKind::VeryHighGlucose,
            Severity::Warning,
            t.very_high_mg_dl,
            "above",
        )
    } else if mg_dl > t.high_mg_dl {
        (
            FindingKind::HighGlucose,
            Severity::Info,
            t.high_mg_dl,
            "above",
        )
    } else {
        return None;
    };
    Some(finding(
        kind,
        severity,
        confidence,
        at_ms,
        format!("{source} glucose {mg_dl:.0} mg/dL is {word} {bound:.0} mg/dL"),
    ))
}

/// Rate-of-change finding; `rate` in mg/dL/min measured over 15 minutes.
pub fn glucose_rate(rate: f64, at_ms: i64, t: &RuleThresholds, confidence: f32) -> Option<Finding> {
    if !rate.is_finite() || rate.abs() < t.rapid_rate_mg_dl_per_min {
        return None;
    }
    let (kind, word) = if rate < 0.0 {
        (FindingKind::RapidFall, "falling")
    } else {
        (FindingKind::RapidRise, "rising")
    };
    Some(finding(
        kind,
        Severity::Warning,
        confidence,
        at_ms,
        format!(
            "glucose {word} {:.1} mg/dL/min over 15 min (limit {:.1})",
            rate.abs(),
            t.rapid_rate_mg_dl_per_min
        ),
    ))
}

/// Findings for the vital signs (blood pressure, heart rate, SpO2,
/// temperature). Glucose is handled by the monitor, which knows its history.
pub fn vitals(measurement: &Measurement, at_ms: i64, t: &RuleThresholds) -> Vec<Finding> {
    let mut out = Vec::new();
    match *measurement {
        Measurement::BloodPressure {
            systolic_mmhg: sys,
            diastolic_mmhg: dia,
        } => {
            if sys >= t.crisis_systolic_mmhg || dia >= t.crisis_diastolic_mmhg {
                out.push(finding(
                    FindingKind::HypertensiveCrisis,
                    Severity::Urgent,
                    1.0,
                    at_ms,
                    format!(
                        "blood pressure {sys:.0}/{dia:.0} mmHg at or above {:.0}/{:.0}",
                        t.crisis_systolic_mmhg, t.crisis_diastolic_mmhg
                    ),
                ));
            } else if sys < t.low_systolic_mmhg {
                out.push(finding(
                    FindingKind::Hypotension,
                    Severity::Warning,
                    1.0,
                    at_ms,
                    format!(
                        "systolic pressure {sys:.0} mmHg below {:.0}",
                        t.low_systolic_mmhg
                    ),
                ));
            }
        }
        Measurement::HeartRate { bpm } => {
            if bpm < t.heart_rate_low_bpm {
                let severity = if bpm < t.heart_rate_very_low_bpm {
                    Severity::Urgent
                } else {
                    Severity::Warning
                };
                out.push(finding(
                    FindingKind::HeartRateLow,
                    severity,
                    1.0,
                    at_ms,
                    format!("heart rate {bpm:.0} bpm below {:.0}", t.heart_rate_low_bpm),
                ));
            } else if bpm > t.heart_rate_high_bpm {
                let severity = if bpm > t.heart_rate_very_high_bpm {
                    Severity::Urgent
                } else {
                    Severity::Warning
                };
                out.push(finding(
                    FindingKind::HeartRateHigh,
                    severity,
                    1.0,
                    at_ms,
                    format!("heart rate {bpm:.0} bpm above {:.0}", t.heart_rate_high_bpm),
                ));
            }
        }
        Measurement::Spo2 { percent } => {
            if percent < t.spo2_low_percent {
                let severity = if percent < t.spo2_very_low_percent {
                    Severity::Urgent
                } else {
                    Severity::Warning
                };
                out.push(finding(
                    FindingKind::LowSpo2,
                    severity,
                    1.0,
                    at_ms,
                    format!("SpO2 {percent:.0}% below {:.0}%", t.spo2_low_percent),
                ));
            }
        }
        Measurement::Temperature { celsius } => {
            if celsius >= t.fever_celsius {
                let severity = if celsius >= t.high_fever_celsius {
                    Severity::Urgent
                } else {
                    Severity::Warning
                };
                out.push(finding(
                    FindingKind::Fever,
                    severity,
                    1.0,
                    at_ms,
                    format!(
                        "temperature {celsius:.1} °C at or above {:.1}",
                        t.fever_celsius
                    ),
                ));
            } else if celsius < t.hypothermia_celsius {
                out.push(finding(
                    FindingKind::Hypothermia,
                    Severity::Urgent,
                    1.0,
                    at_ms,
                    format!(
                        "temperature {celsius:.1} °C below {:.1}",
                        t.hypothermia_celsius
                    ),
                ));
            }
        }
        Measurement::CgmGlucose { .. } | Measurement::CapillaryGlucose { .. } => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(mg_dl: f64) -> Option<(FindingKind, Severity)> {
        glucose_level("CGM", mg_dl, 0, &RuleThresholds::default(), 1.0)
            .map(|f| (f.kind, f.severity))
    }

    #[test]
    fn glucose_thresholds_at_their_edges() {
        assert_eq!(
            level(53.9),
            Some((FindingKind::VeryLowGlucose, Severity::Urgent))
        );
        assert_eq!(
            level(54.0),
            Some((FindingKind::LowGlucose, Severity::Warning))
        );
        assert_eq!(
            level(69.9),
            Some((FindingKind::LowGlucose, Severity::Warning))
        );
        assert_eq!(level(70.0), None);
        assert_eq!(level(180.0), None);
        assert_eq!(
            level(180.1),
            Some((FindingKind::HighGlucose, Severity::Info))
        );
        assert_eq!(
            level(250.0),
            Some((FindingKind::HighGlucose, Severity::Info))
        );
        assert_eq!(
            level(250.1),
            Some((FindingKind::VeryHighGlucose, Severity::Warning))
        );
    }

    #[test]
    fn rate_thresholds() {
        let t = RuleThresholds::default();
        assert_eq!(
            glucose_rate(-3.0, 0, &t, 1.0).map(|f| f.kind),
            Some(FindingKind::RapidFall)
        );
        assert_eq!(
            glucose_rate(3.5, 0, &t, 1.0).map(|f| f.kind),
            Some(FindingKind::RapidRise)
        );
        assert!(glucose_rate(2.9, 0, &t, 1.0).is_none());
        assert!(glucose_rate(f64::NAN, 0, &t, 1.0).is_none());
    }

    #[test]
    fn vital_sign_thresholds() {
        let t = RuleThresholds::default();
        let kinds = |m: Measurement| {
            vitals(&m, 0, &t)
                .iter()
                .map(|f| (f.kind, f.severity))
                .collect::<Vec<_>>()
        };
        let bp = |s, d| Measurement::BloodPressure {
            systolic_mmhg: s,
            diastolic_mmhg: d,
        };
        assert_eq!(
            kinds(bp(180.0, 90.0)),
            vec![(FindingKind::HypertensiveCrisis, Severity::Urgent)]
        );
        assert_eq!(
            kinds(bp(150.0, 120.0)),
            vec![(FindingKind::HypertensiveCrisis, Severity::Urgent)]
        );
        assert!(kinds(bp(179.0, 119.0)).is_empty());
        assert_eq!(
            kinds(bp(85.0, 50.0)),
            vec![(FindingKind::Hypotension, Severity::Warning)]
        );
        assert_eq!(
            kinds(Measurement::HeartRate { bpm: 38.0 }),
            vec![(FindingKind::HeartRateLow, Severity::Urgent)]
        );
        assert_eq!(
            kinds(Measurement::HeartRate { bpm: 45.0 }),
            vec![(FindingKind::HeartRateLow, Severity::Warning)]
        );
        assert!(kinds(Measurement::HeartRate { bpm: 80.0 }).is_empty());
        assert_eq!(
            kinds(Measurement::HeartRate { bpm: 160.0 }),
            vec![(FindingKind::HeartRateHigh, Severity::Urgent)]
        );
        assert_eq!(
            kinds(Measurement::Spo2 { percent: 90.0 }),
            vec![(FindingKind::LowSpo2, Severity::Warning)]
        );
        assert_eq!(
            kinds(Measurement::Temperature { celsius: 38.2 }),
            vec![(FindingKind::Fever, Severity::Warning)]
        );
        assert_eq!(
            kinds(Measurement::Temperature { celsius: 34.0 }),
            vec![(FindingKind::Hypothermia, Severity::Urgent)]
        );
    }
}
