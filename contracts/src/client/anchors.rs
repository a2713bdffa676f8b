//! Anchors: batch roots keyed by (patient, root), anchored exactly once.

use alloy::primitives::{Address, B256};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;

use super::GlycoClient;
use crate::bindings::Anchors;
use crate::error::{ChainError, Contract, Refusal};
use crate::model::{AnchorRecord, BatchAnchor, DataKinds, TxOutcome};

/// What anchoring a batch came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnchorOutcome {
    /// Anchored by this call.
    Anchored(TxOutcome),
    /// Already on chain for this patient, with this very window, count and
    /// kinds (an earlier attempt landed).
    AlreadyAnchored(AnchorRecord),
}

impl GlycoClient {
    /// Anchors `batch` for `patient`, exactly once. Before sending, and again
    /// if the contract answers `AlreadyAnchored`, it reads the anchor back:
    /// only an anchor of this patient with the same window, count and kinds
    /// counts as done; anything else is [`ChainError::AnchorConflict`].
    pub async fn anchor(
        &self,
        patient: Address,
        batch: BatchAnchor,
    ) -> Result<AnchorOutcome, ChainError> {
        if let Some(existing) = self.anchor_of(patient, batch.root).await? {
            return confirm_same(existing, batch);
        }
        let builder = self.anchors.anchor(
            patient,
            batch.root,
            batch.window_start,
            batch.window_end,
            batch.count,
            batch.kinds.bits(),
        );
        match self.send("anchor", Contract::Anchors, builder).await {
            Ok(outcome) => Ok(AnchorOutcome::Anchored(outcome)),
            Err(ChainError::Refused {
                refusal: Refusal::Anchors(Anchors::AnchorsErrors::AlreadyAnchored(_)),
                ..
            }) => match self.anchor_of(patient, batch.root).await? {
                Some(existing) => confirm_same(existing, batch),
                None => Err(ChainError::AnchorConflict {
                    patient,
                    root: batch.root,
                }),
            },
            Err(e) => Err(e),
        }
    }

    /// The patient's anchor of `root`, if any.
    pub async fn anchor_of(
        &self,
        patient: Address,
        root: B256,
    ) -> Result<Option<AnchorRecord>, ChainError> {
        let a = self
            .view(
                "anchorOf",
                Contract::Anchors,
                self.anchors.anchorOf(patient, root),
            )
            .await?;
        if a.anchoredAt == 0 {
            return Ok(None);
        }
        Ok(Some(AnchorRecord {
            patient,
            submitter: a.submitter,
            batch: BatchAnchor {
                root,
                window_start: a.windowStart,
                window_end: a.windowEnd,
                count: a.count,
                kinds: DataKinds::from_bits(a.kinds).unwrap_or_default(),
            },
            anchored_at: a.anchoredAt,
            seq: a.seq,
        }))
    }

    pub async fn anchor_count(&self, patient: Address) -> Result<u64, ChainError> {
        self.view(
            "anchorCount",
            Contract::Anchors,
            self.anchors.anchorCount(patient),
        )
        .await
    }

    /// The patient's anchored batches from `from_block` to the head, oldest first.
    pub async fn anchors_of(
        &self,
        patient: Address,
        from_block: u64,
    ) -> Result<Vec<AnchorRecord>, ChainError> {
        let call = "eth_getLogs(Anchors)";
        let filter = Filter::new()
            .address(self.deployment.contracts.anchors)
            .event_signature(Anchors::BatchAnchored::SIGNATURE_HASH)
            .topic1(patient.into_word());
        let logs = self.logs(call, filter, from_block, None).await?;
        let mut records = Vec::with_capacity(logs.len());
        for log in &logs {
            let block = log.block_number.unwrap_or_default();
            let e = log
                .log_decode::<Anchors::BatchAnchored>()
                .map_err(|_| ChainError::UndecodableLog { call, block })?
                .inner
                .data;
            // Not every node puts the block timestamp in its logs; ask for the block then.
            let anchored_at = match log.block_timestamp {
                Some(t) => t,
                None => self.block_timestamp(block).await?,
            };
            records.push(AnchorRecord {
                patient: e.patient,
                submitter: e.submitter,
                batch: BatchAnchor {
                    root: e.root,
                    window_start: e.windowStart,
                    window_end: e.windowEnd,
                    count: e.count,
                    kinds: DataKinds::from_bits(e.kinds).unwrap_or_default(),
                },
                anchored_at,
                seq: e.seq,
            });
        }
        Ok(records)
    }
}

fn confirm_same(existing: AnchorRecord, batch: BatchAnchor) -> Result<AnchorOutcome, ChainError> {
    if existing.batch == batch {
        Ok(AnchorOutcome::AlreadyAnchored(existing))
    } else {
        Err(ChainError::AnchorConflict {
            patient: existing.patient,
            root: batch.root,
        })
    }
}
