//! Rust-side names for the small enums the contracts store as `uint8`, and the
//! values the client takes and returns.

use alloy::primitives::{Address, B256};
use serde::{Deserialize, Serialize};

/// How a chain prices gas: the client bids accordingly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeePolicy {
    /// Zero base fee and a zero minimum gas price (the consortium's Besu
    /// network, and the dev chain): transactions bid zero, so keys made on
    /// devices transact without holding ether.
    #[default]
    Free,
    /// Fees as the node suggests; every sender needs ether.
    Market,
}

/// A transaction that landed: what the demo and the gas table print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxOutcome {
    pub call: &'static str,
    pub hash: B256,
    pub gas_used: u64,
    pub block: u64,
}

macro_rules! u8_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:expr),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[repr(u8)]
        pub enum $name { $($(#[$vmeta])* $variant = $value),+ }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn from_u8(value: u8) -> Option<Self> {
                match value {
                    $($value => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl From<$name> for u8 {
            fn from(value: $name) -> u8 {
                value as u8
            }
        }
    };
}

u8_enum!(
    /// The one role an account holds (`Roles.Role`).
    Role {
        None = 0,
        Entity = 1,
        Physician = 2,
        Patient = 3,
        Hub = 4,
        /// A hospital's re-encryption proxy.
        Proxy = 5,
        /// A patient key rotated away: it can never hold a role again.
        Retired = 6,
    }
);

u8_enum!(
    /// A medical entity's kind (`Roles.EntityKind`).
    EntityKind {
        Hospital = 1,
        Clinic = 2,
        Lab = 3,
        /// Its physicians may open time-limited emergency access.
        EmergencyService = 4,
    }
);

u8_enum!(
    /// What a registered device measures; stored with the device so the hub
    /// knows which readings to expect from it.
    DeviceKind {
        Glucometer = 1,
        Cgm = 2,
        BloodPressure = 3,
        HeartRate = 4,
        Weight = 5,
        Thermometer = 6,
        PulseOximeter = 7,
        Other = 255,
    }
);

u8_enum!(
    /// What an access-log entry records (`AccessLog.Action`): a read under an
    /// ordinary grant, or under an emergency grant.
    AccessAction {
        Read = 0,
        EmergencyRead = 1,
    }
);

/// A device as the `Devices` contract stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRecord {
    pub patient: Address,
    /// `None` when the chain holds a kind this build does not know.
    pub kind: Option<DeviceKind>,
    pub active: bool,
    pub added_at: u64,
}

/// A grant as the `Permissions` contract stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantRecord {
    /// 1-based id of the grant.
    pub id: u64,
    pub patient: Address,
    pub grantee: Address,
    /// The grantee's entity and enrolment epoch when granted.
    pub entity: Address,
    pub epoch: u32,
    pub policy_id: B256,
    pub scope: GrantScope,
    pub emergency: bool,
    pub revoked: bool,
    /// Unix seconds.
    pub granted_at: u64,
    pub expiry: Expiry,
}

/// What a grant lets a physician read: kinds of data, and the window of data
/// time (unix seconds, inclusive; `data_until` `None`: open-ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantScope {
    pub kinds: DataKinds,
    pub data_from: u64,
    pub data_until: Option<u64>,
}

impl GrantScope {
    /// Every kind of data, from any time.
    pub const EVERYTHING: Self = Self {
        kinds: DataKinds::ALL,
        data_from: 0,
        data_until: None,
    };
}

/// The patient's emergency policy: what an emergency physician may read, how
/// far back, and for how long at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyPolicy {
    pub kinds: DataKinds,
    pub max_duration_secs: u32,
    pub lookback_secs: u32,
    pub enabled: bool,
}

/// Kinds of patient data as the contracts' `uint16` bits (`DataKinds.sol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DataKinds(u16);

