//! A throwaway consortium on a fresh anvil node, for tests and the demo:
//! anvil on a free loopback port, the contracts deployed, and a client per
//! dev account.

use std::path::PathBuf;

use alloy::signers::local::PrivateKeySigner;

use crate::client::GlycoClient;
use crate::deploy::{DeployError, deploy_all};
use crate::deployment::Deployment;
use crate::devnet::{ANVIL_ENV, Devnet, DevnetConfig, DevnetError};
use crate::keys::{DEV_MNEMONIC, KeyError, dev_account};
use crate::model::TxOutcome;

/// Which dev account plays which part in tests, the demo and the gas table.
pub mod accounts {
    pub const ADMIN: u32 = 0;
    pub const HOSPITAL: u32 = 1;
    pub const CLINIC: u32 = 2;
    pub const PHYSICIAN: u32 = 3;
    pub const LOCUM: u32 = 4;
    pub const PATIENT: u32 = 5;
    pub const HUB: u32 = 6;
    pub const SECOND_PATIENT: u32 = 7;
    pub const NEXT_ADMIN: u32 = 8;
    pub const STRANGER: u32 = 9;
}

#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    #[error(transparent)]
    Devnet(#[from] DevnetError),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// The anvil binary the workspace installs (tools/), unless $GLYCO_ANVIL
/// names another.
pub fn workspace_anvil() -> PathBuf {
    std::env::var_os(ANVIL_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tools/node_modules/.bin/anvil"
            ))
        })
}

/// A devnet config for tests: free port, instant mining, memory only.
pub fn ephemeral_devnet() -> DevnetConfig {
    DevnetConfig {
        port: 0,
        block_time_secs: 0,
        state_file: None,
        anvil: Some(workspace_anvil()),
        ..DevnetConfig::default()
    }
}

pub struct Consortium {
    pub devnet: Devnet,
    pub deployment: Deployment,
    pub deploy_transactions: Vec<TxOutcome>,
}

impl Consortium {
    /// Fresh chain (instant mining) with the contracts deployed by the admin.
    pub async fn start() -> Result<Self, TestkitError> {
        Self::start_with(ephemeral_devnet()).await
    }

    pub async fn start_with(config: DevnetConfig) -> Result<Self, TestkitError> {
        let devnet = Devnet::start(config).await?;
        let admin = dev_account(DEV_MNEMONIC, accounts::ADMIN)?;
        let deployed = deploy_all(devnet.rpc_url(), admin.clone(), admin.address()).await?;
        Ok(Self {
            devnet,
            deployment: deployed.deployment,
            deploy_transactions: deployed.transactions,
        })
    }

    pub fn signer(&self, index: u32) -> PrivateKeySigner {
        dev_account(&self.devnet.config().mnemonic, index).expect("dev accounts derive")
    }

    pub fn address(&self, index: u32) -> alloy::primitives::Address {
        self.signer(index).address()
    }

    /// A client signing as dev account `index`.
    pub fn client(&self, index: u32) -> GlycoClient {
        GlycoClient::new(
            self.devnet.rpc_url(),
            self.signer(index),
            self.deployment.clone(),
        )
    }
}
