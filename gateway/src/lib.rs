//! The Glyco hub: ingests health readings over BLE and MQTT, admits only
//! devices the patient registered on chain, stores them durably before a
//! device hears they were received, and records every refusal as a
//! node-behaviour event.
#![forbid(unsafe_code)]

pub mod admission;
pub mod alerts;
pub mod analysis;
pub mod behaviour;
pub mod ble;
pub mod config;
pub mod credentials;
pub mod daemon;
pub mod descriptors;
pub mod device_admin;
pub mod disk;
pub mod enrolment;
pub mod fleet;
pub mod follower;
pub mod journal;
pub mod journald;
pub mod mqtt;
pub mod nodewatch;
pub mod pipeline;
/// QR codes: drawn and read by `glyco-webkit` (shared with the clinic).
pub use glyco_webkit::qr;
pub mod quarantine;
/// The typed reading lives in the crate shared with the clinic.
pub use glyco_seal::reading;
pub mod registry;
pub mod seal;
#[cfg(feature = "sim")]
pub mod sim;
pub mod status;
pub mod supervisor;
pub mod throttle;
pub mod update;
pub mod web;
