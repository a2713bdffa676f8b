//! Device identity for admission. BLE devices that protect their privacy
//! advertise with resolvable private addresses (RPAs) that change every few
//! minutes; only after bonding, with the device's Identity Resolving Key,
//! does BlueZ know it by its *identity address* — its public address or its
//! static random address — and it names the Device1 object by that. So the
//! identity the hub admits is the Device1 `Address` of a bonded device whose
//! `AddressType` is "public", or "random" with the two most significant bits
//! 0b11 (static). A "random" address with top bits 0b01 is an RPA that
//! BlueZ could not resolve (no IRK: never bonded, or bonded without key
//! distribution) and 0b00 is non-resolvable: both change over time, so such
//! devices are skipped with an event rather than admitted under an address
//! that will not mean the same device tomorrow.

use std::fmt;
use std::str::FromStr;

/// A Bluetooth device address, most significant octet first — the order it
/// is written in (`AA:BB:CC:DD:EE:FF` is `[0xAA, …, 0xFF]`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BdAddr(pub [u8; 6]);

impl fmt::Display for BdAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02X}:{b:02X}:{c:02X}:{d:02X}:{e:02X}:{g:02X}")
    }
}

impl fmt::Debug for BdAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BdAddr({self})")
    }
}

/// A string that is not `XX:XX:XX:XX:XX:XX` in hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Bluetooth address (want XX:XX:XX:XX:XX:XX): {0:?}")]
pub struct AddrParseError(pub String);

impl FromStr for BdAddr {
    type Err = AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || AddrParseError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            // from_str_radix alone would take "+f" as 15.
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(BdAddr(out))
    }
}

/// What kind of stable identity address a device has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentityKind {
    /// An IEEE-assigned public address.
    Public,
    /// A static random address (fixed for the device's power cycle or
    /// lifetime, top two bits 0b11).
    StaticRandom,
}

/// The identity the hub admits a BLE device by, on every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The identity address.
    pub address: BdAddr,
    /// Public or static random.
    pub kind: IdentityKind,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            IdentityKind::Public => "public",
            IdentityKind::StaticRandom => "static-random",
        };
        write!(f, "{} ({kind})", self.address)
    }
}

/// Why a device BlueZ knows is not given a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// A resolvable private address BlueZ has not resolved to an identity
    /// (top bits 0b01): it will change.
    UnresolvedPrivateAddress,
    /// A non-resolvable private address (top bits 0b00): it will change.
    NonResolvableAddress,
    /// A random address with the reserved top bits 0b10.
    ReservedAddressType,
    /// The device offers none of the supported health services (by the
    /// UUIDs BlueZ lists for it, or found on connecting): a bonded
    /// keyboard, phone or the like, left alone.
    NoSupportedService,
}

/// Classifies a Device1 address: `le_random` is AddressType == "random".
pub fn classify(address: BdAddr, le_random: bool) -> Result<Identity, SkipReason> {
    if !le_random {
        return Ok(Identity {
            address,
            kind: IdentityKind::Public,
        });
    }
    match address.0[0] >> 6 {
        0b11 => Ok(Identity {
            address,
            kind: IdentityKind::StaticRandom,
        }),
        0b01 => Err(SkipReason::UnresolvedPrivateAddress),
        0b00 => Err(SkipReason::NonResolvableAddress),
        _ => Err(SkipReason::ReservedAddressType),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let a: BdAddr = "C3:0a:11:22:33:44".parse().expect("valid");
        assert_eq!(a.0, [0xC3, 0x0A, 0x11, 0x22, 0x33, 0x44]);
        assert_eq!(a.to_string(), "C3:0A:11:22:33:44");
        for bad in [
            "",
            "C3:0A:11:22:33",
            "C3:0A:11:22:33:44:55",
            "C3-0A-11-22-33-44",
            "C3:0A:11:22:33:4",
            "G3:0A:11:22:33:44",
            "+3:0A:11:22:33:44",
        ] {
            assert!(bad.parse::<BdAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn classifies_identity_addresses() {
        let addr = |s: &str| s.parse::<BdAddr>().expect("valid");
        assert_eq!(
            classify(addr("00:1A:7D:DA:71:13"), false).map(|i| i.kind),
            Ok(IdentityKind::Public)
        );
        assert_eq!(
            classify(addr("C3:00:00:00:00:01"), true).map(|i| i.kind),
            Ok(IdentityKind::StaticRandom)
        );
        assert_eq!(
            classify(addr("4A:00:00:00:00:01"), true),
            Err(SkipReason::UnresolvedPrivateAddress)
        );
        assert_eq!(
            classify(addr("1A:00:00:00:00:01"), true),
            Err(SkipReason::NonResolvableAddress)
        );
        assert_eq!(
            classify(addr("8A:00:00:00:00:01"), true),
            Err(SkipReason::ReservedAddressType)
        );
    }
}
