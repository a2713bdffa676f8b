//! Timestamps in data files: RFC 3339 / ISO 8601 or unix seconds/milliseconds.
//! Written here because the whole need is one format and a calendar formula.

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn number(text: &str, what: &str) -> Result<i64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad {what} {text:?}"));
    }
    text.parse().map_err(|_| format!("bad {what} {text:?}"))
}

/// Parses `2026-01-05T07:30:00Z`, `2026-01-05 07:30:00.123+01:00`, a date and
/// time without zone (taken as UTC), or an integer: unix seconds if below
/// 10^11, else unix milliseconds.
pub fn parse_timestamp_ms(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(n) = text.parse::<i64>() {
        return Ok(if n.abs() < 100_000_000_000 {
            n * 1000
        } else {
            n
        });
    }
    if text.len() < 16 || !text.is_ascii() {
        return Err(format!("unrecognised timestamp {text:?}"));
    }
    let (date, rest) = text.split_at(10);
    let mut parts = date.split('-');
    let (Some(y), Some(mo), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("bad date in {text:?}"));
    };
    let (year, month, day) = (number(y, "year")?, number(mo, "month")?, number(d, "day")?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(format!("bad date in {text:?}"));
    }
    let rest = rest
        .strip_prefix('T')
        .or_else(|| rest.strip_prefix('t'))
        .or_else(|| rest.strip_prefix(' '))
        .ok_or_else(|| format!("expected 'T' after the date in {text:?}"))?;
    // Split the zone off: Z, +hh:mm, -hh:mm, +hhmm or nothing.
    let (clock, offset_min) =
        if let Some(clock) = rest.strip_suffix('Z').or_else(|| rest.strip_suffix('z')) {
            (clock, 0)
        } else if let Some(pos) = rest.rfind(['+', '-']) {
            let (clock, zone) = rest.split_at(pos);
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 {
                return Err(format!("bad zone offset in {text:?}"));
            }
            let hours = number(&digits[..2], "zone hour")?;
            let minutes = number(&digits[2..], "zone minute")?;
            (clock, sign * (hours * 60 + minutes))
        } else {
            (rest, 0)
        };
    let mut hms = clock.split(':');
    let hour = number(hms.next().unwrap_or(""), "hour")?;
    let minute = number(hms.next().unwrap_or(""), "minute")?;
    let (second, millis) = match hms.next() {
        None => (0, 0),
        Some(sec) => {
            let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
            let mut millis = 0;
            if !frac.is_empty() {
                let digits: String = frac.chars().chain("000".chars()).take(3).collect();
                millis = number(&digits, "fraction")?;
            }
            (number(whole, "second")?, millis)
        }
    };
    if hms.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return Err(format!("bad time of day in {text:?}"));
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    Ok(seconds * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::parse_timestamp_ms;

    #[test]
    fn parses_rfc3339_and_unix() {
        assert_eq!(parse_timestamp_ms("1970-01-01T00:00:00Z"), Ok(0));
        // 2026-01-05T07:30:00Z, checked with `date -u -d ... +%s`.
        assert_eq!(
            parse_timestamp_ms("2026-01-05T07:30:00Z"),
            Ok(1_767_598_200_000)
        );
        assert_eq!(
            parse_timestamp_ms("2026-01-05T08:30:00+01:00"),
            Ok(1_767_598_200_000)
        );
        assert_eq!(
            parse_timestamp_ms("2026-01-05 07:30:00.250"),
            Ok(1_767_598_200_250)
        );
        assert_eq!(
            parse_timestamp_ms("2026-01-05T07:30"),
            Ok(1_767_598_200_000)
        );
        assert_eq!(parse_timestamp_ms("1767598200"), Ok(1_767_598_200_000));
        assert_eq!(parse_timestamp_ms("1767598200000"), Ok(1_767_598_200_000));
        assert_eq!(
            parse_timestamp_ms("2000-03-01T00:00:00Z"),
            Ok(951_868_800_000)
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00Z",
            "2026-01-05X07:30:00Z",
            "2026-01-05T25:00:00Z",
            "2026-01-05T07:30:00+1",
        ] {
            assert!(parse_timestamp_ms(bad).is_err(), "{bad}");
        }
    }
}
