//! Free space on the state directory's filesystem. The journal and the blob
//! store check it before they write, so they refuse cleanly while a reserve
//! is left instead of meeting ENOSPC mid-write (after which redb and
//! iroh-blobs must be reopened).

use std::path::Path;

/// Bytes available to this process on the filesystem holding `path`.
pub fn available_bytes(path: &Path) -> std::io::Result<u64> {
    usage(path).map(|(available, _)| available)
}

/// Bytes available to this process and bytes in all on the filesystem
/// holding `path` (the total for the fleet heartbeat).
// The block counts are u32 on some 32-bit targets.
#[allow(clippy::useless_conversion)]
pub fn usage(path: &Path) -> std::io::Result<(u64, u64)> {
    let stat = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    let fragment = u64::from(stat.fragment_size());
    Ok((
        u64::from(stat.blocks_available()).saturating_mul(fragment),
        u64::from(stat.blocks()).saturating_mul(fragment),
    ))
}

/// `Err((available, reserve))` when less than `reserve` bytes are free. An
/// unreadable filesystem counts as having room: the write itself then says
/// what is wrong.
pub fn check_reserve(path: &Path, reserve: u64) -> Result<(), (u64, u64)> {
    if reserve == 0 {
        return Ok(());
    }
    match available_bytes(path) {
        Ok(available) if available < reserve => Err((available, reserve)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_larger_than_any_disk_is_refused_and_zero_always_passes() {
        let dir = tempfile::tempdir().unwrap();
        assert!(available_bytes(dir.path()).unwrap() > 0);
        assert_eq!(check_reserve(dir.path(), 0), Ok(()));
        let (available, reserve) = check_reserve(dir.path(), u64::MAX).unwrap_err();
        assert!(available < reserve);
    }
}
