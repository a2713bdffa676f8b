//! What the hub hands to a patient monitor: one timestamped measurement.

use crate::error::MlError;

/// One reading from one device of one patient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Device timestamp, unix milliseconds. Devices' clocks jump; the monitor
    /// detects that rather than trusting this blindly.
    pub at_ms: i64,
    pub measurement: Measurement,
    /// Status the sensor reported alongside the value, if any.
    pub flags: SensorFlags,
}

impl Sample {
    pub fn new(at_ms: i64, measurement: Measurement) -> Self {
        Sample {
            at_ms,
            measurement,
            flags: SensorFlags::default(),
        }
    }

    pub fn with_flags(mut self, flags: SensorFlags) -> Self {
        self.flags = flags;
        self
    }
}

/// The measured quantity, in the units its field names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measurement {
    /// Continuous glucose monitor (interstitial), mg/dL.
    CgmGlucose {
        mg_dl: f64,
    },
    /// Capillary (finger-stick meter) glucose, mg/dL; also the reference that
    /// exposes CGM drift.
    CapillaryGlucose {
        mg_dl: f64,
    },
    BloodPressure {
        systolic_mmhg: f64,
        diastolic_mmhg: f64,
    },
    HeartRate {
        bpm: f64,
    },
    Spo2 {
        percent: f64,
    },
    Temperature {
        celsius: f64,
    },
}

/// Status bits a sensor may send with a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SensorFlags {
    /// The sensor is still warming up; its values are not yet trusted.
    pub warming_up: bool,
    /// The sensor asks for a calibration.
    pub calibration_required: bool,
    /// The sensor itself reports an error for this reading.
    pub sensor_error: bool,
    /// The first reading of a new sensor (a change-over): the hole before it
    /// is expected, and the new sensor's history starts here.
    pub new_sensor: bool,
}

fn check(what: &'static str, value: f64, min: f64, max: f64) -> Result<f64, MlError> {
    if !value.is_finite() {
        return Err(MlError::NotFinite { what });
    }
    if !(min..=max).contains(&value) {
        return Err(MlError::Implausible {
            what,
            value,
            min,
            max,
        });
    }
    Ok(value)
}

/// Timestamps a monitor accepts: 1970-01-01 to 2100-01-01 (unix ms). Beyond
/// that a device clock is broken, and arithmetic on it could overflow.
pub const TIMESTAMP_RANGE_MS: std::ops::RangeInclusive<i64> = 0..=4_102_444_800_000;

impl Sample {
    /// Rejects NaN, infinities, implausible values and impossible times.
    pub fn validate(&self) -> Result<(), MlError> {
        if !TIMESTAMP_RANGE_MS.contains(&self.at_ms) {
            return Err(MlError::Timestamp { at_ms: self.at_ms });
        }
        self.measurement.validate()
    }
}

impl Measurement {
    /// Rejects NaN, infinities and values no device of the kind reports.
    /// The ranges are wide on purpose: clinical judgement belongs to the
    /// rules, this only keeps garbage out of the models.
    pub fn validate(&self) -> Result<(), MlError> {
        match *self {
            Measurement::CgmGlucose { mg_dl } => check("CGM glucose (mg/dL)", mg_dl, 10.0, 1000.0),
            Measurement::CapillaryGlucose { mg_dl } => {
                check("capillary glucose (mg/dL)", mg_dl, 10.0, 1000.0)
            }
            Measurement::BloodPressure {
                systolic_mmhg,
                diastolic_mmhg,
            } => {
                check("systolic pressure (mmHg)", systolic_mmhg, 30.0, 320.0)?;
                check("diastolic pressure (mmHg)", diastolic_mmhg, 10.0, 250.0)
            }
            Measurement::HeartRate { bpm } => check("heart rate (bpm)", bpm, 10.0, 300.0),
            Measurement::Spo2 { percent } => check("SpO2 (%)", percent, 30.0, 100.0),
            Measurement::Temperature { celsius } => check("temperature (°C)", celsius, 25.0, 45.0),
        }
        .map(|_| ())
    }
}
