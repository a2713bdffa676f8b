//! The hub under attack, measured: its resident memory and journal growth,
//! and a legitimate device's ack latency, while an intruder on the home
//! network floods it (real chain, real `glyco-hub` process, loopback).
//!
//!     cargo bench -p glyco-gateway --bench attack_load
//!
//! Phases, in order, against one hub with the default `[limits]`:
//! 1. devices connecting at once (every device the patient may register),
//!    then again among 439 strangers (500 connections at once);
//! 2. a compromised device offering 100,000 QoS 2 publishes, reconnecting
//!    whenever the hub closes it;
//! 3. 100,000 junk CONNECTs from 1,000 addresses (garbage, malformed,
//!    unknown names, wrong passwords);
//! 4. 2,000 idle connections from 125 addresses, held for 30 s;
//! 5. password guessing for 15 s each: one address one at a time, one
//!    address with 16 in flight, 256 addresses with 64 in flight.
//!
//! The guess rates are then measured on fresh hubs (one per mode), with the
//! default limits and with throttling off (no delays, no bans: the
//! "before" figures). A probe device publishes a reading and waits for its
//! ack, five times a second, throughout phases 2–5. `GLYCO_BENCH_SCALE=0.1`
//! runs a tenth of each count (a quick check).

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use glyco_contracts::{DeviceIdentity, DeviceKind};
use glyco_gateway::mqtt::topics::{acks_topic, readings_topic};
use glyco_gateway::mqtt::wire::AckStatus;
use glyco_gateway::sim::{self, SimulatedDevice};
use parking_lot::Mutex;
use support::raw::{self, Answer};
use support::{Hub, HubWorld, now_ms};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The contracts' cap on one patient's devices.
const MAX_DEVICES: usize = 64;
const PROBE: &str = "cgm-probe";
const ROGUE: &str = "cgm-rogue";
const VICTIM: &str = "cgm-victim";

fn loopback(a: u8, b: u8, c: u8) -> IpAddr {
    IpAddr::from([127, a, b, c])
}

