//! The offline emergency kit (the 2018 paper's emergency data): the data the
//! patient pre-selected (a profile and the latest readings), encrypted under
//! a key of its own, kept at the clinic replica; the key split among family
//! members with Feldman verifiable secret sharing (vsss-rs) over secp256k1,
//! `t` of `n`.
//!
//! - `t` shares rebuild the key; fewer reveal nothing about it (Shamir's
//!   polynomial of degree t−1 is consistent with every secret).
//! - Each share is checked against the kit's Feldman commitments before it is
//!   used, so a wrong or altered share is named, not silently combined.
//! - Splitting again (a family change) makes a new key and a new generation:
//!   old shares fail against the new kit's commitments and say so.
//!
//! The kit is signed by the hub's Ethereum key like a batch.

use alloy::primitives::{Address, B256, Signature, keccak256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use k256::elliptic_curve::group::GroupEncoding;
use k256::elliptic_curve::{Field, PrimeField};
use k256::{ProjectivePoint, Scalar};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use vsss_rs::{
    DefaultShare, FeldmanVerifierSet, IdentifierPrimeField, ReadableShareSet, Share,
    ShareVerifierGroup, feldman,
};

use crate::body::FindingRecord;
use crate::reading::Reading;

pub const FORMAT: &str = "glyco-emergency-kit";
pub const VERSION: u16 = 1;
/// The largest kit decoded (it comes from a replica, untrusted).
pub const MAX_KIT_BYTES: usize = 8 * 1024 * 1024;
/// The most family members a kit is split among.
pub const MAX_SHARES: u8 = 16;
/// The text form of a share starts with this.
pub const SHARE_PREFIX: &str = "GLYCO-SHARE-1";
const SIGNING_DOMAIN: &[u8] = b"glyco-emergency-kit/1\0";
const KEY_CONTEXT: &str = "glyco emergency kit key v1";

type KitShare = DefaultShare<IdentifierPrimeField<Scalar>, IdentifierPrimeField<Scalar>>;
type KitVerifier = ShareVerifierGroup<ProjectivePoint>;

#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error("{threshold} of {shares} family members is not possible (2 ≤ t ≤ n ≤ {MAX_SHARES})")]
    Threshold { threshold: u8, shares: u8 },
    #[error("splitting the key: {0}")]
    Split(String),
    #[error("encoding: {0}")]
    Encode(String),
    #[error("not an emergency kit: {0}")]
    Decode(String),
    #[error("kit of {0} bytes exceeds the {MAX_KIT_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("the hub's signature on the kit: {0}")]
    Signature(String),
    #[error("not a share: {0}")]
    ShareText(String),
    #[error("share {index} is for patient {share_patient}, the kit for {kit_patient}")]
    OtherPatient {
        index: u8,
        share_patient: Address,
        kit_patient: Address,
    },
    #[error(
        "share {index} belongs to generation {share_generation}; the kit was split again (generation {kit_generation}): old shares no longer open it"
    )]
    OtherGeneration {
        index: u8,
        share_generation: u64,
        kit_generation: u64,
    },
    #[error("share {index} is wrong: it does not match the kit's commitments")]
    WrongShare { index: u8 },
    #[error("{got} distinct valid shares, {need} needed")]
    TooFewShares { got: usize, need: usize },
    #[error("the rebuilt key does not open the kit (altered ciphertext)")]
    Open,
}

/// What the patient pre-selected for an emergency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmergencyData {
    /// Free text the patient wrote: diagnosis, insulin regimen, allergies,
    /// whom to call.
    pub profile: String,
    /// The readings of the lookback window, oldest first, and the on-hub
    /// findings of that window.
    pub readings: Vec<Reading>,
    pub findings: Vec<FindingRecord>,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// The clear part of a kit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KitHeader {
    pub patient: Address,
    pub hub: Address,
    /// Bumped on every split: shares carry it.
    pub generation: u64,
    pub created_at_ms: i64,
    pub threshold: u8,
    pub shares: u8,
    /// Feldman commitments, compressed points: the generator, then one per
    /// coefficient of the sharing polynomial.
    pub commitments: Vec<crate::batch::ByteString>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmergencyKit {
    pub format: String,
    pub version: u16,
    pub header: KitHeader,
    #[serde(with = "crate::batch::bytes")]
    pub nonce: Vec<u8>,
    #[serde(with = "crate::batch::bytes")]
    pub ciphertext: Vec<u8>,
    #[serde(with = "crate::batch::bytes")]
    pub signature: Vec<u8>,
}

/// One family member's share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyShare {
    pub patient: Address,
    pub generation: u64,
    pub threshold: u8,
    pub index: u8,
    value: [u8; 32],
}

