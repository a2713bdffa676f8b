//! Staged rollout of a release (docs/FLEET.md, "Updates"). The node offers
//! one RAUC bundle, with the answer to a heartbeat, to a fixed share of its
//! hubs first (`--rollout-percent`), picked by a hash of the hub and the
//! bundle so each release starts with a different cohort. A hub reports in
//! its heartbeats how the update went; once `--rollout-stop-after` hubs
//! report a refusal or a rollback, the node stops offering it.
//!
//! The node is not trusted with the decision to install: each hub checks
//! the bundle on chain and against its release keyring itself. The bundle
//! is served over iroh-blobs only to hubs whose heartbeats the node kept.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glyco_contracts::{Address, B256};
use glyco_seal::fleet::{Heartbeat, ReleaseOffer, UpdateOutcome, UpdateReport};
use iroh::EndpointId;
use iroh_blobs::provider::events::{
    AbortReason, ConnectMode, EventMask, EventSender, ProviderMessage, RequestMode,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Hubs fetching the bundle at once.
const MAX_FETCHES: usize = 32;
/// A hub may fetch for this long after its last kept heartbeat.
const FETCH_GRACE: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("--rollout-percent is 1 to 100")]
    Percent,
    #[error("--rollout-stop-after is 1 to 10,000")]
    StopAfter,
    #[error("--release-version is 1 to 80 characters")]
    Version,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the release store: {0}")]
    Store(String),
}

/// What the node rolls out, and how far.
#[derive(Debug, Clone)]
pub struct RolloutPlan {
    pub offer: ReleaseOffer,
    pub percent: u8,
    pub stop_after: usize,
}

impl RolloutPlan {
    pub fn new(offer: ReleaseOffer, percent: u8, stop_after: usize) -> Result<Self, RolloutError> {
        if !(1..=100).contains(&percent) {
            return Err(RolloutError::Percent);
        }
        if !(1..=10_000).contains(&stop_after) {
            return Err(RolloutError::StopAfter);
        }
        if !(1..=glyco_seal::fleet::MAX_FIELD_CHARS).contains(&offer.version.chars().count()) {
            return Err(RolloutError::Version);
        }
        Ok(Self {
            offer,
            percent,
            stop_after,
        })
    }

    /// Whether `hub` is in this release's cohort: the same answer every
    /// time, and a different cohort for each bundle.
    pub fn in_cohort(&self, hub: Address) -> bool {
        let digest = blake3::hash(&[hub.as_slice(), &self.offer.sha256].concat());
        let draw = u64::from_be_bytes(digest.as_bytes()[..8].try_into().unwrap_or_default()) % 100;
        draw < u64::from(self.percent)
    }
}

/// Where the rollout stands (`/fleet.json`, metrics, `fleet show`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutSummary {
    pub version: String,
    pub sha256: String,
    pub percent: u8,
    pub stop_after: usize,
    /// Hubs offered the release so far.
    pub offered: usize,
    pub kept: usize,
    /// Hubs that refused it or rolled it back, with why.
    pub failed: BTreeMap<String, String>,
    /// When the node stopped offering it (too many failures).
    pub halted_at_ms: Option<i64>,
}

/// What a heartbeat says of the hub's release.
#[derive(Debug, Clone)]
pub struct HubRelease {
    pub hub: Address,
    pub release: Option<String>,
    pub update: Option<UpdateReport>,
}

impl HubRelease {
    pub fn of(beat: &Heartbeat) -> Self {
        Self {
            hub: beat.hub,
            release: beat.release.clone(),
            update: beat.update.clone(),
        }
    }
}

/// The rollout's state: bounded by the hubs the book keeps (only hubs with
/// a kept heartbeat reach it).
#[derive(Debug)]
pub struct Rollout {
    plan: RolloutPlan,
    offered: BTreeSet<Address>,
    kept: BTreeSet<Address>,
    failed: BTreeMap<Address, String>,
    halted_at_ms: Option<i64>,
}

impl Rollout {
    pub fn new(plan: RolloutPlan) -> Self {
        Self {
            plan,
            offered: BTreeSet::new(),
            kept: BTreeSet::new(),
            failed: BTreeMap::new(),
            halted_at_ms: None,
        }
    }

