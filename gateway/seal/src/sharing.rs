//! Sharing a patient's batches with a physician through re-encryption
//! proxies (the 2020 paper's Algorithm 3; docs/CLINIC.md).
//!
//! Two protocols over iroh, each one CBOR message per bidirectional stream
//! and one CBOR answer:
//! - [`KFRAG_ALPN`], hub → proxy: [`HubMessage::Deliver`] hands a proxy its
//!   share of a grant's kfrags, [`HubMessage::Drop`] takes it back. Both are
//!   signed with the hub's Ethereum key; the proxy checks on chain that the
//!   hub serves the patient and that the grant exists with that policy.
//! - [`REENCRYPT_ALPN`], physician → proxy: a [`ReencryptRequest`] carries
//!   the physician's EIP-712 access request for a set of anchored roots
//!   (its `data_id` is their digest) and the batches under them (blob and
//!   inclusion proof each); the proxy answers with one capsule fragment per
//!   batch after the access is logged on chain in one transaction, or with
//!   a typed [`ProxyRefusal`].
//!
//! The crypto steps each party runs live here too, so the hub, the proxy
//! and the physician share one definition of them.

use alloy::primitives::{Address, B256};
use glyco_contracts::SignedAccessRequest;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};
use umbral_pre::{Capsule, CapsuleFrag, KeyFrag, PublicKey, VerifiedCapsuleFrag, VerifiedKeyFrag};

use crate::keys::{PatientKey, PhysicianKey, public_key_from_bytes};
use crate::signed::{Domain, SignError, Signed, umbral_json};
use crate::{InclusionProof, SealedBatch};

/// ALPN of kfrag delivery (hub → proxy).
pub const KFRAG_ALPN: &[u8] = b"glyco/kfrags/1";
/// ALPN of re-encryption requests (physician → proxy).
pub const REENCRYPT_ALPN: &[u8] = b"glyco/reencrypt/1";
/// The largest message read on either protocol (both peers are untrusted).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// The most anchored roots one request (one on-chain access) may cover:
/// the contract's `MAX_ROOTS_PER_ACCESS`.
pub const MAX_ROOTS_PER_REQUEST: usize = 2048;
/// The most batches one re-encryption request may carry.
pub const MAX_BATCHES_PER_REQUEST: usize = 4096;
/// The most proxies one grant's kfrags are split over.
pub const MAX_PROXIES: usize = 16;
/// Domain of the hub's signatures on kfrag messages.
const HUB_SIGNING_DOMAIN: &[u8] = b"glyco-kfrags/1\0";

/// One proxy's share of the kfrags of one grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KfragDelivery {
    pub patient: Address,
    pub hub: Address,
    /// The grantee (physician) and their grant on chain.
    pub grantee: Address,
    pub grant_id: u64,
    pub policy_id: B256,
    /// The proxy this share is for (another proxy refuses it).
    pub proxy: Address,
    /// M of N: any `threshold` of the `shares` proxies re-encrypt enough.
    pub threshold: u8,
    pub shares: u8,
    /// The public key of the patient's kfrag signer (33 bytes).
    #[serde(with = "crate::batch::bytes")]
    pub verifying_key: Vec<u8>,
    #[serde(with = "umbral_json")]
    pub kfrag: KeyFrag,
}

/// The hub takes a grant's kfrags back from a proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KfragDrop {
    pub patient: Address,
    pub hub: Address,
    pub grant_id: u64,
    pub proxy: Address,
}

/// A kfrag message with the hub's Ethereum signature (domain
/// `glyco-kfrags/1`).
pub type HubSigned<T> = Signed<T>;

impl Domain for KfragDelivery {
    const DOMAIN: &'static [u8] = HUB_SIGNING_DOMAIN;
}

