//! Device identities and the 32-byte ids the `Devices` contract stores.
//!
//! A BLE device is known by its bonded identity address (its resolvable private
//! addresses rotate; the identity address does not); any other device (MQTT,
//! Wi-Fi) by a maker-assigned name such as its MQTT client id. Both have a
//! canonical text form:
//!
//! | identity                     | canonical text            |
//! |------------------------------|---------------------------|
//! | BLE identity `aa:bb:..:ff`   | `ble:AA:BB:CC:DD:EE:FF`   |
//! | named device `cgm-7`         | `name:cgm-7`              |
//!
//! The on-chain id is keyed: `keccak256("glyco/device-id/v2" ‖ key ‖ text)`
//! with the consortium's [`DeviceIdKey`]. A plain hash of a 48-bit address
//! is reversed in about 2^24 guesses once the vendor prefix is known; without
//! the key the id says nothing, while every hub (which holds the key) derives
//! the same id, so the contract still refuses duplicates.

use std::fmt;
use std::str::FromStr;

use std::path::Path;

use alloy::primitives::{B256, keccak256};
use serde::{Deserialize, Serialize};

use crate::keys::{KeyError, read_secret, write_secret};

/// Longest accepted device name, in bytes (it is also an MQTT username).
pub const MAX_NAME_LEN: usize = 64;
/// Names beginning with this are the hub's own (its broker link, internal
/// clients); no device may take one.
pub const RESERVED_NAME_PREFIX: &str = "glyco-";

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
    #[error("device names beginning with {RESERVED_NAME_PREFIX:?} are reserved for the hub")]
    ReservedName,
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
        if name
            .get(..RESERVED_NAME_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_NAME_PREFIX))
        {
            return Err(DeviceIdentityError::ReservedName);
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

    /// An unkeyed digest of the canonical text, for the hub's own indexes
    /// (its journal). Reversible for BLE addresses: never publish it; the
    /// chain gets [`DeviceIdKey::id_of`].
    pub fn local_digest(&self) -> B256 {
        keccak256(self.to_string().as_bytes())
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

/// The consortium-wide key of device ids. Every hub holds the same key (a
/// file of mode 0600, provisioned with the deployment); its fingerprint is in
/// the deployment file so a hub with the wrong key refuses to start instead of
/// seeing every device as unknown. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceIdKey(B256);

impl fmt::Debug for DeviceIdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceIdKey(fingerprint {})", self.fingerprint())
    }
}

impl DeviceIdKey {
    pub fn from_bytes(key: B256) -> Self {
        Self(key)
    }

    /// A fresh random key (once per consortium, at deployment).
    pub fn generate() -> Self {
        // The same generator a fresh signing key comes from.
        Self(alloy::signers::local::PrivateKeySigner::random().to_bytes())
    }

    /// Loads the key file, refusing one that group or others can read.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        read_secret(path).map(Self)
    }

    /// Writes the key to a new file of mode 0600.
    pub fn save_new(&self, path: &Path) -> Result<(), KeyError> {
        write_secret(path, &self.0)
    }

    /// The key itself: only for handing it to a hub being enrolled, over
    /// the enrolment node's authenticated channel (docs/APPLIANCE.md).
    pub fn to_bytes(&self) -> B256 {
        self.0
    }

    /// Identifies the key without revealing it.
    pub fn fingerprint(&self) -> B256 {
        let mut input = b"glyco/device-id-key/fingerprint".to_vec();
        input.extend_from_slice(self.0.as_slice());
        keccak256(input)
    }

    /// The device's on-chain id.
    pub fn id_of(&self, identity: &DeviceIdentity) -> DeviceId {
        let mut input = b"glyco/device-id/v2".to_vec();
        input.extend_from_slice(self.0.as_slice());
        input.extend_from_slice(identity.to_string().as_bytes());
        DeviceId(keccak256(input))
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
        let key = DeviceIdKey::generate();
        assert_eq!(key.id_of(&lower), key.id_of(&upper));
    }

    #[test]
    fn the_chain_id_is_keyed_and_never_the_plain_hash() {
        let identity = DeviceIdentity::ble("C0:26:DA:01:02:03").unwrap();
        let key = DeviceIdKey::from_bytes(B256::repeat_byte(7));
        let id = key.id_of(&identity);
        assert_ne!(id.0, identity.local_digest());
        assert_ne!(id.0, keccak256(b"ble:C0:26:DA:01:02:03"));
        // Another consortium's key gives another id; the same key the same id.
        let other = DeviceIdKey::from_bytes(B256::repeat_byte(8));
        assert_ne!(other.id_of(&identity), id);
        assert_eq!(
            DeviceIdKey::from_bytes(B256::repeat_byte(7)).id_of(&identity),
            id
        );
    }

    #[test]
    fn a_name_and_a_ble_address_never_share_an_id() {
        let key = DeviceIdKey::generate();
        let ble = DeviceIdentity::ble("AA:BB:CC:DD:EE:FF").unwrap();
        let name = DeviceIdentity::name("AA_BB_CC_DD_EE_FF").unwrap();
        assert_ne!(key.id_of(&ble), key.id_of(&name));
    }

    #[test]
    fn the_key_file_is_0600_and_debug_shows_only_the_fingerprint() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device-id.key");
        let key = DeviceIdKey::generate();
        key.save_new(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(DeviceIdKey::load(&path).unwrap(), key);
        assert!(
            key.save_new(&path).is_err(),
            "an existing key is never overwritten"
        );
        let debug = format!("{key:?}");
        assert!(!debug.contains(&key.0.to_string()[2..]), "{debug}");
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
        for reserved in ["glyco-hub", "GLYCO-hub", "glyco-anything"] {
            assert_eq!(
                DeviceIdentity::name(reserved),
                Err(ReservedName),
                "{reserved}"
            );
        }
        assert!(DeviceIdentity::name("glycometer-1").is_ok());
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
