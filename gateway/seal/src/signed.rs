//! Messages signed with an Ethereum key over a domain and their CBOR: the
//! hub's kfrag messages, its alerts and polls, physicians' follows and
//! acknowledgements. One domain per kind of message, so a signature made
//! for one can never pass as another.

use alloy::primitives::{Address, B256, Signature, keccak256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use serde::{Deserialize, Serialize};

/// The domain a body's signature is made in.
pub trait Domain {
    const DOMAIN: &'static [u8];
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("encoding: {0}")]
    Encode(String),
    #[error("signing: {0}")]
    Sign(String),
    #[error("malformed signature: {0}")]
    Signature(String),
}

/// A body with an Ethereum signature over `keccak256(domain ‖ CBOR(body))`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed<T> {
    pub body: T,
    #[serde(with = "crate::batch::bytes")]
    pub signature: Vec<u8>,
}

fn digest_of<T: Serialize + Domain>(body: &T) -> Result<B256, SignError> {
    let mut message = T::DOMAIN.to_vec();
    ciborium::into_writer(body, &mut message).map_err(|e| SignError::Encode(e.to_string()))?;
    Ok(keccak256(&message))
}

impl<T: Serialize + Domain> Signed<T> {
    pub fn sign(body: T, key: &PrivateKeySigner) -> Result<Self, SignError> {
        let digest = digest_of(&body)?;
        let signature = key
            .sign_hash_sync(&digest)
            .map_err(|e| SignError::Sign(e.to_string()))?;
        Ok(Self {
            body,
            signature: signature.as_bytes().to_vec(),
        })
    }

    /// The address whose key signed the body.
    pub fn signer(&self) -> Result<Address, SignError> {
        let signature = Signature::try_from(self.signature.as_slice())
            .map_err(|e| SignError::Signature(e.to_string()))?;
        signature
            .recover_address_from_prehash(&digest_of(&self.body)?)
            .map_err(|e| SignError::Signature(e.to_string()))
    }

    /// keccak256 of the whole signed message's CBOR: what the hub anchors
    /// as evidence of it.
    pub fn evidence(&self) -> Result<B256, SignError> {
        let mut cbor = Vec::new();
        ciborium::into_writer(self, &mut cbor).map_err(|e| SignError::Encode(e.to_string()))?;
        Ok(keccak256(&cbor))
    }
}

/// umbral's types read their points back only from a human-readable format
/// (hex strings), while CBOR writes them as byte strings: they travel as
/// their JSON form inside a CBOR text string.
pub(crate) mod umbral_json {
    use serde::de::{DeserializeOwned, Error as _};
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(value).map_err(S::Error::custom)?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map_err(D::Error::custom)
    }
}
