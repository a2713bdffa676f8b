//! Devices: registration by the patient (or a hub the patient delegated to),
//! the dispute path, and the change history the hub's mirror replays.

use alloy::primitives::Address;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;

use super::GlycoClient;
use crate::bindings::Devices;
use crate::device_id::DeviceId;
use crate::error::{ChainError, Contract};
use crate::model::{DeviceChange, DeviceChangeKind, DeviceKind, DeviceRecord, TxOutcome};

impl GlycoClient {
    pub async fn add_device(
        &self,
        patient: Address,
        device: DeviceId,
        kind: DeviceKind,
    ) -> Result<TxOutcome, ChainError> {
        let builder = self.devices.addDevice(patient, device.0, kind.into());
        self.send("addDevice", Contract::Devices, builder).await
    }

    pub async fn remove_device(
        &self,
        patient: Address,
        device: DeviceId,
    ) -> Result<TxOutcome, ChainError> {
        let builder = self.devices.removeDevice(patient, device.0);
        self.send("removeDevice", Contract::Devices, builder).await
    }

    /// The dispute path: the admin, or the physician who registered the
    /// holding patient, frees a squatted device.
    pub async fn release_device(&self, device: DeviceId) -> Result<TxOutcome, ChainError> {
        self.send(
            "releaseDevice",
            Contract::Devices,
            self.devices.releaseDevice(device.0),
        )
        .await
    }

    pub async fn is_registered(
        &self,
        patient: Address,
        device: DeviceId,
    ) -> Result<bool, ChainError> {
        let builder = self.devices.isRegistered(patient, device.0);
        self.view("isRegistered", Contract::Devices, builder).await
    }

    /// The device's record; `None` if it was never registered.
    pub async fn device_of(&self, device: DeviceId) -> Result<Option<DeviceRecord>, ChainError> {
        let d = self
            .view(
                "deviceOf",
                Contract::Devices,
                self.devices.deviceOf(device.0),
            )
            .await?;
        if d.patient.is_zero() {
            return Ok(None);
        }
        Ok(Some(DeviceRecord {
            patient: d.patient,
            kind: DeviceKind::from_u8(d.kind),
            active: d.active,
            added_at: d.addedAt,
        }))
    }

    /// The patient's active devices.
    pub async fn devices_of(&self, patient: Address) -> Result<Vec<DeviceId>, ChainError> {
        let ids = self
            .view(
                "devicesOf",
                Contract::Devices,
                self.devices.devicesOf(patient),
            )
            .await?;
        Ok(ids.into_iter().map(DeviceId).collect())
    }

    /// The patient's device additions, removals and releases in
    /// `[from_block, to_block]`, in chain order. The hub's registry mirror
    /// replays these. A log of ours that does not decode is an error, never
    /// skipped: a mirror that missed a removal would admit a removed device.
    pub async fn device_changes(
        &self,
        patient: Address,
        from_block: u64,
        to_block: u64,
    ) -> Result<Vec<DeviceChange>, ChainError> {
        let call = "eth_getLogs(Devices)";
        let filter = Filter::new()
            .address(self.deployment.contracts.devices)
            .event_signature(vec![
                Devices::DeviceAdded::SIGNATURE_HASH,
                Devices::DeviceRemoved::SIGNATURE_HASH,
                Devices::DeviceReleased::SIGNATURE_HASH,
            ])
            .topic1(patient.into_word());
        let logs = self.logs(call, filter, from_block, Some(to_block)).await?;
        let mut changes = Vec::with_capacity(logs.len());
        for log in logs {
            let block = log.block_number.unwrap_or_default();
            let log_index = log.log_index.unwrap_or_default();
            let undecodable = |_| ChainError::UndecodableLog { call, block };
            let (device, change, by) = match log.topic0() {
                Some(&Devices::DeviceAdded::SIGNATURE_HASH) => {
                    let e = log
                        .log_decode::<Devices::DeviceAdded>()
                        .map_err(undecodable)?;
                    let e = e.inner.data;
                    let kind = DeviceKind::from_u8(e.kind);
                    (e.deviceId, DeviceChangeKind::Added(kind), e.by)
                }
                Some(&Devices::DeviceRemoved::SIGNATURE_HASH) => {
                    let e = log
                        .log_decode::<Devices::DeviceRemoved>()
                        .map_err(undecodable)?;
                    let e = e.inner.data;
                    (e.deviceId, DeviceChangeKind::Removed, e.by)
                }
                Some(&Devices::DeviceReleased::SIGNATURE_HASH) => {
                    let e = log
                        .log_decode::<Devices::DeviceReleased>()
                        .map_err(undecodable)?;
                    let e = e.inner.data;
                    (e.deviceId, DeviceChangeKind::Released, e.by)
                }
                _ => return Err(ChainError::UndecodableLog { call, block }),
            };
            changes.push(DeviceChange {
                block,
                log_index,
                device: DeviceId(device),
                change,
                by,
            });
        }
        Ok(changes)
    }
}
