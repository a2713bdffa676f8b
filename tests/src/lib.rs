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
