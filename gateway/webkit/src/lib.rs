//! What Glyco's web apps share: the hub's pages for the patient and the
//! clinic's dashboard for physicians. Sessions held in memory with a CSRF
//! token each, sign-in failures slowed down, forms accepted only from the
//! app's own origin, the headers every page carries, and which peers are on
//! the local network.

pub mod guard;
pub mod headers;
pub mod lan;
pub mod metrics;
pub mod origin;
pub mod qr;
pub mod session;
pub mod shell;
pub mod style;
pub mod throttle;

pub use origin::{CsrfRefusal, cookie, same_origin, same_secret};
pub use session::{Session, Sessions};
pub use throttle::LoginThrottle;

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// 32 random bytes as hex: session tokens, CSRF tokens, nonces.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    hex::encode(bytes)
}
