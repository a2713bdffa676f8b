//! Opened readings as a FHIR R4 `Bundle` (type `collection`) of
//! `Observation`s with LOINC codes and UCUM units, for the clinic's record
//! systems. Glucose from a meter is LOINC 2339-0 (glucose in blood), from a
//! CGM 99504-3 (glucose in interstitial fluid); blood pressure is the
//! 85354-9 panel with 8480-6 (systolic) and 8462-4 (diastolic) components.

use glyco_contracts::Address;
use glyco_seal::reading::{Measurement, Reading};
use serde_json::{Value, json};

const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";
const CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

/// The bundle of `readings` of `patient` (their record address as the
/// patient's identifier), each with an id unique within the bundle.
pub fn bundle(patient: Address, readings: &[Reading]) -> Value {
    let entries: Vec<Value> = readings
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let id = format!("glyco-{i}");
            json!({
                "fullUrl": format!("urn:uuid:{}", pseudo_uuid(patient, r, i)),
                "resource": observation(&id, patient, r),
            })
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": iso8601(now_ms()),
        "entry": entries,
    })
}

fn observation(id: &str, patient: Address, r: &Reading) -> Value {
    let (code, display, category) = code_of(&r.measurement);
    let mut o = json!({
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
        "subject": {"identifier": {"system": "urn:glyco:patient", "value": format!("{patient:#x}")}},
        "effectiveDateTime": iso8601(r.measured_at()),
        "device": {"display": r.device.to_string()},
    });
    match r.measurement {
        Measurement::BloodPressure {
            systolic_mmhg,
            diastolic_mmhg,
            ..
        } => {
            o["component"] = json!([
                component(
                    "8480-6",
                    "Systolic blood pressure",
                    systolic_mmhg,
                    "mm[Hg]",
                    "mmHg"
                ),
                component(
                    "8462-4",
                    "Diastolic blood pressure",
                    diastolic_mmhg,
                    "mm[Hg]",
                    "mmHg"
                ),
            ]);
        }
        m => {
            let (value, code, unit) = value_of(&m);
            o["valueQuantity"] = quantity(value, code, unit);
        }
    }
    o
}

fn code_of(m: &Measurement) -> (&'static str, &'static str, &'static str) {
    match m {
        Measurement::CapillaryGlucose { .. } => {
            ("2339-0", "Glucose [Mass/volume] in Blood", "laboratory")
        }
        Measurement::CgmGlucose { .. } => (
            "99504-3",
            "Glucose [Mass/volume] in Interstitial fluid",
            "laboratory",
        ),
        Measurement::BloodPressure { .. } => (
            "85354-9",
            "Blood pressure panel with all children optional",
            "vital-signs",
        ),
        Measurement::HeartRate { .. } => ("8867-4", "Heart rate", "vital-signs"),
        Measurement::Weight { .. } => ("29463-7", "Body weight", "vital-signs"),
        Measurement::Temperature { .. } => ("8310-5", "Body temperature", "vital-signs"),
        Measurement::Spo2 { .. } => (
            "59408-5",
            "Oxygen saturation in Arterial blood by Pulse oximetry",
            "vital-signs",
        ),
    }
}

/// The value, its UCUM code and its human unit.
fn value_of(m: &Measurement) -> (f64, &'static str, &'static str) {
    match *m {
        Measurement::CapillaryGlucose { mg_dl } | Measurement::CgmGlucose { mg_dl } => {
            (mg_dl, "mg/dL", "mg/dL")
        }
        Measurement::HeartRate { bpm } => (bpm, "/min", "beats/minute"),
        Measurement::Weight { kg } => (kg, "kg", "kg"),
        Measurement::Temperature { celsius } => (celsius, "Cel", "°C"),
        Measurement::Spo2 { percent, .. } => (percent, "%", "%"),
        Measurement::BloodPressure { systolic_mmhg, .. } => (systolic_mmhg, "mm[Hg]", "mmHg"),
    }
}

fn quantity(value: f64, code: &str, unit: &str) -> Value {
    json!({"value": round(value), "unit": unit, "system": UCUM, "code": code})
}

fn component(code: &str, display: &str, value: f64, ucum: &str, unit: &str) -> Value {
    json!({
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
        "valueQuantity": quantity(value, ucum, unit),
    })
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// A stable UUID-shaped name for an entry (BLAKE3 of the reading's identity).
fn pseudo_uuid(patient: Address, r: &Reading, i: usize) -> String {
    let key = format!(
        "{patient:#x}|{}|{}|{}|{i}",
        r.device,
        r.seq,
        r.measured_at()
    );
    let h = blake3::hash(key.as_bytes());
    let b = h.as_bytes();
    let hex: String = b[..16].iter().map(|x| format!("{x:02x}")).collect();
    // Version 8 (custom) and the RFC 9562 variant bits.
    format!(
        "{}-{}-8{}-{}{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        ["8", "9", "a", "b"][(b[8] & 3) as usize],
        &hex[17..20],
        &hex[20..32]
    )
}

/// RFC 3339 UTC with milliseconds, as FHIR's dateTime/instant accept.
pub fn iso8601(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601(1_796_083_200_000), "2026-12-01T00:00:00.000Z");
    }
}
