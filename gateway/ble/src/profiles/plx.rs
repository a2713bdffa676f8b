//! PLX Spot-check Measurement (0x2A5E), Pulse Oximeter Service 1.0 §3.1 /
//! GATT Specification Supplement:
//!
//! | octets | field                                    | present when |
//! |--------|------------------------------------------|--------------|
//! | 1      | Flags                                    | always       |
//! | 2      | SpO2PR-Spot-Check – SpO2 (SFLOAT, %)     | always       |
//! | 2      | SpO2PR-Spot-Check – PR (SFLOAT, bpm)     | always       |
//! | 7      | Timestamp (Date Time)                    | flags bit 0  |
//! | 2      | Measurement Status (uint16)              | flags bit 1  |
//! | 3      | Device and Sensor Status (uint24)        | flags bit 2  |
//! | 2      | Pulse Amplitude Index (SFLOAT, %)        | flags bit 3  |
//!
//! Flags: bits 0–3 as above; bit 4 device clock is not set; bits 5–7
//! reserved.

use super::reader::Reader;
use super::{DateTime, ParseError, Profile};
use crate::ieee11073::MedFloat;

const TIME_STAMP: u8 = 0x01;
const MEASUREMENT_STATUS: u8 = 0x02;
const DEVICE_STATUS: u8 = 0x04;
const PULSE_AMPLITUDE: u8 = 0x08;
const CLOCK_NOT_SET: u8 = 0x10;
const DEFINED: u8 = 0x1F;

/// One oximeter spot check.
#[derive(Debug, Clone, PartialEq)]
pub struct PlxSpotCheck {
    /// Oxygen saturation in percent.
    pub spo2_percent: MedFloat,
    /// Pulse rate in beats per minute.
    pub pulse_rate_bpm: MedFloat,
    /// When, by the oximeter's clock.
    pub time_stamp: Option<DateTime>,
    /// Measurement Status bits (bits 0–4 reserved).
    pub measurement_status: Option<PlxMeasurementStatus>,
    /// Device and Sensor Status bits (bits 16–23 reserved).
    pub device_status: Option<PlxDeviceStatus>,
    /// Pulse amplitude index in percent.
    pub pulse_amplitude_index_percent: Option<MedFloat>,
    /// The oximeter says its clock is not set: `time_stamp` is not a real
    /// time.
    pub clock_not_set: bool,
}

/// Measurement Status (uint16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlxMeasurementStatus {
    /// The raw field.
    pub bits: u16,
}

impl PlxMeasurementStatus {
    fn bit(self, n: u16) -> bool {
        self.bits & (1 << n) != 0
    }
    /// Bit 5: measurement ongoing.
    pub fn measurement_ongoing(self) -> bool {
        self.bit(5)
    }
    /// Bit 6: early estimated data.
    pub fn early_estimate(self) -> bool {
        self.bit(6)
    }
    /// Bit 7: validated data.
    pub fn validated(self) -> bool {
        self.bit(7)
    }
    /// Bit 8: fully qualified data.
    pub fn fully_qualified(self) -> bool {
        self.bit(8)
    }
    /// Bit 9: data from measurement storage.
    pub fn from_storage(self) -> bool {
        self.bit(9)
    }
    /// Bit 10: data for demonstration.
    pub fn demonstration(self) -> bool {
        self.bit(10)
    }
    /// Bit 11: data for testing.
    pub fn testing(self) -> bool {
        self.bit(11)
    }
    /// Bit 12: calibration ongoing.
    pub fn calibration_ongoing(self) -> bool {
        self.bit(12)
    }
    /// Bit 13: measurement unavailable.
    pub fn unavailable(self) -> bool {
        self.bit(13)
    }
    /// Bit 14: questionable measurement detected.
    pub fn questionable(self) -> bool {
        self.bit(14)
    }
    /// Bit 15: invalid measurement detected.
    pub fn invalid(self) -> bool {
        self.bit(15)
    }
}

/// Device and Sensor Status (uint24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlxDeviceStatus {
    /// The raw field (low 24 bits).
    pub bits: u32,
}

impl PlxDeviceStatus {
    fn bit(self, n: u32) -> bool {
        self.bits & (1 << n) != 0
    }
    /// Bit 1: equipment malfunction detected.
    pub fn equipment_malfunction(self) -> bool {
        self.bit(1)
    }
    /// Bit 4: poor signal detected.
    pub fn poor_signal(self) -> bool {
        self.bit(4)
    }
    /// Bit 5: low perfusion detected.
    pub fn low_perfusion(self) -> bool {
        self.bit(5)
    }
    /// Bit 11: sensor unconnected to user.
    pub fn sensor_unconnected(self) -> bool {
        self.bit(11)
    }
    /// Bit 13: sensor displaced.
    pub fn sensor_displaced(self) -> bool {
        self.bit(13)
    }
    /// Bit 14: sensor malfunctioning.
    pub fn sensor_malfunctioning(self) -> bool {
        self.bit(14)
    }
    /// Bit 15: sensor disconnected.
    pub fn sensor_disconnected(self) -> bool {
        self.bit(15)
    }
}

