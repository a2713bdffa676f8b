//! Sealed, stored, anchored: the real hub on anvil, a device streaming QoS 1
//! readings, the hub SIGKILLed at random moments. Afterwards every
//! acknowledged reading is in exactly one sealed batch, which is in the blob
//! store under its BLAKE3 hash, signed by the hub, opens with the patient's
//! umbral key to the value that was sent, sits under a Merkle root
//! anchored on chain for the patient, and was replicated to a clinic
//! replica (which follows the hub over iroh through every kill).

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use glyco_clinic::replica::{HubPeer, Replica, bind, load_or_create_node_key};
use glyco_clinic::store::ReplicaStore;
use glyco_contracts::B256;
use glyco_gateway::journal::{self, JournalLimits, Outbox};
use glyco_gateway::reading::Measurement;
use glyco_gateway::seal::blobs::BlobStore;
use glyco_gateway::seal::body::BatchBody;
use glyco_gateway::seal::records::{AnchorEntry, AnchorState, BatchRecord, unhex32};
use glyco_gateway::sim::{self, SimulatedDevice};
use glyco_seal::{BlobCid, PatientKey, SealedBatch};
use support::{HubWorld, now_ms};
use tokio_util::sync::CancellationToken;

const KILLS: usize = 20;

fn value_of(seq: u64) -> f64 {
    60.0 + (seq % 250) as f64
}

