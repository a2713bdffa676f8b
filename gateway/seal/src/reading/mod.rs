//! The hub's typed health reading: what was measured, by which device, when,
//! and how it arrived. Values are held in canonical units (mg/dL, mmHg, bpm,
//! kg, °C, %); the unit the device reported is kept for provenance.

mod units;
mod validate;

use glyco_contracts::DeviceIdentity;
use serde::{Deserialize, Serialize};

pub use units::{GlucoseUnit, MGDL_PER_MMOLL, PressureUnit, TemperatureUnit, WeightUnit};
pub use validate::{InvalidReading, Limits, validate};

/// Milliseconds since the Unix epoch (UTC).
pub type UnixMillis = i64;

/// The current time in [`UnixMillis`].
pub fn now_millis() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as UnixMillis)
        .unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Mqtt,
    Ble,
}

/// What a reading measured, in canonical units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Measurement {
    /// Finger-stick glucometer.
    CapillaryGlucose {
        mg_dl: f64,
    },
    /// Continuous glucose monitor (interstitial).
    CgmGlucose {
        mg_dl: f64,
    },
    BloodPressure {
        systolic_mmhg: f64,
        diastolic_mmhg: f64,
        mean_mmhg: Option<f64>,
    },
    HeartRate {
        bpm: f64,
    },
    Weight {
        kg: f64,
    },
    Temperature {
        celsius: f64,
    },
    /// Pulse oximetry: oxygen saturation and, when given, the pulse rate.
    Spo2 {
        percent: f64,
        pulse_bpm: Option<f64>,
    },
}

impl Measurement {
    /// The short name used in logs, the wire format and the status output.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::CapillaryGlucose { .. } => "glucose",
            Self::CgmGlucose { .. } => "cgm_glucose",
            Self::BloodPressure { .. } => "blood_pressure",
            Self::HeartRate { .. } => "heart_rate",
            Self::Weight { .. } => "weight",
            Self::Temperature { .. } => "temperature",
            Self::Spo2 { .. } => "spo2",
        }
    }

    /// A short human form, e.g. `112 mg/dL` or `128/82 mmHg`.
    pub fn display_value(&self) -> String {
        match *self {
            Self::CapillaryGlucose { mg_dl } | Self::CgmGlucose { mg_dl } => {
                format!("{mg_dl:.0} mg/dL")
            }
            Self::BloodPressure {
                systolic_mmhg,
                diastolic_mmhg,
                ..
            } => format!("{systolic_mmhg:.0}/{diastolic_mmhg:.0} mmHg"),
            Self::HeartRate { bpm } => format!("{bpm:.0} bpm"),
            Self::Weight { kg } => format!("{kg:.1} kg"),
            Self::Temperature { celsius } => format!("{celsius:.1} °C"),
            Self::Spo2 { percent, pulse_bpm } => match pulse_bpm {
                Some(p) => format!("SpO2 {percent:.0} %, pulse {p:.0} bpm"),
                None => format!("SpO2 {percent:.0} %"),
            },
        }
    }
}

/// Conditions the sensor itself reported alongside a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorFlag {
    LowBattery,
    SensorMalfunction,
    SampleSizeInsufficient,
    StripInsertionError,
    TemperatureOutOfRange,
    CalibrationRequired,
    SensorWarmup,
    DeviceFault,
    BodyMovement,
    CuffLoose,
    IrregularPulse,
    PoorSignal,
    /// The value is the device's limit ("HI"/"LO"); the true level lies
    /// beyond it.
    ResultOutOfRange,
    /// A CGM record sent while no sensor session runs.
    SessionStopped,
    /// The device said its clock may be wrong; the hub's receive time
    /// stands in for when it measured.
    TimeFault,
}

/// Where the reading's sequence number came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeqOrigin {
    /// The device numbered it (MQTT `seq`, glucose record sequence number,
    /// CGM time offset): resends carry the same number, so it identifies the
    /// reading and duplicates are detected by it.
    Device,
    /// The device has no numbering (most BLE profiles); the hub assigned one.
    Hub,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub device: DeviceIdentity,
    pub transport: Transport,
    pub seq: u64,
    pub seq_origin: SeqOrigin,
    /// When the device says it measured; `None` if it sent no time.
    pub device_time: Option<UnixMillis>,
    /// When the hub received it.
    pub received_at: UnixMillis,
    pub measurement: Measurement,
    /// The unit the device reported in, e.g. `mmol/L`.
    pub reported_unit: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<SensorFlag>,
}

impl Reading {
    /// The best time for the measurement: the device's, else the hub's.
    pub fn measured_at(&self) -> UnixMillis {
        self.device_time.unwrap_or(self.received_at)
    }
}
