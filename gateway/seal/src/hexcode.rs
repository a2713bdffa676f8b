//! Lowercase hex for hashes, as the journal, the replica's files and the
//! replication protocol write them.

use crate::BlobHash;

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 bytes from 64 hex digits (an optional `0x` allowed); `None` otherwise.
pub fn unhex32(text: &str) -> Option<BlobHash> {
    let text = text.strip_prefix("0x").unwrap_or(text);
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_is_not_32_hex_bytes() {
        let bytes = [0xabu8; 32];
        assert_eq!(unhex32(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex32(&format!("0x{}", hex(&bytes))), Some(bytes));
        assert_eq!(unhex32("ab"), None);
        assert_eq!(unhex32(&"zz".repeat(32)), None);
        assert_eq!(unhex32(&"é".repeat(32)), None);
    }
}
