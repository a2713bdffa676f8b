//! A throwaway consortium on a fresh anvil node, for tests and the demo:
//! anvil on a free loopback port, the contracts deployed, and a client per
//! dev account.

use std::path::PathBuf;

use alloy::signers::local::PrivateKeySigner;

use alloy::primitives::{Address, B256};

use crate::client::GlycoClient;
use crate::deploy::{DeployError, deploy_all};
use crate::deployment::Deployment;
use crate::device_id::{DeviceId, DeviceIdKey, DeviceIdentity};
use crate::devnet::{ANVIL_ENV, Devnet, DevnetConfig, DevnetError};
use crate::error::ChainError;
use crate::keys::{DEV_MNEMONIC, KeyError, dev_account};
use crate::model::{EntityKind, FeePolicy, Role, TxOutcome, UnixSeconds};

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
    pub const SECOND_HOSPITAL: u32 = 10;
    pub const THIRD_HOSPITAL: u32 = 11;
    /// St Luke's re-encryption proxy.
    pub const PROXY: u32 = 12;
    pub const EMERGENCY_SERVICE: u32 = 13;
    /// A physician of the emergency service.
    pub const PARAMEDIC: u32 = 14;
    /// The key a patient rotates to.
    pub const NEW_PATIENT_KEY: u32 = 15;
    pub const SECOND_PROXY: u32 = 16;
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
    /// The consortium's device-id key (its fingerprint is in the deployment).
    pub device_id_key: DeviceIdKey,
}

impl Consortium {
    /// Fresh chain (instant mining) with the contracts deployed by the admin.
    pub async fn start() -> Result<Self, TestkitError> {
        Self::start_with(ephemeral_devnet()).await
    }

    pub async fn start_with(config: DevnetConfig) -> Result<Self, TestkitError> {
        let devnet = Devnet::start(config).await?;
        let admin = dev_account(DEV_MNEMONIC, accounts::ADMIN)?;
        let device_id_key = DeviceIdKey::generate();
        let fees = if devnet.config().free_gas {
            FeePolicy::Free
        } else {
            FeePolicy::Market
        };
        let deployed = deploy_all(
            devnet.rpc_url(),
            admin.clone(),
            admin.address(),
            &device_id_key,
            fees,
        )
        .await?;
        Ok(Self {
            devnet,
            deployment: deployed.deployment,
            deploy_transactions: deployed.transactions,
            device_id_key,
        })
    }

    pub fn signer(&self, index: u32) -> PrivateKeySigner {
        dev_account(&self.devnet.config().mnemonic, index).expect("dev accounts derive")
    }

    pub fn address(&self, index: u32) -> Address {
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

    /// The device's on-chain id under this consortium's key.
    pub fn device_id(&self, identity: &DeviceIdentity) -> DeviceId {
        self.device_id_key.id_of(identity)
    }

    /// The admin offers the entity role and the entity accepts.
    pub async fn enrol_entity(
        &self,
        entity: u32,
        kind: EntityKind,
        name: &str,
    ) -> Result<TxOutcome, ChainError> {
        let admin = self.client(accounts::ADMIN);
        let offered_by = admin.admin().await?;
        self.client_of_admin(offered_by)
            .offer_entity(self.address(entity), kind, name)
            .await?;
        self.client(entity)
            .accept_role(offered_by, Role::Entity)
            .await
    }

    /// The admin offers the physician role at `entity` and the physician accepts.
    pub async fn enrol_physician(
        &self,
        physician: u32,
        entity: u32,
    ) -> Result<TxOutcome, ChainError> {
        let offered_by = self.client(accounts::ADMIN).admin().await?;
        self.client_of_admin(offered_by)
            .offer_physician(self.address(physician), self.address(entity))
            .await?;
        self.client(physician)
            .accept_role(offered_by, Role::Physician)
            .await
    }

    /// The physician offers registration and the patient accepts.
    pub async fn register_patient(
        &self,
        physician: u32,
        patient: u32,
    ) -> Result<TxOutcome, ChainError> {
        self.client(physician)
            .register_patient(self.address(patient))
            .await?;
        self.client(patient)
            .accept_role(self.address(physician), Role::Patient)
            .await
    }

    /// The hub signs its consent; the patient authorises it.
    pub async fn authorise_hub(
        &self,
        patient: u32,
        hub: u32,
        manage_devices: bool,
    ) -> Result<TxOutcome, ChainError> {
        let deadline = UnixSeconds::now().plus(std::time::Duration::from_secs(3600));
        let consent = self
            .client(hub)
            .sign_hub_consent(self.address(patient), deadline)
            .await?;
        self.client(patient)
            .authorise_hub(&consent, manage_devices)
            .await
    }

    /// The hospital offers the proxy role (with an iroh node id) and the proxy accepts.
    pub async fn enrol_proxy(&self, hospital: u32, proxy: u32) -> Result<TxOutcome, ChainError> {
        let node_id = B256::repeat_byte(proxy as u8);
        self.client(hospital)
            .offer_proxy(self.address(proxy), node_id)
            .await?;
        self.client(proxy)
            .accept_role(self.address(hospital), Role::Proxy)
            .await
    }

    /// A client of whichever dev account is admin (the deployer, or another
    /// after a transfer).
    fn client_of_admin(&self, admin: Address) -> GlycoClient {
        let index = (0..self.devnet.config().accounts)
            .find(|i| self.address(*i) == admin)
            .unwrap_or(accounts::ADMIN);
        self.client(index)
    }
}
