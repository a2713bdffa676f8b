//! The seal stage: the journal's readings, in order, into sealed batches.
//!
//! The outbox cursor is the last batch record itself: the next batch starts
//! after its `last_journal_seq`. A batch's blob is stored first and its
//! record committed second, so a crash in between re-seals the same
//! readings under the same batch number (the tag moves to the new blob);
//! no reading is skipped and none lands in two recorded batches.

use std::sync::Arc;
use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use glyco_contracts::{Address, DataKinds};
use glyco_seal::{BatchHeader, PatientKey, SealedBatch};
use tokio_util::sync::CancellationToken;

use super::SealState;
use super::blobs::{BlobError, BlobStore};
use super::body::{BODY_VERSION, BatchBody, BodyError, kind_of, reading_time};
use super::records::{BatchRecord, hex};
use crate::analysis::FindingRecord;
use crate::journal::{Journal, JournalError, JournalWriter, Outbox};
use crate::reading::{Reading, now_millis};

/// How often the stage looks for new readings.
const POLL: Duration = Duration::from_millis(250);
/// Findings carried by one batch at most (the rest ride with the next).
const MAX_FINDINGS: usize = 2_000;
/// Evidence digests one batch header carries at most (the rest ride in the
/// next batches).
const MAX_EVIDENCE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    Batch(#[from] glyco_seal::BatchError),
    #[error("sealing task: {0}")]
    Task(String),
}

pub struct Sealer {
    pub journal: Journal,
    pub writer: JournalWriter,
    pub blobs: BlobStore,
    pub key: Arc<PatientKey>,
    pub signer: PrivateKeySigner,
    pub patient: Address,
    pub max_readings: usize,
    pub max_wait: Duration,
    pub state: SealState,
    /// Which readings came from a device in quarantine.
    pub quarantine: crate::quarantine::Quarantine,
}

