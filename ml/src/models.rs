//! The trained models, loaded once and shared by every patient's monitor.
//!
//! `forecaster.onnx` and `fault_detector.onnx` are scikit-learn MLPs exported
//! by ml/training/train.py; `detector.json` carries their shapes, the class
//! order and the decision thresholds chosen on the validation patients.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tract_onnx::prelude::*;

use crate::combine::CombinationSettings;
use crate::error::MlError;
use crate::features::{FAULT_FEATURES, FEATURE_VERSION, FORECAST_FEATURES};
use crate::finding::FaultKind;

type Plan = TypedRunnableModel<TypedModel>;

#[derive(Debug, Clone, Deserialize)]
struct ModelEntry {
    file: String,
    inputs: usize,
}

#[derive(Debug, Clone, Deserialize)]
struct FaultEntry {
    file: String,
    inputs: usize,
    classes: Vec<String>,
    thresholds: std::collections::BTreeMap<String, f32>,
}

#[derive(Debug, Clone, Deserialize)]
struct ConfigFile {
    feature_version: u32,
    forecaster: ModelEntry,
    fault_detector: FaultEntry,
    combination: CombinationSettings,
    predicted_low: PredictedLowSettings,
    /// Starting weights of the personal forecaster (zeros: the last value).
    #[serde(default)]
    personal_prior: Option<[[f32; crate::personal::INPUTS]; 2]>,
}

/// When a predicted low fires: the probability, from the patient's combined
/// forecast and its running uncertainty, that glucose is below `below_mg_dl`
/// in 30 minutes reaches `probability`. Chosen on the validation patients.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PredictedLowSettings {
    pub probability: f32,
    pub below_mg_dl: f64,
}

impl PredictedLowSettings {
    fn validate(&self) -> Result<(), MlError> {
        if !(0.01..=0.99).contains(&self.probability) {
            return Err(MlError::Config(format!(
                "predicted-low probability {} outside 0.01..=0.99",
                self.probability
            )));
        }
        if !(50.0..=100.0).contains(&self.below_mg_dl) {
            return Err(MlError::Config(format!(
                "predicted-low level {} mg/dL outside 50..=100",
                self.below_mg_dl
            )));
        }
        Ok(())
    }
}

/// A fault class the learned detector outputs, with its decision threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultClass {
    pub kind: FaultKind,
    pub threshold: f32,
}

/// Both models and their decision settings. Build once, wrap in `Arc`, share.
pub struct Models {
    forecaster: Plan,
    fault_detector: Plan,
    /// Output index -> class; index 0 is "no fault" and has no entry.
    fault_classes: Vec<Option<FaultClass>>,
    combination: CombinationSettings,
    predicted_low: PredictedLowSettings,
    personal_prior: [[f32; crate::personal::INPUTS]; 2],
}

impl std::fmt::Debug for Models {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Models")
            .field("fault_classes", &self.fault_classes)
            .field("combination", &self.combination)
            .field("predicted_low", &self.predicted_low)
            .finish_non_exhaustive()
    }
}

/// Forecast deltas (mg/dL) at 30 and 60 minutes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastDelta {
    pub at_30_min: f32,
    pub at_60_min: f32,
}

fn plan(model: &'static str, bytes: &[u8], inputs: usize) -> Result<Plan, MlError> {
    let build = || -> TractResult<Plan> {
        tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(bytes))?
            .with_input_fact(0, f32::fact([1, inputs]).into())?
            .into_optimized()?
            .into_runnable()
    };
    build().map_err(|e| MlError::model(model, e))
}

fn run(model: &'static str, plan: &Plan, input: &[f32]) -> Result<Vec<f32>, MlError> {
    let tensor =
        Tensor::from_shape(&[1, input.len()], input).map_err(|e| MlError::model(model, e))?;
    let outputs = plan
        .run(tvec!(tensor.into()))
        .map_err(|e| MlError::model(model, e))?;
    let first = outputs
        .first()
        .ok_or_else(|| MlError::model(model, "no output"))?;
    let view = first
        .to_array_view::<f32>()
        .map_err(|e| MlError::model(model, e))?;
    let values: Vec<f32> = view.iter().copied().collect();
    if values.iter().any(|v| !v.is_finite()) {
        return Err(MlError::model(model, "non-finite output"));
    }
    Ok(values)
}

