//! Errors of the session layer. BlueZ errors are carried as their kind and
//! message strings so the public API does not expose bluer's types.

use std::fmt;
use std::time::Duration;

use crate::config::ConfigError;

/// The BlueZ/D-Bus operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Connecting to the system bus.
    OpenSession,
    /// Listing or watching adapters.
    Adapters,
    /// Listing or watching an adapter's devices.
    Devices,
    /// Reading a Device1 property.
    DeviceProperties,
    /// Device1.Connect.
    Connect,
    /// Watching a device's properties.
    DeviceEvents,
    /// Resolving GATT services and characteristics.
    ResolveServices,
    /// StartNotify on a characteristic.
    Subscribe,
    /// Writing the Record Access Control Point.
    WriteRacp,
    /// Waiting for the RACP's final indication.
    RacpResponse,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::OpenSession => "opening the D-Bus session",
            Operation::Adapters => "listing adapters",
            Operation::Devices => "listing devices",
            Operation::DeviceProperties => "reading device properties",
            Operation::Connect => "connecting",
            Operation::DeviceEvents => "watching the device",
            Operation::ResolveServices => "resolving GATT services",
            Operation::Subscribe => "subscribing to notifications",
            Operation::WriteRacp => "writing the RACP",
            Operation::RacpResponse => "waiting for the RACP response",
        })
    }
}

/// A failed BlueZ interaction, as reported on events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// BlueZ or D-Bus answered with an error.
    #[error("{operation}: {kind}: {message}")]
    Bluetooth {
        /// What we were doing.
        operation: Operation,
        /// bluer's error kind, e.g. "Bluetooth operation failed".
        kind: String,
        /// BlueZ's message, e.g. "le-connection-abort-by-local".
        message: String,
    },
    /// No answer in time.
    #[error("{operation}: no answer within {after:?}")]
    Timeout {
        /// What we were doing.
        operation: Operation,
        /// The limit that passed.
        after: Duration,
    },
    /// The device offers none of the supported characteristics with
    /// notify or indicate.
    #[error("the device offers no supported health characteristic to subscribe to")]
    NothingToSubscribe,
}

impl SessionError {
    pub(crate) fn bluetooth(operation: Operation, e: bluer::Error) -> Self {
        SessionError::Bluetooth {
            operation,
            kind: e.kind.to_string(),
            message: e.message,
        }
    }
}

/// Why [`crate::run`] stopped with an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BleError {
    /// The configuration was refused; nothing was started.
    #[error("invalid BLE configuration: {0}")]
    Config(#[from] ConfigError),
    /// The system bus could not be reached.
    #[error("cannot reach BlueZ: {0}")]
    Bus(SessionError),
    /// The connection to the system bus was lost.
    #[error("lost the D-Bus connection to BlueZ")]
    BusLost,
}
