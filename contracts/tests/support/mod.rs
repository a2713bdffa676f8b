//! Shared setup for the contract tests: a fresh anvil node per test, the
//! contracts deployed, and the consortium's usual parties enrolled.
#![allow(dead_code)]

use alloy::eips::BlockNumberOrTag;
use alloy::providers::Provider;
use glyco_contracts::testkit::{Consortium, accounts::*};
use glyco_contracts::{Address, EntityKind, GlycoClient};

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

    /// Hospital and clinic enrolled, a physician at each, two patients
    /// registered, and the first patient's hub authorised.
    pub async fn enrolled() -> Self {
        let world = Self::empty().await;
        let admin = world.client(ADMIN);
        admin
            .enrol_entity(world.addr(HOSPITAL), EntityKind::Hospital, "St Luke's")
            .await
            .unwrap();
        admin
            .enrol_entity(world.addr(CLINIC), EntityKind::Clinic, "Riverside")
            .await
            .unwrap();
        admin
            .enrol_physician(world.addr(PHYSICIAN), world.addr(HOSPITAL))
            .await
            .unwrap();
        admin
            .enrol_physician(world.addr(LOCUM), world.addr(CLINIC))
            .await
            .unwrap();
        world
            .client(PHYSICIAN)
            .register_patient(world.addr(PATIENT))
            .await
            .unwrap();
        world
            .client(LOCUM)
            .register_patient(world.addr(SECOND_PATIENT))
            .await
            .unwrap();
        world
            .client(PATIENT)
            .authorise_hub(world.addr(HUB))
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
