//! Pairing a new device from the hub (the patient's Devices page): look
//! for health devices for a few seconds, bond with one (entering the
//! passkey the device shows, if it asks for one), and report the stable
//! identity address the hub will admit it by. Registering it on chain is
//! the caller's; the adapter supervision serves it once bonded.
//!
//! One operation runs at a time; a scan lasts at most a minute and lists
//! at most `MAX_FOUND` devices.

use std::collections::HashSet;
use std::time::Duration;

use bluer::agent::{Agent, ReqError};
use bluer::{AddressType, Session};
use futures::StreamExt;
use tokio::sync::Mutex;

use crate::gatt::HEALTH_SERVICES;
use crate::identity::{BdAddr, Identity, SkipReason, classify};
use crate::{Operation, SessionError};

/// Devices listed by one scan.
pub const MAX_FOUND: usize = 64;
/// The longest scan taken.
pub const MAX_SCAN: Duration = Duration::from_secs(60);
/// How long bonding may take (the patient reads and types a passkey).
const PAIR_TIMEOUT: Duration = Duration::from_secs(90);

/// Why a scan, a bonding or forgetting a bond failed.
#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    /// BlueZ could not be asked or refused.
    #[error("Bluetooth: {0}")]
    Bluetooth(#[from] SessionError),
    /// No adapter (the configured one, or any).
    #[error("no Bluetooth adapter{}", .0.as_deref().map(|a| format!(" named {a}")).unwrap_or_default())]
    NoAdapter(Option<String>),
    /// BlueZ does not know the address (not found by a scan).
    #[error("the hub does not see {0}; scan again with the device in pairing mode")]
    Unknown(BdAddr),
    /// BlueZ's Pair failed (a wrong passkey, the device refused or left).
    #[error("bonding with {address} failed: {reason}")]
    Bonding {
        /// The device.
        address: BdAddr,
        /// BlueZ's words.
        reason: String,
    },
    /// Bonding took too long.
    #[error("bonding with {0} took longer than {PAIR_TIMEOUT:?}")]
    Timeout(BdAddr),
    /// Bonded, but its address will change: it cannot be registered.
    #[error(
        "{address} has no stable identity address after bonding ({reason:?}); the hub cannot admit it by one"
    )]
    NoStableIdentity {
        /// The device.
        address: BdAddr,
        /// Why its address is not an identity.
        reason: SkipReason,
    },
    /// The typed passkey is not six digits.
    #[error("a passkey is 6 digits (000000 to 999999)")]
    Passkey,
}

/// A device a scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its address as BlueZ lists it.
    pub address: BdAddr,
    /// The name it advertises.
    pub name: Option<String>,
    /// An LE random address (public otherwise).
    pub random_address: bool,
    /// Signal strength, dBm.
    pub rssi: Option<i16>,
    /// The health services it advertises (of `HEALTH_SERVICES`).
    pub services: Vec<uuid::Uuid>,
    /// Bonded with this hub already.
    pub paired: bool,
}

/// A bonded device: the identity the hub admits it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paired {
    /// Its identity address.
    pub identity: Identity,
    /// Whether it was bonded already.
    pub already: bool,
}

/// A passkey typed by the patient: six digits.
pub fn parse_passkey(text: &str) -> Result<Option<u32>, PairingError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.len() != 6 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PairingError::Passkey);
    }
    text.parse().map(Some).map_err(|_| PairingError::Passkey)
}

/// Scans and bonds on the configured adapter (BlueZ's default if none).
#[derive(Debug)]
pub struct Pairer {
    adapter: Option<String>,
    rescan: crate::RescanNow,
    busy: Mutex<()>,
}

fn bt(operation: Operation) -> impl Fn(bluer::Error) -> PairingError {
    move |e| PairingError::Bluetooth(SessionError::bluetooth(operation, e))
}

impl Pairer {
    /// A pairer on `adapter` (BlueZ's default when `None`) that asks the
    /// sessions' supervision (`rescan`) to serve what it bonds at once.
    pub fn new(adapter: Option<String>, rescan: crate::RescanNow) -> Self {
        Self {
            adapter,
            rescan,
            busy: Mutex::new(()),
        }
    }

    async fn adapter(&self) -> Result<(Session, bluer::Adapter), PairingError> {
        let session = Session::new().await.map_err(bt(Operation::Adapters))?;
        let name = match &self.adapter {
            Some(name) => name.clone(),
            None => {
                let mut names = session
                    .adapter_names()
                    .await
                    .map_err(bt(Operation::Adapters))?;
                names.sort();
                match names.iter().position(|n| n == "hci0") {
                    Some(i) => names.swap_remove(i),
                    None => names
                        .into_iter()
                        .next()
                        .ok_or(PairingError::NoAdapter(None))?,
                }
            }
        };
        let adapter = session
            .adapter(&name)
            .map_err(|_| PairingError::NoAdapter(Some(name.clone())))?;
        if !adapter.is_powered().await.unwrap_or(false) {
            adapter
                .set_powered(true)
                .await
                .map_err(bt(Operation::Adapters))?;
        }
        Ok((session, adapter))
    }