impl DataKinds {
    pub const GLUCOSE: Self = Self(1 << 0);
    pub const BLOOD_PRESSURE: Self = Self(1 << 1);
    pub const HEART_RATE: Self = Self(1 << 2);
    pub const WEIGHT: Self = Self(1 << 3);
    pub const TEMPERATURE: Self = Self(1 << 4);
    pub const PULSE_OXIMETRY: Self = Self(1 << 5);
    /// The hub's anomaly findings and alerts.
    pub const FINDINGS: Self = Self(1 << 6);
    pub const ALL: Self = Self(0x7f);
    pub const NONE: Self = Self(0);

    /// `None` for bits no kind uses.
    pub const fn from_bits(bits: u16) -> Option<Self> {
        if bits & !Self::ALL.0 == 0 {
            Some(Self(bits))
        } else {
            None
        }
    }

    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Each kind: its form name, its name in words, and itself.
    pub const NAMED: [(&'static str, &'static str, Self); 7] = [
        ("glucose", "glucose", Self::GLUCOSE),
        ("blood_pressure", "blood pressure", Self::BLOOD_PRESSURE),
        ("heart_rate", "heart rate", Self::HEART_RATE),
        ("weight", "weight", Self::WEIGHT),
        ("temperature", "temperature", Self::TEMPERATURE),
        ("pulse_oximetry", "pulse oximetry", Self::PULSE_OXIMETRY),
        ("findings", "findings", Self::FINDINGS),
    ];

    /// The kinds in words: "glucose, heart rate", or "nothing".
    pub fn words(self) -> String {
        let words: Vec<&str> = Self::NAMED
            .iter()
            .filter(|(_, _, k)| self.0 & k.0 != 0)
            .map(|(_, word, _)| *word)
            .collect();
        if words.is_empty() {
            "nothing".into()
        } else {
            words.join(", ")
        }
    }

    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// What a device of this kind measures.
    pub const fn of_device(kind: DeviceKind) -> Self {
        match kind {
            DeviceKind::Glucometer | DeviceKind::Cgm => Self::GLUCOSE,
            DeviceKind::BloodPressure => Self::BLOOD_PRESSURE,
            DeviceKind::HeartRate => Self::HEART_RATE,
            DeviceKind::Weight => Self::WEIGHT,
            DeviceKind::Thermometer => Self::TEMPERATURE,
            DeviceKind::PulseOximeter => Self::PULSE_OXIMETRY,
            DeviceKind::Other => Self::NONE,
        }
    }
}

impl std::ops::BitOr for DataKinds {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

/// A point in time as the contracts store it: unix seconds, never zero (the
/// contracts use zero for "none").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct UnixSeconds(u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("zero is not a time: the contracts read it as 'none'")]
pub struct ZeroTime;

impl UnixSeconds {
    pub const fn new(secs: u64) -> Result<Self, ZeroTime> {
        if secs == 0 {
            Err(ZeroTime)
        } else {
            Ok(Self(secs))
        }
    }

    pub fn now() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1);
        Self(secs.max(1))
    }

    /// This time plus `duration` (saturating).
    pub fn plus(self, duration: std::time::Duration) -> Self {
        Self(self.0.saturating_add(duration.as_secs()))
    }

    pub const fn get(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for UnixSeconds {
    type Error = ZeroTime;
    fn try_from(secs: u64) -> Result<Self, ZeroTime> {
        Self::new(secs)
    }
}

impl From<UnixSeconds> for u64 {
    fn from(t: UnixSeconds) -> u64 {
        t.0
    }
}

/// When a grant ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expiry {
    Never,
    At(UnixSeconds),
}

impl Expiry {
    /// `duration` from now.
    pub fn after(duration: std::time::Duration) -> Self {
        Self::At(UnixSeconds::now().plus(duration))
    }

    /// The contracts' encoding: zero for never.
    pub const fn to_chain(self) -> u64 {
        match self {
            Self::Never => 0,
            Self::At(t) => t.0,
        }
    }

    pub const fn from_chain(secs: u64) -> Self {
        if secs == 0 {
            Self::Never
        } else {
            Self::At(UnixSeconds(secs))
        }
    }
}

/// A batch to anchor: its root, the window of readings it covers, and the
/// kinds of data in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAnchor {
    pub root: B256,
    /// Unix seconds, inclusive.
    pub window_start: u64,
    pub window_end: u64,
    pub count: u32,
    pub kinds: DataKinds,
}

