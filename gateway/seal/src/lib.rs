//! Sealed reading batches, as the hub writes them and anyone granted checks
//! them: the versioned CBOR batch format (docs/BATCH.md), sealing with umbral
//! proxy re-encryption under the patient's key, the hub's signature, Merkle
//! roots and inclusion proofs for anchoring, and IPFS CIDv1 names for blobs.
//! Shared by the hub (`glyco-gateway`) and the clinic (`glyco-clinic`), so
//! neither copies the other's wire types.
#![forbid(unsafe_code)]

pub mod alerts;
pub mod batch;
pub mod body;
pub mod cid;
pub mod emergency;
pub mod enrolment;
pub mod fleet;
pub mod hexcode;
pub mod keys;
pub mod merkle;
pub mod reading;
pub mod replication;
pub mod sharing;
pub mod signed;
pub mod verify;

pub use batch::{BatchError, BatchHeader, SealedBatch};
pub use cid::{BlobCid, CidError};
pub use keys::{KeyError, PatientKey, PhysicianKey};
pub use merkle::{InclusionProof, MerkleError, merkle_root};

/// A blob's BLAKE3-256 hash: what iroh-blobs names it by.
pub type BlobHash = [u8; 32];
