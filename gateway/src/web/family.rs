//! Family key shares from the Sharing page: a new offline emergency kit (the
//! profile and the last hours' readings, encrypted, kept at the clinic
//! replica) whose key is split among family members, t of n. The shares are
//! shown once, as text and QR codes, on a page made to be printed; the hub
//! keeps none, and making new ones ends the old ones (docs/CLINIC.md,
//! "Emergency, hub offline").

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{PreEscaped, html};
use serde::Deserialize;

use super::WebState;
use super::pages::{Patient, check_form, layout};
use crate::seal::emergency_kit::{KitMade, KitRequest, MAX_PROFILE_BYTES};

/// Makes a kit; the daemon's sealing stage behind it.
pub type KitMaker = Arc<
    dyn Fn(KitRequest) -> Pin<Box<dyn Future<Output = Result<KitMade, String>> + Send>>
        + Send
        + Sync,
>;

#[derive(Deserialize)]
pub struct FamilyForm {
    csrf: String,
    threshold: u8,
    shares: u8,
    hours: u32,
    profile: String,
}

pub async fn make_shares(
    State(web): State<Arc<WebState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    patient: Patient,
    headers: HeaderMap,
    Form(form): Form<FamilyForm>,
) -> Response {
    if let Err(r) = check_form(&web, &patient, &form.csrf, &headers) {
        return r.into_response();
    }
    let Some(make) = &web.kits else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "sealing is off on this hub: there is no emergency kit to make",
        )
            .into_response();
    };
    if form.profile.len() > MAX_PROFILE_BYTES {
        return (StatusCode::BAD_REQUEST, "the profile is over 2 KiB").into_response();
    }
    let request = KitRequest {
        threshold: form.threshold,
        shares: form.shares,
        hours: form.hours,
        profile: form.profile.replace("\r\n", "\n"),
    };
    let made = match make(request).await {
        Ok(made) => made,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("no kit made: {e}")).into_response(),
    };
    web.actions
        .record(
            &web.writer,
            peer.ip(),
            format!(
                "made a new emergency kit (generation {}, {} readings): {} of {} family shares; the old shares no longer open it",
                made.generation,
                made.readings,
                form.threshold,
                made.shares.len()
            ),
        )
        .await;
    let count = made.shares.len();
    let body = html! {
        h1 { "Family key shares" }
        p.notice.no-print {
            "Shown once: print this page now and give one share to each family member. "
            "Any " (form.threshold) " of them open your emergency kit at the clinic when the hub is offline. "
            "The hub keeps none of them; the shares made before no longer work."
        }
        p { "Emergency kit " code { (made.hash.get(..16).unwrap_or(&made.hash)) "…" } ", generation " (made.generation) ", " (made.readings) " readings." }
        @for (i, share) in made.shares.iter().enumerate() {
            section.share {
                h2 { "Share " (i + 1) " of " (count) " (" (form.threshold) " needed)" }
                div.qr { (PreEscaped(crate::qr::svg(share).unwrap_or_default())) }
                p { code.share { (share) } }
            }
        }
    };
    let mut response = layout("Family key shares", Some(&patient), body).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}
