//! The Ambulatory Glucose Profile over the last days of CGM data: the
//! consensus metrics, the share of time the CGM was active, percentile bands
//! by time of day, and one trace per day (docs/REPORT.md).
//!
//! The window is the last `days` × 24 hours up to now; the daily traces are
//! the local dates it touches (the first and the last partly). Time of day
//! is the patient's local time (the hub's time zone), daylight saving
//! included.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::metrics::{GlucoseMetrics, glucose_metrics, percentile};

/// Below this share of CGM time the report says "not enough data".
pub const ENOUGH_DATA_PERCENT: f64 = 70.0;
/// The longest report, in days.
pub const MAX_DAYS: u32 = 90;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CgmPoint {
    pub at_ms: i64,
    pub mg_dl: f64,
}

#[derive(Debug, Clone)]
pub struct AgpOptions {
    /// Days in the report, today included (14 by the consensus).
    pub days: u32,
    /// Width of a time-of-day bin; divides 1440.
    pub bin_minutes: u32,
    pub time_zone: TimeZone,
}

impl Default for AgpOptions {
    fn default() -> Self {
        Self {
            days: 14,
            bin_minutes: 15,
            time_zone: TimeZone::UTC,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AgpError {
    #[error("a report covers 1 to {MAX_DAYS} days, not {0}")]
    Days(u32),
    #[error("the bin width must divide a day into whole bins (1 to 60 minutes), not {0}")]
    Bin(u32),
    #[error("the time {0} ms is out of range")]
    Time(i64),
}

/// Percentiles of one time-of-day bin, mg/dL.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Band {
    /// Minute of the day the bin starts at.
    pub minute: u32,
    pub readings: usize,
    pub p5: f64,
    pub p25: f64,
    pub p50: f64,
    pub p75: f64,
    pub p95: f64,
}

/// One local day's readings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayTrace {
    /// `YYYY-MM-DD`, local.
    pub date: String,
    /// (minute of the day, mg/dL), in time order.
    pub points: Vec<(u32, f64)>,
    pub metrics: Option<GlucoseMetrics>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgpReport {
    pub from_ms: i64,
    pub to_ms: i64,
    pub days: u32,
    pub metrics: Option<GlucoseMetrics>,
    /// The CGM's own interval (median gap), whole minutes.
    pub sensor_interval_minutes: u32,
    /// Share of the window with a reading in its interval slot, percent.
    pub cgm_active_percent: f64,
    pub enough_data: bool,
    /// Bins with readings, by time of day.
    pub bands: Vec<Band>,
    /// Oldest day first, every local date in the window (days without data
    /// have no points).
    pub daily: Vec<DayTrace>,
}

fn timestamp(ms: i64) -> Result<Timestamp, AgpError> {
    Timestamp::from_millisecond(ms).map_err(|_| AgpError::Time(ms))
}

/// The report of `points` (any order, any devices) as of `now_ms`.
pub fn agp(points: &[CgmPoint], now_ms: i64, options: &AgpOptions) -> Result<AgpReport, AgpError> {
    if options.days == 0 || options.days > MAX_DAYS {
        return Err(AgpError::Days(options.days));
    }
    if options.bin_minutes == 0 || options.bin_minutes > 60 || 1440 % options.bin_minutes != 0 {
        return Err(AgpError::Bin(options.bin_minutes));
    }
    let tz = &options.time_zone;
    let from_ms = now_ms - i64::from(options.days) * 86_400_000;
    let first_day = timestamp(from_ms)?.to_zoned(tz.clone()).date();
    let today = timestamp(now_ms)?.to_zoned(tz.clone()).date();
    let dates = (days_between(first_day, today) + 1).max(1) as usize;

    let mut inside: Vec<CgmPoint> = points
        .iter()
        .filter(|p| p.mg_dl.is_finite() && p.at_ms >= from_ms && p.at_ms <= now_ms)
        .copied()
        .collect();
    inside.sort_by_key(|p| p.at_ms);

    let interval_minutes = sensor_interval_minutes(&inside);
    let slot_ms = i64::from(interval_minutes) * 60_000;
    let window_ms = (now_ms - from_ms).max(1);
    let mut slots: Vec<i64> = inside
        .iter()
        .map(|p| (p.at_ms - from_ms) / slot_ms)
        .collect();
    slots.dedup();
    let possible = (window_ms as f64 / slot_ms as f64).ceil().max(1.0);
    let active = (100.0 * slots.len() as f64 / possible).min(100.0);

    let bins = (1440 / options.bin_minutes) as usize;
    let mut by_bin: Vec<Vec<f64>> = vec![Vec::new(); bins];
    let mut by_day: Vec<Vec<(u32, f64)>> = vec![Vec::new(); dates];
    for p in &inside {
        let local = timestamp(p.at_ms)?.to_zoned(tz.clone());
        let minute = local.hour() as u32 * 60 + local.minute() as u32;
        by_bin[(minute / options.bin_minutes) as usize].push(p.mg_dl);
        let day = days_between(first_day, local.date());
        if let Some(trace) = usize::try_from(day).ok().and_then(|d| by_day.get_mut(d)) {
            trace.push((minute, p.mg_dl));
        }
    }
    let bands = by_bin
        .into_iter()
        .enumerate()
        .filter(|(_, values)| !values.is_empty())
        .map(|(i, mut values)| {
            values.sort_by(f64::total_cmp);
            let at = |p| percentile(&values, p).unwrap_or(f64::NAN);
            Band {
                minute: i as u32 * options.bin_minutes,
                readings: values.len(),
                p5: at(5.0),
                p25: at(25.0),
                p50: at(50.0),
                p75: at(75.0),
                p95: at(95.0),
            }
        })
        .collect();
    let daily = by_day
        .into_iter()
        .enumerate()
        .map(|(i, points)| {
            let date = first_day
                .checked_add(jiff::Span::new().days(i as i64))
                .map(|d| d.to_string())
                .unwrap_or_default();
            let metrics = glucose_metrics(points.iter().map(|p| p.1));
            DayTrace {
                date,
                points,
                metrics,
            }
        })
        .collect();
    Ok(AgpReport {
        from_ms,
        to_ms: now_ms,
        days: options.days,
        metrics: glucose_metrics(inside.iter().map(|p| p.mg_dl)),
        sensor_interval_minutes: interval_minutes,
        cgm_active_percent: active,
        enough_data: active >= ENOUGH_DATA_PERCENT,
        bands,
        daily,
    })
}

fn days_between(from: Date, to: Date) -> i64 {
    // A civil date span's largest unit is days.
    from.until(to).map_or(-1, |span| i64::from(span.get_days()))
}

/// The median gap between consecutive readings, in whole minutes, 1 to 15
/// (5 when there are too few readings to tell).
fn sensor_interval_minutes(sorted: &[CgmPoint]) -> u32 {
    let mut gaps: Vec<i64> = sorted
        .windows(2)
        .map(|w| w[1].at_ms - w[0].at_ms)
        .filter(|gap| *gap > 0)
        .collect();
    if gaps.is_empty() {
        return 5;
    }
    let middle = gaps.len() / 2;
    let median = *gaps.select_nth_unstable(middle).1;
    ((median as f64 / 60_000.0).round() as u32).clamp(1, 15)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;
    const DAY: i64 = 1440 * MINUTE;
    /// 2026-11-30T12:00:00Z
    const NOW: i64 = 1_796_040_000_000;

    fn every(minutes: i64, from: i64, to: i64, value: impl Fn(i64) -> f64) -> Vec<CgmPoint> {
        (0..)
            .map(|i| from + i * minutes * MINUTE)
            .take_while(|t| *t <= to)
            .map(|t| CgmPoint {
                at_ms: t,
                mg_dl: value(t),
            })
            .collect()
    }

    #[test]
    fn fourteen_days_of_one_minute_data_are_all_there() {
        let from = NOW - 14 * DAY;
        let points = every(1, from, NOW, |_| 120.0);
        assert_eq!(points.len() as i64, 14 * 1440 + 1);
        let report = agp(&points, NOW, &AgpOptions::default()).unwrap();
        assert_eq!(report.from_ms, from);
        assert_eq!(report.sensor_interval_minutes, 1);
        assert!(
            report.cgm_active_percent > 99.9,
            "{}",
            report.cgm_active_percent
        );
        assert!(report.enough_data);
        // Noon to noon: 15 dates, the first and the last half.
        assert_eq!(report.daily.len(), 15);
        assert_eq!(report.daily[0].date, "2026-11-16");
        assert_eq!(report.daily[14].date, "2026-11-30");
        assert_eq!(report.daily[0].points.len(), 720);
        assert_eq!(report.daily[1].points.len(), 1440);
        assert_eq!(report.bands.len(), 96);
        assert_eq!(report.metrics.unwrap().readings, points.len());
    }

    #[test]
    fn bands_are_percentiles_by_local_time_of_day() {
        // 5-minute data whose value is the hour of day × 10 + 40 in Berlin.
        let tz = TimeZone::get("Europe/Berlin").unwrap_or(TimeZone::fixed(jiff::tz::offset(1)));
        let options = AgpOptions {
            time_zone: tz.clone(),
            ..AgpOptions::default()
        };
        let points = every(5, NOW - 20 * DAY, NOW, |t| {
            let local = Timestamp::from_millisecond(t).unwrap().to_zoned(tz.clone());
            f64::from(local.hour()) * 10.0 + 40.0
        });
        let report = agp(&points, NOW, &options).unwrap();
        for band in &report.bands {
            let hour = f64::from(band.minute / 60);
            assert_eq!(band.p50, hour * 10.0 + 40.0, "bin {}", band.minute);
            assert_eq!(band.p5, band.p95);
        }
        assert_eq!(report.from_ms, NOW - 14 * DAY, "older points are out");
    }

    #[test]
    fn gaps_lower_the_active_share_and_warn_under_seventy_percent() {
        let from = NOW - 14 * DAY;
        // Data only on the first 9 days of 14: ~64 %.
        let points = every(5, from, from + 9 * DAY, |_| 100.0);
        let report = agp(&points, NOW, &AgpOptions::default()).unwrap();
        assert_eq!(report.sensor_interval_minutes, 5);
        assert!((report.cgm_active_percent - 100.0 * 9.0 / 14.0).abs() < 0.1);
        assert!(!report.enough_data);
        assert!(report.daily[13].points.is_empty());
    }

    #[test]
    fn bad_options_and_empty_data_are_handled() {
        assert_eq!(
            agp(
                &[],
                NOW,
                &AgpOptions {
                    days: 0,
                    ..AgpOptions::default()
                }
            ),
            Err(AgpError::Days(0))
        );
        assert_eq!(
            agp(
                &[],
                NOW,
                &AgpOptions {
                    bin_minutes: 7,
                    ..AgpOptions::default()
                }
            ),
            Err(AgpError::Bin(7))
        );
        let empty = agp(
            &[CgmPoint {
                at_ms: NOW,
                mg_dl: f64::NAN,
            }],
            NOW,
            &AgpOptions::default(),
        )
        .unwrap();
        assert!(empty.metrics.is_none() && empty.bands.is_empty() && !empty.enough_data);
        assert_eq!(empty.cgm_active_percent, 0.0);
    }
}
