//! Blood Pressure Measurement (0x2A35), Blood Pressure Service 1.1 §3.1 /
//! GATT Specification Supplement:
//!
//! | octets | field                                   | present when |
//! |--------|-----------------------------------------|--------------|
//! | 1      | Flags                                   | always       |
//! | 2      | Systolic (SFLOAT)                       | always       |
//! | 2      | Diastolic (SFLOAT)                      | always       |
//! | 2      | Mean Arterial Pressure (SFLOAT)         | always       |
//! | 7      | Time Stamp (Date Time)                  | flags bit 1  |
//! | 2      | Pulse Rate (SFLOAT, beats/min)          | flags bit 2  |
//! | 1      | User ID (uint8, 0xFF = unknown user)    | flags bit 3  |
//! | 2      | Measurement Status (uint16)             | flags bit 4  |
//!
//! Flags: bit 0 unit (0 = mmHg, 1 = kPa); bits 1–4 as above; bits 5–7
//! reserved.

use super::reader::Reader;
use super::{DateTime, ParseError, Profile};
use crate::ieee11073::MedFloat;

const KPA: u8 = 0x01;
const TIME_STAMP: u8 = 0x02;
const PULSE_RATE: u8 = 0x04;
const USER_ID: u8 = 0x08;
const STATUS: u8 = 0x10;
const DEFINED: u8 = 0x1F;

/// One cuff reading.
#[derive(Debug, Clone, PartialEq)]
pub struct BloodPressureMeasurement {
    /// The pressure unit of systolic, diastolic and MAP.
    pub unit: PressureUnit,
    /// Systolic pressure.
    pub systolic: MedFloat,
    /// Diastolic pressure.
    pub diastolic: MedFloat,
    /// Mean arterial pressure.
    pub mean_arterial: MedFloat,
    /// When the cuff took it, by the cuff's clock.
    pub time_stamp: Option<DateTime>,
    /// Pulse rate in beats per minute.
    pub pulse_rate_bpm: Option<MedFloat>,
    /// The cuff's user index; 0xFF is "unknown user".
    pub user_id: Option<u8>,
    /// Measurement Status bits.
    pub status: Option<BloodPressureStatus>,
}

/// Blood pressure unit as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PressureUnit {
    /// Millimetres of mercury.
    MillimetreOfMercury,
    /// Kilopascal.
    Kilopascal,
}

/// Measurement Status (uint16). Bits 6–15 are reserved and kept in `bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BloodPressureStatus {
    /// The raw field.
    pub bits: u16,
}

/// Pulse rate range detection (Measurement Status bits 3–4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PulseRateRange {
    /// 0: within range.
    WithinRange,
    /// 1: exceeds the upper limit.
    AboveUpperLimit,
    /// 2: below the lower limit.
    BelowLowerLimit,
    /// 3: reserved.
    Reserved,
}

impl BloodPressureStatus {
    /// Bit 0: body movement during measurement.
    pub fn body_movement(self) -> bool {
        self.bits & 0x01 != 0
    }
    /// Bit 1: cuff too loose.
    pub fn cuff_too_loose(self) -> bool {
        self.bits & 0x02 != 0
    }
    /// Bit 2: irregular pulse detected.
    pub fn irregular_pulse(self) -> bool {
        self.bits & 0x04 != 0
    }
    /// Bits 3–4: pulse rate range.
    pub fn pulse_rate_range(self) -> PulseRateRange {
        match (self.bits >> 3) & 0x03 {
            0 => PulseRateRange::WithinRange,
            1 => PulseRateRange::AboveUpperLimit,
            2 => PulseRateRange::BelowLowerLimit,
            _ => PulseRateRange::Reserved,
        }
    }
    /// Bit 5: improper measurement position.
    pub fn improper_position(self) -> bool {
        self.bits & 0x20 != 0
    }
}

