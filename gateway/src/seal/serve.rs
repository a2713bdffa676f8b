//! Serving sealed batches over iroh to clinic replicas, and only to them.
//!
//! One iroh endpoint (its key in the state directory, 0600; relays off)
//! carries two protocols: iroh-blobs for the blobs themselves, and the
//! replication protocol (`glyco_seal::replication`) for listings, inclusion
//! proofs and confirmations. Both admit a connection only if its node id is
//! enrolled on chain for an active medical entity (`Roles.activeNodeEntity`);
//! every other node is refused at connect time and counted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glyco_contracts::{Address, B256, GlycoClient};
use glyco_seal::replication::{
    self, AnchorListing, BatchListing, Confirmation, Listing, MAX_BATCHES_PER_MESSAGE, Request,
    Response,
};
use iroh::endpoint::{Connection, VarInt, presets};
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use iroh::{Endpoint, EndpointId, RelayMode, SecretKey};
use iroh_blobs::BlobsProtocol;
use iroh_blobs::provider::events::{
    AbortReason, ConnectMode, EventMask, EventSender, ProviderMessage, RequestMode,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::SealState;
use super::blobs::BlobStore;
use super::records::{AnchorEntry, AnchorState, BatchRecord, unhex32};
use crate::journal::{Journal, JournalError, JournalWriter, Outbox};
use crate::reading::{UnixMillis, now_millis};

/// How long a node's admission (either way) is trusted before the chain is
/// asked again: a retired node loses access within this time.
const GATE_TTL: Duration = Duration::from_secs(30);
/// Cached decisions kept at most (fresh node ids are free to make).
const GATE_CACHE_MAX: usize = 1024;
/// Chain lookups in flight at most: a flood of new node ids costs the
/// chain node little.
const GATE_LOOKUPS: usize = 4;
/// Application close code for a refused node.
const REFUSED: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the iroh node key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("binding the iroh endpoint on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
}

/// A replica's confirmation, as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicatedRecord {
    pub hash: String,
    /// The replica's iroh node id.
    pub node: String,
    pub at: UnixMillis,
}

/// Loads the hub's iroh node key, or creates it (0600) at first start.
pub fn load_or_create_node_key(path: &Path) -> Result<SecretKey, ServeError> {
    let (secret, _) =
        glyco_contracts::keys::load_or_create_secret(path).map_err(|e| ServeError::Key {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    Ok(SecretKey::from_bytes(&secret.0))
}

/// Whether a node may fetch: enrolled on chain for an active entity.
#[derive(Debug)]
pub struct NodeGate {
    chain: GlycoClient,
    decisions: Mutex<HashMap<EndpointId, (bool, Instant)>>,
    lookups: tokio::sync::Semaphore,
    state: SealState,
}

impl NodeGate {
    pub fn new(chain: GlycoClient, state: SealState) -> Self {
        Self {
            chain,
            decisions: Mutex::new(HashMap::new()),
            lookups: tokio::sync::Semaphore::new(GATE_LOOKUPS),
            state,
        }
    }

    /// Admits or refuses `node` (refusals counted). Fails closed: a chain
    /// that cannot answer admits nobody new.
    pub async fn admits(&self, node: EndpointId) -> bool {
        let cached = self
            .decisions
            .lock()
            .get(&node)
            .filter(|(_, at)| at.elapsed() < GATE_TTL)
            .map(|(allowed, _)| *allowed);
        let allowed = match cached {
            Some(allowed) => allowed,
            None => self.look_up(node).await,
        };
        if !allowed {
            self.state.update(|s| {
                s.node_refusals += 1;
                s.last_refused_node = Some(node.to_string());
            });
            tracing::debug!(node = %node.fmt_short(), "refused a node not enrolled on chain");
        }
        allowed
    }

    async fn look_up(&self, node: EndpointId) -> bool {
        let Ok(_permit) = self.lookups.acquire().await else {
            return false;
        };
        let id = B256::from(*node.as_bytes());
        let allowed = match self.chain.active_node_entity(id).await {
            Ok(entity) => entity.is_some(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot check a node on chain; refusing it");
                return false;
            }
        };
        let mut decisions = self.decisions.lock();
        if decisions.len() >= GATE_CACHE_MAX {
            decisions.retain(|_, (_, at)| at.elapsed() < GATE_TTL);
            if decisions.len() >= GATE_CACHE_MAX {
                decisions.clear();
            }
        }
        decisions.insert(node, (allowed, Instant::now()));
        allowed
    }
}

/// Connections the blob handler tracks at most (each maps its id to the
/// node that opened it); beyond, new connections are refused.
const MAX_BLOB_CONNECTIONS: usize = 256;

/// The blob event handler: each connecting node passes the gate, and each
/// request on its connection passes it again (a node retired on chain loses
/// access within the gate's cache time, even on a connection it keeps
/// open). A refused connect closes the connection with iroh-blobs'
/// permission error; a refused request resets its stream.
fn gated_blob_events(gate: Arc<NodeGate>) -> EventSender {
    let mask = EventMask {
        connected: ConnectMode::Intercept,
        get: RequestMode::Intercept,
        get_many: RequestMode::Disabled,
        ..EventMask::DEFAULT
    };
    let (events, mut rx) = EventSender::channel(32, mask);
    tokio::spawn(async move {
        let nodes: Arc<Mutex<HashMap<u64, EndpointId>>> = Arc::default();
        while let Some(message) = rx.recv().await {
            let (gate, nodes) = (gate.clone(), nodes.clone());
            // Every intercepted event must be answered, or it hangs.
            match message {
                ProviderMessage::ClientConnected(message) => {
                    tokio::spawn(async move {
                        let room = nodes.lock().len() < MAX_BLOB_CONNECTIONS;
                        let allowed = match message.endpoint_id {
                            Some(node) if room => gate.admits(node).await,
                            _ => false,
                        };
                        if let (true, Some(node)) = (allowed, message.endpoint_id) {
                            nodes.lock().insert(message.connection_id, node);
                        }
                        let _ = message.tx.send(permission(allowed)).await;
                    });
                }
                ProviderMessage::ConnectionClosed(message) => {
                    nodes.lock().remove(&message.connection_id);
                }
                ProviderMessage::GetRequestReceived(message) => {
                    tokio::spawn(async move {
                        let node = nodes.lock().get(&message.connection_id).copied();
                        let allowed = match node {
                            Some(node) => gate.admits(node).await,
                            None => false,
                        };
                        let _ = message.tx.send(permission(allowed)).await;
                    });
                }
                _ => {}
            }
        }
    });
    events
}

fn permission(allowed: bool) -> Result<(), AbortReason> {
    if allowed {
        Ok(())
    } else {
        Err(AbortReason::Permission)
    }
}

/// Answers listings and records confirmations.
#[derive(Clone)]
pub struct ReplicationService {
    gate: Arc<NodeGate>,
    journal: Journal,
    writer: JournalWriter,
    hub: Address,
    patient: Address,
    state: SealState,
}

impl std::fmt::Debug for ReplicationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationService")
            .field("hub", &self.hub)
            .finish_non_exhaustive()
    }
}

