//! Pairing a Bluetooth device from the Devices page: scan for a few
//! seconds, bond with the one the patient picks (typing the passkey the
//! device shows, if it asks), register its identity address on chain with
//! the hub's delegated key. The BLE supervision serves it once bonded and
//! the hub's chain mirror has the registration. Removing it on the page
//! also forgets the bond.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use glyco_ble::pairing::{Found, parse_passkey};
use glyco_ble::{BdAddr, Uuid};
use glyco_contracts::{DeviceIdentity, DeviceKind};
use maud::{Markup, html};
use serde::Deserialize;

use super::WebState;
use super::pages::{KINDS, Patient, check_form, devices_page};

/// How long the page's scan listens by default, and at most.
const DEFAULT_SCAN_SECS: u64 = 10;
const MAX_SCAN_SECS: u64 = 30;

/// The device kind a health service's UUID stands for.
fn kind_of(services: &[Uuid]) -> Option<(&'static str, DeviceKind)> {
    let short = |u: &Uuid| (u.as_u128() >> 96) as u16;
    services.iter().find_map(|u| {
        let kind = match short(u) {
            0x1808 => DeviceKind::Glucometer,
            0x181F => DeviceKind::Cgm,
            0x1810 => DeviceKind::BloodPressure,
            0x180D => DeviceKind::HeartRate,
            0x181D => DeviceKind::Weight,
            0x1809 => DeviceKind::Thermometer,
            0x1822 => DeviceKind::PulseOximeter,
            _ => return None,
        };
        KINDS.iter().find(|(_, k)| *k == kind).copied()
    })
}

/// How long the page waits for the hub's chain mirror to have a new
/// registration before it lets the sessions serve the device.
const MIRROR_WAIT: Duration = Duration::from_secs(15);

