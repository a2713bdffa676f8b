//! The physician's side (`glyco-clinic physician …`): fetch a patient's
//! sealed batches (from the hub or a clinic replica), check each against its
//! anchor, ask the proxies for capsule fragments with a signed access
//! request per anchored root, verify the fragments and open the batches.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use glyco_contracts::{Address, B256, GlycoClient};
use glyco_seal::body::{BatchBody, FindingRecord};
use glyco_seal::keys::public_key_from_bytes;
use glyco_seal::reading::Reading;
use glyco_seal::sharing::{
    self, BatchClaim, MAX_BATCHES_PER_REQUEST, MAX_ROOTS_PER_REQUEST, ProxyRefusal,
    ReencryptAnswer, ReencryptRequest, Reencrypted,
};
use glyco_seal::{BlobHash, InclusionProof, PhysicianKey, SealedBatch};
use iroh::{Endpoint, EndpointAddr, EndpointId};

/// How long a proxy may take: connecting, the access's transaction and the
/// re-encryption (a proxy that is down costs this much, then the next is asked).
const PROXY_WAIT: Duration = Duration::from_secs(20);
/// How long a signed access request is good for.
const REQUEST_LIFETIME: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("proxy address {0:?}: expected <ethereum address>@<ip:port>")]
    ProxyAddress(String),
    #[error("proxy {proxy}: {detail}")]
    ProxyUnknown { proxy: Address, detail: String },
    #[error("chain: {0}")]
    Chain(#[from] glyco_contracts::ChainError),
    #[error("batch {batch_no}: {detail}")]
    Batch { batch_no: u64, detail: String },
    #[error("{roots} anchored roots: only {got} of {need} proxies re-encrypted; {refusals}")]
    NotEnoughProxies {
        roots: usize,
        got: usize,
        need: usize,
        refusals: String,
    },
    #[error("the patient has no umbral key on chain")]
    NoPatientKey,
}

/// A proxy: its Ethereum address (enrolled on chain with its iroh node id)
/// and where it listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyPeer {
    pub address: Address,
    pub addr: SocketAddr,
}

impl FromStr for ProxyPeer {
    type Err = ReadError;
    fn from_str(text: &str) -> Result<Self, ReadError> {
        let bad = || ReadError::ProxyAddress(text.to_owned());
        let (address, addr) = text.split_once('@').ok_or_else(bad)?;
        Ok(Self {
            address: address.parse().map_err(|_| bad())?,
            addr: addr.parse().map_err(|_| bad())?,
        })
    }
}

/// The proxy's iroh node as enrolled on chain with the proxy.
pub async fn proxy_endpoint(
    chain: &GlycoClient,
    peer: &ProxyPeer,
) -> Result<EndpointAddr, ReadError> {
    let record = chain.proxy_of(peer.address).await?;
    if !record.active {
        return Err(ReadError::ProxyUnknown {
            proxy: peer.address,
            detail: "not an active proxy on chain".into(),
        });
    }
    let node = EndpointId::from_bytes(&record.node_id.0).map_err(|e| ReadError::ProxyUnknown {
        proxy: peer.address,
        detail: format!("its node id on chain is not an iroh key: {e}"),
    })?;
    Ok(EndpointAddr::new(node).with_ip_addr(peer.addr))
}

/// Sends one CBOR message on a new stream of `alpn` and reads the answer.
pub async fn exchange<Req: serde::Serialize, Ans: serde::de::DeserializeOwned>(
    endpoint: &Endpoint,
    to: EndpointAddr,
    alpn: &[u8],
    message: &Req,
) -> Result<Ans, String> {
    sharing::exchange(endpoint, to, alpn, message, sharing::MAX_MESSAGE_BYTES).await
}

/// A sealed batch the physician holds, with its anchoring proof.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    pub batch_no: u64,
    pub blob: Vec<u8>,
    pub root: B256,
    pub proof: InclusionProof,
}

