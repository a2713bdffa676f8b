//! The replication protocol between a hub and a clinic replica (docs/BATCH.md).
//!
//! Over an iroh connection with ALPN [`ALPN`], the replica opens one
//! bidirectional stream per request, writes one JSON [`Request`] and finishes
//! its side; the hub answers with one JSON [`Response`] and finishes. The
//! blobs themselves travel over iroh-blobs on the same endpoint. The hub
//! accepts either protocol only from nodes enrolled on chain for a medical
//! entity.

use serde::{Deserialize, Serialize};

use crate::merkle::InclusionProof;

/// ALPN of the listing and confirmation protocol.
pub const ALPN: &[u8] = b"glyco/replication/1";
/// The largest request or response read (both sides are untrusted).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// The most batches one listing returns or one confirmation names.
pub const MAX_BATCHES_PER_MESSAGE: u32 = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// The hub's batches after batch number `after`, in order, at most `max`.
    List { after: u64, max: u32 },
    /// The replica keeps these blobs (each verified against its hash).
    Confirm { batches: Vec<Confirmation> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub batch_no: u64,
    /// BLAKE3 of the blob, hex.
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    Batches(Listing),
    Confirmed {
        /// Confirmations the hub recorded (new or already known).
        recorded: u32,
        /// Confirmations whose batch or hash the hub does not know.
        rejected: u32,
    },
    /// The request was malformed or too large.
    Refused {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The hub's Ethereum address and its patient.
    pub hub: alloy::primitives::Address,
    pub patient: alloy::primitives::Address,
    /// The hub's newest sealed batch number.
    pub newest: u64,
    pub batches: Vec<BatchListing>,
    /// The patient's current offline emergency kit, if one was made.
    #[serde(default)]
    pub emergency_kit: Option<KitListing>,
}

/// Where the emergency kit is: a blob like the batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KitListing {
    /// BLAKE3 of the kit, hex.
    pub hash: String,
    pub bytes: u64,
    pub generation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchListing {
    pub batch_no: u64,
    /// BLAKE3 of the blob, hex.
    pub hash: String,
    pub bytes: u64,
    /// Set once the batch is under an anchored root.
    pub anchor: Option<AnchorListing>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorListing {
    pub anchor_no: u64,
    /// The Merkle root on chain, hex.
    pub root: String,
    pub proof: InclusionProof,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("malformed message: {0}")]
    Malformed(String),
}

pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, WireError> {
    let bytes = serde_json::to_vec(message).map_err(|e| WireError::Malformed(e.to_string()))?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge(bytes.len()));
    }
    Ok(bytes)
}

pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, WireError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge(bytes.len()));
    }
    serde_json::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_junk_is_a_typed_error() {
        let request = Request::Confirm {
            batches: vec![Confirmation {
                batch_no: 7,
                hash: "ab".repeat(32),
            }],
        };
        let bytes = encode(&request).unwrap();
        assert_eq!(decode::<Request>(&bytes).unwrap(), request);
        assert!(matches!(
            decode::<Request>(b"{\"request\":\"drop_tables\"}"),
            Err(WireError::Malformed(_))
        ));
        let huge = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            decode::<Request>(&huge),
            Err(WireError::TooLarge(_))
        ));
    }
}
