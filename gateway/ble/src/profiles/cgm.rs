//! CGM Measurement (0x2AA7), Continuous Glucose Monitoring Service 1.0.1
//! §3.1. A notification carries one or more records back to back; each:
//!
//! | octets | field                                            | present when  |
//! |--------|--------------------------------------------------|---------------|
//! | 1      | Size (of this record, Size field included)       | always        |
//! | 1      | Flags                                            | always        |
//! | 2      | CGM Glucose Concentration (SFLOAT, mg/dL)        | always        |
//! | 2      | Time Offset (uint16, minutes since session start) | always       |
//! | 1      | Sensor Status Annunciation – Status-Octet        | flags bit 7   |
//! | 1      | Sensor Status Annunciation – Cal/Temp-Octet      | flags bit 6   |
//! | 1      | Sensor Status Annunciation – Warning-Octet       | flags bit 5   |
//! | 2      | CGM Trend Information (SFLOAT, mg/dL/min)        | flags bit 0   |
//! | 2      | CGM Quality (SFLOAT, %)                          | flags bit 1   |
//! | 2      | E2E-CRC (uint16)                                 | E2E-CRC supported (CGM Feature) |
//!
//! Flags bits 2–4 are reserved. Whether the E2E-CRC is there is announced
//! in the CGM Feature characteristic, not in the record; the Size field
//! tells us instead: the flags give the size without CRC, and a record two
//! octets longer carries one, which must then match (CRC-16/MCRF4XX over
//! the record before it, see [`crate::crc16_mcrf4xx`]).
//!
//! The annunciation field is the 24-bit CGM Status, least significant octet
//! first, with absent octets left out: Status, then Cal/Temp, then Warning.
//! That is the SIG definition and what every independent implementation
//! reads. Some device SDKs (Nordic's older nRF5 CGMS encoder among them)
//! write the Warning octet first; [`StatusOrder::WarningFirst`] reads those
//! (a per-device quirk in the hub's config), never by guessing.
//!
//! The annunciation octets, as the 24-bit CGM Status field numbers them:
//! Status-Octet bits 0–7 (session stopped, device battery low, sensor type
//! incorrect, sensor malfunction, device-specific alert, general device
//! fault), Cal/Temp-Octet bits 8–15 (time synchronisation required,
//! calibration not allowed / recommended / required, sensor temperature too
//! high / too low), Warning-Octet bits 16–23 (result lower/higher than the
//! patient low/high level, lower than hypo / higher than hyper level, rate
//! of decrease/increase exceeded, result lower/higher than the device can
//! process).

use super::reader::Reader;
use super::{ParseError, ParseErrorKind, Profile};
use crate::ieee11073::MedFloat;

const TREND: u8 = 0x01;
const QUALITY: u8 = 0x02;
const WARNING: u8 = 0x20;
const CAL_TEMP: u8 = 0x40;
const STATUS: u8 = 0x80;
const DEFINED: u8 = 0xE3;

/// The order of the Sensor Status Annunciation octets in a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StatusOrder {
    /// Status, Cal/Temp, Warning: the SIG definition.
    #[default]
    Sig,
    /// Warning, Cal/Temp, Status: some SDKs' encoders.
    WarningFirst,
}

/// One CGM record.
#[derive(Debug, Clone, PartialEq)]
pub struct CgmMeasurement {
    /// Glucose in mg/dL (the only unit the CGM profile has).
    pub glucose_mg_dl: MedFloat,
    /// Minutes since the sensor session started; the record's time and its
    /// identity within a session.
    pub time_offset_minutes: u16,
    /// Annunciation octets, each present only when flagged.
    pub status: CgmSensorStatus,
    /// Rate of change in mg/dL/min.
    pub trend_mg_dl_per_min: Option<MedFloat>,
    /// Quality in percent.
    pub quality_percent: Option<MedFloat>,
    /// Whether the record carried an E2E-CRC (which then matched).
    pub crc_checked: bool,
}

