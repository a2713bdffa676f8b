//! Alerts from a patient's hub to the physicians of the escalation ladder,
//! through their clinic's alert inbox node (docs/CLINIC.md, "Alerts").
//!
//! Two protocols over iroh:
//! - [`ALERT_ALPN`], hub → inbox: one CBOR [`HubAlertMessage`] per
//!   bidirectional stream, one CBOR [`AlertAnswer`]. `Deliver` hands over
//!   an alert signed by the hub; `Poll` asks for the acknowledgements of
//!   the hub's alerts. Acknowledgements ride back on every answer.
//! - [`INBOX_ALPN`], physician → inbox: an [`InboxRequest`] signed by the
//!   physician. `Follow` keeps the stream open and the inbox writes
//!   length-prefixed CBOR [`InboxFrame`]s (backlog, then live, with
//!   heartbeats); `Ack` is answered with one frame.
//!
//! What an alert says (device, values, explanation) is encrypted to the
//! physician's umbral key registered on chain: the inbox node stores and
//! forwards ciphertext. The envelope (kind, severity, times) is in the
//! clear, so the inbox can order and count, and is signed by the hub.
//!
//! The emergency step: the hub asks an emergency service's inbox for its
//! duty roster (`Roster`, signed by the hub), checks each name on chain,
//! and delivers one envelope per duty physician with `emergency` set to the
//! service. The inbox keeps it only if the patient's emergency policy is
//! enabled on chain (the patient's consent) and the recipient is an active
//! physician of that service.

use alloy::primitives::{Address, keccak256};
use serde::{Deserialize, Serialize};

use crate::signed::umbral_json;
pub use crate::signed::{Domain, SignError, Signed};
use umbral_pre::{Capsule, PublicKey, SecretKey};

/// ALPN of alert delivery and acknowledgement polls (hub → inbox).
pub const ALERT_ALPN: &[u8] = b"glyco/alerts/1";
/// ALPN of the physicians' inbox (physician → inbox).
pub const INBOX_ALPN: &[u8] = b"glyco/alert-inbox/1";
/// The largest message or frame read on either protocol.
pub const MAX_ALERT_MESSAGE_BYTES: usize = 64 * 1024;
/// Acknowledgements one answer carries at most.
pub const MAX_ACKS_PER_ANSWER: usize = 256;
/// How far a signed request's time may be from the inbox's clock.
pub const FRESHNESS_MS: i64 = 5 * 60 * 1000;

const ALERT_DOMAIN: &[u8] = b"glyco-alert/1\0";
const POLICY_DOMAIN: &[u8] = b"glyco-alert-policy/1\0";
const POLL_DOMAIN: &[u8] = b"glyco-alert-poll/1\0";
const ACK_DOMAIN: &[u8] = b"glyco-alert-ack/1\0";
const FOLLOW_DOMAIN: &[u8] = b"glyco-alert-follow/1\0";
const ROSTER_DOMAIN: &[u8] = b"glyco-alert-roster/1\0";
/// Duty physicians one roster names at most.
pub const MAX_DUTY_ROSTER: usize = 32;

/// An alert id: the hub's address and its alert number, hashed, so a
/// redelivery after a crash carries the same id.
pub fn alert_id(hub: Address, alert_no: u64) -> [u8; 16] {
    let mut message = hub.to_vec();
    message.extend_from_slice(&alert_no.to_be_bytes());
    let hash = keccak256(&message);
    let mut id = [0u8; 16];
    id.copy_from_slice(&hash[..16]);
    id
}

pub fn id_hex(id: &[u8; 16]) -> String {
    alloy::hex::encode(id)
}

pub fn parse_id(text: &str) -> Result<[u8; 16], AlertError> {
    let bytes = alloy::hex::decode(text.trim().trim_start_matches("0x"))
        .map_err(|e| AlertError::Malformed(format!("alert id: {e}")))?;
    bytes
        .try_into()
        .map_err(|_| AlertError::Malformed("an alert id is 16 bytes (32 hex digits)".into()))
}

/// The clear part of an alert and its sealed details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEnvelope {
    pub id: [u8; 16],
    pub hub: Address,
    pub patient: Address,
    pub alert_no: u64,
    /// The physician it is for.
    pub recipient: Address,
    /// The ladder step that reached the recipient (0 first).
    pub step: u8,
    /// `predicted_low`, `node_behaviour:flood`, `stale_data`, ...
    pub kind: String,
    pub severity: String,
    pub created_at_ms: i64,
    /// When the hub received the reading behind it (latency is measured
    /// from here).
    pub reading_received_at_ms: i64,
    pub details: SealedDetails,
    /// The emergency service the recipient is on duty for, when the alert
    /// reached them through the ladder's emergency step (no grant needed:
    /// the patient's emergency policy on chain is the consent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency: Option<Address>,
}

