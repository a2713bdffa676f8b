//! The plaintext inside a sealed batch: the readings, CBOR-encoded as the
//! journal holds them, then compressed with raw DEFLATE (RFC 1951): the
//! field names that make CBOR self-describing repeat in every reading, and
//! DEFLATE takes them back out (device, sequence number, device and hub times,
//! measurement, unit, sensor flags), plus the on-hub findings recorded
//! since the previous batch.

use glyco_contracts::DataKinds;
use serde::{Deserialize, Serialize};

use crate::reading::{Measurement, Reading, UnixMillis};

/// One on-hub finding (analysis of a reading), as status shows it and as
/// batches carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingRecord {
    /// The reading's time (device clock when known).
    pub at: UnixMillis,
    pub device: String,
    /// `predicted_low`, `sensor_fault:compression_low`, ...
    pub kind: String,
    /// `info`, `warning` or `urgent`.
    pub severity: String,
    pub confidence: f32,
    pub explanation: String,
    /// The reading was measured long before it was analysed (records a meter
    /// kept while out of range), or when is not known (the device reported a
    /// clock fault): worth knowing, not worth an alarm.
    #[serde(default)]
    pub late: bool,
}

/// The batch body's version (inside the encryption).
pub const BODY_VERSION: u16 = 1;
/// The most a body may inflate to (a batch of 10,000 readings is about
/// 2 MB of CBOR): a hostile blob cannot make its reader allocate more.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// DEFLATE level: 6 is zlib's default balance of speed and size.
const DEFLATE_LEVEL: u8 = 6;

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
    /// Journal numbers of this batch's readings that came from a device in
    /// quarantine (a node-behaviour finding; docs/HUB.md): kept, but not to
    /// be trusted without a look.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quarantined: Vec<u64>,
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
        let mut cbor = Vec::new();
        ciborium::into_writer(self, &mut cbor).map_err(|e| BodyError::Encode(e.to_string()))?;
        Ok(miniz_oxide::deflate::compress_to_vec(&cbor, DEFLATE_LEVEL))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BodyError> {
        let cbor = miniz_oxide::inflate::decompress_to_vec_with_limit(bytes, MAX_BODY_BYTES)
            .map_err(|e| BodyError::Decode(format!("inflating: {:?}", e.status)))?;
        let body: Self =
            ciborium::from_reader(cbor.as_slice()).map_err(|e| BodyError::Decode(e.to_string()))?;
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
