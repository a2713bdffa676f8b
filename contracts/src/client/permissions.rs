//! Permissions: scoped grants with sticky revocation, the emergency policy
//! and emergency access, and listing grants per patient and per physician.

use alloy::primitives::{Address, B256};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;

use super::{GlycoClient, event_in};
use crate::bindings::Permissions;
use crate::error::{ChainError, Contract};
use crate::model::{
    DataKinds, EmergencyAccess, EmergencyPolicy, Expiry, GrantRecord, GrantScope, TxOutcome,
};

/// Grants read per page (the contract's MAX_PAGE).
const PAGE: u64 = 100;

impl GlycoClient {
    /// The patient (this client's key) grants `grantee` read access to
    /// `scope` until `expiry`, replacing any earlier grant to them. Returns
    /// the transaction and the new grant's id.
    pub async fn grant(
        &self,
        grantee: Address,
        policy_id: B256,
        scope: GrantScope,
        expiry: Expiry,
    ) -> Result<(TxOutcome, u64), ChainError> {
        let builder = self.permissions.grant(
            grantee,
            policy_id,
            scope.kinds.bits(),
            scope.data_from,
            scope.data_until.unwrap_or(0),
            expiry.to_chain(),
        );
        let call = "grant";
        let (outcome, receipt) = self
            .send_with_receipt(call, Contract::Permissions, builder)
            .await?;
        let event = event_in::<Permissions::PermissionGranted>(call, &receipt)?;
        Ok((outcome, saturating_u64(event.grantId)))
    }

    /// Ends the patient's current grant to `grantee`.
    pub async fn revoke(&self, grantee: Address) -> Result<TxOutcome, ChainError> {
        self.send(
            "revoke",
            Contract::Permissions,
            self.permissions.revoke(grantee),
        )
        .await
    }

    pub async fn set_emergency_policy(
        &self,
        policy: EmergencyPolicy,
    ) -> Result<TxOutcome, ChainError> {
        let builder = self.permissions.setEmergencyPolicy(
            policy.kinds.bits(),
            policy.max_duration_secs,
            policy.lookback_secs,
            policy.enabled,
        );
        self.send("setEmergencyPolicy", Contract::Permissions, builder)
            .await
    }

    /// An emergency physician opens time-limited access to `patient` under
    /// the patient's emergency policy; returns the grant id.
    pub async fn emergency_access(&self, patient: Address) -> Result<(TxOutcome, u64), ChainError> {
        let call = "emergencyAccess";
        let builder = self.permissions.emergencyAccess(patient);
        let (outcome, receipt) = self
            .send_with_receipt(call, Contract::Permissions, builder)
            .await?;
        let event = event_in::<Permissions::EmergencyAccessOpened>(call, &receipt)?;
        Ok((outcome, saturating_u64(event.grantId)))
    }

    pub async fn emergency_policy_of(
        &self,
        patient: Address,
    ) -> Result<EmergencyPolicy, ChainError> {
        let p = self
            .view(
                "emergencyPolicyOf",
                Contract::Permissions,
                self.permissions.emergencyPolicyOf(patient),
            )
            .await?;
        Ok(EmergencyPolicy {
            kinds: DataKinds::from_bits(p.kinds).unwrap_or_default(),
            max_duration_secs: p.maxDuration,
            lookback_secs: p.lookback,
            enabled: p.enabled,
        })
    }

    /// Whether `grantee` holds a live grant from `patient`.
    pub async fn can_read(&self, patient: Address, grantee: Address) -> Result<bool, ChainError> {
        self.view(
            "canRead",
            Contract::Permissions,
            self.permissions.canRead(patient, grantee),
        )
        .await
    }

    pub async fn is_grant_live(&self, grant_id: u64) -> Result<bool, ChainError> {
        self.view(
            "isLive",
            Contract::Permissions,
            self.permissions
                .isLive(grant_id.try_into().unwrap_or_default()),
        )
        .await
    }

    /// Grant `grant_id` (live or not), if it exists.
    pub async fn grant_of(&self, grant_id: u64) -> Result<Option<GrantRecord>, ChainError> {
        let g = self
            .view(
                "grantOf",
                Contract::Permissions,
                self.permissions
                    .grantOf(grant_id.try_into().unwrap_or_default()),
            )
            .await?;
        Ok((g.patient != Address::ZERO).then(|| grant_record(grant_id, &g)))
    }

