//! The replica's store: plain files, content-addressed, so the verifier and
//! the proxy can read them while the replica runs.
//!
//! ```text
//! <dir>/node.key                      iroh node key (0600)
//! <dir>/blobs/<blake3 hex>.batch      the sealed batch, exactly as the hub stored it
//! <dir>/meta/<blake3 hex>.json        BatchMeta: hub, patient, number, anchor and proof
//! <dir>/hubs/<hub address>/cursor.json
//! <dir>/hubs/<hub address>/batches/<number>   the batch's hash (hex)
//! ```
//!
//! Every file is written to a temporary name, synced and renamed, so a crash
//! leaves either the old file or the new one.

use std::path::{Path, PathBuf};

use glyco_contracts::Address;
use glyco_seal::hexcode::{hex, unhex32};
use glyco_seal::replication::AnchorListing;
use glyco_seal::{BlobCid, BlobHash};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not valid JSON: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("blob {0} is not in the replica")]
    Missing(String),
}

/// What the replica knows about one batch besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMeta {
    pub hub: Address,
    pub patient: Address,
    pub batch_no: u64,
    /// BLAKE3 hex, and the same as an IPFS CIDv1.
    pub hash: String,
    pub cid: String,
    pub bytes: u64,
    pub first_journal_seq: u64,
    pub last_journal_seq: u64,
    pub count: u32,
    pub fetched_at_ms: i64,
    /// The root and inclusion proof, once the hub has anchored the batch.
    pub anchor: Option<AnchorListing>,
}

/// How far the replica has followed one hub.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubCursor {
    /// Every batch up to here is stored (and confirmed to the hub).
    pub stored_through: u64,
    /// Every batch up to here also has its anchor proof.
    pub proven_through: u64,
    /// The hub's newest batch when last asked.
    pub hub_newest: u64,
}

#[derive(Debug, Clone)]
pub struct ReplicaStore {
    dir: PathBuf,
}

impl ReplicaStore {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        for sub in ["blobs", "meta", "hubs"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).map_err(|source| StoreError::Io { path, source })?;
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    pub fn node_key_path(&self) -> PathBuf {
        self.dir.join("node.key")
    }

    fn blob_path(&self, hash: &BlobHash) -> PathBuf {
        self.dir.join("blobs").join(format!("{}.batch", hex(hash)))
    }

    fn meta_path(&self, hash: &BlobHash) -> PathBuf {
        self.dir.join("meta").join(format!("{}.json", hex(hash)))
    }

    fn hub_dir(&self, hub: Address) -> PathBuf {
        self.dir.join("hubs").join(format!("{hub:#x}"))
    }

    /// Where the hub's patient's current emergency kit is kept.
    pub fn kit_path(&self, hub: Address) -> PathBuf {
        self.hub_dir(hub).join("emergency.kit")
    }

    /// The kept emergency kit's bytes, if any.
    pub fn kit(&self, hub: Address) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.kit_path(hub);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    pub fn put_kit(&self, hub: Address, bytes: &[u8]) -> Result<(), StoreError> {
        let dir = self.hub_dir(hub);
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        write_atomically(&self.kit_path(hub), bytes)
    }

    pub fn has_blob(&self, hash: &BlobHash) -> bool {
        self.blob_path(hash).is_file()
    }

    /// The blob's bytes, exactly as stored (verification checks them).
    pub fn blob(&self, hash: &BlobHash) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(hash);
        std::fs::read(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => StoreError::Missing(BlobCid(*hash).to_string()),
            _ => StoreError::Io { path, source },
        })
    }

    pub fn put_blob(&self, hash: &BlobHash, bytes: &[u8]) -> Result<(), StoreError> {
        write_atomically(&self.blob_path(hash), bytes)
    }

    pub fn meta(&self, hash: &BlobHash) -> Result<Option<BatchMeta>, StoreError> {
        read_json(&self.meta_path(hash))
    }

    pub fn put_meta(&self, meta: &BatchMeta, hash: &BlobHash) -> Result<(), StoreError> {
        write_json(&self.meta_path(hash), meta)?;
        let batches = self.hub_dir(meta.hub).join("batches");
        std::fs::create_dir_all(&batches).map_err(|source| StoreError::Io {
            path: batches.clone(),
            source,
        })?;
        write_atomically(
            &batches.join(meta.batch_no.to_string()),
            meta.hash.as_bytes(),
        )
    }

    /// The hash of a hub's batch, if the replica has it.
    pub fn batch_hash(&self, hub: Address, batch_no: u64) -> Result<Option<BlobHash>, StoreError> {
        let path = self.hub_dir(hub).join("batches").join(batch_no.to_string());
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(unhex32(text.trim())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    pub fn cursor(&self, hub: Address) -> Result<HubCursor, StoreError> {
        Ok(read_json(&self.hub_dir(hub).join("cursor.json"))?.unwrap_or_default())
    }

    pub fn put_cursor(&self, hub: Address, cursor: &HubCursor) -> Result<(), StoreError> {
        let dir = self.hub_dir(hub);
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        write_json(&dir.join("cursor.json"), cursor)
    }

    /// The hubs this replica has followed.
    pub fn hubs(&self) -> Result<Vec<Address>, StoreError> {
        let path = self.dir.join("hubs");
        let entries = std::fs::read_dir(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect())
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                path: path.to_owned(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StoreError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    write_atomically(path, &bytes)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    glyco_contracts::files::write_atomically(path, bytes).map_err(|source| StoreError::Io {
        path: path.to_owned(),
        source,
    })
}
