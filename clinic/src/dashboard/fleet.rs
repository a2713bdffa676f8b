//! The fleet page: the clinic node's view of every hub (from its
//! `/fleet.json`), the most urgent first, filtered by flag. Heartbeats
//! carry no patient data; the page shows hubs and their health only.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::Dashboard;
use super::pages::{Physician, layout, short, when};
use crate::fleet::http::FleetQuery;
use crate::fleet::view::Flag;

#[derive(Debug, Deserialize)]
pub struct FleetPageQuery {
    flag: Option<Flag>,
}

fn ago(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s ago"),
        s if s < 7200 => format!("{} min ago", s / 60),
        s => format!("{} h ago", s / 3600),
    }
}

pub async fn page(
    State(dash): State<Arc<Dashboard>>,
    physician: Physician,
    Query(query): Query<FleetPageQuery>,
) -> Response {
    let Some(source) = &dash.fleet else {
        let body = html! { h1 { "Fleet" } p.notice { "No fleet node is configured (--fleet)." } };
        return layout("Fleet", Some(&physician), body).into_response();
    };
    let fleet = source
        .fetch(&FleetQuery {
            flags: query.flag.map(|f| f.name().to_owned()),
            ..Default::default()
        })
        .await;
    let body = html! {
        h1 { "Fleet" }
        @match &fleet {
            Err(e) => { p.notice role="status" { "The fleet node cannot be read: " (e) } }
            Ok(fleet) => {
                p {
                    @for (flag, count) in &fleet.tally {
                        a href=(format!("/fleet?flag={}", flag.name())) { (count) " " (flag.name()) }
                        " · "
                    }
                    a href="/fleet" { "all" }
                }
                p { "Silent after " (fleet.silent_after_s) " s without a heartbeat; current release: "
                    (fleet.current_release.clone().or(fleet.current_version.clone()).unwrap_or_else(|| "not set".into())) "." }
                @if fleet.hubs.is_empty() { p { "No hub to show." } }
                table.fleet {
                    tr { th { "Hub" } th { "State" } th { "Last heartbeat" } th { "Runs" } th { "Queues" } th { "Clock" } th { "Why" } }
                    @for hub in &fleet.hubs {
                        tr.(hub.flags.first().map_or("healthy", |f| f.name())) {
                            td { code { (short(hub.hub)) } br; small { (hub.release.as_deref().unwrap_or(&hub.version)) } }
                            td { @for flag in &hub.flags { span.flag { (flag.name()) } " " } }
                            td { (when(&dash, hub.last_heartbeat_ms)) br; small { (ago(hub.silent_for_s)) } }
                            td { (hub.runs) }
                            td { (hub.unsealed) " unsealed, " (hub.unanchored) " unanchored, " (hub.alerts_open) " open alerts" }
                            td { (hub.clock_offset_ms) " ms" }
                            td { (hub.reasons.join(", ")) }
                        }
                    }
                }
            }
        }
    };
    layout("Fleet", Some(&physician), body).into_response()
}
