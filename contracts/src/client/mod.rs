//! The typed client the rest of the workspace uses to talk to the contracts.
//!
//! One [`GlycoClient`] is one account's view of a deployment. Sending is
//! serialised per key across the whole process (every client and clone that
//! signs with the same key shares one lock), so two concurrent sends never
//! take the same nonce; a transaction whose receipt is late is reported with
//! its hash ([`ChainError::Pending`]) so the caller can wait for it
//! ([`GlycoClient::receipt_of`]) instead of sending it twice. Event queries
//! walk the chain in bounded block ranges (nodes such as Besu refuse large
//! ones).

mod access;
mod allowlist;
mod anchors;
mod consortium;
mod devices;
mod permissions;
mod releases;
mod roles;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use alloy::contract::SolCallBuilder;
use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::client::RpcClient;
use alloy::rpc::types::{Filter, Log, TransactionReceipt};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use alloy::transports::http::{Http, reqwest};

use crate::bindings::{AccessLog, Anchors, Consortium, Devices, Permissions, Roles};
use crate::deployment::Deployment;
use crate::error::{ChainError, Contract};
use crate::model::{FeePolicy, TxOutcome};

pub use access::{
    AccessOutcome, AccessRequest, MAX_REQUEST_LIFETIME, SignedAccessRequest, roots_digest,
};
pub use allowlist::besu_accounts_allowlist;
pub use anchors::AnchorOutcome;

/// The URL type of JSON-RPC endpoints.
pub type RpcUrl = reqwest::Url;

/// How long to wait for a transaction's receipt before reporting it pending.
pub const DEFAULT_RECEIPT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one JSON-RPC request may take.
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// Blocks per `eth_getLogs` request (Besu's default limit is 5,000).
pub const DEFAULT_LOG_CHUNK_BLOCKS: u64 = 2_000;

/// One lock per signing key in this process.
static SEND_LOCKS: LazyLock<parking_lot::Mutex<HashMap<Address, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Default::default);

fn send_lock(sender: Address) -> Arc<tokio::sync::Mutex<()>> {
    let mut locks = SEND_LOCKS.lock();
    locks.entry(sender).or_default().clone()
}

/// Installs rustls' ring provider for the process, once. reqwest refuses to
/// build a client when its rustls feature is on (iroh turns it on) and no
/// process-wide provider is installed; a provider installed earlier (by
/// anyone) is kept. Call it before building any HTTP client of your own.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A JSON-RPC client whose every request gives up after `timeout`.
fn rpc_client(rpc_url: RpcUrl, timeout: Duration) -> RpcClient {
    install_tls_provider();
    let http_client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .unwrap_or_default();
    let transport = Http::with_client(http_client, rpc_url);
    let is_local = transport.guess_local();
    RpcClient::new(transport, is_local)
}

/// A provider that signs with `signer`. Nonces come from the node's pending
/// count for every transaction, under the key's send lock: a cached nonce
/// would be consumed by a call the contract refuses at estimation, and every
/// later transaction would then wait on the gap.
pub(crate) fn signing_provider(rpc_url: RpcUrl, signer: PrivateKeySigner) -> DynProvider {
    ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(signer))
        .connect_client(rpc_client(rpc_url, DEFAULT_RPC_TIMEOUT))
        .erased()
}

/// One account's view of a Glyco deployment: sends transactions as `sender`
/// and reads any state.
#[derive(Clone)]
pub struct GlycoClient {
    provider: DynProvider,
    sender: Option<Address>,
    signer: Option<PrivateKeySigner>,
    send_lock: Option<Arc<tokio::sync::Mutex<()>>>,
    deployment: Deployment,
    receipt_timeout: Duration,
    log_chunk_blocks: u64,
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
    pub fn new(rpc_url: RpcUrl, signer: PrivateKeySigner, deployment: Deployment) -> Self {
        let sender = signer.address();
        let provider = signing_provider(rpc_url, signer.clone());
        let mut client = Self::with_provider(provider, Some(sender), deployment);
        client.signer = Some(signer);
        client.send_lock = Some(send_lock(sender));
        client
    }

