//! The streaming API as the hub uses it: irregular sensors, gaps, clock
//! jumps, bad values. It must answer every reading and never panic.

use std::sync::{Arc, OnceLock};

use glyco_ml::{
    FaultKind, Finding, FindingKind, Measurement, MlError, Models, PatientMonitor, Sample,
    SensorFlags, Severity,
};

const MINUTE: i64 = 60_000;
const T0: i64 = 1_767_571_200_000;

fn models() -> Arc<Models> {
    static MODELS: OnceLock<Arc<Models>> = OnceLock::new();
    Arc::clone(
        MODELS.get_or_init(|| {
            Arc::new(Models::load_dir(&Models::bundled_dir()).expect("models load"))
        }),
    )
}

fn cgm(at_ms: i64, mg_dl: f64) -> Sample {
    Sample::new(at_ms, Measurement::CgmGlucose { mg_dl })
}

fn kinds(findings: &[Finding]) -> Vec<FindingKind> {
    findings.iter().map(|f| f.kind).collect()
}

/// A smooth fall from 160 mg/dL at 1.2 mg/dL/min, as each cadence sees it.
fn falling(cadence_min: i64, minutes: i64) -> Vec<Sample> {
    (0..=minutes / cadence_min)
        .map(|i| {
            let t = i * cadence_min;
            cgm(T0 + t * MINUTE, (160.0 - 1.2 * t as f64).round())
        })
        .collect()
}

#[test]
fn predicted_low_comes_before_the_low_at_every_cadence() {
    for cadence in [1, 3, 5, 15] {
        let mut monitor = PatientMonitor::new(models());
        let mut predicted_at = None;
        let mut low_at = None;
        for sample in falling(cadence, 95) {
            let assessment = monitor.assess(&sample).expect("valid reading");
            let cgm = assessment.cgm.expect("CGM assessment");
            let forecast = cgm.forecast.expect("forecast");
            assert!(forecast.at_30_min_mg_dl.is_finite() && forecast.at_60_min_mg_dl.is_finite());
            let found = kinds(&assessment.findings);
            if found.contains(&FindingKind::PredictedLow) && predicted_at.is_none() {
                predicted_at = Some(sample.at_ms);
            }
            let low = found.contains(&FindingKind::LowGlucose)
                || found.contains(&FindingKind::VeryLowGlucose);
            if low && low_at.is_none() {
                low_at = Some(sample.at_ms);
            }
        }
        let (Some(predicted), Some(low)) = (predicted_at, low_at) else {
            panic!("cadence {cadence}: predicted {predicted_at:?}, low {low_at:?}");
        };
        assert!(
            low - predicted >= 5 * MINUTE,
            "cadence {cadence}: lead {} min",
            (low - predicted) / MINUTE
        );
    }
}

#[test]
fn steady_glucose_raises_nothing_at_any_cadence() {
    for cadence in [1, 3, 5, 15] {
        let mut monitor = PatientMonitor::new(models());
        let mut all = Vec::new();
        for i in 0..(240 / cadence) {
            // Gentle wobble so a 1-minute sensor does not repeat values.
            let value = 120.0 + ((i * cadence) as f64 / 20.0).sin() * 4.0;
            all.extend(
                monitor
                    .observe(&cgm(T0 + i * cadence * MINUTE, value.round()))
                    .expect("valid"),
            );
        }
        let alarms: Vec<_> = all
            .iter()
            .filter(|f| !matches!(f.kind, FindingKind::SensorFault(FaultKind::Stuck)))
            .collect();
        assert!(alarms.is_empty(), "cadence {cadence}: {alarms:?}");
    }
}