/// What a read opened.
#[derive(Debug, Default)]
pub struct Opened {
    pub readings: Vec<Reading>,
    pub findings: Vec<FindingRecord>,
    /// One per proxy answer: (proxy, the roots' digest (the log entry's data
    /// id), access seq in the patient's log).
    pub accesses: Vec<(Address, B256, u64)>,
    pub batches: usize,
}

pub struct Reader<'a> {
    pub endpoint: &'a Endpoint,
    /// The physician's chain client (signs access requests).
    pub chain: &'a GlycoClient,
    pub key: &'a PhysicianKey,
    pub proxies: &'a [ProxyPeer],
    /// Fragments needed per batch (the grant's M).
    pub threshold: usize,
}

impl Reader<'_> {
    /// Opens `batches` of `patient`: per anchored root, asks proxies (the
    /// first `threshold` in order, then the rest if some refuse or are
    /// down) and opens each batch with their fragments.
    pub async fn open(
        &self,
        patient: Address,
        batches: Vec<SourceBatch>,
    ) -> Result<Opened, ReadError> {
        let patient_key = self
            .chain
            .patient_pre_key(patient)
            .await?
            .ok_or(ReadError::NoPatientKey)?;
        let patient_key =
            public_key_from_bytes(&patient_key).map_err(|_| ReadError::NoPatientKey)?;
        // Each blob checked and decoded once, on every core (decoding checks
        // the capsule, which costs about as much as re-encrypting it).
        let checked = crate::parallel::map(&batches, |b| check_source(b, patient));
        let mut by_root: BTreeMap<B256, Vec<Checked>> = BTreeMap::new();
        for (source, sealed) in batches.into_iter().zip(checked) {
            by_root
                .entry(source.root)
                .or_default()
                .push((source, sealed?));
        }
        // One access (one transaction per proxy) for as many roots and
        // batches as a request may carry.
        let mut sets: Vec<(Vec<B256>, Vec<Checked>)> = Vec::new();
        for (root, group) in by_root {
            let fits = sets.last().is_some_and(|(roots, batches)| {
                roots.len() < MAX_ROOTS_PER_REQUEST
                    && batches.len() + group.len() <= MAX_BATCHES_PER_REQUEST
            });
            if !fits {
                sets.push((Vec::new(), Vec::new()));
            }
            let (roots, batches) = sets.last_mut().expect("pushed above");
            roots.push(root);
            batches.extend(group);
        }
        let mut opened = Opened::default();
        for (roots, chunk) in sets {
            let answers = self.fragments(patient, &roots, &chunk).await?;
            let digest = glyco_contracts::roots_digest(&roots);
            for (proxy, answer) in &answers {
                opened.accesses.push((*proxy, digest, answer.access_seq));
            }
            let indexed: Vec<(usize, &Checked)> = chunk.iter().enumerate().collect();
            let bodies = crate::parallel::map(&indexed, |(i, (source, sealed))| {
                self.open_one(source, sealed, *i, &answers, &patient_key)
            });
            for body in bodies {
                let body = body?;
                opened
                    .readings
                    .extend(body.readings.into_iter().map(|(_, r)| r));
                opened.findings.extend(body.findings);
                opened.batches += 1;
            }
        }
        opened.readings.sort_by_key(Reading::measured_at);
        Ok(opened)
    }

    /// Opens the `i`th batch of a request with every proxy's fragment for it.
    fn open_one(
        &self,
        source: &SourceBatch,
        batch: &SealedBatch,
        i: usize,
        answers: &[(Address, Reencrypted)],
        patient_key: &umbral_pre::PublicKey,
    ) -> Result<BatchBody, ReadError> {
        let failed = |detail: String| ReadError::Batch {
            batch_no: source.batch_no,
            detail,
        };
        let fragments = answers
            .iter()
            .filter_map(|(_, a)| {
                a.cfrags
                    .get(i)
                    .map(|c| (a.verifying_key.clone(), c.clone()))
            })
            .collect();
        let plain =
            sharing::open_reencrypted(batch, self.key, patient_key, fragments, self.threshold)
                .map_err(|e| failed(e.to_string()))?;
        BatchBody::from_bytes(&plain).map_err(|e| failed(e.to_string()))
    }

    /// Fragments for `chunk` (all under `roots`) from `threshold` proxies.
    async fn fragments(
        &self,
        patient: Address,
        roots: &[B256],
        chunk: &[Checked],
    ) -> Result<Vec<(Address, Reencrypted)>, ReadError> {
        let claims: Vec<BatchClaim> = chunk
            .iter()
            .map(|(b, _)| BatchClaim {
                blob: b.blob.clone(),
                proof: b.proof.clone(),
            })
            .collect();
        let mut got = Vec::new();
        let mut refusals = Vec::new();
        let mut next = 0;
        while got.len() < self.threshold && next < self.proxies.len() {
            let wanted = self.threshold - got.len();
            let batch: Vec<ProxyPeer> = self.proxies[next..].iter().take(wanted).copied().collect();
            next += batch.len();
            let asks = batch
                .iter()
                .map(|peer| self.ask(patient, roots, &claims, peer));
            for (peer, result) in batch.iter().zip(n0_future::join_all(asks).await) {
                match result {
                    Ok(answer) => got.push((peer.address, answer)),
                    Err(why) => refusals.push(format!("{}: {why}", peer.address)),
                }
            }
        }
        if got.len() < self.threshold {
            return Err(ReadError::NotEnoughProxies {
                roots: roots.len(),
                got: got.len(),
                need: self.threshold,
                refusals: refusals.join("; "),
            });
        }
        Ok(got)
    }

    async fn ask(
        &self,
        patient: Address,
        roots: &[B256],
        claims: &[BatchClaim],
        peer: &ProxyPeer,
    ) -> Result<Reencrypted, String> {
        let to = proxy_endpoint(self.chain, peer)
            .await
            .map_err(|e| e.to_string())?;
        let digest = glyco_contracts::roots_digest(roots);
        let access = self
            .chain
            .sign_access_request(patient, peer.address, digest, REQUEST_LIFETIME)
            .await
            .map_err(|e| e.to_string())?;
        let request = ReencryptRequest {
            access,
            roots: roots.to_vec(),
            batches: claims.to_vec(),
        };
        let answer = tokio::time::timeout(
            PROXY_WAIT,
            exchange::<_, ReencryptAnswer>(self.endpoint, to, sharing::REENCRYPT_ALPN, &request),
        )
        .await
        .map_err(|_| format!("no answer within {} s (down?)", PROXY_WAIT.as_secs()))??;
        match answer {
            ReencryptAnswer::Reencrypted(r) if r.cfrags.len() == claims.len() => Ok(r),
            ReencryptAnswer::Reencrypted(r) => Err(format!(
                "{} fragments for {} batches",
                r.cfrags.len(),
                claims.len()
            )),
            ReencryptAnswer::Refused { reason } => Err(refusal_text(&reason)),
        }
    }
}

