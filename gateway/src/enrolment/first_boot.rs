//! First boot: a hub with no patient configured (and `await_enrolment`
//! set, as on the appliance image) makes its keys and serves one page on
//! the web app's address until a physician's enrolment code is given to it
//! (docs/APPLIANCE.md). The picture of the QR code is decoded on the hub,
//! or the code's text is pasted; then the hub runs as configured.
//!
//! Who may enrol: local-network peers only (as the web app), one attempt at
//! a time, a body of at most 512 KiB; a browser's post must come from the
//! page itself (its Origin). The code is only worth something with a live
//! token that the physician's node spends; a stranger's code for another
//! chain is refused when the image pins the consortium.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use maud::{Markup, html};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::{EnrolError, Enrolled, HubIdentity};
use crate::config::HubConfig;

/// Largest upload: a QR code's picture (a phone photo scaled down).
pub const MAX_UPLOAD_BYTES: usize = 512 * 1024;

/// Attempts and their outcomes, by kind (shown on the page and logged).
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub attempts: u64,
    pub refused: std::collections::BTreeMap<&'static str, u64>,
}

struct Waiting {
    config: HubConfig,
    identity: HubIdentity,
    counts: Mutex<Counts>,
    /// One enrolment at a time.
    busy: tokio::sync::Mutex<()>,
    done: CancellationToken,
    enrolled: Mutex<Option<Enrolled>>,
}

/// Waits for enrolment on `config.web.listen`. Returns what enrolment did,
/// or `None` if `shutdown` came first.
pub async fn wait(
    config: &HubConfig,
    shutdown: CancellationToken,
) -> Result<Option<Enrolled>, EnrolError> {
    let identity = super::ensure_keys(config)?;
    let listener = tokio::net::TcpListener::bind(config.web.listen)
        .await
        .map_err(|e| EnrolError::Invalid(format!("binding {}: {e}", config.web.listen)))?;
    let state = Arc::new(Waiting {
        config: config.clone(),
        identity: identity.clone(),
        counts: Mutex::new(Counts::default()),
        busy: tokio::sync::Mutex::new(()),
        done: CancellationToken::new(),
        enrolled: Mutex::new(None),
    });
    tracing::info!(
        hub = %identity.hub,
        patient = %identity.patient,
        node = %identity.node,
        listen = %config.web.listen,
        "waiting for enrolment"
    );
    crate::daemon::service_manager::ready(&format!(
        "waiting for enrolment on {} (hub {:#x})",
        config.web.listen, identity.hub
    ));
    let watchdog_stop = CancellationToken::new();
    tokio::spawn(crate::daemon::service_manager::watchdog_while_waiting(
        watchdog_stop.clone(),
    ));
    let stop = {
        let (shutdown, done) = (shutdown.clone(), state.done.clone());
        async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = done.cancelled() => {}
            }
        }
    };
    let served = axum::serve(
        listener,
        app(state.clone()).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await;
    watchdog_stop.cancel();
    served.map_err(|e| EnrolError::Invalid(format!("serving the enrolment page: {e}")))?;
    Ok(state.enrolled.lock().take())
}

fn app(state: Arc<Waiting>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/enrol", axum::routing::post(enrol))
        .route("/enrol.js", get(script))
        .route("/style.css", get(stylesheet))
        .layer(middleware::from_fn_with_state(
            glyco_webkit::guard::LocalGuard::new(
                state.config.web.lan_only,
                "the hub serves its local network only",
                glyco_webkit::headers::CSP_OWN_SCRIPTS,
            ),
            glyco_webkit::guard::local_only,
        ))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .with_state(state)
}

fn layout(body: Markup) -> Html<String> {
    Html(glyco_webkit::shell::page(
        "glyco hub",
        "Enrolment",
        None,
        body,
    ))
}

async fn page(State(state): State<Arc<Waiting>>) -> Html<String> {
    let id = &state.identity;
    let counts = state.counts.lock().clone();
    layout(html! {
        h1 { "This hub is waiting for enrolment" }
        p { "Your physician gives you an enrolment code (a QR code). Upload its picture, or paste its text." }
        dl {
            dt { "Hub" } dd { code { (format!("{:#x}", id.hub)) } }
            dt { "Your patient record" } dd { code { (format!("{:#x}", id.patient)) } }
            dt { "Hub node" } dd { code { (id.node) } }
        }
        form id="enrol" method="post" action="/enrol" {
            label for="pin" { "Choose the PIN for this hub's web app (6 to 12 digits)" }
            input id="pin" name="pin" type="password" inputmode="numeric" pattern="[0-9]{6,12}" required autocomplete="new-password";
            label for="file" { "Picture of the QR code (PNG)" }
            input id="file" type="file" accept="image/png";
            input id="picture" name="picture" type="hidden";
            label for="code" { "Or the code's text" }
            textarea id="code" name="code" rows="4" cols="60" {}
            button type="submit" { "Enrol" }
        }
        @if counts.attempts > 0 {
            p { (counts.attempts) " attempt(s); refused: "
                @for (kind, n) in &counts.refused { (kind) " " (n) "; " } }
        }
        script src="/enrol.js" {}
    })
}

