//! The hub's mirror of its patient's device registry on chain.
//!
//! The mirror replays `DeviceAdded`/`DeviceRemoved`/`DeviceReleased` events
//! from the last block it saw (the deployment block on first start), saves its
//! checkpoint in the journal after every step, and so survives restarts. If
//! the chain cannot be reached the hub keeps the last mirror: known devices
//! stay in, unknown ones stay out, and the status says the chain is
//! unreachable. It follows only the patient named in the config: a hub key
//! bound by anyone else is refused, never followed.
//!
//! Emergency accesses opened to the patient's data are announced here too:
//! the follower logs each one as a warning and keeps the latest in the mirror
//! for the status output.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use glyco_contracts::{
    Address, ChainError, DeviceChangeKind, DeviceId, DeviceIdKey, DeviceIdentity, DeviceKind,
    EmergencyAccess, GlycoClient,
};
use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::journal::{Journal, JournalError, META};
use crate::reading::{UnixMillis, now_millis};

const CHECKPOINT_KEY: &str = "registry_mirror";
/// Emergency accesses kept for the status output (the oldest drop first).
const MAX_EMERGENCY_ACCESSES: usize = 32;

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
    /// Last block whose device events are applied.
    pub synced_block: Option<u64>,
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
    pub reachable: bool,
    pub head: Option<u64>,
    pub last_error: Option<String>,
    pub last_success_at: Option<UnixMillis>,
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
        self.state.read().expect("registry lock").standing(&id)
    }

    pub fn snapshot(&self) -> MirrorState {
        self.state.read().expect("registry lock").clone()
    }

    pub fn health(&self) -> SyncHealth {
        self.health.read().expect("health lock").clone()
    }

    /// Ticks whenever the registry changes (the gatekeeper drops connections
    /// of devices that are no longer registered).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn replace(&self, state: MirrorState) {
        let changed = {
            let mut current = self.state.write().expect("registry lock");
            let changed = current.devices != state.devices || current.patient != state.patient;
            *current = state;
            changed
        };
        if changed {
            self.changes.send_modify(|n| *n += 1);
        }
    }

    fn set_health(&self, health: SyncHealth) {
        *self.health.write().expect("health lock") = health;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("the node serves chain {served}, but the deployment file is for chain {expected}")]
    WrongChain { served: u64, expected: u64 },
    #[error("hub {hub} is not authorised by any patient on chain yet")]
    NotAuthorised { hub: Address },
    #[error("hub {hub} acts for patient {on_chain} on chain, but the config names {configured}")]
    PatientMismatch {
        hub: Address,
        on_chain: Address,
        configured: Address,
    },
}

/// Loads the mirror saved in the journal (empty on first start).
pub fn load_mirror(journal: &Journal) -> Result<MirrorState, JournalError> {
    let txn = journal
        .db()
        .begin_read()
        .map_err(|e| JournalError::Storage(e.to_string()))?;
    let table = txn
        .open_table(META)
        .map_err(|e| JournalError::Storage(e.to_string()))?;
    match table
        .get(CHECKPOINT_KEY)
        .map_err(|e| JournalError::Storage(e.to_string()))?
    {
        Some(bytes) => Ok(serde_json::from_slice(bytes.value())?),
        None => Ok(MirrorState::default()),
    }
}

fn save_mirror(journal: &Journal, state: &MirrorState) -> Result<(), JournalError> {
    let storage = |e: &dyn std::fmt::Display| JournalError::Storage(e.to_string());
    let txn = journal.db().begin_write().map_err(|e| storage(&e))?;
    {
        let mut table = txn.open_table(META).map_err(|e| storage(&e))?;
        let bytes = serde_json::to_vec(state)?;
        table
            .insert(CHECKPOINT_KEY, bytes.as_slice())
            .map_err(|e| storage(&e))?;
    }
    txn.commit().map_err(|e| storage(&e))?;
    Ok(())
}

/// Tells whoever watches the hub's log that someone opened emergency access.
fn announce_emergency(access: &EmergencyAccess) {
    tracing::warn!(
        physician = %access.physician,
        entity = %access.entity,
        grant = access.grant_id,
        expires_at = access.expires_at,
        block = access.block,
        "emergency access opened to the patient's data"
    );
}

/// Follows the chain and keeps the [`Registry`] current.
#[derive(Debug)]
pub struct Follower {
    pub client: GlycoClient,
    pub hub: Address,
    pub patient: Address,
    pub journal: Journal,
    pub registry: Registry,
    pub poll_interval: Duration,
    pub chunk_blocks: u64,
}

impl Follower {
    /// One step: catch up from the checkpoint to the chain head.
    pub async fn sync_once(&self) -> Result<u64, SyncError> {
        let client = &self.client;
        let expected = client.deployment().chain_id;
        let served = client.chain_id().await?;
        if served != expected {
            return Err(SyncError::WrongChain { served, expected });
        }
        let head = client.block_number().await?;
        let patient = self.patient;
        match client.hub_patient(self.hub).await? {
            None => return Err(SyncError::NotAuthorised { hub: self.hub }),
            Some(on_chain) if on_chain != patient => {
                return Err(SyncError::PatientMismatch {
                    hub: self.hub,
                    on_chain,
                    configured: patient,
                });
            }
            Some(_) => {}
        }

        let mut state = self.registry.snapshot();
        if state.patient != Some(patient) {
            // A hub re-assigned to another patient starts over.
            state = MirrorState {
                patient: Some(patient),
                ..MirrorState::default()
            };
        }
        let mut from = match state.synced_block {
            Some(block) => block + 1,
            None => client.deployment().deployed_at_block,
        };
        while from <= head {
            let to = head.min(from + self.chunk_blocks - 1);
            for change in client.device_changes(patient, from, to).await? {
                let device = MirroredDevice {
                    kind: match change.change {
                        DeviceChangeKind::Added(kind) => kind,
                        DeviceChangeKind::Removed | DeviceChangeKind::Released => {
                            state.devices.get(&change.device).and_then(|d| d.kind)
                        }
                    },
                    active: matches!(change.change, DeviceChangeKind::Added(_)),
                    block: change.block,
                };
                state.devices.insert(change.device, device);
            }
            for access in client.emergency_accesses(patient, from, Some(to)).await? {
                announce_emergency(&access);
                state.emergency_accesses.push(access);
            }
            let excess = state
                .emergency_accesses
                .len()
                .saturating_sub(MAX_EMERGENCY_ACCESSES);
            state.emergency_accesses.drain(..excess);
            state.synced_block = Some(to);
            save_mirror(&self.journal, &state)?;
            self.registry.replace(state.clone());
            from = to + 1;
        }
        if state != self.registry.snapshot() {
            save_mirror(&self.journal, &state)?;
            self.registry.replace(state);
        }
        Ok(head)
    }

    /// Polls until cancelled, recording health for the status output.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let mut health = self.registry.health();
            match self.sync_once().await {
                Ok(head) => {
                    health.reachable = true;
                    health.head = Some(head);
                    health.last_error = None;
                    health.last_success_at = Some(now_millis());
                }
                Err(e) => {
                    if health.last_error.as_deref() != Some(&e.to_string()) {
                        tracing::warn!(error = %e, "registry sync failed; keeping the last mirror");
                    }
                    health.reachable = matches!(
                        e,
                        SyncError::NotAuthorised { .. } | SyncError::PatientMismatch { .. }
                    );
                    health.last_error = Some(e.to_string());
                }
            }
            self.registry.set_health(health);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }
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

    #[test]
    fn the_mirror_round_trips_through_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.redb")).unwrap();
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
        save_mirror(&journal, &state).unwrap();
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
