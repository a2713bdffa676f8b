//! Adding and removing the patient's devices on chain with the hub's key
//! (the patient delegated that power to the hub), and the MQTT credentials
//! of named devices. Used by `glyco-hub device` and the web app.

use std::path::PathBuf;

use glyco_contracts::bindings::Devices::DevicesErrors;
use glyco_contracts::{
    Address, ChainError, DeviceIdKey, DeviceIdentity, DeviceKind, GlycoClient, Refusal, TxOutcome,
};

use crate::credentials::{CredentialsError, CredentialsFile};

#[derive(Debug, thiserror::Error)]
pub enum DeviceAdminError {
    #[error(
        "{0}\nthe patient has not delegated device registration to this hub: the patient \
         registers the device, or gives the hub that power (Roles.setHubDevicePower)"
    )]
    NotDelegated(ChainError),
    #[error(transparent)]
    Chain(ChainError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

impl From<ChainError> for DeviceAdminError {
    fn from(e: ChainError) -> Self {
        match e.refusal() {
            Some(Refusal::Devices(DevicesErrors::NotAllowedForPatient(_))) => Self::NotDelegated(e),
            _ => Self::Chain(e),
        }
    }
}

/// A device registered on chain; a named device's MQTT password, shown once.
#[derive(Debug)]
pub struct Added {
    pub tx: TxOutcome,
    pub mqtt_secret: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DeviceAdmin {
    pub client: GlycoClient,
    pub patient: Address,
    pub ids: DeviceIdKey,
    pub credentials_path: PathBuf,
}

impl DeviceAdmin {
    /// Registers `identity` to the patient; a named device also gets its
    /// MQTT secret (only its hash is stored).
    pub async fn add(
        &self,
        identity: &DeviceIdentity,
        kind: DeviceKind,
    ) -> Result<Added, DeviceAdminError> {
        let tx = self
            .client
            .add_device(self.patient, self.ids.id_of(identity), kind)
            .await?;
        let mqtt_secret = match identity {
            DeviceIdentity::Name(name) => {
                let mut file = CredentialsFile::load(&self.credentials_path)?;
                let secret = file.provision(name)?;
                file.save(&self.credentials_path)?;
                Some(secret)
            }
            DeviceIdentity::Ble(_) => None,
        };
        Ok(Added { tx, mqtt_secret })
    }

    /// Removes `identity` from the patient's registry, and its MQTT secret.
    pub async fn remove(&self, identity: &DeviceIdentity) -> Result<TxOutcome, DeviceAdminError> {
        let tx = self
            .client
            .remove_device(self.patient, self.ids.id_of(identity))
            .await?;
        if let DeviceIdentity::Name(name) = identity {
            let mut file = CredentialsFile::load(&self.credentials_path)?;
            if file.revoke(name) {
                file.save(&self.credentials_path)?;
            }
        }
        Ok(tx)
    }
}