/// An anchored batch as the `Anchors` contract stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnchorRecord {
    pub patient: Address,
    pub submitter: Address,
    pub batch: BatchAnchor,
    pub anchored_at: u64,
    /// 1-based position among the patient's anchors.
    pub seq: u64,
}

/// A hub release as the `Releases` contract stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRecord {
    /// The SHA-256 of the signed bundle.
    pub bundle_hash: B256,
    pub version: String,
    pub publisher: Address,
    pub published_at: u64,
    /// When it was withdrawn, if it was.
    pub withdrawn_at: Option<u64>,
    /// 1 for the first release.
    pub seq: u64,
}

/// One change to a patient's devices, as the `Devices` events record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceChange {
    pub block: u64,
    pub log_index: u64,
    pub device: crate::DeviceId,
    pub change: DeviceChangeKind,
    /// The patient or the hub that made the change.
    pub by: Address,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChangeKind {
    /// Added, with its kind (`None` if this build does not know the kind).
    Added(Option<DeviceKind>),
    Removed,
    /// Taken from the patient by the dispute path (admin or registering physician).
    Released,
}

/// One access-log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessEntry {
    pub patient: Address,
    pub physician: Address,
    pub data_id: B256,
    /// The proxy that recorded (and served) the access.
    pub proxy: Address,
    /// The grant that allowed it.
    pub grant_id: u64,
    pub action: Option<AccessAction>,
    /// Block timestamp of the entry, unix seconds.
    pub at: u64,
    /// 1-based position in the patient's log.
    pub seq: u64,
    /// The request's nonce (tells a retry its own entry).
    pub nonce: alloy::primitives::U256,
    pub block: u64,
}

/// An entity as `Roles` stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityRecord {
    pub kind: Option<EntityKind>,
    pub active: bool,
    pub epoch: u32,
    pub name: String,
}

/// A physician's enrolment as `Roles` stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysicianRecord {
    pub entity: Address,
    pub entity_epoch: u32,
    pub epoch: u32,
    pub active: bool,
}

/// A re-encryption proxy as `Roles` stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyRecord {
    pub hospital: Address,
    pub hospital_epoch: u32,
    pub active: bool,
    pub node_id: B256,
}

/// A hub's binding as `Roles` stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubRecord {
    pub patient: Address,
    pub may_manage_devices: bool,
}

/// An emergency access opened for the patient (`EmergencyAccessOpened`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyAccess {
    pub block: u64,
    pub physician: Address,
    pub entity: Address,
    pub grant_id: u64,
    pub expires_at: u64,
}

/// A consortium proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalRecord {
    pub id: u64,
    pub proposer: Address,
    pub target: Address,
    pub created_at: u64,
    pub executed: bool,
    pub cancelled: bool,
    pub data: alloy::primitives::Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_not_a_time_and_never_is_zero_on_chain() {
        assert_eq!(UnixSeconds::new(0), Err(ZeroTime));
        assert_eq!(Expiry::Never.to_chain(), 0);
        let at = Expiry::At(UnixSeconds::new(1_700_000_000).unwrap());
        assert_eq!(at.to_chain(), 1_700_000_000);
        assert_eq!(Expiry::from_chain(0), Expiry::Never);
        assert_eq!(Expiry::from_chain(1_700_000_000), at);
        assert!(serde_json::from_str::<UnixSeconds>("0").is_err());
    }

    #[test]
    fn data_kinds_refuse_unknown_bits_and_map_devices() {
        assert_eq!(DataKinds::from_bits(0x80), None);
        assert_eq!(DataKinds::from_bits(0x7f), Some(DataKinds::ALL));
        let both = DataKinds::GLUCOSE | DataKinds::FINDINGS;
        assert!(both.contains(DataKinds::GLUCOSE));
        assert!(!both.contains(DataKinds::WEIGHT));
        assert_eq!(DataKinds::of_device(DeviceKind::Cgm), DataKinds::GLUCOSE);
        assert!(DataKinds::ALL.contains(DataKinds::of_device(DeviceKind::PulseOximeter)));
    }
}