/// A kit and the shares to hand out.
pub struct Split {
    pub kit: EmergencyKit,
    pub shares: Vec<FamilyShare>,
}

impl EmergencyKit {
    /// Encrypts `data` under a fresh key and splits the key `threshold` of
    /// `shares` ways.
    pub fn create(
        data: &EmergencyData,
        patient: Address,
        generation: u64,
        created_at_ms: i64,
        threshold: u8,
        shares: u8,
        hub: &PrivateKeySigner,
    ) -> Result<Split, KitError> {
        if threshold < 2 || threshold > shares || shares > MAX_SHARES {
            return Err(KitError::Threshold { threshold, shares });
        }
        let secret = IdentifierPrimeField(Scalar::random(&mut OsRng));
        let (family, verifiers) = feldman::split_secret::<KitShare, KitVerifier>(
            threshold.into(),
            shares.into(),
            &secret,
            None,
            OsRng,
        )
        .map_err(|e| KitError::Split(e.to_string()))?;
        let header = KitHeader {
            patient,
            hub: hub.address(),
            generation,
            created_at_ms,
            threshold,
            shares,
            commitments: verifiers
                .iter()
                .map(|v| crate::batch::ByteString(v.0.to_bytes().to_vec()))
                .collect(),
        };
        let mut plaintext = Vec::new();
        ciborium::into_writer(data, &mut plaintext).map_err(|e| KitError::Encode(e.to_string()))?;
        let mut nonce = [0u8; 24];
        OsRng.fill_bytes(&mut nonce);
        let aad = header_bytes(&header)?;
        let ciphertext = cipher(&secret.0)
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &plaintext,
                    aad: &aad,
                },
            )
            .map_err(|e| KitError::Encode(e.to_string()))?;
        let mut kit = Self {
            format: FORMAT.to_owned(),
            version: VERSION,
            header,
            nonce: nonce.to_vec(),
            ciphertext,
            signature: Vec::new(),
        };
        let signature = hub
            .sign_hash_sync(&kit.signing_digest()?)
            .map_err(|e| KitError::Signature(e.to_string()))?;
        kit.signature = signature.as_bytes().to_vec();
        let shares = family
            .iter()
            .map(|s| FamilyShare {
                patient,
                generation,
                threshold,
                index: share_index(s),
                value: s.value().0.to_repr().into(),
            })
            .collect();
        Ok(Split { kit, shares })
    }

    fn signing_digest(&self) -> Result<B256, KitError> {
        let mut message = SIGNING_DOMAIN.to_vec();
        message.extend_from_slice(&header_bytes(&self.header)?);
        message.extend_from_slice(&self.nonce);
        message.extend_from_slice(&self.ciphertext);
        Ok(keccak256(&message))
    }

    /// The address whose key signed the kit (the verifier checks on chain
    /// that it is the patient's hub).
    pub fn signer(&self) -> Result<Address, KitError> {
        let signature = Signature::try_from(self.signature.as_slice())
            .map_err(|e| KitError::Signature(e.to_string()))?;
        signature
            .recover_address_from_prehash(&self.signing_digest()?)
            .map_err(|e| KitError::Signature(e.to_string()))
    }

    /// Checks each share, rebuilds the key from `threshold` of them and
    /// opens the kit.
    pub fn open(&self, shares: &[FamilyShare]) -> Result<EmergencyData, KitError> {
        let verifiers = self.verifiers()?;
        let mut valid: Vec<KitShare> = Vec::new();
        for share in shares {
            if share.patient != self.header.patient {
                return Err(KitError::OtherPatient {
                    index: share.index,
                    share_patient: share.patient,
                    kit_patient: self.header.patient,
                });
            }
            if share.generation != self.header.generation {
                return Err(KitError::OtherGeneration {
                    index: share.index,
                    share_generation: share.generation,
                    kit_generation: self.header.generation,
                });
            }
            let candidate = share.to_vsss()?;
            if verifiers.verify_share(&candidate).is_err() {
                return Err(KitError::WrongShare { index: share.index });
            }
            if !valid.iter().any(|v| share_index(v) == share.index) {
                valid.push(candidate);
            }
        }
        let need = usize::from(self.header.threshold);
        if valid.len() < need {
            return Err(KitError::TooFewShares {
                got: valid.len(),
                need,
            });
        }
        let secret = valid[..need]
            .to_vec()
            .combine()
            .map_err(|e| KitError::Split(e.to_string()))?;
        self.decrypt_with(&secret.0)
    }

    /// Opens the kit with a candidate key scalar (what a combination of
    /// too few shares would give: a test shows it fails).
    pub fn decrypt_with(&self, secret: &Scalar) -> Result<EmergencyData, KitError> {
        let aad = header_bytes(&self.header)?;
        let nonce: [u8; 24] = self
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| KitError::Decode("nonce is not 24 bytes".into()))?;
        let plaintext = cipher(secret)
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &self.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| KitError::Open)?;
        ciborium::from_reader(plaintext.as_slice()).map_err(|e| KitError::Decode(e.to_string()))
    }

    fn verifiers(&self) -> Result<Vec<KitVerifier>, KitError> {
        let need = usize::from(self.header.threshold) + 1;
        if self.header.commitments.len() != need {
            return Err(KitError::Decode(format!(
                "{} commitments for threshold {}",
                self.header.commitments.len(),
                self.header.threshold
            )));
        }
        self.header
            .commitments
            .iter()
            .map(|c| {
                let bytes: [u8; 33] =
                    c.0.as_slice()
                        .try_into()
                        .map_err(|_| KitError::Decode("commitment is not 33 bytes".into()))?;
                Option::<ProjectivePoint>::from(ProjectivePoint::from_bytes(&bytes.into()))
                    .map(vsss_rs::ValueGroup)
                    .ok_or_else(|| KitError::Decode("commitment is not a curve point".into()))
            })
            .collect()
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, KitError> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).map_err(|e| KitError::Encode(e.to_string()))?;
        Ok(out)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KitError> {
        if bytes.len() > MAX_KIT_BYTES {
            return Err(KitError::TooLarge(bytes.len()));
        }
        let kit: Self =
            ciborium::from_reader(bytes).map_err(|e| KitError::Decode(e.to_string()))?;
        if kit.format != FORMAT || kit.version != VERSION {
            return Err(KitError::Decode(format!(
                "format {:?} version {}",
                kit.format.chars().take(40).collect::<String>(),
                kit.version
            )));
        }
        Ok(kit)
    }
}