    /// Notes what a kept heartbeat says of the release and answers with
    /// the offer, if this hub is to get it now.
    pub fn on_heartbeat(&mut self, beat: &HubRelease, now_ms: i64) -> Option<ReleaseOffer> {
        let offer = &self.plan.offer;
        if let Some(update) = beat.update.as_ref().filter(|u| u.sha256 == offer.sha256) {
            match &update.outcome {
                UpdateOutcome::Kept => {
                    self.kept.insert(beat.hub);
                }
                UpdateOutcome::Refused { why } | UpdateOutcome::RolledBack { why } => {
                    let why = format!("{}: {why}", update.outcome.name());
                    if self.failed.insert(beat.hub, why.clone()).is_none() {
                        tracing::warn!(hub = %beat.hub, version = %offer.version, %why, "a hub's update failed");
                    }
                    if self.failed.len() >= self.plan.stop_after && self.halted_at_ms.is_none() {
                        self.halted_at_ms = Some(now_ms);
                        tracing::error!(
                            version = %offer.version,
                            failed = self.failed.len(),
                            "the rollout is halted: too many hubs failed to update"
                        );
                    }
                }
                UpdateOutcome::Fetching | UpdateOutcome::Installing => {}
            }
            if update.outcome.is_final() {
                return None;
            }
        }
        if beat.release.as_deref() == Some(offer.version.as_str()) {
            self.kept.insert(beat.hub);
            return None;
        }
        if self.halted_at_ms.is_some() || !self.plan.in_cohort(beat.hub) {
            return None;
        }
        self.offered.insert(beat.hub);
        Some(offer.clone())
    }

    pub fn summary(&self) -> RolloutSummary {
        RolloutSummary {
            version: self.plan.offer.version.clone(),
            sha256: B256::from(self.plan.offer.sha256).to_string(),
            percent: self.plan.percent,
            stop_after: self.plan.stop_after,
            offered: self.offered.len(),
            kept: self.kept.len(),
            failed: self
                .failed
                .iter()
                .map(|(hub, why)| (format!("{hub:#x}"), why.clone()))
                .collect(),
            halted_at_ms: self.halted_at_ms,
        }
    }
}

/// The iroh endpoints of hubs whose heartbeats the node kept lately: the
/// only peers the release store serves.
#[derive(Debug, Default)]
pub struct FleetPeers {
    seen: Mutex<HashMap<EndpointId, Instant>>,
    max: usize,
}

impl FleetPeers {
    pub fn new(max: usize) -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            max,
        }
    }

    pub fn kept_from(&self, peer: EndpointId) {
        let mut seen = self.seen.lock();
        if seen.len() >= self.max && !seen.contains_key(&peer) {
            seen.retain(|_, at| at.elapsed() < FETCH_GRACE);
            if seen.len() >= self.max {
                return;
            }
        }
        seen.insert(peer, Instant::now());
    }

    pub fn may_fetch(&self, peer: EndpointId) -> bool {
        self.seen
            .lock()
            .get(&peer)
            .is_some_and(|at| at.elapsed() < FETCH_GRACE)
    }
}

/// The bundle on offer, imported into an iroh-blobs store in the node's
/// directory (by reference: the file must stay where it is).
pub struct ReleaseShelf {
    pub store: iroh_blobs::store::fs::FsStore,
    pub offer: ReleaseOffer,
}

impl ReleaseShelf {
    pub async fn open(dir: &Path, bundle: &Path, version: String) -> Result<Self, RolloutError> {
        let bundle = std::fs::canonicalize(bundle).map_err(|source| RolloutError::Io {
            path: bundle.to_owned(),
            source,
        })?;
        let (sha256, bytes) = sha256_of(&bundle)?;
        let store = iroh_blobs::store::fs::FsStore::load(dir)
            .await
            .map_err(|e| RolloutError::Store(e.to_string()))?;
        let tag = store
            .add_path(&bundle)
            .await
            .map_err(|e| RolloutError::Store(e.to_string()))?;
        Ok(Self {
            store,
            offer: ReleaseOffer {
                version,
                sha256: sha256.0,
                blake3: *tag.hash.as_bytes(),
                bytes,
            },
        })
    }

    /// The blob protocol's events: a connection is taken only from a hub
    /// the node heard from lately, and only so many at once.
    pub fn gate(peers: Arc<FleetPeers>) -> EventSender {
        let mask = EventMask {
            connected: ConnectMode::Intercept,
            get: RequestMode::Intercept,
            get_many: RequestMode::Disabled,
            ..EventMask::DEFAULT
        };
        let (events, mut rx) = EventSender::channel(32, mask);
        tokio::spawn(async move {
            let open: Arc<Mutex<HashMap<u64, EndpointId>>> = Arc::default();
            while let Some(message) = rx.recv().await {
                // Every intercepted event must be answered, or it hangs.
                match message {
                    ProviderMessage::ClientConnected(message) => {
                        let allowed = {
                            let mut open = open.lock();
                            let allowed = open.len() < MAX_FETCHES
                                && message.endpoint_id.is_some_and(|p| peers.may_fetch(p));
                            if let (true, Some(peer)) = (allowed, message.endpoint_id) {
                                open.insert(message.connection_id, peer);
                            }
                            allowed
                        };
                        let _ = message.tx.send(permission(allowed)).await;
                    }
                    ProviderMessage::ConnectionClosed(message) => {
                        open.lock().remove(&message.connection_id);
                    }
                    ProviderMessage::GetRequestReceived(message) => {
                        let allowed = open.lock().contains_key(&message.connection_id);
                        let _ = message.tx.send(permission(allowed)).await;
                    }
                    _ => {}
                }
            }
        });
        events
    }
}