/// Waits until the hub's copy of the chain shows `id` registered, so the
/// first records the device sends are admitted, not refused. Past the wait
/// the regular rescan serves it.
async fn registered_in_mirror(web: &WebState, id: glyco_contracts::DeviceId) -> bool {
    let until = tokio::time::Instant::now() + MIRROR_WAIT;
    loop {
        let registered = (web.report)()
            .devices
            .iter()
            .any(|d| d.device_id == id && d.standing == crate::registry::Standing::Registered);
        if registered {
            return true;
        }
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The Devices page's Bluetooth part.
pub fn section(web: &WebState, patient: &Patient) -> Markup {
    html! {
        h2 { "Pair a Bluetooth device" }
        @if web.pairing.is_none() {
            p.notice { "Bluetooth is off on this hub ([ble] enabled = false)." }
        } @else if web.devices.is_none() {
            p.notice { "This hub has no chain client: devices are added with glyco-hub device add." }
        } @else {
            form.scan method="post" action="/devices/bluetooth/scan" {
                input type="hidden" name="csrf" value=(patient.csrf);
                input type="hidden" name="seconds" value=(DEFAULT_SCAN_SECS);
                p { "Put the device in pairing mode (see its manual), then " button type="submit" { "Look for devices" } " (" (DEFAULT_SCAN_SECS) " s)." }
            }
        }
    }
}

fn found_table(patient: &Patient, found: &[Found]) -> Markup {
    html! {
        @if found.is_empty() {
            p.notice { "No device found. Is it in pairing mode and near the hub?" }
        }
        table.found {
            tr { th { "Device" } th { "Address" } th { "Signal" } th { "Pair and register" } }
            @for f in found {
                @let guessed = kind_of(&f.services);
                tr {
                    td { (f.name.clone().unwrap_or_else(|| "(no name)".into()))
                        @if let Some((word, _)) = guessed { " · " (word) } }
                    td { code { (f.address) } @if f.random_address { " (random)" } }
                    td { (f.rssi.map(|r| format!("{r} dBm")).unwrap_or_default()) }
                    td {
                        @if f.paired {
                            "bonded already · "
                        }
                        form.pair method="post" action="/devices/bluetooth/pair" {
                            input type="hidden" name="csrf" value=(patient.csrf);
                            input type="hidden" name="address" value=(f.address.to_string());
                            select name="kind" {
                                @for (value, _) in KINDS {
                                    option value=(value) selected[guessed.is_some_and(|(g, _)| g == value)] { (value) }
                                }
                            }
                            label { " Passkey " input type="text" name="passkey" inputmode="numeric" pattern="[0-9]{6}" size="7" maxlength="6" placeholder="if asked"; }
                            " " button type="submit" { "Pair and register" }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct ScanForm {
    csrf: String,
    seconds: Option<u64>,
}

pub async fn scan(
    State(web): State<Arc<WebState>>,
    patient: Patient,
    headers: HeaderMap,
    Form(form): Form<ScanForm>,
) -> Response {
    if let Err(r) = check_form(&web, &patient, &form.csrf, &headers) {
        return r.into_response();
    }
    let Some(pairing) = &web.pairing else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "Bluetooth is off on this hub",
        )
            .into_response();
    };
    let seconds = form
        .seconds
        .unwrap_or(DEFAULT_SCAN_SECS)
        .clamp(1, MAX_SCAN_SECS);
    match pairing.scan(Duration::from_secs(seconds)).await {
        Ok(found) => {
            let shown = html! {
                section.scanned {
                    h2 { "Found nearby" }
                    (found_table(&patient, &found))
                }
            };
            devices_page(&web, &patient, Some(shown)).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("the scan failed: {e}")).into_response(),
    }
}

#[derive(Deserialize)]
pub struct PairForm {
    csrf: String,
    address: String,
    kind: String,
    #[serde(default)]
    passkey: String,
}

pub async fn pair(
    State(web): State<Arc<WebState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    patient: Patient,
    headers: HeaderMap,
    Form(form): Form<PairForm>,
) -> Response {
    if let Err(r) = check_form(&web, &patient, &form.csrf, &headers) {
        return r.into_response();
    }
    let (Some(pairing), Some(admin)) = (&web.pairing, &web.devices) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "Bluetooth or the chain client is off",
        )
            .into_response();
    };
    let Ok(address) = form.address.parse::<BdAddr>() else {
        return (StatusCode::BAD_REQUEST, "not a Bluetooth address").into_response();
    };
    let Some((_, kind)) = KINDS.iter().find(|(value, _)| *value == form.kind) else {
        return (StatusCode::BAD_REQUEST, "unknown device kind").into_response();
    };
    let passkey = match parse_passkey(&form.passkey) {
        Ok(p) => p,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let paired = match pairing.pair(address, passkey).await {
        Ok(paired) => paired,
        Err(e) => {
            web.actions
                .record(
                    &web.writer,
                    peer.ip(),
                    format!("pairing {address} failed: {e}"),
                )
                .await;
            return (StatusCode::BAD_GATEWAY, format!("not paired: {e}")).into_response();
        }
    };
    let identity = DeviceIdentity::Ble(paired.identity.address.0);
    match admin.add(&identity, *kind).await {
        Ok(added) => {
            let admitted = registered_in_mirror(&web, admin.ids.id_of(&identity)).await;
            if admitted {
                pairing.serve_now();
            }
            web.actions
                .record(
                    &web.writer,
                    peer.ip(),
                    format!(
                        "paired {identity} ({}) and registered it on chain: tx {}",
                        form.kind, added.tx.hash
                    ),
                )
                .await;
            let shown = html! {
                section.added {
                    h2 { "Paired and registered: " (identity) }
                    p { "Bonded" @if paired.already { " (it was already)" } "; on chain in transaction " code { (added.tx.hash) } ". "
                        @if admitted { "The hub admits it now: its readings arrive at its next connection." }
                        @else { "The hub's copy of the chain does not show it yet; the hub serves it within a minute." } }
                }
            };
            devices_page(&web, &patient, Some(shown)).into_response()
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("paired, but not registered: {e}"),
        )
            .into_response(),
    }
}