impl ProtocolHandler for ReplicationService {
    async fn accept(&self, connection: Connection) -> Result<(), AcceptError> {
        let node = connection.remote_id();
        if !self.gate.admits(node).await {
            connection.close(VarInt::from_u32(REFUSED), b"node not enrolled on chain");
            return Ok(());
        }
        // One request at a time per connection: a node cannot fan out work.
        while let Ok((mut send, mut recv)) = connection.accept_bi().await {
            // Checked again per request: a node retired on chain loses
            // access within the gate's cache time on a connection it keeps.
            if !self.gate.admits(node).await {
                connection.close(VarInt::from_u32(REFUSED), b"node not enrolled on chain");
                break;
            }
            let response = match recv.read_to_end(replication::MAX_MESSAGE_BYTES).await {
                Ok(bytes) => match replication::decode::<Request>(&bytes) {
                    Ok(request) => self.answer(node, request).await,
                    Err(e) => Response::Refused {
                        reason: e.to_string(),
                    },
                },
                Err(e) => Response::Refused {
                    reason: format!("reading the request: {e}"),
                },
            };
            let bytes = match replication::encode(&response) {
                Ok(bytes) => bytes,
                Err(e) => replication::encode(&Response::Refused {
                    reason: e.to_string(),
                })
                .unwrap_or_default(),
            };
            if send.write_all(&bytes).await.is_err() || send.finish().is_err() {
                break;
            }
        }
        Ok(())
    }
}

