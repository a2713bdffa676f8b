//! The Bluetooth Date Time layout (characteristic 0x2A08), 7 octets:
//! Year (uint16, 1582..=9999, 0 = unknown), Month (uint8, 1..=12, 0 =
//! unknown), Day (uint8, 1..=31, 0 = unknown), Hours (0..=23), Minutes
//! (0..=59), Seconds (0..=59). It carries no time zone: it is the device's
//! local clock, which the hub reconciles with its own receive time.

use super::ParseErrorKind;

/// A device's wall-clock time as sent; 0 in year, month or day means
/// "not known" per the specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DateTime {
    /// 1582..=9999, or 0 when unknown.
    pub year: u16,
    /// 1..=12, or 0 when unknown.
    pub month: u8,
    /// 1..=31, or 0 when unknown.
    pub day: u8,
    /// 0..=23.
    pub hours: u8,
    /// 0..=59.
    pub minutes: u8,
    /// 0..=59.
    pub seconds: u8,
}

impl DateTime {
    pub(crate) fn from_bytes(b: [u8; 7]) -> Result<DateTime, ParseErrorKind> {
        let dt = DateTime {
            year: u16::from_le_bytes([b[0], b[1]]),
            month: b[2],
            day: b[3],
            hours: b[4],
            minutes: b[5],
            seconds: b[6],
        };
        let check = |field, value: u32, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(ParseErrorKind::OutOfRange { field, value })
            }
        };
        check(
            "year",
            dt.year.into(),
            dt.year == 0 || (1582..=9999).contains(&dt.year),
        )?;
        check("month", dt.month.into(), dt.month <= 12)?;
        check("day", dt.day.into(), dt.day <= 31)?;
        check("hours", dt.hours.into(), dt.hours <= 23)?;
        check("minutes", dt.minutes.into(), dt.minutes <= 59)?;
        check("seconds", dt.seconds.into(), dt.seconds <= 59)?;
        Ok(dt)
    }

    /// The 7 octets of this time, for simulated devices and tests.
    pub fn to_bytes(self) -> [u8; 7] {
        let [y0, y1] = self.year.to_le_bytes();
        [
            y0,
            y1,
            self.month,
            self.day,
            self.hours,
            self.minutes,
            self.seconds,
        ]
    }

    /// True when year, month and day are all known.
    pub fn is_complete(self) -> bool {
        self.year != 0 && self.month != 0 && self.day != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_validates() {
        // 2024-03-15 07:30:05: 0x07E8 = 2024.
        let dt = DateTime::from_bytes([0xE8, 0x07, 3, 15, 7, 30, 5]).expect("valid");
        assert_eq!((dt.year, dt.month, dt.day), (2024, 3, 15));
        assert_eq!((dt.hours, dt.minutes, dt.seconds), (7, 30, 5));
        assert!(dt.is_complete());
        assert_eq!(DateTime::from_bytes(dt.to_bytes()), Ok(dt));
        // Unknown date parts are allowed.
        let unknown = DateTime::from_bytes([0, 0, 0, 0, 12, 0, 0]).expect("valid");
        assert!(!unknown.is_complete());
        assert_eq!(
            DateTime::from_bytes([0xE8, 0x07, 13, 1, 0, 0, 0]),
            Err(ParseErrorKind::OutOfRange {
                field: "month",
                value: 13
            })
        );
        assert_eq!(
            DateTime::from_bytes([0x10, 0x00, 1, 1, 0, 0, 0]),
            Err(ParseErrorKind::OutOfRange {
                field: "year",
                value: 16
            })
        );
        assert_eq!(
            DateTime::from_bytes([0xE8, 0x07, 1, 1, 24, 0, 0]),
            Err(ParseErrorKind::OutOfRange {
                field: "hours",
                value: 24
            })
        );
        assert_eq!(
            DateTime::from_bytes([0xE8, 0x07, 1, 1, 0, 60, 0]),
            Err(ParseErrorKind::OutOfRange {
                field: "minutes",
                value: 60
            })
        );
        assert_eq!(
            DateTime::from_bytes([0xE8, 0x07, 1, 32, 0, 0, 0]),
            Err(ParseErrorKind::OutOfRange {
                field: "day",
                value: 32
            })
        );
    }
}