/// The Sensor Status Annunciation octets of a record; `None` when the flags
/// leave one out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CgmSensorStatus {
    /// Status-Octet (CGM Status bits 0–7).
    pub status: Option<u8>,
    /// Cal/Temp-Octet (bits 8–15).
    pub cal_temp: Option<u8>,
    /// Warning-Octet (bits 16–23).
    pub warning: Option<u8>,
}

impl CgmSensorStatus {
    /// The 24-bit CGM Status view (absent octets read as 0).
    pub fn bits(self) -> u32 {
        u32::from(self.status.unwrap_or(0))
            | u32::from(self.cal_temp.unwrap_or(0)) << 8
            | u32::from(self.warning.unwrap_or(0)) << 16
    }
    /// Bit 0: session stopped.
    pub fn session_stopped(self) -> bool {
        self.bits() & 1 != 0
    }
    /// Bit 1: device battery low.
    pub fn battery_low(self) -> bool {
        self.bits() & (1 << 1) != 0
    }
    /// Bit 2: sensor type incorrect for the device.
    pub fn sensor_type_incorrect(self) -> bool {
        self.bits() & (1 << 2) != 0
    }
    /// Bit 3: sensor malfunction.
    pub fn sensor_malfunction(self) -> bool {
        self.bits() & (1 << 3) != 0
    }
    /// Bit 5: general device fault.
    pub fn general_device_fault(self) -> bool {
        self.bits() & (1 << 5) != 0
    }
    /// Bit 11: calibration required.
    pub fn calibration_required(self) -> bool {
        self.bits() & (1 << 11) != 0
    }
    /// Bit 12: sensor temperature too high for a valid result.
    pub fn temperature_too_high(self) -> bool {
        self.bits() & (1 << 12) != 0
    }
    /// Bit 13: sensor temperature too low for a valid result.
    pub fn temperature_too_low(self) -> bool {
        self.bits() & (1 << 13) != 0
    }
    /// Bit 22: result lower than the device can process.
    pub fn below_device_range(self) -> bool {
        self.bits() & (1 << 22) != 0
    }
    /// Bit 23: result higher than the device can process.
    pub fn above_device_range(self) -> bool {
        self.bits() & (1 << 23) != 0
    }
}

/// Parses a CGM Measurement notification: every record in it, or the first
/// error (a notification is refused whole: after a bad Size nothing that
/// follows can be framed). Status octets in the SIG order.
pub fn parse(frame: &[u8]) -> Result<Vec<CgmMeasurement>, ParseError> {
    parse_with(frame, StatusOrder::Sig)
}

/// [`parse`] for a device that writes its status octets in `order`.
pub fn parse_with(frame: &[u8], order: StatusOrder) -> Result<Vec<CgmMeasurement>, ParseError> {
    let mut r = Reader::new(Profile::Cgm, frame)?;
    let mut records = Vec::new();
    while r.remaining() > 0 {
        records.push(record(&mut r, order)?);
    }
    Ok(records)
}

