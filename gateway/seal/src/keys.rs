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
/// Label of the key that signs the patient's kfrags (umbral's `Signer`): a
/// key of its own, so the delegating key never signs.
const KFRAG_SIGNER_LABEL: &[u8] = b"glyco/patient/kfrag-signer/v1";
/// Label of the secret that seeds kfrag generation: the same grant always
/// gets the same kfrags, so a hub that restarts mid-delivery sends every
/// proxy a share of one set, never shares of two sets that cannot combine.
const KFRAG_RNG_LABEL: &[u8] = b"glyco/patient/kfrag-rng/v1";
/// Label of a physician's key.
const PHYSICIAN_KEY_LABEL: &[u8] = b"glyco/physician/v1";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    File(#[from] keys::KeyError),
    #[error("{path}: not an umbral key seed")]
    Seed { path: PathBuf },
    #[error("not an umbral public key (33-byte compressed secp256k1 point): {0}")]
    PublicKey(String),
}

/// An umbral key pair derived from a seed file. Its Debug shows the public
/// half only.
pub struct KeyPair {
    secret: SecretKey,
    public: PublicKey,
}

impl KeyPair {
    fn derive(factory: &SecretKeyFactory, label: &[u8]) -> Self {
        let secret = factory.make_key(label);
        let public = secret.public_key();
        Self { secret, public }
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

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &crate::hexcode::hex(&self.public_bytes()))
            .finish_non_exhaustive()
    }
}

fn factory(seed: &B256, path: &Path) -> Result<SecretKeyFactory, KeyError> {
    SecretKeyFactory::from_secure_randomness(seed.as_slice()).map_err(|_| KeyError::Seed {
        path: path.to_owned(),
    })
}

/// A key kept as a seed file of mode 0600 (the same hex format as an
/// Ethereum key file), read or created.
pub trait SeedKey: Sized {
    fn from_seed(seed: &B256, path: &Path) -> Result<Self, KeyError>;

    /// Loads the key whose seed is at `path` (mode 0600 or stricter).
    fn load(path: &Path) -> Result<Self, KeyError> {
        Self::from_seed(&read_secret(path)?, path)
    }

    /// Loads the key, creating a fresh seed (mode 0600) if the file does not
    /// exist. Returns whether it was created.
    fn load_or_create(path: &Path) -> Result<(Self, bool), KeyError> {
        let (seed, created) = load_or_create_secret(path)?;
        Self::from_seed(&seed, path).map(|k| (k, created))
    }
}

/// The patient's umbral key pair, and the kfrag signer derived beside it.
pub struct PatientKey {
    pair: KeyPair,
    signer: SecretKey,
    kfrag_rng_key: [u8; 32],
}

impl SeedKey for PatientKey {
    fn from_seed(seed: &B256, path: &Path) -> Result<Self, KeyError> {
        let factory = factory(seed, path)?;
        let rng_secret = factory.make_secret(KFRAG_RNG_LABEL);
        Ok(Self {
            pair: KeyPair::derive(&factory, PATIENT_KEY_LABEL),
            signer: factory.make_key(KFRAG_SIGNER_LABEL),
            kfrag_rng_key: blake3::derive_key("glyco kfrag rng v1", rng_secret.as_secret()),
        })
    }
}

impl PatientKey {
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        <Self as SeedKey>::load(path)
    }

    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KeyError> {
        <Self as SeedKey>::load_or_create(path)
    }

    /// The key that signs this patient's kfrags (proxies and physicians
    /// check kfrags and cfrags against its public half).
    pub fn kfrag_signer(&self) -> umbral_pre::Signer {
        umbral_pre::Signer::new(self.signer.clone())
    }

    /// The secret that seeds the kfrags of one grant (see [`KFRAG_RNG_LABEL`]).
    pub(crate) fn kfrag_rng_key(&self) -> &[u8; 32] {
        &self.kfrag_rng_key
    }
}

// The public half only: never the secret, the signer or the kfrag seed.
impl std::fmt::Debug for PatientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PatientKey").field(&self.pair).finish()
    }
}

impl std::fmt::Debug for PhysicianKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PhysicianKey").field(&self.pair).finish()
    }
}

impl std::ops::Deref for PatientKey {
    type Target = KeyPair;
    fn deref(&self) -> &KeyPair {
        &self.pair
    }
}

/// A physician's umbral key pair, made on the physician's machine; the
/// public half is published on chain (`Roles.setPhysicianPreKey`).
pub struct PhysicianKey {
    pair: KeyPair,
}

impl SeedKey for PhysicianKey {
    fn from_seed(seed: &B256, path: &Path) -> Result<Self, KeyError> {
        Ok(Self {
            pair: KeyPair::derive(&factory(seed, path)?, PHYSICIAN_KEY_LABEL),
        })
    }
}

impl PhysicianKey {
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        <Self as SeedKey>::load(path)
    }

    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KeyError> {
        <Self as SeedKey>::load_or_create(path)
    }
}

impl std::ops::Deref for PhysicianKey {
    type Target = KeyPair;
    fn deref(&self) -> &KeyPair {
        &self.pair
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
