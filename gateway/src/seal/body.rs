//! The plaintext inside a sealed batch: the readings, CBOR-encoded as the
//! journal holds them (device, sequence number, device and hub times,
//! measurement, unit, sensor flags), plus the on-hub findings recorded
//! since the previous batch.

use glyco_contracts::DataKinds;
use serde::{Deserialize, Serialize};

use crate::analysis::FindingRecord;
use crate::reading::{Measurement, Reading};

/// The batch body's version (inside the encryption).
pub const BODY_VERSION: u16 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchBody {
    pub version: u16,
    /// (journal sequence number, reading), in journal order.
    pub readings: Vec<(u64, Reading)>,
    /// The findings the hub's analysis recorded since the previous batch
    /// (each finding rides in exactly one batch; most are about this
    /// batch's readings, a late one about the previous batch's).
    #[serde(default)]
    pub findings: Vec<FindingRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("encoding the batch body: {0}")]
    Encode(String),
    #[error("the batch body does not decode: {0}")]
    Decode(String),
    #[error("batch body version {0} is not supported")]
    Version(u16),
}

impl BatchBody {
    pub fn to_bytes(&self) -> Result<Vec<u8>, BodyError> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).map_err(|e| BodyError::Encode(e.to_string()))?;
        Ok(out)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BodyError> {
        let body: Self =
            ciborium::from_reader(bytes).map_err(|e| BodyError::Decode(e.to_string()))?;
        if body.version != BODY_VERSION {
            return Err(BodyError::Version(body.version));
        }
        Ok(body)
    }
}

/// The data kind of one reading (the contracts' bits).
pub fn kind_of(measurement: &Measurement) -> DataKinds {
    match measurement {
        Measurement::CapillaryGlucose { .. } | Measurement::CgmGlucose { .. } => DataKinds::GLUCOSE,
        Measurement::BloodPressure { .. } => DataKinds::BLOOD_PRESSURE,
        Measurement::HeartRate { .. } => DataKinds::HEART_RATE,
        Measurement::Weight { .. } => DataKinds::WEIGHT,
        Measurement::Temperature { .. } => DataKinds::TEMPERATURE,
        Measurement::Spo2 { .. } => DataKinds::PULSE_OXIMETRY,
    }
}

/// When a reading was measured: the device's clock when known, else receipt.
pub fn reading_time(reading: &Reading) -> i64 {
    reading.device_time.unwrap_or(reading.received_at)
}
