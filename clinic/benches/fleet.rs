//! The clinic node under a fleet, for docs/BENCHMARKS.md ("The fleet"):
//!
//! 1. Heartbeats per second on one core through the node's own path: CBOR
//!    decoded, bounds checked, the hub's signature recovered, its patient
//!    from the admission cache, the book and the hub's model updated, the
//!    answer encoded. 10,000 simulated hubs, each with four devices (a CGM,
//!    a meter, a cuff, a scale), three rounds a minute apart.
//! 2. Memory per hub: the process's resident memory before and after the
//!    book holds them all (the messages are made before, so they are not in
//!    the difference), and the roster's size on disk.
//! 3. The fleet view: every hub judged and sorted, a filtered view, the
//!    `/fleet.json` body and the Prometheus text, each timed.
//! 4. The wire: a typical heartbeat's bytes, and one at every bound.
//!
//!     cargo bench -p glyco-clinic --bench fleet
//!
//! GLYCO_BENCH_HUBS (default 10000) sets the fleet's size.

use std::time::Instant;

use glyco_clinic::fleet::book::{FleetBook, FleetSettings};
use glyco_clinic::fleet::view::{self, Flag, FleetFilter};
use glyco_clinic::fleet::{FleetNode, metrics};
use glyco_clinic::proxy::chain_view::ChainView;
use glyco_contracts::keys::Signer as PrivateKeySigner;
use glyco_contracts::{Address, ContractAddresses, Deployment, GlycoClient};
use glyco_seal::fleet::{
    self, ChainHealth, DeviceHealth, Heartbeat, HubFleetMessage, MAX_DEVICE_FINDINGS,
    MAX_FIELD_CHARS, MAX_HEARTBEAT_DEVICES, MAX_WHY_CHARS, Queues, Signed, UpdateOutcome,
    UpdateReport,
};

const MINUTE_MS: i64 = 60_000;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap())
        })
        .unwrap()
}

fn device(i: usize, kind: &str, seen_ms: i64) -> DeviceHealth {
    DeviceHealth {
        device: format!("0x{:064x}", i),
        kind: Some(kind.into()),
        standing: "registered".into(),
        last_seen_ms: Some(seen_ms),
        findings: vec![],
    }
}

fn heartbeat(hub: Address, boot_ms: i64, seq: u64, now_ms: i64) -> Heartbeat {
    Heartbeat {
        hub,
        boot_ms,
        seq,
        sent_at_ms: now_ms,
        version: "0.1.0".into(),
        release: Some("2026.12.2".into()),
        uptime_s: ((now_ms - boot_ms) / 1000) as u64,
        disk_free_bytes: Some(20 << 30),
        disk_total_bytes: Some(30 << 30),
        rss_kib: 66_000 + seq * 7,
        cpu_ms: 90_000 + seq * 300,
        mem_available_kib: Some(3_200_000),
        queues: Queues {
            readings_stored: 100_000 + seq * 5,
            unsealed: seq % 5,
            unreplicated: 1,
            unanchored: 1,
            oldest_unanchored_age_s: Some(40),
            alerts_open: 0,
            readings_refused: 0,
        },
        chain: ChainHealth {
            reachable: true,
            head: Some(1_000_000 + seq * 12),
            synced: Some(1_000_000 + seq * 12 - 1),
            lag_blocks: Some(1),
            last_anchor_block: Some(1_000_000 + seq * 12 - 3),
            anchors: 5_000 + seq,
        },
        devices: vec![
            device(1, "cgm", now_ms - 30_000),
            device(2, "glucose_meter", now_ms - 3 * 3_600_000),
            device(3, "blood_pressure", now_ms - 8 * 3_600_000),
            device(4, "weight_scale", now_ms - 20 * 3_600_000),
        ],
        failing_stages: vec![],
        config_version: 0,
        clock_offset_ms: Some(35),
        update: None,
    }
}

