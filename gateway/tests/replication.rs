//! Replicated and verified: the real hub on anvil serves its sealed batches
//! over iroh (loopback, no relays) to a clinic replica (glyco-clinic's
//! library: a real iroh endpoint). A node not enrolled on chain is refused
//! and counted; while the replica is down blobs wait on the hub and are not
//! pruned; when it returns they replicate, and the hub prunes them only
//! after replication and anchoring. Every replicated batch verifies from its
//! bytes to the chain, both with `glyco-clinic verify`'s library call and
//! with `glyco-hub verify` against the running hub; a tampered blob or proof
//! does not, and says which link broke.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use glyco_clinic::replica::{
    HubPeer, Replica, ReplicaError, bind, fetch_blob, load_or_create_node_key,
};
use glyco_clinic::store::ReplicaStore;
use glyco_contracts::B256;
use glyco_contracts::testkit::accounts::{HOSPITAL, HUB, PATIENT};
use glyco_gateway::reading::Measurement;
use glyco_gateway::seal::body::BatchBody;
use glyco_seal::verify::{VerifyError, verify_batch};
use glyco_seal::{PatientKey, SealedBatch};
use support::{HubWorld, free_udp_port};
use tokio_util::sync::CancellationToken;

fn value_of(seq: u64) -> f64 {
    70.0 + (seq % 200) as f64
}

async fn replica(dir: &std::path::Path, hub: &HubPeer) -> Replica {
    let store = ReplicaStore::open(dir).unwrap();
    let key = load_or_create_node_key(&store).unwrap();
    Replica {
        endpoint: bind(key, "127.0.0.1:0".parse().unwrap()).await.unwrap(),
        store,
        hubs: vec![hub.clone()],
        poll: Duration::from_millis(200),
    }
}

