//! Over-the-air updates (docs/FLEET.md, "Updates"). The clinic's fleet node
//! offers a RAUC bundle with a heartbeat's answer; the hub, unprivileged,
//! fetches it over iroh and checks it ([`check`]), then asks for an install
//! by leaving a request in its state directory ([`record`]). The installer
//! ([`install`], root, started by `glyco-update.path`) checks the bundle
//! again on its own copy, has RAUC write the other slot and reboots. After
//! the boot the health check ([`health`], root) keeps the new slot or marks
//! it bad and reboots into the old one; GRUB's one try per slot rolls back
//! a slot that never reaches its health check. Each step is recorded where
//! the hub reads it and reports it in its heartbeats.

pub mod check;
pub mod fetch;
pub mod health;
pub mod install;
mod rauc;
pub mod record;
pub mod selftest;

pub use check::{CheckedBundle, UpdateError, check, copy_and_hash, verify};