fn main() {
    let hubs: usize = std::env::var("GLYCO_BENCH_HUBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rounds = 3u64;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keys: Vec<PrivateKeySigner> = (0..hubs).map(|_| PrivateKeySigner::random()).collect();
    let start_ms = glyco_webkit::now_millis() - rounds as i64 * MINUTE_MS;
    let boot_ms = start_ms - 86_400_000;

    // Every round's messages, made and encoded before anything is timed.
    let messages: Vec<Vec<Vec<u8>>> = (1..=rounds)
        .map(|round| {
            keys.iter()
                .map(|key| {
                    let beat = heartbeat(
                        key.address(),
                        boot_ms,
                        round,
                        start_ms + round as i64 * MINUTE_MS,
                    );
                    let signed = Signed::sign(beat, key).unwrap();
                    fleet::encode(&HubFleetMessage::Heartbeat(Box::new(signed))).unwrap()
                })
                .collect()
        })
        .collect();
    let typical_bytes = messages[0][0].len();

    // The node, with a chain view nobody asks: every hub is admitted from
    // the cache, as it is after its first heartbeat.
    let deployment = Deployment {
        chain_id: 1,
        deployed_at_block: 0,
        deployer: Address::ZERO,
        contracts: ContractAddresses {
            roles: Address::ZERO,
            devices: Address::ZERO,
            permissions: Address::ZERO,
            access_log: Address::ZERO,
            anchors: Address::ZERO,
            consortium: None,
            releases: None,
        },
        device_id_key_fingerprint: Default::default(),
        fees: Default::default(),
    };
    let chain = ChainView::new(GlycoClient::read_only(
        "http://127.0.0.1:9".parse().unwrap(),
        deployment,
    ));
    let settings = FleetSettings {
        current_release: Some("2026.12.2".into()),
        max_hubs: hubs.max(1),
        // The rounds run back to back, not a minute apart; the check
        // itself still runs.
        min_interval_ms: 0,
        ..FleetSettings::default()
    };
    // The admission cache is per hub too: it counts.
    let rss_before = rss_kib();
    let node = FleetNode::new(chain, FleetBook::new(settings), None);
    for (i, key) in keys.iter().enumerate() {
        node.known_hub(key.address(), Address::with_last_byte((i % 251) as u8));
    }

    let mut per_round = Vec::new();
    for round in &messages {
        let started = Instant::now();
        runtime.block_on(async {
            for bytes in round {
                let message: HubFleetMessage = fleet::decode(bytes).unwrap();
                let answer = node.on_message(message, None).await;
                let encoded = fleet::encode(&answer).unwrap();
                assert!(
                    matches!(answer, glyco_seal::fleet::FleetAnswer::Kept { .. }),
                    "{answer:?}"
                );
                std::hint::black_box(encoded);
            }
        });
        per_round.push(started.elapsed());
    }
    let rss_after = rss_kib();
    drop(messages);

    let total: f64 = per_round.iter().map(|d| d.as_secs_f64()).sum();
    let rate = (hubs as u64 * rounds) as f64 / total;
    let needed = hubs as f64 / 60.0;
    println!("fleet bench: {hubs} hubs, {rounds} rounds, one core (current-thread runtime)");
    for (i, d) in per_round.iter().enumerate() {
        println!(
            "  round {}: {:.0} ms ({:.0} heartbeats/s)",
            i + 1,
            d.as_secs_f64() * 1000.0,
            hubs as f64 / d.as_secs_f64()
        );
    }
    println!(
        "heartbeats per second per core: {rate:.0} (the aim's load, {hubs} a minute: {needed:.0}/s, {:.1}% of a core)",
        needed / rate * 100.0
    );
    let per_hub = (rss_after.saturating_sub(rss_before)) * 1024 / hubs as u64;
    println!(
        "memory: RSS {rss_before} KiB -> {rss_after} KiB: {per_hub} bytes per hub (aim <= 4096)"
    );
    let roster = node.with_book(|b| b.to_bytes().unwrap().len());
    println!(
        "roster on disk: {} bytes ({} per hub)",
        roster,
        roster / hubs
    );

    let now = glyco_webkit::now_millis() + 10 * MINUTE_MS;
    let time = |what: &str, f: &mut dyn FnMut() -> usize| {
        let runs = 5;
        let started = Instant::now();
        let mut n = 0;
        for _ in 0..runs {
            n = f();
        }
        println!(
            "{what}: {:.1} ms ({n})",
            started.elapsed().as_secs_f64() * 1000.0 / runs as f64
        );
    };
    time("fleet view, all hubs judged and sorted", &mut || {
        node.with_book(|b| view::view(b, &FleetFilter::default(), now).len())
    });
    let silent = FleetFilter {
        flags: [Flag::Silent].into(),
        ..Default::default()
    };
    // Ten minutes on, every hub is silent: the filter keeps them all.
    time("fleet view, --flag silent", &mut || {
        node.with_book(|b| view::view(b, &silent, now).len())
    });
    time("/fleet.json body, all hubs (bytes)", &mut || {
        node.with_book(|b| {
            serde_json::to_vec(&view::view(b, &FleetFilter::default(), now))
                .unwrap()
                .len()
        })
    });
    time("/metrics text (bytes)", &mut || {
        metrics::render(&node, None, now).len()
    });

    // The wire at its bounds.
    let key = &keys[0];
    let mut worst = heartbeat(key.address(), boot_ms, 9, now);
    worst.version = "v".repeat(MAX_FIELD_CHARS);
    worst.release = Some("r".repeat(MAX_FIELD_CHARS));
    worst.devices = (0..MAX_HEARTBEAT_DEVICES)
        .map(|i| DeviceHealth {
            findings: vec!["f".repeat(MAX_FIELD_CHARS); MAX_DEVICE_FINDINGS],
            ..device(i, &"k".repeat(MAX_FIELD_CHARS), now)
        })
        .collect();
    worst.update = Some(UpdateReport {
        version: "u".repeat(MAX_FIELD_CHARS),
        sha256: [0xff; 32],
        at_ms: now,
        outcome: UpdateOutcome::RolledBack {
            why: "w".repeat(MAX_WHY_CHARS),
        },
    });
    let worst_bytes = fleet::encode(&HubFleetMessage::Heartbeat(Box::new(
        Signed::sign(worst, key).unwrap(),
    )))
    .unwrap()
    .len();
    println!(
        "heartbeat on the wire: {typical_bytes} bytes typical (4 devices), {worst_bytes} bytes at every bound (limit {})",
        glyco_seal::fleet::MAX_FLEET_MESSAGE_BYTES
    );
}
