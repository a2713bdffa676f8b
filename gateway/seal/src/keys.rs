//! The patient's umbral key pair. The hub keeps a 32-byte random seed in a
//! file of mode 0600 in its state directory and derives the key from it
//! (umbral's `SecretKeyFactory`), so the file format is the same hex secret
//! as the hub's Ethereum key. The secret is never logged: `PatientKey`'s
//! Debug shows the public key only.

use std::path::{Path, PathBuf};

use glyco_contracts::B256;
use glyco_contracts::keys::{self, load_or_create_secret, read_secret};
use umbral_pre::{PublicKey, SecretKey, SecretKeyFactory};

/// Label of the patient's key in the factory (a versioned derivation).
const PATIENT_KEY_LABEL: &[u8] = b"glyco/patient/v1";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    File(#[from] keys::KeyError),
    #[error("{path}: not an umbral key seed")]
    Seed { path: PathBuf },
    #[error("not an umbral public key (33-byte compressed secp256k1 point): {0}")]
    PublicKey(String),
}

/// The patient's umbral key pair.
pub struct PatientKey {
    secret: SecretKey,
    public: PublicKey,
}

impl std::fmt::Debug for PatientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatientKey")
            .field("public", &crate::hexcode::hex(&self.public_bytes()))
            .finish_non_exhaustive()
    }
}

impl PatientKey {
    fn from_seed(seed: &B256, path: &Path) -> Result<Self, KeyError> {
        let factory = SecretKeyFactory::from_secure_randomness(seed.as_slice()).map_err(|_| {
            KeyError::Seed {
                path: path.to_owned(),
            }
        })?;
        let secret = factory.make_key(PATIENT_KEY_LABEL);
        let public = secret.public_key();
        Ok(Self { secret, public })
    }

    /// Loads the key whose seed is at `path` (mode 0600 or stricter).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        Self::from_seed(&read_secret(path)?, path)
    }

    /// Loads the key, creating a fresh seed (mode 0600) if the file does not
    /// exist. Returns whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KeyError> {
        let (seed, created) = load_or_create_secret(path)?;
        Self::from_seed(&seed, path).map(|k| (k, created))
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }

    /// The public key as published on chain (compressed point, 33 bytes).
    pub fn public_bytes(&self) -> Vec<u8> {
        self.public.to_compressed_bytes().into_vec()
    }
}

/// Reads a public key as published on chain.
pub fn public_key_from_bytes(bytes: &[u8]) -> Result<PublicKey, KeyError> {
    PublicKey::try_from_compressed_bytes(bytes).map_err(KeyError::PublicKey)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_created_key_is_0600_and_loads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("patient.umbral");
        let (created, fresh) = PatientKey::load_or_create(&path).unwrap();
        assert!(fresh);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (loaded, fresh) = PatientKey::load_or_create(&path).unwrap();
        assert!(!fresh);
        assert_eq!(loaded.public_bytes(), created.public_bytes());
        assert_eq!(created.public_bytes().len(), 33);
        let round = public_key_from_bytes(&created.public_bytes()).unwrap();
        assert_eq!(&round, created.public());
    }

    #[test]
    fn a_seed_readable_by_others_is_refused_and_debug_hides_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("patient.umbral");
        let (key, _) = PatientKey::load_or_create(&path).unwrap();
        let seed = std::fs::read_to_string(&path).unwrap();
        let shown = format!("{key:?}");
        assert!(
            !shown.contains(seed.trim().trim_start_matches("0x")),
            "{shown}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            PatientKey::load(&path),
            Err(KeyError::File(keys::KeyError::TooOpen { .. }))
        ));
    }

    #[test]
    fn junk_public_keys_are_typed_errors() {
        for junk in [&[0u8; 33][..], &[2u8; 5], &[]] {
            assert!(matches!(
                public_key_from_bytes(junk),
                Err(KeyError::PublicKey(_))
            ));
        }
    }
}
