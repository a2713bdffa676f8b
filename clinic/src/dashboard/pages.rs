//! The dashboard's pages: my patients, one patient (grants, the access log,
//! opening the report), the alert inbox with Acknowledge, signing out.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, async_trait};
use glyco_contracts::{AccessAction, AccessEntry, Address, DataKinds, Expiry, GrantRecord};
use glyco_report::html::local_time;
use glyco_webkit::CsrfRefusal;
use glyco_webkit::shell::{self, SignedIn};
use maud::{Markup, html};
use serde::Deserialize;

use super::Dashboard;
use super::signin::SESSION_COOKIE;

/// Access-log entries shown on a patient's page.
const LOG_SHOWN: usize = 50;

/// The signed-in physician's session; pages without one go to sign-in.
pub struct Physician {
    token: String,
    pub address: Address,
    pub csrf: String,
}

#[async_trait]
impl FromRequestParts<Arc<Dashboard>> for Physician {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        dash: &Arc<Dashboard>,
    ) -> Result<Self, Self::Rejection> {
        match dash.sessions.from_headers(&parts.headers, SESSION_COOKIE) {
            Some((token, session)) => Ok(Physician {
                token,
                address: session.subject,
                csrf: session.csrf,
            }),
            None => Err(Redirect::to("/login").into_response()),
        }
    }
}

/// A form's CSRF token must be the session's, from the dashboard's origin.
pub(super) fn check_form(
    dash: &Dashboard,
    physician: &Physician,
    csrf: &str,
    headers: &HeaderMap,
) -> Result<(), CsrfRefusal> {
    glyco_webkit::origin::check_form(headers, csrf, &physician.csrf, "this dashboard")
        .inspect_err(|_| dash.count(|c| c.csrf_refused += 1))
}

pub(super) fn layout(title: &str, physician: Option<&Physician>, body: Markup) -> Html<String> {
    let signed_in = physician.map(|physician| SignedIn {
        menu: &[
            ("/", "Patients"),
            ("/alerts", "Alerts"),
            ("/fleet", "Fleet"),
        ],
        who: Some(html! { code { (short(physician.address)) } }),
        csrf: &physician.csrf,
    });
    Html(shell::page("glyco clinic", title, signed_in, body))
}

pub(super) fn short(address: Address) -> String {
    let text = address.to_checksum(None);
    format!("{}…{}", &text[..8], &text[text.len() - 4..])
}

pub(super) fn when(dash: &Dashboard, ms: i64) -> String {
    local_time(&dash.time_zone, ms)
}

fn expiry_words(dash: &Dashboard, expiry: Expiry) -> String {
    match expiry {
        Expiry::Never => "no end".into(),
        Expiry::At(t) => format!("until {}", when(dash, t.get() as i64 * 1000)),
    }
}

pub async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        format!("{}{}", glyco_webkit::style::APP, glyco_report::html::STYLE),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn logout(
    State(dash): State<Arc<Dashboard>>,
    physician: Physician,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = check_form(&dash, &physician, &form.csrf, &headers) {
        return r.into_response();
    }
    dash.sessions.end(&physician.token);
    Redirect::to("/login").into_response()
}

fn chain_down(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the chain cannot be asked: {e}"),
    )
        .into_response()
}

/// The newest grant per patient, and whether it is live.
async fn my_patients(dash: &Dashboard) -> Result<BTreeMap<Address, (GrantRecord, bool)>, Response> {
    let grants = dash
        .chain
        .grants_of_grantee(dash.physician)
        .await
        .map_err(chain_down)?;
    let mut newest: BTreeMap<Address, GrantRecord> = BTreeMap::new();
    for grant in grants {
        let keep = newest.get(&grant.patient).is_none_or(|g| g.id < grant.id);
        if keep {
            newest.insert(grant.patient, grant);
        }
    }
    let mut out = BTreeMap::new();
    for (patient, grant) in newest {
        let live = dash
            .chain
            .is_grant_live(grant.id)
            .await
            .map_err(chain_down)?;
        out.insert(patient, (grant, live));
    }
    Ok(out)
}

