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
        let client = if i % 2 == 0 {
            hub.clone()
        } else {
            world.client(HUB)
        };
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
    assert!(
        hub.is_registered(world.addr(PATIENT), device)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_read_only_client_cannot_send_or_sign() {
    let world = World::enrolled().await;
    let reader = glyco_contracts::GlycoClient::read_only(
        world.consortium.devnet.rpc_url(),
        world.consortium.deployment.clone(),
    );
    let err = reader
        .add_device(
            world.addr(PATIENT),
            world.device("name:x"),
            DeviceKind::Other,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ChainError::ReadOnly { .. }), "{err:?}");
    let err = reader
        .sign_hub_consent(world.addr(PATIENT), glyco_contracts::UnixSeconds::now())
        .await
        .unwrap_err();
    assert!(matches!(err, ChainError::ReadOnly { .. }), "{err:?}");
}

/// A hub key is made on the device and never funded: on the consortium's
/// free-gas network (and the dev chain) it still transacts, because the
/// client bids zero.
#[tokio::test]
async fn a_key_without_ether_transacts_on_a_free_gas_chain_only() {
    use alloy::signers::local::PrivateKeySigner;
    use glyco_contracts::testkit::{Consortium, ephemeral_devnet};
    use glyco_contracts::{AnchorOutcome, B256, BatchAnchor, DataKinds, EntityKind, GlycoClient};

    for free_gas in [true, false] {
        let c = Consortium::start_with(glyco_contracts::devnet::DevnetConfig {
            free_gas,
            ..ephemeral_devnet()
        })
        .await
        .unwrap();
        c.enrol_entity(HOSPITAL, EntityKind::Hospital, "St Luke's")
            .await
            .unwrap();
        c.enrol_physician(PHYSICIAN, HOSPITAL).await.unwrap();
        c.register_patient(PHYSICIAN, PATIENT).await.unwrap();
        let fresh = PrivateKeySigner::random();
        let hub = GlycoClient::new(c.devnet.rpc_url(), fresh.clone(), c.deployment.clone());
        let deadline = glyco_contracts::UnixSeconds::now().plus(Duration::from_secs(600));
        let consent = hub
            .sign_hub_consent(c.address(PATIENT), deadline)
            .await
            .unwrap();
        c.client(PATIENT)
            .authorise_hub(&consent, false)
            .await
            .unwrap();
        let balance = hub.provider().get_balance(fresh.address()).await.unwrap();
        assert!(balance.is_zero());
        let batch = BatchAnchor {
            root: B256::repeat_byte(0xf1),
            window_start: 1_700_000_000,
            window_end: 1_700_003_599,
            count: 1,
            kinds: DataKinds::GLUCOSE,
        };
        let result = hub.anchor(c.address(PATIENT), batch).await;
        if free_gas {
            assert!(
                matches!(result, Ok(AnchorOutcome::Anchored(_))),
                "{result:?}"
            );
        } else {
            let err = result.unwrap_err();
            assert!(matches!(err, ChainError::Rpc { .. }), "{err:?}");
        }
    }
}
