//! Physiological and temporal bounds. A value outside them is rejected with
//! the reason, never clipped: a clipped glucose value could hide a real
//! emergency or invent one.

use serde::{Deserialize, Serialize};

use super::{Measurement, Reading, UnixMillis};

/// Bounds a reading must fall within; the defaults are plausible for a living
/// adult and wider than any device's measuring range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// How far ahead of the hub's clock a device's time may be.
    pub max_future_skew_secs: u64,
    /// How old a reading may be (glucometers hand over months of stored
    /// records after a long disconnect).
    pub max_age_days: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_future_skew_secs: 300,
            max_age_days: 366,
        }
    }
}

/// Fixed physiological ranges, inclusive, in canonical units.
pub const GLUCOSE_MG_DL: (f64, f64) = (20.0, 600.0);
pub const SYSTOLIC_MMHG: (f64, f64) = (40.0, 300.0);
pub const DIASTOLIC_MMHG: (f64, f64) = (20.0, 200.0);
pub const HEART_RATE_BPM: (f64, f64) = (20.0, 300.0);
pub const WEIGHT_KG: (f64, f64) = (0.5, 500.0);
pub const TEMPERATURE_C: (f64, f64) = (25.0, 45.0);
pub const SPO2_PERCENT: (f64, f64) = (50.0, 100.0);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidReading {
    #[error("{field} is not a finite number")]
    NotFinite { field: &'static str },
    #[error("{field} {value} {unit} is outside {min}-{max} {unit}")]
    OutOfRange {
        field: &'static str,
        value: f64,
        min: f64,
        max: f64,
        unit: &'static str,
    },
    #[error("blood pressure {systolic}/{diastolic} mmHg: systolic must exceed diastolic")]
    SystolicNotAboveDiastolic { systolic: f64, diastolic: f64 },
    #[error(
        "mean arterial pressure {mean} mmHg is not between diastolic {diastolic} and systolic {systolic}"
    )]
    MeanOutsidePulsePressure {
        mean: f64,
        systolic: f64,
        diastolic: f64,
    },
    #[error(
        "device time is {ahead_secs} s ahead of the hub's clock (at most {max_secs} s allowed)"
    )]
    InFuture { ahead_secs: i64, max_secs: u64 },
    #[error("device time is {age_days} days old (at most {max_days} allowed)")]
    TooOld { age_days: i64, max_days: u64 },
}

fn in_range(
    field: &'static str,
    value: f64,
    (min, max): (f64, f64),
    unit: &'static str,
) -> Result<(), InvalidReading> {
    if !value.is_finite() {
        return Err(InvalidReading::NotFinite { field });
    }
    if value < min || value > max {
        return Err(InvalidReading::OutOfRange {
            field,
            value,
            min,
            max,
            unit,
        });
    }
    Ok(())
}

/// Checks a measurement's values against the physiological ranges.
pub fn validate_measurement(measurement: &Measurement) -> Result<(), InvalidReading> {
    match *measurement {
        Measurement::CapillaryGlucose { mg_dl } | Measurement::CgmGlucose { mg_dl } => {
            in_range("glucose", mg_dl, GLUCOSE_MG_DL, "mg/dL")
        }
        Measurement::BloodPressure {
            systolic_mmhg,
            diastolic_mmhg,
            mean_mmhg,
        } => {
            in_range("systolic", systolic_mmhg, SYSTOLIC_MMHG, "mmHg")?;
            in_range("diastolic", diastolic_mmhg, DIASTOLIC_MMHG, "mmHg")?;
            if systolic_mmhg <= diastolic_mmhg {
                return Err(InvalidReading::SystolicNotAboveDiastolic {
                    systolic: systolic_mmhg,
                    diastolic: diastolic_mmhg,
                });
            }
            if let Some(mean) = mean_mmhg {
                if !mean.is_finite() {
                    return Err(InvalidReading::NotFinite {
                        field: "mean arterial pressure",
                    });
                }
                if mean < diastolic_mmhg || mean > systolic_mmhg {
                    return Err(InvalidReading::MeanOutsidePulsePressure {
                        mean,
                        systolic: systolic_mmhg,
                        diastolic: diastolic_mmhg,
                    });
                }
            }
            Ok(())
        }
        Measurement::HeartRate { bpm } => in_range("heart rate", bpm, HEART_RATE_BPM, "bpm"),
        Measurement::Weight { kg } => in_range("weight", kg, WEIGHT_KG, "kg"),
        Measurement::Temperature { celsius } => {
            in_range("temperature", celsius, TEMPERATURE_C, "°C")
        }
        Measurement::Spo2 { percent, pulse_bpm } => {
            in_range("SpO2", percent, SPO2_PERCENT, "%")?;
            match pulse_bpm {
                Some(bpm) => in_range("pulse rate", bpm, HEART_RATE_BPM, "bpm"),
                None => Ok(()),
            }
        }
    }
}