impl Sealer {
    /// Seals until shutdown. A failure that may pass (a full disk, say) is
    /// shown in status and retried with back-off; the readings wait in the
    /// journal meanwhile. Only a journal that is gone ends the stage.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), SealError> {
        let mut backoff = super::retry_backoff();
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let pause = match self.step().await {
                Ok(sealed) => {
                    if self.state.snapshot().seal_error.is_some() {
                        self.state.update(|s| s.seal_error = None);
                        tracing::info!("sealing works again");
                    }
                    backoff.reset();
                    (!sealed).then_some(POLL)
                }
                Err(SealError::Journal(e)) if !e.is_transient() => {
                    return Err(SealError::Journal(e));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sealing failed; retrying");
                    self.state.update(|s| s.seal_error = Some(e.to_string()));
                    Some(backoff.next_delay(super::rand_fraction()))
                }
            };
            if let Some(pause) = pause {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.cancelled() => return Ok(()),
                }
            }
        }
    }

    /// Seals one batch if one is due; returns whether it did.
    pub async fn step(&self) -> Result<bool, SealError> {
        let last = self.journal.last_in::<BatchRecord>(Outbox::Sealed)?;
        let (batch_no, from, findings_from, evidence_from) = match &last {
            Some((no, record)) => (
                no + 1,
                record.last_journal_seq + 1,
                record.findings_through + 1,
                record.evidence_through + 1,
            ),
            None => (1, 1, 1, 1),
        };
        let pending = self.journal.readings_from(from, self.max_readings)?;
        let newest = self.journal.last_journal_seq()?;
        let now = now_millis();
        let oldest_age = pending
            .first()
            .map(|(_, r)| now.saturating_sub(r.received_at).max(0) as u64);
        self.state.update(|s| {
            s.readings_unsealed = newest.saturating_sub(from.saturating_sub(1));
            s.oldest_unsealed_age_ms = oldest_age;
            if let Some((no, record)) = &last {
                s.batches_sealed = *no;
                s.readings_sealed = record.last_journal_seq;
            }
        });
        let due = pending.len() >= self.max_readings
            || oldest_age.is_some_and(|age| age >= self.max_wait.as_millis() as u64);
        if pending.is_empty() || !due {
            return Ok(false);
        }
        // The findings recorded since the last batch ride with this one.
        let findings = self.journal.outbox_from::<FindingRecord>(
            Outbox::Findings,
            findings_from,
            MAX_FINDINGS,
        )?;
        // So do the digests of alerts and acknowledgements since then.
        let evidence = self.journal.outbox_from::<crate::alerts::EvidenceRecord>(
            Outbox::Evidence,
            evidence_from,
            MAX_EVIDENCE,
        )?;
        let record = self
            .seal(
                batch_no,
                pending,
                (findings, findings_from - 1),
                (evidence, evidence_from - 1),
            )
            .await?;
        self.writer
            .put_outbox(vec![(
                Outbox::Sealed,
                batch_no,
                serde_json::to_vec(&record).map_err(JournalError::from)?,
            )])
            .await?;
        tracing::info!(
            batch = batch_no,
            readings = record.count,
            bytes = record.bytes,
            blake3 = %record.hash,
            "sealed a batch"
        );
        Ok(true)
    }

    async fn seal(
        &self,
        batch_no: u64,
        readings: Vec<(u64, Reading)>,
        (findings, findings_before): (Vec<(u64, FindingRecord)>, u64),
        (evidence, evidence_before): (Vec<(u64, crate::alerts::EvidenceRecord)>, u64),
    ) -> Result<BatchRecord, SealError> {
        let findings_through = findings.last().map_or(findings_before, |(no, _)| *no);
        let evidence_through = evidence.last().map_or(evidence_before, |(no, _)| *no);
        let first_journal_seq = readings.first().map_or(0, |(seq, _)| *seq);
        let last_journal_seq = readings.last().map_or(0, |(seq, _)| *seq);
        let times = readings.iter().map(|(_, r)| reading_time(r));
        let window_start_ms = times.clone().min().unwrap_or(0);
        let window_end_ms = times.max().unwrap_or(0);
        let kinds = readings
            .iter()
            .fold(DataKinds::NONE, |k, (_, r)| k | kind_of(&r.measurement));
        let header = BatchHeader {
            patient: self.patient,
            hub: self.signer.address(),
            batch_no,
            first_journal_seq,
            last_journal_seq,
            count: readings.len() as u32,
            window_start_ms,
            window_end_ms,
            kinds: kinds.bits(),
            sealed_at_ms: now_millis(),
            evidence: evidence.into_iter().map(|(_, e)| e.digest).collect(),
        };
        let quarantined = readings
            .iter()
            .filter(|(seq, r)| self.quarantine.covers(&r.device.to_string(), *seq))
            .map(|(seq, _)| *seq)
            .collect();
        let body = BatchBody {
            version: BODY_VERSION,
            quarantined,
            readings,
            findings: findings.into_iter().map(|(_, f)| f).collect(),
        }
        .to_bytes()?;
        // Encryption and signing are CPU work: off the async threads.
        let (key, signer) = (self.key.clone(), self.signer.clone());
        let sealed_header = header.clone();
        let blob = tokio::task::spawn_blocking(move || {
            SealedBatch::seal(sealed_header, &body, key.public(), &signer)?.to_bytes()
        })
        .await
        .map_err(|e| SealError::Task(e.to_string()))??;
        let bytes = blob.len() as u64;
        let hash = self.blobs.put_batch(batch_no, blob).await?;
        Ok(BatchRecord {
            hash: hex(&hash),
            bytes,
            first_journal_seq,
            last_journal_seq,
            count: header.count,
            window_start_ms,
            window_end_ms,
            kinds: header.kinds,
            sealed_at: header.sealed_at_ms,
            anchor: None,
            findings_through,
            evidence_through,
        })
    }
}
