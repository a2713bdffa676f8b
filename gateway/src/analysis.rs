//! On-hub analysis: every stored reading goes through the patient's monitor
//! (glyco-ml: clinical rules, forecaster, sensor-fault detector). Findings
//! are logged and counted here; delivering them to physicians is a later
//! stage's job.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;

use glyco_contracts::DeviceIdentity;
use glyco_ml::{Finding, Models, PatientMonitor, Sample, SensorFlags};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::reading::{Measurement, Reading, SensorFlag, UnixMillis, now_millis};

/// Findings kept for the status output.
const RECENT: usize = 20;

pub use glyco_seal::body::FindingRecord;

/// Findings on readings older than this when analysed are late.
pub const LATE_AFTER_MS: i64 = 3600 * 1000;

/// What the analysis did, for the status output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnalysisStatus {
    pub enabled: bool,
    pub readings_analysed: u64,
    /// Findings by (kind, severity).
    pub counts: Vec<(String, String, u64)>,
    /// The latest findings, newest last.
    pub recent: Vec<FindingRecord>,
    /// Readings the monitor refused (implausible for the models); counted,
    /// never an alarm.
    pub errors: u64,
    /// Readings stored while the analysis lagged behind (they are in the
    /// journal, but were not analysed).
    pub missed: u64,
}

/// Shared between the analysis task and the status socket.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    inner: Arc<Mutex<AnalysisStatus>>,
    counts: Arc<Mutex<BTreeMap<(String, String), u64>>>,
}

impl Analysis {
    pub fn new(enabled: bool) -> Self {
        let analysis = Self::default();
        analysis.inner.lock().enabled = enabled;
        analysis
    }

    pub fn status(&self) -> AnalysisStatus {
        let mut status = self.inner.lock().clone();
        status.counts = self
            .counts
            .lock()
            .iter()
            .map(|((kind, severity), n)| (kind.clone(), severity.clone(), *n))
            .collect();
        status
    }

    fn record(
        &self,
        findings: &[DeviceFinding],
        now: UnixMillis,
        time_unknown: bool,
    ) -> Vec<FindingRecord> {
        self.inner.lock().readings_analysed += 1;
        self.record_findings(findings, now, time_unknown)
    }

    /// Counts and keeps findings (for status), returning their records.
    fn record_findings(
        &self,
        findings: &[DeviceFinding],
        now: UnixMillis,
        time_unknown: bool,
    ) -> Vec<FindingRecord> {
        let mut records = Vec::with_capacity(findings.len());
        let mut inner = self.inner.lock();
        let mut counts = self.counts.lock();
        for DeviceFinding { device, finding } in findings {
            let severity = format!("{:?}", finding.severity).to_lowercase();
            *counts
                .entry((finding.kind.name(), severity.clone()))
                .or_default() += 1;
            if inner.recent.len() == RECENT {
                inner.recent.remove(0);
            }
            let record = FindingRecord {
                at: finding.at_ms,
                device: device.clone(),
                kind: finding.kind.name(),
                severity,
                confidence: finding.confidence,
                explanation: finding.explanation.clone(),
                late: time_unknown || is_late(finding, now),
            };
            inner.recent.push(record.clone());
            records.push(record);
        }
        records
    }
}

/// The monitor's view of a reading; `None` for what it does not analyse
/// (weight).
pub fn sample_of(reading: &Reading) -> Option<Sample> {
    let measurement = match reading.measurement {
        Measurement::CgmGlucose { mg_dl } => glyco_ml::Measurement::CgmGlucose { mg_dl },
        Measurement::CapillaryGlucose { mg_dl } => {
            glyco_ml::Measurement::CapillaryGlucose { mg_dl }
        }
        Measurement::BloodPressure {
            systolic_mmhg,
            diastolic_mmhg,
            ..
        } => glyco_ml::Measurement::BloodPressure {
            systolic_mmhg,
            diastolic_mmhg,
        },
        Measurement::HeartRate { bpm } => glyco_ml::Measurement::HeartRate { bpm },
        Measurement::Spo2 { percent, .. } => glyco_ml::Measurement::Spo2 { percent },
        Measurement::Temperature { celsius } => glyco_ml::Measurement::Temperature { celsius },
        Measurement::Weight { .. } => return None,
    };
    let has = |flag| reading.flags.contains(&flag);
    let flags = SensorFlags {
        warming_up: has(SensorFlag::SensorWarmup),
        calibration_required: has(SensorFlag::CalibrationRequired),
        sensor_error: has(SensorFlag::SensorMalfunction)
            || has(SensorFlag::DeviceFault)
            || has(SensorFlag::SessionStopped),
        // The CGM profile has no "new sensor" bit; a change-over shows as
        // warm-up readings, which the monitor remembers.
        new_sensor: false,
    };
    Some(Sample::new(reading.measured_at(), measurement).with_flags(flags))
}

