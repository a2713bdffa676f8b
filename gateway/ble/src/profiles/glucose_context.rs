//! Glucose Measurement Context (0x2A34), Glucose Service 1.0 §3.107 / GATT
//! Specification Supplement. A meter sends it after a Glucose Measurement
//! whose flags bit 4 says a context follows, with the same sequence number:
//!
//! | octets | field                                              | present when |
//! |--------|----------------------------------------------------|--------------|
//! | 1      | Flags                                              | always       |
//! | 2      | Sequence Number (uint16)                           | always       |
//! | 1      | Extended Flags (all reserved)                      | flags bit 7  |
//! | 1      | Carbohydrate ID (uint8)                            | flags bit 0  |
//! | 2      | Carbohydrate (SFLOAT, kg)                          | flags bit 0  |
//! | 1      | Meal (uint8)                                       | flags bit 1  |
//! | 1      | Tester (low nibble) – Health (high nibble)         | flags bit 2  |
//! | 2      | Exercise Duration (uint16, s; 0xFFFF = overrun)    | flags bit 3  |
//! | 1      | Exercise Intensity (uint8, %)                      | flags bit 3  |
//! | 1      | Medication ID (uint8)                              | flags bit 4  |
//! | 2      | Medication (SFLOAT; kg, or L when flags bit 5)     | flags bit 4  |
//! | 2      | HbA1c (SFLOAT, %)                                  | flags bit 6  |
//!
//! Enumerations the meter may extend (carbohydrate, meal, tester, health,
//! medication) are kept as numbers with names for the defined values: none of
//! them changes what a number means, so a reserved value is not a refusal.
//! A set Extended Flags bit is refused (it may announce fields we cannot
//! size).

use super::reader::Reader;
use super::{ParseError, ParseErrorKind, Profile};
use crate::ieee11073::MedFloat;

const CARBOHYDRATE: u8 = 0x01;
const MEAL: u8 = 0x02;
const TESTER_HEALTH: u8 = 0x04;
const EXERCISE: u8 = 0x08;
const MEDICATION: u8 = 0x10;
const MEDICATION_LITRES: u8 = 0x20;
const HBA1C: u8 = 0x40;
const EXTENDED: u8 = 0x80;

/// The context of one glucometer record.
#[derive(Debug, Clone, PartialEq)]
pub struct GlucoseContext {
    /// The Glucose Measurement record this context belongs to.
    pub sequence_number: u16,
    /// Carbohydrate ID (1 breakfast, 2 lunch, 3 dinner, 4 snack, 5 drink,
    /// 6 supper, 7 brunch) and amount in kilograms.
    pub carbohydrate: Option<(u8, MedFloat)>,
    /// Meal (1 preprandial, 2 postprandial, 3 fasting, 4 casual, 5 bedtime).
    pub meal: Option<Meal>,
    /// Tester (1 self, 2 health care professional, 3 lab test, 15 not
    /// available) and health (1 minor issues, 2 major issues, 3 during
    /// menses, 4 under stress, 5 no issues, 15 not available) nibbles.
    pub tester_health: Option<(u8, u8)>,
    /// Exercise duration in seconds (`None` inside: overrun) and intensity in
    /// percent.
    pub exercise: Option<(Option<u16>, u8)>,
    /// Medication ID (1 rapid-acting, 2 short-acting, 3 intermediate-acting,
    /// 4 long-acting, 5 pre-mixed insulin) and amount, with its unit.
    pub medication: Option<(u8, MedFloat, MedicationUnit)>,
    /// HbA1c in percent.
    pub hba1c_percent: Option<MedFloat>,
}

/// When the sample was taken, relative to a meal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Meal {
    Preprandial,
    Postprandial,
    Fasting,
    Casual,
    Bedtime,
    /// 0 or 6–255.
    Reserved(u8),
}

impl Meal {
    fn from_u8(v: u8) -> Meal {
        match v {
            1 => Meal::Preprandial,
            2 => Meal::Postprandial,
            3 => Meal::Fasting,
            4 => Meal::Casual,
            5 => Meal::Bedtime,
            other => Meal::Reserved(other),
        }
    }
}

/// Medication amount unit as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MedicationUnit {
    /// kg (flags bit 5 clear; insulin in mg = 10⁻⁶ kg).
    Kilograms,
    /// L (flags bit 5 set; insulin in mL = 10⁻³ L).
    Litres,
}