/// The fields both PLX measurements end with, in this order.
pub(crate) struct StatusTail {
    pub(crate) measurement_status: Option<PlxMeasurementStatus>,
    pub(crate) device_status: Option<PlxDeviceStatus>,
    pub(crate) pulse_amplitude_index_percent: Option<MedFloat>,
}

/// Reads the status fields the flags announce (each at its own flag bit,
/// which differs between Spot-check and Continuous).
pub(crate) fn read_status_tail(
    r: &mut Reader<'_>,
    measurement: bool,
    device: bool,
    amplitude: bool,
) -> Result<StatusTail, ParseError> {
    Ok(StatusTail {
        measurement_status: if measurement {
            Some(PlxMeasurementStatus {
                bits: r.u16("measurement status")?,
            })
        } else {
            None
        },
        device_status: if device {
            Some(PlxDeviceStatus {
                bits: r.u24("device and sensor status")?,
            })
        } else {
            None
        },
        pulse_amplitude_index_percent: if amplitude {
            Some(r.sfloat("pulse amplitude index")?)
        } else {
            None
        },
    })
}

/// Parses one PLX Spot-check Measurement frame.
pub fn parse(frame: &[u8]) -> Result<PlxSpotCheck, ParseError> {
    let mut r = Reader::new(Profile::PlxSpotCheck, frame)?;
    let flags = r.u8("flags")?;
    r.check_reserved(0, flags.into(), DEFINED.into())?;
    let spo2_percent = r.sfloat("SpO2")?;
    let pulse_rate_bpm = r.sfloat("pulse rate")?;
    let time_stamp = if flags & TIME_STAMP != 0 {
        Some(r.date_time("time stamp")?)
    } else {
        None
    };
    let tail = read_status_tail(
        &mut r,
        flags & MEASUREMENT_STATUS != 0,
        flags & DEVICE_STATUS != 0,
        flags & PULSE_AMPLITUDE != 0,
    )?;
    r.finish()?;
    Ok(PlxSpotCheck {
        spo2_percent,
        pulse_rate_bpm,
        measurement_status: tail.measurement_status,
        device_status: tail.device_status,
        pulse_amplitude_index_percent: tail.pulse_amplitude_index_percent,
        time_stamp,
        clock_not_set: flags & CLOCK_NOT_SET != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::{ParseErrorKind, fuzz};

    #[test]
    fn all_fields() {
        // Flags 0x0F. SpO2 97 % (0x0061), PR 64 bpm (0x0040), 2024-03-15
        // 07:30:05, measurement status 0x0180 (validated, fully qualified),
        // device status 0x000020 (low perfusion), PAI 2.5 % = 25 × 10⁻¹ →
        // 0xF019.
        let bytes = [
            0x0F, 0x61, 0x00, 0x40, 0x00, 0xE8, 0x07, 3, 15, 7, 30, 5, 0x80, 0x01, 0x20, 0x00,
            0x00, 0x19, 0xF0,
        ];
        let m = parse(&bytes).expect("valid");
        assert_eq!(m.spo2_percent, MedFloat::Finite(97.0));
        assert_eq!(m.pulse_rate_bpm, MedFloat::Finite(64.0));
        assert_eq!(m.time_stamp.map(|t| t.hours), Some(7));
        let ms = m.measurement_status.expect("status");
        assert!(ms.validated() && ms.fully_qualified() && !ms.invalid() && !ms.questionable());
        let ds = m.device_status.expect("device status");
        assert!(ds.low_perfusion() && !ds.sensor_displaced());
        assert_eq!(m.pulse_amplitude_index_percent, Some(MedFloat::Finite(2.5)));
        assert!(!m.clock_not_set);
    }

    #[test]
    fn minimal_with_special_values_and_clock_flag() {
        // Flags 0x10: clock not set. SpO2 NaN (0x07FF), PR NRes (0x0800).
        let m = parse(&[0x10, 0xFF, 0x07, 0x00, 0x08]).expect("valid");
        assert_eq!(m.spo2_percent, MedFloat::NaN);
        assert_eq!(m.pulse_rate_bpm, MedFloat::NRes);
        assert!(m.clock_not_set);
        assert_eq!(m.time_stamp, None);
    }

    #[test]
    fn refusals() {
        let err = parse(&[0x00, 0x61, 0x00, 0x40]).expect_err("truncated");
        assert_eq!(err.offset, 3);
        let err = parse(&[0x80, 0x61, 0x00, 0x40, 0x00]).expect_err("reserved");
        assert_eq!(err.reason, ParseErrorKind::ReservedFlags { bits: 0x80 });
        let err = parse(&[0x04, 0x61, 0x00, 0x40, 0x00, 0x20, 0x00]).expect_err("uint24 cut");
        assert!(matches!(
            err.reason,
            ParseErrorKind::Truncated {
                field: "device and sensor status",
                ..
            }
        ));
    }

    fn shape(buf: &mut [u8]) {
        fuzz::flags_first::<0x1F>(buf);
        fuzz::plausible_date(buf, 5);
    }

    #[test]
    fn fuzz_never_panics() {
        let ok = fuzz::never_panics(0x2A5E, 24, 20_000, shape, parse);
        assert!(ok > 0);
    }
}
