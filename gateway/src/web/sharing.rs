//! The Sharing page: who may read the patient's data (grants per
//! physician, with their scope and expiry), the emergency policy, and the
//! on-chain access log in plain words. Granting, revoking and changing the
//! emergency policy are the patient's own transactions: the page makes them
//! only when the patient keeps their key on the hub (`web.patient_key_file`);
//! otherwise it shows the chain's state and says how to change it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use glyco_contracts::{
    AccessEntry, Address, B256, DataKinds, EmergencyPolicy, Expiry, GlycoClient, GrantRecord,
    GrantScope,
};
use maud::{Markup, html};
use serde::Deserialize;

use super::WebState;
use super::pages::{Patient, check_form, layout, local_time};
use crate::reading::now_millis;

/// How long the page waits for the chain.
const CHAIN_WAIT: Duration = Duration::from_secs(10);
/// Access-log entries shown.
const LOG_SHOWN: usize = 50;

const KINDS: [(&str, &str, DataKinds); 7] = DataKinds::NAMED;

/// The chain as the Sharing page needs it.
#[derive(Clone)]
pub struct SharingChain {
    pub patient: Address,
    /// Read-only.
    pub reader: GlycoClient,
    /// Signs with the patient's key, if the patient keeps it on the hub.
    pub patient_key: Option<GlycoClient>,
}

struct Snapshot {
    grants: Vec<GrantRecord>,
    live: HashMap<u64, bool>,
    policy: EmergencyPolicy,
    log: Vec<AccessEntry>,
    names: HashMap<Address, String>,
}

async fn snapshot(chain: &SharingChain) -> Result<Snapshot, String> {
    let reader = &chain.reader;
    let grants = reader
        .grants_of_patient(chain.patient)
        .await
        .map_err(|e| e.to_string())?;
    let mut live = HashMap::new();
    let mut names = HashMap::new();
    for grant in grants.iter().rev().take(50) {
        live.insert(
            grant.id,
            reader.is_grant_live(grant.id).await.unwrap_or(false),
        );
        if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(grant.grantee)
            && let Ok(entity) = reader.entity_of(grant.entity).await
        {
            slot.insert(entity.name);
        }
    }
    let policy = reader
        .emergency_policy_of(chain.patient)
        .await
        .map_err(|e| e.to_string())?;
    let mut log = reader
        .access_log_of(chain.patient, 0)
        .await
        .map_err(|e| e.to_string())?;
    log.sort_by_key(|e| std::cmp::Reverse(e.seq));
    log.truncate(LOG_SHOWN);
    for entry in &log {
        if !names.contains_key(&entry.physician)
            && let Ok(record) = reader.physician_of(entry.physician).await
            && let Ok(entity) = reader.entity_of(record.entity).await
        {
            names.insert(entry.physician, entity.name);
        }
    }
    Ok(Snapshot {
        grants,
        live,
        policy,
        log,
        names,
    })
}

fn who(names: &HashMap<Address, String>, physician: Address) -> String {
    match names.get(&physician) {
        Some(entity) if !entity.is_empty() => format!("physician {physician} ({entity})"),
        _ => format!("physician {physician}"),
    }
}

fn kind_boxes(prefix: &str, checked: DataKinds) -> Markup {
    html! {
        @for (name, word, kind) in KINDS {
            label.check {
                input type="checkbox" name=(format!("{prefix}{name}")) value="on" checked[checked.bits() & kind.bits() != 0];
                " " (word)
            }
        }
    }
}

