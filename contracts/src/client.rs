//! The typed client the rest of the workspace uses to talk to the contracts.

use std::time::Duration;

use alloy::contract::SolCallBuilder;
use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, Log};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolEvent};
use alloy::transports::http::reqwest::Url;

use crate::bindings::{AccessLog, Anchors, Devices, Permissions, Roles};
use crate::deployment::Deployment;
use crate::device_id::DeviceId;
use crate::error::{ChainError, Contract};
use crate::model::{
    Access, AccessAction, AccessEntry, AnchorRecord, BatchAnchor, DeviceChange, DeviceChangeKind,
    DeviceKind, DeviceRecord, EntityKind, GrantRecord, Role, TxOutcome,
};

/// The URL type of JSON-RPC endpoints.
pub type RpcUrl = Url;

/// How long to wait for a transaction's receipt before giving up.
pub const DEFAULT_RECEIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// A provider that signs with `signer`. Nonces come from the node for every
/// transaction: a cached nonce would be consumed by a call the contract
/// refuses at estimation, and every later transaction would then wait on the
/// gap. Each key sends one transaction at a time, so the node's count is exact.
pub(crate) fn signing_provider(rpc_url: Url, signer: PrivateKeySigner) -> DynProvider {
    ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(signer))
        .connect_http(rpc_url)
        .erased()
}

/// One account's view of a Glyco deployment: sends transactions as `sender`
/// and reads any state.
#[derive(Clone)]
pub struct GlycoClient {
    provider: DynProvider,
    sender: Option<Address>,
    deployment: Deployment,
    receipt_timeout: Duration,
    roles: Roles::RolesInstance<DynProvider>,
    devices: Devices::DevicesInstance<DynProvider>,
    permissions: Permissions::PermissionsInstance<DynProvider>,
    access_log: AccessLog::AccessLogInstance<DynProvider>,
    anchors: Anchors::AnchorsInstance<DynProvider>,
}

impl std::fmt::Debug for GlycoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlycoClient")
            .field("sender", &self.sender)
            .field("chain_id", &self.deployment.chain_id)
            .finish_non_exhaustive()
    }
}

impl GlycoClient {
    /// A client that signs with `signer`.
    pub fn new(rpc_url: Url, signer: PrivateKeySigner, deployment: Deployment) -> Self {
        let sender = signer.address();
        let provider = signing_provider(rpc_url, signer);
        Self::with_provider(provider, Some(sender), deployment)
    }

    /// A client that only reads (a proxy deciding, a mirror following).
    pub fn read_only(rpc_url: Url, deployment: Deployment) -> Self {
        let provider = ProviderBuilder::new().connect_http(rpc_url).erased();
        Self::with_provider(provider, None, deployment)
    }

    fn with_provider(
        provider: DynProvider,
        sender: Option<Address>,
        deployment: Deployment,
    ) -> Self {
        let c = deployment.contracts;
        Self {
            roles: Roles::new(c.roles, provider.clone()),
            devices: Devices::new(c.devices, provider.clone()),
            permissions: Permissions::new(c.permissions, provider.clone()),
            access_log: AccessLog::new(c.access_log, provider.clone()),
            anchors: Anchors::new(c.anchors, provider.clone()),
            provider,
            sender,
            deployment,
            receipt_timeout: DEFAULT_RECEIPT_TIMEOUT,
        }
    }

    pub fn with_receipt_timeout(mut self, timeout: Duration) -> Self {
        self.receipt_timeout = timeout;
        self
    }

    /// The signing account, if any.
    pub fn sender(&self) -> Option<Address> {
        self.sender
    }

    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// The chain id the node serves.
    pub async fn chain_id(&self) -> Result<u64, ChainError> {
        self.provider
            .get_chain_id()
            .await
            .map_err(|e| ChainError::Rpc {
                call: "eth_chainId",
                source: e.into(),
            })
    }

    /// The chain's latest block number.
    pub async fn block_number(&self) -> Result<u64, ChainError> {
        self.provider
            .get_block_number()
            .await
            .map_err(|e| ChainError::Rpc {
                call: "eth_blockNumber",
                source: e.into(),
            })
    }

