//! BLE health devices (being built).
