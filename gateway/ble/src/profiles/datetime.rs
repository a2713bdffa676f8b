//! The Bluetooth Date Time layout (characteristic 0x2A08), 7 octets:
//! Year (uint16, 1582..=9999, 0 = unknown), Month (uint8, 1..=12, 0 =
//! unknown), Day (uint8, 1..=31, 0 = unknown), Hours (0..=23), Minutes
//! (0..=59), Seconds (0..=59). It carries no time zone: it is the device's
//! local clock, which the hub reconciles with its own receive time.
//!
//! A date whose fields are out of range (a year of 16, a month of 13, an
//! hour of 24) does not make the parsers refuse the reading it dates: a
//! device with a broken clock still measured something. The parsers keep the
//! time as sent ([`DateTime::is_valid`] says whether it is possible), and
//! the hub stores such a reading with its own receive time, flagged
//! `time_fault` (docs/BLE.md).

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
    /// The fields as sent, whatever they hold.
    pub fn decode(b: [u8; 7]) -> DateTime {
        DateTime {
            year: u16::from_le_bytes([b[0], b[1]]),
            month: b[2],
            day: b[3],
            hours: b[4],
            minutes: b[5],
            seconds: b[6],
        }
    }

    /// Decodes and checks each field's range.
    pub fn from_bytes(b: [u8; 7]) -> Result<DateTime, ParseErrorKind> {
        let dt = Self::decode(b);
        dt.check().map(|()| dt)
    }

    /// Whether every field is within its range (unknown parts allowed).
    pub fn is_valid(self) -> bool {
        self.check().is_ok()
    }

    /// The first field out of its range, if any.
    pub fn check(self) -> Result<(), ParseErrorKind> {
        let dt = self;
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
        check("seconds", dt.seconds.into(), dt.seconds <= 59)
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

    /// Seconds since 1970-01-01T00:00:00 of these fields read as UTC;
    /// `None` when the date is not known or cannot be (February 30th).
    pub fn unix_seconds(self) -> Option<i64> {
        if !self.is_complete()
            || !self.is_valid()
            || self.day > days_in_month(i64::from(self.year), self.month)
        {
            return None;
        }
        let days = days_from_civil(i64::from(self.year), self.month, self.day);
        Some(
            days * 86_400
                + i64::from(self.hours) * 3600
                + i64::from(self.minutes) * 60
                + i64::from(self.seconds),
        )
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`; exact for every year the profiles can carry).
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let month = i64::from(month);
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_of_known_dates_and_none_for_impossible_ones() {
        let at = |year, month, day, hours, minutes, seconds| DateTime {
            year,
            month,
            day,
            hours,
            minutes,
            seconds,
        };
        assert_eq!(at(1970, 1, 1, 0, 0, 0).unix_seconds(), Some(0));
        assert_eq!(
            at(2024, 3, 15, 7, 30, 0).unix_seconds(),
            Some(1_710_487_800)
        );
        assert_eq!(at(2024, 2, 29, 0, 0, 0).unix_seconds(), Some(1_709_164_800));
        assert_eq!(
            at(2023, 2, 29, 0, 0, 0).unix_seconds(),
            None,
            "not a leap year"
        );
        assert_eq!(at(2024, 4, 31, 0, 0, 0).unix_seconds(), None);
        assert_eq!(at(2024, 13, 1, 0, 0, 0).unix_seconds(), None);
        assert_eq!(at(0, 3, 15, 7, 30, 0).unix_seconds(), None, "year unknown");
    }

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
