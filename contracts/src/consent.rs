//! EIP-712 typed messages that carry one key's consent in another key's
//! transaction: a hub's consent to serve a patient, a patient key rotation
//! (signed by the new key and co-signed by the registering physician), and a
//! physician's access request (see [`crate::client`]'s `sign_access_request`).
//!
//! The domains match the contracts' (`Eip712.sol`): name, version "2", the
//! chain id and the verifying contract, so a signature is good for one
//! contract on one chain only.

use alloy::primitives::{Address, B256, Bytes};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolStruct, eip712_domain};
use serde::{Deserialize, Serialize};

use crate::model::UnixSeconds;

/// The typed structs exactly as the contracts hash them.
mod typed {
    alloy::sol! {
        struct HubConsent {
            address hub;
            address patient;
            uint64 nonce;
            uint64 deadline;
        }

        struct KeyRotation {
            address patient;
            address oldKey;
            address newKey;
            uint64 deadline;
        }
    }
}

/// Signing failed (the local signer cannot fail on a 32-byte hash in practice).
#[derive(Debug, thiserror::Error)]
#[error("signing typed data: {0}")]
pub struct SignError(#[from] alloy::signers::Error);

/// Roles' EIP-712 domain.
pub fn roles_domain(chain_id: u64, roles: Address) -> Eip712Domain {
    eip712_domain! {
        name: "Glyco Roles",
        version: "2",
        chain_id: chain_id,
        verifying_contract: roles,
    }
}

/// AccessLog's EIP-712 domain.
pub fn access_log_domain(chain_id: u64, access_log: Address) -> Eip712Domain {
    eip712_domain! {
        name: "Glyco AccessLog",
        version: "2",
        chain_id: chain_id,
        verifying_contract: access_log,
    }
}

pub(crate) fn sign_typed<T: SolStruct>(
    signer: &PrivateKeySigner,
    domain: &Eip712Domain,
    message: &T,
) -> Result<Bytes, SignError> {
    let hash = message.eip712_signing_hash(domain);
    let signature = signer.sign_hash_sync(&hash)?;
    Ok(Bytes::copy_from_slice(&signature.as_bytes()))
}

/// Who signed `message`, if the signature is well formed.
pub(crate) fn recover_typed<T: SolStruct>(
    domain: &Eip712Domain,
    message: &T,
    signature: &[u8],
) -> Option<Address> {
    let signature = alloy::primitives::Signature::try_from(signature).ok()?;
    signature
        .recover_address_from_prehash(&message.eip712_signing_hash(domain))
        .ok()
}

/// A hub's signed consent to serve `patient`, valid once (its nonce) until
/// `deadline`. The hub prints it; the patient submits it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHubConsent {
    pub hub: Address,
    pub patient: Address,
    pub nonce: u64,
    pub deadline: UnixSeconds,
    pub signature: Bytes,
}

impl SignedHubConsent {
    fn typed(&self) -> typed::HubConsent {
        typed::HubConsent {
            hub: self.hub,
            patient: self.patient,
            nonce: self.nonce,
            deadline: self.deadline.get(),
        }
    }

    /// True when the signature is the hub's, for this domain.
    pub fn is_signed_by_hub(&self, domain: &Eip712Domain) -> bool {
        recover_typed(domain, &self.typed(), &self.signature) == Some(self.hub)
    }
}

pub(crate) fn sign_hub_consent(
    hub: &PrivateKeySigner,
    domain: &Eip712Domain,
    patient: Address,
    nonce: u64,
    deadline: UnixSeconds,
) -> Result<SignedHubConsent, SignError> {
    let mut consent = SignedHubConsent {
        hub: hub.address(),
        patient,
        nonce,
        deadline,
        signature: Bytes::new(),
    };
    consent.signature = sign_typed(hub, domain, &consent.typed())?;
    Ok(consent)
}

/// A patient record moving from `old_key` to `new_key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotation {
    pub patient: Address,
    pub old_key: Address,
    pub new_key: Address,
    pub deadline: UnixSeconds,
}

impl KeyRotation {
    fn typed(&self) -> typed::KeyRotation {
        typed::KeyRotation {
            patient: self.patient,
            oldKey: self.old_key,
            newKey: self.new_key,
            deadline: self.deadline.get(),
        }
    }

    /// The EIP-712 struct hash the contract checks (for tests and tools).
    pub fn struct_hash(&self) -> B256 {
        self.typed().eip712_hash_struct()
    }
}

/// One signature over a [`KeyRotation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedKeyRotation {
    pub rotation: KeyRotation,
    pub signer: Address,
    pub signature: Bytes,
}

pub(crate) fn sign_key_rotation(
    signer: &PrivateKeySigner,
    domain: &Eip712Domain,
    rotation: &KeyRotation,
) -> Result<SignedKeyRotation, SignError> {
    Ok(SignedKeyRotation {
        rotation: *rotation,
        signer: signer.address(),
        signature: sign_typed(signer, domain, &rotation.typed())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{DEV_MNEMONIC, dev_account};

    #[test]
    fn a_hub_consent_verifies_for_its_domain_only() {
        let hub = dev_account(DEV_MNEMONIC, 6).unwrap();
        let roles = Address::repeat_byte(0x11);
        let domain = roles_domain(31337, roles);
        let deadline = UnixSeconds::new(1_900_000_000).unwrap();
        let consent =
            sign_hub_consent(&hub, &domain, Address::repeat_byte(5), 0, deadline).unwrap();
        assert!(consent.is_signed_by_hub(&domain));
        assert!(!consent.is_signed_by_hub(&roles_domain(7100217, roles)));
        assert!(!consent.is_signed_by_hub(&roles_domain(31337, Address::repeat_byte(0x12))));
        let mut tampered = consent.clone();
        tampered.patient = Address::repeat_byte(6);
        assert!(!tampered.is_signed_by_hub(&domain));
        // v is 27 or 28, as the contract expects.
        assert!(matches!(consent.signature[64], 27 | 28));
    }

    #[test]
    fn a_signed_consent_round_trips_through_json() {
        let hub = dev_account(DEV_MNEMONIC, 6).unwrap();
        let domain = roles_domain(31337, Address::repeat_byte(0x11));
        let deadline = UnixSeconds::new(1_900_000_000).unwrap();
        let consent =
            sign_hub_consent(&hub, &domain, Address::repeat_byte(5), 3, deadline).unwrap();
        let json = serde_json::to_string(&consent).unwrap();
        let back: SignedHubConsent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, consent);
        assert!(back.is_signed_by_hub(&domain));
    }
}
