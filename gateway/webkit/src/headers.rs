//! The headers every page carries: no framing, no sniffing, no caching, a
//! strict content security policy, no referrer leaving the app.

use axum::http::{HeaderMap, HeaderValue, header};

/// Pages with no script at all (the hub's app).
pub const CSP_NO_SCRIPT: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Pages whose only scripts are the app's own files (the clinic's sign-in
/// asks the physician's wallet to sign).
pub const CSP_OWN_SCRIPTS: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Sets the security headers on a response's `headers`.
pub fn secure(headers: &mut HeaderMap, content_security_policy: &'static str) {
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, content_security_policy),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
}
