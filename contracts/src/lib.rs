//! Glyco's on-chain registry: the contracts' typed bindings, a client that the
//! hub and the clinic tools share, deployment, and the anvil dev chain.
//!
//! The Solidity sources live in `contracts/sol/`; `contracts/tools/compile.mjs`
//! compiles them with the pinned solcjs into `contracts/artifacts/`, from
//! which `sol!` generates the bindings at build time.

pub mod bindings;
pub mod client;
pub mod consent;
pub mod deploy;
pub mod deployment;
pub mod device_id;
#[cfg(feature = "devnet")]
pub mod devnet;
pub mod error;
pub mod files;
#[cfg(feature = "devnet")]
pub mod gas;
pub mod keys;
pub mod model;
#[cfg(feature = "devnet")]
pub mod testkit;

pub use alloy::primitives::{Address, B256, U256};
pub use client::{
    AccessOutcome, AccessRequest, AnchorOutcome, GlycoClient, MAX_REQUEST_LIFETIME, RpcUrl,
    SignedAccessRequest, install_tls_provider, roots_digest,
};
pub use consent::{KeyRotation, SignedHubConsent, SignedKeyRotation};
pub use deployment::{ContractAddresses, Deployment};
pub use device_id::{DeviceId, DeviceIdKey, DeviceIdentity};
pub use error::{ChainError, Refusal};
pub use model::*;
