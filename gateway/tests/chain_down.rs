//! The chain goes away for a minute (the hub's RPC endpoint drops every
//! connection): the hub goes on admitting and sealing readings, says that
//! anchoring fails, and once the chain is back anchors every waiting batch,
//! in order, each root once.

mod support;

use std::time::{Duration, Instant};

use glyco_contracts::B256;
use glyco_gateway::journal::{self, JournalLimits, Outbox};
use glyco_gateway::seal::records::{AnchorEntry, AnchorState, unhex32};
use glyco_gateway::sim::{self, SimulatedDevice};
use support::rpc_proxy::{Lie, RpcProxy};
use support::{HubWorld, now_ms};

const OUTAGE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_chain_is_down_for_a_minute_readings_are_kept_and_anchors_catch_up_in_order_once()
{
    let mut world = HubWorld::new().await;
    let proxy = RpcProxy::start(world.consortium.devnet.address()).await;
    world.edit_config(|c| {
        c.chain.rpc_url = proxy.url();
        c.seal.max_batch_readings = 20;
        c.seal.max_batch_wait_secs = 1;
        c.seal.anchor_interval_secs = 2;
        c.seal.max_batches_per_anchor = 3;
        c.seal.serve_replicas = false;
        c.limits.max_publishes_per_second = 1000;
    });
    let secret = world.register("cgm-outage", "cgm").await;
    let hub = world.start_hub().await;
    hub.wait_registered("cgm-outage").await;
    let mut device = SimulatedDevice::connect(hub.mqtt, "cgm-outage", &secret)
        .await
        .unwrap();
    let mut send = async |seq: u64| {
        let payload = sim::cgm_payload(seq, now_ms(), 100.0 + (seq % 50) as f64);
        let ack = device.send_until_acked(seq, payload, 5).await.unwrap();
        assert!(sim::is_final(&ack), "reading {seq}: {ack:?}");
    };
    for seq in 1..=60 {
        send(seq).await;
    }
    let before = hub
        .wait_for("the first readings anchored", |r| {
            r.seal.readings_sealed >= 60 && r.seal.batches_anchored == r.seal.batches_sealed
        })
        .await;

    proxy.lie(Lie::Down);
    let down = Instant::now();
    let mut seq = 60;
    while down.elapsed() < OUTAGE {
        seq += 1;
        send(seq).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let total = seq;
    let during = hub
        .wait_for("everything sealed while the chain is down", |r| {
            r.readings_stored >= total && r.seal.readings_sealed == r.readings_stored
        })
        .await;
    assert!(
        during.seal.anchor_error.is_some(),
        "the hub says anchoring fails: {:?}",
        during.seal
    );
    assert!(during.seal.batches_sealed > during.seal.batches_anchored);
    assert_eq!(
        during.seal.anchors, before.seal.anchors,
        "nothing anchored while down"
    );
    eprintln!(
        "{} readings during a {} s outage; {} batches waiting",
        total - 60,
        down.elapsed().as_secs(),
        during.seal.batches_sealed - during.seal.batches_anchored
    );

    proxy.lie(Lie::None);
    let after = hub
        .wait_for_within(Duration::from_secs(90), "anchors caught up", |r| {
            r.seal.batches_anchored == r.seal.batches_sealed && r.seal.anchor_error.is_none()
        })
        .await;
    assert!(after.seal.anchors > before.seal.anchors + 1);
    assert!(hub.terminate().await.success());

    // The chain holds exactly the journal's anchors, in the journal's order.
    let (journal, _store) =
        journal::open(&world.config.journal_path(), JournalLimits::default()).unwrap();
    let anchors: Vec<(u64, AnchorEntry)> = journal.outbox_from(Outbox::Anchors, 1, 10_000).unwrap();
    let client = world.client(glyco_contracts::testkit::accounts::PATIENT);
    let on_chain = client.anchors_of(world.patient(), 0).await.unwrap();
    assert_eq!(on_chain.len(), anchors.len(), "each root anchored once");
    assert_eq!(
        client.anchor_count(world.patient()).await.unwrap(),
        anchors.len() as u64
    );
    let mut next_batch = 1;
    for ((no, entry), record) in anchors.iter().zip(&on_chain) {
        assert!(matches!(entry.state, AnchorState::Anchored { .. }));
        assert_eq!(entry.first_batch, next_batch, "anchor {no} follows on");
        next_batch = entry.last_batch + 1;
        assert_eq!(
            record.batch.root,
            B256::from(unhex32(&entry.root).unwrap()),
            "anchor {no} is the chain's {}th, in order",
            record.seq
        );
        assert_eq!(record.seq, *no);
    }
    assert_eq!(next_batch - 1, after.seal.batches_sealed);
}
