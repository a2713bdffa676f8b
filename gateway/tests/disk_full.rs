//! The disk fills: the hub's state directory lives on a small filesystem of
//! its own (a size-limited tmpfs; the test needs root, as CI has). With the
//! disk full the hub acknowledges nothing it cannot keep and says why in its
//! status; once space returns it takes readings again, and every reading it
//! acknowledged is in the journal and sealed, exactly once.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use glyco_gateway::journal::{self, JournalLimits};
use glyco_gateway::sim::{self, SimulatedDevice};
use support::{HubWorld, now_ms};

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size_mib: u32) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(at)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a small tmpfs needs root (CI runs as root)"
        );
        Self(at.to_owned())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l"])
            .arg(&self.0)
            .status();
    }
}

/// Writes a filler file until the filesystem is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_readings_with_a_clear_status_and_the_hub_recovers_when_space_returns()
{
    let mut world = HubWorld::new().await;
    let disk = SmallDisk::mount(&world.dir.path().join("small"), 48);
    let state_dir = disk.0.join("state");
    std::fs::create_dir_all(&state_dir).unwrap();
    std::fs::copy(
        world.config.state_dir.join("hub.key"),
        state_dir.join("hub.key"),
    )
    .unwrap();
    world.edit_config(|c| {
        c.state_dir = state_dir.clone();
        c.seal.max_batch_readings = 20;
        c.seal.max_batch_wait_secs = 1;
        c.seal.anchor_interval_secs = 1;
        c.seal.serve_replicas = false;
        c.limits.max_publishes_per_second = 1000;
        c.limits.min_free_disk_mib = 4;
    });
    let secret = world.register("cgm-disk", "cgm").await;
    let hub = world.start_hub().await;
    hub.wait_registered("cgm-disk").await;

    let mut acked = BTreeMap::new();
    let mut device = SimulatedDevice::connect(hub.mqtt, "cgm-disk", &secret)
        .await
        .unwrap();
    for seq in 1..=50 {
        let value = 90.0 + seq as f64;
        let ack = device
            .send_until_acked(seq, sim::cgm_payload(seq, now_ms(), value), 5)
            .await
            .unwrap();
        assert!(sim::is_final(&ack));
        acked.insert(seq, value);
    }
    hub.wait_for("the first readings sealed", |r| {
        r.seal.readings_sealed >= 50
    })
    .await;

    // The disk fills up. Readings are refused, not acknowledged.
    let filler = disk.0.join("filler");
    fill(&filler);
    let mut refused = 0;
    for seq in 51..=58 {
        let value = 90.0 + seq as f64;
        match tokio::time::timeout(
            Duration::from_secs(3),
            device.send_until_acked(seq, sim::cgm_payload(seq, now_ms(), value), 1),
        )
        .await
        {
            Ok(Ok(ack)) if sim::is_final(&ack) => {
                acked.insert(seq, value);
            }
            _ => {
                refused += 1;
                // The session may be gone; a new one for the next reading.
                device = match SimulatedDevice::connect(hub.mqtt, "cgm-disk", &secret).await {
                    Ok(device) => device,
                    Err(_) => break,
                };
            }
        }
    }
    assert!(refused > 0, "a full disk must refuse readings");
    let report = hub
        .wait_for("the status to say the disk is full", |r| {
            r.storage.failing.is_some()
        })
        .await;
    let failing = report.storage.failing.clone().unwrap();
    eprintln!("status while full: {failing:?}, {refused} readings refused");
    assert!(report.storage.readings_refused > 0);

    // Space returns: the hub takes readings again.
    std::fs::remove_file(&filler).unwrap();
    let mut device = SimulatedDevice::connect(hub.mqtt, "cgm-disk", &secret)
        .await
        .unwrap();
    for seq in 91..=140 {
        let value = 90.0 + seq as f64;
        let ack = device
            .send_until_acked(seq, sim::cgm_payload(seq, now_ms(), value), 10)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "reading {seq} after space returned: {e}\n{}",
                    hub.log_text()
                )
            });
        assert!(sim::is_final(&ack));
        acked.insert(seq, value);
    }
    let report = hub
        .wait_for("recovered and sealed", |r| {
            r.storage.failing.is_none()
                && r.seal.readings_sealed == r.readings_stored
                && r.readings_stored >= acked.len() as u64
        })
        .await;
    assert!(hub.terminate().await.success());

    // Every acknowledged reading is in the journal, once.
    let (journal, _store) =
        journal::open(&world.config.journal_path(), JournalLimits::default()).unwrap();
    let stored = journal.readings_from(1, 10_000).unwrap();
    let mut seen = BTreeMap::new();
    for (_, reading) in &stored {
        *seen.entry(reading.seq).or_insert(0) += 1;
    }
    for seq in acked.keys() {
        assert_eq!(
            seen.get(seq),
            Some(&1),
            "acknowledged reading {seq} kept once"
        );
    }
    assert!(seen.values().all(|n| *n == 1));
    assert_eq!(report.readings_stored, stored.len() as u64);
}
