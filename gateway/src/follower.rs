//! The chain follower: keeps the hub's [`Registry`] mirror current by
//! replaying the configured patient's device events (added, removed,
//! released) and emergency accesses from the last block it applied.
//!
//! It cannot be frozen or fooled into skipping a change:
//! - every RPC request times out (10 s) and a whole step too
//!   (`chain.step_timeout_secs`); shutdown interrupts it at any point;
//! - the status says *unreachable* when a step fails to reach the node(s)
//!   and *stale* when the head has not moved for `chain.stale_after_secs`;
//! - it stays `chain.confirmations` blocks behind the head, and never scans
//!   past a block the node cannot show: the checkpoint is a block number
//!   *and* that block's hash, taken from the block itself, so a node claiming
//!   a head it does not have cannot move it;
//! - a checkpoint whose block hash changed (a reorganisation) makes it
//!   rebuild the mirror from the deployment block; the old mirror stays in
//!   force until the new one has caught up;
//! - a log of ours that does not decode halts it (status `halted`): the
//!   mirror stays as it was, never moves past the log;
//! - with several nodes (`chain.extra_rpc_urls`) it takes a head, a block
//!   hash or a set of changes only when every node agrees, so one node
//!   answering "no logs" cannot make it miss a removal.
//!
//! If the chain cannot be reached the hub keeps the last mirror: known devices
//! stay in, unknown ones stay out. It follows only the patient named in the
//! config: a hub key bound by anyone else is refused, never followed.

use std::time::{Duration, Instant};

use glyco_contracts::{
    Address, B256, ChainError, DeviceChange, DeviceChangeKind, EmergencyAccess, GlycoClient,
};
use tokio_util::sync::CancellationToken;

use crate::journal::{JournalError, JournalWriter};
use crate::reading::now_millis;
use crate::registry::{MirrorState, MirroredDevice, Registry, save_mirror};

/// Emergency accesses kept for the status output (the oldest drop first).
const MAX_EMERGENCY_ACCESSES: usize = 32;

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
    #[error("the node reports head {head}, but has no block {block}: not following past it")]
    MissingBlock { head: u64, block: u64 },
    #[error("the node's head {head} is behind the mirror's checkpoint {checkpoint}: waiting")]
    NodeBehind { head: u64, checkpoint: u64 },
    #[error("the nodes disagree on {what}: not following until they agree")]
    Disagree { what: String },
    #[error("a sync step took longer than {0:?}")]
    Timeout(Duration),
}

impl SyncError {
    /// The chain was not reached at all (as opposed to reached and refused,
    /// or reached and found suspect).
    fn unreachable(&self) -> bool {
        match self {
            Self::Chain(ChainError::Rpc { .. }) | Self::Timeout(_) => true,
            Self::Chain(_) => false,
            _ => false,
        }
    }

    fn undecodable(&self) -> bool {
        matches!(self, Self::Chain(ChainError::UndecodableLog { .. }))
    }
}

/// Follows the chain and keeps the [`Registry`] current.
#[derive(Debug)]
pub struct Follower {
    /// The configured node first, then the extra ones.
    pub clients: Vec<GlycoClient>,
    pub hub: Address,
    pub patient: Address,
    pub journal: JournalWriter,
    pub registry: Registry,
    pub poll_interval: Duration,
    pub chunk_blocks: u64,
    pub confirmations: u64,
    pub stale_after: Duration,
    pub step_timeout: Duration,
    /// Busy while a round runs (the service watchdog looks).
    pub busy: crate::supervisor::Busy,
}

/// Asks every node the same question; the answer only if all agree.
async fn agreed<T, F, Fut>(clients: &[GlycoClient], what: &str, ask: F) -> Result<T, SyncError>
where
    T: PartialEq + std::fmt::Debug,
    F: Fn(GlycoClient) -> Fut,
    Fut: std::future::Future<Output = Result<T, ChainError>>,
{
    let mut answers = Vec::with_capacity(clients.len());
    for client in clients {
        answers.push(ask(client.clone()).await?);
    }
    let first = answers.remove(0);
    if answers.iter().any(|a| *a != first) {
        return Err(SyncError::Disagree {
            what: what.to_owned(),
        });
    }
    Ok(first)
}

