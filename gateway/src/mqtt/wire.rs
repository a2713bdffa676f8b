//! The MQTT payload format, version 1 (docs/WIRE.md): one JSON reading per
//! message in, one JSON acknowledgement per reading out.

use glyco_contracts::DeviceIdentity;
use serde::{Deserialize, Serialize};

use crate::reading::{
    GlucoseUnit, Measurement, PressureUnit, Reading, SensorFlag, SeqOrigin, TemperatureUnit,
    Transport, UnixMillis, WeightUnit,
};

pub const WIRE_VERSION: u64 = 1;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    #[error("payload is {size} bytes; at most {max} are accepted")]
    TooLarge { size: usize, max: usize },
    #[error("payload is not valid JSON: {0}")]
    NotJson(String),
    #[error("payload has no integer \"v\" (format version)")]
    MissingVersion,
    #[error("format version {0} is not supported (this hub reads version {WIRE_VERSION})")]
    UnsupportedVersion(u64),
    #[error("payload does not match format version 1: {0}")]
    Schema(String),
    #[error("unit {unit:?} is not accepted for {kind}; use one of {expected}")]
    UnknownUnit {
        kind: &'static str,
        unit: String,
        expected: &'static str,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireReadingV1 {
    #[allow(dead_code)]
    v: u64,
    seq: u64,
    #[serde(default)]
    time_ms: Option<UnixMillis>,
    measurement: WireMeasurement,
    #[serde(default)]
    flags: Vec<SensorFlag>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum WireMeasurement {
    Glucose {
        value: f64,
        unit: String,
    },
    CgmGlucose {
        value: f64,
        unit: String,
    },
    BloodPressure {
        systolic: f64,
        diastolic: f64,
        #[serde(default)]
        mean: Option<f64>,
        unit: String,
    },
    HeartRate {
        value: f64,
        unit: String,
    },
    Weight {
        value: f64,
        unit: String,
    },
    Temperature {
        value: f64,
        unit: String,
    },
    Spo2 {
        value: f64,
        unit: String,
        #[serde(default)]
        pulse: Option<f64>,
    },
}

fn unit<U>(
    kind: &'static str,
    given: &str,
    expected: &'static str,
    parse: fn(&str) -> Option<U>,
) -> Result<U, WireError> {
    parse(given).ok_or_else(|| WireError::UnknownUnit {
        kind,
        unit: given.to_owned(),
        expected,
    })
}

fn glucose_unit(s: &str) -> Option<GlucoseUnit> {
    match s {
        "mg/dL" => Some(GlucoseUnit::MgPerDl),
        "mmol/L" => Some(GlucoseUnit::MmolPerL),
        _ => None,
    }
}

fn pressure_unit(s: &str) -> Option<PressureUnit> {
    match s {
        "mmHg" => Some(PressureUnit::MmHg),
        "kPa" => Some(PressureUnit::KPa),
        _ => None,
    }
}

fn weight_unit(s: &str) -> Option<WeightUnit> {
    match s {
        "kg" => Some(WeightUnit::Kg),
        "lb" => Some(WeightUnit::Lb),
        _ => None,
    }
}

fn temperature_unit(s: &str) -> Option<TemperatureUnit> {
    match s {
        "Cel" => Some(TemperatureUnit::Celsius),
        "degF" => Some(TemperatureUnit::Fahrenheit),
        _ => None,
    }
}

fn exact(s: &str, accepted: &'static str) -> Option<()> {
    (s == accepted).then_some(())
}

impl WireMeasurement {
    /// The canonical measurement and the unit as reported.
    fn canonical(self) -> Result<(Measurement, String), WireError> {
        Ok(match self {
            Self::Glucose { value, unit: u } => {
                let g = unit("glucose", &u, "mg/dL, mmol/L", glucose_unit)?;
                (
                    Measurement::CapillaryGlucose {
                        mg_dl: g.to_mg_dl(value),
                    },
                    u,
                )
            }
            Self::CgmGlucose { value, unit: u } => {
                let g = unit("cgm_glucose", &u, "mg/dL, mmol/L", glucose_unit)?;
                (
                    Measurement::CgmGlucose {
                        mg_dl: g.to_mg_dl(value),
                    },
                    u,
                )
            }
            Self::BloodPressure {
                systolic,
                diastolic,
                mean,
                unit: u,
            } => {
                let p = unit("blood_pressure", &u, "mmHg, kPa", pressure_unit)?;
                let m = Measurement::BloodPressure {
                    systolic_mmhg: p.to_mmhg(systolic),
                    diastolic_mmhg: p.to_mmhg(diastolic),
                    mean_mmhg: mean.map(|m| p.to_mmhg(m)),
                };
                (m, u)
            }
            Self::HeartRate { value, unit: u } => {
                unit("heart_rate", &u, "bpm", |s| exact(s, "bpm"))?;
                (Measurement::HeartRate { bpm: value }, u)
            }
            Self::Weight { value, unit: u } => {
                let w = unit("weight", &u, "kg, lb", weight_unit)?;
                (Measurement::Weight { kg: w.to_kg(value) }, u)
            }
            Self::Temperature { value, unit: u } => {
                let t = unit("temperature", &u, "Cel, degF", temperature_unit)?;
                (
                    Measurement::Temperature {
                        celsius: t.to_celsius(value),
                    },
                    u,
                )
            }
            Self::Spo2 {
                value,
                unit: u,
                pulse,
            } => {
                unit("spo2", &u, "%", |s| exact(s, "%"))?;
                (
                    Measurement::Spo2 {
                        percent: value,
                        pulse_bpm: pulse,
                    },
                    u,
                )
            }
        })
    }
}

/// Parses one payload from `device`. Values are converted to canonical
/// units but not yet range-checked (see [`crate::reading::validate`]).
pub fn parse_reading(
    device: &DeviceIdentity,
    payload: &[u8],
    max_bytes: usize,
    received_at: UnixMillis,
) -> Result<Reading, WireError> {
    if payload.len() > max_bytes {
        return Err(WireError::TooLarge {
            size: payload.len(),
            max: max_bytes,
        });
    }
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| WireError::NotJson(e.to_string()))?;
    match value.get("v").and_then(serde_json::Value::as_u64) {
        Some(WIRE_VERSION) => {}
        Some(other) => return Err(WireError::UnsupportedVersion(other)),
        None => return Err(WireError::MissingVersion),
    }
    let wire: WireReadingV1 =
        serde_json::from_value(value).map_err(|e| WireError::Schema(e.to_string()))?;
    let (measurement, reported_unit) = wire.measurement.canonical()?;
    Ok(Reading {
        device: device.clone(),
        transport: Transport::Mqtt,
        seq: wire.seq,
        seq_origin: SeqOrigin::Device,
        device_time: wire.time_ms,
        received_at,
        measurement,
        reported_unit,
        flags: wire.flags,
    })
}