async fn stream(hub: &support::Hub, secret: &str, seqs: std::ops::RangeInclusive<u64>) {
    support::stream_cgm(hub, "cgm-replica", secret, seqs, value_of).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_enrolled_nodes_replicate_and_every_replicated_batch_verifies_up_to_the_chain() {
    let mut world = HubWorld::new().await;
    let port = free_udp_port();
    world.edit_config(|c| {
        c.seal.max_batch_readings = 25;
        c.seal.max_batch_wait_secs = 1;
        c.seal.anchor_interval_secs = 1;
        c.seal.max_batches_per_anchor = 4;
        c.seal.iroh_listen = format!("127.0.0.1:{port}").parse().unwrap();
        // Kept an hour: nothing is pruned in the first part.
        c.seal.retention_secs = 3600;
        c.seal.blob_gc_interval_secs = 1;
        c.limits.max_publishes_per_second = 1000;
    });
    let secret = world.register("cgm-replica", "cgm").await;
    let hub = world.start_hub().await;
    hub.wait_registered("cgm-replica").await;
    let report = hub
        .wait_for("the iroh node", |r| r.seal.node_id.is_some())
        .await;
    let peer: HubPeer = format!("{}@127.0.0.1:{port}", report.seal.node_id.unwrap())
        .parse()
        .unwrap();
    stream(&hub, &secret, 1..=200).await;
    let report = hub
        .wait_for(
            "200 readings sealed and anchored, waiting for a replica",
            |r| {
                r.seal.readings_sealed >= 200
                    && r.seal.batches_anchored == r.seal.batches_sealed
                    && r.seal.oldest_unreplicated_age_ms.is_some()
            },
        )
        .await;
    assert_eq!(report.seal.batches_replicated, 0);

    // A node nobody enrolled: refused on both protocols, and counted.
    let outsider_dir = world.dir.path().join("outsider");
    let outsider = replica(&outsider_dir, &peer).await;
    assert!(matches!(
        outsider.follow(&peer).await,
        Err(ReplicaError::Refused)
    ));
    let conn = outsider
        .endpoint
        .connect(
            iroh::EndpointAddr::new(peer.node).with_ip_addr(peer.addr),
            iroh_blobs::ALPN,
        )
        .await
        .unwrap();
    let some_batch = hub_batch_hash(&world, 1).await;
    assert!(matches!(
        fetch_blob(&conn, &some_batch).await,
        Err(ReplicaError::Refused)
    ));
    let report = hub
        .wait_for("two refusals counted", |r| r.seal.node_refusals >= 2)
        .await;
    assert_eq!(
        report.seal.batches_replicated, 0,
        "nothing went to the outsider"
    );
    assert!(
        std::fs::read_dir(outsider_dir.join("blobs"))
            .unwrap()
            .next()
            .is_none()
    );

    // The hospital enrols the replica's node on chain; the replica is down
    // for now: the hub keeps sealing and keeps every blob.
    let replica_dir = world.dir.path().join("replica");
    let clinic = replica(&replica_dir, &peer).await;
    let node = clinic.endpoint.id();
    world
        .client(HOSPITAL)
        .enrol_node(B256::from(*node.as_bytes()))
        .await
        .unwrap();
    clinic.endpoint.close().await;
    stream(&hub, &secret, 201..=300).await;
    let waiting = hub
        .wait_for("300 sealed, none replicated", |r| {
            r.seal.readings_sealed >= 300
        })
        .await;
    assert_eq!(waiting.seal.batches_replicated, 0);
    assert_eq!(waiting.seal.batches_pruned, 0);

    // The replica comes back: everything replicates, with its proofs.
    let clinic = replica(&replica_dir, &peer).await;
    let stop = CancellationToken::new();
    let following = {
        let stop = stop.clone();
        tokio::spawn(async move {
            clinic.run(stop).await;
            clinic.endpoint.close().await;
        })
    };
    let report = hub
        .wait_for("every batch replicated and anchored", |r| {
            r.seal.batches_sealed > 0
                && r.seal.readings_sealed == r.readings_stored
                && r.seal.batches_replicated == r.seal.batches_sealed
                && r.seal.batches_anchored == r.seal.batches_sealed
        })
        .await;
    let batches = report.seal.batches_sealed;
    let store = ReplicaStore::open(&replica_dir).unwrap();
    wait_until("the replica holds every proof", || {
        store
            .cursor(world.consortium.address(HUB))
            .is_ok_and(|c| c.proven_through == batches)
    })
    .await;

    // Every batch verifies from the replica's bytes up to the chain, and
    // opens with the patient's key to the values that were sent.
    let chain = world.client(PATIENT);
    let patient_key = PatientKey::load(&world.config.state_dir.join("patient.umbral")).unwrap();
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    let hub_address = world.consortium.address(HUB);
    for no in 1..=batches {
        let hash = store.batch_hash(hub_address, no).unwrap().unwrap();
        let blob = store.blob(&hash).unwrap();
        let meta = store.meta(&hash).unwrap().unwrap();
        let proof = meta.anchor.as_ref().map(|a| a.proof.clone());
        let verified = verify_batch(&blob, Some(&hash), proof.as_ref(), &chain)
            .await
            .unwrap_or_else(|e| panic!("batch {no}: {e}"));
        assert_eq!(verified.header.batch_no, no);
        let batch = SealedBatch::from_bytes(&blob).unwrap();
        let body = BatchBody::from_bytes(&batch.open(patient_key.secret()).unwrap()).unwrap();
        for (_, reading) in &body.readings {
            let Measurement::CgmGlucose { mg_dl } = reading.measurement else {
                panic!("{reading:?}");
            };
            assert_eq!(mg_dl, value_of(reading.seq));
            *seen.entry(reading.seq).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), 300);
    assert!(seen.values().all(|n| *n == 1), "each reading in one batch");

    // The hub verifies too, while it runs (its blob store is its own).
    let out = world.hub_cli(&["verify", "--batch", "2"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for link in [
        "blob hash",
        "hub signature",
        "inclusion proof",
        "root on chain",
        "hub authorised",
    ] {
        assert!(text.contains(link), "{text}");
    }
    let reading_out = world.hub_cli(&["verify", "--reading", "150"]).await;
    assert!(reading_out.status.success(), "{reading_out:?}");

    // Tampering is caught, and the broken link is named.
    let hash = store.batch_hash(hub_address, 1).unwrap().unwrap();
    let mut blob = store.blob(&hash).unwrap();
    let meta = store.meta(&hash).unwrap().unwrap();
    let proof = meta.anchor.unwrap().proof;
    let last = blob.len() - 70;
    blob[last] ^= 0x01;
    assert!(matches!(
        verify_batch(&blob, Some(&hash), Some(&proof), &chain).await,
        Err(VerifyError::HashMismatch { .. })
    ));
    let mut wrong_proof = proof.clone();
    wrong_proof.index ^= 1;
    let intact = store.blob(&hash).unwrap();
    assert!(matches!(
        verify_batch(&intact, Some(&hash), Some(&wrong_proof), &chain).await,
        Err(VerifyError::RootNotOnChain { .. } | VerifyError::Proof(_))
    ));
    assert!(matches!(
        verify_batch(&blob, None, Some(&proof), &chain).await,
        Err(VerifyError::Format(_)
            | VerifyError::SignedByOther { .. }
            | VerifyError::RootNotOnChain { .. })
    ));

    // With retention 0 the hub prunes what is replicated and anchored.
    assert!(hub.terminate().await.success());
    world.edit_config(|c| c.seal.retention_secs = 0);
    let hub = world.start_hub().await;
    let report = hub
        .wait_for("every batch pruned", |r| {
            r.seal.batches_pruned == batches && r.seal.batches_replicated == batches
        })
        .await;
    assert_eq!(report.seal.batches_sealed, batches);
    let pruned = world.hub_cli(&["verify", "--batch", "1"]).await;
    assert!(!pruned.status.success());
    let said = String::from_utf8_lossy(&pruned.stderr);
    assert!(said.contains("pruned"), "{said}");
    stop.cancel();
    following.await.unwrap();

    // The hospital retires the replica's node: within the gate's cache
    // time the hub refuses it too.
    let clinic = replica(&replica_dir, &peer).await;
    world
        .client(HOSPITAL)
        .retire_node(B256::from(*clinic.endpoint.id().as_bytes()))
        .await
        .unwrap();
    let before = hub.status().await.unwrap().seal.node_refusals;
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert!(matches!(
        clinic.follow(&peer).await,
        Err(ReplicaError::Refused)
    ));
    hub.wait_for("the retired node's refusal counted", |r| {
        r.seal.node_refusals > before
    })
    .await;
    clinic.endpoint.close().await;
    assert!(hub.terminate().await.success());

    // Its iroh port taken by someone else, the hub still takes readings
    // and says it is not serving replicas.
    let squatter = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
    let hub = world.start_hub().await;
    let report = hub
        .wait_for("the serving failure in status", |r| {
            r.seal.serve_error.is_some()
        })
        .await;
    assert!(report.seal.node_listen.is_none(), "{:?}", report.seal);
    hub.wait_registered("cgm-replica").await;
    stream(&hub, &secret, 301..=305).await;
    hub.wait_for("the new readings stored", |r| r.readings_stored >= 305)
        .await;
    drop(squatter);
    assert!(hub.terminate().await.success());
}

/// The hash of the hub's batch `no`, from the hub's own verify output.
async fn hub_batch_hash(world: &HubWorld, no: u64) -> glyco_seal::BlobHash {
    let out = world.hub_cli(&["verify", "--batch", &no.to_string()]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .split("BLAKE3 ")
        .nth(1)
        .and_then(|rest| rest.get(..64))
        .unwrap_or_else(|| panic!("no hash in {text}{}", String::from_utf8_lossy(&out.stderr)));
    glyco_seal::hexcode::unhex32(hex).unwrap()
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