fn header_bytes(header: &KitHeader) -> Result<Vec<u8>, KitError> {
    let mut out = Vec::new();
    ciborium::into_writer(header, &mut out).map_err(|e| KitError::Encode(e.to_string()))?;
    Ok(out)
}

fn cipher(secret: &Scalar) -> XChaCha20Poly1305 {
    let repr: [u8; 32] = secret.to_repr().into();
    let key = blake3::derive_key(KEY_CONTEXT, &repr);
    XChaCha20Poly1305::new((&key).into())
}

fn share_index(share: &KitShare) -> u8 {
    let repr = share.identifier().0.to_repr();
    repr[31]
}

impl FamilyShare {
    fn to_vsss(&self) -> Result<KitShare, KitError> {
        let value = Option::<Scalar>::from(Scalar::from_repr(self.value.into()))
            .ok_or_else(|| KitError::ShareText("value is not a scalar".into()))?;
        Ok(KitShare::with_identifier_and_value(
            IdentifierPrimeField(Scalar::from(u64::from(self.index))),
            IdentifierPrimeField(value),
        ))
    }

    /// The text a family member keeps (and its QR code carries):
    /// `GLYCO-SHARE-1:<patient>:<generation>:<t>:<index>:<value>:<check>`,
    /// where the check is 4 bytes of BLAKE3 over the rest (a typo is caught
    /// before the share is tried).
    pub fn to_text(&self) -> String {
        let body = format!(
            "{SHARE_PREFIX}:{:#x}:{}:{}:{}:{}",
            self.patient,
            self.generation,
            self.threshold,
            self.index,
            crate::hexcode::hex(&self.value)
        );
        let check = &blake3::hash(body.as_bytes()).to_hex()[..8];
        format!("{body}:{check}")
    }

    pub fn from_text(text: &str) -> Result<Self, KitError> {
        let text = text.trim();
        let bad = |why: &str| KitError::ShareText(why.to_owned());
        let (body, check) = text.rsplit_once(':').ok_or_else(|| bad("no check"))?;
        if blake3::hash(body.as_bytes()).to_hex()[..8] != *check {
            return Err(bad("the check digits do not match (a typo?)"));
        }
        let parts: Vec<&str> = body.split(':').collect();
        let [prefix, patient, generation, threshold, index, value] = parts[..] else {
            return Err(bad("expected 7 fields"));
        };
        if prefix != SHARE_PREFIX {
            return Err(bad("not a Glyco share"));
        }
        let value =
            crate::hexcode::unhex32(value).ok_or_else(|| bad("value is not 32 hex bytes"))?;
        let index: u8 = index.parse().map_err(|_| bad("index"))?;
        if index == 0 {
            return Err(bad("index 0"));
        }
        Ok(Self {
            patient: patient.parse().map_err(|_| bad("patient address"))?,
            generation: generation.parse().map_err(|_| bad("generation"))?,
            threshold: threshold.parse().map_err(|_| bad("threshold"))?,
            index,
            value,
        })
    }
}