pub async fn sharing(State(web): State<Arc<WebState>>, patient: Patient) -> Response {
    let Some(chain) = &web.sharing else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "this hub has no chain client",
        )
            .into_response();
    };
    let snapshot = match tokio::time::timeout(CHAIN_WAIT, snapshot(chain)).await {
        Ok(Ok(snapshot)) => snapshot,
        Ok(Err(e)) => return (StatusCode::BAD_GATEWAY, format!("the chain: {e}")).into_response(),
        Err(_) => return (StatusCode::GATEWAY_TIMEOUT, "the chain did not answer").into_response(),
    };
    let can_sign = chain.patient_key.is_some();
    let policy = &snapshot.policy;
    let body = html! {
        h1 { "Sharing" }
        @if !can_sign {
            p.notice {
                "Your key is not kept on this hub, so changes are made from your own wallet or "
                code { "glyco-chain" } "; this page shows what the chain says."
            }
        }
        h2 { "Who may read your data" }
        table.grants {
            tr { th { "Physician" } th { "Data" } th { "Until" } th { "State" } th {} }
            @for grant in snapshot.grants.iter().rev().filter(|g| !g.emergency).take(50) {
                @let live = snapshot.live.get(&grant.id).copied().unwrap_or(false);
                tr class=(if live { "live" } else { "ended" }) {
                    td { (who(&snapshot.names, grant.grantee)) }
                    td { (DataKinds::words(grant.scope.kinds)) }
                    td { @match grant.expiry {
                        Expiry::Never => "no end",
                        Expiry::At(at) => (local_time(&web, at.get() as i64 * 1000)),
                    } }
                    td { @if live { "live" } @else if grant.revoked { "revoked" } @else { "ended" } }
                    td {
                        @if live && can_sign {
                            form.inline method="post" action="/sharing/revoke" {
                                input type="hidden" name="csrf" value=(patient.csrf);
                                input type="hidden" name="physician" value=(grant.grantee.to_string());
                                button type="submit" { "Revoke" }
                            }
                        }
                    }
                }
            }
        }
        @if can_sign {
            h3 { "Grant a physician" }
            form.grant method="post" action="/sharing/grant" {
                input type="hidden" name="csrf" value=(patient.csrf);
                label { "Physician's address " input type="text" name="physician" required pattern="0x[0-9a-fA-F]{40}" size="44"; }
                fieldset { legend { "Data" } (kind_boxes("kind_", DataKinds::GLUCOSE)) }
                label { "For " input type="number" name="days" min="1" max="365" value="30" required; " days" }
                label { "Data from the last " input type="number" name="from_days" min="0" max="3650" value="90"; " days (0: all)" }
                button type="submit" { "Grant on chain" }
            }
        }
        h2 { "Emergency policy" }
        p {
            @if policy.enabled {
                "On: a physician of an emergency service may open access to "
                strong { (DataKinds::words(policy.kinds)) }
                " of the last " (policy.lookback_secs / 86_400) " days, for at most "
                (policy.max_duration_secs / 3600) " hours; you are told when they do, and emergency steps of your alerts may reach them."
            } @else {
                "Off: no emergency service may open access, and your alerts never reach one."
            }
        }
        @if can_sign {
            form.emergency method="post" action="/sharing/emergency" {
                input type="hidden" name="csrf" value=(patient.csrf);
                fieldset { legend { "Data" } (kind_boxes("kind_", if policy.enabled { policy.kinds } else { DataKinds::GLUCOSE })) }
                label { "Up to " input type="number" name="hours" min="1" max="72" value=(if policy.enabled { (policy.max_duration_secs / 3600).max(1) } else { 6 }); " hours" }
                label { "Data of the last " input type="number" name="lookback_days" min="1" max="365" value=(if policy.enabled { (policy.lookback_secs / 86_400).max(1) } else { 7 }); " days" }
                label.check { input type="checkbox" name="enabled" value="on" checked[policy.enabled]; " on" }
                button type="submit" { "Save on chain" }
            }
        }
        h2 { "Family key shares" }
        p {
            "For when the hub is offline: your emergency profile and recent readings, encrypted and kept at the clinic; "
            "family members together hold its key. Making new shares ends the old ones."
        }
        @if web.kits.is_some() {
            form.family method="post" action="/sharing/family" {
                input type="hidden" name="csrf" value=(patient.csrf);
                label { "Family members " input type="number" name="shares" min="2" max="10" value="3" required; }
                label { "Needed to open " input type="number" name="threshold" min="2" max="10" value="2" required; }
                label { "Readings of the last " input type="number" name="hours" min="1" max="2160" value="24" required; " hours" }
                label { "Emergency profile (diagnosis, insulin, allergies, whom to call)" br;
                    textarea name="profile" rows="4" cols="70" maxlength="2048" {} }
                button type="submit" { "Make and print new shares" }
            }
        }
        h2 { "Who read your data" }
        @if snapshot.log.is_empty() {
            p { "No one has read your data." }
        }
        ul.access-log {
            @for entry in &snapshot.log {
                li {
                    (local_time(&web, entry.at as i64 * 1000)) ": "
                    (who(&snapshot.names, entry.physician))
                    @match entry.action.map(|a| format!("{a:?}")).as_deref() {
                        Some("EmergencyRead") => " read in an emergency",
                        _ => " read",
                    }
                    " a batch of your readings (" code { (format!("{:.14}…", entry.data_id.to_string())) } ")"
                    " through proxy " code { (format!("{:.10}…", entry.proxy.to_string())) }
                    ", under grant #" (entry.grant_id)
                }
            }
        }
    };
    layout("Sharing", Some(&patient), body).into_response()
}