    /// Looks for devices for `duration` (at most a minute): the health
    /// devices first, then the others by signal strength.
    pub async fn scan(&self, duration: Duration) -> Result<Vec<Found>, PairingError> {
        let _one = self.busy.lock().await;
        let (_session, adapter) = self.adapter().await?;
        let mut seen: HashSet<bluer::Address> = HashSet::new();
        {
            let events = adapter
                .discover_devices()
                .await
                .map_err(bt(Operation::Devices))?;
            let mut events = std::pin::pin!(events);
            let until = tokio::time::sleep(duration.min(MAX_SCAN));
            let mut until = std::pin::pin!(until);
            loop {
                tokio::select! {
                    _ = &mut until => break,
                    event = events.next() => match event {
                        Some(bluer::AdapterEvent::DeviceAdded(address)) => {
                            if seen.len() < 4 * MAX_FOUND {
                                seen.insert(address);
                            }
                        }
                        Some(_) => {}
                        None => break,
                    },
                }
            }
            // Dropping the stream ends the discovery session.
        }
        let mut found = Vec::new();
        for address in seen {
            let Ok(device) = adapter.device(address) else {
                continue;
            };
            let services: Vec<uuid::Uuid> = device
                .uuids()
                .await
                .ok()
                .flatten()
                .unwrap_or_default()
                .into_iter()
                .filter(|u| HEALTH_SERVICES.contains(u))
                .collect();
            found.push(Found {
                address: BdAddr(address.0),
                name: device.name().await.ok().flatten(),
                random_address: matches!(device.address_type().await, Ok(AddressType::LeRandom)),
                rssi: device.rssi().await.ok().flatten(),
                services,
                paired: device.is_paired().await.unwrap_or(false),
            });
        }
        found.sort_by_key(|f| {
            (
                f.services.is_empty(),
                std::cmp::Reverse(f.rssi.unwrap_or(i16::MIN)),
            )
        });
        found.truncate(MAX_FOUND);
        Ok(found)
    }

    /// Bonds with `address` (answering a passkey request with `passkey`),
    /// trusts it, and returns its identity. A device bonded already is
    /// only checked.
    pub async fn pair(
        &self,
        address: BdAddr,
        passkey: Option<u32>,
    ) -> Result<Paired, PairingError> {
        let _one = self.busy.lock().await;
        let (session, adapter) = self.adapter().await?;
        let known = adapter
            .device_addresses()
            .await
            .map_err(bt(Operation::Devices))?;
        let wanted = bluer::Address(address.0);
        if !known.contains(&wanted) {
            return Err(PairingError::Unknown(address));
        }
        let device = adapter.device(wanted).map_err(bt(Operation::Devices))?;
        let already = device.is_paired().await.map_err(bt(Operation::Devices))?;
        if !already {
            // The agent answers only for this device, only with what the
            // patient typed; it is unregistered when the handle drops.
            let agent = Agent {
                request_default: true,
                request_passkey: Some(Box::new(move |request| {
                    Box::pin(async move {
                        match passkey {
                            Some(p) if request.device == wanted => Ok(p),
                            _ => Err(ReqError::Rejected),
                        }
                    })
                })),
                ..Default::default()
            };
            let _agent = session
                .register_agent(agent)
                .await
                .map_err(bt(Operation::Devices))?;
            match tokio::time::timeout(PAIR_TIMEOUT, device.pair()).await {
                // bluer has no CancelPairing; BlueZ ends the attempt itself.
                Err(_) => return Err(PairingError::Timeout(address)),
                Ok(Err(e)) => {
                    return Err(PairingError::Bonding {
                        address,
                        reason: e.to_string(),
                    });
                }
                Ok(Ok(())) => {}
            }
        }
        device
            .set_trusted(true)
            .await
            .map_err(bt(Operation::Devices))?;
        // After bonding BlueZ knows the device by its identity address.
        let random = matches!(device.address_type().await, Ok(AddressType::LeRandom));
        let identity = classify(BdAddr(device.address().0), random)
            .map_err(|reason| PairingError::NoStableIdentity { address, reason })?;
        Ok(Paired { identity, already })
    }

    /// Asks the sessions to serve newly bonded devices now. Call it once
    /// the device is registered where the hub admits devices, or its first
    /// records are refused (and wait on the device for the next connect).
    pub fn serve_now(&self) {
        self.rescan.request();
    }

    /// Forgets the bond with `address` (the device removed from the hub).
    pub async fn forget(&self, address: BdAddr) -> Result<(), PairingError> {
        let _one = self.busy.lock().await;
        let (_session, adapter) = self.adapter().await?;
        match adapter.remove_device(bluer::Address(address.0)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind == bluer::ErrorKind::DoesNotExist => Ok(()),
            Err(e) => Err(bt(Operation::Devices)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passkey_is_six_digits_or_nothing() {
        assert_eq!(parse_passkey("").unwrap(), None);
        assert_eq!(parse_passkey(" 012345 ").unwrap(), Some(12345));
        for bad in ["12345", "1234567", "12a456", "-12345", "+12345"] {
            assert!(parse_passkey(bad).is_err(), "{bad}");
        }
    }
}
