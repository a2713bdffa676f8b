//! Update bundles checked as the hub will before installing one, with real
//! parts: anvil with the `Releases` contract, RAUC bundles built and signed
//! by Debian's rauc with keys made by openssl, and `glyco-hub update check`.
//!
//! A bundle the consortium did not publish is refused, and so is the same
//! bundle with one byte changed; once published it passes; a published
//! bundle signed by another key, built for another hub, or whose manifest
//! names another version than the chain is refused; a withdrawn release is
//! refused. (Installing needs device-mapper and loop devices, which this
//! host lacks: `scripts/hil.sh` installs under qemu.)

mod support;

use std::path::Path;

use glyco_contracts::testkit::accounts::ADMIN;
use support::HubWorld;
use support::release::{bundle, release_key, sha256};

async fn check(world: &HubWorld, bundle: &Path) -> Result<String, String> {
    let out = world
        .hub_cli(&["update", "check", bundle.to_str().unwrap()])
        .await;
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_published_signed_compatible_bundle_of_the_chains_version_passes() {
    let mut world = HubWorld::new().await;
    let dir = world.dir.path().join("releases");
    std::fs::create_dir_all(&dir).unwrap();
    let clinic = release_key(&dir, "release").await;
    let stranger = release_key(&dir, "stranger").await;
    world.edit_config(|c| {
        c.update.keyring = clinic.1.clone();
        c.update.compatible = "glyco-test".into();
    });
    let admin = world.client(ADMIN);

    let good = bundle(&dir, "good", "glyco-test", "2026.12.2", &clinic);
    let refused = check(&world, &good).await.unwrap_err();
    assert!(refused.contains("not published on chain"), "{refused}");

    admin
        .publish_release(sha256(&good), "2026.12.2")
        .await
        .unwrap();
    let passed = check(&world, &good).await.unwrap();
    assert!(
        passed.contains(&sha256(&good).to_string()) && passed.contains("glyco-test 2026.12.2"),
        "{passed}"
    );
    let copy = world.config.state_dir.join("update/bundle.raucb");
    assert_eq!(
        sha256(&copy),
        sha256(&good),
        "the checked copy is the bundle"
    );

    // One byte changed: another hash, never published.
    let mut bytes = std::fs::read(&good).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    let tampered = dir.join("tampered.raucb");
    std::fs::write(&tampered, &bytes).unwrap();
    let refused = check(&world, &tampered).await.unwrap_err();
    assert!(refused.contains("not published on chain"), "{refused}");

    // Published, but signed by a key the hub does not trust.
    let foreign = bundle(&dir, "foreign", "glyco-test", "2026.12.3", &stranger);
    admin
        .publish_release(sha256(&foreign), "2026.12.3")
        .await
        .unwrap();
    let refused = check(&world, &foreign).await.unwrap_err();
    assert!(
        refused.contains("signature or format does not check"),
        "{refused}"
    );

    // Published and signed, but for another kind of hub.
    let other_hub = bundle(&dir, "other-hub", "glyco-other", "2026.12.4", &clinic);
    admin
        .publish_release(sha256(&other_hub), "2026.12.4")
        .await
        .unwrap();
    let refused = check(&world, &other_hub).await.unwrap_err();
    assert!(refused.contains("\"glyco-other\""), "{refused}");

    // The manifest names another version than the chain published.
    let relabelled = bundle(&dir, "relabelled", "glyco-test", "2026.12.9", &clinic);
    admin
        .publish_release(sha256(&relabelled), "2026.12.5")
        .await
        .unwrap();
    let refused = check(&world, &relabelled).await.unwrap_err();
    assert!(refused.contains("version \"2026.12.9\""), "{refused}");

    // Withdrawn: refused from then on.
    admin.withdraw_release(sha256(&good)).await.unwrap();
    let refused = check(&world, &good).await.unwrap_err();
    assert!(refused.contains("withdrawn"), "{refused}");
}
