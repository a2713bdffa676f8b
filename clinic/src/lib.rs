//! The clinic side of Glyco: the replica that follows hubs over iroh and
//! keeps every sealed batch (with its anchoring proof); the re-encryption
//! proxy that hospitals run, which re-encrypts for a physician only what the
//! chain allows and logs; and the physician's reader, its summary and its
//! FHIR export.
#![forbid(unsafe_code)]

pub mod alert_client;
pub mod dashboard;
pub mod enrolment;
pub mod fhir;
pub mod fleet;
pub mod inbox;
pub mod parallel;
pub mod physician;
pub mod proxy;
pub mod replica;
pub mod store;
pub mod summary;