fn saturate(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

/// Checks a reading's values and its device time against `now`.
pub fn validate(reading: &Reading, now: UnixMillis, limits: &Limits) -> Result<(), InvalidReading> {
    validate_measurement(&reading.measurement)?;
    if let Some(device_time) = reading.device_time {
        // Device-supplied: any i64 may arrive, so the difference is taken
        // wide (it cannot overflow in i128) and saturated for the message.
        let ahead_ms = i128::from(device_time) - i128::from(now);
        let max_ahead_ms = i128::from(limits.max_future_skew_secs) * 1000;
        if ahead_ms > max_ahead_ms {
            return Err(InvalidReading::InFuture {
                ahead_secs: saturate(ahead_ms / 1000),
                max_secs: limits.max_future_skew_secs,
            });
        }
        let age_days = -ahead_ms / 86_400_000;
        if age_days > i128::from(limits.max_age_days) {
            return Err(InvalidReading::TooOld {
                age_days: saturate(age_days),
                max_days: limits.max_age_days,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::{SeqOrigin, Transport};
    use glyco_contracts::DeviceIdentity;

    const NOW: UnixMillis = 1_795_000_000_000;

    fn reading(measurement: Measurement, device_time: Option<UnixMillis>) -> Reading {
        Reading {
            device: DeviceIdentity::name("dev").unwrap(),
            transport: Transport::Mqtt,
            seq: 1,
            seq_origin: SeqOrigin::Device,
            device_time,
            received_at: NOW,
            measurement,
            reported_unit: "mg/dL".into(),
            flags: vec![],
        }
    }

    fn check(measurement: Measurement) -> Result<(), InvalidReading> {
        validate(&reading(measurement, Some(NOW)), NOW, &Limits::default())
    }

    #[test]
    fn glucose_bounds_are_inclusive_and_never_clipped() {
        assert!(check(Measurement::CapillaryGlucose { mg_dl: 20.0 }).is_ok());
        assert!(check(Measurement::CgmGlucose { mg_dl: 600.0 }).is_ok());
        for bad in [19.9, 600.1, -5.0, 0.0] {
            assert!(
                matches!(
                    check(Measurement::CapillaryGlucose { mg_dl: bad }),
                    Err(InvalidReading::OutOfRange {
                        field: "glucose",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn non_finite_values_are_refused_everywhere() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(matches!(
                check(Measurement::CgmGlucose { mg_dl: bad }),
                Err(InvalidReading::NotFinite { .. })
            ));
            assert!(matches!(
                check(Measurement::Spo2 {
                    percent: 97.0,
                    pulse_bpm: Some(bad)
                }),
                Err(InvalidReading::NotFinite { .. })
            ));
            assert!(matches!(
                check(Measurement::BloodPressure {
                    systolic_mmhg: 120.0,
                    diastolic_mmhg: 80.0,
                    mean_mmhg: Some(bad)
                }),
                Err(InvalidReading::NotFinite { .. })
            ));
        }
    }

    #[test]
    fn blood_pressure_must_be_coherent() {
        let bp = |s, d, m| {
            check(Measurement::BloodPressure {
                systolic_mmhg: s,
                diastolic_mmhg: d,
                mean_mmhg: m,
            })
        };
        assert!(bp(120.0, 80.0, Some(93.0)).is_ok());
        assert!(
            bp(185.0, 125.0, None).is_ok(),
            "a hypertensive crisis is a valid reading"
        );
        assert!(matches!(
            bp(80.0, 120.0, None),
            Err(InvalidReading::SystolicNotAboveDiastolic { .. })
        ));
        assert!(matches!(
            bp(120.0, 80.0, Some(130.0)),
            Err(InvalidReading::MeanOutsidePulsePressure { .. })
        ));
        assert!(matches!(
            bp(350.0, 80.0, None),
            Err(InvalidReading::OutOfRange {
                field: "systolic",
                ..
            })
        ));
    }

    #[test]
    fn the_other_vitals_have_bounds() {
        assert!(check(Measurement::HeartRate { bpm: 72.0 }).is_ok());
        assert!(check(Measurement::HeartRate { bpm: 0.0 }).is_err());
        assert!(check(Measurement::Weight { kg: 70.0 }).is_ok());
        assert!(check(Measurement::Weight { kg: -1.0 }).is_err());
        assert!(check(Measurement::Temperature { celsius: 36.8 }).is_ok());
        assert!(
            check(Measurement::Temperature { celsius: 98.6 }).is_err(),
            "Fahrenheit sent as Celsius"
        );
        assert!(
            check(Measurement::Spo2 {
                percent: 101.0,
                pulse_bpm: None
            })
            .is_err()
        );
    }

    #[test]
    fn extreme_device_times_are_refused_without_overflow() {
        for time in [i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - 1] {
            let result = validate(
                &reading(Measurement::CgmGlucose { mg_dl: 100.0 }, Some(time)),
                NOW,
                &Limits::default(),
            );
            assert!(result.is_err(), "{time}: {result:?}");
        }
    }

    #[test]
    fn device_times_far_in_the_future_or_too_old_are_refused() {
        let limits = Limits::default();
        let at = |t| {
            validate(
                &reading(Measurement::HeartRate { bpm: 60.0 }, Some(t)),
                NOW,
                &limits,
            )
        };
        assert!(at(NOW + 299_000).is_ok());
        assert!(matches!(
            at(NOW + 3_600_000),
            Err(InvalidReading::InFuture {
                ahead_secs: 3600,
                ..
            })
        ));
        assert!(at(NOW - 300 * 86_400_000).is_ok());
        assert!(matches!(
            at(NOW - 400 * 86_400_000),
            Err(InvalidReading::TooOld { .. })
        ));
        // No device time: nothing to check.
        assert!(
            validate(
                &reading(Measurement::HeartRate { bpm: 60.0 }, None),
                NOW,
                &limits
            )
            .is_ok()
        );
    }
}
