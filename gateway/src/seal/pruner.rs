//! Pruning: a batch's local blob goes only once a replica has confirmed it,
//! its root is anchored on chain, and the retention time has passed since
//! it was sealed. Batches are pruned in order; the journal keeps every
//! batch's record and proof (small) and a `pruned` mark, so status and
//! verification still know where each batch lives.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::SealState;
use super::blobs::{BlobError, BlobStore};
use super::records::{AnchorEntry, AnchorState, BatchRecord};
use super::serve::ReplicatedRecord;
use crate::journal::{Journal, JournalError, JournalWriter, Outbox};
use crate::reading::{UnixMillis, now_millis};

/// Also how often the replicated count and age are refreshed in status.
const POLL: Duration = Duration::from_secs(1);
/// Batches pruned per step at most (each is one tag delete and one commit).
const PER_STEP: usize = 64;
/// Batch records read at once while checking the blobs.
const SCRUB_CHUNK: usize = 256;
/// Damaged blobs named in status (all are counted and logged).
const MAX_DAMAGED_SHOWN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Blob(#[from] BlobError),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrunedRecord {
    pub at: UnixMillis,
}

pub struct Pruner {
    pub journal: Journal,
    pub writer: JournalWriter,
    pub blobs: BlobStore,
    pub retention: Duration,
    pub state: SealState,
}

impl Pruner {
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), PruneError> {
        if let Err(e) = self.scrub().await {
            tracing::warn!(error = %e, "checking the local blobs failed");
        }
        loop {
            let pruned = match self.step().await {
                Ok(pruned) => pruned,
                Err(PruneError::Journal(e)) if !e.is_transient() => {
                    return Err(PruneError::Journal(e));
                }
                // Pruning can wait (a full disk, a busy store): next round.
                Err(e) => {
                    tracing::warn!(error = %e, "pruning failed; retrying");
                    0
                }
            };
            if pruned < PER_STEP {
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = shutdown.cancelled() => return Ok(()),
                }
            }
        }
    }

    /// Prunes the batches that are due, in order; returns how many.
    pub async fn step(&self) -> Result<usize, PruneError> {
        super::serve::refresh_replicated(&self.journal, &self.state)?;
        let mut next = self
            .journal
            .last_in::<PrunedRecord>(Outbox::Pruned)?
            .map_or(1, |(no, _)| no + 1);
        let mut pruned = 0;
        while pruned < PER_STEP && self.due(next)? {
            self.blobs.forget_batch(next).await?;
            let mark = serde_json::to_vec(&PrunedRecord { at: now_millis() })
                .map_err(JournalError::from)?;
            self.writer
                .put_outbox(vec![(Outbox::Pruned, next, mark)])
                .await?;
            pruned += 1;
            next += 1;
        }
        self.state.update(|s| s.batches_pruned = next - 1);
        if pruned > 0 {
            tracing::info!(through = next - 1, pruned, "pruned local blobs");
        }
        Ok(pruned)
    }

    /// Re-hashes every local (unpruned) batch blob against its record, once
    /// at start: a crash or a failing card can damage files. What it finds
    /// is logged and shown in status; the readings stay in the journal.
    pub async fn scrub(&self) -> Result<u64, PruneError> {
        let from = self
            .journal
            .last_in::<PrunedRecord>(Outbox::Pruned)?
            .map_or(1, |(no, _)| no + 1);
        let (mut checked, mut damaged) = (0u64, Vec::new());
        let mut next = from;
        loop {
            let records =
                self.journal
                    .outbox_from::<BatchRecord>(Outbox::Sealed, next, SCRUB_CHUNK)?;
            let Some((last, _)) = records.last() else {
                break;
            };
            next = last + 1;
            for (batch_no, record) in records {
                checked += 1;
                let Some(hash) = super::records::unhex32(&record.hash) else {
                    damaged.push((batch_no, "corrupt"));
                    continue;
                };
                match self.blobs.get(&hash).await {
                    Ok(bytes) if blake3::hash(&bytes).as_bytes() == &hash => {}
                    Ok(_) => damaged.push((batch_no, "corrupt")),
                    Err(BlobError::Missing(_)) => damaged.push((batch_no, "missing")),
                    Err(_) => damaged.push((batch_no, "corrupt")),
                }
            }
        }
        let mut shown = Vec::new();
        for (batch_no, problem) in damaged.iter().take(MAX_DAMAGED_SHOWN) {
            let replicated = self
                .journal
                .outbox_get::<ReplicatedRecord>(Outbox::Replicated, *batch_no)?
                .is_some();
            tracing::error!(
                batch = batch_no,
                problem,
                replicated,
                "a local batch blob is damaged; its readings are still in the journal"
            );
            shown.push(super::DamagedBlob {
                batch_no: *batch_no,
                problem: (*problem).to_owned(),
                replicated,
            });
        }
        let count = damaged.len() as u64;
        self.state.update(|s| {
            s.damaged_blobs = shown;
            s.damaged_blob_count = count;
        });
        tracing::info!(checked, damaged = count, "checked the local batch blobs");
        Ok(count)
    }

    fn due(&self, batch_no: u64) -> Result<bool, PruneError> {
        let Some(record) = self
            .journal
            .outbox_get::<BatchRecord>(Outbox::Sealed, batch_no)?
        else {
            return Ok(false);
        };
        let old_enough = now_millis().saturating_sub(record.sealed_at)
            >= self.retention.as_millis().min(i64::MAX as u128) as i64;
        if !old_enough {
            return Ok(false);
        }
        let replicated = self
            .journal
            .outbox_get::<ReplicatedRecord>(Outbox::Replicated, batch_no)?
            .is_some_and(|r| r.hash == record.hash);
        if !replicated {
            return Ok(false);
        }
        let Some(anchor) = record.anchor else {
            return Ok(false);
        };
        Ok(self
            .journal
            .outbox_get::<AnchorEntry>(Outbox::Anchors, anchor.anchor_no)?
            .is_some_and(|e| matches!(e.state, AnchorState::Anchored { .. })))
    }
}
