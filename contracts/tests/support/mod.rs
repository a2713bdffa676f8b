//! Shared setup for the contract tests: a fresh anvil node per test, the
//! contracts deployed, and the consortium's usual parties enrolled — each
//! with their own consent (offer, then accept).
#![allow(dead_code)]

use alloy::eips::BlockNumberOrTag;
use alloy::providers::Provider;
use glyco_contracts::testkit::{Consortium, accounts::*};
use glyco_contracts::{
    Address, B256, BatchAnchor, DataKinds, DeviceId, DeviceIdentity, EntityKind, GlycoClient,
};

pub use glyco_contracts::testkit::accounts;

/// Asserts that a call was refused by the contract with the given error.
#[macro_export]
macro_rules! assert_refused {
    ($result:expr, $pattern:pat) => {
        match $result {
            Err(glyco_contracts::ChainError::Refused { refusal, .. }) => {
                assert!(
                    matches!(refusal, $pattern),
                    "unexpected refusal: {refusal:?}"
                )
            }
            other => panic!(
                "expected a refusal matching {}, got {other:?}",
                stringify!($pattern)
            ),
        }
    };
}

pub struct World {
    pub consortium: Consortium,
}

impl World {
    /// Contracts deployed, nobody enrolled.
    pub async fn empty() -> Self {
        Self {
            consortium: Consortium::start()
                .await
                .expect("dev chain starts and deploys"),
        }
    }

    /// St Luke's (a hospital, with a proxy) and Riverside (a clinic), a
    /// physician at each, two patients registered (one by each), and the
    /// first patient's hub authorised with the power to manage devices.
    pub async fn enrolled() -> Self {
        let world = Self::empty().await;
        let c = &world.consortium;
        c.enrol_entity(HOSPITAL, EntityKind::Hospital, "St Luke's")
            .await
            .unwrap();
        c.enrol_entity(CLINIC, EntityKind::Clinic, "Riverside")
            .await
            .unwrap();
        c.enrol_physician(PHYSICIAN, HOSPITAL).await.unwrap();
        c.enrol_physician(LOCUM, CLINIC).await.unwrap();
        c.enrol_proxy(HOSPITAL, PROXY).await.unwrap();
        c.register_patient(PHYSICIAN, PATIENT).await.unwrap();
        c.register_patient(LOCUM, SECOND_PATIENT).await.unwrap();
        c.authorise_hub(PATIENT, HUB, true).await.unwrap();
        world
    }

    /// [`World::enrolled`] plus an emergency service with a paramedic.
    pub async fn with_emergency_service() -> Self {
        let world = Self::enrolled().await;
        let c = &world.consortium;
        c.enrol_entity(
            EMERGENCY_SERVICE,
            EntityKind::EmergencyService,
            "City Ambulance",
        )
        .await
        .unwrap();
        c.enrol_physician(PARAMEDIC, EMERGENCY_SERVICE)
            .await
            .unwrap();
        world
    }

    pub fn client(&self, index: u32) -> GlycoClient {
        self.consortium.client(index)
    }

    pub fn addr(&self, index: u32) -> Address {
        self.consortium.address(index)
    }

    /// The on-chain id of a device identity (`ble:..` or `name:..`).
    pub fn device(&self, identity: &str) -> DeviceId {
        let identity: DeviceIdentity = identity.parse().expect("valid identity");
        self.consortium.device_id(&identity)
    }

    /// The hub anchors a one-hour glucose batch for the patient; returns its root.
    pub async fn anchored_glucose_batch(&self, root: u8, start: u64) -> B256 {
        let batch = BatchAnchor {
            root: B256::repeat_byte(root),
            window_start: start,
            window_end: start + 3599,
            count: 60,
            kinds: DataKinds::GLUCOSE,
        };
        self.client(HUB)
            .anchor(self.addr(PATIENT), batch)
            .await
            .unwrap();
        batch.root
    }

    /// Moves the chain's clock forward and mines a block.
    pub async fn advance_time(&self, seconds: u64) {
        let client = self.client(ADMIN);
        let provider = client.provider();
        let _: serde_json::Value = provider
            .raw_request("evm_increaseTime".into(), (seconds,))
            .await
            .unwrap();
        let _: serde_json::Value = provider.raw_request("evm_mine".into(), ()).await.unwrap();
    }

    pub async fn chain_time(&self) -> u64 {
        let client = self.client(ADMIN);
        let block = client
            .provider()
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .unwrap()
            .expect("latest block exists");
        block.header.timestamp
    }
}
