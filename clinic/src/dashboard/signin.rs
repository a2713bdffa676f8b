//! Sign-In with Ethereum (EIP-4361) for the dashboard's one physician.
//!
//! `GET /login` issues a message naming this dashboard (the request's
//! host), the chain, a one-time nonce and a five-minute expiry, for the
//! physician's address. The browser's wallet signs it (`personal_sign`,
//! EIP-191), or the physician signs it on the command line
//! (`glyco-clinic physician sign-in`) and pastes the signature. `POST
//! /login` checks the message is the canonical text of one this dashboard
//! issued to this host, unexpired, its nonce unused, the signature the
//! physician's, and the physician active on chain.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use glyco_contracts::Address;
use glyco_webkit::{now_millis, random_hex, same_origin};
use maud::html;
use parking_lot::Mutex;
use serde::Deserialize;

use super::Dashboard;
use super::pages::layout;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "glyco_clinic_session";
/// How long an issued message may be signed in with.
const MESSAGE_LIFETIME_MS: i64 = 5 * 60 * 1000;
/// Nonces outstanding at once; a new one pushes out the oldest.
const MAX_NONCES: usize = 256;
const STATEMENT: &str = "Sign in to the Glyco clinic dashboard as this physician.";

/// Why a sign-in was refused (shown to the person, counted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInRefusal {
    #[error("the message is not a Sign-In with Ethereum message: {0}")]
    Malformed(String),
    #[error("the message is not the one this dashboard issued (it was changed)")]
    NotCanonical,
    #[error("the message names another site ({0})")]
    WrongDomain(String),
    #[error("the message is for chain {0}, not this dashboard's")]
    WrongChain(u64),
    #[error(
        "the message's nonce was not issued here, was used already, or is older than five minutes"
    )]
    UnknownNonce,
    #[error("the message has expired")]
    Expired,
    #[error("the signature is not 65 bytes of hex")]
    SignatureShape,
    #[error("the signature is not by the account the message names")]
    BadSignature,
    #[error("this dashboard serves physician {expected}, not {got}")]
    OtherAccount { expected: Address, got: Address },
    #[error("the chain does not show {0} as an active physician")]
    NotActivePhysician(Address),
    #[error("the chain cannot be asked: {0}")]
    Chain(String),
}

/// Nonces issued and not yet used.
#[derive(Debug, Default)]
pub struct Nonces {
    inner: Mutex<NonceBook>,
}

#[derive(Debug, Default)]
struct NonceBook {
    /// Nonce → (issued at, issue order). The order, not the clock, says
    /// which is oldest: many are issued within one millisecond.
    issued: HashMap<String, (i64, u64)>,
    next: u64,
}

impl Nonces {
    pub fn issue(&self) -> String {
        let now = now_millis();
        // 32 hex digits: alphanumeric, as EIP-4361 asks, and 128 bits.
        let nonce = random_hex()[..32].to_owned();
        let mut book = self.inner.lock();
        book.issued
            .retain(|_, (at, _)| now - *at < MESSAGE_LIFETIME_MS);
        if book.issued.len() >= MAX_NONCES
            && let Some(oldest) = book
                .issued
                .iter()
                .min_by_key(|(_, (_, order))| *order)
                .map(|(n, _)| n.clone())
        {
            book.issued.remove(&oldest);
        }
        let order = book.next;
        book.next += 1;
        book.issued.insert(nonce.clone(), (now, order));
        nonce
    }

    /// Uses `nonce` up: true if it was issued here within the lifetime.
    pub fn take(&self, nonce: &str) -> bool {
        self.inner
            .lock()
            .issued
            .remove(nonce)
            .is_some_and(|(at, _)| now_millis() - at < MESSAGE_LIFETIME_MS)
    }
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_second(ms / 1000)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The EIP-4361 message for `address` to sign in at `host`.
pub fn message(host: &str, address: Address, chain_id: u64, nonce: &str, now_ms: i64) -> String {
    format!(
        "{host} wants you to sign in with your Ethereum account:\n{}\n\n{STATEMENT}\n\nURI: http://{host}/\nVersion: 1\nChain ID: {chain_id}\nNonce: {nonce}\nIssued At: {}\nExpiration Time: {}",
        address.to_checksum(None),
        rfc3339(now_ms),
        rfc3339(now_ms + MESSAGE_LIFETIME_MS),
    )
}

/// Checks a signed message against what this dashboard issues, without
/// the chain: the address that signed in.
pub fn check(
    text: &str,
    signature_hex: &str,
    host: &str,
    chain_id: u64,
    expected: Address,
    nonces: &Nonces,
) -> Result<Address, SignInRefusal> {
    let parsed: siwe::Message = text
        .parse()
        .map_err(|e: siwe::ParseError| SignInRefusal::Malformed(e.to_string()))?;
    // The signature covers the text as the wallet showed it; the checks
    // below read the parsed fields: the two must be the same message.
    if parsed.to_string() != text {
        return Err(SignInRefusal::NotCanonical);
    }
    if !parsed.domain.as_str().eq_ignore_ascii_case(host)
        || parsed.uri.as_str() != format!("http://{host}/")
    {
        return Err(SignInRefusal::WrongDomain(parsed.domain.to_string()));
    }
    if parsed.chain_id != chain_id {
        return Err(SignInRefusal::WrongChain(parsed.chain_id));
    }
    if parsed.expiration_time.is_none() || !parsed.valid_now() {
        return Err(SignInRefusal::Expired);
    }
    let signature = hex::decode(signature_hex.trim().trim_start_matches("0x"))
        .ok()
        .and_then(|b| <[u8; 65]>::try_from(b).ok())
        .ok_or(SignInRefusal::SignatureShape)?;
    // The nonce is spent by any well-formed attempt, so a signature cannot
    // be tried twice.
    if !nonces.take(&parsed.nonce) {
        return Err(SignInRefusal::UnknownNonce);
    }
    parsed
        .verify_eip191(&signature)
        .map_err(|_| SignInRefusal::BadSignature)?;
    let signer = Address::from(parsed.address);
    if signer != expected {
        return Err(SignInRefusal::OtherAccount {
            expected,
            got: signer,
        });
    }
    Ok(signer)
}

fn host(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty() && h.len() <= 255 && !h.contains(char::is_whitespace))
        .map(str::to_owned)
}

