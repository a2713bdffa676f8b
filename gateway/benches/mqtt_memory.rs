//! The hub's resident memory with 50 MQTT devices each publishing a reading
//! every second, each waiting for its ack (real chain, real hub process).
//!
//!     cargo bench -p glyco-gateway --bench mqtt_memory
//!
//! GLYCO_BENCH_SECS sets how long the devices publish (default 60);
//! GLYCO_BENCH_ANALYSIS=off runs the hub without the anomaly detector, to
//! show what the models cost.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use glyco_contracts::{DeviceIdentity, DeviceKind};
use glyco_gateway::mqtt::wire::AckStatus;
use glyco_gateway::sim::{self, SimulatedDevice};
use support::{HubWorld, now_ms};

const DEVICES: usize = 50;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs: u64 = std::env::var("GLYCO_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let analysis = std::env::var("GLYCO_BENCH_ANALYSIS").as_deref() != Ok("off");
    let mut world = HubWorld::new().await;
    world.edit_config(|c| c.analysis.enabled = analysis);
    let mut secrets = Vec::new();
    for i in 0..DEVICES {
        let name = format!("sensor-{i:02}");
        world
            .add_on_chain(&DeviceIdentity::name(&name).unwrap(), DeviceKind::Cgm)
            .await;
        secrets.push((name.clone(), world.provision_only(&name)));
    }
    let hub = world.start_hub().await;
    hub.wait_for("all devices mirrored", |r| r.devices.len() == DEVICES)
        .await;
    let pid = hub.pid();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_kib(pid);

    let stored = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (name, secret) in secrets {
        let stored = stored.clone();
        let address = hub.mqtt;
        tasks.push(tokio::spawn(async move {
            let mut device = SimulatedDevice::connect(address, &name, &secret)
                .await
                .unwrap();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            for seq in 1..=secs {
                tick.tick().await;
                let payload = sim::cgm_payload(seq, now_ms(), 90.0 + (seq % 60) as f64);
                if let Ok(ack) = device.send_until_acked(seq, payload, 5).await
                    && ack.status == AckStatus::Stored
                {
                    stored.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let mut samples = Vec::new();
    for _ in 0..secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push(rss_kib(pid));
    }
    for task in tasks {
        let _ = task.await;
    }
    let steady = &samples[samples.len() / 2..];
    let mean = steady.iter().sum::<u64>() / steady.len().max(1) as u64;
    let peak = samples.iter().copied().max().unwrap_or(0);
    println!(
        "| devices | analysis | seconds | readings stored | RSS idle (MiB) | RSS steady mean (MiB) | RSS peak (MiB) |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|");
    println!(
        "| {DEVICES} | {} | {secs} | {} | {:.1} | {:.1} | {:.1} |",
        if analysis { "on" } else { "off" },
        stored.load(Ordering::Relaxed),
        idle as f64 / 1024.0,
        mean as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    let report = hub.status().await.unwrap();
    assert_eq!(
        report.readings_stored,
        stored.load(Ordering::Relaxed),
        "every acked reading is stored"
    );
    hub.terminate().await;
}