/// Parses one Blood Pressure Measurement frame.
pub fn parse(frame: &[u8]) -> Result<BloodPressureMeasurement, ParseError> {
    let mut r = Reader::new(Profile::BloodPressure, frame)?;
    let flags = r.u8("flags")?;
    r.check_reserved(0, flags.into(), DEFINED.into())?;
    let systolic = r.sfloat("systolic")?;
    let diastolic = r.sfloat("diastolic")?;
    let mean_arterial = r.sfloat("mean arterial pressure")?;
    let time_stamp = if flags & TIME_STAMP != 0 {
        Some(r.date_time("time stamp")?)
    } else {
        None
    };
    let pulse_rate_bpm = if flags & PULSE_RATE != 0 {
        Some(r.sfloat("pulse rate")?)
    } else {
        None
    };
    let user_id = if flags & USER_ID != 0 {
        Some(r.u8("user id")?)
    } else {
        None
    };
    let status = if flags & STATUS != 0 {
        Some(BloodPressureStatus {
            bits: r.u16("measurement status")?,
        })
    } else {
        None
    };
    r.finish()?;
    Ok(BloodPressureMeasurement {
        unit: if flags & KPA != 0 {
            PressureUnit::Kilopascal
        } else {
            PressureUnit::MillimetreOfMercury
        },
        systolic,
        diastolic,
        mean_arterial,
        time_stamp,
        pulse_rate_bpm,
        user_id,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::{ParseErrorKind, fuzz};

    #[test]
    fn mmhg_with_every_optional_field() {
        // Flags 0x1E: mmHg, time stamp, pulse, user, status.
        // 120 (0x0078) / 80 (0x0050) / MAP 93 (0x005D) mmHg,
        // 2024-03-15 07:30:05, pulse 72 (0x0048), user 1,
        // status 0x000C: irregular pulse (bit 2), pulse above range (bits 3–4 = 01).
        let bytes = [
            0x1E, 0x78, 0x00, 0x50, 0x00, 0x5D, 0x00, 0xE8, 0x07, 3, 15, 7, 30, 5, 0x48, 0x00,
            0x01, 0x0C, 0x00,
        ];
        let m = parse(&bytes).expect("valid");
        assert_eq!(m.unit, PressureUnit::MillimetreOfMercury);
        assert_eq!(
            (m.systolic, m.diastolic, m.mean_arterial),
            (
                MedFloat::Finite(120.0),
                MedFloat::Finite(80.0),
                MedFloat::Finite(93.0)
            )
        );
        assert_eq!(m.time_stamp.map(|t| (t.year, t.minutes)), Some((2024, 30)));
        assert_eq!(m.pulse_rate_bpm, Some(MedFloat::Finite(72.0)));
        assert_eq!(m.user_id, Some(1));
        let s = m.status.expect("status");
        assert!(
            s.irregular_pulse()
                && !s.body_movement()
                && !s.cuff_too_loose()
                && !s.improper_position()
        );
        assert_eq!(s.pulse_rate_range(), PulseRateRange::AboveUpperLimit);
    }

    #[test]
    fn kpa_minimal_with_special_map() {
        // Flags 0x01: kPa. 16.0 kPa = 160 × 10⁻¹ → 0xF0A0; 10.7 kPa = 107 ×
        // 10⁻¹ → 0xF06B; MAP NaN (0x07FF).
        let m = parse(&[0x01, 0xA0, 0xF0, 0x6B, 0xF0, 0xFF, 0x07]).expect("valid");
        assert_eq!(m.unit, PressureUnit::Kilopascal);
        assert_eq!(m.systolic, MedFloat::Finite(16.0));
        assert_eq!(m.diastolic, MedFloat::Finite(10.7));
        assert_eq!(m.mean_arterial, MedFloat::NaN);
        assert_eq!(
            (m.time_stamp, m.pulse_rate_bpm, m.user_id, m.status),
            (None, None, None, None)
        );
    }

    #[test]
    fn refusals() {
        let err = parse(&[0x00, 0x78, 0x00, 0x50]).expect_err("truncated");
        assert_eq!(err.offset, 3);
        let err = parse(&[0x40, 0x78, 0x00, 0x50, 0x00, 0x5D, 0x00]).expect_err("reserved");
        assert_eq!(err.reason, ParseErrorKind::ReservedFlags { bits: 0x40 });
        let err = parse(&[0x08, 0x78, 0x00, 0x50, 0x00, 0x5D, 0x00]).expect_err("user id missing");
        assert!(matches!(
            err.reason,
            ParseErrorKind::Truncated {
                field: "user id",
                ..
            }
        ));
        let err = parse(&[0x00, 0x78, 0x00, 0x50, 0x00, 0x5D, 0x00, 0x00]).expect_err("trailing");
        assert_eq!(err.reason, ParseErrorKind::TrailingBytes { count: 1 });
    }

    fn shape(buf: &mut [u8]) {
        fuzz::flags_first::<0x1F>(buf);
        fuzz::plausible_date(buf, 7);
    }

    #[test]
    fn fuzz_never_panics() {
        let ok = fuzz::never_panics(0x2A35, 24, 20_000, shape, parse);
        assert!(ok > 0, "the fuzzer should reach valid frames too");
    }
}
