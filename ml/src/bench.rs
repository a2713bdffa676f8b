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
    pub combine: bool,
    /// p50 and p99 per reading.
    pub per_reading: (Duration, Duration),
    /// Bytes per patient state after the run, as the monitor accounts for it.
    pub state_bytes: usize,
    /// Resident memory growth per patient, measured over `MONITORS` monitors
    /// with full histories (Linux; None elsewhere). Measured first, in a fresh
    /// process, so freed memory is not reused.
    pub resident_bytes: Option<usize>,
}

/// Monitors held at once for the resident-memory measurement.
pub const MONITORS: usize = 1000;
/// Readings fed to each (at 1 minute: fills the 130-minute history).
const READINGS_EACH: usize = 150;

/// Resident set size of this process, from /proc/self/statm.
fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn resident_per_monitor(models: &Arc<Models>, combine: bool) -> Result<Option<usize>, MlError> {
    let config = MonitorConfig {
        combine,
        ..MonitorConfig::default()
    };
    let before = resident_bytes();
    let mut monitors: Vec<PatientMonitor> = (0..MONITORS)
        .map(|_| PatientMonitor::with_config(Arc::clone(models), config))
        .collect();
    let mut noise = 11u64;
    for i in 0..READINGS_EACH {
        for monitor in &mut monitors {
            let value = synthetic_reading(i * 5, &mut noise).clamp(40.0, 400.0);
            monitor.observe(&Sample::new(
                1_767_571_200_000 + i as i64 * 60_000,
                Measurement::CgmGlucose { mg_dl: value },
            ))?;
        }
    }
    let after = resident_bytes();
    std::hint::black_box(&monitors);
    Ok(before
        .zip(after)
        .map(|(b, a)| a.saturating_sub(b) / MONITORS))
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

/// Measures one configuration (combination on or off); run the command once
/// per configuration so each resident-memory figure starts from a fresh heap.
pub fn run(
    models_dir: &Path,
    readings: usize,
    load_runs: usize,
    combine: bool,
) -> Result<BenchReport, MlError> {
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
    let resident_bytes = resident_per_monitor(&models, combine)?;
    let config = MonitorConfig {
        combine,
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
    Ok(BenchReport {
        load_median: percentile(&loads, 0.5),
        load_runs: loads.len(),
        readings,
        combine,
        per_reading: (percentile(&times, 0.5), percentile(&times, 0.99)),
        state_bytes: monitor.state_bytes(),
        resident_bytes,
    })
}