/// A small deterministic generator (the seed is printed for a rerun).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// Streams readings from `next` on until the hub dies, noting each ack.
async fn stream_until_killed(
    mqtt: std::net::SocketAddr,
    secret: String,
    next: u64,
    acked: std::sync::Arc<AtomicU64>,
) {
    let Ok(mut device) = SimulatedDevice::connect(mqtt, "cgm-seal", &secret).await else {
        return;
    };
    for seq in next.. {
        let payload = sim::cgm_payload(seq, now_ms(), value_of(seq));
        match device.send_until_acked(seq, payload, 1).await {
            Ok(_) => acked.store(seq, Ordering::SeqCst),
            Err(_) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_reading_is_sealed_stored_replicated_and_anchored_exactly_once_across_sigkills()
 {
    let mut world = HubWorld::new().await;
    let port = support::free_udp_port();
    world.edit_config(|c| {
        c.seal.iroh_listen = format!("127.0.0.1:{port}").parse().unwrap();
        c.seal.max_batch_readings = 40;
        c.seal.max_batch_wait_secs = 1;
        c.seal.anchor_interval_secs = 1;
        c.seal.max_batches_per_anchor = 8;
        // The device streams as fast as acks come back.
        c.limits.max_publishes_per_second = 1000;
    });
    let secret = world.register("cgm-seal", "cgm").await;
    let seed = now_ms() as u64;
    eprintln!("kill schedule seed {seed}");
    let mut rng = Lcg(seed);

    // A clinic replica, enrolled by the hospital, follows the hub throughout.
    let replica_dir = world.dir.path().join("replica");
    let store = ReplicaStore::open(&replica_dir).unwrap();
    let node_key = load_or_create_node_key(&store).unwrap();
    world
        .client(glyco_contracts::testkit::accounts::HOSPITAL)
        .enrol_node(B256::from(*node_key.public().as_bytes()))
        .await
        .unwrap();
    let node_id = {
        let hub = world.start_hub().await;
        let report = hub
            .wait_for("the iroh node", |r| r.seal.node_id.is_some())
            .await;
        hub.kill().await;
        report.seal.node_id.unwrap()
    };
    let peer: HubPeer = format!("{node_id}@127.0.0.1:{port}").parse().unwrap();
    let replica = Replica {
        endpoint: bind(node_key, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
        store: store.clone(),
        hubs: vec![peer],
        poll: Duration::from_millis(200),
    };
    let stop_replica = CancellationToken::new();
    let following = {
        let stop = stop_replica.clone();
        tokio::spawn(async move {
            replica.run(stop).await;
            replica.endpoint.close().await;
        })
    };

    let acked = std::sync::Arc::new(AtomicU64::new(0));
    for _ in 0..KILLS {
        let hub = world.start_hub().await;
        hub.wait_registered("cgm-seal").await;
        let next = acked.load(Ordering::SeqCst) + 1;
        let streaming = tokio::spawn(stream_until_killed(
            hub.mqtt,
            secret.clone(),
            next,
            acked.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(150 + rng.next(1200))).await;
        hub.kill().await;
        let _ = streaming.await;
    }
    let next = acked.load(Ordering::SeqCst) + 1;
    // One clean run resends the last few (a reading in flight at a kill may
    // be stored but unacknowledged) and streams on to 2,000 readings.
    let hub = world.start_hub().await;
    hub.wait_registered("cgm-seal").await;
    let mut device = SimulatedDevice::connect(hub.mqtt, "cgm-seal", &secret)
        .await
        .unwrap();
    let total = 2_000u64.max(next + 100);
    for seq in next.saturating_sub(5).max(1)..=total {
        let ack = device
            .send_until_acked(seq, sim::cgm_payload(seq, now_ms(), value_of(seq)), 5)
            .await
            .unwrap_or_else(|e| {
                let log = hub.log_text();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                panic!("reading {seq}: {e}; hub log ends:\n{}", tail.join("\n"))
            });
        assert!(sim::is_final(&ack), "{ack:?}");
    }
    device.disconnect().await;
    let report = hub
        .wait_for("every reading sealed, anchored and replicated", |r| {
            r.readings_stored >= total
                && r.seal.readings_sealed == r.readings_stored
                && r.seal.batches_anchored == r.seal.batches_sealed
                && r.seal.batches_replicated == r.seal.batches_sealed
        })
        .await;
    let sealed = report.seal.batches_sealed;
    let hub_address = world
        .consortium
        .address(glyco_contracts::testkit::accounts::HUB);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while store.cursor(hub_address).unwrap().proven_through < sealed {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replica's proofs lag"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_replica.cancel();
    following.await.unwrap();
    assert!(report.seal.pre_key_published, "{:?}", report.seal);
    assert!(hub.terminate().await.success());

    // Read everything back as a verifier would, from the hub's state.
    let state = &world.config.state_dir;
    let (journal, _store) =
        journal::open(&world.config.journal_path(), JournalLimits::default()).unwrap();
    let blobs = BlobStore::open(&world.config.blob_dir(), None)
        .await
        .unwrap();
    let patient_key = PatientKey::load(&state.join("patient.umbral")).unwrap();
    let client = world.client(glyco_contracts::testkit::accounts::PATIENT);
    assert_eq!(
        client.patient_pre_key(world.patient()).await.unwrap(),
        Some(patient_key.public_bytes())
    );

    let batches: Vec<(u64, BatchRecord)> = journal.outbox_from(Outbox::Sealed, 1, 100_000).unwrap();
    let anchors: BTreeMap<u64, AnchorEntry> = journal
        .outbox_from(Outbox::Anchors, 1, 100_000)
        .unwrap()
        .into_iter()
        .collect();
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    let mut expected_journal_seq = 1;
    let mut findings = 0u64;
    for (no, record) in &batches {
        assert_eq!(
            record.first_journal_seq, expected_journal_seq,
            "batch {no}: no gap, no overlap"
        );
        expected_journal_seq = record.last_journal_seq + 1;
        let hash = unhex32(&record.hash).unwrap();
        let blob = blobs.get(&hash).await.unwrap();
        assert_eq!(*blake3::hash(&blob).as_bytes(), hash);
        // The replica holds the same bytes under the same number, with the
        // same proof.
        assert_eq!(store.batch_hash(hub_address, *no).unwrap(), Some(hash));
        assert_eq!(store.blob(&hash).unwrap(), blob);
        let meta = store.meta(&hash).unwrap().unwrap();
        assert_eq!(
            meta.anchor.map(|a| a.proof),
            record.anchor.as_ref().map(|a| a.proof.clone())
        );
        assert!(BlobCid(hash).to_string().starts_with("bafkr4"));
        let batch = SealedBatch::from_bytes(&blob).unwrap();
        assert_eq!(batch.signer().unwrap(), hub_address);
        assert_eq!(batch.header.batch_no, *no);
        assert_eq!(batch.header.patient, world.patient());
        let body = BatchBody::from_bytes(&batch.open(patient_key.secret()).unwrap()).unwrap();
        assert_eq!(body.readings.len() as u32, record.count);
        findings += body.findings.len() as u64;
        assert_eq!(
            findings, record.findings_through,
            "batch {no}: each finding once"
        );
        for (_, reading) in &body.readings {
            let Measurement::CgmGlucose { mg_dl } = reading.measurement else {
                panic!("{reading:?}");
            };
            assert_eq!(mg_dl, value_of(reading.seq), "reading {}", reading.seq);
            *seen.entry(reading.seq).or_default() += 1;
        }
        // Its proof leads to its anchor's root, and that root is on chain.
        let anchor_ref = record.anchor.as_ref().expect("anchored");
        let anchor = &anchors[&anchor_ref.anchor_no];
        assert!(matches!(anchor.state, AnchorState::Anchored { .. }));
        let root = anchor_ref.proof.root_from(&hash).unwrap();
        assert_eq!(root, unhex32(&anchor.root).unwrap());
        let on_chain = client
            .anchor_of(world.patient(), B256::from(root))
            .await
            .unwrap()
            .expect("root anchored on chain");
        assert_eq!(on_chain.submitter, hub_address);
    }
    assert_eq!(
        expected_journal_seq - 1,
        journal.last_journal_seq().unwrap()
    );
    for seq in 1..=total {
        assert_eq!(
            seen.get(&seq),
            Some(&1),
            "reading {seq} is in exactly one batch"
        );
    }
    // Values below 70 mg/dL recur in the stream: their findings are sealed.
    assert!(findings > 0, "the hub's findings ride in the batches");
    // Anchors cover consecutive batches, each once.
    let mut next_batch = 1;
    for anchor in anchors.values() {
        assert_eq!(anchor.first_batch, next_batch);
        next_batch = anchor.last_batch + 1;
    }
    assert_eq!(next_batch - 1, batches.len() as u64);
    eprintln!(
        "{} readings, {} batches, {} anchors, {KILLS} SIGKILLs",
        seen.len(),
        batches.len(),
        anchors.len()
    );
    blobs.shutdown().await;
}
