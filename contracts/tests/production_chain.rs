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

fn besu_node_config() -> toml::Table {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("chain/besu/besu.toml");
    toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn gas_is_free_and_a_key_without_ether_can_transact() {
    let genesis = besu_config();
    assert_eq!(genesis["genesis"]["config"]["zeroBaseFee"], true);
    let node = besu_node_config();
    assert_eq!(node["min-gas-price"].as_integer(), Some(0));
}

#[test]
fn only_consortium_nodes_peer_and_only_enrolled_keys_send() {
    let node = besu_node_config();
    assert_eq!(
        node["permissions-nodes-config-file-enabled"].as_bool(),
        Some(true)
    );
    assert_eq!(
        node["permissions-accounts-config-file-enabled"].as_bool(),
        Some(true)
    );
    // The public JSON-RPC cannot administer the node.
    let apis: Vec<&str> = node["rpc-http-api"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for admin in ["ADMIN", "PERM", "QBFT", "DEBUG", "MINER"] {
        assert!(!apis.contains(&admin), "{admin} on the public endpoint");
    }
}

#[test]
fn the_log_range_limit_admits_the_clients_chunks() {
    let node = besu_node_config();
    let limit = node["rpc-max-logs-range"].as_integer().unwrap() as u64;
    assert!(glyco_contracts::client::DEFAULT_LOG_CHUNK_BLOCKS <= limit);
}
