//! The clinic side of Glyco. Today: the replica that follows hubs over iroh
//! and keeps every sealed batch (with its anchoring proof), so batches
//! survive the hub and can be verified, and later re-encrypted by the
//! proxies, without the hub.
#![forbid(unsafe_code)]

pub mod replica;
pub mod store;