fn refusal_text(reason: &ProxyRefusal) -> String {
    format!("refused: {reason}")
}

/// A source batch and the batch its blob decodes to.
type Checked = (SourceBatch, SealedBatch);

/// A batch's bytes hash to the leaf its proof starts from and it is the
/// patient's: a tampered blob stops here, before any proxy is asked.
/// Returns the decoded batch.
fn check_source(b: &SourceBatch, patient: Address) -> Result<SealedBatch, ReadError> {
    let hash: BlobHash = *blake3::hash(&b.blob).as_bytes();
    let root = b.proof.root_from(&hash).map_err(|e| ReadError::Batch {
        batch_no: b.batch_no,
        detail: e.to_string(),
    })?;
    if B256::from(root) != b.root {
        return Err(ReadError::Batch {
            batch_no: b.batch_no,
            detail: format!(
                "its BLAKE3 {} does not lead to the anchored root (altered?)",
                glyco_seal::BlobCid(hash)
            ),
        });
    }
    let batch = SealedBatch::from_bytes(&b.blob).map_err(|e| ReadError::Batch {
        batch_no: b.batch_no,
        detail: e.to_string(),
    })?;
    if batch.header.patient != patient {
        return Err(ReadError::Batch {
            batch_no: b.batch_no,
            detail: format!("it is patient {}'s", batch.header.patient),
        });
    }
    Ok(batch)
}

