//! The client: one sender per key, late receipts reported with their hash,
//! explicit units.

mod support;

use std::time::Duration;

use alloy::providers::Provider;
use glyco_contracts::{ChainError, DeviceKind};
use support::{World, accounts::*};

/// Exploit (v1): nonces were read per transaction without a lock while the
/// client is `Clone`; two concurrent sends from one key collided.
#[tokio::test]
async fn concurrent_sends_from_one_key_all_land() {
    let world = World::enrolled().await;
    let patient = world.addr(PATIENT);
    let hub = world.client(HUB);
    let mut tasks = Vec::new();
    for i in 0..8 {
        // Clones and fresh clients of the same key share one sender.
        let client = if i % 2 == 0 { hub.clone() } else { world.client(HUB) };
        let device = world.device(&format!("name:sensor-{i}"));
        tasks.push(tokio::spawn(async move {
            client.add_device(patient, device, DeviceKind::Other).await
        }));
    }
    for task in tasks {
        task.await.unwrap().expect("every concurrent send lands");
    }
    assert_eq!(hub.devices_of(patient).await.unwrap().len(), 8);
}

#[tokio::test]
async fn a_late_receipt_is_reported_with_its_hash_and_can_be_waited_for() {
    let world = World::enrolled().await;
    let admin = world.client(ADMIN);
    let provider = admin.provider();
    let _: serde_json::Value = provider
        .raw_request("evm_setAutomine".into(), (false,))
        .await
        .unwrap();
    let hub = world
        .client(HUB)
        .with_receipt_timeout(Duration::from_millis(300));
    let device = world.device("name:late");
    let err = hub
        .add_device(world.addr(PATIENT), device, DeviceKind::Other)
        .await
        .unwrap_err();
    let ChainError::Pending { hash, .. } = err else {
        panic!("expected a pending transaction, got {err:?}")
    };
    assert_eq!(hub.receipt_of("addDevice", hash).await.unwrap(), None);
    let _: serde_json::Value = provider.raw_request("evm_mine".into(), ()).await.unwrap();
    let landed = hub.receipt_of("addDevice", hash).await.unwrap().unwrap();
    assert_eq!(landed.hash, hash);
    assert!(hub.is_registered(world.addr(PATIENT), device).await.unwrap());
}

#[tokio::test]
async fn a_read_only_client_cannot_send_or_sign() {
    let world = World::enrolled().await;
    let reader = glyco_contracts::GlycoClient::read_only(
        world.consortium.devnet.rpc_url(),
        world.consortium.deployment.clone(),
    );
    let err = reader
        .add_device(world.addr(PATIENT), world.device("name:x"), DeviceKind::Other)
        .await
        .unwrap_err();
    assert!(matches!(err, ChainError::ReadOnly { .. }), "{err:?}");
    let err = reader
        .sign_hub_consent(world.addr(PATIENT), glyco_contracts::UnixSeconds::now())
        .await
        .unwrap_err();
    assert!(matches!(err, ChainError::ReadOnly { .. }), "{err:?}");
}
