//! The patient's pages: Now, Devices, Report, Hub, and signing in.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, async_trait};
use glyco_contracts::{DeviceIdentity, DeviceKind};
use glyco_report::html as report_html;
use glyco_seal::reading::GlucoseUnit;
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;

use glyco_webkit::CsrfRefusal;
use glyco_webkit::shell::{self, SignedIn};

use super::auth::{self, SESSION_COOKIE};
use super::glucose::{cgm_points, newest_sgvs};
use super::{SETTINGS_META, WebState};
use crate::reading::now_millis;

/// The signed-in patient's session, from its cookie; pages without one
/// send the browser to the sign-in page.
pub struct Patient {
    token: String,
    pub(super) csrf: String,
}

#[async_trait]
impl FromRequestParts<Arc<WebState>> for Patient {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        web: &Arc<WebState>,
    ) -> Result<Self, Self::Rejection> {
        match web.sessions.from_headers(&parts.headers, SESSION_COOKIE) {
            Some((token, session)) => Ok(Patient {
                token,
                csrf: session.csrf,
            }),
            None => Err(Redirect::to("/login").into_response()),
        }
    }
}

/// A form's CSRF token must be the session's, from the hub's own origin.
pub(super) fn check_form(
    web: &WebState,
    patient: &Patient,
    csrf: &str,
    headers: &HeaderMap,
) -> Result<(), CsrfRefusal> {
    glyco_webkit::origin::check_form(headers, csrf, &patient.csrf, "this hub").inspect_err(|_| {
        web.status.lock().counts.csrf_refused += 1;
    })
}

pub(super) fn layout(title: &str, patient: Option<&Patient>, body: Markup) -> Html<String> {
    let signed_in = patient.map(|patient| SignedIn {
        menu: &[
            ("/", "Now"),
            ("/devices", "Devices"),
            ("/sharing", "Sharing"),
            ("/report", "Report"),
            ("/hub", "Hub"),
        ],
        who: None,
        csrf: &patient.csrf,
    });
    Html(shell::page("glyco hub", title, signed_in, body))
}

fn unit(web: &WebState) -> GlucoseUnit {
    web.settings.lock().unit
}

fn age(ms: i64) -> String {
    let secs = (now_millis() - ms).max(0) / 1000;
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h {} min ago", secs / 3600, secs % 3600 / 60),
        _ => format!("{} days ago", secs / 86_400),
    }
}

pub(super) fn local_time(web: &WebState, ms: i64) -> String {
    report_html::local_time(&web.time_zone, ms)
}

pub async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        format!("{}{}", glyco_webkit::style::APP, report_html::STYLE),
    )
        .into_response()
}

// ---- signing in -------------------------------------------------------------

pub async fn login_form(State(web): State<Arc<WebState>>) -> Html<String> {
    login_page(&web, None)
}

fn login_page(web: &WebState, message: Option<&str>) -> Html<String> {
    let pin_set = auth::load_pin(&web.pin_path).ok().flatten().is_some();
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            @if let Some(message) = message { p.notice role="alert" { (message) } }
            @if pin_set {
                form.login method="post" action="/login" {
                    label { "PIN " input type="password" name="pin" inputmode="numeric" autocomplete="current-password" required; }
                    button type="submit" { "Sign in" }
                }
            } @else {
                p.notice { "No PIN is set on this hub yet: it is set at enrolment (glyco-hub web set-pin)." }
            }
        },
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    pin: String,
}

