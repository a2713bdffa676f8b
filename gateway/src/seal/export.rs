//! One batch as the running hub hands it to `glyco-hub verify` over the
//! status socket: its record, its proof once anchored, and its bytes unless
//! pruned. (The journal and blob store are locked while the hub runs, so
//! the verifier cannot open them itself.)

use glyco_seal::replication::AnchorListing;
use serde::{Deserialize, Serialize};

use super::blobs::BlobStore;
use super::pruner::PrunedRecord;
use super::records::{AnchorEntry, AnchorState, BatchRecord, hex, unhex32};
use super::serve::ReplicatedRecord;
use crate::journal::{Journal, JournalError, Outbox};

/// Which batch: by number, by a reading's journal sequence number, or by
/// its BLAKE3 hash / CID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchSelector {
    Number(u64),
    Reading(u64),
    Hash(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchExport {
    pub batch_no: u64,
    pub record: BatchRecord,
    /// The root and proof, once anchored on chain.
    pub anchor: Option<AnchorListing>,
    /// The replica node that confirmed it, if any.
    pub replicated_to: Option<String>,
    pub pruned: bool,
    /// The blob, hex (absent once pruned).
    pub blob_hex: Option<String>,
}

/// Batches scanned per journal read when looking a hash up.
const SCAN_CHUNK: usize = 1024;

pub async fn export(
    journal: &Journal,
    blobs: &BlobStore,
    selector: BatchSelector,
) -> Result<BatchExport, String> {
    let found = find(journal, &selector).map_err(|e| e.to_string())?;
    let (batch_no, record) =
        found.ok_or_else(|| format!("no sealed batch matches {selector:?}"))?;
    let anchor = match &record.anchor {
        Some(at) => journal
            .outbox_get::<AnchorEntry>(Outbox::Anchors, at.anchor_no)
            .map_err(|e| e.to_string())?
            .filter(|e| matches!(e.state, AnchorState::Anchored { .. }))
            .map(|e| AnchorListing {
                anchor_no: at.anchor_no,
                root: e.root,
                proof: at.proof.clone(),
            }),
        None => None,
    };
    let replicated_to = journal
        .outbox_get::<ReplicatedRecord>(Outbox::Replicated, batch_no)
        .map_err(|e| e.to_string())?
        .map(|r| r.node);
    let pruned = journal
        .outbox_get::<PrunedRecord>(Outbox::Pruned, batch_no)
        .map_err(|e| e.to_string())?
        .is_some();
    let hash = unhex32(&record.hash).ok_or("the batch record holds no valid hash")?;
    let blob_hex = if pruned {
        None
    } else {
        Some(hex(&blobs.get(&hash).await.map_err(|e| e.to_string())?))
    };
    Ok(BatchExport {
        batch_no,
        record,
        anchor,
        replicated_to,
        pruned,
        blob_hex,
    })
}

fn find(
    journal: &Journal,
    selector: &BatchSelector,
) -> Result<Option<(u64, BatchRecord)>, JournalError> {
    match selector {
        BatchSelector::Number(no) => Ok(journal
            .outbox_get::<BatchRecord>(Outbox::Sealed, *no)?
            .map(|r| (*no, r))),
        BatchSelector::Reading(seq) => {
            // Batches cover consecutive journal ranges in order.
            let newest = journal
                .last_in::<BatchRecord>(Outbox::Sealed)?
                .map_or(0, |(no, _)| no);
            let (mut low, mut high) = (1u64, newest);
            while low <= high {
                let mid = low + (high - low) / 2;
                let Some(record) = journal.outbox_get::<BatchRecord>(Outbox::Sealed, mid)? else {
                    return Ok(None);
                };
                if *seq < record.first_journal_seq {
                    high = mid - 1;
                } else if *seq > record.last_journal_seq {
                    low = mid + 1;
                } else {
                    return Ok(Some((mid, record)));
                }
            }
            Ok(None)
        }
        BatchSelector::Hash(text) => {
            let Some(hash) = parse_hash(text) else {
                return Ok(None);
            };
            let want = hex(&hash);
            let mut from = 1;
            loop {
                let chunk = journal.outbox_from::<BatchRecord>(Outbox::Sealed, from, SCAN_CHUNK)?;
                let Some((last, _)) = chunk.last() else {
                    return Ok(None);
                };
                from = last + 1;
                if let Some(hit) = chunk.into_iter().find(|(_, r)| r.hash == want) {
                    return Ok(Some(hit));
                }
            }
        }
    }
}

/// A BLAKE3 hash from hex or from its CID.
pub fn parse_hash(text: &str) -> Option<glyco_seal::BlobHash> {
    unhex32(text).or_else(|| text.parse::<glyco_seal::BlobCid>().ok().map(|c| c.hash()))
}
