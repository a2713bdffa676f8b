//! What actually happened, read from a data file: the clean CGM readings,
//! split where the device clock went back so that times compare.
//!
//! Forecasts are scored against these readings, and lows are defined on them;
//! readings labelled as sensor faults are not truth.

use crate::data::{Record, Source};
use crate::history::{CgmPoint, MAX_INTERPOLATION_GAP_MS, MINUTE_MS};

/// A low: clean readings below 70 mg/dL for at least 10 minutes; lows less
/// than 30 minutes apart are one event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LowEvent {
    pub onset_ms: i64,
    pub end_ms: i64,
}

const LOW_MG_DL: f32 = 70.0;
const MIN_LOW_MS: i64 = 10 * MINUTE_MS;
const MERGE_MS: i64 = 30 * MINUTE_MS;

/// One stretch of consistent device time.
#[derive(Debug, Clone, Default)]
pub struct Segment {
    pub clean: Vec<CgmPoint>,
    /// Times of every CGM reading in the segment, clean or not.
    pub readings: Vec<i64>,
    pub first_ms: i64,
    pub last_ms: i64,
}

impl Segment {
    /// Clean glucose at `at_ms`, interpolated between clean readings no more
    /// than 20 minutes apart.
    pub fn value_at(&self, at_ms: i64) -> Option<f32> {
        let after = self.clean.partition_point(|p| p.at_ms < at_ms);
        let next = self.clean.get(after)?;
        if next.at_ms == at_ms {
            return Some(next.mg_dl);
        }
        let prev = self.clean.get(after.checked_sub(1)?)?;
        let span = next.at_ms - prev.at_ms;
        if span > MAX_INTERPOLATION_GAP_MS {
            return None;
        }
        Some(prev.mg_dl + (at_ms - prev.at_ms) as f32 / span as f32 * (next.mg_dl - prev.mg_dl))
    }

    /// Any clean reading below 70 mg/dL in `[from_ms, to_ms]`.
    pub fn any_low_between(&self, from_ms: i64, to_ms: i64) -> bool {
        self.clean
            .iter()
            .any(|p| p.at_ms >= from_ms && p.at_ms <= to_ms && p.mg_dl < LOW_MG_DL)
    }

    pub fn low_events(&self) -> Vec<LowEvent> {
        let mut runs: Vec<LowEvent> = Vec::new();
        let mut run: Option<(i64, i64)> = None;
        for p in &self.clean {
            if p.mg_dl < LOW_MG_DL {
                run = Some(run.map_or((p.at_ms, p.at_ms), |(start, _)| (start, p.at_ms)));
            } else if let Some((start, end)) = run.take()
                && end - start >= MIN_LOW_MS
            {
                runs.push(LowEvent {
                    onset_ms: start,
                    end_ms: end,
                });
            }
        }
        if let Some((start, end)) = run
            && end - start >= MIN_LOW_MS
        {
            runs.push(LowEvent {
                onset_ms: start,
                end_ms: end,
            });
        }
        let mut events: Vec<LowEvent> = Vec::new();
        for event in runs {
            match events.last_mut() {
                Some(last) if event.onset_ms - last.end_ms < MERGE_MS => last.end_ms = event.end_ms,
                _ => events.push(event),
            }
        }
        events
    }
}

/// The segments of one subject and, per record, the segment it belongs to.
#[derive(Debug, Clone, Default)]
pub struct Truth {
    pub segments: Vec<Segment>,
    pub segment_of: Vec<usize>,
}

impl Truth {
    pub fn build(records: &[Record]) -> Truth {
        let mut truth = Truth::default();
        let mut last_cgm: Option<i64> = None;
        for record in records {
            if record.source == Source::Cgm {
                if last_cgm.is_some_and(|last| record.at_ms <= last) || truth.segments.is_empty() {
                    truth.segments.push(Segment {
                        first_ms: record.at_ms,
                        last_ms: record.at_ms,
                        ..Segment::default()
                    });
                }
                last_cgm = Some(record.at_ms);
            } else if truth.segments.is_empty() {
                truth.segments.push(Segment {
                    first_ms: record.at_ms,
                    last_ms: record.at_ms,
                    ..Segment::default()
                });
            }
            let index = truth.segments.len() - 1;
            let segment = &mut truth.segments[index];
            if record.source == Source::Cgm {
                segment.last_ms = segment.last_ms.max(record.at_ms);
                segment.readings.push(record.at_ms);
                let clean = !matches!(record.label, Some(Some(_)));
                if clean && record.mg_dl.is_finite() {
                    segment.clean.push(CgmPoint {
                        at_ms: record.at_ms,
                        mg_dl: record.mg_dl as f32,
                    });
                }
            }
            truth.segment_of.push(index);
        }
        truth
    }

