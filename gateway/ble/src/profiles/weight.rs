//! Weight Measurement (0x2A9D), Weight Scale Service 1.0 §3.2 / GATT
//! Specification Supplement:
//!
//! | octets | field                                          | present when |
//! |--------|------------------------------------------------|--------------|
//! | 1      | Flags                                          | always       |
//! | 2      | Weight (uint16; 0.005 kg or 0.01 lb per unit)  | always       |
//! | 7      | Time Stamp (Date Time)                         | flags bit 1  |
//! | 1      | User ID (uint8, 0xFF = unknown user)           | flags bit 2  |
//! | 2      | BMI (uint16, 0.1 kg/m² per unit)               | flags bit 3  |
//! | 2      | Height (uint16; 0.001 m or 0.1 in per unit)    | flags bit 3  |
//!
//! Flags: bit 0 units (0 = SI: kg and m, 1 = imperial: lb and in); bits
//! 1–3 as above; bits 4–7 reserved. A Weight of 0xFFFF means "measurement
//! unsuccessful". The field resolutions are fixed by the unit; the Weight
//! Scale Feature characteristic only says how fine the scale really is.

use super::reader::Reader;
use super::{DateTime, ParseError, Profile};

const IMPERIAL: u8 = 0x01;
const TIME_STAMP: u8 = 0x02;
const USER_ID: u8 = 0x04;
const BMI_HEIGHT: u8 = 0x08;
const DEFINED: u8 = 0x0F;
const UNSUCCESSFUL: u16 = 0xFFFF;

/// One scale reading.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightMeasurement {
    /// SI or imperial, for weight and height alike.
    pub units: WeightUnits,
    /// The weight, or that the scale failed to measure.
    pub weight: Weight,
    /// The raw Weight field (`weight` is `raw × units.weight_resolution()`).
    pub weight_raw: u16,
    /// When, by the scale's clock.
    pub time_stamp: Option<DateTime>,
    /// The scale's user index; 0xFF is "unknown user".
    pub user_id: Option<u8>,
    /// Body-mass index and height, when the scale knows the height.
    pub bmi_height: Option<BmiHeight>,
}

/// Unit system as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightUnits {
    /// Kilograms and metres.
    Si,
    /// Pounds and inches.
    Imperial,
}

impl WeightUnits {
    /// Weight per unit of the raw field: 0.005 kg or 0.01 lb.
    pub fn weight_resolution(self) -> f64 {
        match self {
            WeightUnits::Si => 0.005,
            WeightUnits::Imperial => 0.01,
        }
    }

    /// Height per unit of the raw field: 0.001 m or 0.1 in.
    pub fn height_resolution(self) -> f64 {
        match self {
            WeightUnits::Si => 0.001,
            WeightUnits::Imperial => 0.1,
        }
    }

    /// Divisor that turns a raw field into the unit exactly (raw / 200 is
    /// the exact decimal nearest, where raw × 0.005 would round twice).
    fn weight_divisor(self) -> f64 {
        match self {
            WeightUnits::Si => 200.0,
            WeightUnits::Imperial => 100.0,
        }
    }

    fn height_divisor(self) -> f64 {
        match self {
            WeightUnits::Si => 1000.0,
            WeightUnits::Imperial => 10.0,
        }
    }
}

/// The Weight field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Weight {
    /// In kg (SI) or lb (imperial).
    Measured(f64),
    /// 0xFFFF: the scale could not measure.
    Unsuccessful,
}

/// BMI and height.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BmiHeight {
    /// kg/m².
    pub bmi: f64,
    /// m (SI) or in (imperial).
    pub height: f64,
}

