//! Repairing a journal whose file has a torn tail (bytes after the last
//! valid region, which redb refuses to open): the longest page-aligned
//! prefix that redb opens and whose integrity check passes becomes the
//! journal again. The damaged file is always kept beside it; damage inside
//! the file is not guessed at: the repair fails and says so.

use std::path::{Path, PathBuf};

/// Trailing bytes a repair may cut at most.
const MAX_CUT: u64 = 8 * 1024 * 1024;
const PAGE: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no prefix of {path} (cutting up to {MAX_CUT} trailing bytes) is a sound journal; the damage is inside the file, which is left as it was"
    )]
    NotATornTail { path: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repaired {
    /// Where the damaged file was kept.
    pub kept_as: PathBuf,
    pub cut_bytes: u64,
}

/// Repairs `path` in place (the hub must be stopped).
pub fn repair_torn_tail(path: &Path) -> Result<Repaired, RepairError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| RepairError::Io {
            path: path.clone(),
            source,
        }
    };
    let len = std::fs::metadata(path).map_err(io(path))?.len();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let kept_as = path.with_extension(format!("redb.damaged-{stamp}"));
    let trial = path.with_extension("redb.repairing");
    let mut candidate = len - len % PAGE;
    if candidate == len {
        candidate = len.saturating_sub(PAGE);
    }
    // Panics inside redb on a bad prefix are expected here, not news.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let found = find_sound_prefix(path, &trial, len, candidate);
    std::panic::set_hook(hook);
    if let Some(length) = found? {
        std::fs::copy(path, &kept_as).map_err(io(&kept_as))?;
        std::fs::rename(&trial, path).map_err(io(path))?;
        return Ok(Repaired {
            kept_as,
            cut_bytes: len - length,
        });
    }
    let _ = std::fs::remove_file(&trial);
    Err(RepairError::NotATornTail {
        path: path.to_owned(),
    })
}

/// The longest sound prefix length, left in `trial`.
fn find_sound_prefix(
    path: &Path,
    trial: &Path,
    len: u64,
    mut candidate: u64,
) -> Result<Option<u64>, RepairError> {
    let io = |source| RepairError::Io {
        path: trial.to_owned(),
        source,
    };
    while candidate > 0 && len - candidate <= MAX_CUT {
        std::fs::copy(path, trial).map_err(io)?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(trial)
            .map_err(io)?;
        file.set_len(candidate).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        // redb can panic on pages it cannot make sense of: that prefix is
        // simply not sound.
        let sound = std::panic::catch_unwind(|| {
            redb::Database::open(trial)
                .ok()
                .and_then(|mut db| db.check_integrity().ok())
                .unwrap_or(false)
        })
        .unwrap_or(false);
        if sound {
            return Ok(Some(candidate));
        }
        candidate -= PAGE;
    }
    Ok(None)
}
