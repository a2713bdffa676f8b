//! Notifications of simulated devices, built from the specifications'
//! layouts (see the parsers' module docs for the tables).

use crate::ieee11073::encode_sfloat;
use crate::profiles::DateTime;

/// A fixed device clock reading for tests: 2024-03-15 07:30:00.
pub const TIME: DateTime = DateTime {
    year: 2024,
    month: 3,
    day: 15,
    hours: 7,
    minutes: 30,
    seconds: 0,
};

/// The device clock `minutes` after [`TIME`] (within the same day).
pub fn time_plus(minutes: u8) -> DateTime {
    let total = u16::from(TIME.minutes) + u16::from(minutes);
    DateTime {
        hours: TIME.hours + (total / 60) as u8,
        minutes: (total % 60) as u8,
        ..TIME
    }
}

/// A Glucose Measurement: sequence number, base time, and a capillary
/// whole-blood finger-stick value of `mg_dl` sent in kg/L (mg/dL × 10⁻⁵,
/// the SFLOAT mantissa is the mg/dL value with exponent −5). Flags 0x02.
pub fn glucose_record(sequence: u16, base_time: DateTime, mg_dl: i16) -> Vec<u8> {
    let mut out = vec![0x02];
    out.extend(sequence.to_le_bytes());
    out.extend(base_time.to_bytes());
    let value = encode_sfloat(mg_dl, -5).expect("mg/dL value fits an SFLOAT mantissa");
    out.extend(value.to_le_bytes());
    out.push(0x11); // type 1 capillary whole blood, location 1 finger
    out
}

/// One CGM Measurement record (size 6, no optional fields): `mg_dl` at
/// `time_offset` minutes into the session.
pub fn cgm_record(mg_dl: i16, time_offset: u16) -> Vec<u8> {
    let mut out = vec![0x06, 0x00];
    out.extend(encode_sfloat(mg_dl, 0).expect("fits").to_le_bytes());
    out.extend(time_offset.to_le_bytes());
    out
}

/// A Blood Pressure Measurement in mmHg with pulse rate (flags 0x04).
pub fn blood_pressure(systolic: i16, diastolic: i16, mean: i16, pulse: i16) -> Vec<u8> {
    let mut out = vec![0x04];
    for v in [systolic, diastolic, mean, pulse] {
        out.extend(encode_sfloat(v, 0).expect("fits").to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ieee11073::MedFloat;
    use crate::profiles::{blood_pressure as bp, cgm, glucose};

    #[test]
    fn frames_parse_back() {
        let g = glucose::parse(&glucose_record(7, time_plus(45), 112)).expect("valid");
        assert_eq!(g.sequence_number, 7);
        assert_eq!((g.base_time.hours, g.base_time.minutes), (8, 15));
        assert_eq!(
            g.concentration.map(|c| c.value),
            Some(MedFloat::Finite(0.00112))
        );
        let c = cgm::parse(&cgm_record(140, 30)).expect("valid");
        assert_eq!(c[0].glucose_mg_dl, MedFloat::Finite(140.0));
        let b = bp::parse(&blood_pressure(121, 79, 93, 64)).expect("valid");
        assert_eq!(b.pulse_rate_bpm, Some(MedFloat::Finite(64.0)));
    }
}