fn page(dash: &Dashboard, host: &str, refusal: Option<&str>) -> Html<String> {
    let text = message(
        host,
        dash.physician,
        dash.chain_id,
        &dash.nonces.issue(),
        now_millis(),
    );
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            @if let Some(refusal) = refusal { p.notice role="alert" { (refusal) } }
            p { "This dashboard serves physician " code { (dash.physician.to_checksum(None)) } ". Sign the message below with that account's key." }
            pre #siwe-message { (text) }
            form #signin method="post" action="/login" data-address=(dash.physician.to_checksum(None)) {
                input type="hidden" name="message" value=(text);
                p {
                    button #wallet type="button" { "Sign with my wallet" }
                    " " span #wallet-error {}
                }
                details {
                    summary { "No wallet in this browser" }
                    p { "Save the message to a file and sign it with your key: "
                        code { "glyco-clinic physician sign-in --key <your key file> < message.txt" }
                        ". Paste the signature here:" }
                    label { "Signature " input type="text" name="signature" size="70" autocomplete="off"; }
                    " " button type="submit" { "Sign in" }
                }
            }
            script src="/signin.js" defer {}
        },
    )
}

pub async fn form(State(dash): State<Arc<Dashboard>>, headers: HeaderMap) -> Response {
    match host(&headers) {
        Some(host) => page(&dash, &host, None).into_response(),
        None => (StatusCode::BAD_REQUEST, "no Host header").into_response(),
    }
}

#[derive(Deserialize)]
pub struct SignInForm {
    message: String,
    signature: String,
}

pub async fn sign_in(
    State(dash): State<Arc<Dashboard>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let Some(host) = host(&headers) else {
        return (StatusCode::BAD_REQUEST, "no Host header").into_response();
    };
    if !same_origin(&headers) {
        dash.count(|c| c.csrf_refused += 1);
        return (
            StatusCode::FORBIDDEN,
            "refused: not from this dashboard's own page",
        )
            .into_response();
    }
    if let Err(wait) = dash.throttle.check(peer.ip()) {
        let text = format!(
            "Too many refused sign-ins. Try again in {} s.",
            wait.as_secs() + 1
        );
        let mut response = page(&dash, &host, Some(&text)).into_response();
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        return response;
    }
    // Form submission turns the message's line feeds into CR LF.
    let text = form.message.replace("\r\n", "\n");
    let checked = check(
        &text,
        &form.signature,
        &host,
        dash.chain_id,
        dash.physician,
        &dash.nonces,
    );
    let checked = match checked {
        Ok(address) => match dash.chain.is_active_physician(address).await {
            Ok(true) => Ok(address),
            Ok(false) => Err(SignInRefusal::NotActivePhysician(address)),
            Err(e) => Err(SignInRefusal::Chain(e.to_string())),
        },
        Err(refusal) => Err(refusal),
    };
    match checked {
        Ok(address) => {
            dash.throttle.succeeded(peer.ip());
            dash.count(|c| c.signed_in += 1);
            tracing::info!(%address, from = %peer.ip(), "physician signed in");
            let (token, _) = dash.sessions.create(address);
            let cookie = glyco_webkit::origin::session_cookie(
                SESSION_COOKIE,
                &token,
                glyco_webkit::session::ABSOLUTE_MS / 1000,
                false,
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        Err(refusal) => {
            if !matches!(refusal, SignInRefusal::Chain(_)) {
                dash.throttle.failed(peer.ip());
            }
            dash.count(|c| c.sign_in_refused += 1);
            tracing::warn!(from = %peer.ip(), %refusal, "sign-in refused");
            let mut response = page(&dash, &host, Some(&refusal.to_string())).into_response();
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            response
        }
    }
}

/// The only script: asks the browser's wallet (EIP-1193) to sign.
pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SIGNIN_JS,
    )
        .into_response()
}