/// The sequence number of a payload that failed to parse, when it has one,
/// so the rejection can still be acknowledged against it.
pub fn salvage_seq(payload: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    value.get("seq")?.as_u64()
}

/// What the hub did with a reading, sent on the device's ack topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckStatus {
    /// Durably stored: stop resending.
    Stored,
    /// Already stored earlier (a resend): stop resending.
    Duplicate,
    /// Refused for the stated reason: resending the same payload will not help.
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub v: u64,
    /// The reading's sequence number; `None` if the payload had none readable.
    pub seq: Option<u64>,
    pub status: AckStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Ack {
    pub fn new(seq: Option<u64>, status: AckStatus, reason: Option<String>) -> Self {
        Self {
            v: WIRE_VERSION,
            seq,
            status,
            reason,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("ack serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> DeviceIdentity {
        DeviceIdentity::name("dev-1").unwrap()
    }

    fn parse(payload: &str) -> Result<Reading, WireError> {
        parse_reading(&device(), payload.as_bytes(), 4096, 1_000)
    }

    #[test]
    fn a_glucose_reading_in_mmol_per_l_is_converted_and_keeps_its_unit() {
        let r = parse(r#"{"v":1,"seq":7,"time_ms":900,"measurement":{"kind":"glucose","value":5.5,"unit":"mmol/L"}}"#)
            .unwrap();
        assert_eq!(r.seq, 7);
        assert_eq!(r.device_time, Some(900));
        assert_eq!(r.received_at, 1_000);
        assert_eq!(r.reported_unit, "mmol/L");
        match r.measurement {
            Measurement::CapillaryGlucose { mg_dl } => assert!((mg_dl - 99.0858).abs() < 1e-9),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_kind_parses() {
        let cases = [
            r#"{"kind":"cgm_glucose","value":140,"unit":"mg/dL"}"#,
            r#"{"kind":"blood_pressure","systolic":16,"diastolic":10.7,"mean":12,"unit":"kPa"}"#,
            r#"{"kind":"heart_rate","value":64,"unit":"bpm"}"#,
            r#"{"kind":"weight","value":154,"unit":"lb"}"#,
            r#"{"kind":"temperature","value":98.6,"unit":"degF"}"#,
            r#"{"kind":"spo2","value":97,"unit":"%","pulse":70}"#,
        ];
        for m in cases {
            let payload = format!(r#"{{"v":1,"seq":1,"measurement":{m},"flags":["low_battery"]}}"#);
            let r = parse(&payload).unwrap_or_else(|e| panic!("{m}: {e}"));
            assert_eq!(r.flags, vec![SensorFlag::LowBattery]);
        }
    }

    #[test]
    fn bad_payloads_get_typed_reasons() {
        assert!(matches!(parse("{not json"), Err(WireError::NotJson(_))));
        assert!(matches!(
            parse(r#"{"seq":1}"#),
            Err(WireError::MissingVersion)
        ));
        assert!(matches!(
            parse(r#"{"v":2,"seq":1}"#),
            Err(WireError::UnsupportedVersion(2))
        ));
        assert!(matches!(
            parse(r#"{"v":1,"seq":1,"measurement":{"kind":"glucose","value":5,"unit":"mg/dl"}}"#),
            Err(WireError::UnknownUnit {
                kind: "glucose",
                ..
            })
        ));
        assert!(matches!(
            parse(r#"{"v":1,"seq":1,"measurement":{"kind":"ketones","value":1,"unit":"mmol/L"}}"#),
            Err(WireError::Schema(_))
        ));
        assert!(matches!(
            parse(
                r#"{"v":1,"seq":-3,"measurement":{"kind":"heart_rate","value":60,"unit":"bpm"}}"#
            ),
            Err(WireError::Schema(_))
        ));
        assert!(matches!(
            parse(
                r#"{"v":1,"seq":1,"extra":true,"measurement":{"kind":"heart_rate","value":60,"unit":"bpm"}}"#
            ),
            Err(WireError::Schema(_))
        ));
        assert!(matches!(
            parse(
                r#"{"v":1,"seq":1,"measurement":{"kind":"heart_rate","value":"NaN","unit":"bpm"}}"#
            ),
            Err(WireError::Schema(_))
        ));
        assert!(matches!(
            parse(
                r#"{"v":1,"seq":1,"measurement":{"kind":"heart_rate","value":NaN,"unit":"bpm"}}"#
            ),
            Err(WireError::NotJson(_))
        ));
        let big = format!(r#"{{"v":1,"pad":"{}"}}"#, "x".repeat(5000));
        assert!(matches!(
            parse(&big),
            Err(WireError::TooLarge { max: 4096, .. })
        ));
    }

    /// Arbitrary bytes, and mutations of a valid payload, never panic.
    #[test]
    fn no_input_makes_the_parser_panic() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let valid = br#"{"v":1,"seq":7,"time_ms":900,"measurement":{"kind":"blood_pressure","systolic":120,"diastolic":80,"unit":"mmHg"}}"#;
        for _ in 0..20_000 {
            let len = (next() % 160) as usize;
            let random: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = parse_reading(&device(), &random, 4096, 0);
            let mut mutated = valid.to_vec();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % mutated.len();
                mutated[at] = next() as u8;
            }
            let _ = parse_reading(&device(), &mutated, 4096, 0);
            let _ = salvage_seq(&mutated);
        }
    }

    #[test]
    fn a_rejected_payloads_seq_is_salvaged_when_readable() {
        assert_eq!(
            salvage_seq(br#"{"v":1,"seq":42,"measurement":{}}"#),
            Some(42)
        );
        assert_eq!(salvage_seq(b"{broken"), None);
    }

    #[test]
    fn acks_serialise_as_documented() {
        let ack = Ack::new(Some(3), AckStatus::Rejected, Some("why".into()));
        assert_eq!(
            String::from_utf8(ack.to_json()).unwrap(),
            r#"{"v":1,"seq":3,"status":"rejected","reason":"why"}"#
        );
        let ack = Ack::new(Some(4), AckStatus::Stored, None);
        assert_eq!(
            String::from_utf8(ack.to_json()).unwrap(),
            r#"{"v":1,"seq":4,"status":"stored"}"#
        );
    }
}
