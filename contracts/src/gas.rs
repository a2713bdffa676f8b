//! The gas table: deploys a fresh set of contracts and calls every
//! state-changing function at least once, recording the gas each call used.
//! `glyco-chain gas-table` prints it; docs/BENCHMARKS.md keeps a copy.

use std::collections::BTreeMap;

use alloy::primitives::B256;
use alloy::transports::http::reqwest::Url;

use std::time::Duration;

use crate::bindings::{Consortium, Roles};
use crate::client::{AnchorOutcome, GlycoClient};
use crate::consent::KeyRotation;
use crate::deploy::{DeployError, deploy_all, deploy_consortium};
use crate::deployment::Deployment;
use crate::device_id::DeviceIdKey;
use crate::error::ChainError;
use crate::keys::{KeyError, dev_account};
use crate::model::{
    BatchAnchor, DataKinds, DeviceKind, EmergencyPolicy, EntityKind, Expiry, FeePolicy, GrantScope,
    Role, TxOutcome, UnixSeconds,
};
use crate::testkit::accounts;

#[derive(Debug, thiserror::Error)]
pub enum GasError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Chain(#[from] ChainError),
}

/// Gas used per (contract, function), over every call made.
#[derive(Debug, Default, Clone)]
pub struct GasTable {
    rows: BTreeMap<(&'static str, &'static str), Vec<u64>>,
}

impl GasTable {
    fn record(&mut self, contract: &'static str, outcome: TxOutcome) {
        self.rows
            .entry((contract, outcome.call))
            .or_default()
            .push(outcome.gas_used);
    }

    /// (contract, function, gas of every call), sorted by contract then function.
    pub fn rows(&self) -> impl Iterator<Item = (&'static str, &'static str, &[u64])> {
        self.rows.iter().map(|((c, f), g)| (*c, *f, g.as_slice()))
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::from(
            "| contract | function | calls | min gas | mean gas | max gas |\n|---|---|---:|---:|---:|---:|\n",
        );
        for (contract, function, gas) in self.rows() {
            let min = gas.iter().min().copied().unwrap_or_default();
            let max = gas.iter().max().copied().unwrap_or_default();
            let mean = gas.iter().sum::<u64>() / gas.len().max(1) as u64;
            out.push_str(&format!(
                "| {contract} | {function} | {} | {min} | {mean} | {max} |\n",
                gas.len()
            ));
        }
        out
    }
}

