//! The hub's resident memory with 50 MQTT devices each publishing a reading
//! every second, each waiting for its ack (real chain, real hub process).
//!
//!     cargo bench -p glyco-gateway --bench mqtt_memory
//!
//! GLYCO_BENCH_SECS sets how long the devices publish (default 150);
//! GLYCO_BENCH_ANALYSIS=off runs the hub without the anomaly detector, to
//! show what the models cost; GLYCO_BENCH_SEAL=off without the sealed path
//! (sealing, blob store, anchoring, iroh serving). With it on (the default
//! config: batches of 500 readings or 60 s, a root a minute), a clinic
//! replica enrolled on chain follows the hub over iroh, and the run also
//! measures each reading's time from receipt to durable (the device's
//! publish to its ack) and from receipt to anchored (from the journal's
//! records after the run).

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
    support::proc_kib(pid, "VmRSS:")
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs: u64 = std::env::var("GLYCO_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    let analysis = std::env::var("GLYCO_BENCH_ANALYSIS").as_deref() != Ok("off");
    let sealing = std::env::var("GLYCO_BENCH_SEAL").as_deref() != Ok("off");
    let mut world = HubWorld::new().await;
    let port = support::free_udp_port();
    world.edit_config(|c| {
        // Every simulated device connects from 127.0.0.1; on a home network
        // each has its own address (the default allows 16 per address).
        c.limits.max_connections_per_address = DEVICES;
        c.analysis.enabled = analysis;
        c.seal.enabled = sealing;
        c.seal.iroh_listen = format!("127.0.0.1:{port}").parse().unwrap();
    });
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
    let replica = if sealing {
        Some(start_replica(&world, &hub, port).await)
    } else {
        None
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_kib(pid);

    let stored = Arc::new(AtomicU64::new(0));
    let ack_ms = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (name, secret) in secrets {
        let stored = stored.clone();
        let ack_ms = ack_ms.clone();
        let address = hub.mqtt;
        tasks.push(tokio::spawn(async move {
            let mut device = SimulatedDevice::connect(address, &name, &secret)
                .await
                .unwrap();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            for seq in 1..=secs {
                tick.tick().await;
                let payload = sim::cgm_payload(seq, now_ms(), 90.0 + (seq % 60) as f64);
                let sent = std::time::Instant::now();
                if let Ok(ack) = device.send_until_acked(seq, payload, 5).await
                    && ack.status == AckStatus::Stored
                {
                    ack_ms.lock().push(sent.elapsed().as_secs_f64() * 1000.0);
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
    let hwm = support::proc_kib(pid, "VmHWM:");
    println!(
        "| devices | analysis | sealed path | seconds | readings stored | RSS idle (MiB) | RSS steady mean (MiB) | RSS peak (MiB) | VmHWM (MiB) |"
    );
    println!("|---:|---|---|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {DEVICES} | {} | {} | {secs} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
        if analysis { "on" } else { "off" },
        if sealing {
            "on, replica following"
        } else {
            "off"
        },
        stored.load(Ordering::Relaxed),
        idle as f64 / 1024.0,
        mean as f64 / 1024.0,
        peak as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    let report = hub.status().await.unwrap();
    assert_eq!(
        report.readings_stored,
        stored.load(Ordering::Relaxed),
        "every acked reading is stored"
    );
    let mut acks = ack_ms.lock().clone();
    acks.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    println!();
    println!("| receipt → durable (publish → ack) p50 / p99 / max (ms) |");
    println!("|---:|");
    println!(
        "| {:.1} / {:.1} / {:.1} |",
        pct(&acks, 0.5),
        pct(&acks, 0.99),
        acks.last().copied().unwrap_or(0.0)
    );
    if let Some((stop, task)) = replica {
        let report = hub
            .wait_for_within(
                Duration::from_secs(200),
                "everything sealed, anchored, replicated",
                |r| {
                    r.seal.readings_sealed == r.readings_stored
                        && r.seal.batches_anchored == r.seal.batches_sealed
                        && r.seal.batches_replicated == r.seal.batches_sealed
                },
            )
            .await;
        stop.cancel();
        let _ = task.await;
        hub.terminate().await;
        anchored_latency(&world, &report);
    } else {
        hub.terminate().await;
    }
}

/// A clinic replica (in this process), enrolled by the hospital, following
/// the hub over iroh.
async fn start_replica(
    world: &HubWorld,
    hub: &support::Hub,
    port: u16,
) -> (
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    use glyco_clinic::replica::{HubPeer, Replica, bind, load_or_create_node_key};
    let report = hub
        .wait_for("the iroh node", |r| r.seal.node_id.is_some())
        .await;
    let store = glyco_clinic::store::ReplicaStore::open(&world.dir.path().join("replica")).unwrap();
    let key = load_or_create_node_key(&store).unwrap();
    world
        .client(glyco_contracts::testkit::accounts::HOSPITAL)
        .enrol_node(glyco_contracts::B256::from(*key.public().as_bytes()))
        .await
        .unwrap();
    let peer: HubPeer = format!("{}@127.0.0.1:{port}", report.seal.node_id.unwrap())
        .parse()
        .unwrap();
    let replica = Replica {
        endpoint: bind(key, "127.0.0.1:0".parse().unwrap()).await.unwrap(),
        store,
        hubs: vec![peer],
        poll: Duration::from_secs(1),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let token = stop.clone();
    let task = tokio::spawn(async move {
        replica.run(token).await;
        replica.endpoint.close().await;
    });
    (stop, task)
}

/// Each reading's time from receipt to the anchoring of its batch's root.
fn anchored_latency(world: &HubWorld, report: &glyco_gateway::status::StatusReport) {
    use glyco_gateway::journal::{self, JournalLimits, Outbox};
    use glyco_gateway::seal::records::{AnchorEntry, AnchorState, BatchRecord};
    let (journal, _store) =
        journal::open(&world.config.journal_path(), JournalLimits::default()).unwrap();
    let anchors: std::collections::BTreeMap<u64, AnchorEntry> = journal
        .outbox_from(Outbox::Anchors, 1, 100_000)
        .unwrap()
        .into_iter()
        .collect();
    let batches: Vec<(u64, BatchRecord)> = journal.outbox_from(Outbox::Sealed, 1, 100_000).unwrap();
    let mut latencies = Vec::new();
    let mut gas = 0;
    for (_, batch) in &batches {
        let anchor = &anchors[&batch.anchor.as_ref().unwrap().anchor_no];
        let AnchorState::Anchored { at, .. } = anchor.state else {
            panic!("unanchored batch");
        };
        for (_, reading) in journal
            .readings_from(batch.first_journal_seq, batch.count as usize)
            .unwrap()
        {
            latencies.push((at - reading.received_at) as f64 / 1000.0);
        }
    }
    for anchor in anchors.values() {
        if let AnchorState::Anchored { gas_used, .. } = anchor.state {
            gas += gas_used.unwrap_or(0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    println!();
    println!(
        "| batches | anchors | gas for anchors | gas per reading | receipt → anchored p50 / p99 / max (s) |"
    );
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {gas} | {:.1} | {:.1} / {:.1} / {:.1} |",
        report.seal.batches_sealed,
        anchors.len(),
        gas as f64 / latencies.len().max(1) as f64,
        pct(0.5),
        pct(0.99),
        latencies.last().copied().unwrap_or(0.0)
    );
}
