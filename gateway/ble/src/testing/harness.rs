//! The Rust side of the mock BlueZ: starts the Python mock and calls its
//! control interface over D-Bus.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dbus::blocking::SyncConnection;
use dbus::channel::Channel;

use crate::gatt::{Characteristic, GLUCOSE_SERVICE, sig_uuid};
use uuid::Uuid;

/// The mock, committed beside the crate and embedded so that a test binary
/// built anywhere carries it.
const SCRIPT: &str = include_str!("../../testing/mock_bluez.py");
const CONTROL_PATH: &str = "/org/glyco/MockBluez";
const CONTROL_IFACE: &str = "org.glyco.MockBluez1";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Debian's interpreter: it has python3-dbusmock, python3-dbus and
/// python3-gi; a pyenv `python3` earlier on PATH may not.
const DEFAULT_PYTHON: &str = "/usr/bin/python3";

/// The harness could not do what the test asked.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A file or process could not be created.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The mock did not come up; its stderr is attached.
    #[error("mock BlueZ did not start: {0}")]
    NotReady(String),
    /// A D-Bus call to the mock failed.
    #[error("mock BlueZ call {method} failed: {message}")]
    Call {
        /// The control method.
        method: &'static str,
        /// D-Bus's error text.
        message: String,
    },
}

/// Public address or random (static/private) address, as BlueZ's
/// `AddressType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    /// "public".
    Public,
    /// "random".
    Random,
}

/// A device object in the mock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockDevice {
    /// Its D-Bus path.
    pub path: String,
    /// Its address as given.
    pub address: String,
}

/// A GATT service object in the mock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockService {
    /// Its D-Bus path.
    pub path: String,
}

/// A GATT characteristic object in the mock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockCharacteristic {
    /// Its D-Bus path.
    pub path: String,
}

/// A simulated glucometer: Glucose service with Glucose Measurement
/// (notify) and the RACP (write, indicate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockGlucometer {
    /// The device.
    pub device: MockDevice,
    /// Glucose Measurement 0x2A18.
    pub measurement: MockCharacteristic,
    /// Record Access Control Point 0x2A52.
    pub racp: MockCharacteristic,
    /// Glucose Measurement Context 0x2A34.
    pub context: MockCharacteristic,
}

/// A simulated CGM: CGM service with CGM Measurement (notify), and CGM
/// Status, Session Start Time and Session Run Time (read; empty until set
/// with [`MockBluez::set_value`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockCgm {
    /// The device.
    pub device: MockDevice,
    /// CGM Measurement 0x2AA7.
    pub measurement: MockCharacteristic,
    /// CGM Status 0x2AA9.
    pub status: MockCharacteristic,
    /// CGM Session Start Time 0x2AAA.
    pub session_start: MockCharacteristic,
    /// CGM Session Run Time 0x2AAB.
    pub run_time: MockCharacteristic,
}

/// A simulated pulse oximeter: Pulse Oximeter service with PLX Spot-check
/// and PLX Continuous Measurement (notify).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockOximeter {
    /// The device.
    pub device: MockDevice,
    /// PLX Spot-check Measurement 0x2A5E.
    pub spot_check: MockCharacteristic,
    /// PLX Continuous Measurement 0x2A5F.
    pub continuous: MockCharacteristic,
}

/// A running mock BlueZ on its own dbus-daemon. Dropping it stops both.
pub struct MockBluez {
    child: Child,
    control: SyncConnection,
    address: String,
    dir: PathBuf,
}

impl std::fmt::Debug for MockBluez {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockBluez")
            .field("address", &self.address)
            .field("pid", &self.child.id())
            .finish()
    }
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> HarnessError {
    move |source| HarnessError::Io { what, source }
}