impl std::fmt::Display for FamilyShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The value is secret: only where it is.
        write!(
            f,
            "share {} of patient {} (generation {}, {} needed)",
            self.index, self.patient, self.generation, self.threshold
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> EmergencyData {
        EmergencyData {
            profile: "Type 1 since 2009; basal 18 U glargine; allergic to penicillin".into(),
            readings: Vec::new(),
            findings: Vec::new(),
            from_ms: 0,
            to_ms: 1,
        }
    }

    fn split(t: u8, n: u8, generation: u64) -> Split {
        let hub = PrivateKeySigner::random();
        EmergencyKit::create(&data(), Address::repeat_byte(7), generation, 5, t, n, &hub).unwrap()
    }

    #[test]
    fn any_t_shares_open_the_kit_and_the_text_form_round_trips() {
        let Split { kit, shares } = split(2, 3, 1);
        let kit = EmergencyKit::from_bytes(&kit.to_bytes().unwrap()).unwrap();
        assert_eq!(kit.signer().unwrap(), kit.header.hub);
        let texts: Vec<String> = shares.iter().map(FamilyShare::to_text).collect();
        let parsed: Vec<FamilyShare> = texts
            .iter()
            .map(|t| FamilyShare::from_text(t).unwrap())
            .collect();
        assert_eq!(parsed, shares);
        for pair in [[0, 1], [1, 2], [0, 2]] {
            let chosen = [parsed[pair[0]].clone(), parsed[pair[1]].clone()];
            assert_eq!(kit.open(&chosen).unwrap(), data());
        }
    }

    #[test]
    fn fewer_than_t_shares_reveal_nothing() {
        let Split { kit, shares } = split(3, 5, 1);
        // The same share twice counts once.
        assert!(matches!(
            kit.open(&[shares[0].clone(), shares[1].clone(), shares[1].clone()]),
            Err(KitError::TooFewShares { got: 2, need: 3 })
        ));
        // Interpolating two shares of a degree-2 polynomial gives a key that
        // opens nothing, and any secret at all fits two shares: for every
        // candidate s there is a polynomial through (0, s) and both shares.
        let two = vec![shares[0].to_vsss().unwrap(), shares[1].to_vsss().unwrap()];
        let guess = two.combine().unwrap();
        assert!(matches!(kit.decrypt_with(&guess.0), Err(KitError::Open)));
    }

    #[test]
    fn a_wrong_share_is_named_and_an_old_generation_is_refused() {
        let Split { kit, shares } = split(2, 3, 4);
        let mut wrong = shares[1].clone();
        wrong.value[31] ^= 1;
        assert!(matches!(
            kit.open(&[shares[0].clone(), wrong]),
            Err(KitError::WrongShare { index: 2 })
        ));
        // Split again: old shares fail, with the reason.
        let Split { kit: again, .. } = split(2, 3, 5);
        let mut old = shares.clone();
        for share in &mut old {
            share.patient = again.header.patient;
        }
        assert!(matches!(
            again.open(&old),
            Err(KitError::OtherGeneration {
                share_generation: 4,
                kit_generation: 5,
                ..
            })
        ));
        // A share of the same generation number but of the other split fails
        // its commitments.
        let Split { kit: rival, .. } = split(2, 3, 4);
        assert!(matches!(
            rival.open(&shares),
            Err(KitError::WrongShare { .. })
        ));
    }

    #[test]
    fn a_typo_in_a_share_is_caught_by_its_check() {
        let Split { shares, .. } = split(2, 2, 1);
        let text = shares[0].to_text();
        let typo = text.replacen(':', ";", 1);
        assert!(FamilyShare::from_text(&typo).is_err());
        let mut chars: Vec<char> = text.chars().collect();
        let at = text.len() - 12;
        chars[at] = if chars[at] == 'a' { 'b' } else { 'a' };
        let flipped: String = chars.into_iter().collect();
        assert!(matches!(
            FamilyShare::from_text(&flipped),
            Err(KitError::ShareText(_))
        ));
        assert!(matches!(
            EmergencyKit::create(
                &data(),
                Address::ZERO,
                1,
                0,
                1,
                3,
                &PrivateKeySigner::random()
            ),
            Err(KitError::Threshold { .. })
        ));
    }
}
