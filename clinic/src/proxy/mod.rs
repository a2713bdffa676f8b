//! The re-encryption proxy (`glyco-clinic proxy`), a hospital node: keeps
//! the kfrags hubs deliver for their patients' grants, and re-encrypts a
//! batch's capsule for a physician only after the chain logged the access.
//!
//! For each request, before any transaction: the request names this proxy,
//! the physician signed it (EIP-712), it is fresh and its nonce unseen here,
//! the proxy holds a kfrag for the patient's current grant to that
//! physician and the grant is live, the signed request names exactly the
//! requested roots, every root is anchored for the patient, and every batch
//! hashes to a leaf under one of them, is the patient's and is signed by the
//! patient's hub. Then `AccessLog.recordAccessSet` decides again on chain
//! (signature, nonce, every root anchored, one grant covering their kinds
//! and windows, this proxy active for an active hospital) and logs the
//! access, one transaction for the whole set; only on its receipt are the
//! capsules re-encrypted. A revocation mined in a block is
//! seen by the next `recordAccess`, so it takes effect with that block.

pub mod chain_view;
pub mod kfrags;
pub mod service;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use glyco_contracts::bindings::{AccessLog::AccessLogErrors, Permissions::PermissionsErrors};
use glyco_contracts::{
    Address, B256, ChainError, GlycoClient, Refusal, SignedAccessRequest, U256, roots_digest,
};
use glyco_seal::keys::public_key_from_bytes;
use glyco_seal::sharing::{
    self, BatchClaim, HubMessage, HubSigned, KfragAnswer, KfragDelivery, KfragDrop,
    MAX_BATCHES_PER_REQUEST, MAX_ROOTS_PER_REQUEST, ProxyRefusal, ReencryptAnswer,
    ReencryptRequest, Reencrypted,
};
use glyco_seal::{BlobHash, SealedBatch};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use umbral_pre::Capsule;

use chain_view::ChainView;
use kfrags::{HeldKfrag, KfragStore, KfragStoreError};

/// How many recent nonces the proxy remembers to refuse a replay before it
/// spends a transaction (the contract refuses it anyway).
const REMEMBERED_NONCES: usize = 100_000;

/// What the proxy counts (status lines in its log and the tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyCounts {
    pub kfrags_kept: u64,
    pub kfrags_dropped: u64,
    pub kfrags_refused: u64,
    pub accesses: u64,
    pub refusals: u64,
}

pub struct Proxy {
    /// This proxy's Ethereum address (enrolled as a proxy of a hospital).
    pub address: Address,
    pub chain: ChainView,
    /// The client that sends `recordAccess` with the proxy's key.
    pub sender: GlycoClient,
    pub kfrags: KfragStore,
    chain_id: u64,
    access_log: Address,
    nonces: Mutex<RecentNonces>,
    counts: Mutex<ProxyCounts>,
}

/// The nonces of the latest requests (physician, nonce), oldest dropped first.
#[derive(Default)]
struct RecentNonces {
    seen: HashSet<(Address, U256)>,
    order: VecDeque<(Address, U256)>,
}

impl RecentNonces {
    fn contains(&self, key: &(Address, U256)) -> bool {
        self.seen.contains(key)
    }

    /// Remembers `key`; false if it was seen already.
    fn insert(&mut self, key: (Address, U256)) -> bool {
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > REMEMBERED_NONCES
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }
}

/// A request that passed every local check: the kfrag and the capsules.
pub struct Authorised {
    pub held: HeldKfrag,
    pub capsules: Vec<Capsule>,
}

impl Proxy {
    pub fn new(
        address: Address,
        sender: GlycoClient,
        reader: GlycoClient,
        kfrags: KfragStore,
    ) -> Self {
        let deployment = sender.deployment();
        Self {
            address,
            chain_id: deployment.chain_id,
            access_log: deployment.contracts.access_log,
            chain: ChainView::new(reader),
            sender,
            kfrags,
            nonces: Mutex::new(Default::default()),
            counts: Mutex::new(ProxyCounts::default()),
        }
    }

    pub fn counts(&self) -> ProxyCounts {
        self.counts.lock().clone()
    }

    // ---- kfrags from hubs ----------------------------------------------------

    pub async fn on_hub_message(&self, message: HubMessage) -> KfragAnswer {
        let answer = match message {
            HubMessage::Deliver(signed) => self.keep(*signed).await,
            HubMessage::Drop(signed) => self.drop_on_request(signed).await,
        };
        let mut counts = self.counts.lock();
        match &answer {
            KfragAnswer::Kept => counts.kfrags_kept += 1,
            KfragAnswer::Dropped { had_it: true } => counts.kfrags_dropped += 1,
            KfragAnswer::Dropped { .. } => {}
            KfragAnswer::Refused { reason } => {
                // Counted, and summed up by the sweeper: anyone can send junk,
                // so one log line each would let them fill the disk.
                counts.kfrags_refused += 1;
                tracing::debug!(%reason, "kfrag message refused");
            }
        }
        answer
    }