impl Domain for KfragDrop {
    const DOMAIN: &'static [u8] = HUB_SIGNING_DOMAIN;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "message", rename_all = "snake_case")]
pub enum HubMessage {
    Deliver(Box<HubSigned<KfragDelivery>>),
    Drop(HubSigned<KfragDrop>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum KfragAnswer {
    /// The proxy verified and keeps the share.
    Kept,
    /// The proxy dropped the share (or never had it).
    Dropped {
        had_it: bool,
    },
    Refused {
        reason: ProxyRefusal,
    },
}

/// A physician's request: one access to a set of anchored roots
/// (`access.request.data_id` is `roots_digest(roots)`) and the batches under
/// them to re-encrypt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReencryptRequest {
    pub access: SignedAccessRequest,
    pub roots: Vec<B256>,
    pub batches: Vec<BatchClaim>,
}

/// A batch's blob and the proof that it is under one of the request's roots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchClaim {
    #[serde(with = "crate::batch::bytes")]
    pub blob: Vec<u8>,
    pub proof: InclusionProof,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum ReencryptAnswer {
    Reencrypted(Reencrypted),
    Refused { reason: ProxyRefusal },
}

/// The proxy's work: one capsule fragment per batch, in request order,
/// after the access was logged on chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reencrypted {
    pub grant_id: u64,
    /// The access's position in the patient's on-chain log, and where.
    pub access_seq: u64,
    pub block: u64,
    pub tx: Option<B256>,
    /// The patient's kfrag signer (to verify the fragments against).
    #[serde(with = "crate::batch::bytes")]
    pub verifying_key: Vec<u8>,
    #[serde(with = "umbral_json")]
    pub cfrags: Vec<CapsuleFrag>,
}

/// Why a proxy refused, typed so the caller can tell a closed door from a
/// broken request (and tests can tell which check stopped it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "refusal", rename_all = "snake_case")]
pub enum ProxyRefusal {
    #[error("malformed message: {detail}")]
    Malformed { detail: String },
    #[error("message of {bytes} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge { bytes: u64 },
    #[error(
        "{count} batches or roots in one request (at most {MAX_BATCHES_PER_REQUEST} and {MAX_ROOTS_PER_REQUEST})"
    )]
    TooManyBatches { count: u64 },
    #[error("the signed request is not for these roots")]
    RootsMismatch,
    #[error("addressed to proxy {named}, not this one")]
    WrongProxy { named: Address },
    #[error("the signature is malformed")]
    BadSignature,
    #[error("signed by {actual}, not by {expected}")]
    WrongSigner { expected: Address, actual: Address },
    #[error("the request expired at {deadline} (or is dated too far ahead)")]
    RequestExpired { deadline: u64 },
    #[error("nonce already used: a replayed request")]
    NonceUsed,
    #[error("hub {hub} does not serve patient {patient} on chain")]
    NotPatientsHub { hub: Address, patient: Address },
    #[error("grant {grant_id} on chain is not this patient's grant to {grantee} under this policy")]
    GrantMismatch { grant_id: u64, grantee: Address },
    #[error("no live grant: revoked, expired, or the physician's enrolment ended")]
    NoLiveGrant,
    #[error("the grant does not cover this data (kinds or time window)")]
    OutOfScope,
    #[error("this proxy holds no kfrag for the patient's grant to this physician")]
    NoKfrag,
    #[error("the kfrag does not verify: {detail}")]
    KfragInvalid { detail: String },
    #[error("no umbral public key on chain for {account}")]
    NoPreKey { account: Address },
    #[error("root {root} is not anchored on chain for the patient")]
    NotAnchored { root: B256 },
    #[error("batch {index}: {detail}")]
    BadBatch { index: u64, detail: String },
    #[error("the chain cannot be asked now: {detail}")]
    ChainUnavailable { detail: String },
    #[error("the chain refused the access: {detail}")]
    ChainRefused { detail: String },
    #[error("the proxy is busy; try again")]
    Busy,
    #[error("the proxy keeps kfrags for {limit} grants, its limit")]
    Full { limit: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum SharingError {
    #[error("encoding: {0}")]
    Encode(String),
    #[error("signing: {0}")]
    Sign(String),
    #[error("malformed signature: {0}")]
    Signature(String),
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error(
        "threshold {threshold} of {shares} proxies is not possible (1 ≤ M ≤ N ≤ {MAX_PROXIES})"
    )]
    Threshold { threshold: usize, shares: usize },
    #[error("fragment {index} from the proxies does not verify: {detail}")]
    CfragInvalid { index: usize, detail: String },
    #[error("{got} verified fragments, {need} needed")]
    TooFewCfrags { got: usize, need: usize },
    #[error("decrypting with the fragments: {0}")]
    Decrypt(String),
    #[error("key: {0}")]
    Key(#[from] crate::KeyError),
}

impl From<SignError> for SharingError {
    fn from(e: SignError) -> Self {
        match e {
            SignError::Encode(e) => Self::Encode(e),
            SignError::Sign(e) => Self::Sign(e),
            SignError::Signature(e) => Self::Signature(e),
        }
    }
}

pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, SharingError> {
    let mut out = Vec::new();
    ciborium::into_writer(message, &mut out).map_err(|e| SharingError::Encode(e.to_string()))?;
    if out.len() > MAX_MESSAGE_BYTES {
        return Err(SharingError::TooLarge(out.len()));
    }
    Ok(out)
}

pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, SharingError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(SharingError::TooLarge(bytes.len()));
    }
    ciborium::from_reader(bytes).map_err(|e| SharingError::Malformed(e.to_string()))
}