    /// Sends a call and waits for its receipt. A refusal is caught while the
    /// call is estimated, so it never costs gas.
    async fn send<C: SolCall>(
        &self,
        call: &'static str,
        contract: Contract,
        builder: SolCallBuilder<&DynProvider, C>,
    ) -> Result<TxOutcome, ChainError> {
        let pending = builder
            .send()
            .await
            .map_err(|e| ChainError::from_contract(call, contract, e))?;
        let hash = *pending.tx_hash();
        let receipt = pending
            .with_timeout(Some(self.receipt_timeout))
            .get_receipt()
            .await
            .map_err(|source| ChainError::Pending { call, source })?;
        if !receipt.status() {
            return Err(ChainError::RevertedOnChain { call, hash });
        }
        Ok(TxOutcome {
            call,
            hash,
            gas_used: receipt.gas_used,
            block: receipt.block_number.unwrap_or_default(),
        })
    }

    async fn view<C: SolCall>(
        &self,
        call: &'static str,
        contract: Contract,
        builder: SolCallBuilder<&DynProvider, C>,
    ) -> Result<C::Return, ChainError> {
        builder
            .call()
            .await
            .map_err(|e| ChainError::from_contract(call, contract, e))
    }

    // ---- roles -----------------------------------------------------------

    pub async fn admin(&self) -> Result<Address, ChainError> {
        self.view("admin", Contract::Roles, self.roles.admin())
            .await
    }

    pub async fn transfer_admin(&self, new_admin: Address) -> Result<TxOutcome, ChainError> {
        self.send(
            "transferAdmin",
            Contract::Roles,
            self.roles.transferAdmin(new_admin),
        )
        .await
    }

    pub async fn enrol_entity(
        &self,
        entity: Address,
        kind: EntityKind,
        name: &str,
    ) -> Result<TxOutcome, ChainError> {
        let builder = self.roles.enrolEntity(entity, kind.into(), name.to_owned());
        self.send("enrolEntity", Contract::Roles, builder).await
    }

    pub async fn revoke_entity(&self, entity: Address) -> Result<TxOutcome, ChainError> {
        self.send(
            "revokeEntity",
            Contract::Roles,
            self.roles.revokeEntity(entity),
        )
        .await
    }

    pub async fn enrol_physician(
        &self,
        physician: Address,
        entity: Address,
    ) -> Result<TxOutcome, ChainError> {
        let builder = self.roles.enrolPhysician(physician, entity);
        self.send("enrolPhysician", Contract::Roles, builder).await
    }

    pub async fn revoke_physician(&self, physician: Address) -> Result<TxOutcome, ChainError> {
        let builder = self.roles.revokePhysician(physician);
        self.send("revokePhysician", Contract::Roles, builder).await
    }

    pub async fn register_patient(&self, patient: Address) -> Result<TxOutcome, ChainError> {
        let builder = self.roles.registerPatient(patient);
        self.send("registerPatient", Contract::Roles, builder).await
    }

    pub async fn authorise_hub(&self, hub: Address) -> Result<TxOutcome, ChainError> {
        self.send(
            "authoriseHub",
            Contract::Roles,
            self.roles.authoriseHub(hub),
        )
        .await
    }

    pub async fn revoke_hub(&self, hub: Address) -> Result<TxOutcome, ChainError> {
        self.send("revokeHub", Contract::Roles, self.roles.revokeHub(hub))
            .await
    }

    /// The account's role; `None` if the chain holds a role this build does
    /// not know.
    pub async fn role_of(&self, account: Address) -> Result<Option<Role>, ChainError> {
        let raw = self
            .view("roleOf", Contract::Roles, self.roles.roleOf(account))
            .await?;
        Ok(Role::from_u8(raw))
    }

    pub async fn is_active_physician(&self, account: Address) -> Result<bool, ChainError> {
        let builder = self.roles.isActivePhysician(account);
        self.view("isActivePhysician", Contract::Roles, builder)
            .await
    }

