//! Fleet heartbeats: each hub tells its clinic's node, every minute, that
//! it lives and how it fares (docs/FLEET.md).
//!
//! One protocol over iroh, [`FLEET_ALPN`], hub → clinic node: one CBOR
//! [`HubFleetMessage`] per bidirectional stream, one CBOR [`FleetAnswer`].
//! A heartbeat is signed by the hub's Ethereum key; the node keeps it only
//! when the chain says the hub serves a patient. The answer carries the
//! node's clock (the hub reports its offset next time) and, when a
//! physician proposed one, a signed alert policy for the hub, which the hub
//! applies only within what the patient accepted.
//!
//! No patient data travels: counts, ages, versions and the device ids the
//! chain already holds, never a reading, a value or a finding's text.

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};

use crate::alerts::AlertPolicyDoc;
pub use crate::signed::{Domain, Signed};

/// ALPN of fleet heartbeats and configuration proposals.
pub const FLEET_ALPN: &[u8] = b"glyco/fleet/1";
/// The largest message or answer read on it.
pub const MAX_FLEET_MESSAGE_BYTES: usize = 32 * 1024;
/// Devices one heartbeat describes at most (a hub serves one patient).
pub const MAX_HEARTBEAT_DEVICES: usize = 32;
/// Finding kinds one device entry names at most.
pub const MAX_DEVICE_FINDINGS: usize = 8;
/// Failing stages one heartbeat names at most.
pub const MAX_FAILING_STAGES: usize = 16;
/// The longest text field (version, release, a device id in hex).
pub const MAX_FIELD_CHARS: usize = 80;
/// The longest reason an update failed, in words.
pub const MAX_WHY_CHARS: usize = 240;
const HEARTBEAT_DOMAIN: &[u8] = b"glyco-heartbeat/1\0";

/// How a hub fares, in numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub hub: Address,
    /// When this run of the hub started (unix ms): a new value is a restart.
    pub boot_ms: i64,
    /// Numbered from 1 in each run: a replay or a reorder shows.
    pub seq: u64,
    pub sent_at_ms: i64,
    /// The hub's software version.
    pub version: String,
    /// The image release the hub runs from (`IMAGE_VERSION` in os-release),
    /// if it runs from an image.
    pub release: Option<String>,
    pub uptime_s: u64,
    /// Bytes free and in all on the state directory's file system.
    pub disk_free_bytes: Option<u64>,
    pub disk_total_bytes: Option<u64>,
    pub rss_kib: u64,
    pub cpu_ms: u64,
    /// `MemAvailable` of the machine.
    pub mem_available_kib: Option<u64>,
    pub queues: Queues,
    pub chain: ChainHealth,
    pub devices: Vec<DeviceHealth>,
    /// Supervised stages that ended while the hub runs.
    pub failing_stages: Vec<String>,
    /// The signed alert policy in force (0: the hub's config).
    pub config_version: u64,
    /// The hub's clock minus the node's, as the last answer showed (the
    /// answer's trip time is in it, at most its few milliseconds).
    pub clock_offset_ms: Option<i64>,
    /// How the last update offered to this hub went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateReport>,
}

/// An update bundle a fleet node offers: the hub fetches it from the node
/// by its BLAKE3 hash (iroh-blobs, verified as it streams) and installs it
/// only if the consortium published its SHA-256 on chain and its signature
/// checks (docs/FLEET.md, "Updates"). The node's word is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseOffer {
    pub version: String,
    /// The bundle's SHA-256, as published on chain.
    pub sha256: [u8; 32],
    /// Its BLAKE3 hash, the iroh blob to fetch.
    pub blake3: [u8; 32],
    pub bytes: u64,
}

/// Where a hub is with an update (the heartbeat's `update`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateReport {
    pub version: String,
    pub sha256: [u8; 32],
    pub at_ms: i64,
    pub outcome: UpdateOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum UpdateOutcome {
    /// Fetching the bundle from the node.
    Fetching,
    /// The bundle failed a check (or the fetch), or updates are off.
    Refused { why: String },
    /// Installed into the other slot; rebooting into it.
    Installing,
    /// Booted, passed the health check, marked good.
    Kept,
    /// The new slot failed its health check or did not boot; the hub runs
    /// the slot it came from.
    RolledBack { why: String },
}

impl UpdateOutcome {
    /// Whether the update is over, one way or the other.
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Fetching | Self::Installing)
    }

    /// Whether it went wrong (a staged rollout stops on these).
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::Refused { .. } | Self::RolledBack { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Fetching => "fetching",
            Self::Refused { .. } => "refused",
            Self::Installing => "installing",
            Self::Kept => "kept",
            Self::RolledBack { .. } => "rolled_back",
        }
    }
}

impl Domain for Heartbeat {
    const DOMAIN: &'static [u8] = HEARTBEAT_DOMAIN;
}

