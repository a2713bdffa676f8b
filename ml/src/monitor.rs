//! The streaming API: one `PatientMonitor` per patient, one call per reading.
//!
//! ```no_run
//! use std::sync::Arc;
//! use glyco_ml::{Measurement, Models, PatientMonitor, Sample};
//! let models = Arc::new(Models::load_dir(&Models::bundled_dir())?);
//! let mut monitor = PatientMonitor::new(Arc::clone(&models));
//! let reading = Sample::new(1_767_598_200_000, Measurement::CgmGlucose { mg_dl: 92.0 });
//! for finding in monitor.observe(&reading)? {
//!     println!("{finding}");
//! }
//! # Ok::<(), glyco_ml::MlError>(())
//! ```

use std::sync::Arc;

use crate::combine::{COMPONENTS, ForecastCombiner, Remembered, component_forecasts, normal_cdf};
use crate::error::MlError;
use crate::features::{fault_features, forecast_features, steepest_fall};
use crate::finding::{FaultKind, Finding, FindingKind, Severity};
use crate::history::{Arrival, CgmHistory, CgmPoint, MINUTE_MS};
use crate::models::Models;
use crate::personal::PersonalForecaster;
use crate::rules::{self, RuleThresholds};
use crate::sample::{Measurement, Sample};

/// Settings of one monitor; `Default` is what the hub should use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MonitorConfig {
    pub rules: RuleThresholds,
    /// Combine the learned forecaster with AR2, the last value and a damped
    /// trend, weighted by this patient's recent errors (on by default; off
    /// leaves the learned model alone, for comparison).
    pub combine: bool,
    /// A finding of a kind already reported at the same or higher severity
    /// within this time is not reported again (no alarm floods).
    pub repeat_after_ms: i64,
    /// A predicted high fires when the 60-minute forecast exceeds this.
    pub predicted_high_above_mg_dl: f64,
    /// CGM and capillary glucose disagree when they differ by more than this
    /// many mg/dL and more than `drift_fraction` of the capillary value.
    pub drift_min_mg_dl: f64,
    pub drift_fraction: f64,
    /// Consecutive readings (at most 10 minutes apart) whose forecast must
    /// agree before a predicted low fires; sensors reading every 10 minutes
    /// or slower need one. Filters single noisy readings.
    pub predicted_low_confirmations: u8,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            rules: RuleThresholds::default(),
            combine: true,
            repeat_after_ms: 30 * MINUTE_MS,
            predicted_high_above_mg_dl: 250.0,
            drift_min_mg_dl: 40.0,
            drift_fraction: 0.3,
            predicted_low_confirmations: 2,
        }
    }
}

/// Forecast made at a CGM reading, mg/dL.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    pub at_30_min_mg_dl: f64,
    pub at_60_min_mg_dl: f64,
    /// The learned model's own forecast (30, 60 min).
    pub learned_mg_dl: [f64; 2],
    /// This patient's running RMSE of the forecast (30, 60 min).
    pub uncertainty_mg_dl: [f64; 2],
    /// Weights of learned, AR2, last value, damped trend, personal (30, 60 min).
    pub weights: [[f32; COMPONENTS]; 2],
    /// What each of those forecast (30, 60 min); `None` before AR2 can.
    pub components: Option<[[f32; COMPONENTS]; 2]>,
}

/// Everything the monitor concluded about one CGM reading, before findings
/// are de-duplicated. The evaluation scores these.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CgmAssessment {
    pub forecast: Option<Forecast>,
    /// The sensor fault this reading most likely shows, if any.
    pub fault: Option<FaultKind>,
    pub fault_confidence: f32,
    /// The predicted-low decision for this reading.
    pub predicted_low: bool,
    /// Probability that glucose is low in 30 minutes (0 where no predicted
    /// low may fire: no forecast, short history, a doubted reading, already low).
    pub low_probability: f32,
    /// Readings in a row the decision needs at this sensor's cadence.
    pub low_confirmations_needed: u8,
}