    pub async fn is_active_hospital(&self, account: Address) -> Result<bool, ChainError> {
        let builder = self.roles.isActiveHospital(account);
        self.view("isActiveHospital", Contract::Roles, builder)
            .await
    }

    /// The physician who registered the patient (zero when not a patient).
    pub async fn registered_by(&self, patient: Address) -> Result<Address, ChainError> {
        let builder = self.roles.registeredBy(patient);
        self.view("registeredBy", Contract::Roles, builder).await
    }

    /// The patient a hub acts for, if any.
    pub async fn hub_patient(&self, hub: Address) -> Result<Option<Address>, ChainError> {
        let patient = self
            .view("hubPatient", Contract::Roles, self.roles.hubPatient(hub))
            .await?;
        Ok((!patient.is_zero()).then_some(patient))
    }

    pub async fn acts_for(&self, account: Address, patient: Address) -> Result<bool, ChainError> {
        let builder = self.roles.actsFor(account, patient);
        self.view("actsFor", Contract::Roles, builder).await
    }

    // ---- devices ---------------------------------------------------------

    pub async fn add_device(
        &self,
        patient: Address,
        device: DeviceId,
        kind: DeviceKind,
    ) -> Result<TxOutcome, ChainError> {
        let builder = self.devices.addDevice(patient, device.0, kind.into());
        self.send("addDevice", Contract::Devices, builder).await
    }

    pub async fn remove_device(
        &self,
        patient: Address,
        device: DeviceId,
    ) -> Result<TxOutcome, ChainError> {
        let builder = self.devices.removeDevice(patient, device.0);
        self.send("removeDevice", Contract::Devices, builder).await
    }

    pub async fn is_registered(
        &self,
        patient: Address,
        device: DeviceId,
    ) -> Result<bool, ChainError> {
        let builder = self.devices.isRegistered(patient, device.0);
        self.view("isRegistered", Contract::Devices, builder).await
    }

    /// The device's record; `None` if it was never registered.
    pub async fn device_of(&self, device: DeviceId) -> Result<Option<DeviceRecord>, ChainError> {
        let d = self
            .view(
                "deviceOf",
                Contract::Devices,
                self.devices.deviceOf(device.0),
            )
            .await?;
        if d.patient.is_zero() {
            return Ok(None);
        }
        Ok(Some(DeviceRecord {
            patient: d.patient,
            kind: DeviceKind::from_u8(d.kind),
            active: d.active,
            added_at: d.addedAt,
        }))
    }

    /// The patient's active devices.
    pub async fn devices_of(&self, patient: Address) -> Result<Vec<DeviceId>, ChainError> {
        let ids = self
            .view(
                "devicesOf",
                Contract::Devices,
                self.devices.devicesOf(patient),
            )
            .await?;
        Ok(ids.into_iter().map(DeviceId).collect())
    }

    // ---- permissions -----------------------------------------------------

    /// Grants (or replaces) the caller's permission for `grantee`;
    /// `expires_at` in unix seconds.
    pub async fn grant(
        &self,
        grantee: Address,
        policy_id: B256,
        access: Access,
        expires_at: Option<u64>,
    ) -> Result<TxOutcome, ChainError> {
        let builder = self.permissions.grant(
            grantee,
            policy_id,
            access.read,
            access.write,
            expires_at.unwrap_or(0),
        );
        self.send("grant", Contract::Permissions, builder).await
    }

    pub async fn revoke(&self, grantee: Address) -> Result<TxOutcome, ChainError> {
        self.send(
            "revoke",
            Contract::Permissions,
            self.permissions.revoke(grantee),
        )
        .await
    }

    /// The stored grant; `None` if the patient never granted this grantee.
    pub async fn grant_of(
        &self,
        patient: Address,
        grantee: Address,
    ) -> Result<Option<GrantRecord>, ChainError> {
        let builder = self.permissions.grantOf(patient, grantee);
        let g = self.view("grantOf", Contract::Permissions, builder).await?;
        if g.grantedAt == 0 {
            return Ok(None);
        }
        Ok(Some(GrantRecord {
            policy_id: g.policyId,
            access: Access {
                read: g.read,
                write: g.write,
            },
            granted_at: g.grantedAt,
            expires_at: (g.expiresAt != 0).then_some(g.expiresAt),
            active: g.active,
        }))
    }