    /// The hub that signed `signed` serves `patient` on chain.
    async fn check_hub<T: serde::Serialize + glyco_seal::signed::Domain>(
        &self,
        signed: &HubSigned<T>,
        hub: Address,
        patient: Address,
    ) -> Result<(), ProxyRefusal> {
        let signer = signed.signer().map_err(|_| ProxyRefusal::BadSignature)?;
        if signer != hub {
            return Err(ProxyRefusal::WrongSigner {
                expected: hub,
                actual: signer,
            });
        }
        if self.chain.hub_patient(hub).await.map_err(unavailable)? != Some(patient) {
            return Err(ProxyRefusal::NotPatientsHub { hub, patient });
        }
        Ok(())
    }

    async fn keep(&self, signed: HubSigned<KfragDelivery>) -> KfragAnswer {
        match self.check_delivery(&signed).await {
            Ok(kfrag) => match self.kfrags.keep(signed.body, kfrag) {
                Ok(()) => KfragAnswer::Kept,
                Err(KfragStoreError::Full(limit)) => KfragAnswer::Refused {
                    reason: ProxyRefusal::Full {
                        limit: limit as u64,
                    },
                },
                Err(e) => {
                    tracing::error!(error = %e, "cannot keep a kfrag");
                    KfragAnswer::Refused {
                        reason: ProxyRefusal::Busy,
                    }
                }
            },
            Err(reason) => KfragAnswer::Refused { reason },
        }
    }

    async fn check_delivery(
        &self,
        signed: &HubSigned<KfragDelivery>,
    ) -> Result<umbral_pre::VerifiedKeyFrag, ProxyRefusal> {
        let d = &signed.body;
        if d.proxy != self.address {
            return Err(ProxyRefusal::WrongProxy { named: d.proxy });
        }
        self.check_hub(signed, d.hub, d.patient).await?;
        let grant = self
            .chain
            .client()
            .grant_of(d.grant_id)
            .await
            .map_err(unavailable)?;
        let mismatch = ProxyRefusal::GrantMismatch {
            grant_id: d.grant_id,
            grantee: d.grantee,
        };
        let grant = grant.ok_or(mismatch.clone())?;
        if grant.patient != d.patient
            || grant.grantee != d.grantee
            || grant.policy_id != d.policy_id
        {
            return Err(mismatch);
        }
        if !self
            .chain
            .client()
            .is_grant_live(d.grant_id)
            .await
            .map_err(unavailable)?
        {
            return Err(ProxyRefusal::NoLiveGrant);
        }
        let patient_key = self.pre_key(d.patient, true).await?;
        let grantee_key = self.pre_key(d.grantee, false).await?;
        sharing::verify_kfrag(
            d.kfrag.clone(),
            &d.verifying_key,
            &patient_key,
            &grantee_key,
        )
    }

    async fn pre_key(
        &self,
        account: Address,
        patient: bool,
    ) -> Result<umbral_pre::PublicKey, ProxyRefusal> {
        let bytes = if patient {
            self.chain.patient_pre_key(account).await
        } else {
            self.chain.physician_pre_key(account).await
        }
        .map_err(unavailable)?
        .ok_or(ProxyRefusal::NoPreKey { account })?;
        public_key_from_bytes(&bytes).map_err(|_| ProxyRefusal::NoPreKey { account })
    }

    async fn drop_on_request(&self, signed: HubSigned<KfragDrop>) -> KfragAnswer {
        let d = &signed.body;
        if d.proxy != self.address {
            return KfragAnswer::Refused {
                reason: ProxyRefusal::WrongProxy { named: d.proxy },
            };
        }
        if let Err(reason) = self.check_hub(&signed, d.hub, d.patient).await {
            return KfragAnswer::Refused { reason };
        }
        // Only the patient's own grants: a hub cannot drop another's.
        let held = self.kfrags.get(d.grant_id);
        if held
            .as_ref()
            .is_some_and(|h| h.delivery.patient != d.patient)
        {
            return KfragAnswer::Refused {
                reason: ProxyRefusal::GrantMismatch {
                    grant_id: d.grant_id,
                    grantee: Address::ZERO,
                },
            };
        }
        match self.kfrags.drop_grant(d.grant_id) {
            Ok(had_it) => {
                if had_it {
                    tracing::info!(grant = d.grant_id, "kfrag dropped at the hub's request");
                }
                KfragAnswer::Dropped { had_it }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot drop a kfrag");
                KfragAnswer::Refused {
                    reason: ProxyRefusal::Busy,
                }
            }
        }
    }