#[test]
fn gaps_and_clock_jumps_are_findings_not_failures() {
    let mut monitor = PatientMonitor::new(models());
    for i in 0..12 {
        monitor
            .observe(&cgm(T0 + i * 5 * MINUTE, 130.0 + i as f64))
            .expect("valid");
    }
    let after_gap = monitor
        .observe(&cgm(T0 + 200 * MINUTE, 128.0))
        .expect("valid");
    assert!(
        kinds(&after_gap).contains(&FindingKind::SensorFault(FaultKind::Gap)),
        "{after_gap:?}"
    );
    let jumped = monitor
        .observe(&cgm(T0 + 90 * MINUTE, 129.0))
        .expect("valid");
    assert!(
        kinds(&jumped).contains(&FindingKind::SensorFault(FaultKind::ClockJump)),
        "{jumped:?}"
    );
    // After the jump the monitor carries on from the new clock.
    let next = monitor
        .assess(&cgm(T0 + 95 * MINUTE, 130.0))
        .expect("valid");
    assert_eq!(next.cgm.and_then(|c| c.fault), None);
    // A day-long gap and a year-long jump are just larger numbers.
    assert!(monitor.observe(&cgm(T0 + 2 * 1440 * MINUTE, 120.0)).is_ok());
    assert!(
        monitor
            .observe(&cgm(T0 + 400 * 1440 * MINUTE, 120.0))
            .is_ok()
    );
    // Clocks outside 1970..2100 are broken: a typed error, not an overflow.
    assert!(matches!(
        monitor.observe(&cgm(i64::MIN, 120.0)),
        Err(MlError::Timestamp { .. })
    ));
    assert!(matches!(
        monitor.observe(&cgm(i64::MAX, 120.0)),
        Err(MlError::Timestamp { .. })
    ));
    assert!(matches!(
        monitor.observe(&cgm(-1, 120.0)),
        Err(MlError::Timestamp { .. })
    ));
    assert!(
        monitor
            .observe(&cgm(T0 + 400 * 1440 * MINUTE + 5 * MINUTE, 121.0))
            .is_ok()
    );
}

#[test]
fn bad_values_are_typed_errors() {
    let mut monitor = PatientMonitor::new(models());
    assert!(matches!(
        monitor.observe(&cgm(T0, f64::NAN)),
        Err(MlError::NotFinite { .. })
    ));
    assert!(matches!(
        monitor.observe(&cgm(T0, f64::INFINITY)),
        Err(MlError::NotFinite { .. })
    ));
    assert!(matches!(
        monitor.observe(&cgm(T0, -5.0)),
        Err(MlError::Implausible { .. })
    ));
    assert!(matches!(
        monitor.observe(&cgm(T0, 5000.0)),
        Err(MlError::Implausible { .. })
    ));
    monitor.observe(&cgm(T0, 100.0)).expect("valid");
    assert!(matches!(
        monitor.observe(&cgm(T0, 101.0)),
        Err(MlError::DuplicateTimestamp { .. })
    ));
    let bp = Measurement::BloodPressure {
        systolic_mmhg: f64::NAN,
        diastolic_mmhg: 80.0,
    };
    assert!(monitor.observe(&Sample::new(T0, bp)).is_err());
    // The monitor still works after errors.
    assert!(monitor.observe(&cgm(T0 + 5 * MINUTE, 101.0)).is_ok());
}

#[test]
fn clinical_rules_run_through_the_monitor() {
    let mut monitor = PatientMonitor::new(models());
    let low = monitor.observe(&cgm(T0, 50.0)).expect("valid");
    assert!(
        low.iter()
            .any(|f| f.kind == FindingKind::VeryLowGlucose && f.severity == Severity::Urgent),
        "{low:?}"
    );
    let crisis = Measurement::BloodPressure {
        systolic_mmhg: 185.0,
        diastolic_mmhg: 95.0,
    };
    let found = monitor
        .observe(&Sample::new(T0 + MINUTE, crisis))
        .expect("valid");
    assert_eq!(kinds(&found), vec![FindingKind::HypertensiveCrisis]);
    let fast = monitor
        .observe(&Sample::new(
            T0 + 2 * MINUTE,
            Measurement::HeartRate { bpm: 170.0 },
        ))
        .expect("valid");
    assert_eq!(kinds(&fast), vec![FindingKind::HeartRateHigh]);
    let meter = monitor
        .observe(&Sample::new(
            T0 + 3 * MINUTE,
            Measurement::CapillaryGlucose { mg_dl: 260.0 },
        ))
        .expect("valid");
    assert!(kinds(&meter).contains(&FindingKind::VeryHighGlucose));
    // The same finding within 30 minutes is not repeated...
    let again = monitor
        .observe(&Sample::new(T0 + 4 * MINUTE, crisis))
        .expect("valid");
    assert!(again.is_empty(), "{again:?}");
    // ...but is after 30 minutes.
    let later = monitor
        .observe(&Sample::new(T0 + 40 * MINUTE, crisis))
        .expect("valid");
    assert_eq!(kinds(&later), vec![FindingKind::HypertensiveCrisis]);
}

