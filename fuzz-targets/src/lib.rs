//! Every parser that reads bytes a device or the network chose, as one fuzz
//! target each. `cargo fuzz` (the `fuzz/` project, nightly) runs them
//! coverage-guided; the test suite replays the corpus it found and runs
//! proptest properties over them (`tests/`), on stable.
#![forbid(unsafe_code)]

use glyco_ble::profiles::{
    blood_pressure, cgm, cgm_session, cgm_status, glucose, glucose_context, heart_rate, plx,
    plx_continuous, racp, temperature, weight,
};
use glyco_contracts::DeviceIdentity;
use glyco_gateway::mqtt::{framing, wire};
use glyco_gateway::reading::{Limits, validate};

/// The hub's limit on one MQTT packet (4096-byte payload and its header).
pub const MAX_PACKET: usize = 4096 + 1024;
/// A fixed "now" for the reading checks (2025-11-23T00:00:00Z).
pub const NOW_MS: i64 = 1_763_856_000_000;

/// One fuzz target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// A device's MQTT byte stream through the gatekeeper's framing.
    MqttStream,
    /// A reading payload (JSON, wire v1) through parsing and validation.
    WireReading,
    BleGlucose,
    BleGlucoseContext,
    BleCgm,
    BleCgmStatus,
    BleCgmSession,
    BleBloodPressure,
    BleHeartRate,
    BleWeight,
    BleTemperature,
    BlePlxSpotCheck,
    BlePlxContinuous,
    BleRacp,
}

impl Target {
    pub const ALL: [Target; 14] = [
        Target::MqttStream,
        Target::WireReading,
        Target::BleGlucose,
        Target::BleGlucoseContext,
        Target::BleCgm,
        Target::BleCgmStatus,
        Target::BleCgmSession,
        Target::BleBloodPressure,
        Target::BleHeartRate,
        Target::BleWeight,
        Target::BleTemperature,
        Target::BlePlxSpotCheck,
        Target::BlePlxContinuous,
        Target::BleRacp,
    ];

    /// The cargo-fuzz target's (and its corpus directory's) name.
    pub const fn name(self) -> &'static str {
        match self {
            Target::MqttStream => "mqtt_stream",
            Target::WireReading => "wire_reading",
            Target::BleGlucose => "ble_glucose",
            Target::BleGlucoseContext => "ble_glucose_context",
            Target::BleCgm => "ble_cgm",
            Target::BleCgmStatus => "ble_cgm_status",
            Target::BleCgmSession => "ble_cgm_session",
            Target::BleBloodPressure => "ble_blood_pressure",
            Target::BleHeartRate => "ble_heart_rate",
            Target::BleWeight => "ble_weight",
            Target::BleTemperature => "ble_temperature",
            Target::BlePlxSpotCheck => "ble_plx_spot_check",
            Target::BlePlxContinuous => "ble_plx_continuous",
            Target::BleRacp => "ble_racp",
        }
    }
}

/// Runs `data` through the target. It must return, never panic; results
/// are checked for the invariants the hub relies on.
pub fn run(target: Target, data: &[u8]) {
    match target {
        Target::MqttStream => {
            // Every packet parsed is at most the limit, and parsing stops at
            // the first bad one.
            let parsed = framing::packets(data, MAX_PACKET);
            if let Some(position) = parsed.iter().position(Result::is_err) {
                assert_eq!(position, parsed.len() - 1, "nothing after a bad packet");
            }
        }
        Target::WireReading => {
            let Ok(device) = DeviceIdentity::name("fuzz-device") else {
                return;
            };
            if let Ok(reading) = wire::parse_reading(&device, data, 4096, NOW_MS) {
                // The checks run on whatever numbers the device chose.
                let _ = validate(&reading, NOW_MS, &Limits::default());
            }
            let _ = wire::salvage_seq(data);
        }
        Target::BleGlucose => {
            if let Ok(m) = glucose::parse(data) {
                // A date kept as sent is either possible or flagged so.
                let _ = m.base_time.unix_seconds();
            }
        }
        Target::BleGlucoseContext => {
            let _ = glucose_context::parse(data);
        }
        Target::BleCgm => {
            for order in [cgm::StatusOrder::Sig, cgm::StatusOrder::WarningFirst] {
                if let Ok(records) = cgm::parse_with(data, order) {
                    assert!(!records.is_empty(), "a frame that parses holds a record");
                }
            }
        }
        Target::BleCgmStatus => {
            let _ = cgm_status::parse(data);
        }
        Target::BleCgmSession => {
            if let Ok(start) = cgm_session::parse_start(data) {
                let _ = start.utc_offset_minutes();
                let _ = start.local.unix_seconds();
            }
            let _ = cgm_session::parse_run_time(data);
        }
        Target::BleBloodPressure => {
            let _ = blood_pressure::parse(data);
        }
        Target::BleHeartRate => {
            let _ = heart_rate::parse(data);
        }
        Target::BleWeight => {
            let _ = weight::parse(data);
        }
        Target::BleTemperature => {
            let _ = temperature::parse(data);
        }
        Target::BlePlxSpotCheck => {
            let _ = plx::parse(data);
        }
        Target::BlePlxContinuous => {
            let _ = plx_continuous::parse(data);
        }
        Target::BleRacp => {
            let _ = racp::parse_response(data);
        }
    }
}
