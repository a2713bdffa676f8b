//! What the proxy asks the chain, cached per block: a grant's state, a hub's
//! patient and the umbral keys are read once per block whatever the request
//! rate; an anchor never changes once made, so it is kept. The chain stays
//! the judge: every access is decided again by `AccessLog.recordAccess`.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use glyco_contracts::{Address, AnchorRecord, B256, ChainError, GlycoClient, GrantRecord};
use parking_lot::Mutex;

/// How long the head block number is reused before it is asked again.
const HEAD_TTL: Duration = Duration::from_millis(500);
/// The most entries any one cache holds (a flood of distinct keys clears it).
const MAX_ENTRIES: usize = 50_000;

/// A grant as the proxy decides on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantState {
    pub grant: GrantRecord,
    pub live: bool,
}

/// Values valid for one block.
struct PerBlock<K, V> {
    entries: Mutex<HashMap<K, (u64, V)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> PerBlock<K, V> {
    fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    async fn get<F, Fut>(&self, block: u64, key: K, fetch: F) -> Result<V, ChainError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<V, ChainError>>,
    {
        if let Some((at, value)) = self.entries.lock().get(&key)
            && *at == block
        {
            return Ok(value.clone());
        }
        let value = fetch().await?;
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (block, value.clone()));
        Ok(value)
    }
}

pub struct ChainView {
    client: GlycoClient,
    head: Mutex<Option<(Instant, u64)>>,
    grants: PerBlock<(Address, Address), Option<GrantState>>,
    hub_patients: PerBlock<Address, Option<Address>>,
    patient_keys: PerBlock<Address, Option<Vec<u8>>>,
    physician_keys: PerBlock<Address, Option<Vec<u8>>>,
    emergency_consents: PerBlock<Address, bool>,
    emergency_services: PerBlock<Address, Option<Address>>,
    anchors: Mutex<HashMap<(Address, B256), AnchorRecord>>,
}

impl ChainView {
    pub fn new(client: GlycoClient) -> Self {
        Self {
            client,
            head: Mutex::new(None),
            grants: PerBlock::new(),
            hub_patients: PerBlock::new(),
            patient_keys: PerBlock::new(),
            physician_keys: PerBlock::new(),
            emergency_consents: PerBlock::new(),
            emergency_services: PerBlock::new(),
            anchors: Mutex::new(HashMap::new()),
        }
    }

    pub fn client(&self) -> &GlycoClient {
        &self.client
    }

    /// The head block, asked at most every [`HEAD_TTL`].
    pub async fn head(&self) -> Result<u64, ChainError> {
        if let Some((at, block)) = *self.head.lock()
            && at.elapsed() < HEAD_TTL
        {
            return Ok(block);
        }
        let block = self.client.block_number().await?;
        *self.head.lock() = Some((Instant::now(), block));
        Ok(block)
    }

    /// The patient's current grant to `grantee`, and whether it is live.
    pub async fn grant(
        &self,
        patient: Address,
        grantee: Address,
    ) -> Result<Option<GrantState>, ChainError> {
        let block = self.head().await?;
        self.grants
            .get(block, (patient, grantee), || async {
                let Some(grant) = self.client.current_grant(patient, grantee).await? else {
                    return Ok(None);
                };
                let live = self.client.is_grant_live(grant.id).await?;
                Ok(Some(GrantState { grant, live }))
            })
            .await
    }

    pub async fn hub_patient(&self, hub: Address) -> Result<Option<Address>, ChainError> {
        let block = self.head().await?;
        self.hub_patients
            .get(block, hub, || self.client.hub_patient(hub))
            .await
    }

    pub async fn patient_pre_key(&self, patient: Address) -> Result<Option<Vec<u8>>, ChainError> {
        let block = self.head().await?;
        self.patient_keys
            .get(block, patient, || self.client.patient_pre_key(patient))
            .await
    }

    pub async fn physician_pre_key(
        &self,
        physician: Address,
    ) -> Result<Option<Vec<u8>>, ChainError> {
        let block = self.head().await?;
        self.physician_keys
            .get(block, physician, || {
                self.client.physician_pre_key(physician)
            })
            .await
    }

    /// Whether the patient's emergency policy is enabled: their consent to
    /// emergency services being told and reading under it.
    pub async fn emergency_consent(&self, patient: Address) -> Result<bool, ChainError> {
        let block = self.head().await?;
        self.emergency_consents
            .get(block, patient, || async {
                Ok(self.client.emergency_policy_of(patient).await?.enabled)
            })
            .await
    }

    /// The emergency service `physician` is an active physician of, if any.
    pub async fn emergency_service_of(
        &self,
        physician: Address,
    ) -> Result<Option<Address>, ChainError> {
        let block = self.head().await?;
        self.emergency_services
            .get(block, physician, || async {
                if !self.client.is_emergency_physician(physician).await? {
                    return Ok(None);
                }
                Ok(Some(self.client.physician_of(physician).await?.entity))
            })
            .await
    }

    /// The patient's anchor of `root` (kept once found: anchors never change).
    pub async fn anchor(
        &self,
        patient: Address,
        root: B256,
    ) -> Result<Option<AnchorRecord>, ChainError> {
        if let Some(anchor) = self.anchors.lock().get(&(patient, root)) {
            return Ok(Some(*anchor));
        }
        let found = self.client.anchor_of(patient, root).await?;
        if let Some(anchor) = found {
            let mut anchors = self.anchors.lock();
            if anchors.len() >= MAX_ENTRIES {
                anchors.clear();
            }
            anchors.insert((patient, root), anchor);
        }
        Ok(found)
    }
}