    /// Days of CGM data: the time between consecutive readings, each
    /// interval counted up to 20 minutes, so a recording with long pauses
    /// counts only the days it has readings for (issue 12: first-to-last time
    /// understated false alarms per day fourfold on real traces).
    pub fn days(&self) -> f64 {
        let covered: i64 = self
            .segments
            .iter()
            .flat_map(|s| s.readings.windows(2))
            .map(|w| (w[1] - w[0]).clamp(0, MAX_INTERPOLATION_GAP_MS))
            .sum();
        covered as f64 / DAY_MS as f64
    }

    /// First-to-last time of each segment, in days (what `days` counted
    /// before; shown beside it).
    pub fn span_days(&self) -> f64 {
        self.segments
            .iter()
            .map(|s| (s.last_ms - s.first_ms) as f64 / DAY_MS as f64)
            .sum()
    }

    /// Data sufficiency: (calendar days with at least 70 % of the readings
    /// the sensor's cadence promises, calendar days with any reading). Days
    /// are UTC days of the device clock.
    pub fn sufficient_days(&self) -> (usize, usize) {
        let mut times: Vec<i64> = self
            .segments
            .iter()
            .flat_map(|s| s.readings.iter().copied())
            .collect();
        times.sort_unstable();
        times.dedup();
        let mut intervals: Vec<i64> = times
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|d| *d > 0)
            .collect();
        if intervals.is_empty() {
            return (0, usize::from(!times.is_empty()));
        }
        intervals.sort_unstable();
        let cadence = intervals[intervals.len() / 2].max(MINUTE_MS);
        let expected = DAY_MS as f64 / cadence as f64;
        let mut per_day: std::collections::BTreeMap<i64, usize> = std::collections::BTreeMap::new();
        for t in &times {
            *per_day.entry(t.div_euclid(DAY_MS)).or_default() += 1;
        }
        let sufficient = per_day
            .values()
            .filter(|n| **n as f64 >= SUFFICIENT_SHARE * expected)
            .count();
        (sufficient, per_day.len())
    }
}

const DAY_MS: i64 = 86_400_000;
/// A day has enough CGM data with 70 % of its expected readings
/// (the international consensus on CGM metrics, Battelino et al. 2019).
const SUFFICIENT_SHARE: f64 = 0.7;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::FaultKind;

    fn cgm(min: i64, v: f64, label: Option<FaultKind>) -> Record {
        Record {
            at_ms: min * MINUTE_MS,
            mg_dl: v,
            source: Source::Cgm,
            label: Some(label),
            sensor: None,
        }
    }

    #[test]
    fn segments_split_on_backward_clock_and_faults_are_not_truth() {
        let records = vec![
            cgm(0, 100.0, None),
            cgm(5, 60.0, Some(FaultKind::CompressionLow)),
            cgm(10, 110.0, None),
            cgm(0, 112.0, Some(FaultKind::ClockJump)),
            cgm(5, 114.0, None),
        ];
        let truth = Truth::build(&records);
        assert_eq!(truth.segments.len(), 2);
        assert_eq!(truth.segment_of, vec![0, 0, 0, 1, 1]);
        assert_eq!(truth.segments[0].value_at(5 * MINUTE_MS), Some(105.0));
        assert_eq!(truth.segments[1].clean.len(), 1);
    }

    #[test]
    fn low_events_need_ten_minutes_and_merge() {
        let values = [
            80.0, 68.0, 66.0, 65.0, 75.0, 80.0, 69.0, 68.0, 67.0, 90.0, 90.0, 90.0, 90.0, 90.0,
            90.0, 90.0, 60.0, 100.0,
        ];
        let records: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, v)| cgm(i as i64 * 5, *v, None))
            .collect();
        let truth = Truth::build(&records);
        let events = truth.segments[0].low_events();
        assert_eq!(
            events,
            vec![LowEvent {
                onset_ms: 5 * MINUTE_MS,
                end_ms: 40 * MINUTE_MS
            }]
        );
        assert!(truth.segments[0].any_low_between(80 * MINUTE_MS, 80 * MINUTE_MS));
    }

    #[test]
    fn days_count_data_not_calendar_span() {
        // Two days of 5-minute readings, 30 days apart: 2 days of data, one
        // of them (the second, half-full) below the sufficiency line.
        let mut records: Vec<Record> = (0..288).map(|i| cgm(i * 5, 120.0, None)).collect();
        let later = 30 * 1440;
        records.extend((0..100).map(|i| cgm(later + i * 5, 120.0, None)));
        let truth = Truth::build(&records);
        assert!(
            (truth.span_days() - 30.35).abs() < 0.05,
            "{}",
            truth.span_days()
        );
        let days = truth.days();
        assert!(
            (days - (287.0 * 5.0 + 20.0 + 99.0 * 5.0) / 1440.0).abs() < 1e-9,
            "{days}"
        );
        assert_eq!(truth.sufficient_days(), (1, 2));
    }
}