/// The `n`th of 62,500 attacker addresses in 127.`base`.0.0/16 and up.
fn attacker_address(base: u8, n: usize) -> IpAddr {
    let n = n % 62_500;
    loopback(
        base + (n / 250 / 250) as u8,
        (n / 250 % 250) as u8,
        (n % 250 + 1) as u8,
    )
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn scaled(count: usize) -> usize {
    let scale: f64 = std::env::var("GLYCO_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((count as f64 * scale) as usize).max(1)
}

/// A legitimate device publishing and waiting for its ack, over and over;
/// each latency is filed under the phase running when it was sent.
struct Probe {
    phase: Arc<AtomicUsize>,
    samples: Arc<Mutex<Vec<(usize, Duration)>>>,
    /// Readings not acknowledged within 5 s (or a lost connection), by phase.
    missed: Arc<Mutex<Vec<usize>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Probe {
    fn start(hub: &Hub, secret: String) -> Self {
        let phase = Arc::new(AtomicUsize::new(0));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let missed = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let address = hub.mqtt;
        let task = {
            let (phase, samples, missed, stop) =
                (phase.clone(), samples.clone(), missed.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut device) = SimulatedDevice::connect(address, PROBE, &secret).await
                    else {
                        missed.lock().push(phase.load(Ordering::Relaxed));
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    };
                    while !stop.load(Ordering::Relaxed) {
                        seq += 1;
                        let current = phase.load(Ordering::Relaxed);
                        let sent = Instant::now();
                        let payload = sim::cgm_payload(seq, now_ms(), 100.0 + (seq % 40) as f64);
                        if device.publish(payload).await.is_err() {
                            missed.lock().push(current);
                            break;
                        }
                        let mut acked = false;
                        while let Some(ack) = device.next_ack(Duration::from_secs(5)).await {
                            if ack.seq == Some(seq) {
                                acked = ack.status == AckStatus::Stored;
                                break;
                            }
                        }
                        if acked {
                            samples.lock().push((current, sent.elapsed()));
                        } else {
                            missed.lock().push(current);
                            break;
                        }
                        // Five readings a second: within the hub's default
                        // limit of ten per connection.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            })
        };
        Self {
            phase,
            samples,
            missed,
            stop,
            task,
        }
    }

    fn enter(&self, phase: usize) {
        self.phase.store(phase, Ordering::Relaxed);
    }

    fn misses(&self, phase: usize) -> usize {
        self.missed.lock().iter().filter(|p| **p == phase).count()
    }

    /// (count, p50, p99, max) in milliseconds for `phase`.
    fn latencies(&self, phase: usize) -> (usize, f64, f64, f64) {
        let mut ms: Vec<f64> = self
            .samples
            .lock()
            .iter()
            .filter(|(p, _)| *p == phase)
            .map(|(_, d)| d.as_secs_f64() * 1000.0)
            .collect();
        if ms.is_empty() {
            return (0, f64::NAN, f64::NAN, f64::NAN);
        }
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
        (ms.len(), at(0.5), at(0.99), ms[ms.len() - 1])
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// Samples the hub's RSS while a phase runs; returns the peak.
struct RssWatch {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl RssWatch {
    fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (peak, stop) = (peak.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(support::proc_kib(pid, "VmRSS:"), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
        };
        Self { peak, stop, task }
    }

    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak.load(Ordering::Relaxed)
    }
}

/// Phase 1: the storm devices connect at once, each from its own address
/// (a home's devices have their own; one address may hold only 16
/// connections), and subscribe to their ack topic; `strangers` CONNECTs
/// with unknown names arrive in the same instant from other addresses. A
/// device whose connection is closed before its CONNACK (evicted while
/// pending) tries again, as devices do. Returns the time until every
/// device has its SUBACK, the devices' connections (still open) and the
/// retries.
async fn connect_at_once(
    hub: &Hub,
    devices: Vec<(String, String)>,
    strangers: usize,
) -> (Duration, Vec<TcpStream>, u64) {
    let started = Instant::now();
    let retries = Arc::new(AtomicU64::new(0));
    let mut others = tokio::task::JoinSet::new();
    for n in 0..strangers {
        let address = hub.mqtt;
        others.spawn(async move {
            let name = format!("stranger-{n}");
            raw::try_login(
                attacker_address(3, n),
                address,
                &name,
                "guess",
                Duration::from_secs(30),
            )
            .await
        });
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (n, (name, secret)) in devices.into_iter().enumerate() {
        let (address, retries) = (hub.mqtt, retries.clone());
        tasks.spawn(async move {
            loop {
                let mut stream = raw::dial(attacker_address(1, n), address).await.unwrap();
                stream
                    .write_all(&raw::connect(&name, Some(&name), Some(&secret), 60))
                    .await
                    .unwrap();
                match raw::read_connack(&mut stream, Duration::from_secs(30)).await {
                    Answer::ConnAck(0) => {}
                    Answer::Closed => {
                        retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    other => panic!("{name}: {other:?}"),
                }
                stream
                    .write_all(&raw::subscribe(&acks_topic(&name), 1))
                    .await
                    .unwrap();
                let mut suback = [0u8; 5];
                stream.read_exact(&mut suback).await.unwrap();
                assert_eq!(suback[0], 0x90, "{name} gets its SUBACK");
                return stream;
            }
        });
    }
    let mut connected = Vec::new();
    while let Some(result) = tasks.join_next().await {
        connected.push(result.unwrap());
    }
    let elapsed = started.elapsed();
    while others.join_next().await.is_some() {}
    (elapsed, connected, retries.load(Ordering::Relaxed))
}

/// Phase 2: returns (publishes written, connections used).
async fn qos2_flood(hub: &Hub, secret: &str, publishes: usize) -> (usize, usize) {
    let topic = readings_topic(ROGUE);
    let mut batch = Vec::new();
    for id in 1..=100u16 {
        batch.extend(raw::publish(&topic, b"{\"v\":1}", 2, id));
    }
    let (mut written, mut connections) = (0, 0);
    while written < publishes {
        connections += 1;
        let Ok(mut stream) = raw::dial(loopback(2, 0, 1), hub.mqtt).await else {
            continue;
        };
        if stream
            .write_all(&raw::connect(ROGUE, Some(ROGUE), Some(secret), 60))
            .await
            .is_err()
        {
            continue;
        }
        if raw::read_connack(&mut stream, Duration::from_secs(5)).await != Answer::ConnAck(0) {
            // Refused (its behaviour flagged): wait a little, as a real
            // attacker's reconnect loop would.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        // Write until the hub closes the connection.
        while written < publishes {
            match tokio::time::timeout(Duration::from_secs(2), stream.write_all(&batch)).await {
                Ok(Ok(())) => written += 100,
                _ => break,
            }
        }
    }
    (written, connections)
}

/// One junk CONNECT of four kinds.
fn junk(kind: usize, n: usize) -> Vec<u8> {
    match kind % 4 {
        // Bytes that are not MQTT at all.
        0 => (0..64).map(|i| (n * 31 + i * 17) as u8).collect(),
        // A CONNECT with a bad protocol name.
        1 => {
            let mut packet = raw::connect("x", Some("x"), Some("y"), 60);
            packet[4] = b'X';
            packet
        }
        2 => {
            let name = format!("nobody-{n}");
            raw::connect(&name, Some(&name), Some("guess"), 60)
        }
        _ => raw::connect(VICTIM, Some(VICTIM), Some(&format!("guess-{n}")), 60),
    }
}

/// Phase 3: `total` junk CONNECTs, 64 in flight, from 1,000 addresses; each
/// waits at most 100 ms for an answer. Returns the count sent.
async fn junk_connects(hub: &Hub, total: usize) -> usize {
    let next = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (next, sent, address) = (next.clone(), sent.clone(), hub.mqtt);
        tasks.spawn(async move {
            let mut sink = [0u8; 64];
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return;
                }
                let Ok(mut stream) = raw::dial(attacker_address(10, n % 1000), address).await
                else {
                    continue;
                };
                if stream.write_all(&junk(n, n)).await.is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                let _ =
                    tokio::time::timeout(Duration::from_millis(100), stream.read(&mut sink)).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    sent.load(Ordering::Relaxed)
}

/// Phase 4: opens `count` connections (16 per address) that never send a
/// byte, holds them for `hold`; returns how many the hub had closed by then.
async fn idle_connections(hub: &Hub, count: usize, hold: Duration) -> (usize, usize) {
    let mut streams = Vec::new();
    let mut refused = 0;
    for n in 0..count {
        match raw::dial(attacker_address(20, n / 16), hub.mqtt).await {
            Ok(stream) => streams.push(stream),
            Err(_) => refused += 1,
        }
    }
    tokio::time::sleep(hold).await;
    let mut closed = refused;
    for stream in &mut streams {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => closed += 1,
            _ => {}
        }
    }
    (streams.len() + refused, closed)
}

/// Phase 5: wrong passwords for the victim for `span`, `in_flight` at a
/// time from `addresses` addresses. Returns guesses answered per second
/// (a CONNACK refusing it) and connections closed unanswered (bans, cut-offs).
async fn guesses(hub: &Hub, span: Duration, in_flight: usize, addresses: usize) -> (f64, u64) {
    let answered = Arc::new(AtomicU64::new(0));
    let unanswered = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = tokio::time::Instant::now() + span;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let (answered, unanswered, next, address) =
            (answered.clone(), unanswered.clone(), next.clone(), hub.mqtt);
        tasks.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let source = attacker_address(30, n % addresses);
                let password = format!("guess-{n}");
                let guess =
                    raw::try_login(source, address, VICTIM, &password, Duration::from_secs(120));
                match tokio::time::timeout_at(deadline, guess).await {
                    Err(_) => return,
                    Ok(Answer::ConnAck(code)) if code != 0 => {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {
                        unanswered.fetch_add(1, Ordering::Relaxed);
                        // A closed connection comes back at once; do not spin.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    (
        answered.load(Ordering::Relaxed) as f64 / span.as_secs_f64(),
        unanswered.load(Ordering::Relaxed),
    )
}

const GUESS_MODES: [(&str, usize, usize); 3] = [
    ("one address, one at a time", 1, 1),
    ("one address, 16 in flight", 16, 1),
    ("256 addresses, 64 in flight", 64, 256),
];

/// Guesses per second for each mode, each on a freshly started hub (the
/// throttle's memory of earlier phases would otherwise carry over).
async fn guess_rates(world: &HubWorld) -> Vec<(f64, u64)> {
    let span = Duration::from_secs(15);
    let mut rates = Vec::new();
    for (_, in_flight, addresses) in GUESS_MODES {
        let hub = world.start_hub().await;
        hub.wait_for("all devices mirrored", |r| r.devices.len() == MAX_DEVICES)
            .await;
        rates.push(guesses(&hub, span, in_flight, addresses).await);
        hub.terminate().await;
    }
    rates
}

fn file_kib(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len() / 1024).unwrap_or(0)
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    glyco_gateway::descriptors::raise_limit();
    let mut world = HubWorld::new().await;
    let mut secrets = Vec::new();
    let mut names = vec![PROBE.to_owned(), ROGUE.to_owned(), VICTIM.to_owned()];
    names.extend((names.len()..MAX_DEVICES).map(|i| format!("storm-{i:02}")));
    for name in &names {
        world
            .add_on_chain(&DeviceIdentity::name(name).unwrap(), DeviceKind::Cgm)
            .await;
        secrets.push((name.clone(), world.provision_only(name)));
    }
    let secret_of = |name: &str| {
        secrets
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.clone())
            .unwrap()
    };
    let journal = world.config.journal_path();

    // Hub with the default limits.
    let hub = world.start_hub().await;
    hub.wait_for("all devices mirrored", |r| r.devices.len() == MAX_DEVICES)
        .await;
    let pid = hub.pid();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = support::proc_kib(pid, "VmRSS:");
    let journal_start = file_kib(&journal);

    let storm: Vec<_> = secrets
        .iter()
        .filter(|(n, _)| n.starts_with("storm-"))
        .cloned()
        .collect();
    let (storm_time, storm_devices, _) = connect_at_once(&hub, storm.clone(), 0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_storm = support::proc_kib(pid, "VmRSS:");
    drop(storm_devices);
    println!(
        "phase 1: {} devices connected at once in {:.0} ms; RSS {:.1} → {:.1} MiB ({:.0} KiB per device)",
        storm.len(),
        storm_time.as_secs_f64() * 1000.0,
        mib(rss_idle),
        mib(rss_storm),
        rss_storm.saturating_sub(rss_idle) as f64 / storm.len() as f64
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let strangers = 500 - storm.len();
    let (crowd_time, crowd_devices, retries) =
        connect_at_once(&hub, storm.clone(), strangers).await;
    drop(crowd_devices);
    println!(
        "phase 1b: {} devices and {strangers} strangers at once: every device in after {:.0} ms ({retries} retries)",
        storm.len(),
        crowd_time.as_secs_f64() * 1000.0,
    );

    let probe = Probe::start(&hub, secret_of(PROBE));
    probe.enter(0);
    tokio::time::sleep(Duration::from_secs(5)).await;

    let mut rows = Vec::new();
    let mut row = |label: String, peak: u64, probe: &Probe, phase: usize| {
        let (n, p50, p99, max) = probe.latencies(phase);
        let missed = probe.misses(phase);
        let line = format!(
            "| {label} | {:.1} | {:.1} | {:.2} | {n} | {missed} | {p50:.1} | {p99:.1} | {max:.0} |",
            mib(support::proc_kib(pid, "VmRSS:")),
            mib(peak),
            file_kib(&journal).saturating_sub(journal_start) as f64 / 1024.0,
        );
        println!("{line}");
        rows.push(line);
    };
    row(
        "baseline (probe only, 5 s)".into(),
        support::proc_kib(pid, "VmRSS:"),
        &probe,
        0,
    );

    probe.enter(1);
    let watch = RssWatch::start(pid);
    let (written, connections) = qos2_flood(&hub, &secret_of(ROGUE), scaled(100_000)).await;
    row(
        format!("{written} QoS 2 publishes offered over {connections} connections"),
        watch.finish().await,
        &probe,
        1,
    );

    probe.enter(2);
    let watch = RssWatch::start(pid);
    let sent = junk_connects(&hub, scaled(100_000)).await;
    row(
        format!("{sent} junk CONNECTs from 1,000 addresses"),
        watch.finish().await,
        &probe,
        2,
    );

    probe.enter(3);
    let watch = RssWatch::start(pid);
    let (opened, closed) = idle_connections(&hub, scaled(2_000), Duration::from_secs(30)).await;
    row(
        format!("{opened} idle connections held 30 s ({closed} closed by the hub)"),
        watch.finish().await,
        &probe,
        3,
    );

    probe.enter(4);
    let watch = RssWatch::start(pid);
    let span = Duration::from_secs(15);
    for (_, in_flight, addresses) in GUESS_MODES {
        guesses(&hub, span, in_flight, addresses).await;
    }
    row(
        "password guessing (3 × 15 s)".into(),
        watch.finish().await,
        &probe,
        4,
    );
    let missed = probe.missed.lock().len();
    probe.stop().await;
    if missed > 0 {
        // What the hub said about the probe, to tell why.
        let log = hub.log_text();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(PROBE)).collect();
        eprintln!("probe missed {missed}; hub log about it (last 20 lines):");
        for line in &lines[lines.len().saturating_sub(20)..] {
            eprintln!("  {line}");
        }
    }
    let report = hub.status().await.unwrap();
    let rss_peak = support::proc_kib(pid, "VmHWM:");
    hub.terminate().await;

    // Guess rates on fresh hubs: default limits, then throttling off.
    let after = guess_rates(&world).await;
    world.edit_config(|c| {
        c.limits.login_failures_before_delay = u32::MAX;
        c.limits.ban_after_failures = u32::MAX;
    });
    let before = guess_rates(&world).await;

    println!();
    println!(
        "| phase | RSS after (MiB) | RSS peak in phase (MiB) | journal growth (MiB) | probe acks | probe misses | p50 (ms) | p99 (ms) | max (ms) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for line in &rows {
        println!("{line}");
    }
    println!();
    println!(
        "hub peak RSS (VmHWM) {:.1} MiB; readings stored {}; refusals suppressed from the log {}; bans {}",
        mib(rss_peak),
        report.readings_stored,
        report.refusals_suppressed,
        report.logins.bans_total
    );
    println!();
    println!(
        "| guessing | guesses answered/s, throttling off | unanswered | guesses answered/s, default limits | unanswered (bans, cut-offs) |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (i, (label, _, _)) in GUESS_MODES.iter().enumerate() {
        println!(
            "| {label} | {:.1} | {} | {:.2} | {} |",
            before[i].0, before[i].1, after[i].0, after[i].1
        );
    }
}
