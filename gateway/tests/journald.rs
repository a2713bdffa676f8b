//! The hub under systemd logs to the journal with structured fields, read
//! back from the journal's native protocol. The real hub runs in a private
//! mount namespace whose /run is a temporary directory: its
//! /run/systemd/journal/socket is a datagram socket this test reads, and
//! JOURNAL_STREAM names the hub's stderr as systemd does for a service. A
//! device connects and sends a CGM trace with a gap: the entries carry
//! GLYCO_DEVICE (from the connection's span), and the gap finding's
//! GLYCO_KIND and GLYCO_SEVERITY, so `journalctl GLYCO_DEVICE=…` finds them.

mod support;

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::process::Stdio;
use std::time::Duration;

use glyco_gateway::sim::{self, SimulatedDevice};
use support::{HubWorld, now_ms};

type Entry = HashMap<String, String>;

/// One datagram of journald's native protocol: `NAME=value` lines, or
/// `NAME`, a little-endian u64 length and that many bytes for values with
/// line breaks.
fn parse_entry(mut bytes: &[u8]) -> Entry {
    let mut entry = Entry::new();
    while !bytes.is_empty() {
        let line_end = bytes
            .iter()
            .position(|b| *b == b'\n')
            .unwrap_or(bytes.len());
        let line = &bytes[..line_end];
        if let Some(eq) = line.iter().position(|b| *b == b'=') {
            entry.insert(
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            );
            bytes = &bytes[(line_end + 1).min(bytes.len())..];
        } else {
            let name = String::from_utf8_lossy(line).into_owned();
            let rest = &bytes[line_end + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            entry.insert(
                name,
                String::from_utf8_lossy(&rest[8..8 + len]).into_owned(),
            );
            bytes = &rest[(8 + len + 1).min(rest.len())..];
        }
    }
    entry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_logs_to_the_journal_with_device_kind_and_severity_fields() {
    let world = HubWorld::new().await;
    let secret = world.register("cgm-journal", "cgm").await;
    let dir = world.dir.path();
    let run = dir.join("run");
    std::fs::create_dir_all(run.join("systemd/journal")).unwrap();
    let journal = tokio::net::UnixDatagram::bind(run.join("systemd/journal/socket")).unwrap();
    let log = dir.join("hub-journal.log");
    let stderr = std::fs::File::create(&log).unwrap();
    let meta = stderr.metadata().unwrap();
    let mut child = tokio::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount --bind '{}' /run && exec '{}' --config '{}' run",
            run.display(),
            support::HUB_BIN,
            world.config_path.display()
        ))
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut entries: Vec<Entry> = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut until = async |entries: &mut Vec<Entry>, what: &str, done: &dyn Fn(&Entry) -> bool| {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(found) = entries.iter().find(|e| done(e)) {
                return found.clone();
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Ok(Ok(n)) = tokio::time::timeout(left, journal.recv(&mut buf)).await else {
                panic!(
                    "no journal entry for {what} within a minute; {} entries; stderr:\n{}",
                    entries.len(),
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            };
            if n > 0 {
                entries.push(parse_entry(&buf[..n]));
            }
        }
    };
    let listening = until(&mut entries, "the gatekeeper listening", &|e| {
        e.get("MESSAGE")
            .is_some_and(|m| m == "MQTT gatekeeper listening")
    })
    .await;
    assert_eq!(listening["SYSLOG_IDENTIFIER"], "glyco-hub");
    assert_eq!(listening["PRIORITY"], "5", "info is notice in the journal");
    let mqtt = listening["GLYCO_LISTEN"].parse().unwrap();

    // Two CGM readings 40 minutes apart: a gap finding.
    let mut cgm = SimulatedDevice::connect(mqtt, "cgm-journal", &secret)
        .await
        .unwrap();
    let now = now_ms();
    for (seq, at, mg_dl) in [(1, now - 40 * 60_000, 121.0), (2, now, 118.0)] {
        cgm.send_until_acked(seq, sim::cgm_payload(seq, at, mg_dl), 5)
            .await
            .unwrap();
    }
    let connected = until(&mut entries, "the device's connection", &|e| {
        e.get("GLYCO_DEVICE").is_some_and(|d| d == "cgm-journal")
    })
    .await;
    assert!(connected.contains_key("GLYCO_PEER"), "{connected:?}");
    let finding = until(&mut entries, "the gap finding", &|e| {
        e.get("GLYCO_KIND").is_some_and(|k| k == "sensor_fault:gap")
    })
    .await;
    assert_eq!(finding["GLYCO_DEVICE"], "name:cgm-journal", "{finding:?}");
    assert_eq!(finding["GLYCO_SEVERITY"], "Info", "{finding:?}");
    assert_eq!(finding["PRIORITY"], "4", "a warning");
    assert!(
        finding["TARGET"].starts_with("glyco_gateway::"),
        "{finding:?}"
    );
    cgm.disconnect().await;

    // Nothing went to stderr as text: the journal had it all.
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "");
}