/// The confirmation rule of predicted lows: `needed` candidate readings in a
/// row, each at most 10 minutes after the last. Shared with the evaluation,
/// which replays it at other operating points.
#[derive(Debug, Clone, Copy)]
pub struct LowConfirmation {
    count: u8,
    last_ms: i64,
}

impl Default for LowConfirmation {
    fn default() -> Self {
        LowConfirmation {
            count: 0,
            last_ms: i64::MIN,
        }
    }
}

impl LowConfirmation {
    /// One reading: whether its forecast says low, and whether that is now
    /// confirmed.
    pub fn step(&mut self, at_ms: i64, candidate: bool, needed: u8) -> bool {
        let recent = at_ms.saturating_sub(self.last_ms) <= 10 * MINUTE_MS;
        self.count = match (candidate, recent) {
            (false, _) => 0,
            (true, true) => self.count.saturating_add(1),
            (true, false) => 1,
        };
        self.last_ms = at_ms;
        candidate && self.count >= needed.max(1)
    }
}

/// Result of one reading: the findings to report and, for CGM readings, the
/// per-reading assessment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Assessment {
    pub findings: Vec<Finding>,
    pub cgm: Option<CgmAssessment>,
}

#[derive(Debug, Clone, Copy)]
struct DriftSuspicion {
    since_ms: i64,
}

/// A compression low the detector found: readings stay suspect while they
/// remain well below the level before the fall, up to two hours. The learned
/// detector is surest at the fall; this carries its verdict over the plateau.
#[derive(Debug, Clone, Copy)]
struct CompressionEpisode {
    started_ms: i64,
    before_mg_dl: f32,
}

const COMPRESSION_MAX_MS: i64 = 120 * MINUTE_MS;
/// Detector probability that keeps a found episode going (hysteresis: the
/// episode needs the full class threshold to start).
/// Smallest 15-minute fall that can start a compression low, mg/dL.
const COMPRESSION_MIN_FALL_MG_DL: f32 = 25.0;
const COMPRESSION_HOLD_P: f32 = 0.2;
/// Repeats the learned detector needs before it may call a sensor stuck.
const STUCK_MODEL_MIN_RUN_MS: i64 = 10 * MINUTE_MS;
/// Smallest distance of a spike from the 20-minute median, mg/dL.
const SPIKE_MIN_OFFSET_MG_DL: f32 = 25.0;
/// The fixed rule: the same value for 20 minutes (3 readings or more).
const STUCK_RULE_RUN_MS: i64 = 20 * MINUTE_MS;

/// Largest CGM rate (mg/dL/min over 15 minutes) at which a capillary
/// reading is compared with CGM.
const DRIFT_STEADY_MG_DL_PER_MIN: f32 = 1.0;
/// Suspicions of drift expire: the sensor may have been recalibrated.
const DRIFT_MEMORY_MS: i64 = 12 * 60 * MINUTE_MS;
/// A capillary reading is compared with CGM at most this far from a CGM reading.
const CAPILLARY_MATCH_MS: i64 = 10 * MINUTE_MS;
/// Kinds of findings tracked for de-duplication (bounded by the enum).
const REPORTED_CAPACITY: usize = 24;

/// Per-patient state. Small (a few KiB) and bounded whatever the input.
#[derive(Debug)]
pub struct PatientMonitor {
    models: Arc<Models>,
    config: MonitorConfig,
    cgm: CgmHistory,
    combiner: ForecastCombiner,
    drift: Option<DriftSuspicion>,
    compression: Option<CompressionEpisode>,
    low_confirmation: LowConfirmation,
    /// A sensor said it is warming up: the next gap is a change-over.
    sensor_warming: bool,
    reported: Vec<(FindingKind, Severity, i64)>,
}

fn is_artefact(kind: FaultKind) -> bool {
    matches!(
        kind,
        FaultKind::CompressionLow | FaultKind::Stuck | FaultKind::Spike
    )
}

