//! Temperature Measurement (0x2A1C), Health Thermometer Service 1.0 §3.1 /
//! GATT Specification Supplement:
//!
//! | octets | field                                   | present when |
//! |--------|-----------------------------------------|--------------|
//! | 1      | Flags                                   | always       |
//! | 4      | Temperature Measurement Value (FLOAT)   | always       |
//! | 7      | Time Stamp (Date Time)                  | flags bit 1  |
//! | 1      | Temperature Type (uint8)                | flags bit 2  |
//!
//! Flags: bit 0 unit (0 = °C, 1 = °F); bits 1–2 as above; bits 3–7
//! reserved. Temperature Type: 1 armpit, 2 body (general), 3 ear (usually
//! earlobe), 4 finger, 5 gastro-intestinal tract, 6 mouth, 7 rectum, 8 toe,
//! 9 tympanum (ear drum); 0 and 10–255 reserved.

use super::reader::Reader;
use super::{DateTime, ParseError, ParseErrorKind, Profile};
use crate::ieee11073::MedFloat;

const FAHRENHEIT: u8 = 0x01;
const TIME_STAMP: u8 = 0x02;
const TYPE: u8 = 0x04;
const DEFINED: u8 = 0x07;

/// One thermometer reading.
#[derive(Debug, Clone, PartialEq)]
pub struct TemperatureMeasurement {
    /// The FLOAT as sent, in `unit`.
    pub value: MedFloat,
    /// Celsius or Fahrenheit.
    pub unit: TemperatureUnit,
    /// When, by the thermometer's clock.
    pub time_stamp: Option<DateTime>,
    /// Where on the body.
    pub site: Option<TemperatureType>,
}

/// Temperature unit as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemperatureUnit {
    /// Degrees Celsius.
    Celsius,
    /// Degrees Fahrenheit.
    Fahrenheit,
}

/// Temperature Type. Reserved values are refused: a core and a skin
/// temperature are different readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum TemperatureType {
    Armpit,
    Body,
    Ear,
    Finger,
    GastroIntestinalTract,
    Mouth,
    Rectum,
    Toe,
    Tympanum,
}

/// Parses one Temperature Measurement frame.
pub fn parse(frame: &[u8]) -> Result<TemperatureMeasurement, ParseError> {
    let mut r = Reader::new(Profile::Temperature, frame)?;
    let flags = r.u8("flags")?;
    r.check_reserved(0, flags.into(), DEFINED.into())?;
    let value = r.float("temperature")?;
    let time_stamp = if flags & TIME_STAMP != 0 {
        Some(r.date_time("time stamp")?)
    } else {
        None
    };
    let site = if flags & TYPE != 0 {
        let at = r.offset();
        let raw = r.u8("temperature type")?;
        use TemperatureType::*;
        Some(match raw {
            1 => Armpit,
            2 => Body,
            3 => Ear,
            4 => Finger,
            5 => GastroIntestinalTract,
            6 => Mouth,
            7 => Rectum,
            8 => Toe,
            9 => Tympanum,
            _ => {
                return Err(r.error_at(
                    at,
                    ParseErrorKind::ReservedValue {
                        field: "temperature type",
                        value: raw.into(),
                    },
                ));
            }
        })
    } else {
        None
    };
    r.finish()?;
    Ok(TemperatureMeasurement {
        value,
        unit: if flags & FAHRENHEIT != 0 {
            TemperatureUnit::Fahrenheit
        } else {
            TemperatureUnit::Celsius
        },
        time_stamp,
        site,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::fuzz;

    #[test]
    fn celsius_with_time_and_type() {
        // Flags 0x06: °C, time stamp, type. 36.4 °C = 364 × 10⁻¹ →
        // 0xFF00016C; 2024-03-15 07:30:05; type 9 (tympanum).
        let bytes = [
            0x06, 0x6C, 0x01, 0x00, 0xFF, 0xE8, 0x07, 3, 15, 7, 30, 5, 0x09,
        ];
        let m = parse(&bytes).expect("valid");
        assert_eq!(m.value, MedFloat::Finite(36.4));
        assert_eq!(m.unit, TemperatureUnit::Celsius);
        assert_eq!(m.time_stamp.map(|t| t.day), Some(15));
        assert_eq!(m.site, Some(TemperatureType::Tympanum));
    }

    #[test]
    fn fahrenheit_minimal_and_special() {
        // Flags 0x01: °F. 98.6 °F = 986 × 10⁻¹ → 0xFF0003DA.
        let m = parse(&[0x01, 0xDA, 0x03, 0x00, 0xFF]).expect("valid");
        assert_eq!(m.value, MedFloat::Finite(98.6));
        assert_eq!(m.unit, TemperatureUnit::Fahrenheit);
        // −INF (0x00800002) and NRes (0x00800000).
        assert_eq!(
            parse(&[0x00, 0x02, 0x00, 0x80, 0x00]).expect("valid").value,
            MedFloat::NegativeInfinity
        );
        assert_eq!(
            parse(&[0x00, 0x00, 0x00, 0x80, 0x00]).expect("valid").value,
            MedFloat::NRes
        );
    }

    #[test]
    fn refusals() {
        let err = parse(&[0x00, 0x6C, 0x01, 0x00]).expect_err("truncated FLOAT");
        assert!(matches!(
            err.reason,
            ParseErrorKind::Truncated {
                field: "temperature",
                needed: 4,
                available: 3
            }
        ));
        let err = parse(&[0x08, 0x6C, 0x01, 0x00, 0xFF]).expect_err("reserved");
        assert_eq!(err.reason, ParseErrorKind::ReservedFlags { bits: 0x08 });
        let err = parse(&[0x04, 0x6C, 0x01, 0x00, 0xFF, 0x0A]).expect_err("reserved type");
        assert_eq!(
            (err.offset, err.reason),
            (
                5,
                ParseErrorKind::ReservedValue {
                    field: "temperature type",
                    value: 10
                }
            )
        );
    }

    fn shape(buf: &mut [u8]) {
        fuzz::flags_first::<0x07>(buf);
        fuzz::plausible_date(buf, 5);
    }

    #[test]
    fn fuzz_never_panics() {
        let ok = fuzz::never_panics(0x2A1C, 16, 20_000, shape, parse);
        assert!(ok > 0);
    }
}