pub async fn patients(State(dash): State<Arc<Dashboard>>, physician: Physician) -> Response {
    let mine = match my_patients(&dash).await {
        Ok(mine) => mine,
        Err(r) => return r,
    };
    let alerts = dash.alerts.newest();
    let mut rows = Vec::new();
    for (patient, (grant, live)) in &mine {
        let newest_anchor = dash
            .chain
            .anchors_of(*patient, 0)
            .await
            .ok()
            .and_then(|a| a.into_iter().max_by_key(|a| a.batch.window_end));
        let open = alerts
            .iter()
            .filter(|a| a.patient == *patient && a.acknowledged_at_ms.is_none())
            .count();
        let seen = dash.last_seen.lock().get(patient).copied();
        rows.push((*patient, *grant, *live, newest_anchor, open, seen));
    }
    let body = html! {
        h1 { "My patients" }
        @if rows.is_empty() { p { "No patient has granted you access." } }
        table.patients {
            tr { th { "Patient" } th { "Access" } th { "Newest data anchored" } th { "Open alerts" } th { "Last glucose you read" } }
            @for (patient, grant, live, anchor, open, seen) in &rows {
                tr {
                    td { a href=(format!("/patients/{patient:#x}")) { code { (short(*patient)) } } }
                    td {
                        @if *live { "live" } @else { "ended" }
                        @if grant.emergency { " (emergency)" }
                        ", " (DataKinds::words(grant.scope.kinds)) ", " (expiry_words(&dash, grant.expiry))
                    }
                    td { @match anchor {
                        Some(a) => { (when(&dash, a.batch.window_end as i64 * 1000)) " (" (a.batch.count) " readings in the batch)" }
                        None => "none yet",
                    } }
                    td class=(if *open > 0 { "open" } else { "" }) { (open) }
                    td { @match seen {
                        Some(s) => { (format!("{:.0} mg/dL", s.mg_dl)) " at " (when(&dash, s.at_ms)) }
                        None => "not read here yet",
                    } }
                }
            }
        }
    };
    layout("Patients", Some(&physician), body).into_response()
}

fn access_words(entry: &AccessEntry, me: Address) -> String {
    let who = if entry.physician == me {
        "you".to_owned()
    } else {
        format!("physician {}", short(entry.physician))
    };
    let how = match entry.action {
        Some(AccessAction::EmergencyRead) => "read in an emergency",
        _ => "read",
    };
    format!(
        "{who} {how} data {:.14}… through proxy {} under grant #{}",
        entry.data_id.to_string(),
        short(entry.proxy),
        entry.grant_id
    )
}

pub async fn patient(
    State(dash): State<Arc<Dashboard>>,
    physician: Physician,
    Path(patient): Path<String>,
) -> Response {
    let Ok(patient) = patient.parse::<Address>() else {
        return (StatusCode::BAD_REQUEST, "not an address").into_response();
    };
    let grant = match my_patients(&dash).await {
        Ok(mut mine) => mine.remove(&patient),
        Err(r) => return r,
    };
    let Some((grant, live)) = grant else {
        return (
            StatusCode::NOT_FOUND,
            "this patient has not granted you access",
        )
            .into_response();
    };
    let mut log = match dash.chain.access_log_of(patient, 0).await {
        Ok(log) => log,
        Err(e) => return chain_down(e),
    };
    log.sort_by_key(|e| std::cmp::Reverse(e.seq));
    log.truncate(LOG_SHOWN);
    let body = html! {
        h1 { "Patient " code { (patient.to_checksum(None)) } }
        p {
            "Your access: " @if live { "live" } @else { "ended" }
            @if grant.emergency { " (emergency)" }
            "; " (DataKinds::words(grant.scope.kinds)) ", " (expiry_words(&dash, grant.expiry))
            " (grant #" (grant.id) ")."
        }
        @if live {
            form.report method="post" action=(format!("/patients/{patient:#x}/report")) {
                input type="hidden" name="csrf" value=(physician.csrf);
                p { "Opening the report asks the hospital's re-encryption proxies for the last 14 days of readings. "
                    strong { "Each opening is recorded in the patient's access log on chain." } }
                button type="submit" { "Open the 14-day report" }
            }
        }
        h2 { "Access log" }
        @if log.is_empty() { p { "No one has read this patient's data." } }
        ul.access-log {
            @for entry in &log {
                li { (when(&dash, entry.at as i64 * 1000)) ": " (access_words(entry, dash.physician)) }
            }
        }
    };
    layout("Patient", Some(&physician), body).into_response()
}

