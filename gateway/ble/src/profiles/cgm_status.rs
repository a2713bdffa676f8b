//! CGM Status (0x2AA9), Continuous Glucose Monitoring Service 1.0.1 §3.5,
//! read by the hub when a CGM connects:
//!
//! | octets | field                                       | present when |
//! |--------|---------------------------------------------|--------------|
//! | 2      | Time Offset (uint16, minutes since start)   | always       |
//! | 3      | CGM Status (24 bits: Status, Cal/Temp, Warning octets) | always |
//! | 2      | E2E-CRC (uint16)                            | E2E-CRC supported |
//!
//! The status bits are those of a CGM Measurement's annunciation (see
//! [`super::cgm::CgmSensorStatus`]); here all three octets are always sent.

use super::cgm::CgmSensorStatus;
use super::reader::Reader;
use super::{ParseError, Profile};

/// The sensor's status now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgmStatus {
    /// Minutes since the session started, as of this status.
    pub time_offset_minutes: u16,
    /// The status bits.
    pub status: CgmSensorStatus,
    /// Whether it carried an E2E-CRC (which then matched).
    pub crc_checked: bool,
}

/// Parses a CGM Status read.
pub fn parse(frame: &[u8]) -> Result<CgmStatus, ParseError> {
    let mut r = Reader::new(Profile::CgmStatus, frame)?;
    let time_offset_minutes = r.u16("time offset")?;
    let bits = r.u24("status")?;
    let [status, cal_temp, warning, _] = bits.to_le_bytes();
    let crc_checked = crc_if_present(&mut r)?;
    r.finish()?;
    Ok(CgmStatus {
        time_offset_minutes,
        status: CgmSensorStatus {
            status: Some(status),
            cal_temp: Some(cal_temp),
            warning: Some(warning),
        },
        crc_checked,
    })
}

/// Checks an optional trailing E2E-CRC over everything before it: the frame
/// is `fields` long without one, `fields + 2` with.
pub(crate) fn crc_if_present(r: &mut Reader<'_>) -> Result<bool, ParseError> {
    if r.remaining() != 2 {
        return Ok(false);
    }
    r.e2e_crc(0)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crc::crc16_mcrf4xx;
    use crate::profiles::ParseErrorKind;
    use crate::profiles::fuzz;

    #[test]
    fn a_status_with_and_without_crc() {
        // Offset 600 min, status 0x01 (session stopped), cal/temp 0x08
        // (calibration required), warning 0x00.
        let plain = [0x58, 0x02, 0x01, 0x08, 0x00];
        let s = parse(&plain).expect("valid");
        assert_eq!(s.time_offset_minutes, 600);
        assert!(s.status.session_stopped());
        assert!(s.status.calibration_required());
        assert!(!s.crc_checked);
        let mut with_crc = plain.to_vec();
        with_crc.extend(crc16_mcrf4xx(&plain).to_le_bytes());
        assert!(parse(&with_crc).expect("valid").crc_checked);
        with_crc[0] ^= 1;
        assert!(matches!(
            parse(&with_crc).expect_err("crc").reason,
            ParseErrorKind::CrcMismatch { .. }
        ));
        assert!(parse(&plain[..4]).is_err());
        assert!(parse(&[0, 0, 0, 0, 0, 0]).is_err(), "one stray byte");
    }

    #[test]
    fn fuzz_never_panics() {
        let ok = fuzz::never_panics(0x2AA9, 12, 20_000, |_| {}, parse);
        assert!(ok > 0);
    }
}