    /// The patient's latest grant to `grantee` (live or not), if any.
    pub async fn current_grant(
        &self,
        patient: Address,
        grantee: Address,
    ) -> Result<Option<GrantRecord>, ChainError> {
        let id = self
            .view(
                "currentGrantId",
                Contract::Permissions,
                self.permissions.currentGrantId(patient, grantee),
            )
            .await?;
        if id.is_zero() {
            return Ok(None);
        }
        let g = self
            .view(
                "grantOf",
                Contract::Permissions,
                self.permissions.grantOf(id),
            )
            .await?;
        Ok(Some(grant_record(saturating_u64(id), &g)))
    }

    /// Every grant the patient made, oldest first.
    pub async fn grants_of_patient(
        &self,
        patient: Address,
    ) -> Result<Vec<GrantRecord>, ChainError> {
        let count = self
            .view(
                "grantCountOfPatient",
                Contract::Permissions,
                self.permissions.grantCountOfPatient(patient),
            )
            .await?;
        let mut all = Vec::new();
        let mut offset = 0u64;
        while offset < saturating_u64(count) {
            let builder = self.permissions.grantsOfPatient(
                patient,
                offset.try_into().unwrap_or_default(),
                PAGE.try_into().unwrap_or_default(),
            );
            let page = self
                .view("grantsOfPatient", Contract::Permissions, builder)
                .await?;
            append_page(&mut all, &page.ids, &page.page);
            offset += PAGE;
        }
        Ok(all)
    }

    /// Every grant made to the physician, oldest first.
    pub async fn grants_of_grantee(
        &self,
        grantee: Address,
    ) -> Result<Vec<GrantRecord>, ChainError> {
        let count = self
            .view(
                "grantCountOfGrantee",
                Contract::Permissions,
                self.permissions.grantCountOfGrantee(grantee),
            )
            .await?;
        let mut all = Vec::new();
        let mut offset = 0u64;
        while offset < saturating_u64(count) {
            let builder = self.permissions.grantsOfGrantee(
                grantee,
                offset.try_into().unwrap_or_default(),
                PAGE.try_into().unwrap_or_default(),
            );
            let page = self
                .view("grantsOfGrantee", Contract::Permissions, builder)
                .await?;
            append_page(&mut all, &page.ids, &page.page);
            offset += PAGE;
        }
        Ok(all)
    }

    /// Emergency accesses opened for the patient in `[from_block, to_block]`
    /// (`None`: the head), in chain order; the hub turns them into notifications.
    pub async fn emergency_accesses(
        &self,
        patient: Address,
        from_block: u64,
        to_block: Option<u64>,
    ) -> Result<Vec<EmergencyAccess>, ChainError> {
        let call = "eth_getLogs(EmergencyAccessOpened)";
        let filter = Filter::new()
            .address(self.deployment.contracts.permissions)
            .event_signature(Permissions::EmergencyAccessOpened::SIGNATURE_HASH)
            .topic1(patient.into_word());
        let logs = self.logs(call, filter, from_block, to_block).await?;
        logs.iter()
            .map(|log| {
                let block = log.block_number.unwrap_or_default();
                let e = log
                    .log_decode::<Permissions::EmergencyAccessOpened>()
                    .map_err(|_| ChainError::UndecodableLog { call, block })?
                    .inner
                    .data;
                Ok(EmergencyAccess {
                    block,
                    physician: e.physician,
                    entity: e.entity,
                    grant_id: saturating_u64(e.grantId),
                    expires_at: e.expiresAt,
                })
            })
            .collect()
    }
}

fn append_page(
    all: &mut Vec<GrantRecord>,
    ids: &[alloy::primitives::U256],
    page: &[Permissions::Grant],
) {
    for (id, g) in ids.iter().zip(page) {
        all.push(grant_record(saturating_u64(*id), g));
    }
}

pub(super) fn saturating_u64(value: alloy::primitives::U256) -> u64 {
    value.try_into().unwrap_or(u64::MAX)
}

fn grant_record(id: u64, g: &Permissions::Grant) -> GrantRecord {
    GrantRecord {
        id,
        patient: g.patient,
        grantee: g.grantee,
        entity: g.entity,
        epoch: g.epoch,
        policy_id: g.policyId,
        scope: GrantScope {
            kinds: DataKinds::from_bits(g.kinds).unwrap_or_default(),
            data_from: g.dataFrom,
            data_until: (g.dataUntil != 0).then_some(g.dataUntil),
        },
        emergency: g.emergency,
        revoked: g.revoked,
        granted_at: g.grantedAt,
        expiry: Expiry::from_chain(g.expiresAt),
    }
}
