//! The seal path's speed and size, in process: readings appended to a real
//! journal (each commit fsync'd), sealed with umbral and signed, stored in
//! a real iroh-blobs store. Pin it to one core for the one-core figure:
//!
//!     taskset -c 0 cargo bench -p glyco-gateway --bench seal_pipeline
//!
//! Prints readings per second from receipt to durable (journal) and to
//! durable + sealed + stored, the append latency p50/p99 (receipt to
//! durable, 50 concurrent devices), and bytes stored per reading against the
//! devices' plaintext JSON. GLYCO_BENCH_READINGS sets the count (default
//! 20,000); the batch size is the hub's default (500).

use std::sync::Arc;
use std::time::{Duration, Instant};

use glyco_contracts::DeviceIdentity;
use glyco_gateway::journal::{self, JournalLimits};
use glyco_gateway::reading::{Measurement, Reading, SeqOrigin, Transport, now_millis};
use glyco_gateway::seal::SealState;
use glyco_gateway::seal::blobs::BlobStore;
use glyco_gateway::seal::sealer::Sealer;
use glyco_seal::PatientKey;

const DEVICES: u64 = 50;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let total: u64 = std::env::var("GLYCO_BENCH_READINGS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let (journal, store) =
        journal::open(&dir.path().join("journal.redb"), JournalLimits::default()).unwrap();
    let (writer, task) = store.spawn().unwrap();
    let blobs = BlobStore::open(&dir.path().join("blobs"), None)
        .await
        .unwrap();
    let (key, _) = PatientKey::load_or_create(&dir.path().join("patient.umbral")).unwrap();
    let signer = alloy::signers::local::PrivateKeySigner::random();

    // 50 devices append concurrently, as the hub's sessions do; each
    // reading's append returns once its group commit is fsync'd.
    let per_device = total / DEVICES;
    let plaintext_bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for d in 0..DEVICES {
        let writer = writer.clone();
        let plaintext_bytes = plaintext_bytes.clone();
        tasks.push(tokio::spawn(async move {
            let device = DeviceIdentity::name(&format!("sensor-{d:02}")).unwrap();
            let mut latencies = Vec::with_capacity(per_device as usize);
            for seq in 1..=per_device {
                let now = now_millis();
                let mg_dl = 90.0 + (seq % 120) as f64;
                let json = glyco_gateway::sim::cgm_payload(seq, now, mg_dl);
                plaintext_bytes.fetch_add(json.len() as u64, std::sync::atomic::Ordering::Relaxed);
                let reading = Reading {
                    device: device.clone(),
                    transport: Transport::Mqtt,
                    seq,
                    seq_origin: SeqOrigin::Device,
                    device_time: Some(now),
                    received_at: now,
                    measurement: Measurement::CgmGlucose { mg_dl },
                    reported_unit: "mg/dL".into(),
                    flags: vec![],
                };
                let t = Instant::now();
                writer.append(reading).await.unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let durable = started.elapsed();
    let stored = per_device * DEVICES;
    latencies.sort();

    let state = SealState::default();
    let sealer = Sealer {
        journal: journal.clone(),
        writer: writer.clone(),
        blobs: blobs.clone(),
        key: Arc::new(key),
        signer,
        patient: glyco_contracts::Address::repeat_byte(7),
        max_readings: 500,
        max_wait: Duration::from_secs(60),
        state: state.clone(),
        quarantine: Default::default(),
    };
    let seal_started = Instant::now();
    // Every batch is full (500) but the last; its wait is skipped by
    // sealing until fewer than a batch are left, then once more.
    while sealer.step().await.unwrap() {}
    let sealing = seal_started.elapsed();
    let sealed = state.snapshot().readings_sealed;
    let batches = state.snapshot().batches_sealed;
    let records: Vec<(u64, glyco_gateway::seal::records::BatchRecord)> = journal
        .outbox_from(journal::Outbox::Sealed, 1, 100_000)
        .unwrap();
    let blob_bytes: u64 = records.iter().map(|(_, r)| r.bytes).sum();
    let plaintext = plaintext_bytes.load(std::sync::atomic::Ordering::Relaxed);

    println!(
        "| readings | devices | receipt→durable (readings/s) | sealing alone (readings/s) | receipt→durable+sealed+stored (readings/s) | append p50 / p99 (ms) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {stored} | {DEVICES} | {:.0} | {:.0} | {:.0} | {:.2} / {:.2} |",
        stored as f64 / durable.as_secs_f64(),
        sealed as f64 / sealing.as_secs_f64(),
        sealed as f64 / (durable + sealing).as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    );
    println!();
    println!(
        "| batches | readings sealed | blob bytes | bytes / reading sealed | plaintext JSON bytes / reading | ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {batches} | {sealed} | {blob_bytes} | {:.1} | {:.1} | {:.2} |",
        blob_bytes as f64 / sealed.max(1) as f64,
        plaintext as f64 / stored as f64,
        (blob_bytes as f64 / sealed.max(1) as f64) / (plaintext as f64 / stored as f64)
    );
    assert_eq!(sealed, (stored / 500) * 500, "every full batch sealed");
    blobs.shutdown().await;
    drop((sealer, writer));
    task.wait().await.unwrap();
}
