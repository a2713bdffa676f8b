//! What a patient monitor reports: typed findings with a short explanation.

use std::fmt;

/// How urgently a physician should look. Ordered: `Info < Warning < Urgent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Urgent,
}

/// Sensor artefacts the detector distinguishes. Labels in user files use the
/// snake_case names (`compression_low`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// Pressure on the sensor: a fast, false fall that recovers.
    CompressionLow,
    /// The sensor repeats one value.
    Stuck,
    /// A single implausible reading.
    Spike,
    /// The sensor disagrees with a capillary reference.
    Drift,
    /// Readings were missing; this is the first after the hole.
    Gap,
    /// The device clock moved (backwards, here).
    ClockJump,
    /// The sensor flagged the reading as an error itself.
    SensorReported,
}

impl FaultKind {
    /// Every kind that can appear as a label in data files, in table order.
    pub const LABELLED: [FaultKind; 6] = [
        FaultKind::CompressionLow,
        FaultKind::Stuck,
        FaultKind::Spike,
        FaultKind::Drift,
        FaultKind::Gap,
        FaultKind::ClockJump,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::CompressionLow => "compression_low",
            FaultKind::Stuck => "stuck",
            FaultKind::Spike => "spike",
            FaultKind::Drift => "drift",
            FaultKind::Gap => "gap",
            FaultKind::ClockJump => "clock_jump",
            FaultKind::SensorReported => "sensor_reported",
        }
    }

    /// Parses a label; `Ok(None)` is a reading without fault.
    pub fn parse_label(label: &str) -> Result<Option<FaultKind>, String> {
        let label = label.trim().to_ascii_lowercase();
        match label.as_str() {
            "" | "none" | "ok" | "0" => Ok(None),
            "compression_low" | "compression" => Ok(Some(FaultKind::CompressionLow)),
            "stuck" | "flat" => Ok(Some(FaultKind::Stuck)),
            "spike" => Ok(Some(FaultKind::Spike)),
            "drift" => Ok(Some(FaultKind::Drift)),
            "gap" | "dropout" => Ok(Some(FaultKind::Gap)),
            "clock_jump" => Ok(Some(FaultKind::ClockJump)),
            "sensor_reported" => Ok(Some(FaultKind::SensorReported)),
            other => Err(format!("unknown fault label {other:?}")),
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What was found. Fieldless apart from the fault kind, so the hub can count
/// findings per kind in a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FindingKind {
    /// Glucose below 70 mg/dL (level 1 hypoglycaemia).
    LowGlucose,
    /// Glucose below 54 mg/dL (level 2 hypoglycaemia).
    VeryLowGlucose,
    /// Glucose above 180 mg/dL (level 1 hyperglycaemia).
    HighGlucose,
    /// Glucose above 250 mg/dL (level 2 hyperglycaemia).
    VeryHighGlucose,
    /// Glucose falling faster than the rate threshold (default 3 mg/dL/min).
    RapidFall,
    /// Glucose rising faster than the rate threshold.
    RapidRise,
    /// The forecaster expects glucose below 70 mg/dL within 30 minutes.
    PredictedLow,
    /// The forecaster expects glucose above 250 mg/dL within 60 minutes.
    PredictedHigh,
    /// A sensor artefact; readings it covers should not drive alarms.
    SensorFault(FaultKind),
    /// A device behaves unlike itself (floods, replays, a second source,
    /// clock steps, silence...). Its `at_ms` is the hub's clock: behaviour
    /// is judged by when the hub saw things, not by the device's word.
    NodeBehaviour(crate::behaviour::BehaviourKind),
    /// A device that streams missed two of its expected readings (its own
    /// cadence): the data is stale, whatever the reason.
    StaleData,
    /// Systolic at or above 180 or diastolic at or above 120 mmHg.
    HypertensiveCrisis,
    /// Systolic below 90 mmHg.
    Hypotension,
    HeartRateLow,
    HeartRateHigh,
    LowSpo2,
    Fever,
    Hypothermia,
}

impl FindingKind {
    pub fn name(self) -> String {
        match self {
            FindingKind::SensorFault(kind) => format!("sensor_fault:{kind}"),
            FindingKind::NodeBehaviour(kind) => format!("node_behaviour:{}", kind.name()),
            other => {
                // Debug names are the variant names; snake_case them.
                let mut out = String::new();
                for (i, c) in format!("{other:?}").chars().enumerate() {
                    if c.is_ascii_uppercase() {
                        if i > 0 {
                            out.push('_');
                        }
                        out.push(c.to_ascii_lowercase());
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        }
    }
}

/// One finding about one reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    /// 0..=1: how sure the detector is. Rules on a trusted reading say 1.
    pub confidence: f32,
    /// One sentence for a physician, with the numbers behind the finding.
    pub explanation: String,
    /// Timestamp of the reading that raised it (unix ms, device clock); for
    /// node-behaviour findings, when the hub saw it (hub clock).
    pub at_ms: i64,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{:?}, {:.0}%] {}",
            self.kind.name(),
            self.severity,
            self.confidence * 100.0,
            self.explanation
        )
    }
}
