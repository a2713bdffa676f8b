//! Deploys the contracts in dependency order, and the consortium's
//! governance contract once hospitals are enrolled.

use alloy::primitives::Address;
use alloy::providers::{DynProvider, Provider};
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::reqwest::Url;

use crate::bindings::{AccessLog, Anchors, Consortium, Devices, Permissions, Releases, Roles};
use crate::deployment::{ContractAddresses, Deployment};
use crate::device_id::DeviceIdKey;
use crate::model::{FeePolicy, TxOutcome};

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("deploying {contract}: {source}")]
    Contract {
        contract: &'static str,
        #[source]
        source: alloy::contract::Error,
    },
    #[error("deploying {contract}: no receipt: {source}")]
    Receipt {
        contract: &'static str,
        #[source]
        source: alloy::providers::PendingTransactionError,
    },
    #[error("deploying {contract}: the creation transaction failed")]
    NotDeployed { contract: &'static str },
    #[error("reading the chain id: {0}")]
    ChainId(#[source] alloy::transports::TransportError),
}

/// The deployment, and the creation transaction of each contract.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub deployment: Deployment,
    pub transactions: Vec<TxOutcome>,
}

/// Deploys Roles (with `admin` as consortium admin), then Devices,
/// Permissions, Anchors, AccessLog and Releases bound to it. The deployment records the
/// fingerprint of the consortium's device-id key.
pub async fn deploy_all(
    rpc_url: Url,
    deployer: PrivateKeySigner,
    admin: Address,
    device_id_key: &DeviceIdKey,
    fees: FeePolicy,
) -> Result<Deployed, DeployError> {
    let deployer_address = deployer.address();
    let provider = crate::client::signing_provider(rpc_url, deployer);
    let chain_id = provider
        .get_chain_id()
        .await
        .map_err(DeployError::ChainId)?;

    let mut transactions = Vec::new();
    let roles = create(
        "Roles",
        Roles::deploy_builder(&provider, admin),
        fees,
        &mut transactions,
    )
    .await?;
    let devices = create(
        "Devices",
        Devices::deploy_builder(&provider, roles),
        fees,
        &mut transactions,
    )
    .await?;
    let permissions = create(
        "Permissions",
        Permissions::deploy_builder(&provider, roles),
        fees,
        &mut transactions,
    )
    .await?;
    let anchors = create(
        "Anchors",
        Anchors::deploy_builder(&provider, roles),
        fees,
        &mut transactions,
    )
    .await?;
    let access_log = create(
        "AccessLog",
        AccessLog::deploy_builder(&provider, roles, permissions, anchors),
        fees,
        &mut transactions,
    )
    .await?;
    let releases = create(
        "Releases",
        Releases::deploy_builder(&provider, roles),
        fees,
        &mut transactions,
    )
    .await?;

    Ok(Deployed {
        deployment: Deployment {
            chain_id,
            deployed_at_block: transactions[0].block,
            deployer: deployer_address,
            contracts: ContractAddresses {
                roles,
                devices,
                permissions,
                access_log,
                anchors,
                consortium: None,
                releases: Some(releases),
            },
            device_id_key_fingerprint: device_id_key.fingerprint(),
            fees,
        },
        transactions,
    })
}

/// Deploys the M-of-N governance contract for the deployment's Roles. It
/// becomes the admin only when the current admin names it
/// (`transferAdmin`) and a first proposal calls `acceptAdmin`.
pub async fn deploy_consortium(
    rpc_url: Url,
    deployer: PrivateKeySigner,
    deployment: &Deployment,
    threshold: u32,
) -> Result<(Address, TxOutcome), DeployError> {
    let provider = crate::client::signing_provider(rpc_url, deployer);
    let mut transactions = Vec::new();
    let address = create(
        "Consortium",
        Consortium::deploy_builder(&provider, deployment.contracts.roles, threshold),
        deployment.fees,
        &mut transactions,
    )
    .await?;
    Ok((address, transactions[0]))
}

async fn create(
    contract: &'static str,
    builder: alloy::contract::RawCallBuilder<&DynProvider>,
    fees: FeePolicy,
    transactions: &mut Vec<TxOutcome>,
) -> Result<Address, DeployError> {
    let pending = crate::client::bid(builder, fees)
        .send()
        .await
        .map_err(|source| DeployError::Contract { contract, source })?;
    let receipt = pending
        .with_timeout(Some(crate::client::DEFAULT_RECEIPT_TIMEOUT))
        .get_receipt()
        .await
        .map_err(|source| DeployError::Receipt { contract, source })?;
    let address = receipt
        .contract_address
        .filter(|_| receipt.status())
        .ok_or(DeployError::NotDeployed { contract })?;
    transactions.push(TxOutcome {
        call: contract,
        hash: receipt.transaction_hash,
        gas_used: receipt.gas_used,
        block: receipt.block_number.unwrap_or_default(),
    });
    Ok(address)
}
