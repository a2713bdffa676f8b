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

    /// Days covered by CGM readings.
    pub fn days(&self) -> f64 {
        self.segments
            .iter()
            .map(|s| (s.last_ms - s.first_ms) as f64 / 86_400_000.0)
            .sum()
    }
}

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
}
