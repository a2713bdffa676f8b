//! MQTT device credentials. A device's secret is generated when it is
//! provisioned and shown once; the hub keeps only its SHA-256. Secrets are 32
//! random bytes, so a plain hash is enough: there is nothing to brute-force.
//!
//! The file (`device-credentials.json`, mode 0600) is written atomically by
//! `glyco-hub device add` and re-read by the daemon when it changes.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::reading::{UnixMillis, now_millis};

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read credentials {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("credentials file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write credentials {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no randomness available: {0}")]
    Random(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsFile {
    pub devices: BTreeMap<String, DeviceCredential>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceCredential {
    /// Hex SHA-256 of the device's secret.
    pub secret_sha256: String,
    pub created_at: UnixMillis,
}

fn digest_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl CredentialsFile {
    pub fn load(path: &Path) -> Result<Self, CredentialsError> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|source| CredentialsError::Parse {
                path: path.to_owned(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(CredentialsError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Writes atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), CredentialsError> {
        let write = |source| CredentialsError::Write {
            path: path.to_owned(),
            source,
        };
        let json = serde_json::to_vec_pretty(self).expect("credentials serialise");
        glyco_contracts::files::write_atomically(path, &json).map_err(write)
    }

    /// Creates (or replaces) the device's credential; returns the secret,
    /// which is not stored anywhere.
    pub fn provision(&mut self, device: &str) -> Result<String, CredentialsError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| CredentialsError::Random(e.to_string()))?;
        let secret = hex::encode(bytes);
        self.devices.insert(
            device.to_owned(),
            DeviceCredential {
                secret_sha256: digest_hex(&secret),
                created_at: now_millis(),
            },
        );
        Ok(secret)
    }

    pub fn revoke(&mut self, device: &str) -> bool {
        self.devices.remove(device).is_some()
    }

    pub fn verify(&self, device: &str, secret: &str) -> bool {
        self.devices
            .get(device)
            .is_some_and(|c| c.secret_sha256 == digest_hex(secret))
    }
}

/// The daemon's view of the credentials file, re-read when it changes.
#[derive(Debug)]
pub struct CredentialStore {
    path: PathBuf,
    cached: Mutex<(Option<SystemTime>, CredentialsFile)>,
}

impl CredentialStore {
    pub fn open(path: PathBuf) -> Result<Self, CredentialsError> {
        let file = CredentialsFile::load(&path)?;
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        Ok(Self {
            path,
            cached: Mutex::new((mtime, file)),
        })
    }

    fn refresh(&self) -> parking_lot::MutexGuard<'_, (Option<SystemTime>, CredentialsFile)> {
        let mut cached = self.cached.lock();
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if mtime != cached.0 {
            match CredentialsFile::load(&self.path) {
                Ok(file) => *cached = (mtime, file),
                // Keep the last good copy: a half-edited file must not lock every device out.
                Err(e) => tracing::error!(error = %e, "device credentials not reloaded"),
            }
        }
        cached
    }

    pub fn verify(&self, device: &str, secret: &str) -> bool {
        self.refresh().1.verify(device, secret)
    }

    /// The names of every provisioned device.
    pub fn devices(&self) -> Vec<String> {
        self.refresh().1.devices.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provisioned_secret_verifies_and_only_its_hash_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device-credentials.json");
        let mut file = CredentialsFile::default();
        let secret = file.provision("cuff-1").unwrap();
        file.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&secret));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let store = CredentialStore::open(path.clone()).unwrap();
        assert!(store.verify("cuff-1", &secret));
        assert!(!store.verify("cuff-1", "wrong"));
        assert!(!store.verify("cuff-2", &secret));
    }

    #[test]
    fn the_store_follows_changes_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device-credentials.json");
        let store = CredentialStore::open(path.clone()).unwrap();
        assert!(store.devices().is_empty());
        let mut file = CredentialsFile::default();
        let secret = file.provision("cgm-1").unwrap();
        // Make sure the modification time differs from the (absent) file's.
        file.save(&path).unwrap();
        assert!(store.verify("cgm-1", &secret));
        file.revoke("cgm-1");
        std::thread::sleep(std::time::Duration::from_millis(20));
        file.save(&path).unwrap();
        let bumped = SystemTime::now() + std::time::Duration::from_secs(1);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(bumped)
            .unwrap();
        assert!(!store.verify("cgm-1", &secret));
    }
}
