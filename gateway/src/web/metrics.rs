//! `/metrics`: the hub's Prometheus metrics, on the web app's address and
//! behind its local-network guard (docs/FLEET.md, "Metrics"). Counts,
//! queue lengths and ages only: no reading, no value, no device name.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use glyco_webkit::metrics::{Exposition, Kind};

use super::WebState;
use crate::status::StatusReport;
use crate::supervisor::StageState;

pub async fn metrics(State(web): State<Arc<WebState>>) -> Response {
    let report = (web.report)();
    (
        [(header::CONTENT_TYPE, glyco_webkit::metrics::CONTENT_TYPE)],
        render(&report),
    )
        .into_response()
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

pub fn render(report: &StatusReport) -> String {
    let mut e = Exposition::new();
    let seal = &report.seal;
    let chain = &report.chain;
    e.single(
        "glyco_hub_start_time_seconds",
        Kind::Gauge,
        "When the hub's current run began, unix seconds.",
        report.started_at as f64 / 1000.0,
    );
    e.single(
        "glyco_hub_readings_stored_total",
        Kind::Counter,
        "Readings stored in the journal.",
        report.readings_stored as f64,
    );
    e.single(
        "glyco_hub_readings_refused_storage_total",
        Kind::Counter,
        "Readings not acknowledged because they could not be stored.",
        report.storage.readings_refused as f64,
    );
    e.single(
        "glyco_hub_readings_unsealed",
        Kind::Gauge,
        "Readings in the journal not sealed yet.",
        seal.readings_unsealed as f64,
    );
    e.single(
        "glyco_hub_batches_sealed_total",
        Kind::Counter,
        "Batches sealed.",
        seal.batches_sealed as f64,
    );
    e.single(
        "glyco_hub_batches_anchored_total",
        Kind::Counter,
        "Batches whose root is on chain.",
        seal.batches_anchored as f64,
    );
    e.single(
        "glyco_hub_batches_replicated_total",
        Kind::Counter,
        "Batches a replica confirmed.",
        seal.batches_replicated as f64,
    );
    e.single(
        "glyco_hub_anchors_total",
        Kind::Counter,
        "Anchoring transactions.",
        seal.anchors as f64,
    );
    for (name, help, age_ms) in [
        (
            "glyco_hub_oldest_unsealed_age_seconds",
            "Age of the oldest reading not sealed (0: none).",
            seal.oldest_unsealed_age_ms,
        ),
        (
            "glyco_hub_oldest_unanchored_age_seconds",
            "Age of the oldest batch not anchored (0: none).",
            seal.oldest_unanchored_age_ms,
        ),
        (
            "glyco_hub_oldest_unreplicated_age_seconds",
            "Age of the oldest batch not replicated (0: none).",
            seal.oldest_unreplicated_age_ms,
        ),
    ] {
        e.single(name, Kind::Gauge, help, age_ms.unwrap_or(0) as f64 / 1000.0);
    }
    e.single(
        "glyco_hub_chain_reachable",
        Kind::Gauge,
        "Whether an RPC endpoint answers (1) or not (0).",
        flag(chain.reachable),
    );
    if let Some(head) = chain.head {
        e.single(
            "glyco_hub_chain_head_block",
            Kind::Gauge,
            "The chain's head as last seen.",
            head as f64,
        );
    }
    if let Some(synced) = chain.synced_block {
        e.single(
            "glyco_hub_chain_synced_block",
            Kind::Gauge,
            "The block the hub's mirror of the registry has read up to.",
            synced as f64,
        );
    }
    e.family(
        "glyco_hub_devices",
        Kind::Gauge,
        "Devices registered to the patient, by standing and connection.",
    );
    let connected = report.devices.iter().filter(|d| d.connected).count();
    e.sample(
        "glyco_hub_devices",
        &[("state", "registered")],
        report.devices.len() as f64,
    );
    e.sample(
        "glyco_hub_devices",
        &[("state", "connected")],
        connected as f64,
    );
    e.sample(
        "glyco_hub_devices",
        &[("state", "quarantined")],
        report
            .quarantine
            .iter()
            .filter(|q| q.released_at_ms.is_none())
            .count() as f64,
    );
    e.family(
        "glyco_hub_refusals_total",
        Kind::Counter,
        "Input refused, by transport and reason.",
    );
    for refusal in &report.refusals {
        e.sample(
            "glyco_hub_refusals_total",
            &[
                (
                    "transport",
                    &format!("{:?}", refusal.transport).to_lowercase(),
                ),
                ("reason", refusal.reason.as_str()),
            ],
            refusal.count as f64,
        );
    }
    e.single(
        "glyco_hub_readings_analysed_total",
        Kind::Counter,
        "Readings the on-device models looked at.",
        report.analysis.readings_analysed as f64,
    );
    e.family(
        "glyco_hub_findings_total",
        Kind::Counter,
        "Findings of the on-device models, by kind and severity.",
    );
    for (kind, severity, count) in &report.analysis.counts {
        e.sample(
            "glyco_hub_findings_total",
            &[("kind", kind), ("severity", severity)],
            *count as f64,
        );
    }
    let alerts = &report.alerts;
    e.single(
        "glyco_hub_alerts_open",
        Kind::Gauge,
        "Alerts not acknowledged.",
        alerts.open.len() as f64,
    );
    for (name, help, value) in [
        (
            "glyco_hub_alerts_created_total",
            "Alerts raised.",
            alerts.created,
        ),
        (
            "glyco_hub_alerts_delivered_total",
            "Alert deliveries kept by an inbox.",
            alerts.delivered,
        ),
        (
            "glyco_hub_alerts_acknowledged_total",
            "Alerts acknowledged.",
            alerts.acknowledged,
        ),
    ] {
        e.single(name, Kind::Counter, help, value as f64);
    }
    e.family(
        "glyco_hub_stage_up",
        Kind::Gauge,
        "Supervised stages: 1 running, 0 ended.",
    );
    for (stage, state) in &report.stages {
        e.sample(
            "glyco_hub_stage_up",
            &[("stage", stage)],
            flag(matches!(state, StageState::Running)),
        );
    }
    e.single(
        "glyco_hub_mqtt_connections",
        Kind::Gauge,
        "Device connections held.",
        report.connections.held as f64,
    );
    let fleet = &report.fleet;
    e.single(
        "glyco_hub_heartbeats_sent_total",
        Kind::Counter,
        "Heartbeats the fleet node kept.",
        fleet.sent as f64,
    );
    e.single(
        "glyco_hub_heartbeats_failed_total",
        Kind::Counter,
        "Heartbeats not kept (node unreachable or refusing).",
        fleet.failed as f64,
    );
    e.single(
        "glyco_hub_alert_policy_version",
        Kind::Gauge,
        "The signed alert policy in force (0: the config's).",
        alerts.policy.map_or(0, |(version, _)| version) as f64,
    );
    // The report's own reading of /proc/self (zero: it could not read it).
    let process = &report.process;
    glyco_webkit::metrics::process(
        &mut e,
        (process.rss_kib > 0).then_some(process.rss_kib),
        (process.cpu_ms > 0).then_some(process.cpu_ms),
    );
    e.finish()
}