#[derive(Deserialize)]
pub struct GrantForm {
    csrf: String,
    physician: String,
    days: u32,
    from_days: Option<u32>,
    #[serde(flatten)]
    kinds: HashMap<String, String>,
}

fn chosen_kinds(fields: &HashMap<String, String>) -> DataKinds {
    let bits = KINDS
        .iter()
        .filter(|(name, _, _)| {
            fields
                .get(&format!("kind_{name}"))
                .is_some_and(|v| v == "on")
        })
        .fold(0u16, |acc, (_, _, kind)| acc | kind.bits());
    DataKinds::from_bits(bits).unwrap_or_default()
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

pub async fn grant(
    State(web): State<Arc<WebState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    patient: Patient,
    headers: HeaderMap,
    Form(form): Form<GrantForm>,
) -> Response {
    if let Err(r) = check_form(&web, &patient, &form.csrf, &headers) {
        return r.into_response();
    }
    let Some(client) = web.sharing.as_ref().and_then(|c| c.patient_key.clone()) else {
        return refuse(
            StatusCode::FORBIDDEN,
            "the patient's key is not on this hub",
        );
    };
    let Ok(physician) = form.physician.trim().parse::<Address>() else {
        return refuse(StatusCode::BAD_REQUEST, "not an Ethereum address");
    };
    let kinds = chosen_kinds(&form.kinds);
    if kinds.bits() == 0 || !(1..=365).contains(&form.days) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "choose some data and 1 to 365 days",
        );
    }
    let data_from = match form.from_days.unwrap_or(0) {
        0 => 0,
        days => (now_millis() / 1000) as u64 - u64::from(days.min(3650)) * 86_400,
    };
    let policy_id = alloy::primitives::keccak256(
        format!("glyco.web.grant|{physician}|{}", now_millis()).as_bytes(),
    );
    let scope = GrantScope {
        kinds,
        data_from,
        data_until: None,
    };
    let expiry = Expiry::after(Duration::from_secs(u64::from(form.days) * 86_400));
    match client
        .grant(physician, B256::from(policy_id), scope, expiry)
        .await
    {
        Ok((tx, id)) => {
            web.actions
                .record(
                    &web.writer,
                    peer.ip(),
                    format!(
                        "granted {physician} {} for {} days (grant #{id}, tx {})",
                        DataKinds::words(kinds),
                        form.days,
                        tx.hash
                    ),
                )
                .await;
            Redirect::to("/sharing").into_response()
        }
        Err(e) => refuse(StatusCode::BAD_GATEWAY, format!("not granted: {e}")),
    }
}