    /// A client that only reads (a mirror following, a verifier checking).
    pub fn read_only(rpc_url: RpcUrl, deployment: Deployment) -> Self {
        let provider = ProviderBuilder::new()
            .connect_client(rpc_client(rpc_url, DEFAULT_RPC_TIMEOUT))
            .erased();
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
            signer: None,
            send_lock: None,
            deployment,
            receipt_timeout: DEFAULT_RECEIPT_TIMEOUT,
            log_chunk_blocks: DEFAULT_LOG_CHUNK_BLOCKS,
        }
    }

    pub fn with_receipt_timeout(mut self, timeout: Duration) -> Self {
        self.receipt_timeout = timeout;
        self
    }

    /// Blocks per `eth_getLogs` request (at least 1).
    pub fn with_log_chunk_blocks(mut self, blocks: u64) -> Self {
        self.log_chunk_blocks = blocks.max(1);
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

    fn signer(&self, call: &'static str) -> Result<&PrivateKeySigner, ChainError> {
        self.signer.as_ref().ok_or(ChainError::ReadOnly { call })
    }

    fn consortium(
        &self,
        call: &'static str,
    ) -> Result<Consortium::ConsortiumInstance<DynProvider>, ChainError> {
        let address = self
            .deployment
            .contracts
            .consortium
            .ok_or(ChainError::NoConsortium { call })?;
        Ok(Consortium::new(address, self.provider.clone()))
    }

    /// The chain id the node serves.
    pub async fn chain_id(&self) -> Result<u64, ChainError> {
        self.provider
            .get_chain_id()
            .await
            .map_err(|e| ChainError::rpc("eth_chainId", e))
    }

    /// The chain's latest block number.
    pub async fn block_number(&self) -> Result<u64, ChainError> {
        self.provider
            .get_block_number()
            .await
            .map_err(|e| ChainError::rpc("eth_blockNumber", e))
    }

    /// The hash of block `number`; `None` if the node has no such block.
    pub async fn block_hash(&self, number: u64) -> Result<Option<B256>, ChainError> {
        let block = self
            .provider
            .get_block_by_number(number.into())
            .await
            .map_err(|e| ChainError::rpc("eth_getBlockByNumber", e))?;
        Ok(block.map(|b| b.header.hash))
    }

    /// Any JSON-RPC call by name (dev-chain controls such as `evm_mine` or
    /// `anvil_reorg`, in tests and tools).
    pub async fn raw_request(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, ChainError> {
        self.provider
            .raw_request(method.into(), params)
            .await
            .map_err(|e| ChainError::rpc(method, e))
    }

    /// The latest block's timestamp (unix seconds).
    pub async fn latest_block_time(&self) -> Result<u64, ChainError> {
        let head = self.block_number().await?;
        self.block_timestamp(head).await
    }

    /// Sends a call and waits for its receipt. A refusal is caught while the
    /// call is estimated, so it never costs gas.
    async fn send<C: SolCall>(
        &self,
        call: &'static str,
        contract: Contract,
        builder: SolCallBuilder<&DynProvider, C>,
    ) -> Result<TxOutcome, ChainError> {
        self.send_with_receipt(call, contract, builder)
            .await
            .map(|(outcome, _)| outcome)
    }

    async fn send_with_receipt<C: SolCall>(
        &self,
        call: &'static str,
        contract: Contract,
        builder: SolCallBuilder<&DynProvider, C>,
    ) -> Result<(TxOutcome, TransactionReceipt), ChainError> {
        let lock = self
            .send_lock
            .as_ref()
            .ok_or(ChainError::ReadOnly { call })?;
        let builder = bid(builder, self.deployment.fees);
        let pending = {
            // Held until the node has the transaction in its pool, so the next
            // send's pending count includes it.
            let _one_at_a_time = lock.lock().await;
            builder
                .send()
                .await
                .map_err(|e| ChainError::from_contract(call, contract, e))?
        };
        let hash = *pending.tx_hash();
        let receipt = match pending
            .with_timeout(Some(self.receipt_timeout))
            .get_receipt()
            .await
        {
            Ok(receipt) => receipt,
            Err(source) => {
                // The transaction may still land: report its hash, never resend.
                return match self.fetch_receipt(call, hash).await {
                    Ok(Some(receipt)) => Ok((outcome(call, &receipt)?, receipt)),
                    _ => Err(ChainError::Pending {
                        call,
                        hash,
                        source: Box::new(source),
                    }),
                };
            }
        };
        Ok((outcome(call, &receipt)?, receipt))
    }

    async fn fetch_receipt(
        &self,
        call: &'static str,
        hash: B256,
    ) -> Result<Option<TransactionReceipt>, ChainError> {
        self.provider
            .get_transaction_receipt(hash)
            .await
            .map_err(|e| ChainError::rpc(call, e))
    }

    /// The outcome of a transaction sent earlier (after [`ChainError::Pending`]):
    /// `None` while it is not mined.
    pub async fn receipt_of(
        &self,
        call: &'static str,
        hash: B256,
    ) -> Result<Option<TxOutcome>, ChainError> {
        match self.fetch_receipt(call, hash).await? {
            Some(receipt) => outcome(call, &receipt).map(Some),
            None => Ok(None),
        }
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

    /// Logs matching `filter` in `[from_block, to_block]` (`to_block` `None`:
    /// the head), fetched in chunks of `log_chunk_blocks`, in chain order.
    async fn logs(
        &self,
        call: &'static str,
        filter: Filter,
        from_block: u64,
        to_block: Option<u64>,
    ) -> Result<Vec<Log>, ChainError> {
        let to_block = match to_block {
            Some(block) => block,
            None => self.block_number().await?,
        };
        let mut logs = Vec::new();
        let mut from = from_block;
        while from <= to_block {
            let to = to_block.min(from.saturating_add(self.log_chunk_blocks - 1));
            let chunk = filter.clone().from_block(from).to_block(to);
            let mut found = self
                .provider
                .get_logs(&chunk)
                .await
                .map_err(|e| ChainError::rpc(call, e))?;
            logs.append(&mut found);
            from = to + 1;
        }
        logs.sort_by_key(|log| {
            (
                log.block_number.unwrap_or_default(),
                log.log_index.unwrap_or_default(),
            )
        });
        Ok(logs)
    }

    async fn block_timestamp(&self, number: u64) -> Result<u64, ChainError> {
        let call = "eth_getBlockByNumber";
        let block = self
            .provider
            .get_block_by_number(number.into())
            .await
            .map_err(|e| ChainError::rpc(call, e))?;
        Ok(block.map(|b| b.header.timestamp).unwrap_or_default())
    }
}

/// On a free-gas chain, bid zero (alloy's estimate never goes below 1 wei,
/// which a key without ether cannot pay).
pub(crate) fn bid<P, D>(
    builder: alloy::contract::CallBuilder<P, D>,
    fees: FeePolicy,
) -> alloy::contract::CallBuilder<P, D>
where
    P: Provider,
    D: alloy::contract::CallDecoder,
{
    match fees {
        FeePolicy::Free => builder.max_fee_per_gas(0).max_priority_fee_per_gas(0),
        FeePolicy::Market => builder,
    }
}

fn outcome(call: &'static str, receipt: &TransactionReceipt) -> Result<TxOutcome, ChainError> {
    if !receipt.status() {
        return Err(ChainError::RevertedOnChain {
            call,
            hash: receipt.transaction_hash,
        });
    }
    Ok(TxOutcome {
        call,
        hash: receipt.transaction_hash,
        gas_used: receipt.gas_used,
        block: receipt.block_number.unwrap_or_default(),
    })
}

/// Decodes the first log of event `E` in a receipt.
fn event_in<E: alloy::sol_types::SolEvent>(
    call: &'static str,
    receipt: &TransactionReceipt,
) -> Result<E, ChainError> {
    receipt
        .decoded_log::<E>()
        .map(|log| log.data)
        .ok_or(ChainError::MissingEvent {
            call,
            event: E::SIGNATURE,
        })
}
