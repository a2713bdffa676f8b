//! The chain part of the demo: the dev chain, the contracts, and the papers'
//! flows with every key's consent — enrolment, patient registration, the
//! hub's consent, devices, scoped grants, access decided and logged in one
//! call, emergency access, and the consortium governing itself — with the
//! attacks v1 let through shown refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use glyco_contracts::bindings::Roles;
use glyco_contracts::deploy::{deploy_all, deploy_consortium};
use glyco_contracts::devnet::{Devnet, DevnetConfig};
use glyco_contracts::keys::{DEV_MNEMONIC, dev_account};
use glyco_contracts::testkit::accounts::*;
use glyco_contracts::{
    AnchorOutcome, B256, BatchAnchor, DataKinds, Deployment, DeviceIdKey, DeviceIdentity,
    DeviceKind, EmergencyPolicy, EntityKind, Expiry, FeePolicy, GlycoClient, GrantScope, Role,
    UnixSeconds,
};

use crate::narrate::{refused, section, step, tx};

/// The BLE devices registered on chain (bonded identity addresses).
pub const BLE_GLUCOMETER: &str = "C0:26:DA:01:02:03";
pub const BLE_CGM: &str = "C0:26:DA:0A:0B:0C";

/// What later parts of the demo build on.
pub struct ChainWorld {
    pub devnet: Devnet,
    pub deployment: Deployment,
    pub device_id_key: DeviceIdKey,
    pub device_id_key_file: PathBuf,
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

/// The admin offers a role and the key accepts it: two transactions.
async fn enrol(
    world: &ChainWorld,
    offer: impl std::future::Future<
        Output = Result<glyco_contracts::TxOutcome, glyco_contracts::ChainError>,
    >,
    who: u32,
    offered_by: glyco_contracts::Address,
    role: Role,
    label: &str,
) -> Result<()> {
    tx(&format!("offer: {label}"), &offer.await?);
    let accepted = world.client(who).accept_role(offered_by, role).await?;
    tx(&format!("  {} accepts", address(who)), &accepted);
    Ok(())
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
    let device_id_key = DeviceIdKey::generate();
    let device_id_key_file = dir.join("device-id.key");
    device_id_key.save_new(&device_id_key_file)?;
    let admin_key = dev_account(DEV_MNEMONIC, ADMIN)?;
    let deployed = deploy_all(
        devnet.rpc_url(),
        admin_key.clone(),
        admin_key.address(),
        &device_id_key,
        FeePolicy::Free,
    )
    .await?;
    for outcome in &deployed.transactions {
        tx(&format!("deployed {}", outcome.call), outcome);
    }
    let deployment_file = dir.join("deployment.json");
    deployed.deployment.save(&deployment_file)?;
    step(&format!(
        "deployment written to {}; the consortium's device-id key (0600) to {}",
        deployment_file.display(),
        device_id_key_file.display()
    ));
    let mut world = ChainWorld {
        devnet,
        deployment: deployed.deployment,
        device_id_key,
        device_id_key_file,
    };

    section("2. Consortium: roles are offered, and bound only when the key accepts");
    let admin = world.client(ADMIN);
    let admin_addr = address(ADMIN);
    for (index, kind, name) in [
        (HOSPITAL, EntityKind::Hospital, "St Luke's Hospital"),
        (SECOND_HOSPITAL, EntityKind::Hospital, "Mercy General"),
        (THIRD_HOSPITAL, EntityKind::Hospital, "Royal Infirmary"),
        (
            EMERGENCY_SERVICE,
            EntityKind::EmergencyService,
            "City Ambulance",
        ),
    ] {
        let offer = admin.offer_entity(address(index), kind, name);
        enrol(
            &world,
            offer,
            index,
            admin_addr,
            Role::Entity,
            &format!("{name} ({kind:?})"),
        )
        .await?;
    }
    for (index, entity, label) in [
        (PHYSICIAN, HOSPITAL, "a physician at St Luke's"),
        (
            PARAMEDIC,
            EMERGENCY_SERVICE,
            "a paramedic at City Ambulance",
        ),
    ] {
        let offer = admin.offer_physician(address(index), address(entity));
        enrol(&world, offer, index, admin_addr, Role::Physician, label).await?;
    }
    let hospital = world.client(HOSPITAL);
    let proxy_node_id = B256::repeat_byte(0x1d);
    let offer = hospital.offer_proxy(address(PROXY), proxy_node_id);
    enrol(
        &world,
        offer,
        PROXY,
        address(HOSPITAL),
        Role::Proxy,
        "St Luke's re-encryption proxy",
    )
    .await?;
    match world
        .client(STRANGER)
        .offer_physician(address(STRANGER), address(HOSPITAL))
        .await
    {
        Err(e) => refused("a stranger offers themselves the physician role", &e),
        Ok(_) => bail!("a stranger was able to offer a role"),
    }

    section("3. The physician registers a patient; the patient accepts and authorises the hub");
    let physician = world.client(PHYSICIAN);
    tx(
        &format!(
            "physician offers registration to patient {}",
            address(PATIENT)
        ),
        &physician.register_patient(address(PATIENT)).await?,
    );
    let patient = world.client(PATIENT);
    tx(
        "  the patient accepts",
        &patient
            .accept_role(address(PHYSICIAN), Role::Patient)
            .await?,
    );
    // v1: a physician could register a colleague's key and block it for ever.
    physician.register_patient(address(NEXT_ADMIN)).await?;
    step(&format!(
        "the physician 'registers' a colleague's key {} as a patient: without the colleague's \
         acceptance its role stays {:?}",
        address(NEXT_ADMIN),
        world
            .client(STRANGER)
            .role_of(address(NEXT_ADMIN))
            .await?
            .unwrap_or(Role::None)
    ));
    let deadline = UnixSeconds::now().plus(Duration::from_secs(3600));
    let consent = world
        .client(HUB)
        .sign_hub_consent(address(PATIENT), deadline)
        .await?;
    step(&format!(
        "the hub {} signs its consent (EIP-712) to serve patient {} (`glyco-hub consent`)",
        consent.hub, consent.patient
    ));
    // v1: any patient could authorise someone else's new hub first.
    let second_patient = world.client(SECOND_PATIENT);
    physician.register_patient(address(SECOND_PATIENT)).await?;
    second_patient
        .accept_role(address(PHYSICIAN), Role::Patient)
        .await?;
    match second_patient.authorise_hub(&consent, true).await {
        Err(e) => refused(
            "another patient submits that consent to take the hub over",
            &e,
        ),
        Ok(_) => bail!("another patient took the hub over"),
    }
    tx(
        "the patient authorises the hub and delegates device registration to it",
        &patient.authorise_hub(&consent, true).await?,
    );

    section("4. The patient's devices (the 2020 paper's Algorithm 2), under keyed ids");
    let glucometer = DeviceIdentity::ble(BLE_GLUCOMETER)?;
    let cgm = DeviceIdentity::ble(BLE_CGM)?;
    let ids = &world.device_id_key;
    tx(
        &format!(
            "glucometer {glucometer} -> id {} (keyed: no MAC on chain)",
            ids.id_of(&glucometer)
        ),
        &patient
            .add_device(
                address(PATIENT),
                ids.id_of(&glucometer),
                DeviceKind::Glucometer,
            )
            .await?,
    );
    tx(
        &format!("CGM {cgm}, registered by the hub the patient delegated to"),
        &world
            .client(HUB)
            .add_device(address(PATIENT), ids.id_of(&cgm), DeviceKind::Cgm)
            .await?,
    );
    match patient
        .add_device(
            address(PATIENT),
            ids.id_of(&glucometer),
            DeviceKind::Glucometer,
        )
        .await
    {
        Err(e) => refused("registering the glucometer a second time", &e),
        Ok(_) => bail!("a duplicate device registration was accepted"),
    }
    match second_patient
        .add_device(address(PATIENT), ids.id_of(&cgm), DeviceKind::Cgm)
        .await
    {
        Err(e) => refused("someone else tries to add a device for this patient", &e),
        Ok(_) => bail!("a non-patient changed the patient's devices"),
    }

    section("5. A scoped grant; access decided and logged in one transaction");
    let policy = B256::repeat_byte(0x42);
    let scope = GrantScope {
        kinds: DataKinds::GLUCOSE | DataKinds::FINDINGS,
        data_from: 0,
        data_until: None,
    };
    let (outcome, grant_id) = patient
        .grant(
            address(PHYSICIAN),
            policy,
            scope,
            Expiry::after(Duration::from_secs(30 * 86_400)),
        )
        .await?;
    tx(
        &format!(
            "patient grants the physician glucose and findings for 30 days (grant #{grant_id})"
        ),
        &outcome,
    );
    let now = UnixSeconds::now().get();
    let batch = BatchAnchor {
        root: B256::repeat_byte(0xa1),
        window_start: now - 3600,
        window_end: now - 1,
        count: 12,
        kinds: DataKinds::GLUCOSE,
    };
    if let AnchorOutcome::Anchored(outcome) =
        world.client(HUB).anchor(address(PATIENT), batch).await?
    {
        tx(
            "the hub anchors an hour of glucose (root 0xa1a1..)",
            &outcome,
        );
    }
    let request = physician
        .sign_access_request(
            address(PATIENT),
            address(PROXY),
            batch.root,
            Duration::from_secs(600),
        )
        .await?;
    step("the physician signs an access request (EIP-712) for that batch, through St Luke's proxy");
    let proxy = world.client(PROXY);
    let access = proxy.record_access(&request).await?;
    if let Some(outcome) = access.tx {
        tx(
            &format!(
                "the proxy's recordAccess checks signature, nonce, proxy, anchor and grant, and logs access #{}",
                access.entry.seq
            ),
            &outcome,
        );
    }
    // v1: any hospital could log any access, grant or not.
    let unsigned = world
        .client(PARAMEDIC)
        .sign_access_request(
            address(PATIENT),
            address(HOSPITAL),
            batch.root,
            Duration::from_secs(600),
        )
        .await?;
    match hospital.record_access(&unsigned).await {
        Err(e) => refused(
            "the hospital's own key forges an entry for an ungranted physician",
            &e,
        ),
        Ok(_) => bail!("a forged access-log entry was accepted"),
    }
    match proxy.record_access(&request).await {
        Ok(retry) if retry.tx.is_none() => {
            step("the proxy retries the same request: its entry is found, nothing is logged twice")
        }
        Ok(_) => bail!("a request was logged twice"),
        Err(e) => return Err(e.into()),
    }
    // v1: a revoked physician enrolled again could read again.
    tx(
        "the admin revokes the physician",
        &admin.revoke_physician(address(PHYSICIAN)).await?,
    );
    let offer = admin.offer_physician(address(PHYSICIAN), address(HOSPITAL));
    enrol(
        &world,
        offer,
        PHYSICIAN,
        admin_addr,
        Role::Physician,
        "the physician, enrolled again",
    )
    .await?;
    let reader = world.client(STRANGER);
    step(&format!(
        "re-enrolled (epoch {}), the physician's old grant is dead: canRead = {}",
        reader.physician_of(address(PHYSICIAN)).await?.epoch,
        reader
            .can_read(address(PATIENT), address(PHYSICIAN))
            .await?
    ));
    let again = physician
        .sign_access_request(
            address(PATIENT),
            address(PROXY),
            batch.root,
            Duration::from_secs(600),
        )
        .await?;
    match proxy.record_access(&again).await {
        Err(e) => refused("the re-enrolled physician asks the proxy again", &e),
        Ok(_) => bail!("a revoked grant came back"),
    }

    section("6. Emergency access under the patient's policy");
    let policy = EmergencyPolicy {
        kinds: DataKinds::GLUCOSE | DataKinds::FINDINGS,
        max_duration_secs: 6 * 3600,
        lookback_secs: 7 * 86_400,
        enabled: true,
    };
    tx(
        "the patient's emergency policy: glucose and findings, 7 days back, 6 hours at most",
        &patient.set_emergency_policy(policy).await?,
    );
    let (outcome, emergency_grant) = world
        .client(PARAMEDIC)
        .emergency_access(address(PATIENT))
        .await?;
    tx(
        &format!(
            "the paramedic opens emergency access without the patient's signature (grant #{emergency_grant}, \
             announced by EmergencyAccessOpened for the hub)"
        ),
        &outcome,
    );

    section("7. The consortium governs itself: the admin becomes a 2-of-3 of the hospitals");
    let (consortium, outcome) = deploy_consortium(
        world.devnet.rpc_url(),
        admin_key.clone(),
        &world.deployment,
        2,
    )
    .await?;
    tx(&format!("deployed Consortium at {consortium}"), &outcome);
    world.deployment.contracts.consortium = Some(consortium);
    world.deployment.save(&deployment_file)?;
    let admin = world.client(ADMIN);
    tx(
        "the admin names the consortium (step one of two)",
        &admin.transfer_admin(consortium).await?,
    );
    let (first, second) = (world.client(HOSPITAL), world.client(SECOND_HOSPITAL));
    let (outcome, id) = first
        .propose(world.deployment.contracts.roles, &Roles::acceptAdminCall {})
        .await?;
    tx(
        &format!("St Luke's proposes #{id}: accept the admin role"),
        &outcome,
    );
    tx(
        "Mercy General approves",
        &second.approve_proposal(id).await?,
    );
    tx(
        "St Luke's executes (step two)",
        &first.execute_proposal(id).await?,
    );
    step(&format!("admin is now {}", reader.admin().await?));
    match admin
        .offer_entity(address(STRANGER), EntityKind::Lab, "Shady Lab")
        .await
    {
        Err(e) => refused("the old admin key tries to enrol a lab", &e),
        Ok(_) => bail!("the old admin key kept its power"),
    }

    section("8. Traceability");
    for entry in reader.access_log_of(address(PATIENT), 0).await? {
        step(&format!(
            "access #{}: physician {} read {} through proxy {} under grant #{} ({:?}) at block {}",
            entry.seq,
            entry.physician,
            entry.data_id,
            entry.proxy,
            entry.grant_id,
            entry.action,
            entry.block
        ));
    }

    section("9. The dev chain persists across a restart");
    let height = reader.block_number().await?;
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
