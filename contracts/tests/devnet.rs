//! The dev chain keeps its state across restarts, clean or not.

use std::time::Duration;

use alloy::providers::{Provider, ProviderBuilder};

use glyco_contracts::devnet::{Devnet, DevnetConfig};
use glyco_contracts::testkit::{Consortium, accounts::*, ephemeral_devnet};
use glyco_contracts::{EntityKind, GlycoClient};

fn persistent(dir: &std::path::Path) -> DevnetConfig {
    DevnetConfig {
        state_file: Some(dir.join("chain/state.json")),
        state_interval_secs: 1,
        block_time_secs: 1,
        chain_id: 4242,
        ..ephemeral_devnet()
    }
}

#[tokio::test]
async fn a_clean_restart_keeps_deployments_and_registrations() {
    let dir = tempfile::tempdir().unwrap();
    let consortium = Consortium::start_with(persistent(dir.path()))
        .await
        .unwrap();
    let admin = consortium.client(ADMIN);
    consortium
        .enrol_entity(HOSPITAL, EntityKind::Hospital, "St Luke's")
        .await
        .unwrap();
    let deployment = consortium.deployment.clone();
    let hospital = consortium.address(HOSPITAL);
    let height = admin.block_number().await.unwrap();
    consortium.devnet.stop().await.unwrap();

    let devnet = Devnet::start(persistent(dir.path())).await.unwrap();
    let client = GlycoClient::read_only(devnet.rpc_url(), deployment);
    assert!(client.block_number().await.unwrap() >= height);
    assert!(client.is_active_hospital(hospital).await.unwrap());
    devnet.stop().await.unwrap();
}

#[tokio::test]
async fn a_crash_loses_at_most_the_last_state_interval() {
    let dir = tempfile::tempdir().unwrap();
    let consortium = Consortium::start_with(persistent(dir.path()))
        .await
        .unwrap();
    consortium
        .enrol_entity(CLINIC, EntityKind::Clinic, "Riverside")
        .await
        .unwrap();
    let deployment = consortium.deployment.clone();
    let clinic = consortium.address(CLINIC);
    // Let anvil's periodic dump (every second) pick up the enrolment, then SIGKILL it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    consortium.devnet.kill().await.unwrap();

    let devnet = Devnet::start(persistent(dir.path())).await.unwrap();
    let client = GlycoClient::read_only(devnet.rpc_url(), deployment);
    assert_eq!(
        client.role_of(clinic).await.unwrap(),
        Some(glyco_contracts::Role::Entity)
    );
    devnet.stop().await.unwrap();
}

#[tokio::test]
async fn chain_id_and_block_time_come_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = Devnet::start(persistent(dir.path())).await.unwrap();
    glyco_contracts::install_tls_provider();
    let provider = ProviderBuilder::new().connect_http(devnet.rpc_url());
    assert_eq!(provider.get_chain_id().await.unwrap(), 4242);
    let first = provider.get_block_number().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = provider.get_block_number().await.unwrap();
    assert!(
        later >= first + 2,
        "blocks every second: {first} -> {later}"
    );
    devnet.stop().await.unwrap();
}

#[tokio::test]
async fn a_port_in_use_is_reported_with_anvils_own_words() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let err = Devnet::start(DevnetConfig {
        port,
        ..ephemeral_devnet()
    })
    .await
    .unwrap_err();
    assert!(
        matches!(err, glyco_contracts::devnet::DevnetError::EarlyExit { .. }),
        "{err}"
    );
}
