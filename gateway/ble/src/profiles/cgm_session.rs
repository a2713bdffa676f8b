//! CGM Session Start Time (0x2AAA) and CGM Session Run Time (0x2AAB),
//! Continuous Glucose Monitoring Service 1.0.1 §3.6–3.7, read by the hub
//! when a CGM connects. A CGM record carries only its minutes since the
//! session started; the start time (with its time zone) dates them, and the
//! run time bounds how long a session can last.
//!
//! Session Start Time:
//!
//! | octets | field                                            |
//! |--------|--------------------------------------------------|
//! | 7      | Session Start Time (Date Time, local)            |
//! | 1      | Time Zone (sint8, 15-minute steps, −48..=56; −128 unknown) |
//! | 1      | DST Offset (uint8: 0, 2, 4, 8 quarter hours; 255 unknown) |
//! | 2      | E2E-CRC (when supported)                         |
//!
//! Session Run Time: Run Time (uint16, hours), then E2E-CRC when supported.

use super::cgm_status::crc_if_present;
use super::reader::Reader;
use super::{DateTime, ParseError, ParseErrorKind, Profile};

/// When the sensor session started, by the sensor's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgmSessionStart {
    /// Local time of the start, as sent (check [`DateTime::is_valid`]).
    pub local: DateTime,
    /// Offset of local standard time from UTC, in minutes; `None` unknown.
    pub time_zone_minutes: Option<i16>,
    /// Daylight-saving offset in minutes; `None` unknown.
    pub dst_minutes: Option<u16>,
    /// Whether it carried an E2E-CRC (which then matched).
    pub crc_checked: bool,
}

impl CgmSessionStart {
    /// Minutes to subtract from the local start to get UTC, when both the
    /// zone and the DST offset are known.
    pub fn utc_offset_minutes(&self) -> Option<i32> {
        Some(i32::from(self.time_zone_minutes?) + i32::from(self.dst_minutes?))
    }
}

/// Parses a CGM Session Start Time read.
pub fn parse_start(frame: &[u8]) -> Result<CgmSessionStart, ParseError> {
    let mut r = Reader::new(Profile::CgmSessionStartTime, frame)?;
    let local = r.date_time("session start time")?;
    let zone_at = r.offset();
    let zone = r.u8("time zone")? as i8;
    let time_zone_minutes = match zone {
        -128 => None,
        -48..=56 => Some(i16::from(zone) * 15),
        other => {
            return Err(r.error_at(
                zone_at,
                ParseErrorKind::OutOfRange {
                    field: "time zone",
                    value: u32::from(other as u8),
                },
            ));
        }
    };
    let dst_at = r.offset();
    let dst_minutes = match r.u8("DST offset")? {
        255 => None,
        quarters @ (0 | 2 | 4 | 8) => Some(u16::from(quarters) * 15),
        other => {
            return Err(r.error_at(
                dst_at,
                ParseErrorKind::ReservedValue {
                    field: "DST offset",
                    value: other.into(),
                },
            ));
        }
    };
    let crc_checked = crc_if_present(&mut r)?;
    r.finish()?;
    Ok(CgmSessionStart {
        local,
        time_zone_minutes,
        dst_minutes,
        crc_checked,
    })
}

/// Parses a CGM Session Run Time read: the session's expected length in hours.
pub fn parse_run_time(frame: &[u8]) -> Result<u16, ParseError> {
    let mut r = Reader::new(Profile::CgmSessionRunTime, frame)?;
    let hours = r.u16("run time")?;
    crc_if_present(&mut r)?;
    r.finish()?;
    Ok(hours)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crc::crc16_mcrf4xx;
    use crate::profiles::fuzz;

    #[test]
    fn a_start_time_with_zone_and_dst() {
        // 2025-11-20 08:30:00 local, zone +4 (60 min), DST 4 (60 min).
        let frame = [0xE9, 0x07, 11, 20, 8, 30, 0, 4, 4];
        let start = parse_start(&frame).expect("valid");
        assert_eq!((start.local.year, start.local.hours), (2025, 8));
        assert_eq!(start.time_zone_minutes, Some(60));
        assert_eq!(start.dst_minutes, Some(60));
        assert_eq!(start.utc_offset_minutes(), Some(120));
        // West of UTC (−5 h = −20 steps), zone and DST unknown elsewhere.
        let west = parse_start(&[0xE9, 0x07, 11, 20, 8, 30, 0, 0xEC, 0]).expect("valid");
        assert_eq!(west.time_zone_minutes, Some(-300));
        let unknown = parse_start(&[0xE9, 0x07, 11, 20, 8, 30, 0, 0x80, 0xFF]).expect("valid");
        assert_eq!(unknown.utc_offset_minutes(), None);
        let mut with_crc = frame.to_vec();
        with_crc.extend(crc16_mcrf4xx(&frame).to_le_bytes());
        assert!(parse_start(&with_crc).expect("valid").crc_checked);
    }

    #[test]
    fn start_time_refusals() {
        // Zone 60 steps (15 h) is out of range; DST 3 is reserved.
        assert!(parse_start(&[0xE9, 0x07, 11, 20, 8, 30, 0, 60, 0]).is_err());
        assert!(matches!(
            parse_start(&[0xE9, 0x07, 11, 20, 8, 30, 0, 0, 3])
                .expect_err("dst")
                .reason,
            ParseErrorKind::ReservedValue { .. }
        ));
        assert!(
            parse_start(&[0xE9, 0x07, 11, 20, 8, 30, 0, 0]).is_err(),
            "truncated"
        );
        // An impossible date is kept as sent, marked invalid.
        let bad = parse_start(&[0xE9, 0x07, 13, 20, 8, 30, 0, 0, 0]).expect("kept");
        assert!(!bad.local.is_valid());
    }

    #[test]
    fn run_time() {
        assert_eq!(parse_run_time(&[0x50, 0x01]), Ok(336));
        let mut with_crc = vec![0x50, 0x01];
        with_crc.extend(crc16_mcrf4xx(&[0x50, 0x01]).to_le_bytes());
        assert_eq!(parse_run_time(&with_crc), Ok(336));
        assert!(parse_run_time(&[0x50]).is_err());
        assert!(parse_run_time(&[0x50, 0x01, 0x00]).is_err());
    }

    #[test]
    fn fuzz_never_panics() {
        assert!(
            fuzz::never_panics(
                0x2AAA,
                14,
                20_000,
                |b| fuzz::plausible_date(b, 0),
                parse_start
            ) > 0
        );
        assert!(fuzz::never_panics(0x2AAB, 6, 5_000, |_| {}, parse_run_time) > 0);
    }
}
