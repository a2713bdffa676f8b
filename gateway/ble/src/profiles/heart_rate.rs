//! Heart Rate Measurement (0x2A37), Heart Rate Service 1.0 §3.1 / GATT
//! Specification Supplement:
//!
//! | octets | field                                        | present when  |
//! |--------|----------------------------------------------|---------------|
//! | 1      | Flags                                        | always        |
//! | 1 or 2 | Heart Rate (uint8, or uint16 if flags bit 0) | always        |
//! | 2      | Energy Expended (uint16, kJ)                 | flags bit 3   |
//! | 2 each | RR-Interval (uint16, 1/1024 s), to the end   | flags bit 4   |
//!
//! Flags: bit 0 value format; bits 1–2 sensor contact status (0 or 1: not
//! supported, 2: supported but no contact, 3: supported and in contact);
//! bit 3 Energy Expended present; bit 4 RR-Intervals present; bits 5–7
//! reserved.

use super::reader::Reader;
use super::{ParseError, ParseErrorKind, Profile};

const U16_VALUE: u8 = 0x01;
const ENERGY: u8 = 0x08;
const RR: u8 = 0x10;
const DEFINED: u8 = 0x1F;

/// One heart-rate notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartRateMeasurement {
    /// Beats per minute.
    pub bpm: u16,
    /// Sensor contact as reported.
    pub contact: SensorContact,
    /// Accumulated energy expended in kilojoules (0xFFFF: saturated).
    pub energy_expended_kj: Option<u16>,
    /// RR-intervals in units of 1/1024 s, oldest first.
    pub rr_intervals_1024ths: Vec<u16>,
}

/// Sensor contact status (flags bits 1–2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SensorContact {
    /// The sensor does not report contact.
    NotSupported,
    /// Supported, but the sensor is not in contact (the value may be junk).
    NotDetected,
    /// Supported and in contact.
    Detected,
}

/// Parses one Heart Rate Measurement frame.
pub fn parse(frame: &[u8]) -> Result<HeartRateMeasurement, ParseError> {
    let mut r = Reader::new(Profile::HeartRate, frame)?;
    let flags = r.u8("flags")?;
    r.check_reserved(0, flags.into(), DEFINED.into())?;
    let bpm = if flags & U16_VALUE != 0 {
        r.u16("heart rate")?
    } else {
        r.u8("heart rate")?.into()
    };
    let contact = match (flags >> 1) & 0x03 {
        2 => SensorContact::NotDetected,
        3 => SensorContact::Detected,
        _ => SensorContact::NotSupported,
    };
    let energy_expended_kj = if flags & ENERGY != 0 {
        Some(r.u16("energy expended")?)
    } else {
        None
    };
    let mut rr_intervals_1024ths = Vec::new();
    if flags & RR != 0 {
        if r.remaining() == 0 {
            // The flag promises at least one interval.
            return Err(r.error(ParseErrorKind::Truncated {
                field: "RR-interval",
                needed: 2,
                available: 0,
            }));
        }
        while r.remaining() > 0 {
            rr_intervals_1024ths.push(r.u16("RR-interval")?);
        }
    }
    r.finish()?;
    Ok(HeartRateMeasurement {
        bpm,
        contact,
        energy_expended_kj,
        rr_intervals_1024ths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::fuzz;

    #[test]
    fn uint8_value_with_contact() {
        // Flags 0x06: uint8, contact supported and detected; 72 bpm.
        let m = parse(&[0x06, 0x48]).expect("valid");
        assert_eq!(m.bpm, 72);
        assert_eq!(m.contact, SensorContact::Detected);
        assert_eq!(m.energy_expended_kj, None);
        assert!(m.rr_intervals_1024ths.is_empty());
        assert_eq!(
            parse(&[0x04, 0x48]).expect("valid").contact,
            SensorContact::NotDetected
        );
        assert_eq!(
            parse(&[0x02, 0x48]).expect("valid").contact,
            SensorContact::NotSupported
        );
    }

    #[test]
    fn uint16_value_energy_and_rr_intervals() {
        // Flags 0x19: uint16, energy, RR. 300 bpm (0x012C), 1000 kJ
        // (0x03E8), RR 1024 (1 s, 0x0400) and 820 (0x0334).
        let m = parse(&[0x19, 0x2C, 0x01, 0xE8, 0x03, 0x00, 0x04, 0x34, 0x03]).expect("valid");
        assert_eq!(m.bpm, 300);
        assert_eq!(m.energy_expended_kj, Some(1000));
        assert_eq!(m.rr_intervals_1024ths, vec![1024, 820]);
    }

    #[test]
    fn refusals() {
        let err = parse(&[0x01, 0x2C]).expect_err("uint16 cut");
        assert!(matches!(
            err.reason,
            ParseErrorKind::Truncated {
                field: "heart rate",
                ..
            }
        ));
        let err = parse(&[0x10, 0x48, 0x00]).expect_err("odd RR byte");
        assert_eq!(err.offset, 2);
        let err = parse(&[0x10, 0x48]).expect_err("RR flagged, none sent");
        assert!(matches!(
            err.reason,
            ParseErrorKind::Truncated {
                field: "RR-interval",
                ..
            }
        ));
        let err = parse(&[0x20, 0x48]).expect_err("reserved");
        assert_eq!(err.reason, ParseErrorKind::ReservedFlags { bits: 0x20 });
        let err = parse(&[0x00, 0x48, 0x00]).expect_err("trailing");
        assert_eq!(err.reason, ParseErrorKind::TrailingBytes { count: 1 });
    }

    #[test]
    fn fuzz_never_panics() {
        let ok = fuzz::never_panics(0x2A37, 24, 20_000, fuzz::flags_first::<0x1F>, parse);
        assert!(ok > 0);
    }
}
