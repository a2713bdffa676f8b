//! CGM glucose as the web app and the Nightscout API show it: read from the
//! journal newest first, with the trend of each reading against the one
//! before it from the same device.

use glyco_report::CgmPoint;
use glyco_seal::reading::{Measurement, Reading};
use serde::Serialize;

use crate::journal::{Journal, JournalError};

/// A reading received this long before the window starts cannot be in it
/// (slack for the hub's clock being stepped).
const ARRIVAL_SLACK_MS: i64 = 3_600_000;
/// A trend is taken only against a reading at most this much older.
const TREND_GAP_MS: i64 = 15 * 60 * 1000;

/// One CGM value with its trend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sgv {
    pub device: String,
    pub at_ms: i64,
    pub mg_dl: f64,
    /// mg/dL since the device's previous reading (0 when there is none).
    pub delta: f64,
    pub trend: Trend,
}

/// Nightscout's directions, from the rate of change in mg/dL per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Trend {
    DoubleUp,
    SingleUp,
    FortyFiveUp,
    Flat,
    FortyFiveDown,
    SingleDown,
    DoubleDown,
    #[serde(rename = "NONE")]
    None,
}

impl Trend {
    pub fn from_rate(mg_dl_per_minute: Option<f64>) -> Self {
        match mg_dl_per_minute {
            None => Trend::None,
            Some(r) if r > 3.0 => Trend::DoubleUp,
            Some(r) if r > 2.0 => Trend::SingleUp,
            Some(r) if r > 1.0 => Trend::FortyFiveUp,
            Some(r) if r >= -1.0 => Trend::Flat,
            Some(r) if r >= -2.0 => Trend::FortyFiveDown,
            Some(r) if r >= -3.0 => Trend::SingleDown,
            Some(_) => Trend::DoubleDown,
        }
    }

    /// Nightscout's numeric trend (1 double up … 7 double down, 0 none).
    pub fn number(self) -> u8 {
        match self {
            Trend::DoubleUp => 1,
            Trend::SingleUp => 2,
            Trend::FortyFiveUp => 3,
            Trend::Flat => 4,
            Trend::FortyFiveDown => 5,
            Trend::SingleDown => 6,
            Trend::DoubleDown => 7,
            Trend::None => 0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Trend::DoubleUp => "DoubleUp",
            Trend::SingleUp => "SingleUp",
            Trend::FortyFiveUp => "FortyFiveUp",
            Trend::Flat => "Flat",
            Trend::FortyFiveDown => "FortyFiveDown",
            Trend::SingleDown => "SingleDown",
            Trend::DoubleDown => "DoubleDown",
            Trend::None => "NONE",
        }
    }

    pub fn arrow(self) -> &'static str {
        match self {
            Trend::DoubleUp => "⇈",
            Trend::SingleUp => "↑",
            Trend::FortyFiveUp => "↗",
            Trend::Flat => "→",
            Trend::FortyFiveDown => "↘",
            Trend::SingleDown => "↓",
            Trend::DoubleDown => "⇊",
            Trend::None => "",
        }
    }
}

fn cgm_value(reading: &Reading) -> Option<f64> {
    match reading.measurement {
        Measurement::CgmGlucose { mg_dl } if mg_dl.is_finite() => Some(mg_dl),
        _ => None,
    }
}

/// CGM points measured in `[from_ms, to_ms]`.
pub fn cgm_points(
    journal: &Journal,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<CgmPoint>, JournalError> {
    let mut points = Vec::new();
    journal.scan_newest(|reading| {
        if reading.received_at < from_ms - ARRIVAL_SLACK_MS {
            return false;
        }
        let at = reading.measured_at();
        if let Some(mg_dl) = cgm_value(reading)
            && (from_ms..=to_ms).contains(&at)
        {
            points.push(CgmPoint { at_ms: at, mg_dl });
        }
        true
    })?;
    Ok(points)
}

/// The newest `count` CGM values measured in `[from_ms, to_ms]`, newest
/// first, each with its trend.
pub fn newest_sgvs(
    journal: &Journal,
    count: usize,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Sgv>, JournalError> {
    // A few more than asked, so the oldest shown has its predecessor.
    let wanted = count.saturating_add(8);
    let mut found: Vec<(String, i64, f64)> = Vec::new();
    journal.scan_newest(|reading| {
        if reading.received_at < from_ms - ARRIVAL_SLACK_MS {
            return false;
        }
        let at = reading.measured_at();
        if let Some(mg_dl) = cgm_value(reading)
            && at <= to_ms
            && at >= from_ms - TREND_GAP_MS
        {
            found.push((reading.device.to_string(), at, mg_dl));
        }
        found.len() < wanted
    })?;
    found.sort_by_key(|f| std::cmp::Reverse(f.1));
    let mut out = Vec::with_capacity(count.min(found.len()));
    for (i, (device, at, mg_dl)) in found.iter().enumerate() {
        if *at < from_ms || out.len() == count {
            continue;
        }
        let previous = found[i + 1..]
            .iter()
            .find(|(d, t, _)| d == device && t < at);
        let (delta, rate) = match previous {
            Some((_, t, g)) if at - t <= TREND_GAP_MS => {
                (mg_dl - g, Some((mg_dl - g) / ((at - t) as f64 / 60_000.0)))
            }
            Some((_, _, g)) => (mg_dl - g, None),
            None => (0.0, None),
        };
        out.push(Sgv {
            device: device.clone(),
            at_ms: *at,
            mg_dl: *mg_dl,
            delta,
            trend: Trend::from_rate(rate),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trends_follow_nightscouts_rates() {
        assert_eq!(Trend::from_rate(Some(3.5)), Trend::DoubleUp);
        assert_eq!(Trend::from_rate(Some(2.5)), Trend::SingleUp);
        assert_eq!(Trend::from_rate(Some(1.5)), Trend::FortyFiveUp);
        assert_eq!(Trend::from_rate(Some(0.0)), Trend::Flat);
        assert_eq!(Trend::from_rate(Some(-1.5)), Trend::FortyFiveDown);
        assert_eq!(Trend::from_rate(Some(-2.5)), Trend::SingleDown);
        assert_eq!(Trend::from_rate(Some(-3.5)), Trend::DoubleDown);
        assert_eq!(Trend::from_rate(None).number(), 0);
        assert_eq!(Trend::Flat.number(), 4);
    }
}