/// Runs the scenario against the node at `rpc_url`, whose dev accounts come
/// from `mnemonic`: every state-changing function of every contract at least
/// once, in the order the system uses them.
pub async fn measure(rpc_url: Url, mnemonic: &str) -> Result<GasTable, GasError> {
    use accounts::*;
    let mut table = GasTable::default();
    let signer = |index| dev_account(mnemonic, index);
    let admin_key = signer(ADMIN)?;
    let device_key = DeviceIdKey::generate();
    let deployed = deploy_all(
        rpc_url.clone(),
        admin_key.clone(),
        admin_key.address(),
        &device_key,
        FeePolicy::Free,
    )
    .await?;
    for tx in &deployed.transactions {
        table.record(
            tx.call,
            TxOutcome {
                call: "constructor",
                ..*tx
            },
        );
    }
    let mut deployment = deployed.deployment;
    let client = |index, deployment: &Deployment| -> Result<GlycoClient, KeyError> {
        Ok(GlycoClient::new(
            rpc_url.clone(),
            signer(index)?,
            deployment.clone(),
        ))
    };
    let c = |index| client(index, &deployment);
    let address = |index| signer(index).map(|s| s.address());
    let admin = c(ADMIN)?;
    let admin_addr = address(ADMIN)?;

    // Roles: offers and acceptances.
    for (index, kind, name) in [
        (HOSPITAL, EntityKind::Hospital, "St Luke's Hospital"),
        (SECOND_HOSPITAL, EntityKind::Hospital, "Mercy General"),
        (THIRD_HOSPITAL, EntityKind::Hospital, "Royal Infirmary"),
        (CLINIC, EntityKind::Clinic, "Riverside Diabetes Clinic"),
        (
            EMERGENCY_SERVICE,
            EntityKind::EmergencyService,
            "City Ambulance",
        ),
    ] {
        table.record(
            "Roles",
            admin.offer_entity(address(index)?, kind, name).await?,
        );
        table.record(
            "Roles",
            c(index)?.accept_role(admin_addr, Role::Entity).await?,
        );
    }
    for (physician, entity) in [
        (PHYSICIAN, HOSPITAL),
        (LOCUM, CLINIC),
        (PARAMEDIC, EMERGENCY_SERVICE),
    ] {
        let offer = admin.offer_physician(address(physician)?, address(entity)?);
        table.record("Roles", offer.await?);
        table.record(
            "Roles",
            c(physician)?
                .accept_role(admin_addr, Role::Physician)
                .await?,
        );
    }
    let hospital = c(HOSPITAL)?;
    table.record(
        "Roles",
        hospital
            .offer_proxy(address(PROXY)?, B256::repeat_byte(0x1d))
            .await?,
    );
    let proxy = c(PROXY)?;
    table.record(
        "Roles",
        proxy.accept_role(address(HOSPITAL)?, Role::Proxy).await?,
    );
    for (physician, patient) in [(PHYSICIAN, PATIENT), (LOCUM, SECOND_PATIENT)] {
        table.record(
            "Roles",
            c(physician)?.register_patient(address(patient)?).await?,
        );
        let patient = c(patient)?;
        table.record(
            "Roles",
            patient
                .accept_role(address(physician)?, Role::Patient)
                .await?,
        );
    }
    let (patient, hub) = (c(PATIENT)?, c(HUB)?);
    let (patient_addr, hub_addr) = (address(PATIENT)?, address(HUB)?);
    let in_an_hour = UnixSeconds::now().plus(Duration::from_secs(3600));
    let consent = hub.sign_hub_consent(patient_addr, in_an_hour).await?;
    table.record("Roles", patient.authorise_hub(&consent, false).await?);
    table.record("Roles", patient.set_hub_device_power(hub_addr, true).await?);

    // Devices: the patient, then the hub it delegated to; the dispute path.
    let id = |text: &str| device_key.id_of(&text.parse().expect("valid identity"));
    let glucometer = id("ble:C0:26:DA:01:02:03");
    let cgm = id("ble:C0:26:DA:0A:0B:0C");
    let cuff = id("name:bp-cuff-1");
    table.record(
        "Devices",
        patient
            .add_device(patient_addr, glucometer, DeviceKind::Glucometer)
            .await?,
    );
    table.record(
        "Devices",
        hub.add_device(patient_addr, cgm, DeviceKind::Cgm).await?,
    );
    let add = hub.add_device(patient_addr, cuff, DeviceKind::BloodPressure);
    table.record("Devices", add.await?);
    table.record("Devices", hub.remove_device(patient_addr, cuff).await?);
    let squatted = id("ble:C0:26:DA:99:99:99");
    let second = c(SECOND_PATIENT)?;
    let squat = second.add_device(address(SECOND_PATIENT)?, squatted, DeviceKind::Cgm);
    table.record("Devices", squat.await?);
    table.record("Devices", c(LOCUM)?.release_device(squatted).await?);

    // Permissions: a scoped grant, its replacement, a revoke, emergency.
    let policy = B256::repeat_byte(0x42);
    let physician_addr = address(PHYSICIAN)?;
    let scope = GrantScope::EVERYTHING;
    let (tx, _) = patient
        .grant(physician_addr, policy, scope, Expiry::Never)
        .await?;
    table.record("Permissions", tx);
    let glucose_only = GrantScope {
        kinds: DataKinds::GLUCOSE,
        data_from: 1_700_000_000,
        data_until: None,
    };
    let in_a_day = Expiry::after(Duration::from_secs(86_400));
    let (tx, _) = patient
        .grant(address(LOCUM)?, policy, glucose_only, in_a_day)
        .await?;
    table.record("Permissions", tx);
    table.record("Permissions", patient.revoke(address(LOCUM)?).await?);
    let emergency = EmergencyPolicy {
        kinds: DataKinds::GLUCOSE | DataKinds::FINDINGS,
        max_duration_secs: 6 * 3600,
        lookback_secs: 7 * 86_400,
        enabled: true,
    };
    table.record(
        "Permissions",
        patient.set_emergency_policy(emergency).await?,
    );
    let (tx, _) = c(PARAMEDIC)?.emergency_access(patient_addr).await?;
    table.record("Permissions", tx);

    // Anchors, then an access decided and logged in one call.
    let mut roots = Vec::new();
    for i in 0..2u64 {
        let start = 1_700_000_000 + 3600 * i;
        let batch = BatchAnchor {
            root: B256::repeat_byte(0xa1 + i as u8),
            window_start: start,
            window_end: start + 3599,
            count: 60,
            kinds: DataKinds::GLUCOSE,
        };
        if let AnchorOutcome::Anchored(tx) = hub.anchor(patient_addr, batch).await? {
            table.record("Anchors", tx);
        }
        roots.push(batch.root);
    }
    let physician = c(PHYSICIAN)?;
    let proxy_addr = address(PROXY)?;
    let lifetime = Duration::from_secs(600);
    for root in &roots {
        let request = physician.sign_access_request(patient_addr, proxy_addr, *root, lifetime);
        let outcome = proxy.record_access(&request.await?).await?;
        if let Some(tx) = outcome.tx {
            table.record("AccessLog", tx);
        }
    }
    // Both roots in one access.
    let digest = crate::client::roots_digest(&roots);
    let request = physician.sign_access_request(patient_addr, proxy_addr, digest, lifetime);
    let outcome = proxy.record_access_set(&request.await?, &roots).await?;
    if let Some(tx) = outcome.tx {
        table.record("AccessLog", tx);
    }
    table.record("Roles", physician.set_physician_pre_key(&[0x02; 33]).await?);

    // A patient key rotation, co-signed by the registering physician.
    let rotation = KeyRotation {
        patient: patient_addr,
        old_key: patient_addr,
        new_key: address(NEW_PATIENT_KEY)?,
        deadline: in_an_hour,
    };
    let consent = c(NEW_PATIENT_KEY)?.sign_key_rotation(&rotation).await?;
    let cosignature = physician.sign_key_rotation(&rotation).await?;
    table.record(
        "Roles",
        patient.rotate_patient_key(&consent, &cosignature).await?,
    );
    let patient = c(NEW_PATIENT_KEY)?;

    table.record("Roles", c(ADMIN)?.revoke_entity(address(CLINIC)?).await?);

    // A hub release vouched for, then withdrawn.
    let bundle = alloy::primitives::B256::repeat_byte(0xb1);
    table.record(
        "Releases",
        c(ADMIN)?.publish_release(bundle, "2026.12.2").await?,
    );
    table.record("Releases", c(ADMIN)?.withdraw_release(bundle).await?);

    // Governance: the admin hands over to a 2-of-3 of the hospitals.
    let (consortium, tx) =
        deploy_consortium(rpc_url.clone(), admin_key.clone(), &deployment, 2).await?;
    table.record(
        "Consortium",
        TxOutcome {
            call: "constructor",
            ..tx
        },
    );
    deployment.contracts.consortium = Some(consortium);
    let c = |index| client(index, &deployment);
    table.record("Roles", c(ADMIN)?.transfer_admin(consortium).await?);
    let (first, second_hospital) = (c(HOSPITAL)?, c(SECOND_HOSPITAL)?);
    let accept = Roles::acceptAdminCall {};
    let (tx, id) = first.propose(deployment.contracts.roles, &accept).await?;
    table.record("Consortium", tx);
    table.record("Consortium", second_hospital.approve_proposal(id).await?);
    table.record("Consortium", first.execute_proposal(id).await?);
    let threshold = Consortium::setThresholdCall { newThreshold: 3 };
    let (tx, id) = first.propose(consortium, &threshold).await?;
    table.record("Consortium", tx);
    table.record("Consortium", second_hospital.approve_proposal(id).await?);
    table.record("Consortium", second_hospital.execute_proposal(id).await?);
    let withdrawn = Roles::revokePhysicianCall {
        physician: address(LOCUM)?,
    };
    let (tx, id) = first
        .propose(deployment.contracts.roles, &withdrawn)
        .await?;
    table.record("Consortium", tx);
    table.record("Consortium", first.cancel_proposal(id).await?);

    // Revocations.
    table.record("Permissions", patient.revoke(address(PARAMEDIC)?).await?);
    table.record("Roles", patient.revoke_hub(hub_addr).await?);
    table.record("Roles", hospital.revoke_proxy(proxy_addr).await?);
    table.record("Roles", hospital.revoke_physician(physician_addr).await?);
    table.record(
        "Roles",
        hospital
            .offer_proxy(address(SECOND_PROXY)?, B256::ZERO)
            .await?,
    );
    table.record(
        "Roles",
        hospital.withdraw_offer(address(SECOND_PROXY)?).await?,
    );
    Ok(table)
}

