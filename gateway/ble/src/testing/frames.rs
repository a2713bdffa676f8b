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

/// The UTC wall-clock time of `at` as a device would send it (the inverse
/// of Howard Hinnant's `days_from_civil`: `civil_from_days`).
pub fn utc(at: std::time::SystemTime) -> DateTime {
    let secs = at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, in_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (year_of_era + era * 400 + i64::from(month <= 2)) as u16;
    DateTime {
        year,
        month,
        day,
        hours: (in_day / 3600) as u8,
        minutes: (in_day % 3600 / 60) as u8,
        seconds: (in_day % 60) as u8,
    }
}

/// The UTC device clock `minutes` before now.
pub fn utc_minutes_ago(minutes: u64) -> DateTime {
    utc(std::time::SystemTime::now() - std::time::Duration::from_secs(minutes * 60))
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

    #[test]
    fn utc_dates_match_known_unix_times() {
        let at = |secs| utc(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
        assert_eq!(at(0).to_bytes(), [0xB2, 0x07, 1, 1, 0, 0, 0]);
        assert_eq!(at(1_710_487_800), TIME);
        assert_eq!(
            at(951_868_799),
            DateTime {
                year: 2000,
                month: 2,
                day: 29,
                hours: 23,
                minutes: 59,
                seconds: 59
            }
        );
    }
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
