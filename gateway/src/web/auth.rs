//! Signing in to the hub's web app: the patient's PIN (argon2id, set at
//! enrolment with `glyco-hub web set-pin`). Sessions, CSRF tokens and the
//! throttle on failures are glyco-webkit's.

use std::path::Path;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
pub use glyco_webkit::session::ABSOLUTE_MS;
pub use glyco_webkit::{LoginThrottle, same_secret};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "glyco_session";
/// The patient's sessions (the subject is always the patient).
pub type Sessions = glyco_webkit::Sessions<()>;

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("a PIN is 6 to 12 digits")]
    Shape,
    #[error("hashing the PIN: {0}")]
    Hash(String),
    #[error("the PIN file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

/// argon2id with OWASP's minimum (19 MiB, 2 passes): about a tenth of a
/// second on a Raspberry Pi 4, which is also what each guess costs.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn check_pin_shape(pin: &str) -> Result<(), PinError> {
    if (6..=12).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(PinError::Shape)
    }
}

/// Hashes `pin` into a PHC string.
pub fn hash_pin(pin: &str) -> Result<String, PinError> {
    check_pin_shape(pin)?;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PinError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PinError::Hash(e.to_string()))?;
    hasher()
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PinError::Hash(e.to_string()))
}

/// Whether `pin` matches the PHC string `stored` (slow on purpose).
pub fn verify_pin(stored: &str, pin: &str) -> bool {
    if check_pin_shape(pin).is_err() {
        return false;
    }
    PasswordHash::new(stored)
        .is_ok_and(|hash| hasher().verify_password(pin.as_bytes(), &hash).is_ok())
}

/// Writes the PIN's hash to `path`, mode 0600.
pub fn set_pin(path: &Path, pin: &str) -> Result<(), PinError> {
    let hash = hash_pin(pin)?;
    glyco_contracts::files::write_atomically(path, hash.as_bytes()).map_err(|source| {
        PinError::File {
            path: path.display().to_string(),
            source,
        }
    })
}

/// The PIN's hash, if one was set.
pub fn load_pin(path: &Path) -> Result<Option<String>, PinError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PinError::File {
            path: path.display().to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_six_to_twelve_digits_and_its_hash_verifies_only_it() {
        assert!(hash_pin("12345").is_err());
        assert!(hash_pin("12345a").is_err());
        assert!(hash_pin("1234567890123").is_err());
        let stored = hash_pin("271828").unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(verify_pin(&stored, "271828"));
        assert!(!verify_pin(&stored, "271829"));
        assert!(!verify_pin("not a hash", "271828"));
        assert_ne!(stored, hash_pin("271828").unwrap(), "salted");
    }
}
