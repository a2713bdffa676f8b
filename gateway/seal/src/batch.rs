//! The sealed batch: one blob per batch of a patient's readings.
//!
//! A CBOR map (RFC 8949; docs/BATCH.md has the byte-level example) with a
//! format name and version, a clear header (whose data, which hub, which
//! journal range, time window, count, kinds), the umbral capsule, the
//! ciphertext of the readings (umbral's DEM: XChaCha20-Poly1305 under the
//! capsule's key, the capsule bound as associated data) and the hub's
//! Ethereum signature over all of it. The header is in the clear so a
//! replica or verifier can file and check a batch without any key; the
//! readings are not.

use alloy::primitives::{Address, B256, Signature, keccak256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use serde::{Deserialize, Serialize};
use umbral_pre::{Capsule, PublicKey, SecretKey};

/// The format's name, in every batch.
pub const FORMAT: &str = "glyco-batch";
/// The version this code writes and reads.
pub const VERSION: u16 = 1;
/// The largest batch blob decoded (a blob from the network is untrusted).
pub const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Domain of the hub's signature.
const SIGNING_DOMAIN: &[u8] = b"glyco-batch/1\0";

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("batch of {0} bytes exceeds the {MAX_BATCH_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("not a sealed batch: {0}")]
    Decode(String),
    #[error("not a glyco batch (format {0:?})")]
    Format(String),
    #[error("batch format version {0} is not supported (this build reads {VERSION})")]
    Version(u16),
    #[error("encoding the batch: {0}")]
    Encode(String),
    #[error("sealing: {0}")]
    Seal(String),
    #[error("the hub's signature is malformed or signs nothing: {0}")]
    Signature(String),
    #[error("opening the batch failed (wrong key, or the ciphertext was altered): {0}")]
    Open(String),
}

/// What a batch says about itself, in the clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchHeader {
    /// The patient record whose readings these are.
    pub patient: Address,
    /// The hub that sealed and signed it.
    pub hub: Address,
    /// The hub's batch number for this patient, from 1, without gaps.
    pub batch_no: u64,
    /// The hub journal's sequence numbers of the first and last reading.
    pub first_journal_seq: u64,
    pub last_journal_seq: u64,
    pub count: u32,
    /// Earliest and latest reading time (device clock when known), Unix ms.
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    /// DataKinds bits of the readings (as anchored on chain).
    pub kinds: u16,
    /// When the hub sealed it, Unix ms.
    pub sealed_at_ms: i64,
    /// Evidence of alerts delivered and acknowledgements received since
    /// the previous batch: keccak256 of each signed message's CBOR, in the
    /// clear, so a clinic holding the message proves with this batch's
    /// anchor who was told what, and when (docs/BATCH.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<alloy::primitives::B256>,
}

/// A sealed, signed batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedBatch {
    pub format: String,
    pub version: u16,
    pub header: BatchHeader,
    pub capsule: Capsule,
    #[serde(with = "bytes")]
    pub ciphertext: Vec<u8>,
    /// 65 bytes: r ‖ s ‖ v over [`SealedBatch::signing_digest`].
    #[serde(with = "bytes")]
    pub signature: Vec<u8>,
}

impl SealedBatch {
    /// Encrypts `plaintext` under the patient's key and signs the batch.
    pub fn seal(
        header: BatchHeader,
        plaintext: &[u8],
        patient: &PublicKey,
        hub: &PrivateKeySigner,
    ) -> Result<Self, BatchError> {
        let (capsule, ciphertext) =
            umbral_pre::encrypt(patient, plaintext).map_err(|e| BatchError::Seal(e.to_string()))?;
        let mut batch = Self {
            format: FORMAT.to_owned(),
            version: VERSION,
            header,
            capsule,
            ciphertext: ciphertext.into_vec(),
            signature: Vec::new(),
        };
        let digest = batch.signing_digest()?;
        let signature = hub
            .sign_hash_sync(&digest)
            .map_err(|e| BatchError::Seal(e.to_string()))?;
        batch.signature = signature.as_bytes().to_vec();
        Ok(batch)
    }

    /// What the hub signs: keccak256 of the domain, the header's CBOR, the
    /// capsule's bytes and the ciphertext.
    pub fn signing_digest(&self) -> Result<B256, BatchError> {
        let mut message = SIGNING_DOMAIN.to_vec();
        ciborium::into_writer(&self.header, &mut message)
            .map_err(|e| BatchError::Encode(e.to_string()))?;
        message.extend_from_slice(&self.capsule.to_bytes_simple());
        message.extend_from_slice(&self.ciphertext);
        Ok(keccak256(&message))
    }

    /// The address whose key signed this batch.
    pub fn signer(&self) -> Result<Address, BatchError> {
        let signature = Signature::try_from(self.signature.as_slice())
            .map_err(|e| BatchError::Signature(e.to_string()))?;
        signature
            .recover_address_from_prehash(&self.signing_digest()?)
            .map_err(|e| BatchError::Signature(e.to_string()))
    }

