//! Device identities and the 32-byte ids the `Devices` contract stores.
//!
//! A BLE device is known by its bonded identity address (its resolvable private
//! addresses rotate; the identity address does not); any other device (MQTT,
//! Wi-Fi) by a maker-assigned name such as its MQTT client id. The on-chain id
//! is `keccak256` of a canonical text form, so the chain never stores a raw MAC
//! and both kinds share one 32-byte space without collisions:
//!
//! | identity                     | canonical text            |
//! |------------------------------|---------------------------|
//! | BLE identity `aa:bb:..:ff`   | `ble:AA:BB:CC:DD:EE:FF`   |
//! | named device `cgm-7`         | `name:cgm-7`              |

use std::fmt;
use std::str::FromStr;

use alloy::primitives::{B256, keccak256};
use serde::{Deserialize, Serialize};

/// Longest accepted device name, in bytes (it is also an MQTT username).
pub const MAX_NAME_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceIdentityError {
    #[error("device name is empty")]
    EmptyName,
    #[error("device name is {0} bytes; at most {MAX_NAME_LEN} are allowed")]
    NameTooLong(usize),
    #[error("device name {0:?} may use only ASCII letters, digits, '-', '_' and '.'")]
    InvalidNameChar(String),
    #[error("{0:?} is not a Bluetooth address (expected six hex octets separated by ':')")]
    InvalidBleAddress(String),
}

/// Who a device is, before hashing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceIdentity {
    /// A bonded BLE device's identity address.
    Ble([u8; 6]),
    /// A named (MQTT / Wi-Fi) device.
    Name(String),
}

impl DeviceIdentity {
    /// A named device; names are restricted so they are safe as MQTT usernames
    /// and topic levels.
    pub fn name(name: &str) -> Result<Self, DeviceIdentityError> {
        if name.is_empty() {
            return Err(DeviceIdentityError::EmptyName);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(DeviceIdentityError::NameTooLong(name.len()));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(DeviceIdentityError::InvalidNameChar(name.to_owned()));
        }
        Ok(Self::Name(name.to_owned()))
    }

    /// A BLE identity address written as `AA:BB:CC:DD:EE:FF` (either case).
    pub fn ble(address: &str) -> Result<Self, DeviceIdentityError> {
        let invalid = || DeviceIdentityError::InvalidBleAddress(address.to_owned());
        let mut octets = [0u8; 6];
        let mut parts = address.split(':');
        for octet in &mut octets {
            let part = parts.next().ok_or_else(invalid)?;
            if part.len() != 2 {
                return Err(invalid());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| invalid())?;
        }
        if parts.next().is_some() {
            return Err(invalid());
        }
        Ok(Self::Ble(octets))
    }

    /// The 32-byte id used on chain.
    pub fn device_id(&self) -> DeviceId {
        DeviceId(keccak256(self.to_string().as_bytes()))
    }
}

impl fmt::Display for DeviceIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ble(o) => write!(
                f,
                "ble:{:02X}:{:02X}:{:02X}:{:02X}:{:02X}:{:02X}",
                o[0], o[1], o[2], o[3], o[4], o[5]
            ),
            Self::Name(name) => write!(f, "name:{name}"),
        }
    }
}

impl FromStr for DeviceIdentity {
    type Err = DeviceIdentityError;

    /// Parses the canonical text (`ble:..` or `name:..`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(address) = s.strip_prefix("ble:") {
            Self::ble(address)
        } else if let Some(name) = s.strip_prefix("name:") {
            Self::name(name)
        } else {
            Self::name(s)
        }
    }
}

impl TryFrom<String> for DeviceIdentity {
    type Error = DeviceIdentityError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DeviceIdentity> for String {
    fn from(identity: DeviceIdentity) -> Self {
        identity.to_string()
    }
}

/// The on-chain device id: `keccak256(canonical identity)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceId(pub B256);

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<B256> for DeviceId {
    fn from(b: B256) -> Self {
        Self(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ble_addresses_are_case_insensitive_and_canonical() {
        let lower = DeviceIdentity::ble("aa:bb:cc:dd:ee:0f").unwrap();
        let upper: DeviceIdentity = "ble:AA:BB:CC:DD:EE:0F".parse().unwrap();
        assert_eq!(lower, upper);
        assert_eq!(lower.to_string(), "ble:AA:BB:CC:DD:EE:0F");
        assert_eq!(lower.device_id(), upper.device_id());
    }

    #[test]
    fn device_id_is_keccak_of_the_canonical_text() {
        let id = DeviceIdentity::name("cuff-1").unwrap().device_id();
        assert_eq!(id.0, keccak256(b"name:cuff-1"));
    }

    #[test]
    fn a_name_and_a_ble_address_never_share_an_id() {
        let ble = DeviceIdentity::ble("AA:BB:CC:DD:EE:FF").unwrap();
        let name = DeviceIdentity::name("AA_BB_CC_DD_EE_FF").unwrap();
        assert_ne!(ble.device_id(), name.device_id());
    }

    #[test]
    fn bad_identities_are_refused_with_a_reason() {
        use DeviceIdentityError::*;
        assert_eq!(DeviceIdentity::name(""), Err(EmptyName));
        assert_eq!(DeviceIdentity::name(&"x".repeat(65)), Err(NameTooLong(65)));
        assert!(matches!(
            DeviceIdentity::name("a/b"),
            Err(InvalidNameChar(_))
        ));
        assert!(matches!(
            DeviceIdentity::name("a+"),
            Err(InvalidNameChar(_))
        ));
        for bad in [
            "AA:BB:CC:DD:EE",
            "AA:BB:CC:DD:EE:FF:00",
            "AA:BB:CC:DD:EE:GG",
            "AABBCCDDEEFF",
            "A:BB:CC:DD:EE:FFF",
        ] {
            assert!(
                matches!(DeviceIdentity::ble(bad), Err(InvalidBleAddress(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn identities_round_trip_through_serde_as_text() {
        let identity = DeviceIdentity::ble("01:02:03:04:05:06").unwrap();
        let json = serde_json::to_string(&identity).unwrap();
        assert_eq!(json, "\"ble:01:02:03:04:05:06\"");
        assert_eq!(
            serde_json::from_str::<DeviceIdentity>(&json).unwrap(),
            identity
        );
    }
}
