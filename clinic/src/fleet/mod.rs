//! The clinic's fleet node (docs/FLEET.md): hubs send it signed heartbeats
//! over iroh (`glyco/fleet/1`), it keeps the newest of each in the
//! [`book::FleetBook`], judges each hub against its own habits
//! (`glyco_ml::fleet`), and serves the fleet view and Prometheus metrics
//! over HTTP on the clinic's network ([`http`]).
//!
//! Anyone may connect, so a heartbeat is kept only when its signature is
//! the hub's and the chain says that hub serves a patient; a physician's
//! proposed policy only when the physician holds a live grant from that
//! patient. Chain answers are cached per hub, lookups for unknown hubs are
//! capped in flight, and the book is bounded.

pub mod book;
pub mod http;
pub mod metrics;
pub mod rollout;
pub mod view;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glyco_contracts::Address;
use glyco_seal::alerts::AlertPolicyDoc;
use glyco_seal::fleet::{
    self, FleetAnswer, FleetRefusal, Heartbeat, HubFleetMessage, MAX_FLEET_MESSAGE_BYTES, Signed,
};
use iroh::EndpointId;
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler};
use parking_lot::Mutex;
use tokio::sync::Semaphore;

use crate::proxy::chain_view::ChainView;
use book::{FleetBook, FleetSettings};
use rollout::{FleetPeers, Rollout, RolloutSummary};

/// Messages one connection may carry before it is closed.
const MESSAGES_PER_CONNECTION: usize = 256;
/// How long a peer may take to send one message.
const READ_WAIT: Duration = Duration::from_secs(20);
/// A hub's patient, as the chain said, is trusted this long.
const ADMITTED_TTL: Duration = Duration::from_secs(10 * 60);
/// A hub the chain does not know is asked again after this.
const REFUSED_TTL: Duration = Duration::from_secs(60);
/// Chain lookups for hubs not in the cache, at once.
const LOOKUPS_IN_FLIGHT: usize = 16;
/// Hubs' iroh endpoints remembered for the release store.
const MAX_FLEET_PEERS: usize = 100_000;

pub fn now_ms() -> i64 {
    glyco_webkit::now_millis()
}

/// Refusals by reason, for the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeCounts {
    pub refused: std::collections::BTreeMap<&'static str, u64>,
}

/// Every name [`reason_name`] gives, for the metrics' series.
pub const REFUSAL_REASONS: [&str; 11] = [
    "bad_signature",
    "wrong_signer",
    "not_a_hub",
    "replayed",
    "too_often",
    "fleet_full",
    "over_bound",
    "no_live_grant",
    "chain_unavailable",
    "malformed",
    "busy",
];

fn reason_name(reason: &FleetRefusal) -> &'static str {
    match reason {
        FleetRefusal::BadSignature { .. } => "bad_signature",
        FleetRefusal::WrongSigner { .. } => "wrong_signer",
        FleetRefusal::NotAHub { .. } => "not_a_hub",
        FleetRefusal::Replayed { .. } => "replayed",
        FleetRefusal::TooOften { .. } => "too_often",
        FleetRefusal::FleetFull { .. } => "fleet_full",
        FleetRefusal::OverBound { .. } => "over_bound",
        FleetRefusal::NoLiveGrant { .. } => "no_live_grant",
        FleetRefusal::ChainUnavailable { .. } => "chain_unavailable",
        FleetRefusal::Malformed { .. } => "malformed",
        FleetRefusal::Busy => "busy",
    }
}

pub struct FleetNode {
    chain: ChainView,
    book: Mutex<FleetBook>,
    roster: Option<PathBuf>,
    admitted: Mutex<HashMap<Address, (Instant, Option<Address>)>>,
    lookups: Arc<Semaphore>,
    counts: Mutex<NodeCounts>,
    rollout: Option<Mutex<Rollout>>,
    /// Hubs' iroh endpoints, for the release store's gate.
    peers: Arc<FleetPeers>,
}

impl FleetNode {
    pub fn new(chain: ChainView, book: FleetBook, roster: Option<PathBuf>) -> Self {
        Self {
            chain,
            book: Mutex::new(book),
            roster,
            admitted: Mutex::new(HashMap::new()),
            lookups: Arc::new(Semaphore::new(LOOKUPS_IN_FLIGHT)),
            counts: Mutex::new(NodeCounts::default()),
            rollout: None,
            peers: Arc::new(FleetPeers::new(MAX_FLEET_PEERS)),
        }
    }