    /// Drops every kept share whose grant is no longer live on chain
    /// (revoked, expired, the physician's enrolment ended), whether or not
    /// its hub said so.
    pub async fn sweep(&self) -> Result<u64, ChainError> {
        let mut dropped = 0;
        for grant_id in self.kfrags.grant_ids() {
            if !self.chain.client().is_grant_live(grant_id).await? {
                if let Err(e) = self.kfrags.drop_grant(grant_id) {
                    tracing::error!(error = %e, "cannot drop a kfrag");
                    continue;
                }
                tracing::info!(
                    grant = grant_id,
                    "kfrag dropped: the grant is no longer live"
                );
                dropped += 1;
            }
        }
        self.counts.lock().kfrags_dropped += dropped;
        Ok(dropped)
    }

    /// Sweeps every `every` until shutdown, and logs the counts when they
    /// changed (one line per sweep at most, whatever the request rate).
    pub async fn run_sweeper(self: Arc<Self>, every: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        let mut logged = ProxyCounts::default();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    if let Err(e) = self.sweep().await {
                        tracing::warn!(error = %e, "kfrag sweep: chain unavailable");
                    }
                    let now = self.counts();
                    if now != logged {
                        tracing::info!(
                            kfrags_kept = now.kfrags_kept,
                            kfrags_dropped = now.kfrags_dropped,
                            kfrags_refused = now.kfrags_refused,
                            accesses = now.accesses,
                            refusals = now.refusals,
                            held = self.kfrags.len(),
                            "proxy counts"
                        );
                        logged = now;
                    }
                }
            }
        }
    }

    // ---- re-encryption for physicians ------------------------------------------

    pub async fn on_request(&self, request: ReencryptRequest) -> ReencryptAnswer {
        let answer = match self.serve(request).await {
            Ok(done) => ReencryptAnswer::Reencrypted(done),
            Err(reason) => ReencryptAnswer::Refused { reason },
        };
        let mut counts = self.counts.lock();
        match &answer {
            ReencryptAnswer::Reencrypted(_) => counts.accesses += 1,
            ReencryptAnswer::Refused { reason } => {
                counts.refusals += 1;
                tracing::debug!(%reason, "re-encryption refused");
            }
        }
        answer
    }

    async fn serve(&self, request: ReencryptRequest) -> Result<Reencrypted, ProxyRefusal> {
        let authorised = self.authorise(&request).await?;
        self.remember_nonce(&request.access)?;
        let outcome = self
            .sender
            .record_access_set(&request.access, &request.roots)
            .await
            .map_err(|e| match e {
                ChainError::Refused { refusal, .. } => refusal_of(refusal),
                ChainError::RevertedOnChain { .. } => ProxyRefusal::ChainRefused {
                    detail: e.to_string(),
                },
                other => unavailable(other),
            })?;
        let grant_id = authorised.held.delivery.grant_id;
        let verifying_key = authorised.held.delivery.verifying_key.clone();
        // CPU work off the async runtime, spread over the cores.
        let cfrags = tokio::task::spawn_blocking(move || Self::reencrypt(&authorised))
            .await
            .map_err(|_| ProxyRefusal::Busy)?;
        Ok(Reencrypted {
            grant_id,
            access_seq: outcome.entry.seq,
            block: outcome.entry.block,
            tx: outcome.tx.map(|t| t.hash),
            verifying_key,
            cfrags,
        })
    }

    /// Re-encrypts every capsule of an authorised request, on every core.
    pub fn reencrypt(authorised: &Authorised) -> Vec<umbral_pre::CapsuleFrag> {
        let kfrag = &authorised.held.kfrag;
        crate::parallel::map(&authorised.capsules, |c| sharing::reencrypt(c, kfrag))
    }

    /// Every check this proxy makes before it spends a transaction (chain
    /// views from the per-block cache).
    pub async fn authorise(&self, request: &ReencryptRequest) -> Result<Authorised, ProxyRefusal> {
        let access = &request.access.request;
        if request.batches.len() > MAX_BATCHES_PER_REQUEST
            || request.roots.len() > MAX_ROOTS_PER_REQUEST
            || request.roots.is_empty()
        {
            return Err(ProxyRefusal::TooManyBatches {
                count: request.batches.len().max(request.roots.len()) as u64,
            });
        }
        if access.proxy != self.address {
            return Err(ProxyRefusal::WrongProxy {
                named: access.proxy,
            });
        }
        let signer = request
            .access
            .signer(self.chain_id, self.access_log)
            .ok_or(ProxyRefusal::BadSignature)?;
        if signer != access.physician {
            return Err(ProxyRefusal::WrongSigner {
                expected: access.physician,
                actual: signer,
            });
        }
        if roots_digest(&request.roots) != access.data_id {
            return Err(ProxyRefusal::RootsMismatch);
        }
        let now = glyco_contracts::UnixSeconds::now().get();
        let deadline = access.deadline.get();
        if deadline < now || deadline > now + 3600 {
            return Err(ProxyRefusal::RequestExpired { deadline });
        }
        if self
            .nonces
            .lock()
            .contains(&(access.physician, access.nonce))
        {
            return Err(ProxyRefusal::NonceUsed);
        }
        let held = self
            .kfrags
            .for_pair(access.patient, access.physician)
            .ok_or(ProxyRefusal::NoKfrag)?;
        let grant = self
            .chain
            .grant(access.patient, access.physician)
            .await
            .map_err(unavailable)?;
        match grant {
            Some(g) if g.live && g.grant.id == held.delivery.grant_id => {}
            _ => return Err(ProxyRefusal::NoLiveGrant),
        }
        let mut anchors = HashMap::with_capacity(request.roots.len());
        for root in &request.roots {
            let anchor = self
                .chain
                .anchor(access.patient, *root)
                .await
                .map_err(unavailable)?
                .ok_or(ProxyRefusal::NotAnchored { root: *root })?;
            anchors.insert(*root, anchor);
        }
        let mut capsules = Vec::with_capacity(request.batches.len());
        for (index, claim) in request.batches.iter().enumerate() {
            let bad = |detail: String| ProxyRefusal::BadBatch {
                index: index as u64,
                detail,
            };
            let (batch, root) = Self::check_batch(claim, access.patient).map_err(bad)?;
            let anchor = anchors
                .get(&root)
                .ok_or_else(|| bad("its proof leads to a root outside the request".into()))?;
            let seconds = |ms: i64| (ms.max(0) / 1000) as u64;
            if seconds(batch.header.window_start_ms) < anchor.batch.window_start
                || seconds(batch.header.window_end_ms) > anchor.batch.window_end
            {
                return Err(bad("outside its anchor's window".into()));
            }
            capsules.push(batch.capsule);
        }
        Ok(Authorised { held, capsules })
    }

    /// The batch decodes and is the patient's; returns it with the root its
    /// proof leads to. (No check of the hub's signature here: the root is
    /// anchored for the patient, which only the patient or its authorised
    /// hub can do, so the proof already says where the blob comes from.)
    fn check_batch(claim: &BatchClaim, patient: Address) -> Result<(SealedBatch, B256), String> {
        let hash: BlobHash = *blake3::hash(&claim.blob).as_bytes();
        let root = B256::from(claim.proof.root_from(&hash).map_err(|e| e.to_string())?);
        let batch = SealedBatch::from_bytes(&claim.blob).map_err(|e| e.to_string())?;
        if batch.header.patient != patient {
            return Err(format!("it is patient {}'s", batch.header.patient));
        }
        Ok((batch, root))
    }

    fn remember_nonce(&self, access: &SignedAccessRequest) -> Result<(), ProxyRefusal> {
        let key = (access.request.physician, access.request.nonce);
        if self.nonces.lock().insert(key) {
            Ok(())
        } else {
            Err(ProxyRefusal::NonceUsed)
        }
    }
}

fn unavailable(e: ChainError) -> ProxyRefusal {
    ProxyRefusal::ChainUnavailable {
        detail: e.to_string(),
    }
}

/// The contract's refusal in the proxy's terms.
fn refusal_of(refusal: Refusal) -> ProxyRefusal {
    match refusal {
        Refusal::AccessLog(AccessLogErrors::NonceUsed(_)) => ProxyRefusal::NonceUsed,
        Refusal::AccessLog(AccessLogErrors::RequestExpired(e)) => ProxyRefusal::RequestExpired {
            deadline: e.deadline,
        },
        Refusal::Permissions(PermissionsErrors::NoLiveGrant(_)) => ProxyRefusal::NoLiveGrant,
        Refusal::Permissions(PermissionsErrors::OutOfScope(_)) => ProxyRefusal::OutOfScope,
        Refusal::AccessLog(AccessLogErrors::NotAnchored(e)) => {
            ProxyRefusal::NotAnchored { root: e.dataId }
        }
        other => ProxyRefusal::ChainRefused {
            detail: other.to_string(),
        },
    }
}
