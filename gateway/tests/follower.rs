//! The chain follower against a frozen node, a lying node, a node whose logs
//! do not decode, and a reorganisation: the real hub process, a real anvil,
//! and a JSON-RPC proxy that lies on demand.

mod support;

use std::time::Duration;

use glyco_contracts::{DeviceIdentity, DeviceKind};
use glyco_gateway::registry::Standing;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::rpc_proxy::{Lie, RpcProxy};
use support::{Hub, HubWorld};

fn standing(hub: &Hub, report: &glyco_gateway::status::StatusReport, name: &str) -> Standing {
    let id = hub.ids.id_of(&DeviceIdentity::name(name).unwrap());
    report
        .devices
        .iter()
        .find(|d| d.device_id == id)
        .map_or(Standing::Unknown, |d| d.standing)
}

/// v1: with the node hung, status said "reachable" for minutes, and SIGTERM
/// waited for the node.
#[tokio::test]
async fn a_frozen_node_is_reported_unreachable_and_does_not_hold_up_shutdown() {
    let mut world = HubWorld::new().await;
    world.edit_config(|c| c.chain.step_timeout_secs = 2);
    let hub = world.start_hub().await;
    hub.wait_for("a first sync", |r| {
        r.chain.reachable && r.chain.synced_block.is_some()
    })
    .await;
    let anvil = Pid::from_raw(world.consortium.devnet.pid().unwrap() as i32);
    kill(anvil, Signal::SIGSTOP).unwrap();
    let frozen = hub
        .wait_for("the frozen node to show", |r| !r.chain.reachable)
        .await;
    assert!(frozen.chain.last_error.is_some());
    let started = std::time::Instant::now();
    let status = hub.terminate().await;
    kill(anvil, Signal::SIGCONT).unwrap();
    assert!(status.success(), "{status:?}");
    // Not a speed figure: the hub did not wait for the frozen node's 10-second RPC timeout.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

/// v1: one bogus head made the hub skip thousands of blocks of changes.
#[tokio::test]
async fn a_node_claiming_a_head_it_does_not_have_cannot_move_the_checkpoint() {
    let mut world = HubWorld::new().await;
    let proxy = RpcProxy::start(world.consortium.devnet.address()).await;
    let url = proxy.url();
    world.edit_config(|c| c.chain.rpc_url = url);
    world.register("cgm-1", "cgm").await;
    let hub = world.start_hub().await;
    hub.wait_registered("cgm-1").await;

    proxy.lie(Lie::HeadAhead);
    world.remove_on_chain("cgm-1").await;
    let report = hub
        .wait_for("the missing block to show", |r| {
            r.chain
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("has no block"))
        })
        .await;
    let real_head = world.client(0).block_number().await.unwrap();
    assert!(report.chain.synced_block.unwrap() <= real_head);
    assert_eq!(standing(&hub, &report, "cgm-1"), Standing::Registered);

    proxy.lie(Lie::None);
    hub.wait_for("the removal, once the node tells the truth", |r| {
        standing(&hub, r, "cgm-1") == Standing::Removed
    })
    .await;
}

/// v1: an empty eth_getLogs answer for a few seconds made the hub miss a
/// removal for good.
#[tokio::test]
async fn one_node_answering_no_logs_cannot_make_the_hub_miss_a_removal() {
    let mut world = HubWorld::new().await;
    let proxy = RpcProxy::start(world.consortium.devnet.address()).await;
    let (url, direct) = (proxy.url(), world.consortium.devnet.rpc_url().to_string());
    world.edit_config(|c| {
        c.chain.rpc_url = url;
        c.chain.extra_rpc_urls = vec![direct];
    });
    world.register("cgm-2", "cgm").await;
    let hub = world.start_hub().await;
    hub.wait_registered("cgm-2").await;

    proxy.lie(Lie::NoLogs);
    world.remove_on_chain("cgm-2").await;
    let report = hub
        .wait_for("the disagreement to show", |r| {
            r.chain
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("disagree"))
        })
        .await;
    assert_eq!(report.chain.endpoints, 2);
    assert_eq!(standing(&hub, &report, "cgm-2"), Standing::Registered);

    proxy.lie(Lie::None);
    hub.wait_for("the removal, once the nodes agree", |r| {
        standing(&hub, r, "cgm-2") == Standing::Removed
    })
    .await;
}

/// A log of ours that does not decode halts the follower; nothing is skipped.
#[tokio::test]
async fn a_log_that_does_not_decode_halts_the_follower_without_skipping_it() {
    let mut world = HubWorld::new().await;
    let proxy = RpcProxy::start(world.consortium.devnet.address()).await;
    let url = proxy.url();
    world.edit_config(|c| c.chain.rpc_url = url);
    world.register("cgm-3", "cgm").await;
    let hub = world.start_hub().await;
    hub.wait_registered("cgm-3").await;

    proxy.lie(Lie::GarbledLogs);
    world
        .add_on_chain(&DeviceIdentity::name("cgm-4").unwrap(), DeviceKind::Cgm)
        .await;
    let report = hub
        .wait_for("the halt to show", |r| r.chain.halted.is_some())
        .await;
    assert_eq!(standing(&hub, &report, "cgm-4"), Standing::Unknown);
    assert!(hub.status().await.unwrap().render().contains("HALTED"));

    proxy.lie(Lie::None);
    hub.wait_for("the new device, once the logs decode", |r| {
        r.chain.halted.is_none() && standing(&hub, r, "cgm-4") == Standing::Registered
    })
    .await;
}

/// A reorganisation under the checkpoint: the mirror is rebuilt, and a
/// device whose registration was reorganised away is no longer admitted.
#[tokio::test]
async fn a_reorganisation_under_the_checkpoint_rebuilds_the_mirror() {
    let world = HubWorld::new().await;
    world.register("cgm-5", "cgm").await;
    let hub = world.start_hub().await;
    hub.wait_registered("cgm-5").await;
    world
        .add_on_chain(&DeviceIdentity::name("cgm-6").unwrap(), DeviceKind::Cgm)
        .await;
    hub.wait_registered("cgm-6").await;

    // Replace the last block (cgm-6's registration) with an empty one.
    world
        .client(0)
        .raw_request("anvil_reorg", serde_json::json!([1, []]))
        .await
        .unwrap();
    hub.wait_for("the rebuilt mirror without cgm-6", |r| {
        standing(&hub, r, "cgm-6") == Standing::Unknown
            && standing(&hub, r, "cgm-5") == Standing::Registered
    })
    .await;
    assert!(hub.log_text().contains("reorganised"));
}
