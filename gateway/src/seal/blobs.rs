//! The hub's blob store: an iroh-blobs `FsStore` in the state directory.
//! Each sealed batch is added under the named tag `batch/<number>`, so it is
//! kept (iroh-blobs deletes only untagged blobs, and only when garbage
//! collection runs; it is off here until pruning lands). Re-sealing a batch
//! number after a crash moves the tag to the new blob.

use std::path::Path;

use iroh_blobs::Hash;
use iroh_blobs::api::blobs::BlobStatus;
use iroh_blobs::store::fs::FsStore;

use glyco_seal::BlobHash;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("opening the blob store {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("blob store: {0}")]
    Store(String),
    #[error("the blob store named the batch {got}, but its BLAKE3 hash is {want}")]
    HashMismatch { got: String, want: String },
    #[error("blob {0} is not in the store")]
    Missing(String),
}

fn store_error(e: impl std::fmt::Display) -> BlobError {
    BlobError::Store(e.to_string())
}

/// The tag that keeps batch `batch_no`.
pub fn batch_tag(batch_no: u64) -> String {
    format!("batch/{batch_no:020}")
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    store: FsStore,
}

impl BlobStore {
    pub async fn open(dir: &Path) -> Result<Self, BlobError> {
        let store = FsStore::load(dir).await.map_err(|e| BlobError::Open {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self { store })
    }

    /// Adds a batch blob under its batch number's tag and waits until the
    /// store's database has it on disk. Returns its hash.
    pub async fn put_batch(&self, batch_no: u64, blob: Vec<u8>) -> Result<BlobHash, BlobError> {
        let want = *blake3::hash(&blob).as_bytes();
        let added = self
            .store
            .add_bytes(blob)
            .with_named_tag(batch_tag(batch_no))
            .await
            .map_err(store_error)?;
        let got = *added.hash.as_bytes();
        if got != want {
            return Err(BlobError::HashMismatch {
                got: added.hash.to_hex(),
                want: Hash::from_bytes(want).to_hex(),
            });
        }
        self.store.sync_db().await.map_err(store_error)?;
        Ok(got)
    }

    /// The whole blob, if complete in the store.
    pub async fn get(&self, hash: &BlobHash) -> Result<Vec<u8>, BlobError> {
        let hash = Hash::from_bytes(*hash);
        match self.store.status(hash).await.map_err(store_error)? {
            BlobStatus::Complete { .. } => {}
            _ => return Err(BlobError::Missing(hash.to_hex())),
        }
        let bytes = self.store.get_bytes(hash).await.map_err(store_error)?;
        Ok(bytes.to_vec())
    }

    pub async fn has(&self, hash: &BlobHash) -> Result<bool, BlobError> {
        self.store
            .has(Hash::from_bytes(*hash))
            .await
            .map_err(store_error)
    }

    /// The underlying store (for serving it over iroh).
    pub fn inner(&self) -> &FsStore {
        &self.store
    }

    /// Closes the store (its database lock is released when this returns).
    pub async fn shutdown(&self) {
        if let Err(e) = self.store.shutdown().await {
            tracing::debug!(error = %e, "blob store shutdown");
        }
    }
}
