//! The clinic replica: follows hubs over iroh, fetches every new sealed
//! batch, checks it, keeps it, and confirms it to the hub.
//!
//! Checks before a batch is kept: iroh-blobs verifies the bytes against the
//! BLAKE3 hash as they stream (and the replica hashes them again); the batch
//! must decode, name the hub and patient the listing names and the number it
//! was listed under, and carry that hub's signature. A proof that arrives
//! later must lead from the hash to the listed root. The chain checks
//! (root anchored, hub authorised) are `verify`'s, which any party can run.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use glyco_seal::replication::{
    self, BatchListing, Confirmation, Listing, MAX_BATCHES_PER_MESSAGE, Request, Response,
};
use glyco_seal::{BlobCid, BlobHash, SealedBatch};
use iroh::endpoint::{Connection, presets};
use iroh::{Endpoint, EndpointAddr, EndpointId, RelayMode, SecretKey};
use iroh_blobs::get::request::{GetBlobItem, get_blob};
use n0_future::StreamExt;
use tokio_util::sync::CancellationToken;

use glyco_seal::hexcode::{hex, unhex32};

use crate::store::{BatchMeta, HubCursor, ReplicaStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("hub address {0:?}: expected <node id>@<ip:port>")]
    HubAddress(String),
    #[error("the iroh node key: {0}")]
    Key(String),
    #[error("binding the iroh endpoint: {0}")]
    Bind(String),
    #[error("connecting to the hub: {0}")]
    Connect(String),
    #[error("the hub refused this node (is it enrolled on chain for an active entity?)")]
    Refused,
    #[error("talking to the hub: {0}")]
    Protocol(String),
    #[error("fetching blob {cid}: {reason}")]
    Fetch { cid: String, reason: String },
    #[error("batch {batch_no} from the hub fails its check: {reason}")]
    BadBatch { batch_no: u64, reason: String },
}

/// A hub to follow: its iroh node id and where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubPeer {
    pub node: EndpointId,
    pub addr: SocketAddr,
}

impl FromStr for HubPeer {
    type Err = ReplicaError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || ReplicaError::HubAddress(text.to_owned());
        let (node, addr) = text.split_once('@').ok_or_else(bad)?;
        Ok(Self {
            node: node.parse().map_err(|_| bad())?,
            addr: addr.parse().map_err(|_| bad())?,
        })
    }
}

impl HubPeer {
    pub fn endpoint_addr(&self) -> EndpointAddr {
        EndpointAddr::new(self.node).with_ip_addr(self.addr)
    }
}

/// Loads the replica's iroh key, or creates it (0600).
pub fn load_or_create_node_key(store: &ReplicaStore) -> Result<SecretKey, ReplicaError> {
    let (secret, _) = glyco_contracts::keys::load_or_create_secret(&store.node_key_path())
        .map_err(|e| ReplicaError::Key(e.to_string()))?;
    Ok(SecretKey::from_bytes(&secret.0))
}

/// Binds the replica's endpoint (relays off, one address).
pub async fn bind(key: SecretKey, addr: SocketAddr) -> Result<Endpoint, ReplicaError> {
    Endpoint::builder(presets::Minimal)
        .secret_key(key)
        .relay_mode(RelayMode::Disabled)
        .clear_ip_transports()
        .bind_addr(addr)
        .map_err(|e| ReplicaError::Bind(e.to_string()))?
        .bind()
        .await
        .map_err(|e| ReplicaError::Bind(e.to_string()))
}

/// What one round against one hub did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Round {
    pub fetched: u64,
    pub proven: u64,
    pub cursor: HubCursor,
}

pub struct Replica {
    pub endpoint: Endpoint,
    pub store: ReplicaStore,
    pub hubs: Vec<HubPeer>,
    pub poll: Duration,
}

