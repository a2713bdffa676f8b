//! Connection slots: how many device connections the hub holds, in all and
//! per network address, and how many may wait for their CONNECT at once.
//!
//! A connection first holds a *pending* slot; it becomes *authenticated*
//! after a good CONNECT. Pending slots are few, and when they are all taken
//! the oldest pending connection is closed to make room: idle connections
//! (a slowloris, or a flood from many addresses) cannot keep a device that
//! sends its CONNECT at once from getting in. Authenticated connections are
//! bounded by the total; over it a device gets "server unavailable". A
//! connection over its address's bound is closed at once.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub struct ConnectionSlots {
    max_total: usize,
    max_per_address: usize,
    max_pending: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    authenticated: usize,
    next_id: u64,
    /// Pending connections, oldest first: (id, what closes it).
    pending: VecDeque<(u64, CancellationToken)>,
    by_address: HashMap<IpAddr, usize>,
    evicted: u64,
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
            Self::Full { max } => write!(f, "the hub holds its maximum of {max} devices"),
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
    /// `Some` while pending.
    pending: Option<u64>,
    /// Cancelled when the slot is taken back (evicted while pending).
    pub evicted: CancellationToken,
}

impl ConnectionSlots {
    /// `max_total` devices at once, `max_per_address` connections from one
    /// address, and a quarter of the total (at least 8) waiting for CONNECT.
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_address,
            max_pending: (max_total / 4).max(8),
            held: Mutex::new(Held::default()),
        })
    }

    /// A pending slot for a new connection from `address`.
    pub fn acquire(self: &Arc<Self>, address: IpAddr) -> Result<Slot, NoSlot> {
        let mut held = self.held.lock();
        let per_address = held.by_address.get(&address).copied().unwrap_or(0);
        if per_address >= self.max_per_address {
            return Err(NoSlot::AddressFull {
                max: self.max_per_address,
            });
        }
        if held.pending.len() >= self.max_pending
            && let Some((_, oldest)) = held.pending.pop_front()
        {
            // Its owner sees the token and closes; its slot is freed then.
            oldest.cancel();
            held.evicted += 1;
        }
        let id = held.next_id;
        held.next_id += 1;
        let evicted = CancellationToken::new();
        held.pending.push_back((id, evicted.clone()));
        *held.by_address.entry(address).or_default() += 1;
        Ok(Slot {
            slots: self.clone(),
            address,
            pending: Some(id),
            evicted,
        })
    }

    /// Connections held now: authenticated and pending.
    pub fn held(&self) -> usize {
        let held = self.held.lock();
        held.authenticated + held.pending.len()
    }

    pub fn max(&self) -> usize {
        self.max_total
    }

    /// Pending connections closed to make room, since start.
    pub fn evicted(&self) -> u64 {
        self.held.lock().evicted
    }
}

impl Slot {
    /// The connection authenticated: it now counts against the total.
    pub fn promote(&mut self) -> Result<(), NoSlot> {
        let Some(id) = self.pending else {
            return Ok(());
        };
        let mut held = self.slots.held.lock();
        if held.authenticated >= self.slots.max_total {
            return Err(NoSlot::Full {
                max: self.slots.max_total,
            });
        }
        held.pending.retain(|(pending, _)| *pending != id);
        held.authenticated += 1;
        self.pending = None;
        Ok(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock();
        match self.pending {
            Some(id) => held.pending.retain(|(pending, _)| *pending != id),
            None => held.authenticated = held.authenticated.saturating_sub(1),
        }
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

    fn address(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn an_address_is_bounded_and_its_slots_freed_on_drop() {
        let slots = ConnectionSlots::new(40, 2);
        let first = slots.acquire(address(1)).unwrap();
        let _second = slots.acquire(address(1)).unwrap();
        assert_eq!(
            slots.acquire(address(1)).unwrap_err(),
            NoSlot::AddressFull { max: 2 }
        );
        slots.acquire(address(2)).unwrap();
        drop(first);
        slots.acquire(address(1)).unwrap();
    }

    #[test]
    fn idle_connections_are_evicted_oldest_first_to_let_a_device_in() {
        let slots = ConnectionSlots::new(32, 32);
        let idle: Vec<Slot> = (0..8).map(|i| slots.acquire(address(i)).unwrap()).collect();
        assert!(idle.iter().all(|s| !s.evicted.is_cancelled()));
        let mut device = slots.acquire(address(100)).unwrap();
        assert!(
            idle[0].evicted.is_cancelled(),
            "the oldest waiter makes room"
        );
        assert!(!idle[1].evicted.is_cancelled());
        device.promote().unwrap();
        assert_eq!(slots.evicted(), 1);
        drop(idle);
        assert_eq!(slots.held(), 1);
    }

    #[test]
    fn authenticated_devices_are_bounded_by_the_total() {
        let slots = ConnectionSlots::new(2, 8);
        let mut devices: Vec<Slot> = (0..2).map(|i| slots.acquire(address(i)).unwrap()).collect();
        for device in &mut devices {
            device.promote().unwrap();
        }
        let mut third = slots.acquire(address(9)).unwrap();
        assert_eq!(third.promote().unwrap_err(), NoSlot::Full { max: 2 });
        drop(devices.pop());
        third.promote().unwrap();
    }
}