    pub async fn can_read(&self, patient: Address, grantee: Address) -> Result<bool, ChainError> {
        let builder = self.permissions.canRead(patient, grantee);
        self.view("canRead", Contract::Permissions, builder).await
    }

    pub async fn can_write(&self, patient: Address, grantee: Address) -> Result<bool, ChainError> {
        let builder = self.permissions.canWrite(patient, grantee);
        self.view("canWrite", Contract::Permissions, builder).await
    }

    /// The proxy's question: may it re-encrypt under `policy_id` for `grantee`?
    pub async fn may_reencrypt(
        &self,
        patient: Address,
        grantee: Address,
        policy_id: B256,
    ) -> Result<bool, ChainError> {
        let builder = self.permissions.mayReencrypt(patient, grantee, policy_id);
        self.view("mayReencrypt", Contract::Permissions, builder)
            .await
    }

    // ---- access log ------------------------------------------------------

    pub async fn log_access(
        &self,
        patient: Address,
        accessor: Address,
        data_id: B256,
        action: AccessAction,
    ) -> Result<TxOutcome, ChainError> {
        let builder = self
            .access_log
            .logAccess(patient, accessor, data_id, action.into());
        self.send("logAccess", Contract::AccessLog, builder).await
    }

    pub async fn access_count(&self, patient: Address) -> Result<u64, ChainError> {
        let builder = self.access_log.accessCount(patient);
        self.view("accessCount", Contract::AccessLog, builder).await
    }

    // ---- anchors ---------------------------------------------------------

    pub async fn anchor(
        &self,
        patient: Address,
        batch: BatchAnchor,
    ) -> Result<TxOutcome, ChainError> {
        let builder = self.anchors.anchor(
            patient,
            batch.root,
            batch.window_start,
            batch.window_end,
            batch.count,
        );
        self.send("anchor", Contract::Anchors, builder).await
    }

    /// The anchored batch with this root, if any.
    pub async fn anchor_of(&self, root: B256) -> Result<Option<AnchorRecord>, ChainError> {
        let a = self
            .view("anchorOf", Contract::Anchors, self.anchors.anchorOf(root))
            .await?;
        if a.anchoredAt == 0 {
            return Ok(None);
        }
        Ok(Some(AnchorRecord {
            patient: a.patient,
            submitter: a.submitter,
            batch: BatchAnchor {
                root,
                window_start: a.windowStart,
                window_end: a.windowEnd,
                count: a.count,
            },
            anchored_at: a.anchoredAt,
            seq: a.seq,
        }))
    }

    pub async fn anchor_count(&self, patient: Address) -> Result<u64, ChainError> {
        let builder = self.anchors.anchorCount(patient);
        self.view("anchorCount", Contract::Anchors, builder).await
    }

    // ---- events ----------------------------------------------------------

    async fn logs(&self, call: &'static str, filter: Filter) -> Result<Vec<Log>, ChainError> {
        self.provider
            .get_logs(&filter)
            .await
            .map_err(|e| ChainError::Rpc {
                call,
                source: e.into(),
            })
    }