impl MockBluez {
    /// Starts dbus-daemon and the mock with the bus socket at
    /// `dir/system_bus_socket`; the mock's files (script, bus config,
    /// logs) go to `dir` too. The interpreter is /usr/bin/python3 unless
    /// `GLYCO_BLE_MOCK_PYTHON` names another.
    pub fn start(dir: &Path) -> Result<MockBluez, HarnessError> {
        let script = dir.join("mock_bluez.py");
        std::fs::write(&script, SCRIPT).map_err(io("writing the mock script"))?;
        let stderr_path = dir.join("mock_bluez.stderr");
        let stderr = File::create(&stderr_path).map_err(io("creating the mock's stderr file"))?;
        let python =
            std::env::var_os("GLYCO_BLE_MOCK_PYTHON").unwrap_or_else(|| DEFAULT_PYTHON.into());
        let mut child = Command::new(python)
            .arg(&script)
            .arg("--socket")
            .arg(Self::socket_path(dir))
            .arg("--log")
            .arg(dir.join("mock_bluez.log"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(io(
                "starting the mock (is /usr/bin/python3 with python3-dbusmock there?)",
            ))?;

        // "READY <address>" on stdout; read on a thread so a mock that
        // hangs cannot hang the test.
        let stdout = child.stdout.take().expect("stdout was piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let not_ready = |child: &mut Child, why: String| {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            HarnessError::NotReady(format!("{why}; mock stderr:\n{stderr}"))
        };
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                return Err(not_ready(
                    &mut child,
                    format!("no READY within {START_TIMEOUT:?}"),
                ));
            }
        };
        let Some(address) = line.trim().strip_prefix("READY ").map(str::to_string) else {
            return Err(not_ready(
                &mut child,
                format!("unexpected first line {line:?}"),
            ));
        };
        let control = match Channel::open_private(&address).and_then(|mut ch| {
            ch.register()?;
            Ok(SyncConnection::from(ch))
        }) {
            Ok(c) => c,
            Err(e) => {
                return Err(not_ready(
                    &mut child,
                    format!("cannot reach the private bus: {e}"),
                ));
            }
        };
        Ok(MockBluez {
            child,
            control,
            address,
            dir: dir.to_path_buf(),
        })
    }

    /// Where [`MockBluez::start`] puts the bus socket for `dir`.
    pub fn socket_path(dir: &Path) -> PathBuf {
        dir.join("system_bus_socket")
    }

