//! A patient's recent CGM readings, bounded, and the 5-minute grid the
//! models and AR2 read from it.
//!
//! Sensors report every 1, 3, 5 or 15 minutes, skip readings and jump their
//! clocks. Every model input is therefore read off this history by time (with
//! linear interpolation), never by index, so the same features mean the same
//! thing at every cadence.

use std::collections::VecDeque;

pub const MINUTE_MS: i64 = 60_000;
/// How far back any feature looks, plus a margin.
const RETAIN_MS: i64 = 130 * MINUTE_MS;
/// Hard cap on stored points (a 1-minute sensor fills 130).
const CAPACITY: usize = 160;
/// Two readings further apart than this are not interpolated between: the
/// glucose between them is unknown. Wide enough for 15-minute sensors.
pub const MAX_INTERPOLATION_GAP_MS: i64 = 20 * MINUTE_MS;
/// Readings this far apart are a gap even for slow sensors.
const MIN_GAP_MS: i64 = 20 * MINUTE_MS;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CgmPoint {
    pub at_ms: i64,
    pub mg_dl: f32,
}

/// How a new reading relates in time to the previous one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrival {
    /// The first reading, or the first after the history was cleared.
    First,
    /// The next reading, `dt_ms` after the previous one.
    Next { dt_ms: i64 },
    /// Readings are missing: the previous one is `dt_ms` old.
    AfterGap { dt_ms: i64 },
    /// The device clock went back by `back_ms`; the history was cleared
    /// because old and new times no longer compare.
    ClockWentBack { back_ms: i64 },
    /// Same timestamp as the previous reading: not stored.
    Duplicate,
}

#[derive(Debug, Clone, Default)]
pub struct CgmHistory {
    points: VecDeque<CgmPoint>,
}