    /// Decrypts the readings with the patient's secret key.
    pub fn open(&self, patient: &SecretKey) -> Result<Vec<u8>, BatchError> {
        umbral_pre::decrypt_original(patient, &self.capsule, &self.ciphertext)
            .map(|b| b.into_vec())
            .map_err(|e| BatchError::Open(e.to_string()))
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, BatchError> {
        let mut out = Vec::with_capacity(self.ciphertext.len() + 512);
        ciborium::into_writer(self, &mut out).map_err(|e| BatchError::Encode(e.to_string()))?;
        Ok(out)
    }

    /// Decodes a blob, checking its size, format name and version (not its
    /// signature: see [`SealedBatch::signer`]).
    pub fn from_bytes(blob: &[u8]) -> Result<Self, BatchError> {
        if blob.len() > MAX_BATCH_BYTES {
            return Err(BatchError::TooLarge(blob.len()));
        }
        // Look at the format first, so another document gets a clear error.
        #[derive(Deserialize)]
        struct Probe {
            format: String,
            version: u16,
        }
        let probe: Probe =
            ciborium::from_reader(blob).map_err(|e| BatchError::Decode(e.to_string()))?;
        if probe.format != FORMAT {
            return Err(BatchError::Format(probe.format.chars().take(40).collect()));
        }
        if probe.version != VERSION {
            return Err(BatchError::Version(probe.version));
        }
        ciborium::from_reader(blob).map_err(|e| BatchError::Decode(e.to_string()))
    }
}

/// One byte string as a CBOR byte string (for lists of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteString(#[serde(with = "bytes")] pub Vec<u8>);

/// Byte strings as CBOR byte strings (serde's default is an array of numbers).
pub(crate) mod bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            // JSON has no byte strings: serde_json writes them as arrays.
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(byte) = seq.next_element::<u8>()? {
                    out.push(byte);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use umbral_pre::SecretKey;

    use super::*;

    fn header() -> BatchHeader {
        BatchHeader {
            patient: Address::repeat_byte(0xaa),
            hub: Address::ZERO,
            batch_no: 7,
            first_journal_seq: 100,
            last_journal_seq: 149,
            count: 50,
            window_start_ms: 1_767_571_200_000,
            window_end_ms: 1_767_571_500_000,
            kinds: 1,
            sealed_at_ms: 1_767_571_560_000,
            evidence: Vec::new(),
        }
    }

    fn sealed(plaintext: &[u8]) -> (SealedBatch, SecretKey, PrivateKeySigner) {
        let patient = SecretKey::random();
        let hub = PrivateKeySigner::random();
        let mut h = header();
        h.hub = hub.address();
        let batch = SealedBatch::seal(h, plaintext, &patient.public_key(), &hub).unwrap();
        (batch, patient, hub)
    }

    #[test]
    fn a_batch_round_trips_opens_with_the_patients_key_only_and_names_its_signer() {
        let (batch, patient, hub) = sealed(b"readings");
        let bytes = batch.to_bytes().unwrap();
        let back = SealedBatch::from_bytes(&bytes).unwrap();
        assert_eq!(back, batch);
        assert_eq!(back.signer().unwrap(), hub.address());
        assert_eq!(back.open(&patient).unwrap(), b"readings");
        assert!(matches!(
            back.open(&SecretKey::random()),
            Err(BatchError::Open(_))
        ));
        // The plaintext is nowhere in the blob.
        assert!(!bytes.windows(8).any(|w| w == b"readings"));
    }

    #[test]
    fn any_change_breaks_the_signature_or_the_ciphertext() {
        let (batch, patient, hub) = sealed(b"readings");
        let mut header_changed = batch.clone();
        header_changed.header.count += 1;
        assert_ne!(header_changed.signer().unwrap(), hub.address());
        let mut ct_changed = batch.clone();
        ct_changed.ciphertext[0] ^= 1;
        assert_ne!(ct_changed.signer().unwrap(), hub.address());
        assert!(ct_changed.open(&patient).is_err());
        let mut sig_cut = batch;
        sig_cut.signature.truncate(10);
        assert!(matches!(sig_cut.signer(), Err(BatchError::Signature(_))));
    }

    #[test]
    fn foreign_documents_and_junk_are_typed_errors() {
        assert!(matches!(
            SealedBatch::from_bytes(b"\xff\x00junk"),
            Err(BatchError::Decode(_))
        ));
        let mut other = Vec::new();
        ciborium::into_writer(
            &serde_json::json!({"format": "other", "version": 1}),
            &mut other,
        )
        .unwrap();
        assert!(matches!(
            SealedBatch::from_bytes(&other),
            Err(BatchError::Format(_))
        ));
        let (mut batch, ..) = sealed(b"x");
        batch.version = 2;
        assert!(matches!(
            SealedBatch::from_bytes(&batch.to_bytes().unwrap()),
            Err(BatchError::Version(2))
        ));
        assert!(matches!(
            SealedBatch::from_bytes(&vec![0u8; MAX_BATCH_BYTES + 1]),
            Err(BatchError::TooLarge(_))
        ));
    }
}