#[test]
fn sensor_flags_and_capillary_disagreement() {
    let mut monitor = PatientMonitor::new(models());
    for (i, value) in [150.0, 152.0, 149.0, 151.0, 153.0, 150.0]
        .iter()
        .enumerate()
    {
        monitor
            .observe(&cgm(T0 + i as i64 * 5 * MINUTE, *value))
            .expect("valid");
    }
    let flagged = cgm(T0 + 30 * MINUTE, 40.0).with_flags(SensorFlags {
        sensor_error: true,
        ..SensorFlags::default()
    });
    let found = monitor.observe(&flagged).expect("valid");
    assert_eq!(
        kinds(&found),
        vec![FindingKind::SensorFault(FaultKind::SensorReported)]
    );
    let asks = cgm(T0 + 31 * MINUTE, 150.0).with_flags(SensorFlags {
        calibration_required: true,
        ..SensorFlags::default()
    });
    let found = monitor.assess(&asks).expect("valid");
    assert!(
        found.cgm.and_then(|c| c.forecast).is_some(),
        "value still used"
    );
    let meter = Sample::new(
        T0 + 26 * MINUTE,
        Measurement::CapillaryGlucose { mg_dl: 100.0 },
    );
    let found = monitor.observe(&meter).expect("valid");
    assert!(
        kinds(&found).contains(&FindingKind::SensorFault(FaultKind::Drift)),
        "{found:?}"
    );
    let next = monitor
        .assess(&cgm(T0 + 35 * MINUTE, 151.0))
        .expect("valid");
    assert_eq!(next.cgm.and_then(|c| c.fault), Some(FaultKind::Drift));
}

#[test]
fn a_sensor_change_over_is_not_a_gap() {
    let hour = |monitor: &mut PatientMonitor, from_min: i64| {
        for i in 0..12 {
            monitor
                .observe(&cgm(T0 + (from_min + i * 5) * MINUTE, 120.0))
                .expect("valid");
        }
    };
    let gap = FindingKind::SensorFault(FaultKind::Gap);
    // A plain two-hour hole is a gap.
    let mut monitor = PatientMonitor::new(models());
    hour(&mut monitor, 0);
    let found = monitor
        .observe(&cgm(T0 + 180 * MINUTE, 121.0))
        .expect("valid");
    assert!(kinds(&found).contains(&gap), "{found:?}");
    // The same hole before a reading marked as a new sensor is not.
    let mut monitor = PatientMonitor::new(models());
    hour(&mut monitor, 0);
    let new_sensor = cgm(T0 + 180 * MINUTE, 121.0).with_flags(SensorFlags {
        new_sensor: true,
        ..SensorFlags::default()
    });
    let found = monitor.observe(&new_sensor).expect("valid");
    assert!(!kinds(&found).contains(&gap), "{found:?}");
    // Nor after the sensor said it was warming up (how BLE CGMs show it).
    let mut monitor = PatientMonitor::new(models());
    hour(&mut monitor, 0);
    let warming = cgm(T0 + 62 * MINUTE, 100.0).with_flags(SensorFlags {
        warming_up: true,
        ..SensorFlags::default()
    });
    monitor.observe(&warming).expect("valid");
    let found = monitor
        .observe(&cgm(T0 + 180 * MINUTE, 121.0))
        .expect("valid");
    assert!(!kinds(&found).contains(&gap), "{found:?}");
}

