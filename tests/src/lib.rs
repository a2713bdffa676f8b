//! End-to-end tests of the whole system live in `tests/`; the demo binary
//! `glyco-demo` walks the same flows on the embedded defaults.
#![forbid(unsafe_code)]

/// A form's body (application/x-www-form-urlencoded), for the demo's and
/// the HIL check's posts to the web apps.
pub fn form(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// Writes `signer`'s key as a key file (hex, mode 0600), as the hub and the
/// clinic tools read them, for the demo's and the HIL check's dev accounts.
pub fn write_key(
    path: &std::path::Path,
    signer: &glyco_contracts::keys::Signer,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "{}", signer.to_bytes())
}
