//! Reading received → alert shown by the physician's CLI, end to end with
//! real processes (anvil, the hub, a clinic alert inbox, the physician's
//! `alerts --follow --json`; iroh on loopback):
//!
//!     cargo bench -p glyco-gateway --bench alert_latency
//!
//! A CGM sends readings below 54 mg/dL, five a second; each is an urgent
//! `very_low_glucose` finding and, with de-duplication off, an alert to the
//! physician. For each alert the CLI prints `shown_at_ms` and the hub's
//! `reading_received_at_ms` (one clock: one machine). Prints p50, p95 and
//! the worst over GLYCO_BENCH_ALERTS alerts (default 200). Anchoring is not
//! on this path.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use glyco_contracts::testkit::accounts::*;
use glyco_gateway::sim::{self, SimulatedDevice};
use support::alerts::{alert_world, follow, next_alert};
use support::now_ms;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let count: usize = std::env::var("GLYCO_BENCH_ALERTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let mut w = alert_world().await;
    w.world.edit_config(|c| {
        c.alerts.kinds = vec!["very_low_glucose".into()];
        c.alerts.dedupe_secs = 0;
        c.alerts.ladder.truncate(1);
    });
    let doctor = w.physician(PHYSICIAN).await;
    w.grant(PHYSICIAN).await;
    let secret = w.world.register("cgm-bench", "cgm").await;
    let _inbox = w.start_inbox().await;
    let hub = w.world.start_hub().await;
    hub.wait_registered("cgm-bench").await;
    let (_follower, mut lines) = follow(&w, PHYSICIAN, &doctor);
    let mut cgm = SimulatedDevice::connect(hub.mqtt, "cgm-bench", &secret)
        .await
        .unwrap();
    let sender = tokio::spawn(async move {
        for seq in 1..=count as u64 {
            let payload = sim::cgm_payload(seq, now_ms(), 50.0);
            cgm.send_until_acked(seq, payload, 5).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        cgm
    });
    let mut latencies = Vec::with_capacity(count);
    while latencies.len() < count {
        let alert = next_alert(&mut lines, "the next alert").await;
        let shown = alert["shown_at_ms"].as_i64().unwrap();
        let received = alert["reading_received_at_ms"].as_i64().unwrap();
        latencies.push(shown - received);
    }
    sender.await.unwrap().disconnect().await;
    latencies.sort_unstable();
    let q = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    println!(
        "alert latency, reading received -> shown by the physician's CLI, {} alerts: p50 {} ms, p95 {} ms, worst {} ms (aim: p95 <= 2000 ms)",
        latencies.len(),
        q(0.5),
        q(0.95),
        latencies.last().unwrap()
    );
    let status = hub.status().await.unwrap();
    println!(
        "hub: {} alerts created, {} delivered, {} findings dropped",
        status.alerts.created, status.alerts.delivered, status.alerts.dropped_findings
    );
    hub.terminate().await;
}