/// How far back a starting hub replays the journal into its monitors: the
/// models look back about two hours, so a restart does not blind them.
pub const WARM_UP_WINDOW_MS: i64 = 3 * 3600 * 1000;
/// At most this many readings are replayed (50 devices at one a minute for
/// three hours stays under it).
pub const WARM_UP_MAX_READINGS: usize = 20_000;

/// A finding with the device it concerns.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceFinding {
    pub device: String,
    pub finding: Finding,
}

/// One monitor per device. The hub serves one patient, but trend and clock
/// checks follow one sensor's stream (two CGMs interleaved would look like
/// clock jumps). An unflagged capillary reading is the exception that
/// crosses devices: besides its meter's own monitor (level rules), every
/// other device's monitor gets it as a reference, and a CGM's compares it
/// with its sensor (calibration drift).
pub struct Monitors {
    models: Arc<Models>,
    by_device: HashMap<DeviceIdentity, (String, PatientMonitor)>,
}

impl Monitors {
    pub fn new(models: Arc<Models>) -> Self {
        Self {
            models,
            by_device: HashMap::new(),
        }
    }

    /// Findings for one reading; `None` for a reading the monitors do not
    /// analyse (weight).
    pub fn observe(
        &mut self,
        reading: &Reading,
    ) -> Option<Result<Vec<DeviceFinding>, glyco_ml::MlError>> {
        let sample = sample_of(reading)?;
        let models = &self.models;
        let (name, monitor) = self
            .by_device
            .entry(reading.device.clone())
            .or_insert_with(|| {
                (
                    reading.device.to_string(),
                    PatientMonitor::new(models.clone()),
                )
            });
        let mut findings: Vec<DeviceFinding> = match monitor.observe(&sample) {
            Ok(findings) => findings
                .into_iter()
                .map(|finding| DeviceFinding {
                    device: name.clone(),
                    finding,
                })
                .collect(),
            Err(e) => return Some(Err(e)),
        };
        // A meter value at its HI/LO limit, from a bad strip, or of unknown
        // time says nothing about a CGM's calibration.
        let trusted = reading.flags.iter().all(|f| *f == SensorFlag::LowBattery);
        if let glyco_ml::Measurement::CapillaryGlucose { mg_dl } = sample.measurement
            && trusted
        {
            for (other, (name, monitor)) in &mut self.by_device {
                if *other == reading.device {
                    continue;
                }
                // Validated above; a monitor without CGM data finds nothing.
                for finding in monitor.reference(sample.at_ms, mg_dl).unwrap_or_default() {
                    findings.push(DeviceFinding {
                        device: name.clone(),
                        finding,
                    });
                }
            }
        }
        Some(Ok(findings))
    }

    /// Replays readings stored before a restart (oldest first) so the
    /// monitors have their history again. What they find is not reported:
    /// it was reported when those readings arrived.
    pub fn warm_up(&mut self, history: &[Reading], now: UnixMillis) -> usize {
        let mut replayed = 0;
        for reading in history
            .iter()
            .filter(|r| r.received_at >= now - WARM_UP_WINDOW_MS)
        {
            if self.observe(reading).is_some() {
                replayed += 1;
            }
        }
        replayed
    }
}

fn is_late(finding: &Finding, now: UnixMillis) -> bool {
    now - finding.at_ms > LATE_AFTER_MS
}

/// Where findings are kept for the sealed batches: the journal's findings
/// outbox, numbered from 1 (this task is its only writer).
pub struct FindingsLog {
    pub writer: crate::journal::JournalWriter,
    pub next: u64,
}

