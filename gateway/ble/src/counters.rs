//! Counts of what the sessions saw, for the hub's status and node-behaviour
//! reports. Every refusal and error also arrives as a [`crate::BleEvent`];
//! the counters let a status page read totals without replaying events.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, shared with the sessions.
#[derive(Debug, Default)]
pub struct BleCounters {
    measurements: AtomicU64,
    parse_errors: AtomicU64,
    duplicates_dropped: AtomicU64,
    bluetooth_errors: AtomicU64,
    connect_attempts: AtomicU64,
    connect_failures: AtomicU64,
    disconnects: AtomicU64,
    adapter_losses: AtomicU64,
    racp_requests: AtomicU64,
    skipped_devices: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// Readings emitted.
    pub measurements: u64,
    /// Frames refused by a parser.
    pub parse_errors: u64,
    /// Glucose records dropped as repeats.
    pub duplicates_dropped: u64,
    /// BlueZ/D-Bus calls that failed outside connect attempts.
    pub bluetooth_errors: u64,
    /// Device1.Connect calls made.
    pub connect_attempts: u64,
    /// Connect attempts that failed or timed out.
    pub connect_failures: u64,
    /// Connections that ended.
    pub disconnects: u64,
    /// Times the adapter disappeared.
    pub adapter_losses: u64,
    /// RACP requests written.
    pub racp_requests: u64,
    /// Devices skipped for lacking a stable identity.
    pub skipped_devices: u64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    Measurements,
    ParseErrors,
    DuplicatesDropped,
    BluetoothErrors,
    ConnectAttempts,
    ConnectFailures,
    Disconnects,
    AdapterLosses,
    RacpRequests,
    SkippedDevices,
}

impl BleCounters {
    pub(crate) fn bump(&self, counter: Counter) {
        let cell = match counter {
            Counter::Measurements => &self.measurements,
            Counter::ParseErrors => &self.parse_errors,
            Counter::DuplicatesDropped => &self.duplicates_dropped,
            Counter::BluetoothErrors => &self.bluetooth_errors,
            Counter::ConnectAttempts => &self.connect_attempts,
            Counter::ConnectFailures => &self.connect_failures,
            Counter::Disconnects => &self.disconnects,
            Counter::AdapterLosses => &self.adapter_losses,
            Counter::RacpRequests => &self.racp_requests,
            Counter::SkippedDevices => &self.skipped_devices,
        };
        // Relaxed: independent totals, nobody orders other memory by them.
        cell.fetch_add(1, Ordering::Relaxed);
    }

    /// The current totals.
    pub fn snapshot(&self) -> CountersSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersSnapshot {
            measurements: get(&self.measurements),
            parse_errors: get(&self.parse_errors),
            duplicates_dropped: get(&self.duplicates_dropped),
            bluetooth_errors: get(&self.bluetooth_errors),
            connect_attempts: get(&self.connect_attempts),
            connect_failures: get(&self.connect_failures),
            disconnects: get(&self.disconnects),
            adapter_losses: get(&self.adapter_losses),
            racp_requests: get(&self.racp_requests),
            skipped_devices: get(&self.skipped_devices),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bumps_land_in_the_right_total() {
        let c = BleCounters::default();
        c.bump(Counter::ParseErrors);
        c.bump(Counter::ParseErrors);
        c.bump(Counter::RacpRequests);
        let s = c.snapshot();
        assert_eq!((s.parse_errors, s.racp_requests, s.measurements), (2, 1, 0));
    }
}
