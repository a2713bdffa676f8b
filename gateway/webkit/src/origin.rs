//! Telling the app's own forms from forged ones: the browser's `Origin`
//! (else `Referer`) must name the host the request went to, and secrets are
//! compared in constant time. Cookies are read here too.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Whether the request came from a page of the host it was sent to.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    match (host, origin) {
        (Some(host), Some(origin)) => origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .map(|rest| rest.split('/').next().unwrap_or_default())
            .is_some_and(|origin_host| origin_host.eq_ignore_ascii_case(host)),
        _ => false,
    }
}

/// A form refused: not from the app's own page, or without the session's
/// CSRF token.
#[derive(Debug)]
pub struct CsrfRefusal {
    /// The app in words ("this hub").
    pub app: &'static str,
}

impl IntoResponse for CsrfRefusal {
    fn into_response(self) -> Response {
        (
            StatusCode::FORBIDDEN,
            format!(
                "refused: this form did not come from {}'s own page (CSRF)",
                self.app
            ),
        )
            .into_response()
    }
}

/// A form's CSRF token must be the session's, and the request must come
/// from the app's own origin (the browser's `Origin`, else `Referer`).
pub fn check_form(
    headers: &HeaderMap,
    form_csrf: &str,
    session_csrf: &str,
    app: &'static str,
) -> Result<(), CsrfRefusal> {
    if same_origin(headers) && same_secret(form_csrf, session_csrf) {
        Ok(())
    } else {
        Err(CsrfRefusal { app })
    }
}

/// Compares secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A session cookie: script cannot read it, other sites cannot send it,
/// and under TLS it is never sent in the clear.
pub fn session_cookie(name: &str, token: &str, max_age_secs: i64, secure: bool) -> String {
    format!(
        "{name}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn only_the_app_own_pages_are_same_origin() {
        assert!(same_origin(&headers(&[
            (header::HOST, "10.0.0.2:8080"),
            (header::ORIGIN, "http://10.0.0.2:8080"),
        ])));
        assert!(same_origin(&headers(&[
            (header::HOST, "hub.local"),
            (header::REFERER, "https://hub.local/devices"),
        ])));
        assert!(!same_origin(&headers(&[
            (header::HOST, "10.0.0.2:8080"),
            (header::ORIGIN, "http://evil.example"),
        ])));
        assert!(!same_origin(&headers(&[(header::HOST, "10.0.0.2:8080")])));
        assert!(!same_origin(&headers(&[
            (header::HOST, "10.0.0.2:8080"),
            (header::ORIGIN, "null"),
        ])));
    }

    #[test]
    fn a_form_needs_the_session_token_and_the_app_origin() {
        let own = headers(&[
            (header::HOST, "hub.local"),
            (header::ORIGIN, "http://hub.local"),
        ]);
        assert!(check_form(&own, "t0k3n", "t0k3n", "this hub").is_ok());
        assert!(check_form(&own, "t0k3m", "t0k3n", "this hub").is_err());
        let foreign = headers(&[
            (header::HOST, "hub.local"),
            (header::ORIGIN, "http://evil.example"),
        ]);
        let refused = check_form(&foreign, "t0k3n", "t0k3n", "this hub").unwrap_err();
        assert_eq!(refused.app, "this hub");
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }

    #[test]
    fn cookies_are_found_by_name() {
        let h = headers(&[(header::COOKIE, "a=1; glyco_session=xyz; b=2")]);
        assert_eq!(cookie(&h, "glyco_session").as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