impl PatientMonitor {
    pub fn new(models: Arc<Models>) -> Self {
        Self::with_config(models, MonitorConfig::default())
    }

    pub fn with_config(models: Arc<Models>, config: MonitorConfig) -> Self {
        PatientMonitor {
            config,
            cgm: CgmHistory::new(),
            combiner: ForecastCombiner::new(models.combination(), *models.personal_prior()),
            drift: None,
            compression: None,
            low_confirmation: LowConfirmation::default(),
            sensor_warming: false,
            reported: Vec::with_capacity(REPORTED_CAPACITY),
            models,
        }
    }

    /// One reading in, the findings worth reporting out. Never panics: bad
    /// values and duplicate timestamps come back as `MlError`.
    pub fn observe(&mut self, sample: &Sample) -> Result<Vec<Finding>, MlError> {
        self.assess(sample).map(|a| a.findings)
    }

    /// Like `observe`, with the per-reading forecast and fault decision.
    pub fn assess(&mut self, sample: &Sample) -> Result<Assessment, MlError> {
        sample.validate()?;
        let raw = match sample.measurement {
            Measurement::CgmGlucose { mg_dl } => return self.cgm_reading(sample, mg_dl),
            Measurement::CapillaryGlucose { mg_dl } => self.capillary_reading(sample.at_ms, mg_dl),
            other => rules::vitals(&other, sample.at_ms, &self.config.rules),
        };
        Ok(Assessment {
            findings: self.deduplicate(raw),
            cgm: None,
        })
    }

