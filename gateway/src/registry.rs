//! The hub's mirror of its patient's device registry on chain: the state
//! ([`MirrorState`], saved in the journal with its checkpoint) and the shared
//! view admission consults on every reading ([`Registry`]). The chain
//! follower ([`crate::follower`]) keeps it current.

use std::collections::BTreeMap;
use std::sync::Arc;

use glyco_contracts::{
    Address, B256, DeviceId, DeviceIdKey, DeviceIdentity, DeviceKind, EmergencyAccess,
};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::journal::{Journal, JournalError, JournalWriter};
use crate::reading::UnixMillis;

const CHECKPOINT_KEY: &str = "registry_mirror";

/// Where a device stands with this hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    Registered,
    Removed,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirroredDevice {
    pub kind: Option<DeviceKind>,
    pub active: bool,
    /// Block of the last change.
    pub block: u64,
}

/// The mirror's persisted state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorState {
    pub patient: Option<Address>,
    /// Last block whose device events are applied, and its hash (a hash
    /// that changes under it means the chain reorganised).
    pub synced_block: Option<u64>,
    #[serde(default)]
    pub synced_hash: Option<B256>,
    pub devices: BTreeMap<DeviceId, MirroredDevice>,
    /// The latest emergency accesses opened to the patient's data, oldest first.
    #[serde(default)]
    pub emergency_accesses: Vec<EmergencyAccess>,
}

impl MirrorState {
    pub fn standing(&self, device: &DeviceId) -> Standing {
        match self.devices.get(device) {
            Some(d) if d.active => Standing::Registered,
            Some(_) => Standing::Removed,
            None => Standing::Unknown,
        }
    }
}

/// How the chain follower is doing, for the status output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncHealth {
    /// The last step reached the node(s).
    pub reachable: bool,
    pub head: Option<u64>,
    pub last_error: Option<String>,
    pub last_success_at: Option<UnixMillis>,
    /// When the head last moved.
    #[serde(default)]
    pub head_moved_at: Option<UnixMillis>,
    /// The head has not moved for longer than `chain.stale_after_secs`.
    #[serde(default)]
    pub stale: bool,
    /// A log of ours did not decode: the mirror stays where it was (fail
    /// closed) until a step succeeds again.
    #[serde(default)]
    pub halted: Option<String>,
    /// Nodes followed (cross-checked when more than one).
    #[serde(default)]
    pub endpoints: usize,
}

/// The shared, read-mostly view that admission consults on every reading.
#[derive(Debug, Clone)]
pub struct Registry {
    state: Arc<RwLock<MirrorState>>,
    health: Arc<RwLock<SyncHealth>>,
    changes: watch::Sender<u64>,
    ids: Arc<DeviceIdKey>,
}

impl Registry {
    /// `ids` derives the on-chain id of each device identity.
    pub fn new(state: MirrorState, ids: DeviceIdKey) -> Self {
        Self {
            state: Arc::new(RwLock::new(state)),
            health: Arc::new(RwLock::new(SyncHealth::default())),
            changes: watch::channel(0).0,
            ids: Arc::new(ids),
        }
    }

    /// The device's on-chain id.
    pub fn device_id(&self, identity: &DeviceIdentity) -> DeviceId {
        self.ids.id_of(identity)
    }

    pub fn standing(&self, identity: &DeviceIdentity) -> Standing {
        let id = self.device_id(identity);
        self.state.read().standing(&id)
    }

    pub fn snapshot(&self) -> MirrorState {
        self.state.read().clone()
    }

    pub fn health(&self) -> SyncHealth {
        self.health.read().clone()
    }

    /// Ticks whenever the registry changes (the gatekeeper drops connections
    /// of devices that are no longer registered).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub(crate) fn replace(&self, state: MirrorState) {
        let changed = {
            let mut current = self.state.write();
            let changed = current.devices != state.devices || current.patient != state.patient;
            *current = state;
            changed
        };
        if changed {
            self.changes.send_modify(|n| *n += 1);
        }
    }

    pub(crate) fn set_health(&self, health: SyncHealth) {
        *self.health.write() = health;
    }
}

/// Loads the mirror saved in the journal (empty on first start).
pub fn load_mirror(journal: &Journal) -> Result<MirrorState, JournalError> {
    match journal.meta(CHECKPOINT_KEY)? {
        Some(bytes) => Ok(serde_json::from_slice(&bytes)?),
        None => Ok(MirrorState::default()),
    }
}

/// Saves the mirror through the journal thread (durably).
pub async fn save_mirror(journal: &JournalWriter, state: &MirrorState) -> Result<(), JournalError> {
    journal
        .save_meta(CHECKPOINT_KEY, serde_json::to_vec(state)?)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use glyco_contracts::B256;

    #[test]
    fn standing_distinguishes_registered_removed_and_unknown() {
        let mut state = MirrorState::default();
        let a = DeviceId(B256::repeat_byte(1));
        let b = DeviceId(B256::repeat_byte(2));
        state.devices.insert(
            a,
            MirroredDevice {
                kind: None,
                active: true,
                block: 1,
            },
        );
        state.devices.insert(
            b,
            MirroredDevice {
                kind: None,
                active: false,
                block: 2,
            },
        );
        assert_eq!(state.standing(&a), Standing::Registered);
        assert_eq!(state.standing(&b), Standing::Removed);
        assert_eq!(state.standing(&DeviceId(B256::ZERO)), Standing::Unknown);
    }

    #[tokio::test]
    async fn the_mirror_round_trips_through_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, store) =
            crate::journal::open(&dir.path().join("j.redb"), Default::default()).unwrap();
        let (writer, _task) = store.spawn().unwrap();
        assert_eq!(load_mirror(&journal).unwrap(), MirrorState::default());
        let mut state = MirrorState {
            patient: Some(Address::repeat_byte(9)),
            synced_block: Some(42),
            ..MirrorState::default()
        };
        state.devices.insert(
            DeviceId(B256::repeat_byte(1)),
            MirroredDevice {
                kind: Some(DeviceKind::Cgm),
                active: true,
                block: 40,
            },
        );
        save_mirror(&writer, &state).await.unwrap();
        assert_eq!(load_mirror(&journal).unwrap(), state);
    }

    #[test]
    fn subscribers_hear_only_real_changes() {
        let registry = Registry::new(MirrorState::default(), DeviceIdKey::generate());
        let mut rx = registry.subscribe();
        registry.replace(MirrorState::default());
        assert!(!rx.has_changed().unwrap());
        let mut state = MirrorState::default();
        state.devices.insert(
            DeviceId(B256::repeat_byte(1)),
            MirroredDevice {
                kind: None,
                active: true,
                block: 1,
            },
        );
        registry.replace(state);
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
    }
}
