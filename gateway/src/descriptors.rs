//! File descriptors: the hub raises its soft limit to the hard one at start
//! (where allowed) and sizes its connection bound to fit, keeping a reserve
//! for the journal, the status socket, the chain client and BlueZ. Each
//! device connection uses three descriptors: the device's socket, the
//! gatekeeper's link to the broker, and the broker's end of it.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors kept for everything but device connections.
pub const RESERVE: u64 = 128;
/// Descriptors per device connection.
pub const PER_CONNECTION: u64 = 3;
/// No point asking for more than this.
const CEILING: u64 = 1 << 20;

/// The soft limit after trying to raise it to the hard one.
pub fn raise_limit() -> u64 {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            let wanted = hard.min(CEILING);
            if soft < wanted {
                match setrlimit(Resource::RLIMIT_NOFILE, wanted, hard) {
                    Ok(()) => return wanted,
                    Err(e) => {
                        tracing::warn!(error = %e, soft, hard, "cannot raise the descriptor limit")
                    }
                }
            }
            soft
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the descriptor limit");
            1024
        }
    }
}

/// How many device connections fit in `limit` descriptors after the reserve.
pub fn connections_within(limit: u64) -> usize {
    usize::try_from(limit.saturating_sub(RESERVE) / PER_CONNECTION).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_the_limit_with_the_reserve_kept() {
        assert_eq!(connections_within(1024), 298);
        assert_eq!(connections_within(100), 0);
    }

    #[test]
    fn the_raised_limit_is_the_one_in_force() {
        let raised = raise_limit();
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(raised, soft);
        assert_eq!(soft, hard.min(CEILING));
    }
}
