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
        let debug = match self {
            Self::Roles(e) => format!("{e:?}"),
            Self::Devices(e) => format!("{e:?}"),
            Self::Permissions(e) => format!("{e:?}"),
            Self::AccessLog(e) => format!("{e:?}"),
            Self::Anchors(e) => format!("{e:?}"),
            Self::Unknown(data) => return write!(f, "unknown revert data {data}"),
        };
        f.write_str(unwrap_variant(&debug))
    }
}

/// The generated error enums debug-print as `Name(Name { .. })`; show the
/// inner `Name { .. }` once.
fn unwrap_variant(debug: &str) -> &str {
    match debug.split_once('(') {
        Some((name, rest)) if rest.starts_with(name) && rest.ends_with(')') => {
            &rest[..rest.len() - 1]
        }
        _ => debug,
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

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::B256;

    #[test]
    fn a_refusal_displays_its_error_name_and_fields_once() {
        let refusal = Refusal::Devices(Devices::DevicesErrors::DuplicateDevice(
            Devices::DuplicateDevice {
                deviceId: B256::repeat_byte(1),
            },
        ));
        let text = refusal.to_string();
        assert!(
            text.starts_with("DuplicateDevice { deviceId: 0x0101"),
            "{text}"
        );
        assert_eq!(text.matches("DuplicateDevice").count(), 1, "{text}");
    }

    #[test]
    fn unknown_revert_data_is_decoded_as_unknown() {
        let data = Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(
            Contract::Roles.decode_refusal(data.clone()),
            Refusal::Unknown(data)
        );
    }
}
