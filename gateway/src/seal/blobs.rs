//! The hub's blob store: an iroh-blobs `FsStore` in the state directory.
//! Each sealed batch is added under the named tag `batch/<number>`, so it is
//! kept: iroh-blobs' garbage collection deletes only untagged blobs. Pruning
//! removes a batch's tag; the next collection deletes its data. Re-sealing
//! a batch number after a crash moves the tag to the new blob, and the
//! collection deletes the orphan.

use std::path::Path;
use std::time::Duration;

use iroh_blobs::Hash;
use iroh_blobs::api::blobs::BlobStatus;
use iroh_blobs::store::GcConfig;
use iroh_blobs::store::fs::FsStore;
use iroh_blobs::store::fs::options::{InlineOptions, Options};

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
    #[error("the disk is full: {available} bytes free, {reserve} kept in reserve")]
    DiskFull { available: u64, reserve: u64 },
}

fn store_error(e: impl std::fmt::Display) -> BlobError {
    BlobError::Store(e.to_string())
}

/// The tag that keeps the patient's current emergency kit.
pub const EMERGENCY_KIT_TAG: &str = "emergency/kit";

/// The tag that keeps batch `batch_no`.
pub fn batch_tag(batch_no: u64) -> String {
    format!("batch/{batch_no:020}")
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    store: FsStore,
    dir: std::path::PathBuf,
    /// Free space left on the disk: no blob is added below it.
    reserve: u64,
}

impl BlobStore {
    /// Opens the store; `gc_interval` is how often untagged blobs are
    /// deleted (`None`: never, for readers that must not change it).
    pub async fn open(dir: &Path, gc_interval: Option<Duration>) -> Result<Self, BlobError> {
        let mut options = Options::new(dir);
        // Every batch in a file of its own (iroh-blobs would keep blobs up
        // to 16 KiB inside its database): damage stays with one batch, and
        // the database stays small.
        options.inline = InlineOptions {
            max_data_inlined: 0,
            ..InlineOptions::default()
        };
        options.gc = gc_interval.map(|interval| GcConfig {
            interval,
            add_protected: None,
        });
        let store = FsStore::load_with_opts(dir.join("blobs.db"), options)
            .await
            .map_err(|e| BlobError::Open {
                path: dir.display().to_string(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            store,
            dir: dir.to_owned(),
            reserve: 0,
        })
    }

    /// Keeps `bytes` free on the store's filesystem (iroh-blobs' database,
    /// like redb, must be reopened after a write fails for lack of space).
    pub fn reserving(mut self, bytes: u64) -> Self {
        self.reserve = bytes;
        self
    }

    /// Drops batch `batch_no`'s tag: its blob goes at the next collection.
    pub async fn forget_batch(&self, batch_no: u64) -> Result<(), BlobError> {
        self.store
            .tags()
            .delete(batch_tag(batch_no))
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Adds a batch blob under its batch number's tag and waits until the
    /// store's database has it on disk. Returns its hash.
    pub async fn put_batch(&self, batch_no: u64, blob: Vec<u8>) -> Result<BlobHash, BlobError> {
        self.put_tagged(batch_tag(batch_no), blob).await
    }

    /// The patient's emergency kit, under [`EMERGENCY_KIT_TAG`] (a new kit
    /// replaces the old: its blob goes at the next collection).
    pub async fn put_emergency_kit(&self, blob: Vec<u8>) -> Result<BlobHash, BlobError> {
        self.put_tagged(EMERGENCY_KIT_TAG.to_owned(), blob).await
    }

    /// The current emergency kit's hash, if one was made.
    pub async fn emergency_kit(&self) -> Result<Option<BlobHash>, BlobError> {
        let tag = self
            .store
            .tags()
            .get(EMERGENCY_KIT_TAG)
            .await
            .map_err(store_error)?;
        Ok(tag.map(|t| *t.hash.as_bytes()))
    }

    async fn put_tagged(&self, tag: String, blob: Vec<u8>) -> Result<BlobHash, BlobError> {
        crate::disk::check_reserve(&self.dir, self.reserve.saturating_add(blob.len() as u64))
            .map_err(|(available, reserve)| BlobError::DiskFull { available, reserve })?;
        let want = *blake3::hash(&blob).as_bytes();
        let added = self
            .store
            .add_bytes(blob)
            .with_named_tag(tag)
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
