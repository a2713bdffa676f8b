//! Typed errors of chain calls: a contract's refusal decoded into its custom
//! Solidity error, kept apart from transport failures.

use alloy::primitives::{B256, Bytes};
use alloy::sol_types::SolInterface;

use crate::bindings::{AccessLog, Anchors, Devices, Permissions, Roles};

/// A contract's refusal, decoded from the revert data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Roles(Roles::RolesErrors),
    Devices(Devices::DevicesErrors),
    Permissions(Permissions::PermissionsErrors),
    AccessLog(AccessLog::AccessLogErrors),
    Anchors(Anchors::AnchorsErrors),
    /// Revert data no contract of ours declares (for example a panic).
    Unknown(Bytes),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Roles(e) => write!(f, "{e:?}"),
            Self::Devices(e) => write!(f, "{e:?}"),
            Self::Permissions(e) => write!(f, "{e:?}"),
            Self::AccessLog(e) => write!(f, "{e:?}"),
            Self::Anchors(e) => write!(f, "{e:?}"),
            Self::Unknown(data) => write!(f, "unknown revert data {data}"),
        }
    }
}

/// Which contract a call went to; picks the error ABI to decode with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    Roles,
    Devices,
    Permissions,
    AccessLog,
    Anchors,
}

impl Contract {
    pub(crate) fn decode_refusal(self, data: Bytes) -> Refusal {
        fn decode<E: SolInterface>(data: &[u8]) -> Option<E> {
            E::abi_decode(data).ok()
        }
        let decoded = match self {
            Self::Roles => decode(&data).map(Refusal::Roles),
            Self::Devices => decode(&data).map(Refusal::Devices),
            Self::Permissions => decode(&data).map(Refusal::Permissions),
            Self::AccessLog => decode(&data).map(Refusal::AccessLog),
            Self::Anchors => decode(&data).map(Refusal::Anchors),
        };
        decoded.unwrap_or(Refusal::Unknown(data))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The contract refused the call (seen when estimating or simulating it).
    #[error("{call} refused: {refusal}")]
    Refused {
        call: &'static str,
        refusal: Refusal,
    },
    /// The transaction was mined but reverted (state changed between the
    /// estimate and inclusion).
    #[error("{call}: transaction {hash} reverted on chain")]
    RevertedOnChain { call: &'static str, hash: B256 },
    /// Waiting for the receipt timed out or the node dropped the transaction.
    #[error("{call}: no receipt for the transaction: {source}")]
    Pending {
        call: &'static str,
        #[source]
        source: alloy::providers::PendingTransactionError,
    },
    /// The node could not be reached or answered with an error that is not a
    /// contract refusal.
    #[error("{call}: chain RPC failed: {source}")]
    Rpc {
        call: &'static str,
        #[source]
        source: alloy::contract::Error,
    },
}

impl ChainError {
    pub(crate) fn from_contract(
        call: &'static str,
        contract: Contract,
        source: alloy::contract::Error,
    ) -> Self {
        match source.as_revert_data() {
            Some(data) => Self::Refused {
                call,
                refusal: contract.decode_refusal(data),
            },
            None => Self::Rpc { call, source },
        }
    }

    /// The decoded refusal, if the contract refused.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Self::Refused { refusal, .. } => Some(refusal),
            _ => None,
        }
    }
}
