//! Enrolling a new hub with a physician (docs/APPLIANCE.md, "Enrolment"):
//! the 2018 paper's QR code, carrying the physician's address and the
//! network's information, plus a one-time token.
//!
//! - The physician's tool issues an [`Invitation`] and shows it as a QR code
//!   (text: [`INVITATION_PREFIX`] then JSON). It names the chain, its
//!   contracts, the clinic's proxies and alert inbox, and the physician's
//!   enrolment node (its iroh node id, so the hub talks to that node and no
//!   other).
//! - The hub sends one [`EnrolRequest`] on [`ENROL_ALPN`]: the token and its
//!   signed consent to serve its patient. The physician's node spends the
//!   token at the first attempt, offers the patient role on chain and
//!   answers with the consortium's device-id key ([`EnrolAnswer`]), which is
//!   never in the QR code.
//! - The hub then sees the physician's offer on chain, accepts it with the
//!   patient's key and authorises itself with its consent.

use alloy::primitives::{Address, B256};
use glyco_contracts::Deployment;
use glyco_contracts::consent::SignedHubConsent;
use serde::{Deserialize, Serialize};

/// ALPN of the enrolment exchange (hub → physician's enrolment node).
pub const ENROL_ALPN: &[u8] = b"glyco/enrol/1";
/// What an invitation's text starts with.
pub const INVITATION_PREFIX: &str = "GLYCO-ENROL-1:";
/// The longest invitation text taken (a QR code holds at most 2,331 bytes
/// at error correction level M).
pub const MAX_INVITATION_BYTES: usize = 2048;
/// The largest request or answer on [`ENROL_ALPN`].
pub const MAX_ENROL_MESSAGE_BYTES: usize = 8 * 1024;
/// RPC endpoints, proxies and node addresses an invitation names at most.
pub const MAX_ENDPOINTS: usize = 4;
/// Longest an invitation may be valid, in seconds (a week).
pub const MAX_VALIDITY_SECS: u64 = 7 * 24 * 3600;

/// The QR code's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invitation {
    /// The physician who registers the patient.
    pub physician: Address,
    /// JSON-RPC endpoints of consortium nodes, as the hub will reach them.
    pub rpc_urls: Vec<String>,
    /// The contracts (chain id included) and the device-id key's fingerprint.
    pub deployment: Deployment,
    /// The physician's enrolment node: iroh node id (hex) and addresses.
    pub enrol_node: String,
    pub enrol_addrs: Vec<std::net::SocketAddr>,
    /// The clinic's re-encryption proxies, `<ethereum address>@<ip:port>`,
    /// and how many must re-encrypt for a read.
    pub proxies: Vec<String>,
    pub proxy_threshold: u32,
    /// The clinic's alert inbox, `<iroh node id>@<ip:port>`.
    pub inbox: Option<String>,
    /// The one-time token (base32 of 16 random bytes).
    pub token: String,
    /// Unix seconds after which the token is refused.
    pub expires_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvitationError {
    #[error("not a Glyco enrolment code (it must start with {INVITATION_PREFIX})")]
    NotAnInvitation,
    #[error("the enrolment code is {0} bytes; at most {MAX_INVITATION_BYTES} are taken")]
    TooLarge(usize),
    #[error("the enrolment code is not valid: {0}")]
    Malformed(String),
    #[error("the enrolment code expired at {expired_at} (now {now})")]
    Expired { expired_at: u64, now: u64 },
}

impl Invitation {
    /// The QR code's text.
    pub fn to_text(&self) -> String {
        // Serialising plain data (strings, numbers, addresses) cannot fail.
        format!(
            "{INVITATION_PREFIX}{}",
            serde_json::to_string(self).unwrap_or_default()
        )
    }

    /// Parses and checks an invitation's text (not yet against the chain).
    pub fn parse(text: &str, now: u64) -> Result<Self, InvitationError> {
        let text = text.trim();
        if text.len() > MAX_INVITATION_BYTES {
            return Err(InvitationError::TooLarge(text.len()));
        }
        let json = text
            .strip_prefix(INVITATION_PREFIX)
            .ok_or(InvitationError::NotAnInvitation)?;
        let invitation: Self =
            serde_json::from_str(json).map_err(|e| InvitationError::Malformed(e.to_string()))?;
        invitation.check(now)?;
        Ok(invitation)
    }

    fn check(&self, now: u64) -> Result<(), InvitationError> {
        let bad = |m: &str| Err(InvitationError::Malformed(m.to_owned()));
        if self.rpc_urls.is_empty() || self.rpc_urls.len() > MAX_ENDPOINTS {
            return bad("it must name 1 to 4 RPC endpoints");
        }
        if self
            .rpc_urls
            .iter()
            .any(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return bad("an RPC endpoint is not an http(s) URL");
        }
        if self.enrol_addrs.is_empty() || self.enrol_addrs.len() > MAX_ENDPOINTS {
            return bad("it must name 1 to 4 addresses of the enrolment node");
        }
        if self.enrol_node.parse::<iroh::EndpointId>().is_err() {
            return bad("the enrolment node is not an iroh node id");
        }
        if self.proxies.len() > MAX_ENDPOINTS {
            return bad("it names more than 4 proxies");
        }
        let n = self.proxies.len() as u32;
        if n > 0 && !(1..=n).contains(&self.proxy_threshold) {
            return bad("the proxy threshold is not between 1 and the proxies named");
        }
        if self.physician.is_zero() {
            return bad("the physician's address is zero");
        }
        if token_bytes(&self.token).is_none() {
            return bad("the token is not 16 bytes of base32");
        }
        if self.expires_at <= now {
            return Err(InvitationError::Expired {
                expired_at: self.expires_at,
                now,
            });
        }
        if self.expires_at > now + MAX_VALIDITY_SECS {
            return bad("it is valid for more than a week");
        }
        Ok(())
    }