    /// Rolls a release out with the answers to heartbeats.
    pub fn with_rollout(mut self, rollout: Rollout) -> Self {
        self.rollout = Some(Mutex::new(rollout));
        self
    }

    pub fn rollout(&self) -> Option<RolloutSummary> {
        self.rollout.as_ref().map(|r| r.lock().summary())
    }

    /// The hubs' endpoints the release store may serve.
    pub fn peers(&self) -> Arc<FleetPeers> {
        self.peers.clone()
    }

    /// Takes `hub` as serving `patient` without asking the chain, for
    /// [`ADMITTED_TTL`]: an answer known from elsewhere (the enrolment
    /// that just made it so; the scale bench, which has no chain).
    pub fn known_hub(&self, hub: Address, patient: Address) {
        self.admitted
            .lock()
            .insert(hub, (Instant::now(), Some(patient)));
    }

    /// Reads the book under its lock.
    pub fn with_book<R>(&self, read: impl FnOnce(&FleetBook) -> R) -> R {
        read(&self.book.lock())
    }

    pub fn counts(&self) -> NodeCounts {
        self.counts.lock().clone()
    }

    /// Writes the roster (if the node keeps one); the book is copied under
    /// the lock and written outside it.
    pub fn save(&self) -> Result<(), book::FleetBookError> {
        let Some(path) = &self.roster else {
            return Ok(());
        };
        let bytes = self.book.lock().to_bytes()?;
        glyco_contracts::files::write_atomically(path, &bytes).map_err(|source| {
            book::FleetBookError::Io {
                path: path.clone(),
                source,
            }
        })
    }

    fn refused(&self, reason: FleetRefusal) -> FleetAnswer {
        *self
            .counts
            .lock()
            .refused
            .entry(reason_name(&reason))
            .or_default() += 1;
        tracing::debug!(%reason, "fleet message refused");
        FleetAnswer::Refused { reason }
    }

    /// The patient `hub` serves, from the cache or the chain.
    async fn patient_of(&self, hub: Address) -> Result<Address, FleetRefusal> {
        if let Some((at, patient)) = self.admitted.lock().get(&hub).copied() {
            let ttl = if patient.is_some() {
                ADMITTED_TTL
            } else {
                REFUSED_TTL
            };
            if at.elapsed() < ttl {
                return patient.ok_or(FleetRefusal::NotAHub { hub });
            }
        }
        let _permit = self
            .lookups
            .clone()
            .try_acquire_owned()
            .map_err(|_| FleetRefusal::Busy)?;
        let patient =
            self.chain
                .hub_patient(hub)
                .await
                .map_err(|e| FleetRefusal::ChainUnavailable {
                    detail: e.to_string(),
                })?;
        let mut admitted = self.admitted.lock();
        let max = self.book.lock().settings.max_hubs;
        if admitted.len() >= 2 * max {
            admitted.retain(|_, (at, p)| p.is_some() && at.elapsed() < ADMITTED_TTL);
        }
        admitted.insert(hub, (Instant::now(), patient));
        patient.ok_or(FleetRefusal::NotAHub { hub })
    }

    async fn heartbeat(
        &self,
        signed: Signed<Heartbeat>,
        peer: Option<EndpointId>,
    ) -> Result<FleetAnswer, FleetRefusal> {
        let received_at_ms = now_ms();
        signed.body.check_bounds()?;
        let hub = signed.body.hub;
        let signer = signed.signer().map_err(|e| FleetRefusal::BadSignature {
            detail: e.to_string(),
        })?;
        if signer != hub {
            return Err(FleetRefusal::WrongSigner {
                expected: hub,
                actual: signer,
            });
        }
        let patient = self.patient_of(hub).await?;
        let release = self
            .rollout
            .as_ref()
            .map(|_| rollout::HubRelease::of(&signed.body));
        let proposed = self
            .book
            .lock()
            .record(signed.body, patient, received_at_ms)?;
        let offered_release = match (&self.rollout, release) {
            (Some(rollout), Some(release)) => rollout.lock().on_heartbeat(&release, received_at_ms),
            _ => None,
        };
        if let Some(peer) = peer {
            self.peers.kept_from(peer);
        }
        Ok(FleetAnswer::Kept {
            node_time_ms: now_ms(),
            proposed_policy: proposed,
            offered_release,
        })
    }

