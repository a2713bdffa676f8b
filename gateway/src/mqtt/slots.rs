//! Connection slots: how many device connections the hub holds, in all and
//! per network address. A connection over either bound is closed at once,
//! before a byte is read from it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

#[derive(Debug)]
pub struct ConnectionSlots {
    max_total: usize,
    max_per_address: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Why a connection got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSlot {
    Full { max: usize },
    AddressFull { max: usize },
}

impl std::fmt::Display for NoSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full { max } => write!(f, "the hub holds its maximum of {max} connections"),
            Self::AddressFull { max } => {
                write!(f, "this address holds its maximum of {max} connections")
            }
        }
    }
}

/// A held slot; dropping it frees it.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<ConnectionSlots>,
    address: IpAddr,
}

impl ConnectionSlots {
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_address,
            held: Mutex::new(Held::default()),
        })
    }

    pub fn acquire(self: &Arc<Self>, address: IpAddr) -> Result<Slot, NoSlot> {
        let mut held = self.held.lock();
        if held.total >= self.max_total {
            return Err(NoSlot::Full {
                max: self.max_total,
            });
        }
        let per_address = held.by_address.entry(address).or_default();
        if *per_address >= self.max_per_address {
            return Err(NoSlot::AddressFull {
                max: self.max_per_address,
            });
        }
        *per_address += 1;
        held.total += 1;
        Ok(Slot {
            slots: self.clone(),
            address,
        })
    }

    pub fn held(&self) -> usize {
        self.held.lock().total
    }

    pub fn max(&self) -> usize {
        self.max_total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock();
        held.total = held.total.saturating_sub(1);
        if let Some(count) = held.by_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                held.by_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_in_all_and_per_address_and_freed_on_drop() {
        let slots = ConnectionSlots::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = slots.acquire(a).unwrap();
        let _second = slots.acquire(a).unwrap();
        assert_eq!(
            slots.acquire(a).unwrap_err(),
            NoSlot::AddressFull { max: 2 }
        );
        let _third = slots.acquire(b).unwrap();
        assert_eq!(slots.acquire(b).unwrap_err(), NoSlot::Full { max: 3 });
        drop(first);
        assert_eq!(slots.held(), 2);
        slots.acquire(a).unwrap();
    }
}