fn apply(state: &mut MirrorState, changes: Vec<DeviceChange>) {
    for change in changes {
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

fn note_emergencies(state: &mut MirrorState, accesses: Vec<EmergencyAccess>) {
    for access in accesses {
        // After a rebuild the same accesses come again: announce each once.
        if state
            .emergency_accesses
            .iter()
            .any(|known| known.grant_id == access.grant_id)
        {
            continue;
        }
        announce_emergency(&access);
        state.emergency_accesses.push(access);
    }
    let excess = state
        .emergency_accesses
        .len()
        .saturating_sub(MAX_EMERGENCY_ACCESSES);
    state.emergency_accesses.drain(..excess);
}

impl Follower {
    fn primary(&self) -> &GlycoClient {
        &self.clients[0]
    }

    /// One step: catch up from the checkpoint to the (confirmed) head.
    pub async fn sync_once(&self) -> Result<u64, SyncError> {
        let expected = self.primary().deployment().chain_id;
        for client in &self.clients {
            let served = client.chain_id().await?;
            if served != expected {
                return Err(SyncError::WrongChain { served, expected });
            }
        }
        // The lowest head: no node is followed past what all have.
        let mut head = u64::MAX;
        for client in &self.clients {
            head = head.min(client.block_number().await?);
        }
        let patient = self.patient;
        let hub = self.hub;
        let bound = agreed(&self.clients, "the hub's patient", |c| async move {
            c.hub_patient(hub).await
        })
        .await?;
        match bound {
            None => return Err(SyncError::NotAuthorised { hub }),
            Some(on_chain) if on_chain != patient => {
                return Err(SyncError::PatientMismatch {
                    hub,
                    on_chain,
                    configured: patient,
                });
            }
            Some(_) => {}
        }

        let target = head.saturating_sub(self.confirmations);
        let mut state = self.registry.snapshot();
        if state.patient != Some(patient) {
            // A hub re-assigned to another patient starts over.
            state = MirrorState {
                patient: Some(patient),
                ..MirrorState::default()
            };
        }
        let mut rebuilding = false;
        if let (Some(block), Some(hash)) = (state.synced_block, state.synced_hash) {
            if block > target {
                return Err(SyncError::NodeBehind {
                    head,
                    checkpoint: block,
                });
            }
            let now = self.hash_of(block, head).await?;
            if now != hash {
                tracing::warn!(
                    block,
                    was = %hash,
                    now = %now,
                    "the chain reorganised under the mirror's checkpoint; rebuilding the mirror"
                );
                state = MirrorState {
                    patient: Some(patient),
                    emergency_accesses: state.emergency_accesses,
                    ..MirrorState::default()
                };
                rebuilding = true;
            }
        }
        let mut from = match state.synced_block {
            Some(block) => block + 1,
            None => self.primary().deployment().deployed_at_block,
        };
        while from <= target {
            let to = target.min(from.saturating_add(self.chunk_blocks - 1));
            let changes = agreed(&self.clients, "the device changes", |c| async move {
                c.device_changes(patient, from, to).await
            })
            .await?;
            let accesses = agreed(&self.clients, "the emergency accesses", |c| async move {
                c.emergency_accesses(patient, from, Some(to)).await
            })
            .await?;
            // The end of the chunk must be a block the nodes can show.
            let to_hash = self.hash_of(to, head).await?;
            apply(&mut state, changes);
            note_emergencies(&mut state, accesses);
            state.synced_block = Some(to);
            state.synced_hash = Some(to_hash);
            save_mirror(&self.journal, &state).await?;
            if !rebuilding {
                self.registry.replace(state.clone());
            }
            from = to + 1;
        }
        if state != self.registry.snapshot() {
            save_mirror(&self.journal, &state).await?;
            self.registry.replace(state);
        }
        Ok(head)
    }

    async fn hash_of(&self, block: u64, head: u64) -> Result<B256, SyncError> {
        let hash = agreed(&self.clients, &format!("block {block}"), |c| async move {
            c.block_hash(block).await
        })
        .await?;
        hash.ok_or(SyncError::MissingBlock { head, block })
    }

    /// Polls until cancelled, recording health for the status output.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), std::convert::Infallible> {
        let mut head_moved = Instant::now();
        loop {
            let round = self.busy.enter();
            let step = tokio::time::timeout(self.step_timeout, self.sync_once());
            let result = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                result = step => result.unwrap_or(Err(SyncError::Timeout(self.step_timeout))),
            };
            let mut health = self.registry.health();
            health.endpoints = self.clients.len();
            match result {
                Ok(head) => {
                    if health.head.is_none_or(|h| head > h) {
                        head_moved = Instant::now();
                        health.head_moved_at = Some(now_millis());
                    }
                    health.reachable = true;
                    health.head = Some(head);
                    health.last_error = None;
                    health.halted = None;
                    health.last_success_at = Some(now_millis());
                }
                Err(e) => {
                    let message = e.to_string();
                    if health.last_error.as_deref() != Some(&message) {
                        tracing::warn!(error = %e, "registry sync failed; keeping the last mirror");
                    }
                    health.reachable = !e.unreachable();
                    if e.undecodable() {
                        health.halted = Some(message.clone());
                    }
                    health.last_error = Some(message);
                }
            }
            health.stale = head_moved.elapsed() > self.stale_after;
            self.registry.set_health(health);
            drop(round);
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }
}
