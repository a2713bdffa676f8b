//! A patient's 14-day AGP report, opened through the re-encryption proxies:
//! the batches of the last 15 days come from the replica (or the hub), the
//! proxies re-encrypt them for the physician after checking the grant on
//! chain, and each proxy's answer is an access in the patient's log. The
//! page names those entries above the report.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use glyco_contracts::Address;
use glyco_report::CgmPoint;
use glyco_seal::SealedBatch;
use glyco_seal::reading::Measurement;
use maud::html;
use serde::Deserialize;

use super::pages::{Physician, check_form, layout, short, when};
use super::{BatchSource, Dashboard};
use crate::physician::{Reader, SourceBatch, sources};
use crate::store::ReplicaStore;

const REPORT_DAYS: u32 = 14;

/// The newest CGM value a report showed.
#[derive(Debug, Clone, Copy)]
pub struct LastSeen {
    pub at_ms: i64,
    pub mg_dl: f64,
}

#[derive(Deserialize)]
pub struct ReportForm {
    csrf: String,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

/// The patient's batches with readings since `from_ms`.
async fn recent_batches(
    dash: &Dashboard,
    patient: Address,
    from_ms: i64,
) -> Result<Vec<SourceBatch>, String> {
    let all = match &dash.source {
        BatchSource::Replica(dir) => {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || {
                ReplicaStore::open(&dir)
                    .and_then(|store| sources::from_replica(&store, patient))
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())??
        }
        BatchSource::Hub(hub) => sources::from_hub(&dash.endpoint, hub)
            .await
            .map_err(|e| e.to_string())?,
    };
    Ok(all
        .into_iter()
        .filter(|b| {
            SealedBatch::from_bytes(&b.blob)
                .is_ok_and(|s| s.header.patient == patient && s.header.window_end_ms >= from_ms)
        })
        .collect())
}

pub async fn open(
    State(dash): State<Arc<Dashboard>>,
    physician: Physician,
    Path(patient): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ReportForm>,
) -> Response {
    if let Err(r) = check_form(&dash, &physician, &form.csrf, &headers) {
        return r.into_response();
    }
    let Ok(patient) = patient.parse::<Address>() else {
        return refuse(StatusCode::BAD_REQUEST, "not an address");
    };
    match dash.chain.can_read(patient, dash.physician).await {
        Ok(true) => {}
        Ok(false) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "this patient's grant to you is not live",
            );
        }
        Err(e) => return refuse(StatusCode::SERVICE_UNAVAILABLE, format!("the chain: {e}")),
    }
    let now = glyco_webkit::now_millis();
    let from = now - i64::from(REPORT_DAYS + 1) * 86_400_000;
    let batches = match recent_batches(&dash, patient, from).await {
        Ok(b) if b.is_empty() => {
            return refuse(
                StatusCode::NOT_FOUND,
                "no anchored batches of this patient in the last 15 days",
            );
        }
        Ok(b) => b,
        Err(e) => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("reading the batches: {e}"),
            );
        }
    };
    let reader = Reader {
        endpoint: &dash.endpoint,
        chain: &dash.chain,
        key: &dash.umbral,
        proxies: &dash.proxies,
        threshold: dash.threshold,
    };
    let opened = match reader.open(patient, batches).await {
        Ok(opened) => opened,
        Err(e) => return refuse(StatusCode::BAD_GATEWAY, format!("the proxies: {e}")),
    };
    dash.count(|c| c.reports_opened += 1);
    let points: Vec<CgmPoint> = opened
        .readings
        .iter()
        .filter_map(|r| match r.measurement {
            Measurement::CgmGlucose { mg_dl } if mg_dl.is_finite() => Some(CgmPoint {
                at_ms: r.measured_at(),
                mg_dl,
            }),
            _ => None,
        })
        .collect();
    if let Some(newest) = points.iter().max_by_key(|p| p.at_ms) {
        dash.last_seen.lock().insert(
            patient,
            LastSeen {
                at_ms: newest.at_ms,
                mg_dl: newest.mg_dl,
            },
        );
    }
    let options = glyco_report::AgpOptions {
        days: REPORT_DAYS,
        bin_minutes: 15,
        time_zone: dash.time_zone.clone(),
    };
    let agp = match glyco_report::agp(&points, now, &options) {
        Ok(agp) => agp,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    tracing::info!(%patient, batches = opened.batches, readings = opened.readings.len(), "report opened");
    let body = html! {
        p.no-print {
            a href=(format!("/patients/{patient:#x}")) { "← patient " code { (short(patient)) } }
        }
        p.no-print.opened {
            "Opened " (opened.batches) " batches (" (opened.readings.len()) " readings) at " (when(&dash, now)) ". "
            "Recorded in the patient's access log as "
            @for (i, (proxy, _, seq)) in opened.accesses.iter().enumerate() {
                @if i > 0 { ", " }
                "#" (seq) " (proxy " code { (short(*proxy)) } ")"
            }
            "."
        }
        (glyco_report::html::report(&agp, dash.unit, &format!("Glucose report, {REPORT_DAYS} days · patient {}", short(patient))))
    };
    layout("Report", Some(&physician), body).into_response()
}