/// What waits in the hub: every count is of things not lost, only late.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queues {
    pub readings_stored: u64,
    /// Readings in the journal not sealed into a batch yet.
    pub unsealed: u64,
    /// Sealed batches no replica confirmed yet.
    pub unreplicated: u64,
    /// Sealed batches whose root is not on chain yet.
    pub unanchored: u64,
    pub oldest_unanchored_age_s: Option<u64>,
    /// Open alerts (not acknowledged).
    pub alerts_open: u64,
    /// Readings refused because they could not be stored (disk).
    pub readings_refused: u64,
}

/// The hub's view of the chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHealth {
    pub reachable: bool,
    pub head: Option<u64>,
    pub synced: Option<u64>,
    /// Blocks between the head and what the hub's mirror has read.
    pub lag_blocks: Option<u64>,
    /// The last anchor's block, and how many anchors so far.
    pub last_anchor_block: Option<u64>,
    pub anchors: u64,
}

/// One registered device: when it was last heard from, and what the hub's
/// behaviour model says of it (finding kinds only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceHealth {
    /// The on-chain device id (hex).
    pub device: String,
    pub kind: Option<String>,
    /// `active`, `removed`, `quarantined`, ...
    pub standing: String,
    pub last_seen_ms: Option<i64>,
    pub findings: Vec<String>,
}

/// Hub → node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "message", rename_all = "snake_case")]
pub enum HubFleetMessage {
    Heartbeat(Box<Signed<Heartbeat>>),
    /// A physician leaves a signed alert policy for a hub of their patient;
    /// the hub fetches it with its next heartbeat's answer.
    ProposePolicy(Box<Signed<AlertPolicyDoc>>),
}

