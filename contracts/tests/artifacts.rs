//! The committed artifacts must come from the committed sources: a .sol that
//! changed without its artifact being rebuilt fails here (no Node needed).
//! `scripts/test.sh` also recompiles with the pinned solcjs and compares bytes.

use std::collections::BTreeMap;
use std::path::Path;

use alloy::primitives::keccak256;

#[test]
fn every_artifact_matches_the_keccak_of_its_sources() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("artifacts")).unwrap() {
        let path = entry.unwrap().path();
        let artifact: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let sources: BTreeMap<String, String> =
            serde_json::from_value(artifact["sources"].clone()).unwrap();
        assert!(!sources.is_empty(), "{} lists no sources", path.display());
        for (file, recorded) in sources {
            let text = std::fs::read(root.join("sol").join(&file)).unwrap();
            assert_eq!(
                keccak256(&text).to_string(),
                recorded,
                "{file} changed but {} was not rebuilt: run `node contracts/tools/compile.mjs`",
                path.display()
            );
        }
        checked += 1;
    }
    assert_eq!(
        checked,
        DEPLOYED.len(),
        "one artifact per deployed contract"
    );
}

/// The contracts deployed (each has an artifact); every other source is
/// inherited or imported by them.
const DEPLOYED: [&str; 7] = [
    "Roles",
    "Devices",
    "Permissions",
    "Anchors",
    "AccessLog",
    "Consortium",
    "Releases",
];
const SHARED_SOURCES: [&str; 2] = ["Eip712", "DataKinds"];

#[test]
fn every_source_is_a_deployed_contract_or_shared_by_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(root.join("sol")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap();
        let artifact = root.join("artifacts").join(format!("{name}.json"));
        if SHARED_SOURCES.contains(&name) {
            assert!(!artifact.exists(), "{name} is shared, never deployed");
        } else {
            assert!(
                DEPLOYED.contains(&name),
                "{name} is neither deployed nor shared"
            );
            assert!(artifact.exists(), "{} has no artifact", path.display());
        }
    }
}