fn permission(allowed: bool) -> Result<(), AbortReason> {
    if allowed {
        Ok(())
    } else {
        Err(AbortReason::Permission)
    }
}

/// A file's SHA-256 and length, read in 1 MiB pieces.
pub fn sha256_of(path: &Path) -> Result<(B256, u64), RolloutError> {
    use sha2::Digest;
    use std::io::Read;
    let io = |source| RolloutError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(io)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        hasher.update(&buffer[..n]);
    }
    Ok((B256::from_slice(&hasher.finalize()), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    fn plan(percent: u8, stop_after: usize) -> RolloutPlan {
        RolloutPlan::new(
            ReleaseOffer {
                version: "2026.12.2".into(),
                sha256: [9; 32],
                blake3: [3; 32],
                bytes: 1000,
            },
            percent,
            stop_after,
        )
        .unwrap()
    }

    fn beat(hub: Address, update: Option<UpdateOutcome>) -> HubRelease {
        let mut beat = crate::fleet::book::tests::beat(hub, 1, 1, 1);
        beat.release = Some("2026.12.1".into());
        beat.update = update.map(|outcome| UpdateReport {
            version: "2026.12.2".into(),
            sha256: [9; 32],
            at_ms: 1,
            outcome,
        });
        HubRelease::of(&beat)
    }

    #[test]
    fn the_cohort_is_about_the_share_asked_and_stable() {
        let plan = plan(10, 1);
        let hubs: Vec<Address> = (0..10_000u32)
            .map(|i| Address::from_slice(&blake3::hash(&i.to_be_bytes()).as_bytes()[..20]))
            .collect();
        let chosen = hubs.iter().filter(|h| plan.in_cohort(**h)).count();
        assert!((800..1200).contains(&chosen), "{chosen} of 10,000 at 10 %");
        assert!(
            hubs.iter()
                .all(|h| plan.in_cohort(*h) == plan.in_cohort(*h))
        );
        assert!(hubs.iter().all(|h| self::plan(100, 1).in_cohort(*h)));
        assert!(RolloutPlan::new(plan.offer.clone(), 0, 1).is_err());
        assert!(RolloutPlan::new(plan.offer.clone(), 101, 1).is_err());
        assert!(RolloutPlan::new(plan.offer.clone(), 50, 0).is_err());
    }

    #[test]
    fn offers_until_an_outcome_and_halts_on_failures() {
        let mut rollout = Rollout::new(plan(100, 2));
        let (a, b, c, d) = (
            Address::repeat_byte(1),
            Address::repeat_byte(2),
            Address::repeat_byte(3),
            Address::repeat_byte(4),
        );
        assert!(rollout.on_heartbeat(&beat(a, None), 1).is_some());
        assert!(
            rollout
                .on_heartbeat(&beat(a, Some(UpdateOutcome::Fetching)), 2)
                .is_some(),
            "offered again while it fetches (the answer is idempotent)"
        );
        assert!(
            rollout
                .on_heartbeat(&beat(a, Some(UpdateOutcome::Kept)), 3)
                .is_none()
        );
        let why = || "health check: the hub's service restarted".to_string();
        assert!(
            rollout
                .on_heartbeat(&beat(b, Some(UpdateOutcome::RolledBack { why: why() })), 4)
                .is_none(),
            "a hub that rolled back is not offered it again"
        );
        assert!(rollout.on_heartbeat(&beat(c, None), 5).is_some());
        rollout.on_heartbeat(&beat(c, Some(UpdateOutcome::Refused { why: why() })), 6);
        let summary = rollout.summary();
        assert_eq!(summary.halted_at_ms, Some(6));
        assert_eq!((summary.kept, summary.failed.len()), (1, 2));
        assert!(
            rollout.on_heartbeat(&beat(d, None), 7).is_none(),
            "halted: nobody else is offered it"
        );
        let mut on_it = beat(d, None);
        on_it.release = Some("2026.12.2".into());
        assert!(rollout.on_heartbeat(&on_it, 8).is_none());
        assert_eq!(rollout.summary().kept, 2);
    }

    #[test]
    fn only_recent_fleet_peers_may_fetch_and_the_list_is_bounded() {
        let peers = FleetPeers::new(2);
        let key = |b: u8| iroh::SecretKey::from_bytes(&[b; 32]).public();
        peers.kept_from(key(1));
        peers.kept_from(key(2));
        peers.kept_from(key(3));
        assert!(peers.may_fetch(key(1)) && peers.may_fetch(key(2)));
        assert!(!peers.may_fetch(key(3)), "over the bound: not taken");
        assert!(!peers.may_fetch(key(4)));
    }
}
