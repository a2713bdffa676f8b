//! Pure parsers for the Bluetooth SIG health-profile characteristics.
//!
//! One module per characteristic; each exposes `parse(&[u8])` returning a
//! profile-specific struct that keeps the units the device sent (conversion
//! to the hub's canonical units belongs to the hub). Anything that does not
//! follow the specification's layout — an empty or truncated frame, a
//! reserved flag bit (it may announce a field we cannot size), a reserved
//! enumeration value where it changes the meaning of a number, trailing
//! bytes, a bad E2E-CRC — is a [`ParseError`] naming the profile, the byte
//! offset and the reason. None of them panic on any input (each module has a
//! seeded fuzz test).

mod datetime;
mod reader;

pub mod blood_pressure;
pub mod cgm;
pub mod cgm_session;
pub mod cgm_status;
pub mod glucose;
pub mod glucose_context;
pub mod heart_rate;
pub mod plx;
pub mod plx_continuous;
pub mod racp;
pub mod temperature;
pub mod weight;

#[cfg(test)]
pub(crate) mod fuzz;

pub use datetime::DateTime;

use std::fmt;

/// The characteristic whose frame failed to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Glucose Measurement (0x2A18).
    Glucose,
    /// CGM Measurement (0x2AA7).
    Cgm,
    /// Blood Pressure Measurement (0x2A35).
    BloodPressure,
    /// Heart Rate Measurement (0x2A37).
    HeartRate,
    /// Weight Measurement (0x2A9D).
    Weight,
    /// Temperature Measurement (0x2A1C).
    Temperature,
    /// PLX Spot-check Measurement (0x2A5E).
    PlxSpotCheck,
    /// Record Access Control Point (0x2A52).
    Racp,
    /// Glucose Measurement Context (0x2A34).
    GlucoseContext,
    /// CGM Status (0x2AA9).
    CgmStatus,
    /// CGM Session Start Time (0x2AAA).
    CgmSessionStartTime,
    /// CGM Session Run Time (0x2AAB).
    CgmSessionRunTime,
    /// PLX Continuous Measurement (0x2A5F).
    PlxContinuous,
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Profile::Glucose => "Glucose Measurement (0x2A18)",
            Profile::Cgm => "CGM Measurement (0x2AA7)",
            Profile::BloodPressure => "Blood Pressure Measurement (0x2A35)",
            Profile::HeartRate => "Heart Rate Measurement (0x2A37)",
            Profile::Weight => "Weight Measurement (0x2A9D)",
            Profile::Temperature => "Temperature Measurement (0x2A1C)",
            Profile::PlxSpotCheck => "PLX Spot-check Measurement (0x2A5E)",
            Profile::Racp => "Record Access Control Point (0x2A52)",
            Profile::GlucoseContext => "Glucose Measurement Context (0x2A34)",
            Profile::CgmStatus => "CGM Status (0x2AA9)",
            Profile::CgmSessionStartTime => "CGM Session Start Time (0x2AAA)",
            Profile::CgmSessionRunTime => "CGM Session Run Time (0x2AAB)",
            Profile::PlxContinuous => "PLX Continuous Measurement (0x2A5F)",
        })
    }
}

/// A frame that does not follow its specification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{profile}: {reason} (at byte {offset})")]
pub struct ParseError {
    /// Which characteristic.
    pub profile: Profile,
    /// Byte offset in the frame where the problem starts.
    pub offset: usize,
    /// What is wrong.
    pub reason: ParseErrorKind,
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// The frame has no bytes.
    #[error("empty frame")]
    Empty,
    /// The frame ends inside a field.
    #[error("truncated: {field} needs {needed} bytes, {available} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Its size.
        needed: usize,
        /// Bytes left in the frame.
        available: usize,
    },
    /// Flag bits the specification reserves are set; they may announce
    /// fields this parser cannot size, so nothing after them is trusted.
    #[error("reserved flag bits set: {bits:#x}")]
    ReservedFlags {
        /// The reserved bits that were set.
        bits: u32,
    },
    /// A field holds a value the specification reserves, where it matters
    /// for what the reading means (its unit, its kind).
    #[error("{field} holds the reserved value {value:#x}")]
    ReservedValue {
        /// The field.
        field: &'static str,
        /// The value found.
        value: u32,
    },
    /// A field holds a value outside its range (a month of 13, say).
    #[error("{field} out of range: {value}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value found.
        value: u32,
    },
    /// Bytes follow the last field the flags announce.
    #[error("{count} unexpected trailing bytes")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A CGM record's Size field disagrees with the fields its flags announce.
    #[error("record size {size} does not match its fields ({expected}, or {} with E2E-CRC)", expected + 2)]
    SizeMismatch {
        /// The Size field.
        size: u8,
        /// The size the flags imply without an E2E-CRC.
        expected: u8,
    },
    /// The E2E-CRC does not match the record.
    #[error("E2E-CRC mismatch: frame carries {received:#06x}, record gives {computed:#06x}")]
    CrcMismatch {
        /// CRC in the frame.
        received: u16,
        /// CRC computed over the record.
        computed: u16,
    },
    /// An op code this implementation does not know.
    #[error("unknown op code {0:#04x}")]
    UnknownOpCode(u8),
}