/// Parses one Weight Measurement frame.
pub fn parse(frame: &[u8]) -> Result<WeightMeasurement, ParseError> {
    let mut r = Reader::new(Profile::Weight, frame)?;
    let flags = r.u8("flags")?;
    r.check_reserved(0, flags.into(), DEFINED.into())?;
    let units = if flags & IMPERIAL != 0 {
        WeightUnits::Imperial
    } else {
        WeightUnits::Si
    };
    let weight_raw = r.u16("weight")?;
    let time_stamp = if flags & TIME_STAMP != 0 {
        Some(r.date_time("time stamp")?)
    } else {
        None
    };
    let user_id = if flags & USER_ID != 0 {
        Some(r.u8("user id")?)
    } else {
        None
    };
    let bmi_height = if flags & BMI_HEIGHT != 0 {
        let bmi = r.u16("BMI")?;
        let height = r.u16("height")?;
        Some(BmiHeight {
            bmi: f64::from(bmi) / 10.0,
            height: f64::from(height) / units.height_divisor(),
        })
    } else {
        None
    };
    r.finish()?;
    Ok(WeightMeasurement {
        units,
        weight: if weight_raw == UNSUCCESSFUL {
            Weight::Unsuccessful
        } else {
            Weight::Measured(f64::from(weight_raw) / units.weight_divisor())
        },
        weight_raw,
        time_stamp,
        user_id,
        bmi_height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::{ParseErrorKind, fuzz};

    #[test]
    fn si_with_everything() {
        // Flags 0x0E: SI, time stamp, user, BMI+height. 72.5 kg = 14500 ×
        // 0.005 → 0x38A4; 2024-03-15 07:30:05; user 2; BMI 23.7 → 237 =
        // 0x00ED; height 1.750 m → 1750 = 0x06D6.
        let bytes = [
            0x0E, 0xA4, 0x38, 0xE8, 0x07, 3, 15, 7, 30, 5, 0x02, 0xED, 0x00, 0xD6, 0x06,
        ];
        let m = parse(&bytes).expect("valid");
        assert_eq!(m.units, WeightUnits::Si);
        assert_eq!(m.weight, Weight::Measured(72.5));
        assert_eq!(m.weight_raw, 14500);
        assert_eq!(m.user_id, Some(2));
        assert_eq!(
            m.bmi_height,
            Some(BmiHeight {
                bmi: 23.7,
                height: 1.75
            })
        );
        assert_eq!(m.units.weight_resolution(), 0.005);
        assert!(m.time_stamp.is_some());
    }

    #[test]
    fn imperial_and_unsuccessful() {
        // Flags 0x09: imperial, BMI+height. 159.84 lb → 15984 = 0x3E70;
        // BMI 23.6 → 0x00EC; height 68.9 in → 689 = 0x02B1.
        let m = parse(&[0x09, 0x70, 0x3E, 0xEC, 0x00, 0xB1, 0x02]).expect("valid");
        assert_eq!(m.units, WeightUnits::Imperial);
        assert_eq!(m.weight, Weight::Measured(159.84));
        assert_eq!(
            m.bmi_height,
            Some(BmiHeight {
                bmi: 23.6,
                height: 68.9
            })
        );
        let m = parse(&[0x00, 0xFF, 0xFF]).expect("valid");
        assert_eq!(m.weight, Weight::Unsuccessful);
    }

    #[test]
    fn refusals() {
        let err = parse(&[0x00, 0xA4]).expect_err("truncated");
        assert_eq!(err.offset, 1);
        let err = parse(&[0x10, 0xA4, 0x38]).expect_err("reserved");
        assert_eq!(err.reason, ParseErrorKind::ReservedFlags { bits: 0x10 });
        let err = parse(&[0x08, 0xA4, 0x38, 0xED, 0x00]).expect_err("height missing");
        assert!(matches!(
            err.reason,
            ParseErrorKind::Truncated {
                field: "height",
                ..
            }
        ));
    }

    fn shape(buf: &mut [u8]) {
        fuzz::flags_first::<0x0F>(buf);
        fuzz::plausible_date(buf, 3);
    }

    #[test]
    fn fuzz_never_panics() {
        let ok = fuzz::never_panics(0x2A9D, 20, 20_000, shape, parse);
        assert!(ok > 0);
    }
}
