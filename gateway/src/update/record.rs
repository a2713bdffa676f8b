//! The files that carry an update from step to step. In the hub's state
//! directory (`<state>/update/`, the hub's own): the fetched bundle, the
//! request for an install, the outcome the heartbeats report, and the
//! count of a fetch's transient failures. In the
//! installer's directory (root's): its checked copy and the update pending
//! a health check. Each is written whole (a temporary file renamed over
//! it), 0600, and read with a bound and never through a symbolic link.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use glyco_contracts::B256;
use glyco_seal::fleet::{MAX_WHY_CHARS, UpdateOutcome, UpdateReport, cap};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::UpdateError;
use super::check::io;

/// The bundle the hub fetched (hub's directory).
pub const INCOMING: &str = "incoming.raucb";
/// The hub asks for an install (hub's directory; `glyco-update.path`
/// watches it).
pub const REQUEST: &str = "request.json";
/// How the last update went (hub's directory, written by every step).
pub const OUTCOME: &str = "outcome.json";
/// Transient failures of the release being fetched, counted (hub's
/// directory).
pub const RETRIES: &str = "retries.json";
/// A checker's private copy (either directory).
pub const CHECKED: &str = "bundle.raucb";
/// The update waiting for its health check (installer's directory).
pub const PENDING: &str = "pending.json";
/// The largest record read.
const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// The hub's update directory.
pub fn hub_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("update")
}

/// What the hub asks the installer to install: the bundle it left as
/// [`INCOMING`], which it checked and found to be this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallRequest {
    pub version: String,
    pub sha256: B256,
}

/// An installed update waiting for the health check after the reboot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub version: String,
    pub sha256: B256,
    /// The slot it was installed from and the one it went into
    /// (RAUC's bootnames, `A` and `B`).
    pub from_slot: String,
    pub to_slot: String,
    pub installed_at_ms: i64,
}

/// Writes `value` as JSON to `path`, whole and 0600.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), UpdateError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| UpdateError::Record {
        path: path.to_owned(),
        why: e.to_string(),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.write_all(&bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Reads a record; `None` when there is none.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, UpdateError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path);
    let file = match file {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_RECORD_BYTES)
        .read_to_end(&mut bytes)
        .map_err(io(path))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| UpdateError::Record {
            path: path.to_owned(),
            why: e.to_string(),
        })
}

/// Removes a file if it is there.
pub fn remove(path: &Path) -> Result<(), UpdateError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path)(e)),
        _ => Ok(()),
    }
}

/// The update waiting for its health check, if any.
pub fn load_pending(install_dir: &Path) -> Result<Option<Pending>, UpdateError> {
    read_json(&install_dir.join(PENDING))
}

/// The outcome the hub's heartbeats report.
pub fn load_outcome(state_dir: &Path) -> Option<UpdateReport> {
    read_json(&hub_dir(state_dir).join(OUTCOME)).ok().flatten()
}

/// Records how the update of `sha256` stands. Root's steps hand the file to
/// the owner of the hub's directory, so the hub can read and replace it.
pub fn save_outcome(
    state_dir: &Path,
    version: &str,
    sha256: B256,
    outcome: UpdateOutcome,
) -> Result<(), UpdateError> {
    let why = |why: String| why.chars().take(MAX_WHY_CHARS).collect();
    let outcome = match outcome {
        UpdateOutcome::Refused { why: w } => UpdateOutcome::Refused { why: why(w) },
        UpdateOutcome::RolledBack { why: w } => UpdateOutcome::RolledBack { why: why(w) },
        other => other,
    };
    let report = UpdateReport {
        version: cap(version),
        sha256: sha256.0,
        at_ms: crate::reading::now_millis(),
        outcome,
    };
    let dir = hub_dir(state_dir);
    let path = dir.join(OUTCOME);
    write_json(&path, &report)?;
    // Root's steps give the file to the directory's owner, the hub. The hub
    // writing its own never calls chown (its unit forbids the call).
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(&dir).map_err(io(&dir))?;
    let file = std::fs::metadata(&path).map_err(io(&path))?;
    if (file.uid(), file.gid()) != (owner.uid(), owner.gid()) {
        std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).map_err(io(&path))?;
    }
    Ok(())
}

/// The slot the kernel was started from (`rauc.slot=` on its command line,
/// which GRUB sets).
pub fn booted_slot() -> Option<String> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
    slot_of(&cmdline)
}

fn slot_of(cmdline: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .find_map(|word| word.strip_prefix("rauc.slot="))
        .filter(|slot| !slot.is_empty() && slot.len() <= 8)
        .map(str::to_owned)
}

/// The other slot of an A/B pair.
pub fn other_slot(slot: &str) -> &'static str {
    if slot == "A" { "B" } else { "A" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_private_whole_and_bounded() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        assert!(load_outcome(state).is_none());
        save_outcome(
            state,
            "2026.12.2",
            B256::repeat_byte(1),
            UpdateOutcome::Refused {
                why: "z".repeat(500),
            },
        )
        .unwrap();
        let report = load_outcome(state).unwrap();
        assert_eq!(report.version, "2026.12.2");
        match report.outcome {
            UpdateOutcome::Refused { why } => assert_eq!(why.chars().count(), MAX_WHY_CHARS),
            other => panic!("{other:?}"),
        }
        let path = hub_dir(state).join(OUTCOME);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let big = hub_dir(state).join(REQUEST);
        std::fs::write(&big, vec![b' '; 100_000]).unwrap();
        assert!(read_json::<InstallRequest>(&big).is_err(), "over the bound");
        let link = hub_dir(state).join("link.json");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(
            read_json::<UpdateReport>(&link).is_err(),
            "never through a symbolic link"
        );
        remove(&link).unwrap();
        remove(&link).unwrap();
    }

    #[test]
    fn the_booted_slot_comes_from_the_kernel_command_line() {
        assert_eq!(
            slot_of("root=PARTUUID=x rw rauc.slot=B console=ttyS0").as_deref(),
            Some("B")
        );
        assert_eq!(slot_of("root=/dev/vda rw"), None);
        assert_eq!(slot_of("rauc.slot="), None);
        assert_eq!(other_slot("A"), "B");
        assert_eq!(other_slot("B"), "A");
    }
}
