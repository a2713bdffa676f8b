//! The anchor stage: Merkle roots over sealed batches, on chain, in order.
//!
//! An anchor record (root, batch range, window, count, kinds) is committed
//! as `Prepared`, together with each batch's inclusion proof, before its
//! transaction is sent. A restart finishes a prepared anchor first: the
//! Anchors contract keys anchors by (patient, root) and the client reads an
//! existing anchor back before and after sending, so a root is anchored
//! once however often the hub crashes. While the chain is down the stage
//! retries with back-off; afterwards it catches up anchor by anchor, in order.

use std::sync::Arc;
use std::time::Duration;

use glyco_contracts::{
    Address, AnchorOutcome, B256, BatchAnchor, ChainError, DataKinds, GlycoClient,
};
use glyco_seal::{InclusionProof, MerkleError, PatientKey, merkle_root};
use tokio_util::sync::CancellationToken;

use super::records::{AnchorEntry, AnchorState, BatchAnchorRef, BatchRecord, hex, unhex32};
use super::{LastAnchor, SealState};
use crate::journal::{Journal, JournalError, JournalWriter, Outbox};
use crate::reading::now_millis;

#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Merkle(#[from] MerkleError),
    #[error("batch {0}'s record holds no valid hash")]
    BadRecord(u64),
}

pub struct Anchorer {
    pub journal: Journal,
    pub writer: JournalWriter,
    pub client: GlycoClient,
    pub patient: Address,
    pub key: Arc<PatientKey>,
    pub interval: Duration,
    pub max_batches: usize,
    pub state: SealState,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Idle,
    Prepared(u64),
    Anchored(u64),
}

