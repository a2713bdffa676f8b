//! The chain part of the demo: the dev chain, the contracts, and the papers'
//! flows (enrolment, patient registration, devices, grants, access log).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use glyco_contracts::deploy::deploy_all;
use glyco_contracts::devnet::{Devnet, DevnetConfig};
use glyco_contracts::keys::{DEV_MNEMONIC, dev_account};
use glyco_contracts::testkit::accounts::*;
use glyco_contracts::{
    Access, AccessAction, B256, Deployment, DeviceIdentity, DeviceKind, EntityKind, GlycoClient,
};

use crate::narrate::{refused, section, step, tx};

/// The BLE devices registered on chain (bonded identity addresses).
pub const BLE_GLUCOMETER: &str = "C0:26:DA:01:02:03";
pub const BLE_CGM: &str = "C0:26:DA:0A:0B:0C";

/// What later parts of the demo build on.
pub struct ChainWorld {
    pub devnet: Devnet,
    pub deployment: Deployment,
}

impl ChainWorld {
    pub fn client(&self, index: u32) -> GlycoClient {
        let signer = dev_account(DEV_MNEMONIC, index).expect("dev account derives");
        GlycoClient::new(self.devnet.rpc_url(), signer, self.deployment.clone())
    }
}

pub fn address(index: u32) -> glyco_contracts::Address {
    dev_account(DEV_MNEMONIC, index)
        .expect("dev account derives")
        .address()
}

fn devnet_config(dir: &Path, anvil: PathBuf) -> DevnetConfig {
    DevnetConfig {
        port: 0,
        state_file: Some(dir.join("chain/state.json")),
        anvil: Some(anvil),
        ..DevnetConfig::default()
    }
}

pub async fn run(dir: &Path, anvil: PathBuf) -> Result<ChainWorld> {
    section("1. Dev chain and contracts");
    let config = devnet_config(dir, anvil.clone());
    let devnet = Devnet::start(config.clone())
        .await
        .context("starting the dev chain")?;
    step(&format!(
        "anvil on {} (chain id {}, a block every {} s, state in {})",
        devnet.rpc_url(),
        config.chain_id,
        config.block_time_secs,
        dir.join("chain/state.json").display()
    ));
    let admin_key = dev_account(DEV_MNEMONIC, ADMIN)?;
    let deployed = deploy_all(devnet.rpc_url(), admin_key.clone(), admin_key.address()).await?;
    for outcome in &deployed.transactions {
        tx(&format!("deployed {}", outcome.call), outcome);
    }
    let deployment_file = dir.join("deployment.json");
    deployed.deployment.save(&deployment_file)?;
    step(&format!(
        "deployment written to {}",
        deployment_file.display()
    ));
    let mut world = ChainWorld {
        devnet,
        deployment: deployed.deployment,
    };

    section("2. Consortium: the admin enrols a hospital and a physician");
    let admin = world.client(ADMIN);
    let outcome = admin
        .enrol_entity(
            address(HOSPITAL),
            EntityKind::Hospital,
            "St Luke's Hospital",
        )
        .await?;
    tx(
        &format!("admin enrols hospital {}", address(HOSPITAL)),
        &outcome,
    );
    let outcome = admin
        .enrol_physician(address(PHYSICIAN), address(HOSPITAL))
        .await?;
    tx(
        &format!(
            "admin enrols physician {} at the hospital",
            address(PHYSICIAN)
        ),
        &outcome,
    );
    match world
        .client(STRANGER)
        .enrol_physician(address(STRANGER), address(HOSPITAL))
        .await
    {
        Err(e) => refused("a stranger tries to enrol themselves as a physician", &e),
        Ok(_) => bail!("a stranger was able to enrol a physician"),
    }

    section("3. The physician registers a patient; the patient authorises their hub");
    let outcome = world
        .client(PHYSICIAN)
        .register_patient(address(PATIENT))
        .await?;
    tx(
        &format!("physician registers patient {}", address(PATIENT)),
        &outcome,
    );
    let patient = world.client(PATIENT);
    let outcome = patient.authorise_hub(address(HUB)).await?;
    tx(
        &format!("patient authorises hub {}", address(HUB)),
        &outcome,
    );

    section("4. The patient registers two devices (the 2020 paper's Algorithm 2)");
    let glucometer = DeviceIdentity::ble(BLE_GLUCOMETER)?;
    let cgm = DeviceIdentity::ble(BLE_CGM)?;
    let outcome = patient
        .add_device(
            address(PATIENT),
            glucometer.device_id(),
            DeviceKind::Glucometer,
        )
        .await?;
    tx(
        &format!("glucometer {glucometer} -> id {}", glucometer.device_id()),
        &outcome,
    );
    let outcome = world
        .client(HUB)
        .add_device(address(PATIENT), cgm.device_id(), DeviceKind::Cgm)
        .await?;
    tx(
        &format!("CGM {cgm}, registered by the hub for the patient"),
        &outcome,
    );
    match patient
        .add_device(
            address(PATIENT),
            glucometer.device_id(),
            DeviceKind::Glucometer,
        )
        .await
    {
        Err(e) => refused("registering the glucometer a second time", &e),
        Ok(_) => bail!("a duplicate device registration was accepted"),
    }
    match world
        .client(SECOND_PATIENT)
        .add_device(address(PATIENT), cgm.device_id(), DeviceKind::Cgm)
        .await
    {
        Err(e) => refused("someone else tries to add a device for this patient", &e),
        Ok(_) => bail!("a non-patient changed the patient's devices"),
    }

    section("5. Permissions: a grant, then a revoke (the 2020 paper's Algorithm 3)");
    let policy = B256::repeat_byte(0x42);
    let outcome = patient
        .grant(address(PHYSICIAN), policy, Access::READ, None)
        .await?;
    tx(
        "patient grants the physician read access under policy 0x4242..",
        &outcome,
    );
    let proxy = world.client(HOSPITAL);
    let may = proxy
        .may_reencrypt(address(PATIENT), address(PHYSICIAN), policy)
        .await?;
    step(&format!("the hospital proxy asks mayReencrypt: {may}"));
    let outcome = proxy
        .log_access(
            address(PATIENT),
            address(PHYSICIAN),
            B256::repeat_byte(0x99),
            AccessAction::Reencrypt,
        )
        .await?;
    tx(
        "the proxy records the physician's access in the access log",
        &outcome,
    );
    let outcome = patient.revoke(address(PHYSICIAN)).await?;
    tx("patient revokes the grant", &outcome);
    let may = proxy
        .may_reencrypt(address(PATIENT), address(PHYSICIAN), policy)
        .await?;
    step(&format!(
        "the hospital proxy asks mayReencrypt again: {may}"
    ));

    section("6. Traceability");
    for entry in proxy.access_log_of(address(PATIENT), 0).await? {
        step(&format!(
            "access #{}: accessor {} data {} action {}, recorded by {} at block {}",
            entry.seq,
            entry.accessor,
            entry.data_id,
            entry
                .action
                .map_or("unknown".to_owned(), |a| format!("{a:?}")),
            entry.recorder,
            entry.block
        ));
    }

    section("7. The dev chain persists across a restart");
    let height = admin.block_number().await?;
    world.devnet.stop().await?;
    world.devnet = Devnet::start(config).await?;
    let client = world.client(ADMIN);
    let devices = client.devices_of(address(PATIENT)).await?;
    step(&format!(
        "restarted at height {} (was {height}); the patient still has {} devices",
        client.block_number().await?,
        devices.len()
    ));
    if devices.len() != 2 {
        bail!("the restarted chain lost the patient's devices");
    }
    Ok(world)
}
