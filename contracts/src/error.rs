//! Typed errors of chain calls: a contract's refusal decoded into its custom
//! Solidity error, kept apart from transport failures.

use alloy::primitives::{Address, B256, Bytes};
use alloy::sol_types::SolInterface;

use crate::bindings::{AccessLog, Anchors, Consortium, Devices, Permissions, Releases, Roles};

/// A contract's refusal, decoded from the revert data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Roles(Roles::RolesErrors),
    Devices(Devices::DevicesErrors),
    Permissions(Permissions::PermissionsErrors),
    AccessLog(AccessLog::AccessLogErrors),
    Anchors(Anchors::AnchorsErrors),
    Consortium(Consortium::ConsortiumErrors),
    Releases(Releases::ReleasesErrors),
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
            Self::Consortium(e) => format!("{e:?}"),
            Self::Releases(e) => format!("{e:?}"),
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

/// Which contract a call went to; its errors are tried first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    Roles,
    Devices,
    Permissions,
    AccessLog,
    Anchors,
    Consortium,
    Releases,
}

impl Contract {
    const ALL: [Self; 7] = [
        Self::Roles,
        Self::Devices,
        Self::Permissions,
        Self::AccessLog,
        Self::Anchors,
        Self::Consortium,
        Self::Releases,
    ];

    fn decode_own(self, data: &[u8]) -> Option<Refusal> {
        fn decode<E: SolInterface>(data: &[u8]) -> Option<E> {
            E::abi_decode(data).ok()
        }
        match self {
            Self::Roles => decode(data).map(Refusal::Roles),
            Self::Devices => decode(data).map(Refusal::Devices),
            Self::Permissions => decode(data).map(Refusal::Permissions),
            Self::AccessLog => decode(data).map(Refusal::AccessLog),
            Self::Anchors => decode(data).map(Refusal::Anchors),
            Self::Consortium => decode(data).map(Refusal::Consortium),
            Self::Releases => decode(data).map(Refusal::Releases),
        }
    }

    /// Decodes with the called contract's errors first, then with the others'
    /// (a contract bubbles up the errors of the contracts it calls: a proxy's
    /// `recordAccess` refused by Permissions, a consortium proposal refused by
    /// Roles).
    pub(crate) fn decode_refusal(self, data: Bytes) -> Refusal {
        std::iter::once(self)
            .chain(Self::ALL)
            .find_map(|contract| contract.decode_own(&data))
            .unwrap_or(Refusal::Unknown(data))
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
    /// No receipt in time; the transaction may still land. Wait for `hash`
    /// ([`crate::GlycoClient::receipt_of`]) rather than sending again.
    #[error("{call}: no receipt yet for transaction {hash}: {source}")]
    Pending {
        call: &'static str,
        hash: B256,
        #[source]
        source: Box<alloy::providers::PendingTransactionError>,
    },
    /// The node could not be reached or answered with an error that is not a
    /// contract refusal.
    #[error("{call}: chain RPC failed: {source}")]
    Rpc {
        call: &'static str,
        #[source]
        source: Box<alloy::contract::Error>,
    },
    /// A log from our own contract that does not decode: the follower stops
    /// rather than skip a change.
    #[error("{call}: a log in block {block} does not decode")]
    UndecodableLog { call: &'static str, block: u64 },
    /// The receipt lacks the event the call always emits.
    #[error("{call}: the receipt has no {event} event")]
    MissingEvent {
        call: &'static str,
        event: &'static str,
    },
    #[error("{call} needs a signing key; this client only reads")]
    ReadOnly { call: &'static str },
    #[error("{call}: the system's random number generator failed")]
    Randomness { call: &'static str },
    #[error("{call}: the deployment has no consortium contract")]
    NoConsortium { call: &'static str },
    #[error("{call}: the deployment has no releases contract")]
    NoReleases { call: &'static str },
    #[error("{call}: {source}")]
    Sign {
        call: &'static str,
        #[source]
        source: crate::consent::SignError,
    },
    /// The root is anchored for this patient with another window, count or
    /// kinds: never treated as done.
    #[error("root {root} is anchored for patient {patient} with other contents")]
    AnchorConflict { patient: Address, root: B256 },
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
            None => Self::Rpc {
                call,
                source: Box::new(source),
            },
        }
    }

    pub(crate) fn rpc(call: &'static str, source: impl Into<alloy::contract::Error>) -> Self {
        Self::Rpc {
            call,
            source: Box::new(source.into()),
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
    use alloy::sol_types::SolError;

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

    #[test]
    fn a_bubbled_up_error_decodes_as_the_contract_that_raised_it() {
        // AccessLog.recordAccess bubbles up Permissions.check's refusal.
        let error = Permissions::NoLiveGrant {
            patient: Address::repeat_byte(1),
            grantee: Address::repeat_byte(2),
        };
        let data = Bytes::from(error.abi_encode());
        assert!(matches!(
            Contract::AccessLog.decode_refusal(data),
            Refusal::Permissions(Permissions::PermissionsErrors::NoLiveGrant(_))
        ));
        // An error both declare decodes as the called contract's own.
        let data = Bytes::from(
            Roles::NotActiveProxy {
                account: Address::ZERO,
            }
            .abi_encode(),
        );
        assert!(matches!(
            Contract::AccessLog.decode_refusal(data),
            Refusal::AccessLog(AccessLog::AccessLogErrors::NotActiveProxy(_))
        ));
    }
}