impl Domain for AlertEnvelope {
    const DOMAIN: &'static [u8] = ALERT_DOMAIN;
}

/// [`AlertDetails`] encrypted to the recipient's umbral key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedDetails {
    #[serde(with = "umbral_json")]
    pub capsule: Capsule,
    #[serde(with = "crate::batch::bytes")]
    pub ciphertext: Vec<u8>,
}

/// What only the recipient reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertDetails {
    pub device: String,
    pub explanation: String,
    pub confidence: f32,
    /// When the finding was made (device clock for readings, hub clock for
    /// behaviour), unix ms.
    pub at_ms: i64,
}

impl SealedDetails {
    pub fn seal(details: &AlertDetails, recipient: &PublicKey) -> Result<Self, AlertError> {
        let mut plaintext = Vec::new();
        ciborium::into_writer(details, &mut plaintext)
            .map_err(|e| AlertError::Encode(e.to_string()))?;
        let (capsule, ciphertext) = umbral_pre::encrypt(recipient, &plaintext)
            .map_err(|e| AlertError::Crypto(e.to_string()))?;
        Ok(Self {
            capsule,
            ciphertext: ciphertext.to_vec(),
        })
    }

    pub fn open(&self, key: &SecretKey) -> Result<AlertDetails, AlertError> {
        let plaintext = umbral_pre::decrypt_original(key, &self.capsule, &self.ciphertext)
            .map_err(|e| AlertError::Crypto(e.to_string()))?;
        ciborium::from_reader(&plaintext[..]).map_err(|e| AlertError::Malformed(e.to_string()))
    }
}

/// Who is alerted about what, and when: set by the patient (or whoever
/// acts for them) or by a physician with a live grant, signed, for one hub.
/// A version replaces the hub's current policy only if it is higher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertPolicyDoc {
    pub patient: Address,
    pub hub: Address,
    pub version: u64,
    /// Finding kinds that alert: names, or a prefix ending in `*`.
    pub kinds: Vec<String>,
    /// `info`, `warning` or `urgent`.
    pub min_severity: String,
    /// Steps: seconds after the alert, and targets (`patient`,
    /// `physician:0x…`, `webhook:<name>`).
    pub ladder: Vec<(u64, Vec<String>)>,
    pub dedupe_secs: u64,
}

impl Domain for AlertPolicyDoc {
    const DOMAIN: &'static [u8] = POLICY_DOMAIN;
}

/// A policy file as people write it (JSON): the policy without the patient,
/// hub and version it is signed for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub kinds: Vec<String>,
    pub min_severity: String,
    pub ladder: Vec<(u64, Vec<String>)>,
    pub dedupe_secs: u64,
}

impl PolicyFile {
    pub fn into_doc(self, patient: Address, hub: Address, version: u64) -> AlertPolicyDoc {
        AlertPolicyDoc {
            patient,
            hub,
            version,
            kinds: self.kinds,
            min_severity: self.min_severity,
            ladder: self.ladder,
            dedupe_secs: self.dedupe_secs,
        }
    }
}

/// The hub asks for acknowledgements of its alerts after `after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckPoll {
    pub hub: Address,
    /// Acks numbered after this (the inbox's ack sequence), 0 for all.
    pub after: u64,
    pub at_ms: i64,
}

impl Domain for AckPoll {
    const DOMAIN: &'static [u8] = POLL_DOMAIN;
}

/// A physician acknowledges an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertAck {
    pub alert: [u8; 16],
    pub hub: Address,
    pub by: Address,
    pub at_ms: i64,
}

impl Domain for AlertAck {
    const DOMAIN: &'static [u8] = ACK_DOMAIN;
}

/// A physician follows their inbox from `after` (the inbox's sequence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowRequest {
    pub physician: Address,
    pub after: u64,
    /// Keep the stream open for new alerts (else: the backlog, then end).
    pub live: bool,
    pub at_ms: i64,
}

impl Domain for FollowRequest {
    const DOMAIN: &'static [u8] = FOLLOW_DOMAIN;
}

/// A hub asks an emergency service's inbox who is on duty for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterRequest {
    pub hub: Address,
    /// The emergency service (its entity address on chain).
    pub entity: Address,
    pub at_ms: i64,
}