/// Sends one CBOR message on a new connection's bidirectional stream and
/// reads the CBOR answer (at most `max_answer` bytes): both protocols'
/// client side, the hub's and the physician's.
pub async fn exchange<Req: Serialize, Ans: for<'de> Deserialize<'de>>(
    endpoint: &iroh::Endpoint,
    to: iroh::EndpointAddr,
    alpn: &[u8],
    message: &Req,
    max_answer: usize,
) -> Result<Ans, String> {
    let conn = endpoint
        .connect(to, alpn)
        .await
        .map_err(|e| e.to_string())?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    let bytes = encode(message).map_err(|e| e.to_string())?;
    send.write_all(&bytes).await.map_err(|e| e.to_string())?;
    send.finish().map_err(|e| e.to_string())?;
    let answer = recv
        .read_to_end(max_answer.min(MAX_MESSAGE_BYTES))
        .await
        .map_err(|e| e.to_string())?;
    conn.close(0u32.into(), b"done");
    decode(&answer).map_err(|e| e.to_string())
}

/// What a grant's kfrags are made for.
#[derive(Debug, Clone, Copy)]
pub struct GrantTarget<'a> {
    pub grant_id: u64,
    pub policy_id: B256,
    pub grantee: Address,
    pub grantee_key: &'a PublicKey,
}

/// The hub makes a grant's kfrags: `shares` of them, any `threshold` enough.
/// Deterministic for a grant (its id, policy, grantee key, M and N), so a
/// restart re-sends the same set.
pub fn make_kfrags(
    patient: &PatientKey,
    target: GrantTarget<'_>,
    threshold: usize,
    shares: usize,
) -> Result<Vec<VerifiedKeyFrag>, SharingError> {
    if threshold == 0 || threshold > shares || shares > MAX_PROXIES {
        return Err(SharingError::Threshold { threshold, shares });
    }
    let mut context = b"glyco kfrags v1".to_vec();
    context.extend_from_slice(&target.grant_id.to_be_bytes());
    context.extend_from_slice(target.policy_id.as_slice());
    context.extend_from_slice(target.grantee.as_slice());
    context.extend_from_slice(&target.grantee_key.to_compressed_bytes());
    context.extend_from_slice(&[threshold as u8, shares as u8]);
    let seed = blake3::keyed_hash(patient.kfrag_rng_key(), &context);
    let mut rng = ChaCha20Rng::from_seed(*seed.as_bytes());
    Ok(umbral_pre::generate_kfrags_with_rng(
        &mut rng,
        patient.secret(),
        target.grantee_key,
        &patient.kfrag_signer(),
        threshold,
        shares,
        true,
        true,
    )
    .into_vec())
}

/// The proxy checks a kfrag against the keys on chain.
pub fn verify_kfrag(
    kfrag: KeyFrag,
    verifying_key: &[u8],
    patient_key: &PublicKey,
    grantee_key: &PublicKey,
) -> Result<VerifiedKeyFrag, ProxyRefusal> {
    let verifying =
        public_key_from_bytes(verifying_key).map_err(|e| ProxyRefusal::KfragInvalid {
            detail: e.to_string(),
        })?;
    kfrag
        .verify(&verifying, Some(patient_key), Some(grantee_key))
        .map_err(|(e, _)| ProxyRefusal::KfragInvalid {
            detail: e.to_string(),
        })
}