    async fn propose(&self, signed: Signed<AlertPolicyDoc>) -> Result<FleetAnswer, FleetRefusal> {
        let doc = &signed.body;
        let signer = signed.signer().map_err(|e| FleetRefusal::BadSignature {
            detail: e.to_string(),
        })?;
        let patient = self.patient_of(doc.hub).await?;
        if patient != doc.patient {
            return Err(FleetRefusal::NotAHub { hub: doc.hub });
        }
        let live = self
            .chain
            .grant(patient, signer)
            .await
            .map_err(|e| FleetRefusal::ChainUnavailable {
                detail: e.to_string(),
            })?
            .is_some_and(|g| g.live);
        if !live {
            return Err(FleetRefusal::NoLiveGrant {
                signer,
                hub: doc.hub,
            });
        }
        let version = self.book.lock().propose(signed)?;
        tracing::info!(%signer, version, "alert policy proposed for a hub");
        Ok(FleetAnswer::Proposed { version })
    }

    /// Answers one message; `peer` is the iroh endpoint it came from.
    pub async fn on_message(
        &self,
        message: HubFleetMessage,
        peer: Option<EndpointId>,
    ) -> FleetAnswer {
        let result = match message {
            HubFleetMessage::Heartbeat(signed) => self.heartbeat(*signed, peer).await,
            HubFleetMessage::ProposePolicy(signed) => self.propose(*signed).await,
        };
        result.unwrap_or_else(|reason| self.refused(reason))
    }
}

/// The iroh protocol handler of [`FLEET_ALPN`].
#[derive(Clone)]
pub struct FleetFromHubs(pub Arc<FleetNode>);

impl std::fmt::Debug for FleetFromHubs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FleetFromHubs")
    }
}

impl ProtocolHandler for FleetFromHubs {
    async fn accept(&self, connection: Connection) -> Result<(), AcceptError> {
        for _ in 0..MESSAGES_PER_CONNECTION {
            let Ok((mut send, mut recv)) = connection.accept_bi().await else {
                return Ok(());
            };
            let read = tokio::time::timeout(READ_WAIT, recv.read_to_end(MAX_FLEET_MESSAGE_BYTES));
            let answer = match read.await {
                Err(_) => self.0.refused(FleetRefusal::Malformed {
                    detail: "the message took too long to arrive".into(),
                }),
                Ok(Err(e)) => self.0.refused(FleetRefusal::Malformed {
                    detail: format!("reading the message: {e}"),
                }),
                Ok(Ok(bytes)) => match fleet::decode::<HubFleetMessage>(&bytes) {
                    Ok(message) => {
                        self.0
                            .on_message(message, Some(connection.remote_id()))
                            .await
                    }
                    Err(e) => self.0.refused(FleetRefusal::Malformed {
                        detail: e.to_string(),
                    }),
                },
            };
            let Ok(bytes) = fleet::encode(&answer) else {
                return Ok(());
            };
            if send.write_all(&bytes).await.is_err() || send.finish().is_err() {
                return Ok(());
            }
        }
        connection.close(0u32.into(), b"message limit per connection");
        Ok(())
    }
}

/// Sends one message to a fleet node and reads its answer within `wait`
/// (hubs and physicians' tools).
pub async fn exchange(
    connection: &Connection,
    message: &HubFleetMessage,
    wait: Duration,
) -> Result<FleetAnswer, String> {
    tokio::time::timeout(wait, fleet::exchange(connection, message))
        .await
        .map_err(|_| "the fleet node did not answer in time".to_string())?
}

/// The settings a fleet node starts with, checked before anything opens.
pub fn settings(
    silent_after_secs: u64,
    max_hubs: usize,
    current_release: Option<String>,
    current_version: Option<String>,
) -> Result<FleetSettings, String> {
    if !(10..=7 * 24 * 3600).contains(&silent_after_secs) {
        return Err("--silent-after-secs is 10 to 604800".into());
    }
    if !(1..=1_000_000).contains(&max_hubs) {
        return Err("--max-hubs is 1 to 1,000,000".into());
    }
    Ok(FleetSettings {
        silent_after_ms: silent_after_secs as i64 * 1000,
        max_hubs,
        current_release,
        current_version,
        ..FleetSettings::default()
    })
}
