//! The gas table: deploys a fresh set of contracts and calls every
//! state-changing function at least once, recording the gas each call used.
//! `glyco-chain gas-table` prints it; docs/BENCHMARKS.md keeps a copy.

use std::collections::BTreeMap;

use alloy::primitives::B256;
use alloy::transports::http::reqwest::Url;

use crate::client::GlycoClient;
use crate::deploy::{DeployError, deploy_all};
use crate::device_id::DeviceIdentity;
use crate::error::ChainError;
use crate::keys::{KeyError, dev_account};
use crate::model::{Access, AccessAction, BatchAnchor, DeviceKind, EntityKind, TxOutcome};
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
/// from `mnemonic`.
pub async fn measure(rpc_url: Url, mnemonic: &str) -> Result<GasTable, GasError> {
    let mut table = GasTable::default();
    let signer = |index| dev_account(mnemonic, index);
    let admin_key = signer(accounts::ADMIN)?;
    let deployed = deploy_all(rpc_url.clone(), admin_key.clone(), admin_key.address()).await?;
    for tx in &deployed.transactions {
        table.record(
            tx.call,
            TxOutcome {
                call: "constructor",
                ..*tx
            },
        );
    }
    let client = |index| -> Result<GlycoClient, KeyError> {
        Ok(GlycoClient::new(
            rpc_url.clone(),
            signer(index)?,
            deployed.deployment.clone(),
        ))
    };
    let address = |index| signer(index).map(|s| s.address());
    let (admin, hospital, physician, locum, patient, hub) = (
        client(accounts::ADMIN)?,
        client(accounts::HOSPITAL)?,
        client(accounts::PHYSICIAN)?,
        client(accounts::LOCUM)?,
        client(accounts::PATIENT)?,
        client(accounts::HUB)?,
    );
    let (hospital_addr, clinic_addr, physician_addr, locum_addr) = (
        address(accounts::HOSPITAL)?,
        address(accounts::CLINIC)?,
        address(accounts::PHYSICIAN)?,
        address(accounts::LOCUM)?,
    );
    let (patient_addr, hub_addr) = (address(accounts::PATIENT)?, address(accounts::HUB)?);

    table.record(
        "Roles",
        admin
            .enrol_entity(hospital_addr, EntityKind::Hospital, "St Luke's Hospital")
            .await?,
    );
    table.record(
        "Roles",
        admin
            .enrol_entity(clinic_addr, EntityKind::Clinic, "Riverside Diabetes Clinic")
            .await?,
    );
    table.record(
        "Roles",
        admin.enrol_physician(physician_addr, hospital_addr).await?,
    );
    table.record(
        "Roles",
        admin.enrol_physician(locum_addr, clinic_addr).await?,
    );
    table.record("Roles", physician.register_patient(patient_addr).await?);
    table.record(
        "Roles",
        locum
            .register_patient(address(accounts::SECOND_PATIENT)?)
            .await?,
    );
    table.record("Roles", patient.authorise_hub(hub_addr).await?);

    let glucometer = DeviceIdentity::ble("C0:26:DA:01:02:03")
        .expect("valid address")
        .device_id();
    let cgm = DeviceIdentity::ble("C0:26:DA:0A:0B:0C")
        .expect("valid address")
        .device_id();
    let cuff = DeviceIdentity::name("bp-cuff-1")
        .expect("valid name")
        .device_id();
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
    table.record(
        "Devices",
        hub.add_device(patient_addr, cuff, DeviceKind::BloodPressure)
            .await?,
    );
    table.record(
        "Devices",
        hub.remove_device(patient_addr, glucometer).await?,
    );
    table.record("Devices", hub.remove_device(patient_addr, cuff).await?);

    let policy = B256::repeat_byte(0x42);
    let emergency_policy = B256::repeat_byte(0x43);
    let in_a_day = now_secs() + 86_400;
    table.record(
        "Permissions",
        patient
            .grant(physician_addr, policy, Access::READ, None)
            .await?,
    );
    let emergency = patient.grant(
        locum_addr,
        emergency_policy,
        Access::READ_WRITE,
        Some(in_a_day),
    );
    table.record("Permissions", emergency.await?);
    table.record("Permissions", patient.revoke(locum_addr).await?);

    let data = B256::repeat_byte(0x99);
    let proxied = hospital.log_access(patient_addr, physician_addr, data, AccessAction::Reencrypt);
    table.record("AccessLog", proxied.await?);
    let own = physician.log_access(patient_addr, physician_addr, data, AccessAction::Read);
    table.record("AccessLog", own.await?);

    for (i, root) in [B256::repeat_byte(0xa1), B256::repeat_byte(0xa2)]
        .into_iter()
        .enumerate()
    {
        let start = 1_700_000_000 + 3600 * i as u64;
        let batch = BatchAnchor {
            root,
            window_start: start,
            window_end: start + 3599,
            count: 60,
        };
        table.record("Anchors", hub.anchor(patient_addr, batch).await?);
    }

    table.record("Roles", patient.revoke_hub(hub_addr).await?);
    table.record("Roles", admin.revoke_physician(locum_addr).await?);
    table.record("Roles", admin.revoke_entity(clinic_addr).await?);
    table.record(
        "Roles",
        admin.transfer_admin(address(accounts::NEXT_ADMIN)?).await?,
    );
    Ok(table)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
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