pub async fn alerts(State(dash): State<Arc<Dashboard>>, physician: Physician) -> Response {
    let state = dash.alerts.state(dash.inbox.is_some());
    let alerts = dash.alerts.newest();
    let body = html! {
        h1 { "Alerts" }
        @if !state.configured {
            p.notice { "No alert inbox is configured (--inbox)." }
        } @else if !state.connected {
            p.notice role="status" { "Not connected to the alert inbox"
                @if let Some(e) = &state.error { ": " (e) } ". Retrying." }
        }
        @if alerts.is_empty() { p { "No alerts." } }
        table.alerts {
            tr { th { "Raised" } th { "Patient" } th { "Alert" } th { "Details" } th { "" } }
            @for a in &alerts {
                tr.alert.(a.severity.as_str()) {
                    td { (when(&dash, a.created_at_ms)) }
                    td { a href=(format!("/patients/{:#x}", a.patient)) { code { (short(a.patient)) } } }
                    td {
                        "[" (a.severity) "] " (a.kind)
                        @if a.step > 0 { " (step " (a.step) ")" }
                        @if a.emergency.is_some() { br; strong { "EMERGENCY: you are on duty; nobody up the ladder acknowledged." } }
                    }
                    td { @match &a.details {
                        Ok((device, explanation)) => { (device) ": " (explanation) }
                        Err(e) => { "(details unreadable: " (e) ")" }
                    } }
                    td { @match a.acknowledged_at_ms {
                        Some(at) => { "acknowledged " (when(&dash, at)) }
                        None => {
                            form.inline method="post" action="/alerts/ack" {
                                input type="hidden" name="csrf" value=(physician.csrf);
                                input type="hidden" name="id" value=(a.id);
                                button type="submit" { "Acknowledge" }
                            }
                        }
                    } }
                }
            }
        }
    };
    layout("Alerts", Some(&physician), body).into_response()
}

#[derive(Deserialize)]
pub struct AckForm {
    csrf: String,
    id: String,
}

pub async fn ack(
    State(dash): State<Arc<Dashboard>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    physician: Physician,
    headers: HeaderMap,
    Form(form): Form<AckForm>,
) -> Response {
    if let Err(r) = check_form(&dash, &physician, &form.csrf, &headers) {
        return r.into_response();
    }
    let (Some(inbox), Some(alert)) = (dash.inbox.clone(), dash.alerts.find(&form.id)) else {
        return (StatusCode::NOT_FOUND, "no such alert here").into_response();
    };
    match crate::alert_client::acknowledge(
        &dash.endpoint,
        &inbox,
        &dash.signer,
        alert.raw_id,
        alert.hub,
    )
    .await
    {
        Ok((_, evidence)) => {
            dash.alerts
                .acknowledged(&alert.id, glyco_webkit::now_millis());
            dash.count(|c| c.alerts_acknowledged += 1);
            tracing::info!(alert = %alert.id, %evidence, from = %peer.ip(), "alert acknowledged");
            Redirect::to("/alerts").into_response()
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("the inbox did not take it: {e}"),
        )
            .into_response(),
    }
}
