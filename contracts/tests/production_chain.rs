//! The production network's definition (contracts/chain/besu) stays coherent
//! with what the docs promise: QBFT, four validators, its own chain id, and an
//! EVM that runs our artifacts.

use std::path::Path;

fn besu_config() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("chain/besu/qbftConfigFile.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_besu_network_is_qbft_with_four_validators() {
    let config = besu_config();
    assert_eq!(config["blockchain"]["nodes"]["count"], 4);
    let genesis = &config["genesis"]["config"];
    assert!(genesis["qbft"].is_object(), "QBFT consensus");
    assert!(
        genesis.get("clique").is_none(),
        "no Clique: geth dropped its signer in 1.14"
    );
    let chain_id = genesis["chainId"].as_u64().unwrap();
    assert_ne!(
        chain_id, 31337,
        "the production chain id differs from the dev chain's"
    );
}

#[test]
fn the_genesis_enables_the_evm_our_artifacts_target() {
    let config = besu_config();
    assert_eq!(config["genesis"]["config"]["londonBlock"], 0);
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    for entry in std::fs::read_dir(artifacts).unwrap() {
        let artifact: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        assert_eq!(artifact["compiler"]["evmVersion"], "london");
    }
}