impl Models {
    /// The models committed in this repository (ml/models). For tests and the
    /// command line; the hub passes its own installed directory.
    pub fn bundled_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
    }

    /// Loads `detector.json` and the ONNX files it names from `dir`.
    pub fn load_dir(dir: &Path) -> Result<Models, MlError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| MlError::ModelIo { path, source })
        };
        let config = read("detector.json")?;
        let config: ConfigFile = serde_json::from_slice(&config)
            .map_err(|e| MlError::Config(format!("detector.json: {e}")))?;
        let forecaster = read(&config.forecaster.file)?;
        let fault = read(&config.fault_detector.file)?;
        Models::from_parts(&config, &forecaster, &fault)
    }

    /// The committed models, compiled into the binary: an appliance needs no
    /// model files on disk to start.
    pub fn embedded() -> Result<Models, MlError> {
        Models::from_bytes(
            include_bytes!("../models/detector.json"),
            include_bytes!("../models/forecaster.onnx"),
            include_bytes!("../models/fault_detector.onnx"),
        )
    }

    /// Loads from bytes, for a hub that embeds the files.
    pub fn from_bytes(
        config_json: &[u8],
        forecaster_onnx: &[u8],
        fault_onnx: &[u8],
    ) -> Result<Models, MlError> {
        let config: ConfigFile = serde_json::from_slice(config_json)
            .map_err(|e| MlError::Config(format!("detector.json: {e}")))?;
        Models::from_parts(&config, forecaster_onnx, fault_onnx)
    }

    fn from_parts(config: &ConfigFile, forecaster: &[u8], fault: &[u8]) -> Result<Models, MlError> {
        if config.feature_version != FEATURE_VERSION {
            return Err(MlError::Config(format!(
                "models were trained on feature version {}, this code computes version {FEATURE_VERSION}; retrain",
                config.feature_version
            )));
        }
        if config.forecaster.inputs != FORECAST_FEATURES
            || config.fault_detector.inputs != FAULT_FEATURES
        {
            return Err(MlError::Config(
                "feature counts differ from this code; retrain".into(),
            ));
        }
        config.combination.validate()?;
        if config.personal_prior.is_some_and(|w| {
            w.iter()
                .flatten()
                .any(|v| !v.is_finite() || v.abs() > 100.0)
        }) {
            return Err(MlError::Config(
                "personal_prior weights must be finite and within +-100".into(),
            ));
        }
        config.predicted_low.validate()?;
        let mut fault_classes = Vec::new();
        for (index, name) in config.fault_detector.classes.iter().enumerate() {
            let kind = FaultKind::parse_label(name).map_err(MlError::Config)?;
            match (index, kind) {
                (0, None) => fault_classes.push(None),
                (_, Some(kind)) if index > 0 => {
                    let threshold =
                        *config.fault_detector.thresholds.get(name).ok_or_else(|| {
                            MlError::Config(format!("no threshold for class {name}"))
                        })?;
                    fault_classes.push(Some(FaultClass { kind, threshold }));
                }
                _ => {
                    return Err(MlError::Config(
                        "class 0 must be \"none\" and only class 0".into(),
                    ));
                }
            }
        }
        let models = Models {
            forecaster: plan("forecaster", forecaster, FORECAST_FEATURES)?,
            fault_detector: plan("fault_detector", fault, FAULT_FEATURES)?,
            fault_classes,
            combination: config.combination,
            predicted_low: config.predicted_low,
            personal_prior: config
                .personal_prior
                .unwrap_or([[0.0; crate::personal::INPUTS]; 2]),
        };
        // One dry run each, so a model that loads but cannot run fails here
        // and not on a patient's first reading.
        models.forecast(&[0.0; FORECAST_FEATURES])?;
        let probabilities = models.fault_probabilities(&[0.0; FAULT_FEATURES])?;
        if probabilities.len() != models.fault_classes.len() {
            return Err(MlError::Config(
                "fault detector output count differs from its classes".into(),
            ));
        }
        Ok(models)
    }

    /// Forecast glucose change at 30 and 60 minutes (mg/dL).
    pub fn forecast(&self, features: &[f32; FORECAST_FEATURES]) -> Result<ForecastDelta, MlError> {
        let out = run("forecaster", &self.forecaster, features)?;
        match out.as_slice() {
            [d30, d60] => Ok(ForecastDelta {
                at_30_min: d30 * crate::features::DELTA_SCALE,
                at_60_min: d60 * crate::features::DELTA_SCALE,
            }),
            _ => Err(MlError::model(
                "forecaster",
                format!("expected 2 outputs, got {}", out.len()),
            )),
        }
    }

    /// Class probabilities, in `fault_classes` order.
    pub fn fault_probabilities(
        &self,
        features: &[f32; FAULT_FEATURES],
    ) -> Result<Vec<f32>, MlError> {
        run("fault_detector", &self.fault_detector, features)
    }

    /// Output index -> fault class (None for index 0, "no fault").
    pub fn fault_classes(&self) -> &[Option<FaultClass>] {
        &self.fault_classes
    }

    pub fn combination(&self) -> &CombinationSettings {
        &self.combination
    }

    /// Starting weights of each patient's personal forecaster.
    pub fn personal_prior(&self) -> &[[f32; crate::personal::INPUTS]; 2] {
        &self.personal_prior
    }

    pub fn predicted_low(&self) -> PredictedLowSettings {
        self.predicted_low
    }

    /// Overrides the combination settings of detector.json (`glyco-ml tune`
    /// measuring its priors).
    pub fn set_combination(&mut self, settings: CombinationSettings) -> Result<(), MlError> {
        settings.validate()?;
        self.combination = settings;
        Ok(())
    }

    /// Overrides the predicted-low operating point of detector.json (a
    /// clinic trying its own trade-off between warnings and false alarms).
    pub fn set_predicted_low(&mut self, settings: PredictedLowSettings) -> Result<(), MlError> {
        settings.validate()?;
        self.predicted_low = settings;
        Ok(())
    }
}
