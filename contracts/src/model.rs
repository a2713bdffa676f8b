//! Rust-side names for the small enums the contracts store as `uint8`, and the
//! values the client takes and returns.

use alloy::primitives::{Address, B256};
use serde::{Deserialize, Serialize};

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
    }
);

u8_enum!(
    /// A medical entity's kind (`Roles.EntityKind`).
    EntityKind {
        Hospital = 1,
        Clinic = 2,
        Lab = 3,
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
    /// What an access-log entry records (`AccessLog.Action`).
    AccessAction {
        Read = 0,
        Reencrypt = 1,
        EmergencyRead = 2,
        Denied = 3,
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

/// Read and/or write access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Access {
    pub read: bool,
    pub write: bool,
}

impl Access {
    pub const READ: Self = Self {
        read: true,
        write: false,
    };
    pub const READ_WRITE: Self = Self {
        read: true,
        write: true,
    };
}

/// A permission as the `Permissions` contract stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantRecord {
    pub policy_id: B256,
    pub access: Access,
    pub granted_at: u64,
    /// Unix seconds; `None` when the grant does not expire.
    pub expires_at: Option<u64>,
    pub active: bool,
}

/// A batch to anchor: its root and the window of readings it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAnchor {
    pub root: B256,
    /// Unix seconds, inclusive.
    pub window_start: u64,
    pub window_end: u64,
    pub count: u32,
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
}

/// One access-log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessEntry {
    pub patient: Address,
    pub accessor: Address,
    pub data_id: B256,
    /// The hospital proxy or physician that recorded the access.
    pub recorder: Address,
    pub action: Option<AccessAction>,
    /// Block timestamp of the entry, unix seconds.
    pub at: u64,
    /// 1-based position in the patient's log.
    pub seq: u64,
    pub block: u64,
}
