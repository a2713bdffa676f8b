//! Dates CGM records. A record carries only its minutes since the sensor
//! session started; the session start itself is in another characteristic
//! (CGM Session Start Time) that not every sensor keeps right. The hub
//! instead estimates the start from what it sees: the newest record of a
//! live notification was measured about when it arrived, so
//! `arrival − offset` is a start estimate. Notifications are a little late,
//! never early, so the earliest estimate is the best one; keeping it gives
//! every record of a session one consistent time line.
//!
//! An estimate later than the kept start by more than [`NEW_SESSION`]
//! cannot be lateness: the sensor started a new session (whatever offset it
//! starts from, even if the hub missed the moment it did) and the line
//! starts over. An older record sent again lands on the current line.
//!
//! Estimates are taken on the monotonic clock, so setting the wall clock
//! (a Pi without a real-time clock boots with a stale time until NTP
//! answers) does not move the session start; records are converted to wall
//! time when they are dated, with the clock as it is then.

use std::time::{Duration, Instant, SystemTime};

const NANOS_PER_MINUTE: i128 = 60_000_000_000;

/// How much later than the kept start an estimate may be before it means a
/// new session. Notification latency is seconds, and a sensor's clock
/// drifts under a minute over a 14-day session.
pub(crate) const NEW_SESSION: Duration = Duration::from_secs(30 * 60);

#[derive(Debug)]
pub(crate) struct CgmClock {
    /// The monotonic origin the session start is counted from.
    origin: Instant,
    /// Estimated session start, nanoseconds after `origin` (negative when
    /// the session began before it: sensors run for days).
    start: Option<i128>,
}

impl CgmClock {
    pub(crate) fn new(origin: Instant) -> Self {
        CgmClock {
            origin,
            start: None,
        }
    }

    /// Takes in a notification that arrived at `arrived` whose newest
    /// record has `newest_offset` minutes.
    pub(crate) fn observe(&mut self, arrived: Instant, newest_offset: u16) {
        let estimate = self.since_origin(arrived) - i128::from(newest_offset) * NANOS_PER_MINUTE;
        self.start = Some(match self.start {
            Some(start) if estimate - start <= NEW_SESSION.as_nanos() as i128 => {
                start.min(estimate)
            }
            // First notification, or the sensor began a new session.
            _ => estimate,
        });
    }

    /// When the record with `offset` minutes was measured, in wall-clock
    /// time as `now` (wall and monotonic, read together) has it; `None`
    /// before any notification was observed.
    pub(crate) fn date(&self, offset: u16, now: (SystemTime, Instant)) -> Option<SystemTime> {
        let measured = self.start? + i128::from(offset) * NANOS_PER_MINUTE;
        let age = self.since_origin(now.1) - measured;
        let magnitude = Duration::from_nanos(u64::try_from(age.unsigned_abs()).ok()?);
        if age >= 0 {
            now.0.checked_sub(magnitude)
        } else {
            now.0.checked_add(magnitude)
        }
    }

    fn since_origin(&self, at: Instant) -> i128 {
        match at.checked_duration_since(self.origin) {
            Some(d) => d.as_nanos() as i128,
            None => -(self.origin.duration_since(at).as_nanos() as i128),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    /// A fixed wall-clock origin and a monotonic one read together.
    fn clocks() -> (SystemTime, Instant) {
        (
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_856_000),
            Instant::now(),
        )
    }

    #[test]
    fn records_keep_one_time_line_across_notifications() {
        let (wall, mono) = clocks();
        let at = |d: Duration| (wall + d, mono + d);
        let mut clock = CgmClock::new(mono);
        // Offset 600 arrives 20 s late...
        let first = at(600 * MIN + Duration::from_secs(20));
        clock.observe(first.1, 600);
        assert_eq!(clock.date(600, first), Some(first.0));
        // ...then 605 and 610, packed, right on time: the start estimate
        // improves by the 20 s, and every record sits on it.
        let second = at(610 * MIN);
        clock.observe(second.1, 610);
        assert_eq!(clock.date(605, second), Some(wall + 605 * MIN));
        assert_eq!(clock.date(610, second), Some(wall + 610 * MIN));
        // The next one, alone and 3 s late, sits on the line.
        let third = at(615 * MIN + Duration::from_secs(3));
        clock.observe(third.1, 615);
        assert_eq!(clock.date(615, third), Some(wall + 615 * MIN));
    }

    #[test]
    fn a_new_session_starts_over_and_a_wall_clock_step_moves_nothing() {
        let (wall, mono) = clocks();
        let mut clock = CgmClock::new(mono);
        clock.observe(mono + 600 * MIN, 600);
        // NTP sets the wall clock an hour forward: the records keep their
        // place on the session's line, read on the corrected clock.
        let stepped = (wall + 665 * MIN, mono + 605 * MIN);
        clock.observe(stepped.1, 605);
        assert_eq!(clock.date(605, stepped), Some(stepped.0));
        assert_eq!(clock.date(600, stepped), Some(stepped.0 - 5 * MIN));
        // An older record sent again lands on the line.
        clock.observe(mono + 606 * MIN, 602);
        assert_eq!(
            clock.date(602, (wall + 666 * MIN, mono + 606 * MIN)),
            Some(wall + 662 * MIN)
        );
        // The sensor was replaced: offsets start again.
        let replaced = (wall + 700 * MIN, mono + 700 * MIN);
        clock.observe(replaced.1, 5);
        assert_eq!(clock.date(5, replaced), Some(replaced.0));
        assert_eq!(clock.date(0, replaced), Some(replaced.0 - 5 * MIN));
        // Replaced again while the hub was away for longer than the last
        // session ran: the new offset is higher than any before, yet the
        // estimate says new session.
        let later = (wall + 900 * MIN, mono + 900 * MIN);
        clock.observe(later.1, 60);
        assert_eq!(clock.date(60, later), Some(later.0));
    }

    #[test]
    fn a_session_older_than_the_origin_and_nothing_before_the_first_record() {
        let (wall, mono) = clocks();
        let mut clock = CgmClock::new(mono);
        assert_eq!(clock.date(5, (wall, mono)), None);
        // The hub started five days into a sensor's session.
        clock.observe(mono, 7200);
        assert_eq!(clock.date(7200, (wall, mono)), Some(wall));
        assert_eq!(clock.date(0, (wall, mono)), Some(wall - 7200 * MIN));
    }
}
