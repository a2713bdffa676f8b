//! PLX Continuous Measurement (0x2A5F), Pulse Oximeter Service 1.0 §3.2 /
//! GATT Specification Supplement: a stream of readings while the oximeter
//! is on a finger.
//!
//! | octets | field                                  | present when |
//! |--------|----------------------------------------|--------------|
//! | 1      | Flags                                  | always       |
//! | 4      | SpO2PR-Normal: SpO2 (SFLOAT, %), PR (SFLOAT, bpm) | always |
//! | 4      | SpO2PR-Fast: SpO2, PR                  | flags bit 0  |
//! | 4      | SpO2PR-Slow: SpO2, PR                  | flags bit 1  |
//! | 2      | Measurement Status (uint16)            | flags bit 2  |
//! | 3      | Device and Sensor Status (uint24)      | flags bit 3  |
//! | 2      | Pulse Amplitude Index (SFLOAT, %)      | flags bit 4  |
//!
//! Flags bits 5–7 are reserved. The Normal pair is the reading; Fast and
//! Slow are the same signal averaged over shorter and longer windows.

use super::plx::{PlxDeviceStatus, PlxMeasurementStatus, read_status_tail};
use super::reader::Reader;
use super::{ParseError, Profile};
use crate::ieee11073::MedFloat;

const FAST: u8 = 0x01;
const SLOW: u8 = 0x02;
const MEASUREMENT_STATUS: u8 = 0x04;
const DEVICE_STATUS: u8 = 0x08;
const PULSE_AMPLITUDE: u8 = 0x10;
const DEFINED: u8 = 0x1F;

/// One continuous oximetry notification.
#[derive(Debug, Clone, PartialEq)]
pub struct PlxContinuous {
    /// Oxygen saturation in percent (the normal averaging).
    pub spo2_percent: MedFloat,
    /// Pulse rate in beats per minute (the normal averaging).
    pub pulse_rate_bpm: MedFloat,
    /// The fast-averaged pair, when sent.
    pub fast: Option<(MedFloat, MedFloat)>,
    /// The slow-averaged pair, when sent.
    pub slow: Option<(MedFloat, MedFloat)>,
    /// Measurement Status bits.
    pub measurement_status: Option<PlxMeasurementStatus>,
    /// Device and Sensor Status bits.
    pub device_status: Option<PlxDeviceStatus>,
    /// Pulse amplitude index in percent.
    pub pulse_amplitude_index_percent: Option<MedFloat>,
}

/// Parses one PLX Continuous Measurement notification.
pub fn parse(frame: &[u8]) -> Result<PlxContinuous, ParseError> {
    let mut r = Reader::new(Profile::PlxContinuous, frame)?;
    let flags = r.u8("flags")?;
    r.check_reserved(0, flags.into(), DEFINED.into())?;
    let spo2_percent = r.sfloat("SpO2")?;
    let pulse_rate_bpm = r.sfloat("pulse rate")?;
    let mut pair = |present: bool, spo2, pr| -> Result<Option<(MedFloat, MedFloat)>, ParseError> {
        Ok(if present {
            Some((r.sfloat(spo2)?, r.sfloat(pr)?))
        } else {
            None
        })
    };
    let fast = pair(flags & FAST != 0, "fast SpO2", "fast pulse rate")?;
    let slow = pair(flags & SLOW != 0, "slow SpO2", "slow pulse rate")?;
    let tail = read_status_tail(
        &mut r,
        flags & MEASUREMENT_STATUS != 0,
        flags & DEVICE_STATUS != 0,
        flags & PULSE_AMPLITUDE != 0,
    )?;
    r.finish()?;
    Ok(PlxContinuous {
        spo2_percent,
        pulse_rate_bpm,
        fast,
        slow,
        measurement_status: tail.measurement_status,
        device_status: tail.device_status,
        pulse_amplitude_index_percent: tail.pulse_amplitude_index_percent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::{ParseErrorKind, fuzz};

    #[test]
    fn every_field() {
        // Flags 0x1F. Normal 96 %/70 bpm, fast 95/72, slow 97/69, status
        // 0x0080 (validated), device 0x000010 (poor signal), PAI 1.2 % =
        // 12 × 10⁻¹ → 0xF00C.
        let frame = [
            0x1F, 0x60, 0x00, 0x46, 0x00, 0x5F, 0x00, 0x48, 0x00, 0x61, 0x00, 0x45, 0x00, 0x80,
            0x00, 0x10, 0x00, 0x00, 0x0C, 0xF0,
        ];
        let m = parse(&frame).expect("valid");
        assert_eq!(m.spo2_percent, MedFloat::Finite(96.0));
        assert_eq!(m.pulse_rate_bpm, MedFloat::Finite(70.0));
        assert_eq!(
            m.fast,
            Some((MedFloat::Finite(95.0), MedFloat::Finite(72.0)))
        );
        assert_eq!(
            m.slow,
            Some((MedFloat::Finite(97.0), MedFloat::Finite(69.0)))
        );
        assert!(m.measurement_status.unwrap().validated());
        assert!(m.device_status.unwrap().poor_signal());
        assert_eq!(m.pulse_amplitude_index_percent, Some(MedFloat::Finite(1.2)));
    }

    #[test]
    fn minimal_and_refusals() {
        let m = parse(&[0x00, 0x62, 0x00, 0x3C, 0x00]).expect("valid");
        assert_eq!(m.spo2_percent, MedFloat::Finite(98.0));
        assert_eq!((m.fast, m.slow), (None, None));
        assert_eq!(
            parse(&[0x20, 0x62, 0x00, 0x3C, 0x00])
                .expect_err("reserved")
                .reason,
            ParseErrorKind::ReservedFlags { bits: 0x20 }
        );
        assert!(
            parse(&[0x01, 0x62, 0x00, 0x3C, 0x00, 0x62]).is_err(),
            "fast cut short"
        );
        assert!(
            parse(&[0x00, 0x62, 0x00, 0x3C, 0x00, 0x00]).is_err(),
            "trailing"
        );
    }

    #[test]
    fn fuzz_never_panics() {
        let ok = fuzz::never_panics(0x2A5F, 24, 20_000, fuzz::flags_first::<0x1F>, parse);
        assert!(ok > 0);
    }
}