#[derive(Deserialize)]
pub struct RevokeForm {
    csrf: String,
    physician: String,
}

pub async fn revoke(
    State(web): State<Arc<WebState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    patient: Patient,
    headers: HeaderMap,
    Form(form): Form<RevokeForm>,
) -> Response {
    if let Err(r) = check_form(&web, &patient, &form.csrf, &headers) {
        return r.into_response();
    }
    let Some(client) = web.sharing.as_ref().and_then(|c| c.patient_key.clone()) else {
        return refuse(
            StatusCode::FORBIDDEN,
            "the patient's key is not on this hub",
        );
    };
    let Ok(physician) = form.physician.trim().parse::<Address>() else {
        return refuse(StatusCode::BAD_REQUEST, "not an Ethereum address");
    };
    match client.revoke(physician).await {
        Ok(tx) => {
            web.actions
                .record(
                    &web.writer,
                    peer.ip(),
                    format!("revoked {physician}'s grant (tx {})", tx.hash),
                )
                .await;
            Redirect::to("/sharing").into_response()
        }
        Err(e) => refuse(StatusCode::BAD_GATEWAY, format!("not revoked: {e}")),
    }
}

#[derive(Deserialize)]
pub struct EmergencyForm {
    csrf: String,
    hours: u32,
    lookback_days: u32,
    #[serde(flatten)]
    fields: HashMap<String, String>,
}

pub async fn emergency(
    State(web): State<Arc<WebState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    patient: Patient,
    headers: HeaderMap,
    Form(form): Form<EmergencyForm>,
) -> Response {
    if let Err(r) = check_form(&web, &patient, &form.csrf, &headers) {
        return r.into_response();
    }
    let Some(client) = web.sharing.as_ref().and_then(|c| c.patient_key.clone()) else {
        return refuse(
            StatusCode::FORBIDDEN,
            "the patient's key is not on this hub",
        );
    };
    let enabled = form.fields.get("enabled").is_some_and(|v| v == "on");
    let kinds = chosen_kinds(&form.fields);
    if !(1..=72).contains(&form.hours) || !(1..=365).contains(&form.lookback_days) {
        return refuse(StatusCode::BAD_REQUEST, "1 to 72 hours, 1 to 365 days");
    }
    if enabled && kinds.bits() == 0 {
        return refuse(
            StatusCode::BAD_REQUEST,
            "choose the data an emergency may read",
        );
    }
    let policy = EmergencyPolicy {
        kinds,
        max_duration_secs: form.hours * 3600,
        lookback_secs: form.lookback_days * 86_400,
        enabled,
    };
    match client.set_emergency_policy(policy).await {
        Ok(tx) => {
            web.actions
                .record(
                    &web.writer,
                    peer.ip(),
                    format!(
                        "emergency policy {}: {} of {} days, {} hours (tx {})",
                        if enabled { "on" } else { "off" },
                        DataKinds::words(kinds),
                        form.lookback_days,
                        form.hours,
                        tx.hash
                    ),
                )
                .await;
            Redirect::to("/sharing").into_response()
        }
        Err(e) => refuse(StatusCode::BAD_GATEWAY, format!("not saved: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_as_words_and_come_from_checkboxes() {
        assert_eq!(
            DataKinds::words(DataKinds::GLUCOSE | DataKinds::FINDINGS),
            "glucose, findings"
        );
        assert_eq!(DataKinds::words(DataKinds::NONE), "nothing");
        let fields = HashMap::from([
            ("kind_glucose".to_owned(), "on".to_owned()),
            ("kind_weight".to_owned(), "on".to_owned()),
            ("kind_bogus".to_owned(), "on".to_owned()),
        ]);
        assert_eq!(
            chosen_kinds(&fields),
            DataKinds::GLUCOSE | DataKinds::WEIGHT
        );
    }
}