impl CgmHistory {
    pub fn new() -> Self {
        CgmHistory {
            points: VecDeque::with_capacity(CAPACITY),
        }
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub fn last(&self) -> Option<CgmPoint> {
        self.points.back().copied()
    }

    /// The reading before the newest one.
    pub fn previous(&self) -> Option<CgmPoint> {
        self.points
            .len()
            .checked_sub(2)
            .and_then(|i| self.points.get(i).copied())
    }

    pub fn points(&self) -> impl DoubleEndedIterator<Item = &CgmPoint> + ExactSizeIterator {
        self.points.iter()
    }

    pub fn clear(&mut self) {
        self.points.clear();
    }

    /// Readings before the newest with the newest one's value, and the
    /// milliseconds from the first of them to the newest: how long the
    /// sensor has repeated itself.
    pub fn repeated_run(&self) -> (usize, i64) {
        let Some(now) = self.last() else {
            return (0, 0);
        };
        let mut repeats = 0;
        let mut since = now.at_ms;
        for p in self.points.iter().rev().skip(1) {
            if p.mg_dl != now.mg_dl {
                break;
            }
            repeats += 1;
            since = p.at_ms;
        }
        (repeats, now.at_ms - since)
    }

    /// Heap bytes held (for the memory benchmark).
    pub fn heap_bytes(&self) -> usize {
        self.points.capacity() * std::mem::size_of::<CgmPoint>()
    }

    /// Median interval between recent readings: the sensor's cadence.
    pub fn cadence_ms(&self) -> Option<i64> {
        let mut dts: Vec<i64> = self
            .points
            .iter()
            .rev()
            .take(13)
            .collect::<Vec<_>>()
            .windows(2)
            .map(|w| w[0].at_ms - w[1].at_ms)
            .filter(|dt| *dt > 0)
            .collect();
        if dts.is_empty() {
            return None;
        }
        dts.sort_unstable();
        Some(dts[dts.len() / 2])
    }

    /// Gap threshold: 2.5 missed cadences, at least 20 minutes.
    pub fn gap_threshold_ms(&self) -> i64 {
        let cadence = self.cadence_ms().unwrap_or(5 * MINUTE_MS);
        MIN_GAP_MS.max(cadence * 5 / 2)
    }

    /// Stores a reading and says how it arrived. Never panics; a duplicate is
    /// reported and dropped, a backwards clock clears the history.
    pub fn admit(&mut self, point: CgmPoint) -> Arrival {
        let arrival = match self.last() {
            None => Arrival::First,
            Some(last) => {
                let dt_ms = point.at_ms.saturating_sub(last.at_ms);
                if dt_ms == 0 {
                    return Arrival::Duplicate;
                } else if dt_ms < 0 {
                    self.points.clear();
                    Arrival::ClockWentBack {
                        back_ms: dt_ms.saturating_neg(),
                    }
                } else if dt_ms > self.gap_threshold_ms() {
                    Arrival::AfterGap { dt_ms }
                } else {
                    Arrival::Next { dt_ms }
                }
            }
        };
        self.points.push_back(point);
        let horizon = point.at_ms.saturating_sub(RETAIN_MS);
        while self.points.len() > CAPACITY || self.points.front().is_some_and(|p| p.at_ms < horizon)
        {
            self.points.pop_front();
        }
        arrival
    }

    /// Glucose at `at_ms`, linearly interpolated between the readings around
    /// it; `None` outside the history or across a hole in it.
    pub fn value_at(&self, at_ms: i64) -> Option<f32> {
        let after = self.points.partition_point(|p| p.at_ms < at_ms);
        let next = self.points.get(after)?;
        if next.at_ms == at_ms {
            return Some(next.mg_dl);
        }
        let prev = self.points.get(after.checked_sub(1)?)?;
        let span = next.at_ms - prev.at_ms;
        if span > MAX_INTERPOLATION_GAP_MS || span <= 0 {
            return None;
        }
        let w = (at_ms - prev.at_ms) as f32 / span as f32;
        Some(prev.mg_dl + w * (next.mg_dl - prev.mg_dl))
    }

    /// Values at now, now-5 min, ..., now-5k min (index 0 = newest reading).
    /// Missing grid points are `None`.
    pub fn grid(&self, steps: usize) -> Vec<Option<f32>> {
        let Some(last) = self.last() else {
            return vec![None; steps + 1];
        };
        (0..=steps as i64)
            .map(|k| self.value_at(last.at_ms - k * 5 * MINUTE_MS))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(min: i64, v: f32) -> CgmPoint {
        CgmPoint {
            at_ms: min * MINUTE_MS,
            mg_dl: v,
        }
    }

    #[test]
    fn interpolates_and_refuses_holes() {
        let mut h = CgmHistory::new();
        assert_eq!(h.admit(p(0, 100.0)), Arrival::First);
        assert_eq!(
            h.admit(p(15, 130.0)),
            Arrival::Next {
                dt_ms: 15 * MINUTE_MS
            }
        );
        assert_eq!(h.value_at(5 * MINUTE_MS), Some(110.0));
        assert_eq!(h.value_at(15 * MINUTE_MS), Some(130.0));
        assert_eq!(h.value_at(16 * MINUTE_MS), None);
        assert!(matches!(h.admit(p(60, 90.0)), Arrival::AfterGap { .. }));
        assert_eq!(
            h.value_at(40 * MINUTE_MS),
            None,
            "no interpolation across 45 min"
        );
        assert_eq!(h.grid(2), vec![Some(90.0), None, None]);
    }

    #[test]
    fn duplicates_and_backward_clocks() {
        let mut h = CgmHistory::new();
        h.admit(p(10, 100.0));
        assert_eq!(h.admit(p(10, 101.0)), Arrival::Duplicate);
        assert_eq!(h.len(), 1);
        assert_eq!(
            h.admit(p(5, 100.0)),
            Arrival::ClockWentBack {
                back_ms: 5 * MINUTE_MS
            }
        );
        assert_eq!(h.len(), 1);
        assert_eq!(h.last(), Some(p(5, 100.0)));
    }

    #[test]
    fn stays_bounded() {
        let mut h = CgmHistory::new();
        for i in 0..10_000 {
            h.admit(p(i, 100.0));
        }
        assert!(h.len() <= CAPACITY);
        assert!(
            h.points()
                .next()
                .is_some_and(|p| p.at_ms >= (10_000 - 131) * MINUTE_MS)
        );
        assert_eq!(h.cadence_ms(), Some(MINUTE_MS));
    }
}
