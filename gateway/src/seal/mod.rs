//! After the journal: readings sealed into encrypted, signed batches
//! ([`sealer`]), kept as content-addressed blobs ([`blobs`]), and their
//! Merkle roots anchored on chain ([`anchorer`]), served over iroh to
//! enrolled clinic replicas ([`serve`]), and pruned locally once replicated
//! and anchored ([`pruner`]). Each step reads the one
//! before from a durable outbox in the journal ([`records`]), so a crash
//! at any moment neither skips nor repeats a reading: a reading is in the
//! batch whose record covers its journal sequence number, and the next
//! batch starts after the last record's range.

pub mod anchorer;
pub mod blobs;
pub mod emergency_kit;
/// The batch body lives in the crate shared with the clinic.
pub use glyco_seal::body;
pub mod export;
pub mod pruner;
pub mod records;
pub mod sealer;
pub mod serve;
pub mod sharer;

use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use glyco_seal::reading::UnixMillis;

/// What the seal and anchor stages report (status).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SealStatus {
    pub enabled: bool,
    /// Batches and readings sealed and stored as blobs.
    pub batches_sealed: u64,
    pub readings_sealed: u64,
    /// Readings in the journal not sealed yet, and the oldest one's age.
    pub readings_unsealed: u64,
    /// Why sealing fails, while it keeps failing (a full disk, say).
    pub seal_error: Option<String>,
    pub oldest_unsealed_age_ms: Option<u64>,
    /// Batches whose root is anchored on chain.
    pub batches_anchored: u64,
    pub anchors: u64,
    pub oldest_unanchored_age_ms: Option<u64>,
    /// The last anchor's transaction, block and gas.
    pub last_anchor: Option<LastAnchor>,
    /// Why the last anchoring attempt failed, while it keeps failing.
    pub anchor_error: Option<String>,
    /// The patient's umbral public key (hex), and whether it is on chain.
    pub patient_pre_key: Option<String>,
    pub pre_key_published: bool,
    /// Batches confirmed by a replica (every one from 1 up to here), and the
    /// oldest unreplicated batch's age.
    pub batches_replicated: u64,
    pub oldest_unreplicated_age_ms: Option<u64>,
    /// Batches whose local blob was pruned (every one up to here).
    pub batches_pruned: u64,
    /// The hub's iroh node id and address, for replicas to follow.
    pub node_id: Option<String>,
    pub node_listen: Option<String>,
    /// Why the hub does not serve replicas (its iroh endpoint did not bind).
    pub serve_error: Option<String>,
    /// Nodes refused because they are not enrolled on chain.
    pub node_refusals: u64,
    pub last_refused_node: Option<String>,
    /// Local blobs found damaged or missing at start (their readings are
    /// still in the journal), the first few of them, and how many in all.
    pub damaged_blobs: Vec<DamagedBlob>,
    pub damaged_blob_count: u64,
    /// The patient's current offline emergency kit (replicas fetch it).
    pub emergency_kit: Option<glyco_seal::replication::KitListing>,
    /// Grants shared with the re-encryption proxies (none configured: `None`).
    pub sharing: Option<sharer::ShareStatus>,
}

/// A batch whose local blob does not match its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamagedBlob {
    pub batch_no: u64,
    /// "missing" or "corrupt" (its BLAKE3 is not the recorded one).
    pub problem: String,
    pub replicated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastAnchor {
    pub anchor_no: u64,
    pub root: String,
    pub tx: String,
    pub block: u64,
    pub gas_used: u64,
    pub batches: u64,
    pub at: UnixMillis,
}

/// How the seal and anchor stages wait between failed attempts (a full
/// disk, a chain that is down): from half a second, doubling, up to 30 s.
fn retry_backoff() -> glyco_ble::Backoff {
    glyco_ble::Backoff::new(glyco_ble::BackoffPolicy {
        base: std::time::Duration::from_millis(500),
        cap: std::time::Duration::from_secs(30),
        ..glyco_ble::BackoffPolicy::default()
    })
}

/// Jitter for retries, from the clock (no RNG needed for this).
pub(crate) fn rand_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1000) / 1000.0
}

/// Shared by the stages and the status report.
#[derive(Debug, Clone, Default)]
pub struct SealState(Arc<Mutex<SealStatus>>);

impl SealState {
    pub fn update(&self, f: impl FnOnce(&mut SealStatus)) {
        f(&mut self.0.lock());
    }

    pub fn snapshot(&self) -> SealStatus {
        self.0.lock().clone()
    }
}