/// Parses a Glucose Measurement Context indication.
pub fn parse(frame: &[u8]) -> Result<GlucoseContext, ParseError> {
    let mut r = Reader::new(Profile::GlucoseContext, frame)?;
    let flags = r.u8("flags")?;
    let sequence_number = r.u16("sequence number")?;
    if flags & EXTENDED != 0 {
        let at = r.offset();
        let extended = r.u8("extended flags")?;
        r.check_reserved(at, extended.into(), 0)?;
    }
    let carbohydrate = if flags & CARBOHYDRATE != 0 {
        Some((r.u8("carbohydrate ID")?, r.sfloat("carbohydrate")?))
    } else {
        None
    };
    let meal = if flags & MEAL != 0 {
        Some(Meal::from_u8(r.u8("meal")?))
    } else {
        None
    };
    let tester_health = if flags & TESTER_HEALTH != 0 {
        let both = r.u8("tester and health")?;
        Some((both & 0x0F, both >> 4))
    } else {
        None
    };
    let exercise = if flags & EXERCISE != 0 {
        let duration = r.u16("exercise duration")?;
        let intensity = r.u8("exercise intensity")?;
        if intensity > 100 {
            return Err(r.error_at(
                r.offset() - 1,
                ParseErrorKind::OutOfRange {
                    field: "exercise intensity",
                    value: intensity.into(),
                },
            ));
        }
        Some(((duration != 0xFFFF).then_some(duration), intensity))
    } else {
        None
    };
    let medication = if flags & MEDICATION != 0 {
        let id = r.u8("medication ID")?;
        let amount = r.sfloat("medication")?;
        let unit = if flags & MEDICATION_LITRES != 0 {
            MedicationUnit::Litres
        } else {
            MedicationUnit::Kilograms
        };
        Some((id, amount, unit))
    } else {
        None
    };
    let hba1c_percent = if flags & HBA1C != 0 {
        Some(r.sfloat("HbA1c")?)
    } else {
        None
    };
    r.finish()?;
    Ok(GlucoseContext {
        sequence_number,
        carbohydrate,
        meal,
        tester_health,
        exercise,
        medication,
        hba1c_percent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::fuzz;

    #[test]
    fn a_context_with_every_field() {
        // Flags 0x7F: carbohydrate, meal, tester/health, exercise,
        // medication in litres, HbA1c. Sequence 7. Carbohydrate ID 1
        // (breakfast), 0.05 kg = 5 × 10⁻² → 0xE005. Meal 2 (postprandial).
        // Tester 1, health 5 → 0x51. Exercise 1800 s = 0x0708, 60 %.
        // Medication 1 (rapid-acting), 0.004 L = 4 × 10⁻³ → 0xD004.
        // HbA1c 7.2 % = 72 × 10⁻¹ → 0xF048.
        let frame = [
            0x7F, 0x07, 0x00, 0x01, 0x05, 0xE0, 0x02, 0x51, 0x08, 0x07, 0x3C, 0x01, 0x04, 0xD0,
            0x48, 0xF0,
        ];
        let c = parse(&frame).expect("valid");
        assert_eq!(c.sequence_number, 7);
        assert_eq!(c.carbohydrate, Some((1, MedFloat::Finite(0.05))));
        assert_eq!(c.meal, Some(Meal::Postprandial));
        assert_eq!(c.tester_health, Some((1, 5)));
        assert_eq!(c.exercise, Some((Some(1800), 60)));
        assert_eq!(
            c.medication,
            Some((1, MedFloat::Finite(0.004), MedicationUnit::Litres))
        );
        assert_eq!(c.hba1c_percent, Some(MedFloat::Finite(7.2)));
    }

    #[test]
    fn a_bare_context_and_refusals() {
        let c = parse(&[0x00, 0x2A, 0x00]).expect("valid");
        assert_eq!(c.sequence_number, 42);
        assert_eq!(c.meal, None);
        // An exercise overrun is no duration.
        let c = parse(&[0x08, 0x01, 0x00, 0xFF, 0xFF, 0x32]).expect("valid");
        assert_eq!(c.exercise, Some((None, 50)));
        // Intensity over 100 %.
        let err = parse(&[0x08, 0x01, 0x00, 0x10, 0x00, 0x65]).expect_err("intensity");
        assert_eq!(err.offset, 5);
        // A set extended flag bit.
        let err = parse(&[0x80, 0x01, 0x00, 0x01]).expect_err("extended");
        assert_eq!(
            (err.offset, err.reason),
            (3, ParseErrorKind::ReservedFlags { bits: 1 })
        );
        // Truncated medication, trailing bytes.
        assert!(parse(&[0x10, 0x01, 0x00, 0x01, 0x04]).is_err());
        assert!(parse(&[0x00, 0x01, 0x00, 0x00]).is_err());
    }

    #[test]
    fn fuzz_never_panics() {
        let ok = fuzz::never_panics(0x2A34, 24, 20_000, fuzz::flags_first::<0x7F>, parse);
        assert!(ok > 0);
    }
}