const SIGNIN_JS: &str = r#"// Asks the browser's Ethereum wallet (EIP-1193) to sign the sign-in message.
(function () {
  const button = document.getElementById('wallet');
  const form = document.getElementById('signin');
  if (!button || !form) return;
  const error = document.getElementById('wallet-error');
  if (!window.ethereum) {
    button.disabled = true;
    error.textContent = 'No wallet in this browser: sign on the command line below.';
    return;
  }
  button.addEventListener('click', async function () {
    const message = form.elements.message.value;
    const hex = '0x' + Array.from(new TextEncoder().encode(message),
      function (b) { return b.toString(16).padStart(2, '0'); }).join('');
    try {
      await window.ethereum.request({ method: 'eth_requestAccounts' });
      const signature = await window.ethereum.request({
        method: 'personal_sign', params: [hex, form.dataset.address] });
      form.elements.signature.value = signature;
      form.submit();
    } catch (e) {
      error.textContent = 'The wallet did not sign: ' + (e && e.message ? e.message : e);
    }
  });
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use glyco_contracts::keys::{DEV_MNEMONIC, dev_account, sign_personal_message};

    const HOST: &str = "127.0.0.1:8090";

    fn signed(nonces: &Nonces, account: u32, host: &str, chain: u64) -> (String, String, Address) {
        let key = dev_account(DEV_MNEMONIC, account).unwrap();
        let text = message(host, key.address(), chain, &nonces.issue(), now_millis());
        let signature = sign_personal_message(&key, text.as_bytes()).unwrap();
        (text, hex::encode(signature), key.address())
    }

    #[test]
    fn the_physician_signs_in_once_with_an_issued_message() {
        let nonces = Nonces::default();
        let (text, sig, me) = signed(&nonces, 2, HOST, 31337);
        assert_eq!(check(&text, &sig, HOST, 31337, me, &nonces), Ok(me));
        assert_eq!(
            check(&text, &sig, HOST, 31337, me, &nonces),
            Err(SignInRefusal::UnknownNonce),
            "a replay"
        );
    }

    #[test]
    fn forged_changed_foreign_and_stale_messages_are_refused() {
        let nonces = Nonces::default();
        let me = dev_account(DEV_MNEMONIC, 2).unwrap().address();
        // Another account's valid signature of its own message.
        let (text, sig, other) = signed(&nonces, 3, HOST, 31337);
        assert_eq!(
            check(&text, &sig, HOST, 31337, me, &nonces),
            Err(SignInRefusal::OtherAccount {
                expected: me,
                got: other
            })
        );
        // A message naming me, signed by another key.
        let text = message(HOST, me, 31337, &nonces.issue(), now_millis());
        let forged =
            sign_personal_message(&dev_account(DEV_MNEMONIC, 3).unwrap(), text.as_bytes()).unwrap();
        assert_eq!(
            check(&text, &hex::encode(forged), HOST, 31337, me, &nonces),
            Err(SignInRefusal::BadSignature)
        );
        // Issued for another site, another chain, or a nonce never issued.
        let (text, sig, _) = signed(&nonces, 2, "evil.example", 31337);
        assert!(matches!(
            check(&text, &sig, HOST, 31337, me, &nonces),
            Err(SignInRefusal::WrongDomain(_))
        ));
        let (text, sig, _) = signed(&nonces, 2, HOST, 1);
        assert_eq!(
            check(&text, &sig, HOST, 31337, me, &nonces),
            Err(SignInRefusal::WrongChain(1))
        );
        let key = dev_account(DEV_MNEMONIC, 2).unwrap();
        let text = message(
            HOST,
            me,
            31337,
            "0123456789abcdef0123456789abcdef",
            now_millis(),
        );
        let sig = hex::encode(sign_personal_message(&key, text.as_bytes()).unwrap());
        assert_eq!(
            check(&text, &sig, HOST, 31337, me, &nonces),
            Err(SignInRefusal::UnknownNonce)
        );
        // Expired an hour ago.
        let text = message(HOST, me, 31337, &nonces.issue(), now_millis() - 3_600_000);
        let sig = hex::encode(sign_personal_message(&key, text.as_bytes()).unwrap());
        assert_eq!(
            check(&text, &sig, HOST, 31337, me, &nonces),
            Err(SignInRefusal::Expired)
        );
        // Changed after signing: an extra space, or not SIWE at all.
        let (text, sig, _) = signed(&nonces, 2, HOST, 31337);
        let changed = text.replace("Version: 1", "Version:  1");
        assert!(check(&changed, &sig, HOST, 31337, me, &nonces).is_err());
        assert!(matches!(
            check("hello", &sig, HOST, 31337, me, &nonces),
            Err(SignInRefusal::Malformed(_))
        ));
        assert_eq!(
            check(&text, "0x1234", HOST, 31337, me, &nonces),
            Err(SignInRefusal::SignatureShape)
        );
    }

    #[test]
    fn nonces_are_bounded() {
        let nonces = Nonces::default();
        let first = nonces.issue();
        for _ in 0..MAX_NONCES {
            nonces.issue();
        }
        assert!(!nonces.take(&first), "the oldest was pushed out");
        assert_eq!(nonces.inner.lock().issued.len(), MAX_NONCES);
    }
}