#[test]
fn the_combination_learns_which_forecaster_suits_the_patient() {
    // A patient whose glucose swings in a slow sine: every component
    // forecasts, and the combination's weights move with their errors.
    let mut monitor = PatientMonitor::new(models());
    let mut first = None;
    let mut last = None;
    for i in 0..(3 * 288) {
        let t = i as f64 * 5.0;
        let value = (140.0 + 50.0 * (t / 240.0 * std::f64::consts::TAU).sin()).round();
        let assessment = monitor
            .assess(&cgm(T0 + i * 5 * MINUTE, value))
            .expect("valid");
        let Some(forecast) = assessment.cgm.and_then(|c| c.forecast) else {
            continue;
        };
        for row in forecast.weights {
            let total: f32 = row.iter().sum();
            assert!((total - 1.0).abs() < 1e-3, "{row:?}");
            // Negative weights are allowed (errors that move together), wild ones not.
            assert!(row.iter().all(|w| (-1.01..=2.01).contains(w)), "{row:?}");
        }
        assert!(forecast.uncertainty_mg_dl.iter().all(|u| *u >= 1.0));
        if i > 2 {
            first.get_or_insert(forecast.weights);
            last = Some(forecast.weights);
        }
    }
    let (first, last) = (first.expect("forecasts"), last.expect("forecasts"));
    assert_ne!(first, last, "the weights never moved");
    // On a smooth swing the last value is the worst forecaster: its weight falls.
    assert!(last[0][2] < first[0][2], "{first:?} -> {last:?}");
}

#[test]
fn noisy_random_streams_never_panic_and_state_stays_small() {
    // Deterministic pseudo-random input: values, NaNs, jitter, repeats,
    // backwards and forwards jumps, every measurement kind.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut monitor = PatientMonitor::new(models());
    let mut at = T0;
    let mut max_state = 0;
    for _ in 0..3000 {
        let r = next();
        at += match r % 20 {
            0 => -((r >> 8) as i64 % (600 * MINUTE)),
            1 => (r >> 8) as i64 % (3000 * MINUTE),
            2 => 0,
            _ => MINUTE * [1, 3, 5, 15][(r >> 5) as usize % 4] + (r >> 12) as i64 % 20_000,
        };
        let value = match (r >> 20) % 50 {
            0 => f64::NAN,
            1 => -1.0,
            2 => 1e9,
            _ => 40.0 + ((r >> 24) % 360) as f64 + ((r >> 40) % 100) as f64 / 100.0,
        };
        let measurement = match (r >> 50) % 10 {
            0 => Measurement::CapillaryGlucose { mg_dl: value },
            1 => Measurement::BloodPressure {
                systolic_mmhg: value / 2.0 + 60.0,
                diastolic_mmhg: value / 4.0 + 40.0,
            },
            2 => Measurement::HeartRate {
                bpm: value / 3.0 + 20.0,
            },
            3 => Measurement::Spo2 {
                percent: 100.0 - value / 40.0,
            },
            4 => Measurement::Temperature {
                celsius: 34.0 + value / 100.0,
            },
            _ => Measurement::CgmGlucose { mg_dl: value },
        };
        let result = monitor.observe(&Sample::new(at, measurement));
        if let Ok(findings) = result {
            for f in findings {
                assert!((0.0..=1.0).contains(&f.confidence), "{f:?}");
                assert!(!f.explanation.is_empty());
            }
        }
        max_state = max_state.max(monitor.state_bytes());
    }
    assert!(max_state < 16 * 1024, "state grew to {max_state} bytes");
}

#[test]
fn shared_models_and_monitors_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Models>();
    send::<PatientMonitor>();
    // Monitors of different patients on different threads, one model set.
    let models = models();
    let handles: Vec<_> = (0..4)
        .map(|p| {
            let models = Arc::clone(&models);
            std::thread::spawn(move || {
                let mut monitor = PatientMonitor::new(models);
                (0..50)
                    .map(|i| {
                        monitor
                            .observe(&cgm(T0 + i * 5 * MINUTE, 100.0 + f64::from(p) + i as f64))
                            .map(|f| f.len())
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
        })
        .collect();
    for handle in handles {
        assert!(handle.join().expect("thread").is_ok());
    }
}
