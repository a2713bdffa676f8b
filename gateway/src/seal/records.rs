//! The seal and anchor outboxes' records, as the journal keeps them (JSON).

use serde::{Deserialize, Serialize};

use glyco_seal::InclusionProof;

use crate::reading::UnixMillis;

/// One sealed batch, numbered from 1 without gaps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRecord {
    /// BLAKE3 of the blob (hex); its CID is derived from it.
    pub hash: String,
    pub bytes: u64,
    pub first_journal_seq: u64,
    pub last_journal_seq: u64,
    pub count: u32,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub kinds: u16,
    pub sealed_at: UnixMillis,
    /// Set when the batch is put under an anchor root.
    #[serde(default)]
    pub anchor: Option<BatchAnchorRef>,
    /// The hub's findings up to this number are in this batch or earlier
    /// ones (each finding in exactly one batch).
    #[serde(default)]
    pub findings_through: u64,
    /// The hub's evidence records up to this number are in this batch's
    /// header or earlier ones.
    #[serde(default)]
    pub evidence_through: u64,
}

/// Where a batch sits under an anchored root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAnchorRef {
    pub anchor_no: u64,
    pub proof: InclusionProof,
}

/// One anchor: a Merkle root over consecutive batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorEntry {
    /// The root (hex, 32 bytes).
    pub root: String,
    pub first_batch: u64,
    pub last_batch: u64,
    /// Unix seconds, as anchored.
    pub window_start: u64,
    pub window_end: u64,
    pub count: u32,
    pub kinds: u16,
    pub prepared_at: UnixMillis,
    pub state: AnchorState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AnchorState {
    /// Written before the transaction is sent; a restart finishes it.
    Prepared,
    /// On chain (this hub's transaction, or an earlier attempt's found there).
    Anchored {
        tx: Option<String>,
        block: Option<u64>,
        gas_used: Option<u64>,
        at: UnixMillis,
    },
}

pub use glyco_seal::hexcode::{hex, unhex32};
