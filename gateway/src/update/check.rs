//! The checks a bundle passes before it may be installed: the consortium
//! published its SHA-256 on chain (`Releases`) and has not withdrawn it,
//! its signature checks against the release keyring on the hub (`rauc info
//! --keyring`), it is built for this hub (`compatible`), and its version is
//! the one on chain.
//!
//! A bundle from elsewhere is first copied where only the checker writes
//! (0600), and only the copy is hashed and handed on: a file swapped after
//! the check cannot be the one installed.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};

use glyco_contracts::{B256, GlycoClient, ReleaseRecord};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::UpdateConfig;

/// What a bundle that passed every check is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedBundle {
    /// The private copy that was checked.
    pub path: PathBuf,
    pub sha256: B256,
    pub bytes: u64,
    pub release: ReleaseRecord,
    pub compatible: String,
    pub version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the bundle is over {max} bytes")]
    TooLarge { max: u64 },
    #[error("not published on chain: the consortium did not vouch for bundle {sha256}")]
    NotPublished { sha256: B256 },
    #[error("bundle {sha256} ({version}) was withdrawn on chain")]
    Withdrawn { sha256: B256, version: String },
    #[error("the chain cannot be read: {0}")]
    Chain(String),
    #[error("the bundle's signature or format does not check: {0}")]
    Signature(String),
    #[error("the bundle is for {bundle:?}, this hub is {hub:?}")]
    Incompatible { bundle: String, hub: String },
    #[error("the bundle says version {bundle:?}, the chain published {chain:?}")]
    VersionMismatch { bundle: String, chain: String },
    #[error("rauc could not run: {0}")]
    Rauc(String),
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("fetching the bundle from the fleet node: {0}")]
    Fetch(String),
    #[error("the fleet node sent other than it offered: {0}")]
    NotAsOffered(String),
    #[error("the installer was asked for {asked}, the bundle is {found}")]
    RequestMismatch { asked: B256, found: B256 },
    #[error("this system has no A/B slots (no rauc.slot= on the kernel's command line)")]
    NoSlots,
    #[error("{path}: {why}")]
    Record { path: PathBuf, why: String },
}

impl UpdateError {
    /// Whether the same bundle may pass a later try: the network, the
    /// chain or the disk failed, not the bundle. A transient failure is
    /// retried after a back-off rather than reported as a refusal (which
    /// counts toward halting the clinic's rollout).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Fetch(_) | Self::Chain(_) | Self::Io { .. })
    }
}

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> UpdateError + '_ {
    move |source| UpdateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Copies `bundle` to `into` (0600), hashing as it goes; refuses more than
/// `max` bytes.
pub fn copy_and_hash(bundle: &Path, into: &Path, max: u64) -> Result<(B256, u64), UpdateError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // Never through a symbolic link: the installer (root) copies from the
    // hub's directory, which the hub controls.
    let mut source = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(bundle)
        .map_err(io(bundle))?;
    if !source.metadata().map_err(io(bundle))?.is_file() {
        return Err(UpdateError::NotAFile {
            path: bundle.to_owned(),
        });
    }
    let mut copy = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(into)
        .map_err(io(into))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = source.read(&mut buffer).map_err(io(bundle))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        if bytes > max {
            drop(copy);
            let _ = std::fs::remove_file(into);
            return Err(UpdateError::TooLarge { max });
        }
        hasher.update(&buffer[..n]);
        copy.write_all(&buffer[..n]).map_err(io(into))?;
    }
    copy.sync_all().map_err(io(into))?;
    Ok((B256::from_slice(&hasher.finalize()), bytes))
}

/// The last line a program printed, bounded, for an error.
pub(super) fn last_line(text: &[u8], otherwise: &str) -> String {
    let text = String::from_utf8_lossy(text);
    glyco_seal::fleet::cap(
        text.lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or(otherwise),
    )
}

/// What `rauc info --output-format=json` says of a bundle.
#[derive(Debug, Deserialize)]
struct RaucInfo {
    compatible: String,
    version: String,
}

/// Asks rauc to verify the bundle's signature against `keyring` and read
/// its manifest.
async fn rauc_info(rauc: &Path, keyring: &Path, bundle: &Path) -> Result<RaucInfo, UpdateError> {
    let mut keyring_arg = std::ffi::OsString::from("--keyring=");
    keyring_arg.push(keyring);
    let args = [
        OsStr::new("info"),
        keyring_arg.as_os_str(),
        OsStr::new("--output-format=json"),
        bundle.as_os_str(),
    ];
    let stdout = super::rauc::run(rauc, &args, "rauc refused the bundle")
        .await?
        .map_err(UpdateError::Signature)?;
    let text = String::from_utf8_lossy(&stdout);
    // rauc prints messages before the JSON on some versions: read from the
    // first brace.
    let json = text.find('{').map_or("", |i| &text[i..]);
    serde_json::from_str(json).map_err(|e| UpdateError::Signature(format!("rauc's answer: {e}")))
}

/// Runs every check on `bundle`, in order: size and hash (of a private
/// copy in `work_dir`), the chain, the signature, compatibility, version.
pub async fn check(
    bundle: &Path,
    work_dir: &Path,
    config: &UpdateConfig,
    chain: &GlycoClient,
) -> Result<CheckedBundle, UpdateError> {
    std::fs::create_dir_all(work_dir).map_err(io(work_dir))?;
    let copy = work_dir.join(super::record::CHECKED);
    let (sha256, bytes) = copy_and_hash(bundle, &copy, config.max_bundle_mib * 1024 * 1024)?;
    verify(copy, sha256, bytes, config, chain).await
}

/// The checks after the hash, on a private file whose SHA-256 is known.
pub async fn verify(
    copy: PathBuf,
    sha256: B256,
    bytes: u64,
    config: &UpdateConfig,
    chain: &GlycoClient,
) -> Result<CheckedBundle, UpdateError> {
    let release = chain
        .release_of(sha256)
        .await
        .map_err(|e| UpdateError::Chain(e.to_string()))?
        .ok_or(UpdateError::NotPublished { sha256 })?;
    if release.withdrawn_at.is_some() {
        return Err(UpdateError::Withdrawn {
            sha256,
            version: release.version,
        });
    }
    let info = rauc_info(&config.rauc, &config.keyring, &copy).await?;
    if info.compatible != config.compatible {
        return Err(UpdateError::Incompatible {
            bundle: info.compatible,
            hub: config.compatible.clone(),
        });
    }
    if info.version != release.version {
        return Err(UpdateError::VersionMismatch {
            bundle: info.version,
            chain: release.version,
        });
    }
    Ok(CheckedBundle {
        path: copy,
        sha256,
        bytes,
        release,
        compatible: info.compatible,
        version: info.version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_is_private_hashed_and_bounded() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("in.raucb");
        std::fs::write(&bundle, b"abc").unwrap();
        let copy = dir.path().join("copy");
        let (hash, bytes) = copy_and_hash(&bundle, &copy, 10).unwrap();
        assert_eq!(bytes, 3);
        assert_eq!(
            hash.to_string(),
            "0xba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            copy_and_hash(&bundle, &copy, 2),
            Err(UpdateError::TooLarge { max: 2 })
        ));
        assert!(!copy.exists(), "an oversize copy is removed");
    }
}
