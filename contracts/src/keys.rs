//! Ethereum keys: the dev chain's well-known accounts, and key files kept 0600
//! in a state directory for real deployments. Keys are never logged: a signer's
//! `Debug` shows only its address.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use alloy::primitives::B256;
use alloy::signers::local::{MnemonicBuilder, PrivateKeySigner};

/// An Ethereum signing key held in memory.
pub type Signer = PrivateKeySigner;

/// The public test mnemonic anvil uses by default. Its keys are known to
/// everyone: dev chain only.
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot derive dev account {index}: {reason}")]
    Derive { index: u32, reason: String },
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} is readable by others (mode {mode:o}); it must be 0600")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("no randomness for a new key: {0}")]
    Random(String),
    #[error("key file {path} does not hold a 32-byte hex key")]
    Malformed { path: PathBuf },
    #[error("signing: {0}")]
    Sign(String),
}

/// Signs `message` as a wallet's `personal_sign` does (EIP-191 version
/// 0x45): 65 bytes, r ‖ s ‖ v with v 27 or 28. Sign-In with Ethereum
/// messages are signed so.
pub fn sign_personal_message(
    signer: &PrivateKeySigner,
    message: &[u8],
) -> Result<[u8; 65], KeyError> {
    use alloy::signers::SignerSync;
    signer
        .sign_message_sync(message)
        .map(|signature| signature.as_bytes())
        .map_err(|e| KeyError::Sign(e.to_string()))
}

/// Account `index` of `mnemonic` on the standard path m/44'/60'/0'/0/index.
pub fn dev_account(mnemonic: &str, index: u32) -> Result<PrivateKeySigner, KeyError> {
    let derive = |reason: String| KeyError::Derive { index, reason };
    MnemonicBuilder::english()
        .phrase(mnemonic)
        .index(index)
        .map_err(|e| derive(e.to_string()))?
        .build()
        .map_err(|e| derive(e.to_string()))
}

/// Loads a key file, refusing one that group or others can read.
pub fn load_key(path: &Path) -> Result<PrivateKeySigner, KeyError> {
    let bytes = read_secret(path)?;
    PrivateKeySigner::from_bytes(&bytes).map_err(|_| KeyError::Malformed {
        path: path.to_owned(),
    })
}

/// Reads a 32-byte secret kept as hex in a file of mode 0600 (or stricter).
pub fn read_secret(path: &Path) -> Result<B256, KeyError> {
    let read = |source| KeyError::Read {
        path: path.to_owned(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(read)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    let hex_key = text.trim().trim_start_matches("0x");
    hex_key.parse().map_err(|_| KeyError::Malformed {
        path: path.to_owned(),
    })
}

/// Writes a new secret file (mode 0600); refuses to overwrite one.
pub fn write_secret(path: &Path, secret: &B256) -> Result<(), KeyError> {
    let write = |source| KeyError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(write)?;
    writeln!(file, "{secret}").map_err(write)?;
    file.sync_all().map_err(write)
}

/// Reads the 32-byte secret at `path`, creating a fresh random one (mode
/// 0600) if the file does not exist. Returns whether it was created. The
/// patient's umbral seed and the iroh node keys are kept this way.
pub fn load_or_create_secret(path: &Path) -> Result<(B256, bool), KeyError> {
    if path.exists() {
        return read_secret(path).map(|secret| (secret, false));
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
    let secret = B256::from(bytes);
    write_secret(path, &secret)?;
    Ok((secret, true))
}

/// Loads the key at `path`, creating a fresh random one (mode 0600) if the
/// file does not exist. Returns whether it was created.
pub fn load_or_create_key(path: &Path) -> Result<(PrivateKeySigner, bool), KeyError> {
    if path.exists() {
        return load_key(path).map(|k| (k, false));
    }
    let signer = PrivateKeySigner::random();
    write_secret(path, &signer.to_bytes())?;
    Ok((signer, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_accounts_match_anvils_well_known_first_address() {
        let first = dev_account(DEV_MNEMONIC, 0).unwrap();
        assert_eq!(
            first.address().to_string(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
    }

    #[test]
    fn a_created_key_is_0600_and_loads_back_to_the_same_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/hub.key");
        let (created, fresh) = load_or_create_key(&path).unwrap();
        assert!(fresh);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (loaded, fresh) = load_or_create_key(&path).unwrap();
        assert!(!fresh);
        assert_eq!(created.address(), loaded.address());
    }

    #[test]
    fn a_key_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.key");
        load_or_create_key(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_key(&path),
            Err(KeyError::TooOpen { mode: 0o644, .. })
        ));
    }

    #[test]
    fn a_malformed_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.key");
        std::fs::write(&path, "not a key\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(load_key(&path), Err(KeyError::Malformed { .. })));
    }

    #[test]
    fn signer_debug_never_shows_the_secret() {
        let signer = dev_account(DEV_MNEMONIC, 1).unwrap();
        let secret = signer.to_bytes().to_string();
        let debug = format!("{signer:?}");
        assert!(!debug.contains(&secret[2..]), "{debug}");
    }
}
