//! Reading received → alert shown by the physician's CLI, end to end with
//! real processes (anvil, the hub, a clinic alert inbox, the physician's
//! `alerts --follow --json`; iroh on loopback):
//!
//!     cargo build --release -p glyco-clinic
//!     cargo bench -p glyco-gateway --bench alert_latency
//!
//! The monitor reports a kind once per device and half hour (no alarm
//! floods), so each alert comes from its own meter: per round, 50 meters
//! are registered and each sends one reading below 54 mg/dL, four a second
//! across meters; each is an urgent `very_low_glucose` finding and an alert
//! to the granted physician. For each alert the CLI prints `shown_at_ms`
//! and the hub's `reading_received_at_ms` (one clock: one machine). Prints
//! p50, p95 and the worst over GLYCO_BENCH_ALERTS alerts (default 200, in
//! rounds of 50 on fresh hubs). Anchoring is not on this path.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use glyco_contracts::testkit::accounts::*;
use glyco_gateway::sim::{self, SimulatedDevice};
use support::alerts::{alert_world, follow};
use support::now_ms;

const PER_ROUND: usize = 50;

/// One fresh hub, inbox and physician; `n` alerts' latencies (ms).
async fn round(n: usize) -> Vec<i64> {
    let mut w = alert_world().await;
    w.world.edit_config(|c| {
        c.alerts.kinds = vec!["very_low_glucose".into()];
        c.alerts.ladder.truncate(1);
    });
    let doctor = w.physician(PHYSICIAN).await;
    w.grant(PHYSICIAN).await;
    let mut secrets = Vec::new();
    for i in 0..n {
        secrets.push(
            w.world
                .register(&format!("meter-{i:02}"), "glucometer")
                .await,
        );
    }
    let _inbox = w.start_inbox().await;
    let hub = w.world.start_hub().await;
    for i in 0..n {
        hub.wait_registered(&format!("meter-{i:02}")).await;
    }
    let (_follower, mut lines) = follow(&w, PHYSICIAN, &doctor);
    let mqtt = hub.mqtt;
    let sender = tokio::spawn(async move {
        for (i, secret) in secrets.iter().enumerate() {
            let name = format!("meter-{i:02}");
            let mut meter = SimulatedDevice::connect(mqtt, &name, secret).await.unwrap();
            let payload = sim::glucose_payload(1, now_ms(), 2.6, "mmol/L");
            meter.send_until_acked(1, payload, 5).await.unwrap();
            meter.disconnect().await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    let mut latencies = Vec::with_capacity(n);
    while latencies.len() < n {
        let Ok(Some(alert)) = tokio::time::timeout(Duration::from_secs(30), lines.recv()).await
        else {
            let status = hub.status().await.unwrap();
            panic!(
                "no alert shown within 30 s; hub alerts: {:?}",
                status.alerts
            );
        };
        let shown = alert["shown_at_ms"].as_i64().unwrap();
        let received = alert["reading_received_at_ms"].as_i64().unwrap();
        latencies.push(shown - received);
    }
    sender.await.unwrap();
    hub.terminate().await;
    latencies
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let count: usize = std::env::var("GLYCO_BENCH_ALERTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let mut latencies = Vec::with_capacity(count);
    while latencies.len() < count {
        let n = PER_ROUND.min(count - latencies.len());
        latencies.extend(round(n).await);
    }
    latencies.sort_unstable();
    let q = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    println!(
        "alert latency, reading received -> shown by the physician's CLI, {} alerts: p50 {} ms, p95 {} ms, worst {} ms (aim: p95 <= 2000 ms)",
        latencies.len(),
        q(0.5),
        q(0.95),
        latencies.last().unwrap()
    );
}
