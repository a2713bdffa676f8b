//! A test reading through the hub's pipeline, for the health check after an
//! update: a canned MQTT payload is decoded by the wire parser, checked as a
//! device's reading is, sealed into a batch with the patient's key and the
//! hub's signature exactly as the sealer does, and opened again with the
//! patient's key; the daemon adds a write through the journal. Nothing is
//! stored or anchored: a test must not become part of the patient's record.

use alloy::signers::local::PrivateKeySigner;
use glyco_contracts::{Address, DeviceIdentity};
use glyco_seal::body::{BODY_VERSION, BatchBody};
use glyco_seal::{BatchHeader, PatientKey, SealedBatch};
use serde::{Deserialize, Serialize};

use crate::reading::{Limits, Reading, now_millis, validate};

/// The device the test reading claims; it is never stored, so it needs no
/// registration.
const TEST_DEVICE: &str = "hub-selftest";
/// Where the journal step writes the time of the last self-test (META).
pub const META_KEY: &str = "selftest_at";
const PAYLOAD: &[u8] =
    br#"{"v":1,"seq":1,"measurement":{"kind":"glucose","value":5.5,"unit":"mmol/L"}}"#;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfTestStep {
    pub step: String,
    /// `None`: passed; otherwise why not.
    pub failed: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfTestReport {
    pub steps: Vec<SelfTestStep>,
}

impl SelfTestReport {
    pub fn passed(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|s| s.failed.is_none())
    }

    /// The first step that failed, in words.
    pub fn first_failure(&self) -> Option<String> {
        self.steps
            .iter()
            .find_map(|s| s.failed.as_ref().map(|why| format!("{}: {why}", s.step)))
    }

    pub fn push(&mut self, step: &str, result: Result<(), String>) {
        self.steps.push(SelfTestStep {
            step: step.to_owned(),
            failed: result.err(),
        });
    }
}

/// Decode, check, seal and open one canned reading. `sealing` is the
/// patient's key and the hub's signer (absent when sealing is off: then
/// only decoding and checking are tried).
pub fn through_the_pipeline(
    sealing: Option<(&PatientKey, &PrivateKeySigner, Address)>,
) -> SelfTestReport {
    let mut report = SelfTestReport::default();
    let now = now_millis();
    let reading = DeviceIdentity::name(TEST_DEVICE)
        .map_err(|e| e.to_string())
        .and_then(|device| {
            crate::mqtt::wire::parse_reading(&device, PAYLOAD, 4096, now).map_err(|e| e.to_string())
        });
    let reading = match reading {
        Ok(reading) => {
            report.push("decode", Ok(()));
            reading
        }
        Err(e) => {
            report.push("decode", Err(e));
            return report;
        }
    };
    report.push(
        "check",
        validate(&reading, now, &Limits::default()).map_err(|e| e.to_string()),
    );
    if let Some((patient_key, signer, patient)) = sealing {
        report.push(
            "seal",
            seal_and_open(&reading, patient_key, signer, patient),
        );
    }
    report
}

fn seal_and_open(
    reading: &Reading,
    patient_key: &PatientKey,
    signer: &PrivateKeySigner,
    patient: Address,
) -> Result<(), String> {
    let body = BatchBody {
        version: BODY_VERSION,
        readings: vec![(1, reading.clone())],
        findings: vec![],
        quarantined: vec![],
    };
    let now = now_millis();
    let header = BatchHeader {
        patient,
        hub: signer.address(),
        batch_no: 0,
        first_journal_seq: 1,
        last_journal_seq: 1,
        count: 1,
        window_start_ms: now,
        window_end_ms: now,
        kinds: 0,
        sealed_at_ms: now,
        evidence: vec![],
    };
    let plaintext = body.to_bytes().map_err(|e| e.to_string())?;
    let sealed = SealedBatch::seal(header, &plaintext, patient_key.public(), signer)
        .and_then(|batch| batch.to_bytes())
        .and_then(|bytes| SealedBatch::from_bytes(&bytes))
        .map_err(|e| e.to_string())?;
    if sealed.signer().map_err(|e| e.to_string())? != signer.address() {
        return Err("the batch's signature does not recover to the hub".into());
    }
    let opened = sealed
        .open(patient_key.secret())
        .map_err(|e| e.to_string())?;
    let body = BatchBody::from_bytes(&opened).map_err(|e| e.to_string())?;
    match body.readings.as_slice() {
        [(1, back)] if back == reading => Ok(()),
        _ => Err("the opened batch does not hold the reading sealed".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_reading_goes_through_and_a_wrong_key_fails_it() {
        let dir = tempfile::tempdir().unwrap();
        let (key, _) = PatientKey::load_or_create(&dir.path().join("patient.key")).unwrap();
        let signer = PrivateKeySigner::random();
        let report = through_the_pipeline(Some((&key, &signer, Address::repeat_byte(7))));
        assert!(report.passed(), "{report:?}");
        assert_eq!(report.steps.len(), 3);

        let reading = crate::mqtt::wire::parse_reading(
            &DeviceIdentity::name(TEST_DEVICE).unwrap(),
            PAYLOAD,
            4096,
            now_millis(),
        )
        .unwrap();
        let (other, _) = PatientKey::load_or_create(&dir.path().join("other.key")).unwrap();
        // Sealed to one patient, opened with another's key: the step fails.
        let body = BatchBody {
            version: BODY_VERSION,
            readings: vec![(1, reading)],
            findings: vec![],
            quarantined: vec![],
        };
        let sealed = SealedBatch::seal(
            BatchHeader {
                patient: Address::ZERO,
                hub: signer.address(),
                batch_no: 0,
                first_journal_seq: 1,
                last_journal_seq: 1,
                count: 1,
                window_start_ms: 0,
                window_end_ms: 0,
                kinds: 0,
                sealed_at_ms: 0,
                evidence: vec![],
            },
            &body.to_bytes().unwrap(),
            key.public(),
            &signer,
        )
        .unwrap();
        assert!(sealed.open(other.secret()).is_err());
        let mut failing = SelfTestReport::default();
        failing.push("journal", Err("disk full".into()));
        assert!(!failing.passed());
        assert_eq!(failing.first_failure().unwrap(), "journal: disk full");
    }
}
