//! `glyco-ml bench`: what the hub pays per reading and per patient.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::MlError;
use crate::models::Models;
use crate::monitor::{MonitorConfig, PatientMonitor};
use crate::sample::{Measurement, Sample};

#[derive(Debug, Clone)]
pub struct BenchReport {
    pub load_median: Duration,
    pub load_runs: usize,
    pub readings: usize,
    /// (adapt off, adapt on): p50 and p99 per reading.
    pub per_reading: [(Duration, Duration); 2],
    /// (adapt off, adapt on): bytes per patient state after the run.
    pub state_bytes: [usize; 2],
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// A plausible 5-minute CGM day: meals, a night low, noise from a fixed
/// linear-congruential sequence (deterministic, no RNG crate needed).
fn synthetic_reading(i: usize, state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let noise = ((*state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 8.0;
    let minute_of_day = (i * 5 % 1440) as f64;
    let meal = |at: f64| {
        let t = minute_of_day - at;
        if t > 0.0 {
            80.0 * (t / 60.0) * (-t / 60.0).exp() * std::f64::consts::E
        } else {
            0.0
        }
    };
    130.0 + meal(450.0) + meal(780.0) + meal(1140.0)
        - 50.0 * (-(minute_of_day - 180.0).powi(2) / 3000.0).exp()
        + noise
}

pub fn run(models_dir: &Path, readings: usize, load_runs: usize) -> Result<BenchReport, MlError> {
    let mut loads = Vec::new();
    let mut models = None;
    for _ in 0..load_runs.max(1) {
        let start = Instant::now();
        let loaded = Models::load_dir(models_dir)?;
        loads.push(start.elapsed());
        models = Some(loaded);
    }
    loads.sort();
    let models = Arc::new(models.ok_or_else(|| MlError::Config("no models loaded".into()))?);
    let mut per_reading = [(Duration::ZERO, Duration::ZERO); 2];
    let mut state_bytes = [0; 2];
    for (slot, adapt) in [false, true].into_iter().enumerate() {
        let config = MonitorConfig {
            adapt,
            ..MonitorConfig::default()
        };
        let mut monitor = PatientMonitor::with_config(Arc::clone(&models), config);
        let mut noise = 7u64;
        let mut times = Vec::with_capacity(readings);
        for i in 0..readings {
            let sample = Sample::new(
                1_767_571_200_000 + i as i64 * 300_000,
                Measurement::CgmGlucose {
                    mg_dl: synthetic_reading(i, &mut noise).clamp(40.0, 400.0),
                },
            );
            let start = Instant::now();
            let findings = monitor.observe(&sample)?;
            times.push(start.elapsed());
            std::hint::black_box(findings);
        }
        times.sort();
        per_reading[slot] = (percentile(&times, 0.5), percentile(&times, 0.99));
        state_bytes[slot] = monitor.state_bytes();
    }
    Ok(BenchReport {
        load_median: percentile(&loads, 0.5),
        load_runs: loads.len(),
        readings,
        per_reading,
        state_bytes,
    })
}