/// The proxy re-encrypts one capsule.
pub fn reencrypt(capsule: &Capsule, kfrag: &VerifiedKeyFrag) -> CapsuleFrag {
    umbral_pre::reencrypt(capsule, kfrag.clone()).unverify()
}

/// The physician opens a batch with fragments from `threshold` proxies.
/// Optimistic: the fragments are combined first and the batch's AEAD says
/// whether they were right; only when it fails is each fragment verified,
/// so a proxy that lies is named (the common case pays for no proofs).
pub fn open_reencrypted(
    batch: &SealedBatch,
    physician: &PhysicianKey,
    patient_key: &PublicKey,
    fragments: Vec<(Vec<u8>, CapsuleFrag)>,
    threshold: usize,
) -> Result<Vec<u8>, SharingError> {
    if fragments.len() < threshold {
        return Err(SharingError::TooFewCfrags {
            got: fragments.len(),
            need: threshold,
        });
    }
    let unchecked = fragments.iter().map(|(_, c)| c.clone().skip_verification());
    if let Ok(plain) = umbral_pre::decrypt_reencrypted(
        physician.secret(),
        patient_key,
        &batch.capsule,
        unchecked,
        &batch.ciphertext,
    ) {
        return Ok(plain.into_vec());
    }
    let mut verified: Vec<VerifiedCapsuleFrag> = Vec::with_capacity(fragments.len());
    for (index, (verifying_key, cfrag)) in fragments.into_iter().enumerate() {
        let verifying = public_key_from_bytes(&verifying_key)?;
        let ok = cfrag
            .verify(&batch.capsule, &verifying, patient_key, physician.public())
            .map_err(|(e, _)| SharingError::CfragInvalid {
                index,
                detail: e.to_string(),
            })?;
        verified.push(ok);
    }
    umbral_pre::decrypt_reencrypted(
        physician.secret(),
        patient_key,
        &batch.capsule,
        verified,
        &batch.ciphertext,
    )
    .map(|b| b.into_vec())
    .map_err(|e| SharingError::Decrypt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BatchHeader;
    use alloy::signers::local::PrivateKeySigner;

    fn keys() -> (tempfile::TempDir, PatientKey, PhysicianKey) {
        let dir = tempfile::tempdir().unwrap();
        let (patient, _) = PatientKey::load_or_create(&dir.path().join("p")).unwrap();
        let (physician, _) = PhysicianKey::load_or_create(&dir.path().join("d")).unwrap();
        (dir, patient, physician)
    }

    fn batch(patient: &PatientKey, text: &[u8]) -> SealedBatch {
        let hub = PrivateKeySigner::random();
        let header = BatchHeader {
            patient: Address::repeat_byte(1),
            hub: hub.address(),
            batch_no: 1,
            first_journal_seq: 1,
            last_journal_seq: 1,
            count: 1,
            window_start_ms: 0,
            window_end_ms: 0,
            kinds: 1,
            sealed_at_ms: 0,
            evidence: Vec::new(),
        };
        SealedBatch::seal(header, text, patient.public(), &hub).unwrap()
    }

    fn target(physician: &PhysicianKey) -> GrantTarget<'_> {
        GrantTarget {
            grant_id: 7,
            policy_id: B256::repeat_byte(9),
            grantee: Address::repeat_byte(2),
            grantee_key: physician.public(),
        }
    }

    #[test]
    fn two_of_three_proxies_open_a_batch_and_one_does_not() {
        let (_dir, patient, physician) = keys();
        let sealed = batch(&patient, b"glucose 104 mg/dL");
        let kfrags = make_kfrags(&patient, target(&physician), 2, 3).unwrap();
        let verifying = patient.kfrag_signer().verifying_key().to_compressed_bytes();
        let fragment = |i: usize| {
            let kfrag = verify_kfrag(
                kfrags[i].clone().unverify(),
                &verifying,
                patient.public(),
                physician.public(),
            )
            .unwrap();
            (verifying.to_vec(), reencrypt(&sealed.capsule, &kfrag))
        };
        let opened = open_reencrypted(
            &sealed,
            &physician,
            patient.public(),
            vec![fragment(0), fragment(2)],
            2,
        )
        .unwrap();
        assert_eq!(opened, b"glucose 104 mg/dL");
        assert!(matches!(
            open_reencrypted(&sealed, &physician, patient.public(), vec![fragment(1)], 2),
            Err(SharingError::TooFewCfrags { got: 1, need: 2 })
        ));
    }

    #[test]
    fn kfrags_are_the_same_for_the_same_grant_and_differ_for_another() {
        let (_dir, patient, physician) = keys();
        let a = make_kfrags(&patient, target(&physician), 1, 2).unwrap();
        let b = make_kfrags(&patient, target(&physician), 1, 2).unwrap();
        assert_eq!(a, b);
        let other = GrantTarget {
            grant_id: 8,
            ..target(&physician)
        };
        assert_ne!(a, make_kfrags(&patient, other, 1, 2).unwrap());
        assert!(matches!(
            make_kfrags(&patient, target(&physician), 3, 2),
            Err(SharingError::Threshold { .. })
        ));
    }

    #[test]
    fn a_kfrag_for_another_physician_or_signer_is_refused() {
        let (dir, patient, physician) = keys();
        let (stranger, _) = PhysicianKey::load_or_create(&dir.path().join("s")).unwrap();
        let kfrag = make_kfrags(&patient, target(&physician), 1, 1).unwrap()[0]
            .clone()
            .unverify();
        let verifying = patient.kfrag_signer().verifying_key().to_compressed_bytes();
        assert!(matches!(
            verify_kfrag(
                kfrag.clone(),
                &verifying,
                patient.public(),
                stranger.public()
            ),
            Err(ProxyRefusal::KfragInvalid { .. })
        ));
        let wrong_signer = patient.public().to_compressed_bytes();
        assert!(matches!(
            verify_kfrag(kfrag, &wrong_signer, patient.public(), physician.public()),
            Err(ProxyRefusal::KfragInvalid { .. })
        ));
    }

    #[test]
    fn a_fragment_from_a_lying_proxy_is_named() {
        let (dir, patient, physician) = keys();
        let sealed = batch(&patient, b"x");
        let other = batch(&patient, b"y");
        let kfrag = make_kfrags(&patient, target(&physician), 1, 1).unwrap()[0].clone();
        let verifying = patient.kfrag_signer().verifying_key().to_compressed_bytes();
        // A fragment of another capsule.
        let wrong = reencrypt(&other.capsule, &kfrag);
        assert!(matches!(
            open_reencrypted(
                &sealed,
                &physician,
                patient.public(),
                vec![(verifying.to_vec(), wrong)],
                1
            ),
            Err(SharingError::CfragInvalid { index: 0, .. })
        ));
        drop(dir);
    }

    /// Pins the kfrag messages' signing digest: hubs and proxies of
    /// different versions must agree on it.
    #[test]
    fn the_kfrag_signature_is_pinned() {
        let hub = PrivateKeySigner::from_bytes(&B256::repeat_byte(7)).unwrap();
        let drop = KfragDrop {
            patient: Address::repeat_byte(1),
            hub: hub.address(),
            grant_id: 3,
            proxy: Address::repeat_byte(4),
        };
        let signed = HubSigned::sign(drop, &hub).unwrap();
        assert_eq!(
            alloy::hex::encode(&signed.signature),
            "778b165f3adae819394076e9d871689887d4d2adbcdf5d17dccc3b91b9dd282f6245ce5f5fd41b64fdbd5413570a400764f18778d28bcc8d62de1df7c18778da1b"
        );
    }

    #[test]
    fn hub_signatures_cover_the_body() {
        let hub = PrivateKeySigner::random();
        let drop = KfragDrop {
            patient: Address::repeat_byte(1),
            hub: hub.address(),
            grant_id: 3,
            proxy: Address::repeat_byte(4),
        };
        let mut signed = HubSigned::sign(drop, &hub).unwrap();
        assert_eq!(signed.signer().unwrap(), hub.address());
        signed.body.grant_id = 4;
        assert_ne!(signed.signer().unwrap(), hub.address());
        let bytes = encode(&HubMessage::Drop(signed.clone())).unwrap();
        assert_eq!(
            decode::<HubMessage>(&bytes).unwrap(),
            HubMessage::Drop(signed)
        );
        assert!(matches!(
            decode::<HubMessage>(b"\xa1junk"),
            Err(SharingError::Malformed(_))
        ));
    }
}
