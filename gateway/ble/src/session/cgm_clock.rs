//! Dates CGM records. A record carries only its minutes since the sensor
//! session started; the session start itself is in another characteristic
//! (CGM Session Start Time), which the session reads at each connect, with
//! the session's run time. Not every sensor keeps its clock right, so the
//! hub also estimates the start from what it sees: the newest record of a
//! live notification was measured about when it arrived, so
//! `arrival − offset` is a start estimate. Notifications are a little late,
//! never early, so the earliest estimate is the best one; keeping it gives
//! every record of a session one consistent time line.
//!
//! A start the sensor reports is used when it agrees with the estimate
//! within [`NEW_SESSION`] (or before any notification: it dates records a
//! sensor sends on connect, before the hub could estimate anything); it is
//! exact where the estimate carries notification latency. A reported start
//! that disagrees means a wrong sensor clock and is not used. The run time
//! bounds a session: arrivals more than an hour past the start plus the run
//! time belong to a new one.
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

/// Past the run time by this much, an arrival belongs to a new session.
const RUN_TIME_GRACE: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub(crate) struct CgmClock {
    /// The monotonic origin the session start is counted from.
    origin: Instant,
    /// Session start, nanoseconds after `origin` (negative when the session
    /// began before it: sensors run for days).
    start: Option<i128>,
    /// `start` is the sensor's own, not an estimate.
    reported: bool,
    /// The session's run time, when the sensor said.
    run_time: Option<Duration>,
}

impl CgmClock {
    pub(crate) fn new(origin: Instant) -> Self {
        CgmClock {
            origin,
            start: None,
            reported: false,
            run_time: None,
        }
    }

    /// Takes in the session as the sensor reports it at connect: its start
    /// (UTC wall time) and run time. Returns false when a reported start
    /// was not used because it disagrees with the arrivals.
    pub(crate) fn set_session(
        &mut self,
        start: Option<SystemTime>,
        run_time: Option<Duration>,
        now: (SystemTime, Instant),
    ) -> bool {
        if run_time.is_some() {
            self.run_time = run_time;
        }
        let Some(start) = start else {
            return true;
        };
        let wall_offset = match now.0.duration_since(start) {
            Ok(ago) => -(ago.as_nanos() as i128),
            Err(ahead) => ahead.duration().as_nanos() as i128,
        };
        let reported = self.since_origin(now.1) + wall_offset;
        let tolerance = NEW_SESSION.as_nanos() as i128;
        match self.start {
            Some(estimate) if (reported - estimate).abs() > tolerance => false,
            _ => {
                self.start = Some(reported);
                self.reported = true;
                true
            }
        }
    }

    /// Takes in a notification that arrived at `arrived` whose newest
    /// record has `newest_offset` minutes.
    pub(crate) fn observe(&mut self, arrived: Instant, newest_offset: u16) {
        let at = self.since_origin(arrived);
        let estimate = at - i128::from(newest_offset) * NANOS_PER_MINUTE;
        let tolerance = NEW_SESSION.as_nanos() as i128;
        let over = |start: i128| match self.run_time {
            Some(run) => at - start > (run + RUN_TIME_GRACE).as_nanos() as i128,
            None => false,
        };
        self.start = Some(match self.start {
            // The sensor began a new session (or the old one ran out).
            Some(start) if estimate - start > tolerance || over(start) => {
                self.reported = false;
                estimate
            }
            // The sensor's own start stands unless the arrivals contradict it.
            Some(start) if self.reported => {
                if start - estimate > tolerance {
                    self.reported = false;
                    estimate
                } else {
                    start
                }
            }
            Some(start) => start.min(estimate),
            None => estimate,
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
mod session_tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_reported_start_dates_records_before_any_notification_and_is_exact() {
        let origin = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let mut clock = CgmClock::new(origin);
        let start = wall - 90 * MINUTE;
        assert!(clock.set_session(Some(start), Some(14 * 24 * 60 * MINUTE), (wall, origin)));
        assert_eq!(clock.date(30, (wall, origin)), Some(start + 30 * MINUTE));
        // A notification 40 s late agrees within tolerance: the exact start stays.
        clock.observe(origin + Duration::from_secs(40), 90);
        assert_eq!(clock.date(30, (wall, origin)), Some(start + 30 * MINUTE));
    }

    #[test]
    fn a_reported_start_far_from_the_arrivals_is_not_used() {
        let origin = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let mut clock = CgmClock::new(origin);
        clock.observe(origin, 120);
        // The sensor claims its session began three hours later than it did.
        assert!(!clock.set_session(Some(wall + 60 * MINUTE), None, (wall, origin)));
        assert_eq!(clock.date(120, (wall, origin)), Some(wall));
    }

    #[test]
    fn arrivals_past_the_run_time_start_a_new_session() {
        let origin = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let mut clock = CgmClock::new(origin);
        assert!(clock.set_session(Some(wall), Some(10 * MINUTE), (wall, origin)));
        // 20 minutes in, a record with offset 5 cannot be the old session's
        // (whose run time ended at minute 10) even though its estimate is
        // within the tolerance of a new-session jump.
        let later = origin + 80 * MINUTE;
        clock.observe(later, 5);
        let now = (wall + 80 * MINUTE, later);
        assert_eq!(clock.date(5, now), Some(wall + 80 * MINUTE));
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
