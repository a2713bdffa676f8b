//! The sealed path of the demo: the hub's stored readings sealed with umbral
//! under the patient's key into signed, content-addressed batches (BLAKE3
//! and IPFS CID), anchored on chain under Merkle roots, replicated over iroh
//! to a clinic replica (`glyco-clinic replica`, its node enrolled on chain
//! by the hospital; a node nobody enrolled is refused), and verified from
//! the bytes to the chain by the hub and by the clinic; a tampered blob
//! fails, naming the broken link.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use glyco_contracts::keys::{DEV_MNEMONIC, dev_account};
use glyco_contracts::testkit::accounts::{HOSPITAL, HUB};
use glyco_gateway::config::HubConfig;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::chain_flows::{ChainWorld, address};
use crate::hub_flows::{hub_cli, sibling_binary, wait_status};
use crate::narrate::{section, step};

pub(crate) async fn clinic(args: &[&str]) -> Result<std::process::Output> {
    Ok(Command::new(sibling_binary("glyco-clinic")?)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .await?)
}

/// Starts a replica; returns it once it has printed its node line.
pub(crate) async fn start_replica(dir: &Path, hub_peer: &str) -> Result<(Child, String)> {
    let mut child = Command::new(sibling_binary("glyco-clinic")?)
        .args(["replica", "--dir"])
        .arg(dir)
        .args(["--hub", hub_peer, "--poll-ms", "300"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.with_extension("log"))?)
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("replica stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .context("the replica did not start")??
        .context("the replica exited")?;
    Ok((child, line))
}

pub(crate) fn write_key(path: &Path, index: u32) -> Result<()> {
    Ok(glyco_tests::write_key(
        path,
        &dev_account(DEV_MNEMONIC, index)?,
    )?)
}

pub async fn run(
    dir: &Path,
    world: &ChainWorld,
    config_path: &Path,
    config: &HubConfig,
) -> Result<()> {
    section("15. Sealed, anchored, replicated, verified");
    let socket = config.status_socket();
    let report = wait_status(&socket, "every stored reading sealed and anchored", |r| {
        r.seal.batches_sealed > 0
            && r.seal.readings_sealed == r.readings_stored
            && r.seal.batches_anchored == r.seal.batches_sealed
    })
    .await?;
    let s = &report.seal;
    step(&format!(
        "{} readings sealed with umbral under the patient's key ({}…, published on chain: {}) into {} signed batches",
        s.readings_sealed,
        s.patient_pre_key
            .as_deref()
            .map(|k| &k[..16.min(k.len())])
            .unwrap_or("?"),
        s.pre_key_published,
        s.batches_sealed
    ));
    if let Some(a) = &s.last_anchor {
        step(&format!(
            "anchor #{}: Merkle root {} over {} batches\n      tx {}  gas {:>7}  block {}",
            a.anchor_no, a.root, a.batches, a.tx, a.gas_used, a.block
        ));
    }
    let verified = hub_cli(config_path, &["verify", "--batch", "1"]).await?;
    step("glyco-hub verify --batch 1 (the hub's own copy, checked up to the chain):");
    for line in verified.lines() {
        println!("      {line}");
    }

    // The clinic's replica: its iroh node enrolled on chain by the hospital.
    let node_id = s.node_id.clone().context("the hub serves replicas")?;
    let hub_peer = format!("{node_id}@{}", config.seal.iroh_listen);
    let deployment = dir.join("deployment.json");
    let rpc = world.devnet.rpc_url().to_string();
    let hospital_key = dir.join("hospital.key");
    write_key(&hospital_key, HOSPITAL)?;
    let replica_dir = dir.join("replica");
    let enrol = clinic(&[
        "enrol-node",
        "--dir",
        &replica_dir.to_string_lossy(),
        "--entity-key",
        &hospital_key.to_string_lossy(),
        "--rpc",
        &rpc,
        "--deployment",
        &deployment.to_string_lossy(),
    ])
    .await?;
    if !enrol.status.success() {
        bail!("enrol-node: {}", String::from_utf8_lossy(&enrol.stderr));
    }
    step(&format!(
        "glyco-clinic enrol-node (signed by St Luke's): {}",
        String::from_utf8_lossy(&enrol.stdout).trim()
    ));

    // Someone else's node, enrolled by nobody, tries first.
    let outsider_dir = dir.join("outsider");
    let (mut outsider, _) = start_replica(&outsider_dir, &hub_peer).await?;
    let refused = wait_status(&socket, "the outsider refused", |r| {
        r.seal.node_refusals > 0
    })
    .await?;
    outsider.kill().await?;
    step(&format!(
        "a replica whose node nobody enrolled -> refused by the hub ({} refusals counted, nothing served)",
        refused.seal.node_refusals
    ));

    let (mut replica, line) = start_replica(&replica_dir, &hub_peer).await?;
    step(&format!("glyco-clinic replica --hub {hub_peer}: {line}"));
    let report = wait_status(&socket, "every batch replicated", |r| {
        r.seal.batches_replicated == r.seal.batches_sealed
    })
    .await?;
    step(&format!(
        "the hub's status: {} sealed / {} replicated / {} anchored batches",
        report.seal.batches_sealed, report.seal.batches_replicated, report.seal.batches_anchored
    ));

    let hub_address = address(HUB).to_string();
    let verify_args = |dir: &PathBuf| {
        vec![
            "verify".to_owned(),
            "--dir".to_owned(),
            dir.to_string_lossy().into_owned(),
            "--hub".to_owned(),
            hub_address.clone(),
            "--batch".to_owned(),
            "1".to_owned(),
            "--rpc".to_owned(),
            rpc.clone(),
            "--deployment".to_owned(),
            deployment.to_string_lossy().into_owned(),
        ]
    };
    let args = verify_args(&replica_dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let out = loop {
        // The replica picks up proofs as the hub anchors; wait for batch 1's.
        let out = clinic(&args).await?;
        if out.status.success() || tokio::time::Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    if !out.status.success() {
        bail!(
            "glyco-clinic verify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    step("glyco-clinic verify --batch 1 (the replica's copy, without the hub):");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        println!("      {line}");
    }

    // One bit flipped in the replica's copy.
    let blob_dir = replica_dir.join("blobs");
    let blob = std::fs::read_dir(&blob_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "batch"))
        .context("the replica holds blobs")?;
    let original = std::fs::read(&blob)?;
    let mut tampered = original.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 0x01;
    std::fs::write(&blob, &tampered)?;
    let name = blob
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out = clinic(&[
        "verify",
        "--dir",
        &replica_dir.to_string_lossy(),
        "--cid",
        &name,
        "--rpc",
        &rpc,
        "--deployment",
        &deployment.to_string_lossy(),
    ])
    .await?;
    std::fs::write(&blob, &original)?;
    if out.status.success() {
        bail!("a tampered blob verified");
    }
    step(&format!(
        "one bit flipped in a replicated blob -> {}",
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("Error: ")
    ));
    replica.kill().await?;
    Ok(())
}