/// Node → hub (or proposer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum FleetAnswer {
    Kept {
        node_time_ms: i64,
        /// A signed policy proposed for this hub and newer than its
        /// `config_version`; the hub checks it itself.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        proposed_policy: Option<Box<Signed<AlertPolicyDoc>>>,
        /// A release the staged rollout offers this hub.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offered_release: Option<ReleaseOffer>,
    },
    /// A policy proposal was kept for the hub's next heartbeat.
    Proposed {
        version: u64,
    },
    Refused {
        reason: FleetRefusal,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum FleetRefusal {
    #[error("the signature does not check: {detail}")]
    BadSignature { detail: String },
    #[error("signed by {actual}, not by {expected}")]
    WrongSigner { expected: Address, actual: Address },
    #[error("hub {hub} serves no patient on chain")]
    NotAHub { hub: Address },
    /// Not newer than the last heartbeat kept: same run and an old
    /// sequence number, or a run older than the one seen.
    #[error("heartbeat {seq} of the run started at {boot_ms} is not newer than the last kept")]
    Replayed { boot_ms: i64, seq: u64 },
    #[error("too often: at most one heartbeat every {min_interval_s} s")]
    TooOften { min_interval_s: u64 },
    #[error("the fleet is full ({max} hubs)")]
    FleetFull { max: usize },
    #[error("the message breaks a bound: {detail}")]
    OverBound { detail: String },
    #[error("{signer} holds no live grant from the patient of hub {hub}")]
    NoLiveGrant { signer: Address, hub: Address },
    #[error("the chain cannot be read: {detail}")]
    ChainUnavailable { detail: String },
    #[error("malformed: {detail}")]
    Malformed { detail: String },
    #[error("the node is busy; try again")]
    Busy,
}

impl Heartbeat {
    /// Checks every bound a node relies on before keeping it.
    pub fn check_bounds(&self) -> Result<(), FleetRefusal> {
        let over = |detail: String| Err(FleetRefusal::OverBound { detail });
        if self.devices.len() > MAX_HEARTBEAT_DEVICES {
            return over(format!(
                "{} devices (at most {MAX_HEARTBEAT_DEVICES})",
                self.devices.len()
            ));
        }
        if self.failing_stages.len() > MAX_FAILING_STAGES {
            return over(format!("{} failing stages", self.failing_stages.len()));
        }
        let long = |text: &str| text.chars().count() > MAX_FIELD_CHARS;
        if let Some(UpdateOutcome::Refused { why } | UpdateOutcome::RolledBack { why }) =
            self.update.as_ref().map(|u| &u.outcome)
            && why.chars().count() > MAX_WHY_CHARS
        {
            return over(format!(
                "an update's reason is over {MAX_WHY_CHARS} characters"
            ));
        }
        let texts = std::iter::once(self.version.as_str())
            .chain(self.release.as_deref())
            .chain(self.update.as_ref().map(|u| u.version.as_str()))
            .chain(self.failing_stages.iter().map(String::as_str))
            .chain(self.devices.iter().flat_map(|d| {
                std::iter::once(d.device.as_str())
                    .chain(d.kind.as_deref())
                    .chain(std::iter::once(d.standing.as_str()))
                    .chain(d.findings.iter().map(String::as_str))
            }));
        for text in texts {
            if long(text) {
                return over(format!("a text field is over {MAX_FIELD_CHARS} characters"));
            }
        }
        if self
            .devices
            .iter()
            .any(|d| d.findings.len() > MAX_DEVICE_FINDINGS)
        {
            return over(format!(
                "a device names more than {MAX_DEVICE_FINDINGS} findings"
            ));
        }
        if self.seq == 0 {
            return over("sequence numbers start at 1".into());
        }
        Ok(())
    }
}

/// Cuts text to the field bound (the hub sends within bounds).
pub fn cap(text: &str) -> String {
    text.chars().take(MAX_FIELD_CHARS).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum FleetWireError {
    #[error("encoding: {0}")]
    Encode(String),
    #[error("{0} bytes is over the fleet protocol's bound")]
    TooLarge(usize),
    #[error("malformed: {0}")]
    Malformed(String),
}

pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, FleetWireError> {
    let mut out = Vec::new();
    ciborium::into_writer(message, &mut out).map_err(|e| FleetWireError::Encode(e.to_string()))?;
    if out.len() > MAX_FLEET_MESSAGE_BYTES {
        return Err(FleetWireError::TooLarge(out.len()));
    }
    Ok(out)
}

pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, FleetWireError> {
    if bytes.len() > MAX_FLEET_MESSAGE_BYTES {
        return Err(FleetWireError::TooLarge(bytes.len()));
    }
    ciborium::from_reader(bytes).map_err(|e| FleetWireError::Malformed(e.to_string()))
}

/// Sends one message on a new stream of `connection` and reads the answer
/// (bounded); the caller bounds the time.
pub async fn exchange(
    connection: &iroh::endpoint::Connection,
    message: &HubFleetMessage,
) -> Result<FleetAnswer, String> {
    let bytes = encode(message).map_err(|e| e.to_string())?;
    let (mut send, mut recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
    send.write_all(&bytes).await.map_err(|e| e.to_string())?;
    send.finish().map_err(|e| e.to_string())?;
    let answer = recv
        .read_to_end(MAX_FLEET_MESSAGE_BYTES)
        .await
        .map_err(|e| e.to_string())?;
    decode::<FleetAnswer>(&answer).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::local::PrivateKeySigner;

    pub(crate) fn heartbeat(hub: Address) -> Heartbeat {
        Heartbeat {
            hub,
            boot_ms: 1_700_000_000_000,
            seq: 1,
            sent_at_ms: 1_700_000_060_000,
            version: "0.1.0".into(),
            release: Some("2026.12.1".into()),
            uptime_s: 60,
            disk_free_bytes: Some(1 << 30),
            disk_total_bytes: Some(4 << 30),
            rss_kib: 65_000,
            cpu_ms: 1200,
            mem_available_kib: Some(3_000_000),
            queues: Queues::default(),
            chain: ChainHealth::default(),
            devices: (0..MAX_HEARTBEAT_DEVICES)
                .map(|i| DeviceHealth {
                    device: format!("0x{:064x}", i),
                    kind: Some("cgm".into()),
                    standing: "active".into(),
                    last_seen_ms: Some(1_700_000_059_000),
                    findings: vec!["node_behaviour:flood".into(); MAX_DEVICE_FINDINGS],
                })
                .collect(),
            failing_stages: vec![],
            config_version: 0,
            clock_offset_ms: Some(-12),
            update: Some(UpdateReport {
                version: "x".repeat(MAX_FIELD_CHARS),
                sha256: [7; 32],
                at_ms: 1_700_000_000_000,
                outcome: UpdateOutcome::RolledBack {
                    why: "y".repeat(MAX_WHY_CHARS),
                },
            }),
        }
    }

    #[test]
    fn a_signed_heartbeat_at_its_bounds_round_trips_and_names_its_signer() {
        let key = PrivateKeySigner::random();
        let beat = heartbeat(key.address());
        beat.check_bounds().unwrap();
        let message = HubFleetMessage::Heartbeat(Box::new(Signed::sign(beat, &key).unwrap()));
        let bytes = encode(&message).unwrap();
        assert!(bytes.len() < MAX_FLEET_MESSAGE_BYTES, "{}", bytes.len());
        let back: HubFleetMessage = decode(&bytes).unwrap();
        let HubFleetMessage::Heartbeat(signed) = back else {
            panic!("not a heartbeat")
        };
        assert_eq!(signed.signer().unwrap(), key.address());
    }

    #[test]
    fn bounds_are_checked() {
        let mut beat = heartbeat(Address::ZERO);
        beat.devices.push(beat.devices[0].clone());
        assert!(matches!(
            beat.check_bounds(),
            Err(FleetRefusal::OverBound { .. })
        ));
        let mut beat = heartbeat(Address::ZERO);
        beat.version = "x".repeat(MAX_FIELD_CHARS + 1);
        assert!(beat.check_bounds().is_err());
        let mut beat = heartbeat(Address::ZERO);
        beat.seq = 0;
        assert!(beat.check_bounds().is_err());
        assert_eq!(cap(&"é".repeat(100)).chars().count(), MAX_FIELD_CHARS);
    }

    #[test]
    fn garbage_and_oversize_are_typed_errors() {
        assert!(matches!(
            decode::<HubFleetMessage>(&[0xff, 0x00]),
            Err(FleetWireError::Malformed(_))
        ));
        assert!(matches!(
            decode::<HubFleetMessage>(&vec![0u8; MAX_FLEET_MESSAGE_BYTES + 1]),
            Err(FleetWireError::TooLarge(_))
        ));
    }
}