impl Anchorer {
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AnchorError> {
        let mut backoff = super::retry_backoff();
        self.refresh_status()?;
        loop {
            // Chain calls may hang on a frozen node; shutdown does not wait
            // for them. A step cut short is what a crash leaves: the prepared
            // anchor in the journal is finished at the next start.
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                outcome = self.step() => outcome,
            };
            let pause = match outcome {
                Ok(Step::Idle) => {
                    backoff.reset();
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        () = self.publish_pre_key() => {}
                    }
                    Duration::from_millis(250)
                }
                Ok(_) => {
                    backoff.reset();
                    self.state.update(|s| s.anchor_error = None);
                    Duration::ZERO
                }
                Err(AnchorError::Journal(e)) if !e.is_transient() => {
                    return Err(AnchorError::Journal(e));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "anchoring failed; retrying");
                    self.state.update(|s| s.anchor_error = Some(e.to_string()));
                    backoff.next_delay(super::rand_fraction())
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    /// Finishes a prepared anchor, or prepares the next one when due.
    pub async fn step(&self) -> Result<Step, AnchorError> {
        let last = self.journal.last_in::<AnchorEntry>(Outbox::Anchors)?;
        if let Some((no, entry)) = &last
            && entry.state == AnchorState::Prepared
        {
            self.send(*no, entry.clone()).await?;
            return Ok(Step::Anchored(*no));
        }
        let next_batch = last.as_ref().map_or(1, |(_, e)| e.last_batch + 1);
        let batches = self.journal.outbox_from::<BatchRecord>(
            Outbox::Sealed,
            next_batch,
            self.max_batches,
        )?;
        let Some((_, first)) = batches.first() else {
            self.state.update(|s| s.oldest_unanchored_age_ms = None);
            return Ok(Step::Idle);
        };
        let now = now_millis();
        let oldest_age = now.saturating_sub(first.sealed_at).max(0) as u64;
        self.state
            .update(|s| s.oldest_unanchored_age_ms = Some(oldest_age));
        let since_last = last.as_ref().map_or(u64::MAX, |(_, e)| {
            now.saturating_sub(e.prepared_at).max(0) as u64
        });
        if batches.len() < self.max_batches && since_last < self.interval.as_millis() as u64 {
            return Ok(Step::Idle);
        }
        let no = last.map_or(1, |(no, _)| no + 1);
        self.prepare(no, batches, now).await?;
        Ok(Step::Prepared(no))
    }

    async fn prepare(
        &self,
        no: u64,
        batches: Vec<(u64, BatchRecord)>,
        now: i64,
    ) -> Result<(), AnchorError> {
        let mut hashes = Vec::with_capacity(batches.len());
        for (batch_no, record) in &batches {
            hashes.push(unhex32(&record.hash).ok_or(AnchorError::BadRecord(*batch_no))?);
        }
        let root = merkle_root(&hashes)?;
        let proofs = InclusionProof::all(&hashes)?;
        let seconds = |ms: i64| (ms.max(0) / 1000) as u64;
        let entry = AnchorEntry {
            root: hex(&root),
            first_batch: batches[0].0,
            last_batch: batches[batches.len() - 1].0,
            window_start: batches
                .iter()
                .map(|(_, b)| seconds(b.window_start_ms))
                .min()
                .unwrap_or(0),
            window_end: batches
                .iter()
                .map(|(_, b)| seconds(b.window_end_ms))
                .max()
                .unwrap_or(0),
            count: batches
                .iter()
                .map(|(_, b)| b.count)
                .fold(0u32, u32::saturating_add),
            kinds: batches.iter().fold(0, |k, (_, b)| k | b.kinds),
            prepared_at: now,
            state: AnchorState::Prepared,
        };
        let mut records = vec![(Outbox::Anchors, no, json(&entry)?)];
        for ((batch_no, mut record), proof) in batches.into_iter().zip(proofs) {
            record.anchor = Some(BatchAnchorRef {
                anchor_no: no,
                proof,
            });
            records.push((Outbox::Sealed, batch_no, json(&record)?));
        }
        self.writer.put_outbox(records).await?;
        Ok(())
    }

    async fn send(&self, no: u64, mut entry: AnchorEntry) -> Result<(), AnchorError> {
        let root = B256::from(unhex32(&entry.root).ok_or(AnchorError::BadRecord(no))?);
        let batch = BatchAnchor {
            root,
            window_start: entry.window_start,
            window_end: entry.window_end,
            count: entry.count,
            kinds: DataKinds::from_bits(entry.kinds).unwrap_or(DataKinds::ALL),
        };
        let outcome = self.client.anchor(self.patient, batch).await?;
        let (tx, block, gas_used) = match outcome {
            AnchorOutcome::Anchored(tx) => {
                (Some(tx.hash.to_string()), Some(tx.block), Some(tx.gas_used))
            }
            AnchorOutcome::AlreadyAnchored(_) => (None, None, None),
        };
        let at = now_millis();
        entry.state = AnchorState::Anchored {
            tx: tx.clone(),
            block,
            gas_used,
            at,
        };
        self.writer
            .put_outbox(vec![(Outbox::Anchors, no, json(&entry)?)])
            .await?;
        tracing::info!(
            anchor = no,
            root = %entry.root,
            batches = entry.last_batch - entry.first_batch + 1,
            tx = tx.as_deref().unwrap_or("(found on chain)"),
            "anchored"
        );
        self.state.update(|s| {
            s.anchors = no;
            s.batches_anchored = entry.last_batch;
            s.last_anchor = Some(LastAnchor {
                anchor_no: no,
                root: entry.root.clone(),
                tx: tx.unwrap_or_default(),
                block: block.unwrap_or(0),
                gas_used: gas_used.unwrap_or(0),
                batches: entry.last_batch - entry.first_batch + 1,
                at,
            });
        });
        Ok(())
    }

    /// Status counts from the journal (at start; the stages keep them after).
    fn refresh_status(&self) -> Result<(), AnchorError> {
        let anchored = self
            .journal
            .last_in::<AnchorEntry>(Outbox::Anchors)?
            .map(|(no, e)| match e.state {
                AnchorState::Anchored { .. } => (no, e.last_batch),
                AnchorState::Prepared => (no - 1, e.first_batch - 1),
            });
        let key = hex(&self.key.public_bytes());
        self.state.update(|s| {
            s.enabled = true;
            s.patient_pre_key = Some(key);
            if let Some((no, batch)) = anchored {
                s.anchors = no;
                s.batches_anchored = batch;
            }
        });
        Ok(())
    }

    /// Publishes the patient's umbral public key on chain if it is not there
    /// (needs the patient to have authorised this hub; retried while idle).
    async fn publish_pre_key(&self) {
        if self.state.snapshot().pre_key_published {
            return;
        }
        let ours = self.key.public_bytes();
        let published = match self.client.patient_pre_key(self.patient).await {
            Ok(Some(key)) if key == ours => true,
            Ok(_) => match self.client.set_patient_pre_key(self.patient, &ours).await {
                Ok(tx) => {
                    tracing::info!(tx = %tx.hash, "published the patient's umbral public key");
                    true
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot publish the patient's umbral key yet");
                    false
                }
            },
            Err(_) => false,
        };
        self.state.update(|s| s.pre_key_published = published);
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, AnchorError> {
    Ok(serde_json::to_vec(value).map_err(JournalError::from)?)
}
