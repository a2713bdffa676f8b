//! One session per device at a time, handed over in order.
//!
//! MQTT lets a device's new connection replace its old one. rumqttd does the
//! replacing itself, but it reuses connection ids: the old connection's late
//! "disconnected" event can then close the *new* one (seen in CI as a device
//! reconnecting right after a refusal and being cut before its CONNACK). So
//! the gatekeeper hands over itself: a new session of a device first ends the
//! device's open session and waits until that one has closed its broker
//! connection, and only then forwards its CONNECT.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::OwnedMutexGuard;
use tokio_util::sync::CancellationToken;

/// Devices with a session, by name.
#[derive(Debug, Clone, Default)]
pub struct Connected(Arc<Mutex<BTreeMap<String, Device>>>);

#[derive(Debug, Default)]
struct Device {
    /// Sessions open or waiting for their turn; the entry goes at zero.
    sessions: usize,
    /// Cancels the newest session; a newer one cancels it to take over.
    newest: CancellationToken,
    /// Held by the session that talks to the broker.
    turn: Arc<tokio::sync::Mutex<()>>,
    /// Where the newest session came from.
    address: Option<IpAddr>,
}

/// A device's session: holds its turn until dropped.
#[derive(Debug)]
pub struct Session {
    connected: Connected,
    name: String,
    /// Cancelled when a newer connection of the same device takes over.
    pub replaced: CancellationToken,
    /// `Some(address of the session taken over)` when one was open.
    pub took_over_from: Option<Option<IpAddr>>,
    _turn: Option<OwnedMutexGuard<()>>,
}

/// The device's open session did not close in time.
#[derive(Debug, thiserror::Error)]
#[error("the device's previous session did not close within {0:?}")]
pub struct HandoverTimeout(pub Duration);

impl Connected {
    /// Ends the device's open session, if any, and waits (at most `wait`)
    /// until it has closed, or until an even newer connection replaced this one.
    pub async fn take_over(
        &self,
        name: &str,
        address: Option<IpAddr>,
        wait: Duration,
    ) -> Result<Session, HandoverTimeout> {
        let (turn, replaced, took_over_from) = {
            let mut map = self.0.lock();
            let device = map.entry(name.to_owned()).or_default();
            let took_over_from = (device.sessions > 0).then_some(device.address);
            device.newest.cancel();
            device.newest = CancellationToken::new();
            device.sessions += 1;
            device.address = address;
            (device.turn.clone(), device.newest.clone(), took_over_from)
        };
        let mut session = Session {
            connected: self.clone(),
            name: name.to_owned(),
            replaced: replaced.clone(),
            took_over_from,
            _turn: None,
        };
        tokio::select! {
            guard = tokio::time::timeout(wait, turn.lock_owned()) => match guard {
                Ok(guard) => session._turn = Some(guard),
                Err(_) => return Err(HandoverTimeout(wait)),
            },
            // Replaced while waiting: the session ends at once, turnless.
            _ = replaced.cancelled() => {}
        }
        Ok(session)
    }

    /// Names of the devices with a session.
    pub fn names(&self) -> Vec<String> {
        self.0.lock().keys().cloned().collect()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let mut map = self.connected.0.lock();
        if let Some(device) = map.get_mut(&self.name) {
            device.sessions -= 1;
            if device.sessions == 0 {
                map.remove(&self.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_new_session_ends_the_old_one_and_waits_for_it() {
        let connected = Connected::default();
        let old = connected.take_over("cgm", None, WAIT).await.unwrap();
        assert!(!old.replaced.is_cancelled());
        let newer = {
            let connected = connected.clone();
            tokio::spawn(async move { connected.take_over("cgm", None, WAIT).await })
        };
        old.replaced.cancelled().await;
        tokio::task::yield_now().await;
        assert!(!newer.is_finished(), "waits while the old session is open");
        drop(old);
        let newer = newer.await.unwrap().unwrap();
        assert!(!newer.replaced.is_cancelled());
        assert_eq!(connected.names(), ["cgm"]);
        drop(newer);
        assert!(connected.names().is_empty());
    }

    #[tokio::test]
    async fn a_session_waiting_its_turn_is_replaced_by_a_newer_one() {
        let connected = Connected::default();
        let open = connected.take_over("cgm", None, WAIT).await.unwrap();
        let waiting = {
            let connected = connected.clone();
            tokio::spawn(async move { connected.take_over("cgm", None, WAIT).await })
        };
        tokio::task::yield_now().await;
        let newest = {
            let connected = connected.clone();
            tokio::spawn(async move { connected.take_over("cgm", None, WAIT).await })
        };
        let waiting = waiting.await.unwrap().unwrap();
        assert!(waiting.replaced.is_cancelled(), "ends without a turn");
        drop(open);
        drop(waiting);
        let newest = newest.await.unwrap().unwrap();
        assert!(!newest.replaced.is_cancelled());
        drop(newest);
        assert!(connected.names().is_empty());
    }

    #[tokio::test]
    async fn a_session_that_never_closes_times_the_new_one_out() {
        let connected = Connected::default();
        let _stuck = connected.take_over("cgm", None, WAIT).await.unwrap();
        let short = Duration::from_millis(50);
        let err = connected.take_over("cgm", None, short).await.unwrap_err();
        assert_eq!(err.0, short);
        assert_eq!(connected.names(), ["cgm"]);
    }

    #[tokio::test]
    async fn devices_do_not_wait_for_each_other() {
        let connected = Connected::default();
        let _a = connected.take_over("cgm-a", None, WAIT).await.unwrap();
        let b = connected.take_over("cgm-b", None, WAIT).await.unwrap();
        assert!(!b.replaced.is_cancelled());
        assert_eq!(connected.names(), ["cgm-a", "cgm-b"]);
    }
}