    /// Approximate bytes this patient's state occupies (struct and heap).
    pub fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.cgm.heap_bytes()
            + self.combiner.heap_bytes()
            + self.reported.capacity() * std::mem::size_of::<(FindingKind, Severity, i64)>()
    }

    fn cgm_reading(&mut self, sample: &Sample, mg_dl: f64) -> Result<Assessment, MlError> {
        let at_ms = sample.at_ms;
        let mut raw = Vec::new();
        if sample.flags.warming_up {
            self.sensor_warming = true;
        }
        if sample.flags.new_sensor || (self.sensor_warming && !sample.flags.warming_up) {
            // A new sensor: its bias and noise are its own, and the hole
            // before it is a change-over, not a lost signal.
            if !sample.flags.sensor_error {
                self.sensor_warming = false;
                self.start_new_sensor();
            }
        }
        if sample.flags.sensor_error || sample.flags.warming_up {
            // The sensor disowns the value: report it, keep it out of history.
            let why = if sample.flags.sensor_error {
                "reported an error"
            } else {
                "is warming up"
            };
            raw.push(fault_finding(
                FaultKind::SensorReported,
                Severity::Info,
                1.0,
                at_ms,
                format!("sensor {why}; {mg_dl:.0} mg/dL not used"),
            ));
            return Ok(Assessment {
                findings: self.deduplicate(raw),
                cgm: Some(CgmAssessment {
                    fault: Some(FaultKind::SensorReported),
                    fault_confidence: 1.0,
                    ..CgmAssessment::default()
                }),
            });
        }
        if sample.flags.calibration_required {
            // The value is still used; the physician should know it may be off.
            raw.push(fault_finding(
                FaultKind::SensorReported,
                Severity::Info,
                1.0,
                at_ms,
                "sensor asks for a calibration; values may drift".to_string(),
            ));
        }
        let point = CgmPoint {
            at_ms,
            mg_dl: mg_dl as f32,
        };
        let mut assessment = CgmAssessment::default();
        match self.cgm.admit(point) {
            Arrival::Duplicate => return Err(MlError::DuplicateTimestamp { at_ms }),
            Arrival::ClockWentBack { back_ms } => {
                self.restart_trend();
                self.reported.clear();
                assessment.fault = Some(FaultKind::ClockJump);
                assessment.fault_confidence = 0.9;
                raw.push(fault_finding(
                    FaultKind::ClockJump,
                    Severity::Warning,
                    0.9,
                    at_ms,
                    format!(
                        "sensor clock went back {:.0} min; trend history restarted",
                        back_ms as f64 / 60_000.0
                    ),
                ));
            }
            Arrival::AfterGap { dt_ms } => {
                assessment.fault = Some(FaultKind::Gap);
                assessment.fault_confidence = 1.0;
                raw.push(fault_finding(
                    FaultKind::Gap,
                    Severity::Info,
                    1.0,
                    at_ms,
                    format!("no CGM readings for {:.0} min", dt_ms as f64 / 60_000.0),
                ));
            }
            Arrival::First | Arrival::Next { .. } => {}
        }

        // Learned artefact detector, unless timing already explains the reading.
        if assessment.fault.is_none()
            && let Some(features) = fault_features(&self.cgm)
        {
            let probabilities = self.models.fault_probabilities(&features)?;
            let mut best: Option<(FaultKind, f32, f32)> = None;
            for (class, p) in self.models.fault_classes().iter().zip(&probabilities) {
                if let Some(class) = class {
                    let margin = p / class.threshold.max(1e-3);
                    if margin >= 1.0 && best.is_none_or(|(_, _, m)| margin > m) {
                        best = Some((class.kind, *p, margin));
                    }
                }
            }
            // Plausibility guard: no compression low without a steep fall in
            // the last hour. Keeps slow real lows from being called artefacts.
            if best.is_some_and(|(kind, _, _)| kind == FaultKind::CompressionLow)
                && steepest_fall(&self.cgm).mg_dl < COMPRESSION_MIN_FALL_MG_DL
            {
                best = None;
            }
            // A stuck sensor repeats its value. The model may call it after
            // STUCK_MODEL_MIN_RUN_MS of repeats (flat glucose read in 0.1 mmol/L
            // steps repeats for a few readings); the fixed 20-minute rule
            // always does, so the detector finds at least what the rule finds.
            let (repeats, run_ms) = self.cgm.repeated_run();
            if best.is_some_and(|(kind, _, _)| kind == FaultKind::Stuck)
                && run_ms < STUCK_MODEL_MIN_RUN_MS
            {
                best = None;
            }
            // A spike stands off the recent level: glucose cannot move
            // SPIKE_MIN_OFFSET_MG_DL away from its 20-minute median at once.
            if best.is_some_and(|(kind, _, _)| kind == FaultKind::Spike)
                && self
                    .recent_median(at_ms, 20 * MINUTE_MS)
                    .is_none_or(|median| (mg_dl as f32 - median).abs() < SPIKE_MIN_OFFSET_MG_DL)
            {
                best = None;
            }
            if best.is_none() && repeats >= 2 && run_ms >= STUCK_RULE_RUN_MS {
                best = Some((FaultKind::Stuck, 0.9, 1.0));
            }
            if best.is_none() {
                let p_compression = self
                    .models
                    .fault_classes()
                    .iter()
                    .zip(&probabilities)
                    .find(|(class, _)| class.is_some_and(|c| c.kind == FaultKind::CompressionLow))
                    .map_or(0.0, |(_, p)| *p);
                best = self.continue_compression(at_ms, mg_dl as f32, p_compression);
            } else if best.is_some_and(|(kind, _, _)| kind == FaultKind::CompressionLow) {
                self.start_compression(at_ms);
            }
            if let Some((kind, p, _)) = best {
                assessment.fault = Some(kind);
                assessment.fault_confidence = p;
                raw.push(fault_finding(
                    kind,
                    Severity::Info,
                    p,
                    at_ms,
                    artefact_explanation(kind, mg_dl),
                ));
            }
        }
        if let Some(drift) = self.drift {
            if at_ms.saturating_sub(drift.since_ms) > DRIFT_MEMORY_MS || at_ms < drift.since_ms {
                self.drift = None;
            } else if assessment.fault.is_none() {
                assessment.fault = Some(FaultKind::Drift);
                assessment.fault_confidence = 0.7;
            }
        }
        let artefact_doubt = match assessment.fault {
            Some(kind) if is_artefact(kind) => assessment.fault_confidence,
            _ => 0.0,
        };
        let trust = (1.0 - artefact_doubt).clamp(0.05, 1.0);

        // Forecast: the learned model, combined with the simple forecasters
        // by this patient's own record.
        if let Some(features) = forecast_features(&self.cgm) {
            let delta = self.models.forecast(&features)?;
            let learned = [
                mg_dl as f32 + delta.at_30_min,
                mg_dl as f32 + delta.at_60_min,
            ];
            let settings = *self.models.combination();
            self.combiner
                .learn(&self.cgm, &settings, artefact_doubt == 0.0);
            let personal_inputs = PersonalForecaster::inputs(&features);
            let personal = self
                .combiner
                .personal()
                .forecast(mg_dl as f32, &personal_inputs);
            let components = component_forecasts(&self.cgm, learned, personal);
            let mut combined = None;
            if self.config.combine
                && let Some(components) = components
            {
                let result = self.combiner.combine(&components, &settings);
                if artefact_doubt == 0.0 {
                    self.combiner.remember(Remembered {
                        at_ms,
                        mg_dl: mg_dl as f32,
                        personal_inputs,
                        components,
                        combined: result.minimum_variance_mg_dl,
                    });
                }
                combined = Some(result);
            }
            let uncertainty = self.combiner.uncertainty().map(|u| f64::from(u).max(1.0));
            // No sensor reads below 20 or above 600 mg/dL; keep forecasts there too.
            let clamp = |v: f32| f64::from(v).clamp(20.0, 600.0);
            let chosen = combined.map_or(learned, |c| c.mg_dl);
            let forecast = Forecast {
                at_30_min_mg_dl: clamp(chosen[0]),
                at_60_min_mg_dl: clamp(chosen[1]),
                learned_mg_dl: learned.map(clamp),
                uncertainty_mg_dl: uncertainty,
                weights: combined.map_or([[1.0, 0.0, 0.0, 0.0, 0.0]; 2], |c| c.weights),
                components,
            };
            assessment.forecast = Some(forecast);
            let enough_history = self.cgm.value_at(at_ms - 10 * MINUTE_MS).is_some();
            let rules = &self.config.rules;
            let low = self.models.predicted_low();
            if enough_history && artefact_doubt == 0.0 && mg_dl >= rules.low_mg_dl {
                let z = (low.below_mg_dl - forecast.at_30_min_mg_dl) / uncertainty[0];
                assessment.low_probability = normal_cdf(z) as f32;
            }
            let slow_sensor = self.cgm.cadence_ms().is_some_and(|c| c >= 10 * MINUTE_MS);
            assessment.low_confirmations_needed = if slow_sensor {
                1
            } else {
                self.config.predicted_low_confirmations.max(1)
            };
            assessment.predicted_low = self.low_confirmation.step(
                at_ms,
                assessment.low_probability >= low.probability,
                assessment.low_confirmations_needed,
            );
            if assessment.predicted_low {
                raw.push(Finding {
                    kind: FindingKind::PredictedLow,
                    severity: Severity::Warning,
                    confidence: assessment.low_probability,
                    explanation: format!(
                        "glucose {mg_dl:.0} mg/dL, forecast {:.0} ± {:.0} mg/dL in 30 min ({:.0} % chance below {:.0})",
                        forecast.at_30_min_mg_dl,
                        uncertainty[0],
                        assessment.low_probability * 100.0,
                        low.below_mg_dl
                    ),
                    at_ms,
                });
            }
            if enough_history
                && artefact_doubt == 0.0
                && mg_dl <= self.config.predicted_high_above_mg_dl
                && forecast.at_60_min_mg_dl > self.config.predicted_high_above_mg_dl
            {
                raw.push(Finding {
                    kind: FindingKind::PredictedHigh,
                    severity: Severity::Info,
                    confidence: 0.7,
                    explanation: format!(
                        "glucose {mg_dl:.0} mg/dL, forecast {:.0} mg/dL in 60 min",
                        forecast.at_60_min_mg_dl
                    ),
                    at_ms,
                });
            }
        }

        // Rules always run; a doubted reading keeps its finding at lower confidence.
        if let Some(mut finding) =
            rules::glucose_level("CGM", mg_dl, at_ms, &self.config.rules, trust)
        {
            if let Some(kind) = assessment.fault.filter(|k| is_artefact(*k)) {
                finding
                    .explanation
                    .push_str(&format!(" (possible sensor artefact: {kind})"));
            }
            raw.push(finding);
        }
        if let Some(before) = self.cgm.value_at(at_ms - 15 * MINUTE_MS) {
            let rate = (mg_dl - f64::from(before)) / 15.0;
            raw.extend(rules::glucose_rate(rate, at_ms, &self.config.rules, trust));
        }
        assessment.fault_confidence = assessment.fault_confidence.clamp(0.0, 1.0);
        Ok(Assessment {
            findings: self.deduplicate(raw),
            cgm: Some(assessment),
        })
    }

    /// Median of the readings in the `window_ms` before the newest one.
    fn recent_median(&self, at_ms: i64, window_ms: i64) -> Option<f32> {
        let mut values: Vec<f32> = self
            .cgm
            .points()
            .rev()
            .skip(1)
            .take_while(|p| p.at_ms >= at_ms - window_ms)
            .map(|p| p.mg_dl)
            .collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f32::total_cmp);
        Some(values[values.len() / 2])
    }

    /// Forgets what belonged to the previous sensor. The combination's
    /// running errors are the patient's and stay.
    fn start_new_sensor(&mut self) {
        self.cgm.clear();
        self.drift = None;
        self.restart_trend();
    }

    /// What depends on the trend before now: pending forecasts (their truth
    /// times are void), a compression episode, predicted-low confirmations.
    /// Used when the clock went back and when a new sensor starts.
    fn restart_trend(&mut self) {
        self.combiner.forget_pending();
        self.compression = None;
        self.low_confirmation = LowConfirmation::default();
    }

    fn start_compression(&mut self, at_ms: i64) {
        if self.compression.is_some() {
            return;
        }
        // The level before the fall: the highest reading of the 30 minutes before.
        let before = self
            .cgm
            .points()
            .rev()
            .skip(1)
            .take_while(|p| p.at_ms >= at_ms - 30 * MINUTE_MS)
            .map(|p| p.mg_dl)
            .fold(f32::MIN, f32::max);
        if before > f32::MIN {
            self.compression = Some(CompressionEpisode {
                started_ms: at_ms,
                before_mg_dl: before,
            });
        }
    }

    /// Keeps flagging a found compression low while the value stays well
    /// below where it fell from.
    fn continue_compression(
        &mut self,
        at_ms: i64,
        mg_dl: f32,
        p_compression: f32,
    ) -> Option<(FaultKind, f32, f32)> {
        let episode = self.compression?;
        let elapsed = at_ms.saturating_sub(episode.started_ms);
        let still_down = mg_dl < episode.before_mg_dl - (0.15 * episode.before_mg_dl).max(10.0);
        if (0..=COMPRESSION_MAX_MS).contains(&elapsed)
            && still_down
            && p_compression >= COMPRESSION_HOLD_P
        {
            Some((FaultKind::CompressionLow, p_compression, 1.0))
        } else {
            self.compression = None;
            None
        }
    }

    /// A capillary reading taken by another device (the patient's meter)
    /// checked against this monitor's CGM stream: the calibration (drift)
    /// check alone. The level rules are the meter's own monitor's to run.
    pub fn reference(&mut self, at_ms: i64, mg_dl: f64) -> Result<Vec<Finding>, MlError> {
        Sample::new(at_ms, Measurement::CapillaryGlucose { mg_dl }).validate()?;
        let raw = self.drift_check(at_ms, mg_dl);
        Ok(self.deduplicate(raw))
    }

    fn capillary_reading(&mut self, at_ms: i64, mg_dl: f64) -> Vec<Finding> {
        let mut raw: Vec<Finding> =
            rules::glucose_level("capillary", mg_dl, at_ms, &self.config.rules, 1.0)
                .into_iter()
                .collect();
        raw.extend(self.drift_check(at_ms, mg_dl));
        raw
    }

    fn drift_check(&mut self, at_ms: i64, mg_dl: f64) -> Vec<Finding> {
        let mut raw = Vec::new();
        let cgm = self.cgm.value_at(at_ms).or_else(|| {
            self.cgm
                .last()
                .filter(|last| (at_ms - last.at_ms).abs() <= CAPILLARY_MATCH_MS)
                .map(|last| last.mg_dl)
        });
        // Sensors lag blood glucose by 5-15 minutes: while glucose moves, CGM
        // and meter disagree without any drift. Compare only when steady.
        let steady = self
            .cgm
            .last()
            .and_then(|last| {
                let before = self.cgm.value_at(last.at_ms - 15 * MINUTE_MS)?;
                Some((last.mg_dl - before).abs() / 15.0 <= DRIFT_STEADY_MG_DL_PER_MIN)
            })
            .unwrap_or(false);
        if let Some(cgm) = cgm.map(f64::from).filter(|_| steady) {
            let difference = cgm - mg_dl;
            let limit = self
                .config
                .drift_min_mg_dl
                .max(self.config.drift_fraction * mg_dl);
            if difference.abs() > limit {
                self.drift = Some(DriftSuspicion { since_ms: at_ms });
                let confidence = (0.5 + 0.5 * ((difference.abs() - limit) / limit).min(1.0)) as f32;
                raw.push(fault_finding(
                    FaultKind::Drift,
                    Severity::Warning,
                    confidence,
                    at_ms,
                    format!("CGM reads {cgm:.0} mg/dL, capillary {mg_dl:.0} mg/dL: sensor may need calibration"),
                ));
            } else {
                self.drift = None;
            }
        }
        raw
    }

    /// Drops findings already reported recently at the same or a higher
    /// severity; remembers what it lets through.
    fn deduplicate(&mut self, raw: Vec<Finding>) -> Vec<Finding> {
        let window = self.config.repeat_after_ms;
        let mut out = Vec::with_capacity(raw.len());
        for finding in raw {
            let recent = self
                .reported
                .iter_mut()
                .find(|(kind, _, _)| *kind == finding.kind);
            match recent {
                Some((_, severity, at)) => {
                    let fresh = finding.at_ms.saturating_sub(*at) >= window || finding.at_ms < *at;
                    if fresh || finding.severity > *severity {
                        *severity = finding.severity;
                        *at = finding.at_ms;
                        out.push(finding);
                    }
                }
                None => {
                    if self.reported.len() >= REPORTED_CAPACITY {
                        self.reported.remove(0);
                    }
                    self.reported
                        .push((finding.kind, finding.severity, finding.at_ms));
                    out.push(finding);
                }
            }
        }
        out
    }
}

fn fault_finding(
    kind: FaultKind,
    severity: Severity,
    confidence: f32,
    at_ms: i64,
    explanation: String,
) -> Finding {
    Finding {
        kind: FindingKind::SensorFault(kind),
        severity,
        confidence,
        explanation,
        at_ms,
    }
}

fn artefact_explanation(kind: FaultKind, mg_dl: f64) -> String {
    match kind {
        FaultKind::CompressionLow => format!(
            "{mg_dl:.0} mg/dL after a fall too fast to be physiological: pressure on the sensor?"
        ),
        FaultKind::Stuck => format!("sensor repeats {mg_dl:.0} mg/dL"),
        FaultKind::Spike => format!("{mg_dl:.0} mg/dL jumps off the recent trend"),
        other => format!("{other} at {mg_dl:.0} mg/dL"),
    }
}