/// Puts the chosen picture into the form as a data URL before it is sent.
const SCRIPT: &str = r#"const form = document.getElementById('enrol');
form.addEventListener('submit', (event) => {
  const file = document.getElementById('file').files[0];
  if (!file || document.getElementById('picture').value) { return; }
  event.preventDefault();
  const reader = new FileReader();
  reader.onload = () => { document.getElementById('picture').value = reader.result; form.submit(); };
  reader.readAsDataURL(file);
});
"#;

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        glyco_webkit::style::APP,
    )
}

/// What the patient submitted: the code (a PNG picture or its text) and,
/// on the page's forms, the web app's PIN to set.
struct Submission {
    code: Vec<u8>,
    pin: Option<String>,
}

/// The page's forms post `code` (text) or `picture` (a PNG as base64 or a
/// data URL) with `pin`; scripts may post the PNG or the text as the body.
fn submission(headers: &HeaderMap, body: &Bytes) -> Result<Submission, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Ok(Submission {
            code: body.to_vec(),
            pin: None,
        });
    }
    let mut code = Vec::new();
    let mut pin = None;
    for (key, value) in form_urlencoded::parse(body) {
        match key.as_ref() {
            "code" if !value.trim().is_empty() => code = value.as_bytes().to_vec(),
            "picture" if !value.is_empty() => {
                let encoded = value
                    .split_once("base64,")
                    .map_or(value.as_ref(), |(_, b)| b);
                code = data_encoding::BASE64
                    .decode(encoded.trim().as_bytes())
                    .map_err(|_| "the picture is not base64".to_owned())?;
            }
            "pin" if !value.is_empty() => pin = Some(value.into_owned()),
            _ => {}
        }
    }
    Ok(Submission { code, pin })
}

async fn enrol(
    State(state): State<Arc<Waiting>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    // A browser's post must come from this page; scripts send no Origin.
    let has_origin = headers.contains_key(header::ORIGIN) || headers.contains_key(header::REFERER);
    if has_origin && !glyco_webkit::origin::same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "refused: another site's form".into());
    }
    let Ok(_one) = state.busy.try_lock() else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "an enrolment is under way; try again in a minute".into(),
        );
    };
    if state.done.is_cancelled() {
        return (StatusCode::CONFLICT, "this hub is already enrolled".into());
    }
    state.counts.lock().attempts += 1;
    let submission = match submission(&headers, &body) {
        Ok(submission) => submission,
        Err(e) => return (StatusCode::UNPROCESSABLE_ENTITY, format!("refused: {e}")),
    };
    // A PIN of the wrong shape is refused before the token is spent.
    if let Some(pin) = &submission.pin
        && let Err(e) = crate::web::auth::check_pin_shape(pin)
    {
        return (StatusCode::UNPROCESSABLE_ENTITY, format!("refused: {e}"));
    }
    let result = match super::read_code(&submission.code) {
        Ok(invitation) => super::enrol(&state.config, &invitation).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(enrolled) => {
            if let Some(pin) = &submission.pin
                && let Err(e) = crate::web::auth::set_pin(&state.config.web_pin_path(), pin)
            {
                tracing::error!(error = %e, "setting the web app's PIN after enrolment");
            }
            let message = format!(
                "enrolled with physician {:#x}: patient {:#x}, hub {:#x}; the hub is starting",
                enrolled.physician, enrolled.patient, enrolled.hub
            );
            *state.enrolled.lock() = Some(enrolled);
            state.done.cancel();
            (StatusCode::OK, message)
        }
        Err(e) => {
            let kind = e.kind();
            *state.counts.lock().refused.entry(kind).or_default() += 1;
            tracing::warn!(reason = kind, error = %e, "enrolment refused");
            let status = match &e {
                EnrolError::Chain(_) | EnrolError::Unreachable(_) | EnrolError::NoOffer(_) => {
                    StatusCode::BAD_GATEWAY
                }
                EnrolError::Key(_) | EnrolError::Write { .. } => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            (status, format!("refused ({kind}): {e}"))
        }
    }
}
