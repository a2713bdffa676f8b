//! Admission: the checks every reading passes before the journal sees it.
//! The device must be registered to the patient on chain (as mirrored), the
//! payload must parse, and the values must be plausible. The journal then
//! adds the last check, on sequence numbers.

use glyco_contracts::DeviceIdentity;

use crate::behaviour::RefusalReason;
use crate::mqtt::wire::{WireError, parse_reading, salvage_seq};
use crate::reading::{Limits, Reading, UnixMillis, validate};
use crate::registry::{Registry, Standing};

/// The outcome of admission for one reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Admit(Reading),
    Refuse {
        reason: RefusalReason,
        detail: String,
        /// The reading's sequence number, when it could be read, so the
        /// device can be told which of its readings was refused.
        seq: Option<u64>,
    },
}

#[derive(Debug, Clone)]
pub struct Admission {
    registry: Registry,
    limits: Limits,
    max_payload: usize,
}

fn standing_refusal(
    standing: Standing,
    device: &DeviceIdentity,
) -> Option<(RefusalReason, String)> {
    match standing {
        Standing::Registered => None,
        Standing::Removed => Some((
            RefusalReason::Removed,
            format!("{device} was removed from the registry"),
        )),
        Standing::Unknown => Some((
            RefusalReason::Unregistered,
            format!("{device} is not registered to this patient"),
        )),
    }
}

impl Admission {
    pub fn new(registry: Registry, limits: Limits, max_payload: usize) -> Self {
        Self {
            registry,
            limits,
            max_payload,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// An MQTT payload from the device named `device` (its topic and its
    /// authenticated client id agree: the gatekeeper made sure).
    pub fn mqtt(&self, device: &DeviceIdentity, payload: &[u8], now: UnixMillis) -> Decision {
        if let Some((reason, detail)) = standing_refusal(self.registry.standing(device), device) {
            return Decision::Refuse {
                reason,
                detail,
                seq: salvage_seq(payload),
            };
        }
        let reading = match parse_reading(device, payload, self.max_payload, now) {
            Ok(reading) => reading,
            Err(e) => {
                let seq = match e {
                    WireError::TooLarge { .. } => None,
                    _ => salvage_seq(payload),
                };
                return Decision::Refuse {
                    reason: RefusalReason::InvalidPayload,
                    detail: e.to_string(),
                    seq,
                };
            }
        };
        self.checked(reading, now)
    }

    /// A reading already decoded (BLE): registry and value checks.
    pub fn reading(&self, reading: Reading, now: UnixMillis) -> Decision {
        if let Some((reason, detail)) =
            standing_refusal(self.registry.standing(&reading.device), &reading.device)
        {
            return Decision::Refuse {
                reason,
                detail,
                seq: Some(reading.seq),
            };
        }
        self.checked(reading, now)
    }

    fn checked(&self, reading: Reading, now: UnixMillis) -> Decision {
        match validate(&reading, now, &self.limits) {
            Ok(()) => Decision::Admit(reading),
            Err(e) => Decision::Refuse {
                reason: RefusalReason::InvalidReading,
                detail: e.to_string(),
                seq: Some(reading.seq),
            },
        }
    }
}