    /// The patient's device additions and removals in `[from_block, to_block]`,
    /// in chain order. The hub's registry mirror replays these.
    pub async fn device_changes(
        &self,
        patient: Address,
        from_block: u64,
        to_block: u64,
    ) -> Result<Vec<DeviceChange>, ChainError> {
        let filter = Filter::new()
            .address(self.deployment.contracts.devices)
            .event_signature(vec![
                Devices::DeviceAdded::SIGNATURE_HASH,
                Devices::DeviceRemoved::SIGNATURE_HASH,
            ])
            .topic1(patient.into_word())
            .from_block(from_block)
            .to_block(to_block);
        let mut changes = Vec::new();
        for log in self.logs("eth_getLogs(Devices)", filter).await? {
            let (block, log_index) = (
                log.block_number.unwrap_or_default(),
                log.log_index.unwrap_or_default(),
            );
            let change = match log.topic0() {
                Some(&Devices::DeviceAdded::SIGNATURE_HASH) => {
                    let Ok(event) = log.log_decode::<Devices::DeviceAdded>() else {
                        continue;
                    };
                    let e = event.inner.data;
                    DeviceChange {
                        block,
                        log_index,
                        device: DeviceId(e.deviceId),
                        change: DeviceChangeKind::Added(DeviceKind::from_u8(e.kind)),
                        by: e.by,
                    }
                }
                Some(&Devices::DeviceRemoved::SIGNATURE_HASH) => {
                    let Ok(event) = log.log_decode::<Devices::DeviceRemoved>() else {
                        continue;
                    };
                    let e = event.inner.data;
                    DeviceChange {
                        block,
                        log_index,
                        device: DeviceId(e.deviceId),
                        change: DeviceChangeKind::Removed,
                        by: e.by,
                    }
                }
                _ => continue,
            };
            changes.push(change);
        }
        changes.sort_by_key(|c| (c.block, c.log_index));
        Ok(changes)
    }

    /// The patient's access-log entries from `from_block` on.
    pub async fn access_log_of(
        &self,
        patient: Address,
        from_block: u64,
    ) -> Result<Vec<AccessEntry>, ChainError> {
        let filter = Filter::new()
            .address(self.deployment.contracts.access_log)
            .event_signature(AccessLog::AccessLogged::SIGNATURE_HASH)
            .topic1(patient.into_word())
            .from_block(from_block);
        let logs = self.logs("eth_getLogs(AccessLog)", filter).await?;
        Ok(logs
            .iter()
            .filter_map(|log| {
                let block = log.block_number.unwrap_or_default();
                let e = log.log_decode::<AccessLog::AccessLogged>().ok()?.inner.data;
                Some(AccessEntry {
                    patient: e.patient,
                    accessor: e.accessor,
                    data_id: e.dataId,
                    recorder: e.recorder,
                    action: AccessAction::from_u8(e.action),
                    at: e.at,
                    seq: e.seq,
                    block,
                })
            })
            .collect())
    }

    /// The patient's anchored batches from `from_block` on, oldest first.
    pub async fn anchors_of(
        &self,
        patient: Address,
        from_block: u64,
    ) -> Result<Vec<AnchorRecord>, ChainError> {
        let filter = Filter::new()
            .address(self.deployment.contracts.anchors)
            .event_signature(Anchors::BatchAnchored::SIGNATURE_HASH)
            .topic1(patient.into_word())
            .from_block(from_block);
        let logs = self.logs("eth_getLogs(Anchors)", filter).await?;
        let mut records = Vec::with_capacity(logs.len());
        for log in &logs {
            let Ok(event) = log.log_decode::<Anchors::BatchAnchored>() else {
                continue;
            };
            let e = event.inner.data;
            // Not every node puts the block timestamp in its logs; ask for the block then.
            let anchored_at = match log.block_timestamp {
                Some(t) => t,
                None => {
                    self.block_timestamp(log.block_number.unwrap_or_default())
                        .await?
                }
            };
            records.push(AnchorRecord {
                patient: e.patient,
                submitter: e.submitter,
                batch: BatchAnchor {
                    root: e.root,
                    window_start: e.windowStart,
                    window_end: e.windowEnd,
                    count: e.count,
                },
                anchored_at,
                seq: e.seq,
            });
        }
        Ok(records)
    }

    async fn block_timestamp(&self, number: u64) -> Result<u64, ChainError> {
        let call = "eth_getBlockByNumber";
        let block = self
            .provider
            .get_block_by_number(number.into())
            .await
            .map_err(|e| ChainError::Rpc {
                call,
                source: e.into(),
            })?;
        Ok(block.map(|b| b.header.timestamp).unwrap_or_default())
    }
}
