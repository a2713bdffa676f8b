//! Test support (feature `testing`): a mock BlueZ on a private
//! dbus-daemon, for this crate's tests and the gateway's.
//!
//! * [`MockBluez`] starts `testing/mock_bluez.py` (Debian's
//!   python3-dbusmock, driven by /usr/bin/python3), which starts its own
//!   `dbus-daemon` on a socket in a temp dir — never the system bus — and
//!   claims `org.bluez` there with dbusmock's bluez5 template plus GATT
//!   objects. The test drives it over D-Bus: adapters, bonded devices,
//!   services and characteristics, notifications, stored glucose records
//!   answered through the RACP, dropped and restored links, a removed and
//!   returned adapter. Dropping it ends the script, which takes the
//!   dbus-daemon with it (and the kernel does so too if the script dies).
//! * [`with_mock_bluez`] runs a test body with bluer pointed at that bus.
//!   bluer has no way to be given a bus address: it asks libdbus for "the
//!   system bus", and libdbus reads `DBUS_SYSTEM_BUS_ADDRESS` once per
//!   process. Setting it from the test would need `std::env::set_var`,
//!   which is `unsafe` in edition 2024 (and forbidden here) and racy with
//!   parallel tests. So the test re-runs itself as a child process (the
//!   same test binary, `--exact <this test>`) with the variable set to a
//!   fresh socket path; the child starts the mock on that socket and runs
//!   the body; the parent reports the child's output and verdict. Every
//!   test gets its own bus and BlueZ, and tests stay parallel.
//! * [`frames`] encodes simulated devices' notifications.
//!
//! ```no_run
//! use glyco_ble::testing::{with_mock_bluez, frames};
//!
//! #[test]
//! fn glucometer_reading_reaches_the_hub() {
//!     with_mock_bluez(|mock| async move {
//!         mock.add_adapter("hci0").unwrap();
//!         let meter = mock.add_glucometer("hci0", "00:1A:7D:DA:71:13").unwrap();
//!         // ... start the hub (glyco_ble::run) here, wait for Subscribed ...
//!         let record = frames::glucose_record(1, frames::TIME, 95);
//!         assert!(mock.notify(&meter.measurement, &record).unwrap());
//!         // ... assert the reading arrives with identity 00:1A:7D:DA:71:13 ...
//!     });
//! }
//! ```

pub mod frames;
mod harness;
mod isolate;

pub use harness::{
    AddressKind, HarnessError, MockBluez, MockCgm, MockCharacteristic, MockDevice, MockGlucometer,
    MockOximeter, MockService,
};
pub use isolate::with_mock_bluez;