impl FindingsLog {
    pub fn open(
        journal: &crate::journal::Journal,
        writer: crate::journal::JournalWriter,
    ) -> Result<Self, crate::journal::JournalError> {
        let next = journal
            .last_in::<FindingRecord>(crate::journal::Outbox::Findings)?
            .map_or(1, |(no, _)| no + 1);
        Ok(Self { writer, next })
    }

    /// Keeps the findings (one commit). A failure is logged: the findings
    /// are still in status and the log, only not in a batch.
    async fn keep(&mut self, findings: &[FindingRecord]) {
        let mut records = Vec::with_capacity(findings.len());
        for (i, finding) in findings.iter().enumerate() {
            match serde_json::to_vec(finding) {
                Ok(json) => {
                    records.push((crate::journal::Outbox::Findings, self.next + i as u64, json))
                }
                Err(e) => tracing::debug!(error = %e, "finding not encodable"),
            }
        }
        let count = records.len() as u64;
        if count == 0 {
            return;
        }
        match self.writer.put_outbox(records).await {
            Ok(()) => self.next += count,
            Err(e) => tracing::warn!(error = %e, "findings not kept for the sealed batches"),
        }
    }
}

/// What the analysis stage takes in and hands on.
pub struct AnalysisStage {
    pub monitors: Monitors,
    /// Every newly stored reading.
    pub stored: broadcast::Receiver<Reading>,
    /// Findings of the node-behaviour stage.
    pub behaviour: tokio::sync::mpsc::Receiver<Vec<DeviceFinding>>,
    pub analysis: Analysis,
    /// The findings outbox for sealed batches (with sealing on).
    pub log: Option<FindingsLog>,
    pub alerts: crate::alerts::AlertSink,
    pub quarantine: crate::quarantine::Quarantine,
    /// Busy while a reading or findings are worked on (the service
    /// watchdog looks).
    pub busy: crate::supervisor::Busy,
}

