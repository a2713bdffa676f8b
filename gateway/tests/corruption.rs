//! Damaged files after a crash: the hub is SIGKILLed, then a batch blob's
//! data file is corrupted and the journal file gets a torn tail (garbage
//! after its last region). redb will not open such a file: the hub refuses
//! to start, naming the file and the repair; `glyco-hub repair-journal`
//! keeps the sound prefix (every committed reading) and the damaged
//! original. The hub then names the damaged blob in its status and goes on
//! sealing. A journal damaged inside cannot be repaired: the repair says so
//! and leaves the file as it was.

mod support;

use std::io::Write;

use glyco_gateway::seal::records::BatchRecord;
use glyco_gateway::sim::{self, SimulatedDevice};
use support::{HubWorld, now_ms};

/// Runs the hub, which must exit with an error at once; what it said.
async fn refused_start(world: &HubWorld) -> String {
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), world.hub_cli(&["run"]))
        .await
        .expect("the hub exits on a damaged journal");
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_blob_and_torn_journal_are_found_and_committed_readings_kept() {
    let mut world = HubWorld::new().await;
    world.edit_config(|c| {
        // The hub keeps every batch in a data file of its own.
        c.seal.max_batch_readings = 100;
        c.seal.max_batch_wait_secs = 15;
        c.seal.anchor_interval_secs = 1;
        c.seal.serve_replicas = false;
        c.limits.max_publishes_per_second = 1000;
    });
    let secret = world.register("cgm-damage", "cgm").await;
    let hub = world.start_hub().await;
    hub.wait_registered("cgm-damage").await;
    let mut device = SimulatedDevice::connect(hub.mqtt, "cgm-damage", &secret)
        .await
        .unwrap();
    for seq in 1..=250 {
        let ack = device
            .send_until_acked(seq, sim::cgm_payload(seq, now_ms(), 120.0), 5)
            .await
            .unwrap();
        assert!(sim::is_final(&ack));
    }
    device.disconnect().await;
    hub.wait_for("250 readings sealed", |r| r.seal.readings_sealed >= 250)
        .await;
    hub.kill().await;

    // A batch's blob: one byte flipped in its data file.
    let (journal, store) = glyco_gateway::journal::open(
        &world.config.journal_path(),
        glyco_gateway::journal::JournalLimits::default(),
    )
    .unwrap();
    let records: Vec<(u64, BatchRecord)> = journal
        .outbox_from(glyco_gateway::journal::Outbox::Sealed, 1, 100)
        .unwrap();
    drop((journal, store));
    let data_file = |record: &BatchRecord| {
        world
            .config
            .blob_dir()
            .join("data")
            .join(format!("{}.data", record.hash))
    };
    let (damaged_no, damaged) = records
        .iter()
        .find(|(_, r)| data_file(r).is_file())
        .expect("every batch has a data file");
    let mut bytes = std::fs::read(data_file(damaged)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(data_file(damaged), &bytes).unwrap();
    // The journal: a torn tail.
    let journal_path = world.config.journal_path();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&journal_path)
        .unwrap()
        .write_all(&[0xee; 3000])
        .unwrap();

    let said = refused_start(&world).await;
    assert!(
        said.contains("journal.redb") && said.contains("repair-journal"),
        "{said}"
    );
    let repair = world.hub_cli(&["repair-journal"]).await;
    let said = String::from_utf8_lossy(&repair.stdout);
    assert!(
        repair.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&repair.stderr)
    );
    assert!(said.contains("250 readings kept"), "{said}");

    let hub = world.start_hub().await;
    let report = hub
        .wait_for("the damaged blob reported", |r| {
            r.seal.damaged_blob_count > 0
        })
        .await;
    assert_eq!(report.readings_stored, 250, "every committed reading kept");
    assert_eq!(report.seal.damaged_blob_count, 1, "{:?}", report.seal);
    assert_eq!(report.seal.damaged_blobs[0].batch_no, *damaged_no);
    assert_eq!(report.seal.damaged_blobs[0].problem, "corrupt");
    let text = String::from_utf8(world.hub_cli(&["status"]).await.stdout).unwrap();
    assert!(text.contains("DAMAGED"), "{text}");
    // It goes on: new readings are stored and sealed.
    let mut device = SimulatedDevice::connect(hub.mqtt, "cgm-damage", &secret)
        .await
        .unwrap();
    for seq in 251..=260 {
        let ack = device
            .send_until_acked(seq, sim::cgm_payload(seq, now_ms(), 120.0), 5)
            .await
            .unwrap();
        assert!(sim::is_final(&ack));
    }
    hub.wait_for("the new readings sealed", |r| r.seal.readings_sealed >= 260)
        .await;
    assert!(hub.terminate().await.success());

    // Damage inside the journal: the hub refuses to start and says which
    // file; the repair cannot help and leaves the file untouched.
    let mut bytes = std::fs::read(&journal_path).unwrap();
    let len = bytes.len();
    for b in &mut bytes[4096..len.min(4096 * 8)] {
        *b = !*b;
    }
    std::fs::write(&journal_path, &bytes).unwrap();
    let said = refused_start(&world).await;
    assert!(said.contains("journal.redb"), "{said}");
    let repair = world.hub_cli(&["repair-journal"]).await;
    assert!(!repair.status.success());
    assert!(
        String::from_utf8_lossy(&repair.stderr).contains("damage is inside"),
        "{repair:?}"
    );
    assert_eq!(std::fs::read(&journal_path).unwrap(), bytes);
}