/// Where the physician's copies of a patient's batches come from.
pub mod sources {
    use super::SourceBatch;
    use crate::replica::{HubPeer, ReplicaError, ask, fetch_blob};
    use crate::store::ReplicaStore;
    use glyco_contracts::{Address, B256};
    use glyco_seal::hexcode::unhex32;
    use glyco_seal::replication::{self, MAX_BATCHES_PER_MESSAGE, Request, Response};
    use iroh::Endpoint;

    fn root_of(text: &str) -> Option<B256> {
        unhex32(text.trim_start_matches("0x")).map(B256::from)
    }

    /// Every anchored batch the hub still holds (the node must be enrolled on
    /// chain for the physician's entity: the hub serves no one else).
    pub async fn from_hub(
        endpoint: &Endpoint,
        hub: &HubPeer,
    ) -> Result<Vec<SourceBatch>, ReplicaError> {
        let connect = |alpn: &'static [u8]| async move {
            endpoint
                .connect(hub.endpoint_addr(), alpn)
                .await
                .map_err(|e| ReplicaError::Connect(e.to_string()))
        };
        let control = connect(replication::ALPN).await?;
        let blobs = connect(iroh_blobs::ALPN).await?;
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let listing = match ask(
                &control,
                &Request::List {
                    after,
                    max: MAX_BATCHES_PER_MESSAGE,
                },
            )
            .await?
            {
                Response::Batches(listing) => listing,
                other => {
                    return Err(ReplicaError::Protocol(format!(
                        "expected a listing, got {other:?}"
                    )));
                }
            };
            let Some(last) = listing.batches.last() else {
                break;
            };
            after = last.batch_no;
            for entry in &listing.batches {
                let (Some(anchor), Some(hash)) = (&entry.anchor, unhex32(&entry.hash)) else {
                    continue;
                };
                let Some(root) = root_of(&anchor.root) else {
                    continue;
                };
                let blob = fetch_blob(&blobs, &hash).await?;
                out.push(SourceBatch {
                    batch_no: entry.batch_no,
                    blob,
                    root,
                    proof: anchor.proof.clone(),
                });
            }
        }
        control.close(0u32.into(), b"done");
        blobs.close(0u32.into(), b"done");
        Ok(out)
    }

    /// Every anchored batch of `patient` a clinic replica keeps.
    pub fn from_replica(
        store: &ReplicaStore,
        patient: Address,
    ) -> Result<Vec<SourceBatch>, crate::store::StoreError> {
        let mut out = Vec::new();
        for hub in store.hubs()? {
            let cursor = store.cursor(hub)?;
            for batch_no in 1..=cursor.stored_through {
                let Some(hash) = store.batch_hash(hub, batch_no)? else {
                    continue;
                };
                let Some(meta) = store.meta(&hash)? else {
                    continue;
                };
                let Some(anchor) = meta.anchor else { continue };
                if meta.patient != patient {
                    continue;
                }
                let Some(root) = root_of(&anchor.root) else {
                    continue;
                };
                out.push(SourceBatch {
                    batch_no,
                    blob: store.blob(&hash)?,
                    root,
                    proof: anchor.proof,
                });
            }
        }
        Ok(out)
    }
}