    /// The private bus's address (give it to code under test as
    /// `DBUS_SYSTEM_BUS_ADDRESS`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The dbusmock call log (every method BlueZ "received"), for
    /// debugging a failing test.
    pub fn call_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mock_bluez.log")).unwrap_or_default()
    }

    fn call<A, R>(&self, method: &'static str, args: A) -> Result<R, HarnessError>
    where
        A: dbus::arg::AppendAll,
        R: dbus::arg::ReadAll,
    {
        self.control
            .with_proxy("org.bluez", CONTROL_PATH, CALL_TIMEOUT)
            .method_call(CONTROL_IFACE, method, args)
            .map_err(|e| HarnessError::Call {
                method,
                message: e.to_string(),
            })
    }

    fn path(s: &str) -> Result<dbus::Path<'static>, HarnessError> {
        dbus::Path::new(s.to_string()).map_err(|m| HarnessError::Call {
            method: "(object path)",
            message: m,
        })
    }

    /// Adds adapter `name` (e.g. "hci0"), powered.
    pub fn add_adapter(&self, name: &str) -> Result<(), HarnessError> {
        let (_path,): (dbus::Path<'static>,) = self.call("AddAdapter", (name,))?;
        Ok(())
    }

    /// Adds a device; `paired` makes it bonded (Paired and Trusted).
    pub fn add_device(
        &self,
        adapter: &str,
        address: &str,
        kind: AddressKind,
        paired: bool,
    ) -> Result<MockDevice, HarnessError> {
        let kind = match kind {
            AddressKind::Public => "public",
            AddressKind::Random => "random",
        };
        let (path,): (dbus::Path<'static>,) =
            self.call("AddDevice", (adapter, address, kind, paired))?;
        Ok(MockDevice {
            path: path.to_string(),
            address: address.to_string(),
        })
    }

    /// Makes `device` ask for `passkey` when it is paired: Pair asks the
    /// registered agent (Agent1.RequestPasskey) and fails on a wrong one.
    pub fn require_passkey(&self, device: &MockDevice, passkey: u32) -> Result<(), HarnessError> {
        self.call::<_, ()>("RequirePasskey", (Self::path(&device.path)?, passkey))
    }

    /// Whether `device` is bonded.
    pub fn is_paired(&self, device: &MockDevice) -> Result<bool, HarnessError> {
        let (paired,): (bool,) = self.call("IsPaired", (Self::path(&device.path)?,))?;
        Ok(paired)
    }

    /// Adds a primary GATT service; `handle` makes the object path unique.
    pub fn add_service(
        &self,
        device: &MockDevice,
        uuid: Uuid,
        handle: u16,
    ) -> Result<MockService, HarnessError> {
        let (path,): (dbus::Path<'static>,) = self.call(
            "AddService",
            (Self::path(&device.path)?, uuid.to_string(), handle),
        )?;
        Ok(MockService {
            path: path.to_string(),
        })
    }

    /// Adds a characteristic with BlueZ flags such as "notify", "indicate",
    /// "write", "read".
    pub fn add_characteristic(
        &self,
        service: &MockService,
        uuid: Uuid,
        handle: u16,
        flags: &[&str],
    ) -> Result<MockCharacteristic, HarnessError> {
        let flags: Vec<&str> = flags.to_vec();
        let (path,): (dbus::Path<'static>,) = self.call(
            "AddCharacteristic",
            (Self::path(&service.path)?, uuid.to_string(), handle, flags),
        )?;
        Ok(MockCharacteristic {
            path: path.to_string(),
        })
    }

    /// A bonded glucometer with a public address.
    pub fn add_glucometer(
        &self,
        adapter: &str,
        address: &str,
    ) -> Result<MockGlucometer, HarnessError> {
        self.add_glucometer_bonded(adapter, address, true)
    }

    /// A glucometer with a public address, bonded or waiting to be paired.
    pub fn add_glucometer_bonded(
        &self,
        adapter: &str,
        address: &str,
        bonded: bool,
    ) -> Result<MockGlucometer, HarnessError> {
        let device = self.add_device(adapter, address, AddressKind::Public, bonded)?;
        let service = self.add_service(&device, GLUCOSE_SERVICE, 0x0010)?;
        let measurement = self.add_characteristic(
            &service,
            Characteristic::GlucoseMeasurement.uuid(),
            0x0011,
            &["notify"],
        )?;
        let racp = self.add_characteristic(
            &service,
            Characteristic::RecordAccessControlPoint.uuid(),
            0x0014,
            &["write", "indicate"],
        )?;
        let context = self.add_characteristic(
            &service,
            Characteristic::GlucoseMeasurementContext.uuid(),
            0x0017,
            &["notify"],
        )?;
        Ok(MockGlucometer {
            device,
            measurement,
            racp,
            context,
        })
    }

    /// A bonded CGM with a public address.
    pub fn add_cgm(&self, adapter: &str, address: &str) -> Result<MockCgm, HarnessError> {
        let device = self.add_device(adapter, address, AddressKind::Public, true)?;
        let service = self.add_service(&device, sig_uuid(0x181F), 0x0020)?;
        let measurement = self.add_characteristic(
            &service,
            Characteristic::CgmMeasurement.uuid(),
            0x0021,
            &["notify"],
        )?;
        let read = |uuid, handle| self.add_characteristic(&service, uuid, handle, &["read"]);
        let status = read(Characteristic::CgmStatus.uuid(), 0x0024)?;
        let session_start = read(Characteristic::CgmSessionStartTime.uuid(), 0x0026)?;
        let run_time = read(Characteristic::CgmSessionRunTime.uuid(), 0x0028)?;
        Ok(MockCgm {
            device,
            measurement,
            status,
            session_start,
            run_time,
        })
    }

    /// A bonded pulse oximeter with a public address.
    pub fn add_oximeter(&self, adapter: &str, address: &str) -> Result<MockOximeter, HarnessError> {
        let device = self.add_device(adapter, address, AddressKind::Public, true)?;
        let service = self.add_service(&device, sig_uuid(0x1822), 0x0030)?;
        let spot_check = self.add_characteristic(
            &service,
            Characteristic::PlxSpotCheckMeasurement.uuid(),
            0x0031,
            &["indicate"],
        )?;
        let continuous = self.add_characteristic(
            &service,
            Characteristic::PlxContinuousMeasurement.uuid(),
            0x0034,
            &["notify"],
        )?;
        Ok(MockOximeter {
            device,
            spot_check,
            continuous,
        })
    }

    /// What a read of `characteristic` returns from now on.
    pub fn set_value(
        &self,
        characteristic: &MockCharacteristic,
        value: &[u8],
    ) -> Result<(), HarnessError> {
        self.call(
            "SetValue",
            (Self::path(&characteristic.path)?, value.to_vec()),
        )
    }

    /// Sends a notification as the device. False when nothing was sent:
    /// the link is down or the client has not subscribed.
    pub fn notify(
        &self,
        characteristic: &MockCharacteristic,
        value: &[u8],
    ) -> Result<bool, HarnessError> {
        let (sent,): (bool,) = self.call(
            "Notify",
            (Self::path(&characteristic.path)?, value.to_vec()),
        )?;
        Ok(sent)
    }

    /// Whether the client has notifications on.
    pub fn is_notifying(&self, characteristic: &MockCharacteristic) -> Result<bool, HarnessError> {
        let (on,): (bool,) = self.call("IsNotifying", (Self::path(&characteristic.path)?,))?;
        Ok(on)
    }

    /// The glucometer's stored records (Glucose Measurement values, oldest
    /// first) that its RACP reports from.
    pub fn set_stored_records(
        &self,
        device: &MockDevice,
        records: &[Vec<u8>],
    ) -> Result<(), HarnessError> {
        self.call(
            "SetStoredRecords",
            (Self::path(&device.path)?, records.to_vec()),
        )
    }

    /// Every RACP request the device received, in order.
    pub fn racp_requests(&self, device: &MockDevice) -> Result<Vec<Vec<u8>>, HarnessError> {
        let (requests,): (Vec<Vec<u8>>,) =
            self.call("RacpRequests", (Self::path(&device.path)?,))?;
        Ok(requests)
    }

    /// Sets the services BlueZ lists for `device` (Device1.UUIDs).
    pub fn set_listed_services(
        &self,
        device: &MockDevice,
        uuids: &[Uuid],
    ) -> Result<(), HarnessError> {
        let uuids: Vec<String> = uuids.iter().map(Uuid::to_string).collect();
        self.call("SetListedServices", (Self::path(&device.path)?, uuids))
    }

    /// The services BlueZ lists for `device` (Device1.UUIDs).
    pub fn listed_services(&self, device: &MockDevice) -> Result<Vec<Uuid>, HarnessError> {
        let (uuids,): (Vec<String>,) = self.call("ListedServices", (Self::path(&device.path)?,))?;
        Ok(uuids
            .iter()
            .filter_map(|u| Uuid::parse_str(u).ok())
            .collect())
    }

    /// Out of range (false) drops the link and makes Connect fail; back in
    /// range (true) lets Connect succeed again.
    pub fn set_reachable(&self, device: &MockDevice, reachable: bool) -> Result<(), HarnessError> {
        self.call("SetReachable", (Self::path(&device.path)?, reachable))
    }

    /// The device is heard at `dbm` (a Device1.RSSI property change).
    pub fn set_rssi(&self, device: &MockDevice, dbm: i16) -> Result<(), HarnessError> {
        self.call("SetRssi", (Self::path(&device.path)?, dbm))
    }

    /// How many times Device1.Connect was called.
    pub fn connect_attempts(&self, device: &MockDevice) -> Result<u32, HarnessError> {
        let (n,): (u32,) = self.call("ConnectAttempts", (Self::path(&device.path)?,))?;
        Ok(n)
    }

    /// Whether the device is connected.
    pub fn is_connected(&self, device: &MockDevice) -> Result<bool, HarnessError> {
        let (c,): (bool,) = self.call("IsConnected", (Self::path(&device.path)?,))?;
        Ok(c)
    }

    /// The adapter disappears with everything under it.
    pub fn remove_adapter(&self, name: &str) -> Result<(), HarnessError> {
        self.call("RemoveAdapter", (name,))
    }

    /// The adapter comes back with its bonded devices and their GATT
    /// objects (disconnected).
    pub fn restore_adapter(&self, name: &str) -> Result<(), HarnessError> {
        self.call("RestoreAdapter", (name,))
    }
}

impl Drop for MockBluez {
    fn drop(&mut self) {
        // Closing stdin is the mock's signal to take dbus-daemon down and
        // exit; kill it if it does not.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => break,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