impl Domain for RosterRequest {
    const DOMAIN: &'static [u8] = ROSTER_DOMAIN;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "message", rename_all = "snake_case")]
pub enum HubAlertMessage {
    Deliver(Box<Signed<AlertEnvelope>>),
    Poll(Signed<AckPoll>),
    Roster(Signed<RosterRequest>),
}

/// An acknowledgement as the inbox numbered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumberedAck {
    pub no: u64,
    pub ack: Signed<AlertAck>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum AlertAnswer {
    /// Stored (durably) for the recipient; `already`: it was there before.
    Kept {
        already: bool,
    },
    /// Acknowledgements of the hub's alerts after the poll's cursor.
    Acks {
        acks: Vec<NumberedAck>,
    },
    /// The duty physicians of the asked emergency service, as the inbox
    /// knows them (the hub checks each on chain).
    Roster {
        physicians: Vec<Address>,
    },
    Refused {
        reason: AlertRefusal,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum InboxRequest {
    Follow(Signed<FollowRequest>),
    Ack(Signed<AlertAck>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "frame", rename_all = "snake_case")]
pub enum InboxFrame {
    Alert {
        seq: u64,
        envelope: Box<Signed<AlertEnvelope>>,
    },
    /// The backlog has been sent; live alerts follow (if asked).
    CaughtUp {
        seq: u64,
    },
    Heartbeat {
        at_ms: i64,
    },
    /// The acknowledgement was recorded (`already`: it was before).
    Recorded {
        already: bool,
    },
    Refused {
        reason: AlertRefusal,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum AlertRefusal {
    #[error("malformed: {detail}")]
    Malformed { detail: String },
    #[error("bad signature: {detail}")]
    BadSignature { detail: String },
    #[error("signed by {actual}, not {expected}")]
    WrongSigner { expected: Address, actual: Address },
    #[error("{hub} is not the hub of patient {patient}")]
    NotPatientsHub { hub: Address, patient: Address },
    #[error("the physician has no live grant from the patient")]
    NoLiveGrant,
    #[error("the patient's emergency policy is not enabled on chain")]
    NoEmergencyConsent,
    #[error("{physician} is not an active physician of emergency service {entity}")]
    NotOnDuty { physician: Address, entity: Address },
    #[error("this inbox keeps no duty roster for {entity}")]
    NoRoster { entity: Address },
    #[error("the request is stale or from the future ({at_ms})")]
    Stale { at_ms: i64 },
    #[error("no such alert for this physician")]
    UnknownAlert,
    #[error("the inbox is busy")]
    Busy,
    #[error("the inbox for this recipient is full ({limit} alerts)")]
    Full { limit: usize },
    #[error("the chain cannot be read: {detail}")]
    ChainUnavailable { detail: String },
    #[error("the inbox cannot store: {detail}")]
    Storage { detail: String },
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("encoding: {0}")]
    Encode(String),
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("signing: {0}")]
    Sign(String),
    #[error("signature: {0}")]
    Signature(String),
    #[error("encryption: {0}")]
    Crypto(String),
    #[error("message of {0} bytes is over the limit")]
    TooLarge(usize),
}

impl From<SignError> for AlertError {
    fn from(e: SignError) -> Self {
        match e {
            SignError::Encode(e) => Self::Encode(e),
            SignError::Sign(e) => Self::Sign(e),
            SignError::Signature(e) => Self::Signature(e),
        }
    }
}

pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, AlertError> {
    let mut out = Vec::new();
    ciborium::into_writer(message, &mut out).map_err(|e| AlertError::Encode(e.to_string()))?;
    if out.len() > MAX_ALERT_MESSAGE_BYTES {
        return Err(AlertError::TooLarge(out.len()));
    }
    Ok(out)
}

pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, AlertError> {
    if bytes.len() > MAX_ALERT_MESSAGE_BYTES {
        return Err(AlertError::TooLarge(bytes.len()));
    }
    ciborium::from_reader(bytes).map_err(|e| AlertError::Malformed(e.to_string()))
}

/// A frame on a follow stream: a u32 big-endian length, then CBOR.
pub fn frame(frame: &InboxFrame) -> Result<Vec<u8>, AlertError> {
    let body = encode(frame)?;
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reads one frame; `Ok(None)` at the end of the stream.
pub async fn read_frame(
    recv: &mut iroh::endpoint::RecvStream,
) -> Result<Option<InboxFrame>, AlertError> {
    let mut length = [0u8; 4];
    match recv.read_exact(&mut length).await {
        Ok(()) => {}
        Err(iroh::endpoint::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(AlertError::Malformed(e.to_string())),
    }
    let length = u32::from_be_bytes(length) as usize;
    if length > MAX_ALERT_MESSAGE_BYTES {
        return Err(AlertError::TooLarge(length));
    }
    let mut body = vec![0u8; length];
    recv.read_exact(&mut body)
        .await
        .map_err(|e| AlertError::Malformed(e.to_string()))?;
    decode(&body).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::local::PrivateKeySigner;

    fn envelope(key: &PublicKey) -> AlertEnvelope {
        let details = AlertDetails {
            device: "name:cgm-1".into(),
            explanation: "forecast 63 mg/dL in 30 min".into(),
            confidence: 0.7,
            at_ms: 1,
        };
        AlertEnvelope {
            id: alert_id(Address::repeat_byte(1), 7),
            hub: Address::repeat_byte(1),
            patient: Address::repeat_byte(2),
            alert_no: 7,
            recipient: Address::repeat_byte(3),
            step: 1,
            kind: "predicted_low".into(),
            severity: "urgent".into(),
            created_at_ms: 2,
            reading_received_at_ms: 1,
            details: SealedDetails::seal(&details, key).unwrap(),
            emergency: None,
        }
    }

    #[test]
    fn signed_alerts_round_trip_and_only_the_recipient_reads_them() {
        let hub = PrivateKeySigner::random();
        let physician = SecretKey::random();
        let signed = Signed::sign(envelope(&physician.public_key()), &hub).unwrap();
        let message = HubAlertMessage::Deliver(Box::new(signed.clone()));
        let back: HubAlertMessage = decode(&encode(&message).unwrap()).unwrap();
        let HubAlertMessage::Deliver(back) = back else {
            panic!()
        };
        assert_eq!(back.signer().unwrap(), hub.address());
        let details = back.body.details.open(&physician).unwrap();
        assert_eq!(details.device, "name:cgm-1");
        assert!(back.body.details.open(&SecretKey::random()).is_err());
        // A tampered envelope no longer verifies as the hub's.
        let mut tampered = *back;
        tampered.body.severity = "info".into();
        assert_ne!(tampered.signer().unwrap(), hub.address());
    }

    #[test]
    fn a_signature_for_one_message_kind_does_not_verify_as_another() {
        let key = PrivateKeySigner::random();
        let ack = Signed::sign(
            AlertAck {
                alert: [1; 16],
                hub: Address::repeat_byte(1),
                by: key.address(),
                at_ms: 5,
            },
            &key,
        )
        .unwrap();
        // Same signature bytes on a poll body: recovers some other address.
        let poll = Signed {
            body: AckPoll {
                hub: Address::repeat_byte(1),
                after: 0,
                at_ms: 5,
            },
            signature: ack.signature.clone(),
        };
        assert!(poll.signer().map_or(true, |a| a != key.address()));
    }

    #[test]
    fn the_emergency_service_is_signed_and_absent_from_ordinary_envelopes() {
        let hub = PrivateKeySigner::random();
        let key = SecretKey::random().public_key();
        let ordinary = encode(&envelope(&key)).unwrap();
        let as_value: ciborium::Value = ciborium::from_reader(&ordinary[..]).unwrap();
        let keys: Vec<String> = as_value
            .as_map()
            .unwrap()
            .iter()
            .filter_map(|(k, _)| k.as_text().map(str::to_owned))
            .collect();
        assert!(!keys.contains(&"emergency".to_owned()), "{keys:?}");
        let mut emergency = envelope(&key);
        emergency.emergency = Some(Address::repeat_byte(7));
        let signed = Signed::sign(emergency, &hub).unwrap();
        let back: Signed<AlertEnvelope> = decode(&encode(&signed).unwrap()).unwrap();
        assert_eq!(back.body.emergency, Some(Address::repeat_byte(7)));
        let mut moved = back.clone();
        moved.body.emergency = Some(Address::repeat_byte(8));
        assert_ne!(
            moved.signer().unwrap(),
            hub.address(),
            "the service is signed"
        );
    }

    #[test]
    fn ids_are_stable_and_parse() {
        let id = alert_id(Address::repeat_byte(9), 42);
        assert_eq!(id, alert_id(Address::repeat_byte(9), 42));
        assert_ne!(id, alert_id(Address::repeat_byte(9), 43));
        assert_eq!(parse_id(&id_hex(&id)).unwrap(), id);
        assert!(parse_id("zz").is_err() && parse_id("00").is_err());
        assert!(decode::<InboxRequest>(&[0xff; 10]).is_err());
    }
}