/// Replaces the text between `<!-- gas-table:begin -->` and
/// `<!-- gas-table:end -->` in `doc`; `None` if the markers are missing.
pub fn splice_into(doc: &str, table_markdown: &str) -> Option<String> {
    const BEGIN: &str = "<!-- gas-table:begin -->";
    const END: &str = "<!-- gas-table:end -->";
    let start = doc.find(BEGIN)? + BEGIN.len();
    let end = start + doc[start..].find(END)?;
    Some(format!(
        "{}\n{}{}",
        &doc[..start],
        table_markdown,
        &doc[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_only_between_the_markers() {
        let doc = "intro\n<!-- gas-table:begin -->\nold\n<!-- gas-table:end -->\noutro\n";
        let spliced = splice_into(doc, "new\n").unwrap();
        assert_eq!(
            spliced,
            "intro\n<!-- gas-table:begin -->\nnew\n<!-- gas-table:end -->\noutro\n"
        );
        assert!(splice_into("no markers", "x").is_none());
    }

    #[test]
    fn markdown_has_one_row_per_function_with_min_mean_max() {
        let mut table = GasTable::default();
        let tx = |gas| TxOutcome {
            call: "anchor",
            hash: B256::ZERO,
            gas_used: gas,
            block: 1,
        };
        table.record("Anchors", tx(100));
        table.record("Anchors", tx(200));
        let md = table.to_markdown();
        assert!(
            md.contains("| Anchors | anchor | 2 | 100 | 150 | 200 |"),
            "{md}"
        );
    }
}
