//! The short glucose summary a physician reads first: time in ranges
//! (the international consensus bands), mean, GMI, coefficient of variation
//! and low episodes, over the readings that were opened.

use glyco_seal::reading::{Measurement, Reading};

/// A low episode: readings below 70 mg/dL lasting this long or more.
const LOW_EPISODE_MS: i64 = 15 * 60 * 1000;

#[derive(Debug, Clone, PartialEq)]
pub struct GlucoseSummary {
    pub readings: usize,
    pub from_ms: i64,
    pub to_ms: i64,
    pub mean_mg_dl: f64,
    /// Glucose management indicator, % (3.31 + 0.02392 × mean mg/dL).
    pub gmi_percent: f64,
    /// Coefficient of variation, % (sample SD / mean; ≤ 36 % is stable).
    pub cv_percent: f64,
    /// Shares of readings, %: < 54, 54–69, 70–180, 181–250, > 250 mg/dL.
    pub very_low: f64,
    pub low: f64,
    pub in_range: f64,
    pub high: f64,
    pub very_high: f64,
    /// Runs below 70 mg/dL of at least 15 minutes.
    pub low_episodes: usize,
}

/// The summary of the glucose readings among `readings` (`None` if none):
/// the consensus metrics from `glyco-report`, the same as the hub's report.
pub fn glucose_summary(readings: &[Reading]) -> Option<GlucoseSummary> {
    let mut points: Vec<(i64, f64)> = readings
        .iter()
        .filter_map(|r| match r.measurement {
            Measurement::CapillaryGlucose { mg_dl } | Measurement::CgmGlucose { mg_dl } => {
                Some((r.measured_at(), mg_dl))
            }
            _ => None,
        })
        .collect();
    points.sort_by_key(|p| p.0);
    let metrics = glyco_report::glucose_metrics(points.iter().map(|p| p.1))?;
    let mut low_episodes = 0;
    let mut run_start: Option<i64> = None;
    let mut counted = false;
    for &(at, mg_dl) in &points {
        if mg_dl < 70.0 {
            let start = *run_start.get_or_insert(at);
            if !counted && at - start >= LOW_EPISODE_MS {
                low_episodes += 1;
                counted = true;
            }
        } else {
            run_start = None;
            counted = false;
        }
    }
    let r = metrics.ranges;
    Some(GlucoseSummary {
        readings: metrics.readings,
        from_ms: points[0].0,
        to_ms: points[points.len() - 1].0,
        mean_mg_dl: metrics.mean_mg_dl,
        gmi_percent: metrics.gmi_percent,
        cv_percent: metrics.cv_percent,
        very_low: r.very_low,
        low: r.low,
        in_range: r.in_range,
        high: r.high,
        very_high: r.very_high,
        low_episodes,
    })
}

impl std::fmt::Display for GlucoseSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "glucose: {} readings, mean {:.0} mg/dL, GMI {:.1} %, CV {:.0} %",
            self.readings, self.mean_mg_dl, self.gmi_percent, self.cv_percent
        )?;
        writeln!(
            f,
            "time in ranges: <54 {:.1} % | 54-69 {:.1} % | 70-180 {:.1} % | 181-250 {:.1} % | >250 {:.1} %",
            self.very_low, self.low, self.in_range, self.high, self.very_high
        )?;
        write!(
            f,
            "low episodes (<70 mg/dL for 15 min or more): {}",
            self.low_episodes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glyco_seal::reading::{SeqOrigin, Transport};

    fn cgm(minute: i64, mg_dl: f64) -> Reading {
        Reading {
            device: glyco_contracts::DeviceIdentity::Name("cgm-1".into()),
            transport: Transport::Mqtt,
            seq: minute as u64,
            seq_origin: SeqOrigin::Device,
            device_time: Some(minute * 60_000),
            received_at: minute * 60_000,
            measurement: Measurement::CgmGlucose { mg_dl },
            reported_unit: "mg/dL".into(),
            flags: Vec::new(),
        }
    }

    #[test]
    fn ranges_gmi_and_low_episodes_by_the_consensus_definitions() {
        // 10 readings 5 min apart: 2 very low, 2 low (a 15-minute run below
        // 70 from minute 0 to 15), 4 in range, 1 high, 1 very high.
        let values = [
            50.0, 52.0, 60.0, 65.0, 100.0, 120.0, 140.0, 180.0, 200.0, 300.0,
        ];
        let readings: Vec<Reading> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| cgm(5 * i as i64, v))
            .collect();
        let s = glucose_summary(&readings).unwrap();
        assert_eq!(s.readings, 10);
        assert!((s.mean_mg_dl - 126.7).abs() < 1e-9);
        assert!((s.gmi_percent - (3.31 + 0.02392 * 126.7)).abs() < 1e-9);
        assert_eq!(
            (s.very_low, s.low, s.in_range, s.high, s.very_high),
            (20.0, 20.0, 40.0, 10.0, 10.0)
        );
        assert_eq!(s.low_episodes, 1);
        assert!(glucose_summary(&[]).is_none());
    }
}