impl ReplicationService {
    async fn answer(&self, node: EndpointId, request: Request) -> Response {
        let result = match request {
            Request::List { after, max } => self.list(after, max).map(Response::Batches),
            Request::Confirm { batches } => self.confirm(node, batches).await,
        };
        result.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "answering a replica failed");
            Response::Refused {
                reason: "the hub could not read its journal".to_owned(),
            }
        })
    }

    fn list(&self, after: u64, max: u32) -> Result<Listing, JournalError> {
        let max = max.clamp(1, MAX_BATCHES_PER_MESSAGE) as usize;
        let newest = self
            .journal
            .last_in::<BatchRecord>(Outbox::Sealed)?
            .map_or(0, |(no, _)| no);
        let records = self.journal.outbox_from::<BatchRecord>(
            Outbox::Sealed,
            after.saturating_add(1),
            max,
        )?;
        let mut batches = Vec::with_capacity(records.len());
        let mut roots: HashMap<u64, Option<String>> = HashMap::new();
        for (batch_no, record) in records {
            let anchor = match record.anchor {
                Some(at) => {
                    let root = match roots.get(&at.anchor_no) {
                        Some(root) => root.clone(),
                        None => {
                            let root = self
                                .journal
                                .outbox_get::<AnchorEntry>(Outbox::Anchors, at.anchor_no)?
                                .filter(|e| matches!(e.state, AnchorState::Anchored { .. }))
                                .map(|e| e.root);
                            roots.insert(at.anchor_no, root.clone());
                            root
                        }
                    };
                    root.map(|root| AnchorListing {
                        anchor_no: at.anchor_no,
                        root,
                        proof: at.proof,
                    })
                }
                None => None,
            };
            batches.push(BatchListing {
                batch_no,
                hash: record.hash,
                bytes: record.bytes,
                anchor,
            });
        }
        Ok(Listing {
            hub: self.hub,
            patient: self.patient,
            newest,
            batches,
            emergency_kit: self.state.snapshot().emergency_kit,
        })
    }

    async fn confirm(
        &self,
        node: EndpointId,
        confirmations: Vec<Confirmation>,
    ) -> Result<Response, JournalError> {
        if confirmations.len() > MAX_BATCHES_PER_MESSAGE as usize {
            return Ok(Response::Refused {
                reason: format!("at most {MAX_BATCHES_PER_MESSAGE} confirmations per request"),
            });
        }
        let (mut recorded, mut rejected) = (0u32, 0u32);
        let mut new = Vec::new();
        for c in confirmations {
            let known = self
                .journal
                .outbox_get::<BatchRecord>(Outbox::Sealed, c.batch_no)?
                .is_some_and(|r| unhex32(&r.hash).is_some() && r.hash == c.hash);
            if !known {
                rejected += 1;
                continue;
            }
            recorded += 1;
            if self
                .journal
                .outbox_get::<ReplicatedRecord>(Outbox::Replicated, c.batch_no)?
                .is_none()
            {
                let record = ReplicatedRecord {
                    hash: c.hash,
                    node: node.to_string(),
                    at: now_millis(),
                };
                new.push((Outbox::Replicated, c.batch_no, serde_json::to_vec(&record)?));
            }
        }
        if !new.is_empty() {
            self.writer.put_outbox(new).await?;
        }
        if rejected > 0 {
            tracing::warn!(
                node = %node.fmt_short(),
                rejected,
                "a replica confirmed batches this hub does not have"
            );
        }
        refresh_replicated(&self.journal, &self.state)?;
        Ok(Response::Confirmed { recorded, rejected })
    }
}

/// Recomputes the replicated count (the run of batches from 1 that a replica
/// confirmed) and the oldest unreplicated batch's age.
pub fn refresh_replicated(journal: &Journal, state: &SealState) -> Result<u64, JournalError> {
    let mut through = state.snapshot().batches_replicated;
    while journal
        .outbox_get::<ReplicatedRecord>(Outbox::Replicated, through + 1)?
        .is_some()
    {
        through += 1;
    }
    let oldest = journal
        .outbox_get::<BatchRecord>(Outbox::Sealed, through + 1)?
        .map(|r| now_millis().saturating_sub(r.sealed_at).max(0) as u64);
    state.update(|s| {
        s.batches_replicated = through;
        s.oldest_unreplicated_age_ms = oldest;
    });
    Ok(through)
}

/// The running iroh endpoint; dropping it stops serving.
pub struct BlobServer {
    router: Router,
}

pub struct ServeParams<'a> {
    pub node_key: SecretKey,
    pub bind: SocketAddr,
    pub blobs: &'a BlobStore,
    pub gate: Arc<NodeGate>,
    pub journal: Journal,
    pub writer: JournalWriter,
    pub hub: Address,
    pub patient: Address,
    pub state: SealState,
}

pub async fn serve(params: ServeParams<'_>) -> Result<BlobServer, ServeError> {
    let endpoint = Endpoint::builder(presets::Minimal)
        .secret_key(params.node_key)
        .relay_mode(RelayMode::Disabled)
        .clear_ip_transports()
        .bind_addr(params.bind)
        .map_err(|e| ServeError::Bind {
            addr: params.bind,
            reason: e.to_string(),
        })?
        .bind()
        .await
        .map_err(|e| ServeError::Bind {
            addr: params.bind,
            reason: e.to_string(),
        })?;
    let node_id = endpoint.id();
    let bound = endpoint.bound_sockets();
    let blobs = BlobsProtocol::new(
        params.blobs.inner(),
        Some(gated_blob_events(params.gate.clone())),
    );
    let replication = ReplicationService {
        gate: params.gate,
        journal: params.journal,
        writer: params.writer,
        hub: params.hub,
        patient: params.patient,
        state: params.state.clone(),
    };
    let router = Router::builder(endpoint)
        .accept(iroh_blobs::ALPN, blobs)
        .accept(replication::ALPN, replication)
        .spawn();
    let listen = bound.first().map(ToString::to_string).unwrap_or_default();
    tracing::info!(node = %node_id, %listen, "serving sealed batches over iroh");
    params.state.update(|s| {
        s.node_id = Some(node_id.to_string());
        s.node_listen = Some(listen);
    });
    Ok(BlobServer { router })
}

impl BlobServer {
    /// The hub's iroh endpoint (the sharing stage dials proxies from it).
    pub fn endpoint(&self) -> iroh::Endpoint {
        self.router.endpoint().clone()
    }

    /// Stops accepting and closes the endpoint (the blob store stays open:
    /// the hub closes it last).
    pub async fn close(self) {
        self.router.endpoint().close().await;
        drop(self.router);
    }
}