/// Analyses stored readings until shutdown.
pub async fn run(stage: AnalysisStage, shutdown: CancellationToken) {
    let AnalysisStage {
        mut monitors,
        mut stored,
        mut behaviour,
        analysis,
        mut log,
        alerts,
        quarantine,
        busy,
    } = stage;
    let mut behaviour_open = true;
    loop {
        let reading = tokio::select! {
            _ = shutdown.cancelled() => return,
            // Node-behaviour findings (logged by their stage) are counted
            // and kept like reading findings; their time is the hub's.
            found = behaviour.recv(), if behaviour_open => {
                match found {
                    Some(findings) => {
                        let _busy = busy.enter();
                        let now = now_millis();
                        let records = analysis.record_findings(&findings, now, false);
                        for record in &records {
                            alerts.finding(record, now);
                        }
                        if let Some(log) = &mut log {
                            log.keep(&records).await;
                        }
                    }
                    None => behaviour_open = false,
                }
                continue;
            }
            r = stored.recv() => match r {
                Ok(r) => r,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "analysis fell behind; readings stay in the journal unanalysed");
                    analysis.inner.lock().missed += n;
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        let _busy = busy.enter();
        match monitors.observe(&reading) {
            None => {}
            Some(Ok(findings)) => {
                let now = now_millis();
                let time_unknown = reading.flags.contains(&SensorFlag::TimeFault);
                for DeviceFinding { device, finding } in &findings {
                    if time_unknown || is_late(finding, now) {
                        tracing::info!(
                            %device,
                            kind = %finding.kind.name(),
                            severity = ?finding.severity,
                            minutes_old = (now - finding.at_ms) / 60_000,
                            explanation = %finding.explanation,
                            "finding on an old reading"
                        );
                    } else {
                        tracing::warn!(
                            %device,
                            kind = %finding.kind.name(),
                            severity = ?finding.severity,
                            confidence = finding.confidence,
                            explanation = %finding.explanation,
                            "finding"
                        );
                    }
                }
                let records = analysis.record(&findings, now, time_unknown);
                // A quarantined device's readings alert no one.
                if !quarantine.is_quarantined(&reading.device.to_string()) {
                    for record in &records {
                        alerts.finding(record, reading.received_at);
                    }
                }
                if let Some(log) = &mut log {
                    log.keep(&records).await;
                }
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, device = %reading.device, "reading not analysed");
                analysis.inner.lock().errors += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::{SeqOrigin, Transport};
    use glyco_contracts::DeviceIdentity;

    fn cgm(at: UnixMillis, mg_dl: f64) -> Reading {
        Reading {
            device: DeviceIdentity::name("cgm-1").unwrap(),
            transport: Transport::Mqtt,
            seq: 0,
            seq_origin: SeqOrigin::Hub,
            device_time: Some(at),
            received_at: at,
            measurement: Measurement::CgmGlucose { mg_dl },
            reported_unit: "mg/dL".into(),
            flags: vec![SensorFlag::SensorMalfunction],
        }
    }

    #[test]
    fn readings_map_to_samples_with_their_flags() {
        let sample = sample_of(&cgm(1_000, 95.0)).unwrap();
        assert_eq!(sample.at_ms, 1_000);
        assert_eq!(
            sample.measurement,
            glyco_ml::Measurement::CgmGlucose { mg_dl: 95.0 }
        );
        assert!(sample.flags.sensor_error);
        let weight = Reading {
            measurement: Measurement::Weight { kg: 70.0 },
            ..cgm(1_000, 0.0)
        };
        assert!(sample_of(&weight).is_none());
    }

    #[test]
    fn after_a_warm_up_the_first_live_reading_is_judged_against_the_history() {
        let models = Arc::new(Models::embedded().unwrap());
        let now = 1_763_856_000_000;
        // An hour of steady, noisy readings before the restart...
        let history: Vec<Reading> = (0..12)
            .map(|i| {
                let mut r = cgm(
                    now - (12 - i) * 300_000,
                    [148.0, 151.0, 149.0, 152.0][i as usize % 4],
                );
                r.flags.clear();
                r
            })
            .collect();
        // ...then a fall of 9 mg/dL/min, 15 minutes long, once the hub is back.
        let live: Vec<Reading> = [123.0, 96.0, 69.0]
            .iter()
            .zip(0..)
            .map(|(&mg_dl, i)| {
                let mut r = cgm(now + i * 300_000, mg_dl);
                r.flags.clear();
                r
            })
            .collect();
        let kinds = |monitors: &mut Monitors| -> Vec<String> {
            live.iter()
                .flat_map(|r| monitors.observe(r).unwrap().unwrap())
                .map(|f| f.finding.kind.name())
                .collect()
        };
        let mut warmed = Monitors::new(models.clone());
        assert_eq!(warmed.warm_up(&history, now), 12);
        let with_history = kinds(&mut warmed);
        let mut cold = Monitors::new(models);
        let without_history = kinds(&mut cold);
        assert!(
            with_history.contains(&"rapid_fall".to_owned()),
            "{with_history:?}"
        );
        assert_ne!(with_history, without_history);
        // Readings older than the window are not replayed.
        assert_eq!(
            Monitors::new(Arc::new(Models::embedded().unwrap()))
                .warm_up(&history, now + WARM_UP_WINDOW_MS + 3_600_000),
            0
        );
    }

    #[test]
    fn a_meter_reading_checks_the_cgm_of_another_device_for_drift() {
        let now = 1_763_856_000_000;
        // An hour of a CGM reading 210 mg/dL.
        let with_cgm_history = || {
            let mut monitors = Monitors::new(Arc::new(Models::embedded().unwrap()));
            for i in 0..12 {
                let mut r = cgm(now - (12 - i) * 300_000, 210.0);
                r.flags.clear();
                monitors.observe(&r).unwrap().unwrap();
            }
            monitors
        };
        let mut monitors = with_cgm_history();
        let meter = Reading {
            device: DeviceIdentity::ble("C0:26:DA:01:02:03").unwrap(),
            measurement: Measurement::CapillaryGlucose { mg_dl: 120.0 },
            flags: vec![],
            ..cgm(now - 60_000, 0.0)
        };
        let findings = monitors.observe(&meter).unwrap().unwrap();
        let drift: Vec<_> = findings
            .iter()
            .filter(|f| f.finding.kind.name() == "sensor_fault:drift")
            .collect();
        assert_eq!(drift.len(), 1, "{findings:#?}");
        assert_eq!(drift[0].device, "name:cgm-1", "the CGM is the suspect");
        // A meter at its LO limit says nothing about the CGM.
        let mut monitors = with_cgm_history();
        let limit = Reading {
            flags: vec![SensorFlag::ResultOutOfRange],
            ..meter
        };
        let findings = monitors.observe(&limit).unwrap().unwrap();
        assert!(
            findings
                .iter()
                .all(|f| f.finding.kind.name() != "sensor_fault:drift"),
            "{findings:#?}"
        );
    }

    #[test]
    fn findings_on_old_readings_are_marked_late() {
        let analysis = Analysis::new(true);
        let now = 1_763_856_000_000;
        let finding = |at_ms| DeviceFinding {
            device: "name:cgm-1".into(),
            finding: Finding {
                kind: glyco_ml::FindingKind::LowGlucose,
                severity: glyco_ml::Severity::Urgent,
                confidence: 1.0,
                at_ms,
                explanation: "low".into(),
            },
        };
        analysis.record(
            &[finding(now - 2 * LATE_AFTER_MS), finding(now - 60_000)],
            now,
            false,
        );
        analysis.record(&[finding(now)], now, true);
        let late: Vec<bool> = analysis.status().recent.iter().map(|r| r.late).collect();
        assert_eq!(late, [true, false, true], "old, current, time unknown");
    }

    #[tokio::test]
    async fn a_falling_cgm_trace_raises_counted_findings() {
        let models = Arc::new(Models::embedded().unwrap());
        let (tx, rx) = broadcast::channel(64);
        let analysis = Analysis::new(true);
        let shutdown = CancellationToken::new();
        let dir = tempfile::tempdir().unwrap();
        let (journal, store) = crate::journal::open(
            &dir.path().join("journal.redb"),
            crate::journal::JournalLimits::default(),
        )
        .unwrap();
        let (writer, journal_task) = store.spawn().unwrap();
        let log = FindingsLog::open(&journal, writer.clone()).unwrap();
        let (_behaviour_tx, behaviour_rx) = tokio::sync::mpsc::channel(1);
        let task = tokio::spawn(run(
            AnalysisStage {
                monitors: Monitors::new(models),
                stored: rx,
                behaviour: behaviour_rx,
                analysis: analysis.clone(),
                log: Some(log),
                alerts: crate::alerts::AlertSink::default(),
                quarantine: crate::quarantine::Quarantine::default(),
                busy: Default::default(),
            },
            shutdown.clone(),
        ));
        // 5-minute CGM readings falling 3 mg/dL/min from 160 to 55.
        let start = 1_763_856_000_000;
        let mut sent = 0;
        for (i, mg_dl) in (0..).zip((49..=160).rev().step_by(15)) {
            let mut reading = cgm(start + i * 300_000, f64::from(mg_dl));
            reading.flags.clear();
            tx.send(reading).unwrap();
            sent += 1;
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while analysis.status().readings_analysed < sent {
            assert!(tokio::time::Instant::now() < deadline, "analysis stalled");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        shutdown.cancel();
        task.await.unwrap();
        let status = analysis.status();
        let kinds: Vec<&str> = status.counts.iter().map(|(k, _, _)| k.as_str()).collect();
        assert!(kinds.contains(&"low_glucose"), "{status:#?}");
        assert!(kinds.contains(&"rapid_fall"), "{status:#?}");
        assert!(!status.recent.is_empty());
        assert_eq!(status.errors, 0);
        // Every finding is kept, numbered from 1, for the sealed batches.
        let total: u64 = status.counts.iter().map(|(_, _, n)| n).sum();
        let kept: Vec<(u64, FindingRecord)> = journal
            .outbox_from(crate::journal::Outbox::Findings, 1, 10_000)
            .unwrap();
        assert_eq!(kept.len() as u64, total);
        assert_eq!(kept.last().map(|(no, _)| *no), Some(total));
        drop(writer);
        journal_task.wait().await.unwrap();
    }
}
