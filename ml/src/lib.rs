//! glyco-ml: on-device anomaly detection for the glyco hub.
//!
//! One [`PatientMonitor`] per patient takes every admitted reading and
//! returns typed [`Finding`]s: clinical threshold rules (always), predicted
//! lows and highs from a learned glucose forecaster, and sensor faults
//! (compression lows, stuck values, spikes, gaps, clock jumps, drift against
//! capillary references). The models are ONNX files trained offline
//! (ml/training) and run with tract; the forecast the hub uses is a
//! per-patient combination of the learned model and simple forecasters whose
//! weights are learned on the device. A second, separate model watches how
//! each device talks to the hub ([`behaviour`]): floods, replays, a second
//! source, clock steps, silence, a changed payload shape. See docs/ML.md.
#![forbid(unsafe_code)]

pub mod ar2;
pub mod behaviour;
#[cfg(feature = "eval")]
pub mod bench;
pub mod combine;
#[cfg(feature = "eval")]
pub mod data;
pub mod error;
#[cfg(feature = "eval")]
pub mod eval;
pub mod features;
#[cfg(feature = "eval")]
pub mod featurize;
pub mod finding;
pub mod fleet;
pub mod history;
pub mod models;
pub mod monitor;
pub mod personal;
pub mod rules;
pub mod sample;
pub mod time;
#[cfg(feature = "eval")]
pub mod truth;
#[cfg(feature = "eval")]
pub mod tune;

pub use behaviour::{BehaviourDetector, BehaviourKind, NodeObservation, Observed, RobustBehaviour};
pub use combine::{CombinationSettings, Component};
pub use error::MlError;
pub use finding::{FaultKind, Finding, FindingKind, Severity};
pub use models::{Models, PredictedLowSettings};
pub use monitor::{Assessment, CgmAssessment, Forecast, MonitorConfig, PatientMonitor};
pub use rules::RuleThresholds;
pub use sample::{Measurement, Sample, SensorFlags};