impl Replica {
    /// Follows every hub until shutdown; a hub that is down is retried.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut failing = vec![false; self.hubs.len()];
        loop {
            for (hub, failing) in self.hubs.iter().zip(failing.iter_mut()) {
                match self.follow(hub).await {
                    Ok(round) => {
                        if *failing {
                            tracing::info!(hub = %hub.node.fmt_short(), "hub reachable again");
                        }
                        *failing = false;
                        if round.fetched > 0 || round.proven > 0 {
                            tracing::info!(
                                hub = %hub.node.fmt_short(),
                                fetched = round.fetched,
                                proven = round.proven,
                                stored_through = round.cursor.stored_through,
                                proven_through = round.cursor.proven_through,
                                hub_newest = round.cursor.hub_newest,
                                "replicated"
                            );
                        }
                    }
                    Err(e) => {
                        if !*failing {
                            tracing::warn!(hub = %hub.node.fmt_short(), error = %e, "cannot replicate from hub; retrying");
                        }
                        *failing = true;
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// One round: list, fetch and check what is new, record proofs, confirm.
    pub async fn follow(&self, hub: &HubPeer) -> Result<Round, ReplicaError> {
        let control = self.connect(hub, replication::ALPN).await?;
        let mut round = Round::default();
        let result = self.follow_on(hub, &control, &mut round).await;
        control.close(0u32.into(), b"done");
        result.map(|()| round)
    }

    async fn follow_on(
        &self,
        hub: &HubPeer,
        control: &Connection,
        round: &mut Round,
    ) -> Result<(), ReplicaError> {
        let mut blobs: Option<Connection> = None;
        loop {
            // An empty listing names the hub, whose cursor this is.
            let first = self.listing(control, u64::MAX, 1).await?;
            let mut cursor = self.store.cursor(first.hub)?;
            let listing = self
                .listing(control, cursor.proven_through, MAX_BATCHES_PER_MESSAGE)
                .await?;
            cursor.hub_newest = listing.newest;
            let mut confirmations = Vec::new();
            let mut stored_run = true;
            for entry in &listing.batches {
                let hash = unhex32(&entry.hash).ok_or_else(|| ReplicaError::BadBatch {
                    batch_no: entry.batch_no,
                    reason: "the listing's hash is not 32 hex bytes".to_owned(),
                })?;
                let mut meta = self.store.meta(&hash)?;
                if meta.is_none() || !self.store.has_blob(&hash) {
                    let conn = self.blobs_connection(hub, &mut blobs).await?;
                    let bytes = fetch_blob(&conn, &hash).await?;
                    meta = Some(self.check_and_keep(&listing, entry, &hash, &bytes)?);
                    round.fetched += 1;
                }
                let mut meta = meta.expect("set above");
                if meta.anchor.is_none()
                    && let Some(anchor) = &entry.anchor
                {
                    let root = anchor.proof.root_from(&hash).ok().map(|r| hex(&r));
                    if root.as_deref() != Some(anchor.root.trim_start_matches("0x")) {
                        return Err(ReplicaError::BadBatch {
                            batch_no: entry.batch_no,
                            reason: "its inclusion proof does not lead to the listed root"
                                .to_owned(),
                        });
                    }
                    meta.anchor = Some(anchor.clone());
                    self.store.put_meta(&meta, &hash)?;
                    round.proven += 1;
                }
                if entry.batch_no > cursor.stored_through {
                    confirmations.push(Confirmation {
                        batch_no: entry.batch_no,
                        hash: entry.hash.clone(),
                    });
                }
                if stored_run && meta.anchor.is_some() {
                    cursor.proven_through = cursor.proven_through.max(entry.batch_no);
                } else {
                    stored_run = false;
                }
            }
            if !confirmations.is_empty() {
                match self
                    .request(
                        control,
                        &Request::Confirm {
                            batches: confirmations.clone(),
                        },
                    )
                    .await?
                {
                    Response::Confirmed { rejected: 0, .. } => {}
                    other => {
                        return Err(ReplicaError::Protocol(format!(
                            "confirmation not accepted: {other:?}"
                        )));
                    }
                }
                let last = confirmations.last().map_or(0, |c| c.batch_no);
                cursor.stored_through = cursor.stored_through.max(last);
            }
            self.store.put_cursor(listing.hub, &cursor)?;
            round.cursor = cursor;
            if let Some(kit) = &listing.emergency_kit {
                let conn = self.blobs_connection(hub, &mut blobs).await?;
                self.keep_kit(&conn, &listing, kit).await?;
            }
            let full = listing.batches.len() as u32 >= MAX_BATCHES_PER_MESSAGE;
            if !full || round.fetched == 0 {
                break;
            }
        }
        if let Some(conn) = blobs {
            conn.close(0u32.into(), b"done");
        }
        Ok(())
    }

    /// The round's iroh-blobs connection, opened on first use.
    async fn blobs_connection(
        &self,
        hub: &HubPeer,
        blobs: &mut Option<Connection>,
    ) -> Result<Connection, ReplicaError> {
        if let Some(conn) = blobs {
            return Ok(conn.clone());
        }
        let conn = self.connect(hub, iroh_blobs::ALPN).await?;
        *blobs = Some(conn.clone());
        Ok(conn)
    }

    async fn connect(&self, hub: &HubPeer, alpn: &[u8]) -> Result<Connection, ReplicaError> {
        self.endpoint
            .connect(hub.endpoint_addr(), alpn)
            .await
            .map_err(|e| ReplicaError::Connect(e.to_string()))
    }

    async fn listing(
        &self,
        control: &Connection,
        after: u64,
        max: u32,
    ) -> Result<Listing, ReplicaError> {
        match self.request(control, &Request::List { after, max }).await? {
            Response::Batches(listing) => Ok(listing),
            other => Err(ReplicaError::Protocol(format!(
                "expected a listing, got {other:?}"
            ))),
        }
    }

    async fn request(
        &self,
        control: &Connection,
        request: &Request,
    ) -> Result<Response, ReplicaError> {
        ask(control, request).await
    }

    /// Keeps the hub's emergency kit if it is new: it must decode, be the
    /// listed patient's and carry the hub's signature.
    async fn keep_kit(
        &self,
        conn: &Connection,
        listing: &Listing,
        kit: &glyco_seal::replication::KitListing,
    ) -> Result<(), ReplicaError> {
        let Some(hash) = unhex32(&kit.hash) else {
            return Err(ReplicaError::Protocol(
                "the kit's hash is not 32 hex bytes".into(),
            ));
        };
        if let Some(kept) = self.store.kit(listing.hub)?
            && *blake3::hash(&kept).as_bytes() == hash
        {
            return Ok(());
        }
        let bytes = fetch_blob(conn, &hash).await?;
        let bad = |reason: String| ReplicaError::Protocol(format!("emergency kit: {reason}"));
        let decoded = glyco_seal::emergency::EmergencyKit::from_bytes(&bytes)
            .map_err(|e| bad(e.to_string()))?;
        if decoded.header.patient != listing.patient
            || decoded.signer().map_err(|e| bad(e.to_string()))? != listing.hub
        {
            return Err(bad(
                "not the listed patient's, or not signed by the hub".into()
            ));
        }
        self.store.put_kit(listing.hub, &bytes)?;
        tracing::info!(hub = %listing.hub, generation = decoded.header.generation, "emergency kit kept");
        Ok(())
    }

    fn check_and_keep(
        &self,
        listing: &Listing,
        entry: &BatchListing,
        hash: &BlobHash,
        bytes: &[u8],
    ) -> Result<BatchMeta, ReplicaError> {
        let bad = |reason: String| ReplicaError::BadBatch {
            batch_no: entry.batch_no,
            reason,
        };
        if blake3::hash(bytes).as_bytes() != hash {
            return Err(bad("its bytes do not hash to the listed hash".to_owned()));
        }
        let batch = SealedBatch::from_bytes(bytes).map_err(|e| bad(e.to_string()))?;
        let header = &batch.header;
        if header.hub != listing.hub
            || header.patient != listing.patient
            || header.batch_no != entry.batch_no
        {
            return Err(bad(format!(
                "it names hub {}, patient {}, batch {}; the listing says hub {}, patient {}, batch {}",
                header.hub,
                header.patient,
                header.batch_no,
                listing.hub,
                listing.patient,
                entry.batch_no
            )));
        }
        let signer = batch.signer().map_err(|e| bad(e.to_string()))?;
        if signer != header.hub {
            return Err(bad(format!("signed by {signer}, not by its hub")));
        }
        self.store.put_blob(hash, bytes)?;
        let meta = BatchMeta {
            hub: header.hub,
            patient: header.patient,
            batch_no: header.batch_no,
            hash: hex(hash),
            cid: BlobCid(*hash).to_string(),
            bytes: bytes.len() as u64,
            first_journal_seq: header.first_journal_seq,
            last_journal_seq: header.last_journal_seq,
            count: header.count,
            fetched_at_ms: now_millis(),
            anchor: None,
        };
        self.store.put_meta(&meta, hash)?;
        Ok(meta)
    }
}

/// Sends one request to a hub on its replication connection.
pub async fn ask(control: &Connection, request: &Request) -> Result<Response, ReplicaError> {
    let refused = || {
        matches!(
            control.close_reason(),
            Some(iroh::endpoint::ConnectionError::ApplicationClosed(_))
        )
    };
    let protocol = |e: String| {
        if refused() {
            ReplicaError::Refused
        } else {
            ReplicaError::Protocol(e)
        }
    };
    let (mut send, mut recv) = control
        .open_bi()
        .await
        .map_err(|e| protocol(e.to_string()))?;
    let bytes = replication::encode(request).map_err(|e| protocol(e.to_string()))?;
    send.write_all(&bytes)
        .await
        .map_err(|e| protocol(e.to_string()))?;
    send.finish().map_err(|e| protocol(e.to_string()))?;
    let answer = recv
        .read_to_end(replication::MAX_MESSAGE_BYTES)
        .await
        .map_err(|e| protocol(e.to_string()))?;
    replication::decode(&answer).map_err(|e| protocol(e.to_string()))
}

/// Fetches one blob, BLAKE3-verified as it streams, never more than a batch
/// may be (the hub picks the hash, so it could name a huge blob).
pub async fn fetch_blob(conn: &Connection, hash: &BlobHash) -> Result<Vec<u8>, ReplicaError> {
    let cid = || BlobCid(*hash).to_string();
    let mut stream = get_blob(conn.clone(), iroh_blobs::Hash::from_bytes(*hash));
    let mut bytes = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            GetBlobItem::Item(bao_tree::io::BaoContentItem::Leaf(leaf)) => {
                if bytes.len() + leaf.data.len() > glyco_seal::batch::MAX_BATCH_BYTES {
                    return Err(ReplicaError::Fetch {
                        cid: cid(),
                        reason: "larger than a batch may be".to_owned(),
                    });
                }
                bytes.extend_from_slice(&leaf.data);
            }
            GetBlobItem::Item(_) => {}
            GetBlobItem::Done(_) => return Ok(bytes),
            GetBlobItem::Error(e) => {
                let refused = matches!(
                    conn.close_reason(),
                    Some(iroh::endpoint::ConnectionError::ApplicationClosed(_))
                );
                return Err(if refused {
                    ReplicaError::Refused
                } else {
                    ReplicaError::Fetch {
                        cid: cid(),
                        reason: e.to_string(),
                    }
                });
            }
        }
    }
    Err(ReplicaError::Fetch {
        cid: cid(),
        reason: "the stream ended early".to_owned(),
    })
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
