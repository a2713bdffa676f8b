//! The deployment file: where the contracts live on a chain. `glyco-chain
//! deploy` writes it; the hub and the clinic tools read it.

use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    pub chain_id: u64,
    /// Block of the first deployment transaction: event scans start here.
    pub deployed_at_block: u64,
    pub deployer: Address,
    pub contracts: ContractAddresses,
    /// Fingerprint of the consortium's device-id key
    /// ([`crate::DeviceIdKey::fingerprint`]): a hub checks its key against it.
    pub device_id_key_fingerprint: B256,
    /// How the chain prices gas.
    #[serde(default)]
    pub fees: crate::model::FeePolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractAddresses {
    pub roles: Address,
    pub devices: Address,
    pub permissions: Address,
    pub access_log: Address,
    pub anchors: Address,
    /// The M-of-N governance contract, once deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consortium: Option<Address>,
    /// The hub releases the consortium vouches for (deployments before it
    /// have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub releases: Option<Address>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeploymentFileError {
    #[error("cannot read deployment file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("deployment file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write deployment file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Deployment {
    pub fn load(path: &Path) -> Result<Self, DeploymentFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| DeploymentFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| DeploymentFileError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes atomically (temporary file, fsync, rename), so a reader never
    /// sees half a file.
    pub fn save(&self, path: &Path) -> Result<(), DeploymentFileError> {
        let write_err = |source| DeploymentFileError::Write {
            path: path.to_owned(),
            source,
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).map_err(write_err)?;
        let mut text = serde_json::to_string_pretty(self).expect("deployment serialises");
        text.push('\n');
        crate::files::write_atomically(path, text.as_bytes()).map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/deployment.json");
        let deployment = Deployment {
            chain_id: 1337,
            deployed_at_block: 4,
            deployer: Address::repeat_byte(1),
            contracts: ContractAddresses {
                roles: Address::repeat_byte(2),
                devices: Address::repeat_byte(3),
                permissions: Address::repeat_byte(4),
                access_log: Address::repeat_byte(5),
                anchors: Address::repeat_byte(6),
                consortium: Some(Address::repeat_byte(7)),
                releases: Some(Address::repeat_byte(9)),
            },
            device_id_key_fingerprint: B256::repeat_byte(8),
            fees: crate::model::FeePolicy::Free,
        };
        deployment.save(&path).unwrap();
        assert_eq!(Deployment::load(&path).unwrap(), deployment);
    }

    #[test]
    fn a_broken_file_gives_a_parse_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deployment.json");
        std::fs::write(&path, "{\"chain_id\": 1}").unwrap();
        let err = Deployment::load(&path).unwrap_err();
        assert!(matches!(err, DeploymentFileError::Parse { .. }));
        assert!(err.to_string().contains("deployment.json"));
    }
}
