//! IPFS CIDv1 names for blobs: raw codec (0x55), BLAKE3-256 multihash
//! (0x1e, 32 bytes), multibase base32 lower-case (`b…`): every blob's CID
//! starts `bafkr4`. iroh-blobs names a blob by the same BLAKE3 hash, so the
//! two names convert both ways.

use data_encoding::BASE32_NOPAD;

use crate::BlobHash;

const CID_V1: u8 = 0x01;
const RAW_CODEC: u8 = 0x55;
const BLAKE3_MULTIHASH: u8 = 0x1e;
const DIGEST_LEN: u8 = 32;
const PREFIX: [u8; 4] = [CID_V1, RAW_CODEC, BLAKE3_MULTIHASH, DIGEST_LEN];

/// A blob's CIDv1 (raw, BLAKE3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobCid(pub BlobHash);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidError {
    #[error("a CID here is base32 (multibase 'b'); got {0:?}")]
    NotBase32(String),
    #[error("not base32: {0}")]
    Encoding(String),
    #[error("not a CIDv1 of a raw BLAKE3-256 blob (prefix {0})")]
    WrongPrefix(String),
}

impl BlobCid {
    pub fn hash(&self) -> BlobHash {
        self.0
    }
}

impl std::fmt::Display for BlobCid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut bytes = Vec::with_capacity(PREFIX.len() + 32);
        bytes.extend_from_slice(&PREFIX);
        bytes.extend_from_slice(&self.0);
        write!(f, "b{}", BASE32_NOPAD.encode(&bytes).to_ascii_lowercase())
    }
}

impl std::str::FromStr for BlobCid {
    type Err = CidError;

    fn from_str(s: &str) -> Result<Self, CidError> {
        let Some(body) = s.strip_prefix('b') else {
            return Err(CidError::NotBase32(s.chars().take(8).collect()));
        };
        if body.len() > 64 {
            return Err(CidError::Encoding("too long for a blob CID".into()));
        }
        let bytes = BASE32_NOPAD
            .decode(body.to_ascii_uppercase().as_bytes())
            .map_err(|e| CidError::Encoding(e.to_string()))?;
        if bytes.len() != PREFIX.len() + 32 || bytes[..4] != PREFIX {
            let shown = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
            return Err(CidError::WrongPrefix(shown));
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&bytes[4..]);
        Ok(Self(hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cid_of_the_empty_blob_is_the_one_ipfs_tools_print() {
        // BLAKE3 of no bytes as a raw CIDv1, computed independently with
        // PyPI's `multiformats` and `blake3`:
        // CID("base32", 1, "raw", multihash.wrap(blake3(b"").digest(), "blake3")).
        let cid = BlobCid(*blake3::hash(b"").as_bytes());
        assert_eq!(
            cid.to_string(),
            "bafkr4ifpcne3t5pzugtkaqcn5i3nzskjtpfslsnnyejlpte2spfoihzsmi"
        );
    }

    #[test]
    fn cids_round_trip_and_start_bafkr4() {
        for seed in 0u8..32 {
            let cid = BlobCid(*blake3::hash(&[seed; 7]).as_bytes());
            let text = cid.to_string();
            assert!(text.starts_with("bafkr4"), "{text}");
            assert_eq!(text.parse::<BlobCid>().unwrap(), cid);
        }
    }

    #[test]
    fn other_cids_and_garbage_are_refused() {
        // A CIDv1 dag-pb with sha2-256 (bafy…), a CIDv0 (Qm…), junk.
        let sha = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
        assert!(matches!(
            sha.parse::<BlobCid>(),
            Err(CidError::WrongPrefix(_))
        ));
        assert!(matches!(
            "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG".parse::<BlobCid>(),
            Err(CidError::NotBase32(_))
        ));
        assert!(matches!(
            "b!!!".parse::<BlobCid>(),
            Err(CidError::Encoding(_))
        ));
        assert!(matches!(
            format!("b{}", "a".repeat(500)).parse::<BlobCid>(),
            Err(CidError::Encoding(_))
        ));
    }
}