pub async fn login(
    State(web): State<Arc<WebState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Err(wait) = web.login_throttle.check(peer.ip()) {
        let message = format!(
            "Too many wrong PINs. Try again in {} s.",
            wait.as_secs() + 1
        );
        let mut response = login_page(&web, Some(&message)).into_response();
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        return response;
    }
    let stored = auth::load_pin(&web.pin_path).ok().flatten();
    let pin = form.pin;
    let good = match stored {
        Some(stored) => tokio::task::spawn_blocking(move || auth::verify_pin(&stored, &pin))
            .await
            .unwrap_or(false),
        None => false,
    };
    if !good {
        web.login_throttle.failed(peer.ip());
        web.status.lock().counts.pin_refused += 1;
        web.actions
            .record(&web.writer, peer.ip(), "sign-in refused (wrong PIN)".into())
            .await;
        let mut response = login_page(&web, Some("Wrong PIN.")).into_response();
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    }
    web.login_throttle.succeeded(peer.ip());
    web.status.lock().counts.signed_in += 1;
    let (token, _) = web.sessions.create(());
    web.actions
        .record(&web.writer, peer.ip(), "signed in".into())
        .await;
    let cookie = glyco_webkit::origin::session_cookie(
        SESSION_COOKIE,
        &token,
        auth::ABSOLUTE_MS / 1000,
        web.secure_cookies,
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn logout(
    State(web): State<Arc<WebState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    patient: Patient,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = check_form(&web, &patient, &form.csrf, &headers) {
        return r.into_response();
    }
    web.sessions.end(&patient.token);
    web.actions
        .record(&web.writer, peer.ip(), "signed out".into())
        .await;
    let expired = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    ([(header::SET_COOKIE, expired)], Redirect::to("/login")).into_response()
}

// ---- Now ----------------------------------------------------------------------

pub async fn now(State(web): State<Arc<WebState>>, patient: Patient) -> Html<String> {
    let report = (web.report)();
    let unit = unit(&web);
    let now = now_millis();
    let journal = web.journal.clone();
    let latest = tokio::task::spawn_blocking(move || {
        newest_sgvs(&journal, 1, now - 3_600_000, now + 60_000)
    })
    .await
    .ok()
    .and_then(Result::ok)
    .and_then(|mut v| v.pop());
    layout(
        "Now",
        Some(&patient),
        html! {
            h1 { "Now" }
            section.latest {
                @match &latest {
                    Some(sgv) => {
                        p.glucose {
                            span.value { (report_html::glucose(sgv.mg_dl, unit)) }
                            " " span.unit { (unit.as_str()) }
                            " " span.trend title=(sgv.trend.name()) { (sgv.trend.arrow()) }
                        }
                        p.age { (sgv.device) " · " (age(sgv.at_ms)) }
                    }
                    None => p.notice { "No CGM reading in the last hour." },
                }
            }
            h2 { "Alerts" }
            @if report.alerts.open.is_empty() {
                p { "No open alerts." }
            }
            ul.alerts {
                @for alert in &report.alerts.open {
                    li class=(format!("alert {}", alert.severity)) {
                        strong { (alert.kind) } " on " (alert.device) ": " (alert.explanation)
                        " (" (age(alert.created_at_ms)) ", step " (alert.step) ")"
                        form.inline method="post" action="/alerts/ack" {
                            input type="hidden" name="csrf" value=(patient.csrf);
                            input type="hidden" name="id" value=(alert.id);
                            button type="submit" { "Acknowledge" }
                        }
                    }
                }
            }
            h2 { "Devices" }
            table.devices {
                tr { th { "Device" } th { "Latest" } th { "When" } }
                @for device in report.devices.iter().filter(|d| d.last_reading.is_some()) {
                    @if let Some(reading) = &device.last_reading {
                        tr {
                            td { (device.identity.as_deref().unwrap_or("?")) }
                            td { (reading.measurement.display_value()) }
                            td { (age(reading.measured_at())) }
                        }
                    }
                }
            }
            h2 { "Recent findings" }
            ul.findings {
                @for finding in report.analysis.recent.iter().rev().take(10) {
                    li { strong { (finding.kind) } " [" (finding.severity) "] " (finding.device) ": " (finding.explanation) }
                }
            }
        },
    )
}

#[derive(Deserialize)]
pub struct AckForm {
    csrf: String,
    id: String,
}

pub async fn ack_alert(
    State(web): State<Arc<WebState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    patient: Patient,
    headers: HeaderMap,
    Form(form): Form<AckForm>,
) -> Response {
    if let Err(r) = check_form(&web, &patient, &form.csrf, &headers) {
        return r.into_response();
    }
    match web.alerts.patient_ack(form.id.clone()).await {
        Ok(record) => {
            web.actions
                .record(
                    &web.writer,
                    peer.ip(),
                    format!("acknowledged alert {} ({})", record.id, record.kind),
                )
                .await;
            Redirect::to("/").into_response()
        }
        Err(e) => (StatusCode::CONFLICT, format!("not acknowledged: {e}")).into_response(),
    }
}

// ---- Devices --------------------------------------------------------------------

pub(super) const KINDS: [(&str, DeviceKind); 8] = [
    ("cgm", DeviceKind::Cgm),
    ("glucometer", DeviceKind::Glucometer),
    ("blood-pressure", DeviceKind::BloodPressure),
    ("heart-rate", DeviceKind::HeartRate),
    ("weight", DeviceKind::Weight),
    ("thermometer", DeviceKind::Thermometer),
    ("pulse-oximeter", DeviceKind::PulseOximeter),
    ("other", DeviceKind::Other),
];

pub async fn devices(State(web): State<Arc<WebState>>, patient: Patient) -> Html<String> {
    devices_page(&web, &patient, None)
}

pub(super) fn devices_page(
    web: &WebState,
    patient: &Patient,
    added: Option<Markup>,
) -> Html<String> {
    let report = (web.report)();
    let findings = |identity: &str| {
        report
            .analysis
            .recent
            .iter()
            .filter(|f| f.device == identity && f.kind.starts_with("node_behaviour:"))
            .count()
    };
    layout(
        "Devices",
        Some(patient),
        html! {
            h1 { "Devices" }
            @if let Some(added) = added { (added) }
            h2 { "Your devices" }
            p.hint { "A device registered here appears once the hub's copy of the chain has the change, within seconds." }
            table.devices {
                tr { th { "Device" } th { "Kind" } th { "On chain" } th { "Connected" } th { "Last reading" } th { "Behaviour findings" } th {} }
                @for device in &report.devices {
                    @let identity = device.identity.clone().unwrap_or_else(|| device.device_id.to_string());
                    tr {
                        td { (identity) }
                        td { (device.kind.map(|k| format!("{k:?}")).unwrap_or_default()) }
                        td { (format!("{:?}", device.standing)) }
                        td { @if device.connected { "yes" } @else { "no" } }
                        td { (device.last_reading.as_ref().map(|r| age(r.received_at)).unwrap_or_else(|| "never".into())) }
                        td { (findings(&identity)) }
                        td {
                            @if device.identity.is_some() && web.devices.is_some() {
                                form.inline method="post" action="/devices/remove" {
                                    input type="hidden" name="csrf" value=(patient.csrf);
                                    input type="hidden" name="identity" value=(identity);
                                    button type="submit" { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
            p { "Refusals: " @for r in &report.refusals { (format!("{:?} {:?}: {}; ", r.transport, r.reason, r.count)) } }
            h2 { "Add a Wi-Fi (MQTT) device" }
            @if web.devices.is_some() {
                form.add method="post" action="/devices" {
                    input type="hidden" name="csrf" value=(patient.csrf);
                    label { "Name " input type="text" name="name" required pattern="[A-Za-z0-9._-]{1,64}" maxlength="64"; }
                    label { "Kind " select name="kind" { @for (value, _) in KINDS { option value=(value) { (value) } } } }
                    button type="submit" { "Register on chain" }
                }
            } @else {
                p.notice { "This hub has no chain client: devices are added with glyco-hub device add." }
            }
            (super::bluetooth::section(web, patient))
        },
    )
}

#[derive(Deserialize)]
pub struct AddDeviceForm {
    csrf: String,
    name: String,
    kind: String,
}

pub async fn add_device(
    State(web): State<Arc<WebState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    patient: Patient,
    headers: HeaderMap,
    Form(form): Form<AddDeviceForm>,
) -> Response {
    if let Err(r) = check_form(&web, &patient, &form.csrf, &headers) {
        return r.into_response();
    }
    let Some(admin) = &web.devices else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no chain client").into_response();
    };
    let identity = match DeviceIdentity::name(form.name.trim()) {
        Ok(identity) => identity,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("not a device name: {e}")).into_response();
        }
    };
    let Some((_, kind)) = KINDS.iter().find(|(value, _)| *value == form.kind) else {
        return (StatusCode::BAD_REQUEST, "unknown device kind").into_response();
    };
    match admin.add(&identity, *kind).await {
        Ok(added) => {
            web.actions
                .record(
                    &web.writer,
                    peer.ip(),
                    format!(
                        "registered {identity} ({}) on chain: tx {}",
                        form.kind, added.tx.hash
                    ),
                )
                .await;
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(|h| h.rsplit_once(':').map_or(h, |(host, _)| host).to_owned())
                .unwrap_or_else(|| "hub".into());
            let name = form.name.trim();
            let shown = added.mqtt_secret.map(|secret| {
                let broker = format!("mqtt://{host}:{}", web.mqtt_port.unwrap_or(1883));
                let provisioning = serde_json::json!({
                    "broker": broker,
                    "username": name,
                    "password": secret,
                    "publish": format!("glyco/v1/readings/{name}"),
                    "acks": format!("glyco/v1/acks/{name}"),
                })
                .to_string();
                let qr = crate::qr::svg(&provisioning).unwrap_or_default();
                html! {
                    section.added {
                        h2 { "Registered: " (name) }
                        p { "On chain in transaction " code { (added.tx.hash) } "." }
                        p.notice { "The password is shown once, now. Enter it in the device, or let it scan the code." }
                        dl {
                            dt { "Broker" } dd { code { (broker) } }
                            dt { "Username" } dd { code.username { (name) } }
                            dt { "Password" } dd { code.password { (secret) } }
                            dt { "Publishes to" } dd { code { "glyco/v1/readings/" (name) } }
                        }
                        div.qr { (PreEscaped(qr)) }
                    }
                }
            });
            let mut response = devices_page(&web, &patient, shown).into_response();
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            response
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("not registered: {e}")).into_response(),
    }
}

#[derive(Deserialize)]
pub struct RemoveDeviceForm {
    csrf: String,
    identity: String,
}

pub async fn remove_device(
    State(web): State<Arc<WebState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    patient: Patient,
    headers: HeaderMap,
    Form(form): Form<RemoveDeviceForm>,
) -> Response {
    if let Err(r) = check_form(&web, &patient, &form.csrf, &headers) {
        return r.into_response();
    }
    let Some(admin) = &web.devices else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no chain client").into_response();
    };
    let identity: DeviceIdentity = match form.identity.parse() {
        Ok(identity) => identity,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("not a device: {e}")).into_response(),
    };
    match admin.remove(&identity).await {
        Ok(tx) => {
            // A Bluetooth device's bond goes too: it is no longer the patient's.
            let forgot = match (&identity, &web.pairing) {
                (DeviceIdentity::Ble(octets), Some(pairing)) => {
                    match pairing.forget(glyco_ble::BdAddr(*octets)).await {
                        Ok(()) => "; bond forgotten".to_owned(),
                        Err(e) => format!("; the bond stays: {e}"),
                    }
                }
                _ => String::new(),
            };
            web.actions
                .record(
                    &web.writer,
                    peer.ip(),
                    format!("removed {identity} on chain: tx {}{forgot}", tx.hash),
                )
                .await;
            Redirect::to("/devices").into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("not removed: {e}")).into_response(),
    }
}

// ---- Report -----------------------------------------------------------------------

#[derive(Deserialize)]
pub struct ReportQuery {
    days: Option<u32>,
}

pub async fn report(
    State(web): State<Arc<WebState>>,
    patient: Patient,
    Query(query): Query<ReportQuery>,
) -> Response {
    let days = query
        .days
        .unwrap_or(14)
        .clamp(1, glyco_report::agp::MAX_DAYS);
    let unit = unit(&web);
    let now = now_millis();
    let journal = web.journal.clone();
    let tz = web.time_zone.clone();
    let built = tokio::task::spawn_blocking(move || {
        let from = now - (i64::from(days) + 1) * 86_400_000;
        let points = cgm_points(&journal, from, now)?;
        let options = glyco_report::AgpOptions {
            days,
            bin_minutes: 15,
            time_zone: tz,
        };
        Ok::<_, crate::journal::JournalError>(glyco_report::agp(&points, now, &options))
    })
    .await;
    let agp = match built {
        Ok(Ok(Ok(agp))) => agp,
        Ok(Ok(Err(e))) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        Ok(Err(e)) => {
            return (StatusCode::SERVICE_UNAVAILABLE, format!("journal: {e}")).into_response();
        }
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "the report failed").into_response(),
    };
    layout(
        "Report",
        Some(&patient),
        html! {
            form.units.no-print method="post" action="/settings" {
                input type="hidden" name="csrf" value=(patient.csrf);
                "Units: "
                @for option in [GlucoseUnit::MgPerDl, GlucoseUnit::MmolPerL] {
                    button type="submit" name="unit" value=(option.as_str()) disabled[option == unit] { (option.as_str()) }
                }
                " · Print from your browser for a one-page report."
            }
            (report_html::report(&agp, unit, &format!("Glucose report, {days} days")))
        },
    )
    .into_response()
}

#[derive(Deserialize)]
pub struct SettingsForm {
    csrf: String,
    unit: String,
}

pub async fn settings(
    State(web): State<Arc<WebState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    patient: Patient,
    headers: HeaderMap,
    Form(form): Form<SettingsForm>,
) -> Response {
    if let Err(r) = check_form(&web, &patient, &form.csrf, &headers) {
        return r.into_response();
    }
    let unit = match form.unit.as_str() {
        "mg/dL" => GlucoseUnit::MgPerDl,
        "mmol/L" => GlucoseUnit::MmolPerL,
        _ => return (StatusCode::BAD_REQUEST, "the unit is mg/dL or mmol/L").into_response(),
    };
    let json = {
        let mut settings = web.settings.lock();
        settings.unit = unit;
        serde_json::to_vec(&*settings).unwrap_or_default()
    };
    if let Err(e) = web.writer.save_meta(SETTINGS_META, json).await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("not kept: {e}")).into_response();
    }
    web.actions
        .record(
            &web.writer,
            peer.ip(),
            format!("glucose unit set to {}", unit.as_str()),
        )
        .await;
    Redirect::to("/report").into_response()
}

// ---- Hub -------------------------------------------------------------------------

pub async fn hub(State(web): State<Arc<WebState>>, patient: Patient) -> Html<String> {
    let r = (web.report)();
    let seal = &r.seal;
    layout(
        "Hub",
        Some(&patient),
        html! {
            h1 { "Hub" }
            table.hub {
                tr { th { "Version" } td { (env!("CARGO_PKG_VERSION")) } }
                tr { th { "Hub address" } td { code { (r.hub) } } }
                tr { th { "Patient" } td { code { (r.patient.map(|p| p.to_string()).unwrap_or_default()) } } }
                tr { th { "Running since" } td { (local_time(&web, r.started_at)) } }
                tr { th { "Process" } td {
                    (format!("{:.1} MiB resident", r.process.rss_kib as f64 / 1024.0))
                    " · " (format!("{:.1} s CPU", r.process.cpu_ms as f64 / 1000.0))
                } }
                tr { th { "Chain" } td {
                    @if r.chain.reachable { "reachable" } @else { "unreachable" }
                    " · synced to block " (r.chain.synced_block.map(|b| b.to_string()).unwrap_or("-".into()))
                    " of " (r.chain.head.map(|b| b.to_string()).unwrap_or("-".into()))
                    @if let Some(e) = &r.chain.last_error { " · " (e) }
                } }
                tr { th { "Storage" } td {
                    (r.readings_stored) " readings in the journal; "
                    @match crate::disk::available_bytes(&web.state_dir) {
                        Ok(free) => { (format!("{:.1} GB free", free as f64 / 1e9)) }
                        Err(_) => "free space unknown",
                    }
                    @match &r.storage.failing {
                        Some(why) => { " · refusing readings: " (why) " (" (r.storage.readings_refused) " refused)" }
                        None => " · taking readings",
                    }
                } }
                tr { th { "Sealing" } td {
                    (seal.readings_sealed) " readings in " (seal.batches_sealed) " batches; "
                    (seal.readings_unsealed) " waiting"
                    @if let Some(e) = &seal.seal_error { " · " (e) }
                } }
                tr { th { "Anchoring" } td {
                    (seal.batches_anchored) " batches anchored in " (seal.anchors) " anchors"
                    @if let Some(e) = &seal.anchor_error { " · " (e) }
                } }
                tr { th { "Replication" } td { (seal.batches_replicated) " batches confirmed by a clinic replica; " (seal.batches_pruned) " pruned here" } }
                tr { th { "MQTT" } td { (r.mqtt.state) } }
                tr { th { "Bluetooth" } td { (r.ble.state) } }
            }
            h2 { "Recent actions on this app" }
            ul.actions {
                @for action in web.actions.newest(20) {
                    li { (local_time(&web, action.at_ms)) " · " (action.from) " · " (action.what) }
                }
            }
        },
    )
}