    pub fn chain_id(&self) -> u64 {
        self.deployment.chain_id
    }

    /// The enrolment node's iroh address.
    pub fn enrol_endpoint(&self) -> Result<iroh::EndpointAddr, InvitationError> {
        let node: iroh::EndpointId = self
            .enrol_node
            .parse()
            .map_err(|_| InvitationError::Malformed("enrolment node".into()))?;
        Ok(self
            .enrol_addrs
            .iter()
            .fold(iroh::EndpointAddr::new(node), |addr, ip| {
                addr.with_ip_addr(*ip)
            }))
    }
}

/// A new one-time token: 16 random bytes, base32 (26 characters).
pub fn new_token() -> String {
    let mut bytes = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    data_encoding::BASE32_NOPAD.encode(&bytes)
}

/// The token's bytes, when it is one.
pub fn token_bytes(token: &str) -> Option<[u8; 16]> {
    let bytes = data_encoding::BASE32_NOPAD.decode(token.as_bytes()).ok()?;
    bytes.try_into().ok()
}

/// What the physician's tool keeps of a token: its hash, not the token, so
/// its file does not hold live secrets.
pub fn token_digest(token: &str) -> B256 {
    B256::from(*blake3::hash(token.as_bytes()).as_bytes())
}

/// The hub's request: the token and its consent to serve `consent.patient`
/// (the patient's key lives on the hub). The hub's iroh node id is the
/// connection's, authenticated by QUIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolRequest {
    pub token: String,
    pub consent: SignedHubConsent,
}

/// The physician's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnrolAnswer {
    /// The patient role was offered on chain (transaction `offer_tx`); the
    /// consortium's device-id key comes with it.
    Accepted {
        device_id_key: B256,
        offer_tx: B256,
    },
    Refused(EnrolRefusal),
}

/// Why an enrolment was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum EnrolRefusal {
    #[error("the token was never issued here")]
    UnknownToken,
    #[error("the token was already used")]
    TokenSpent,
    #[error("the token has expired")]
    TokenExpired,
    #[error("the hub's consent is not signed by the hub, or not for this chain")]
    BadConsent,
    #[error("the patient's address already holds a role on chain")]
    PatientTaken,
    #[error("the chain refused the registration: {0}")]
    Chain(String),
    #[error("the request is malformed: {0}")]
    Malformed(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use glyco_contracts::ContractAddresses;

    fn invitation(now: u64) -> Invitation {
        Invitation {
            physician: Address::repeat_byte(7),
            rpc_urls: vec!["http://10.0.2.2:8545".into()],
            deployment: Deployment {
                chain_id: 31337,
                deployed_at_block: 1,
                deployer: Address::repeat_byte(1),
                contracts: ContractAddresses {
                    roles: Address::repeat_byte(2),
                    devices: Address::repeat_byte(3),
                    permissions: Address::repeat_byte(4),
                    access_log: Address::repeat_byte(5),
                    anchors: Address::repeat_byte(6),
                    consortium: None,
                    releases: None,
                },
                device_id_key_fingerprint: B256::repeat_byte(9),
                fees: Default::default(),
            },
            enrol_node: iroh::SecretKey::from_bytes(&[3; 32]).public().to_string(),
            enrol_addrs: vec!["10.0.2.2:7450".parse().unwrap()],
            proxies: vec![format!("{:#x}@10.0.2.2:7461", Address::repeat_byte(8))],
            proxy_threshold: 1,
            inbox: None,
            token: new_token(),
            expires_at: now + 1800,
        }
    }

    #[test]
    fn an_invitation_reads_back_and_fits_a_qr_code() {
        let invitation = invitation(1000);
        let text = invitation.to_text();
        assert!(text.len() < MAX_INVITATION_BYTES, "{} bytes", text.len());
        assert_eq!(Invitation::parse(&text, 1000).unwrap(), invitation);
    }

    #[test]
    fn expired_foreign_and_damaged_codes_are_refused() {
        let invitation = invitation(1000);
        let text = invitation.to_text();
        assert_eq!(
            Invitation::parse(&text, 2800),
            Err(InvitationError::Expired {
                expired_at: 2800,
                now: 2800
            })
        );
        assert_eq!(
            Invitation::parse("WIFI:S:home;;", 1000),
            Err(InvitationError::NotAnInvitation)
        );
        assert!(matches!(
            Invitation::parse(&text[..text.len() - 2], 1000),
            Err(InvitationError::Malformed(_))
        ));
        let long = format!("{INVITATION_PREFIX}{}", "x".repeat(MAX_INVITATION_BYTES));
        assert!(matches!(
            Invitation::parse(&long, 1000),
            Err(InvitationError::TooLarge(_))
        ));
        let mut forever = invitation.clone();
        forever.expires_at = 1000 + MAX_VALIDITY_SECS + 1;
        assert!(Invitation::parse(&forever.to_text(), 1000).is_err());
        let mut bad_token = invitation;
        bad_token.token = "short".into();
        assert!(Invitation::parse(&bad_token.to_text(), 1000).is_err());
    }

    #[test]
    fn tokens_are_sixteen_random_bytes() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(token_bytes(&a).map(|b| b.len()), Some(16));
        assert_ne!(token_digest(&a), token_digest(&b));
    }
}