fn record(r: &mut Reader<'_>, order: StatusOrder) -> Result<CgmMeasurement, ParseError> {
    let start = r.offset();
    let size = r.u8("size")?;
    let flags = r.u8("flags")?;
    r.check_reserved(start + 1, flags.into(), DEFINED.into())?;
    let expected = 6
        + [WARNING, CAL_TEMP, STATUS]
            .iter()
            .filter(|&&f| flags & f != 0)
            .count() as u8
        + 2 * [TREND, QUALITY].iter().filter(|&&f| flags & f != 0).count() as u8;
    let has_crc = if size == expected {
        false
    } else if size == expected + 2 {
        true
    } else {
        return Err(r.error_at(start, ParseErrorKind::SizeMismatch { size, expected }));
    };
    if r.remaining() + 2 < usize::from(size) {
        return Err(r.error_at(
            start,
            ParseErrorKind::Truncated {
                field: "record",
                needed: size.into(),
                available: r.remaining() + 2,
            },
        ));
    }
    let glucose_mg_dl = r.sfloat("glucose concentration")?;
    let time_offset_minutes = r.u16("time offset")?;
    let mut status = CgmSensorStatus::default();
    let octets = match order {
        StatusOrder::Sig => [STATUS, CAL_TEMP, WARNING],
        StatusOrder::WarningFirst => [WARNING, CAL_TEMP, STATUS],
    };
    for octet in octets {
        if flags & octet == 0 {
            continue;
        }
        match octet {
            STATUS => status.status = Some(r.u8("status octet")?),
            CAL_TEMP => status.cal_temp = Some(r.u8("cal/temp octet")?),
            _ => status.warning = Some(r.u8("warning octet")?),
        }
    }
    let trend_mg_dl_per_min = if flags & TREND != 0 {
        Some(r.sfloat("trend")?)
    } else {
        None
    };
    let quality_percent = if flags & QUALITY != 0 {
        Some(r.sfloat("quality")?)
    } else {
        None
    };
    if has_crc {
        r.e2e_crc(start)?;
    }
    Ok(CgmMeasurement {
        glucose_mg_dl,
        time_offset_minutes,
        status,
        trend_mg_dl_per_min,
        quality_percent,
        crc_checked: has_crc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crc::crc16_mcrf4xx;
    use crate::profiles::fuzz;

    #[test]
    fn minimal_record() {
        // Size 6, flags 0, 0x0078 = 120 mg/dL, offset 0x0005 = 5 min.
        let records = parse(&[0x06, 0x00, 0x78, 0x00, 0x05, 0x00]).expect("valid");
        assert_eq!(records.len(), 1);
        let m = &records[0];
        assert_eq!(m.glucose_mg_dl, MedFloat::Finite(120.0));
        assert_eq!(m.time_offset_minutes, 5);
        assert_eq!(m.status, CgmSensorStatus::default());
        assert_eq!(
            (m.trend_mg_dl_per_min, m.quality_percent, m.crc_checked),
            (None, None, false)
        );
    }

    #[test]
    fn all_fields_with_crc() {
        // Size 15 = 6 + 3 annunciation octets + trend + quality + CRC.
        // Flags 0xE3. Glucose 0x00B4 = 180 mg/dL, offset 0x0100 = 256 min,
        // then the CGM Status least significant octet first: status 0x01
        // (bit 0: session stopped), cal/temp 0x08 (bit 11: calibration
        // required), warning 0x80 (bit 23: above device range); trend
        // −1.5 mg/dL/min = −15 × 10⁻¹ → exponent 0xF, mantissa 0xFF1
        // → 0xFFF1, quality 0x005A = 90 %.
        let mut bytes = vec![
            0x0F, 0xE3, 0xB4, 0x00, 0x00, 0x01, 0x01, 0x08, 0x80, 0xF1, 0xFF, 0x5A, 0x00,
        ];
        let crc = crc16_mcrf4xx(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        let records = parse(&bytes).expect("valid");
        let m = &records[0];
        assert_eq!(m.glucose_mg_dl, MedFloat::Finite(180.0));
        assert_eq!(m.time_offset_minutes, 256);
        assert_eq!(m.status.warning, Some(0x80));
        assert!(m.status.above_device_range());
        assert!(m.status.calibration_required());
        assert!(m.status.session_stopped());
        assert!(!m.status.sensor_malfunction() && !m.status.below_device_range());
        assert_eq!(m.status.bits(), 0x80_08_01);
        assert_eq!(m.trend_mg_dl_per_min, Some(MedFloat::Finite(-1.5)));
        assert_eq!(m.quality_percent, Some(MedFloat::Finite(90.0)));
        assert!(m.crc_checked);

        // One bit flipped in the glucose value: the CRC catches it.
        bytes[2] ^= 0x01;
        let err = parse(&bytes).expect_err("crc");
        assert_eq!(err.offset, 13);
        assert!(matches!(err.reason, ParseErrorKind::CrcMismatch { .. }));
    }

    /// Vectors written from the SIG definition (CGMS 1.0.1 §3.1.1.4: the
    /// Sensor Status Annunciation field is the CGM Status, least significant
    /// octet first) rather than from another implementation.
    #[test]
    fn status_octets_follow_the_sig_order_and_a_quirk_reads_warning_first() {
        // Status and Warning present (flags 0xA0), Cal/Temp absent: the
        // Status octet 0x02 (battery low) comes first, then Warning 0x01
        // (bit 16: result lower than the patient low level).
        let frame = [0x08, 0xA0, 0x46, 0x00, 0x0A, 0x00, 0x02, 0x01];
        let sig = &parse(&frame).expect("valid")[0];
        assert_eq!(sig.status.status, Some(0x02));
        assert_eq!(sig.status.warning, Some(0x01));
        assert!(sig.status.battery_low());
        assert!(!sig.status.session_stopped());
        assert_eq!(sig.status.bits(), 0x01_00_02);
        // The same bytes from a device that writes Warning first.
        let quirk = &parse_with(&frame, StatusOrder::WarningFirst).expect("valid")[0];
        assert_eq!(quirk.status.warning, Some(0x02));
        assert_eq!(quirk.status.status, Some(0x01));
        assert!(quirk.status.session_stopped());
        // Only Cal/Temp: the order does not matter.
        let frame = [0x07, 0x40, 0x46, 0x00, 0x0A, 0x00, 0x08];
        for order in [StatusOrder::Sig, StatusOrder::WarningFirst] {
            let m = &parse_with(&frame, order).expect("valid")[0];
            assert!(m.status.calibration_required());
        }
    }

    #[test]
    fn concatenated_records_and_special_values() {
        // Two records: 100 mg/dL at minute 10, then NRes (0x0800) at minute
        // 15 with a trend of +INF (0x07FE).
        let bytes = [
            0x06, 0x00, 0x64, 0x00, 0x0A, 0x00, //
            0x08, 0x01, 0x00, 0x08, 0x0F, 0x00, 0xFE, 0x07,
        ];
        let records = parse(&bytes).expect("valid");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].glucose_mg_dl, MedFloat::Finite(100.0));
        assert_eq!(records[1].glucose_mg_dl, MedFloat::NRes);
        assert_eq!(records[1].time_offset_minutes, 15);
        assert_eq!(
            records[1].trend_mg_dl_per_min,
            Some(MedFloat::PositiveInfinity)
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(parse(&[]).expect_err("empty").reason, ParseErrorKind::Empty);
        // Size says 6, five bytes follow it... only 5 in all.
        let err = parse(&[0x06, 0x00, 0x78, 0x00, 0x05]).expect_err("truncated");
        assert!(matches!(
            err.reason,
            ParseErrorKind::Truncated {
                field: "record",
                ..
            }
        ));
        // Size 7 for a 6-byte layout: neither with nor without CRC.
        let err = parse(&[0x07, 0x00, 0x78, 0x00, 0x05, 0x00, 0x00]).expect_err("size");
        assert_eq!(
            err.reason,
            ParseErrorKind::SizeMismatch {
                size: 7,
                expected: 6
            }
        );
        // Reserved flag bit 2.
        let err = parse(&[0x06, 0x04, 0x78, 0x00, 0x05, 0x00]).expect_err("reserved");
        assert_eq!(
            (err.offset, err.reason),
            (1, ParseErrorKind::ReservedFlags { bits: 0x04 })
        );
        // A good record followed by a truncated one: the whole frame fails,
        // at the second record's offset.
        let err = parse(&[0x06, 0x00, 0x78, 0x00, 0x05, 0x00, 0x06, 0x00]).expect_err("second");
        assert_eq!(err.offset, 6);
    }

    fn shape(buf: &mut [u8]) {
        // A size byte that matches the rest, a flags byte without reserved
        // bits.
        let len = buf.len().min(255) as u8;
        if let Some(flags) = buf.get_mut(1) {
            *flags &= DEFINED;
        }
        if let Some(size) = buf.first_mut() {
            *size = len;
        }
    }

    #[test]
    fn fuzz_never_panics() {
        let ok = fuzz::never_panics(0x2AA7, 32, 20_000, shape, parse);
        assert!(ok > 0, "the fuzzer should reach valid records too");
    }
}
