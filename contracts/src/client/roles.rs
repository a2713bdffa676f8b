//! Roles: the consortium admin, offers and acceptances, revocations, hubs
//! with their consent, and patient key rotation.

use alloy::primitives::{Address, B256};

use super::GlycoClient;
use crate::consent::{self, KeyRotation, SignedHubConsent, SignedKeyRotation};
use crate::error::{ChainError, Contract};
use crate::model::{
    EntityKind, EntityRecord, HubRecord, PhysicianRecord, ProxyRecord, Role, TxOutcome, UnixSeconds,
};

impl GlycoClient {
    pub async fn admin(&self) -> Result<Address, ChainError> {
        self.view("admin", Contract::Roles, self.roles.admin())
            .await
    }

    pub async fn pending_admin(&self) -> Result<Option<Address>, ChainError> {
        let pending = self
            .view("pendingAdmin", Contract::Roles, self.roles.pendingAdmin())
            .await?;
        Ok((!pending.is_zero()).then_some(pending))
    }

    /// Names the next admin (step one of two).
    pub async fn transfer_admin(&self, new_admin: Address) -> Result<TxOutcome, ChainError> {
        self.send(
            "transferAdmin",
            Contract::Roles,
            self.roles.transferAdmin(new_admin),
        )
        .await
    }

    /// The named admin takes over (step two).
    pub async fn accept_admin(&self) -> Result<TxOutcome, ChainError> {
        self.send("acceptAdmin", Contract::Roles, self.roles.acceptAdmin())
            .await
    }

    // ---- offers ------------------------------------------------------------

    /// The admin offers the entity role; bound once the entity accepts.
    pub async fn offer_entity(
        &self,
        entity: Address,
        kind: EntityKind,
        name: &str,
    ) -> Result<TxOutcome, ChainError> {
        let builder = self.roles.offerEntity(entity, kind.into(), name.to_owned());
        self.send("offerEntity", Contract::Roles, builder).await
    }

    /// The admin offers the physician role at `entity`.
    pub async fn offer_physician(
        &self,
        physician: Address,
        entity: Address,
    ) -> Result<TxOutcome, ChainError> {
        let builder = self.roles.offerPhysician(physician, entity);
        self.send("offerPhysician", Contract::Roles, builder).await
    }

    /// An active physician offers registration to a patient's key.
    pub async fn register_patient(&self, patient: Address) -> Result<TxOutcome, ChainError> {
        self.send(
            "registerPatient",
            Contract::Roles,
            self.roles.registerPatient(patient),
        )
        .await
    }

    /// An active hospital offers the proxy role to a server key, with its iroh node id.
    pub async fn offer_proxy(
        &self,
        proxy: Address,
        node_id: B256,
    ) -> Result<TxOutcome, ChainError> {
        self.send(
            "offerProxy",
            Contract::Roles,
            self.roles.offerProxy(proxy, node_id),
        )
        .await
    }

    pub async fn withdraw_offer(&self, account: Address) -> Result<TxOutcome, ChainError> {
        self.send(
            "withdrawOffer",
            Contract::Roles,
            self.roles.withdrawOffer(account),
        )
        .await
    }

    /// The sender accepts the `role` that `offered_by` offered it.
    pub async fn accept_role(
        &self,
        offered_by: Address,
        role: Role,
    ) -> Result<TxOutcome, ChainError> {
        self.send(
            "acceptRole",
            Contract::Roles,
            self.roles.acceptRole(offered_by, role.into()),
        )
        .await
    }

    /// The role `offered_by` offers `account`, if any.
    pub async fn offered_role(
        &self,
        account: Address,
        offered_by: Address,
    ) -> Result<Option<Role>, ChainError> {
        let offer = self
            .view(
                "offerOf",
                Contract::Roles,
                self.roles.offerOf(account, offered_by),
            )
            .await?;
        Ok(Role::from_u8(offer.role).filter(|r| *r != Role::None))
    }

    // ---- revocations --------------------------------------------------------

    pub async fn revoke_entity(&self, entity: Address) -> Result<TxOutcome, ChainError> {
        self.send(
            "revokeEntity",
            Contract::Roles,
            self.roles.revokeEntity(entity),
        )
        .await
    }

    /// The admin, or the physician's own entity, ends the enrolment.
    pub async fn revoke_physician(&self, physician: Address) -> Result<TxOutcome, ChainError> {
        self.send(
            "revokePhysician",
            Contract::Roles,
            self.roles.revokePhysician(physician),
        )
        .await
    }

    /// The admin, or the proxy's hospital, ends a proxy's role.
    pub async fn revoke_proxy(&self, proxy: Address) -> Result<TxOutcome, ChainError> {
        self.send(
            "revokeProxy",
            Contract::Roles,
            self.roles.revokeProxy(proxy),
        )
        .await
    }

    // ---- hubs -----------------------------------------------------------------

    /// The hub's consent to serve `patient` until `deadline`, signed with
    /// this client's key (the hub's). The patient submits it with
    /// [`GlycoClient::authorise_hub`].
    pub async fn sign_hub_consent(
        &self,
        patient: Address,
        deadline: UnixSeconds,
    ) -> Result<SignedHubConsent, ChainError> {
        let call = "signHubConsent";
        let signer = self.signer(call)?;
        let nonce = self
            .view(
                "hubConsentNonce",
                Contract::Roles,
                self.roles.hubConsentNonce(signer.address()),
            )
            .await?;
        let domain =
            consent::roles_domain(self.deployment.chain_id, self.deployment.contracts.roles);
        consent::sign_hub_consent(signer, &domain, patient, nonce, deadline)
            .map_err(|source| ChainError::Sign { call, source })
    }

    /// The patient binds a hub that consented; `manage_devices` delegates
    /// adding and removing devices to it.
    pub async fn authorise_hub(
        &self,
        consent: &SignedHubConsent,
        manage_devices: bool,
    ) -> Result<TxOutcome, ChainError> {
        let builder = self.roles.authoriseHub(
            consent.hub,
            manage_devices,
            consent.deadline.get(),
            consent.signature.clone(),
        );
        self.send("authoriseHub", Contract::Roles, builder).await
    }

    pub async fn set_hub_device_power(
        &self,
        hub: Address,
        manage_devices: bool,
    ) -> Result<TxOutcome, ChainError> {
        let builder = self.roles.setHubDevicePower(hub, manage_devices);
        self.send("setHubDevicePower", Contract::Roles, builder)
            .await
    }

    pub async fn revoke_hub(&self, hub: Address) -> Result<TxOutcome, ChainError> {
        self.send("revokeHub", Contract::Roles, self.roles.revokeHub(hub))
            .await
    }

    /// The patient a hub acts for, if any.
    pub async fn hub_patient(&self, hub: Address) -> Result<Option<Address>, ChainError> {
        let patient = self
            .view("hubPatient", Contract::Roles, self.roles.hubPatient(hub))
            .await?;
        Ok((!patient.is_zero()).then_some(patient))
    }

    pub async fn hub_of(&self, hub: Address) -> Result<Option<HubRecord>, ChainError> {
        let h = self
            .view("hubOf", Contract::Roles, self.roles.hubOf(hub))
            .await?;
        Ok((!h.patient.is_zero()).then_some(HubRecord {
            patient: h.patient,
            may_manage_devices: h.mayManageDevices,
        }))
    }

    // ---- patient key rotation -------------------------------------------------

    /// Signs a key rotation with this client's key: the new key's consent, or
    /// the registering physician's co-signature.
    pub async fn sign_key_rotation(
        &self,
        rotation: &KeyRotation,
    ) -> Result<SignedKeyRotation, ChainError> {
        let call = "signKeyRotation";
        let signer = self.signer(call)?;
        let domain =
            consent::roles_domain(self.deployment.chain_id, self.deployment.contracts.roles);
        consent::sign_key_rotation(signer, &domain, rotation)
            .map_err(|source| ChainError::Sign { call, source })
    }

    /// Moves the patient record to a new key: sent by the current key (or
    /// the admin), with the new key's and the registering physician's
    /// signatures over the same rotation.
    pub async fn rotate_patient_key(
        &self,
        new_key_consent: &SignedKeyRotation,
        physician_cosignature: &SignedKeyRotation,
    ) -> Result<TxOutcome, ChainError> {
        let r = &new_key_consent.rotation;
        let builder = self.roles.rotatePatientKey(
            r.patient,
            r.new_key,
            r.deadline.get(),
            new_key_consent.signature.clone(),
            physician_cosignature.signature.clone(),
        );
        self.send("rotatePatientKey", Contract::Roles, builder)
            .await
    }

    // ---- views -------------------------------------------------------------

    /// The account's role; `None` if the chain holds a role this build does
    /// not know.
    pub async fn role_of(&self, account: Address) -> Result<Option<Role>, ChainError> {
        let raw = self
            .view("roleOf", Contract::Roles, self.roles.roleOf(account))
            .await?;
        Ok(Role::from_u8(raw))
    }

    pub async fn is_active_physician(&self, account: Address) -> Result<bool, ChainError> {
        self.view(
            "isActivePhysician",
            Contract::Roles,
            self.roles.isActivePhysician(account),
        )
        .await
    }

    /// An active physician of an active emergency service.
    pub async fn is_emergency_physician(&self, account: Address) -> Result<bool, ChainError> {
        self.view(
            "isEmergencyPhysician",
            Contract::Roles,
            self.roles.isEmergencyPhysician(account),
        )
        .await
    }

    pub async fn is_active_hospital(&self, account: Address) -> Result<bool, ChainError> {
        self.view(
            "isActiveHospital",
            Contract::Roles,
            self.roles.isActiveHospital(account),
        )
        .await
    }

    pub async fn is_active_proxy(&self, account: Address) -> Result<bool, ChainError> {
        self.view(
            "isActiveProxy",
            Contract::Roles,
            self.roles.isActiveProxy(account),
        )
        .await
    }

    pub async fn active_hospitals(&self) -> Result<u32, ChainError> {
        self.view(
            "activeHospitals",
            Contract::Roles,
            self.roles.activeHospitals(),
        )
        .await
    }

    pub async fn entity_of(&self, entity: Address) -> Result<EntityRecord, ChainError> {
        let e = self
            .view("entityOf", Contract::Roles, self.roles.entityOf(entity))
            .await?;
        Ok(EntityRecord {
            kind: EntityKind::from_u8(e.kind),
            active: e.active,
            epoch: e.epoch,
            name: e.name,
        })
    }

    pub async fn physician_of(&self, physician: Address) -> Result<PhysicianRecord, ChainError> {
        let p = self
            .view(
                "physicianOf",
                Contract::Roles,
                self.roles.physicianOf(physician),
            )
            .await?;
        Ok(PhysicianRecord {
            entity: p.entity,
            entity_epoch: p.entityEpoch,
            epoch: p.epoch,
            active: p.active,
        })
    }

    pub async fn proxy_of(&self, proxy: Address) -> Result<ProxyRecord, ChainError> {
        let p = self
            .view("proxyOf", Contract::Roles, self.roles.proxyOf(proxy))
            .await?;
        Ok(ProxyRecord {
            hospital: p.hospital,
            hospital_epoch: p.hospitalEpoch,
            active: p.active,
            node_id: p.nodeId,
        })
    }

    /// The physician who registered the patient (zero when not a patient).
    pub async fn registered_by(&self, patient: Address) -> Result<Address, ChainError> {
        self.view(
            "registeredBy",
            Contract::Roles,
            self.roles.registeredBy(patient),
        )
        .await
    }

    /// The key that currently acts for a patient record.
    pub async fn patient_key(&self, patient: Address) -> Result<Option<Address>, ChainError> {
        let key = self
            .view(
                "patientKey",
                Contract::Roles,
                self.roles.patientKey(patient),
            )
            .await?;
        Ok((!key.is_zero()).then_some(key))
    }

    /// The patient record a current patient key acts for.
    pub async fn patient_of_key(&self, key: Address) -> Result<Option<Address>, ChainError> {
        let patient = self
            .view(
                "patientOfKey",
                Contract::Roles,
                self.roles.patientOfKey(key),
            )
            .await?;
        Ok((!patient.is_zero()).then_some(patient))
    }

    pub async fn acts_for(&self, account: Address, patient: Address) -> Result<bool, ChainError> {
        self.view(
            "actsFor",
            Contract::Roles,
            self.roles.actsFor(account, patient),
        )
        .await
    }

    pub async fn may_manage_devices(
        &self,
        account: Address,
        patient: Address,
    ) -> Result<bool, ChainError> {
        let builder = self.roles.mayManageDevices(account, patient);
        self.view("mayManageDevices", Contract::Roles, builder)
            .await
    }

    // ---- the patient's umbral key and the entities' iroh nodes --------------

    /// Publishes the patient's umbral public key (33-byte compressed point);
    /// the patient's key or its authorised hub sends this.
    pub async fn set_patient_pre_key(
        &self,
        patient: Address,
        pre_key: &[u8],
    ) -> Result<TxOutcome, ChainError> {
        let builder = self
            .roles
            .setPatientPreKey(patient, pre_key.to_vec().into());
        self.send("setPatientPreKey", Contract::Roles, builder)
            .await
    }

    /// The patient's published umbral public key, if any.
    pub async fn patient_pre_key(&self, patient: Address) -> Result<Option<Vec<u8>>, ChainError> {
        let key = self
            .view(
                "patientPreKey",
                Contract::Roles,
                self.roles.patientPreKey(patient),
            )
            .await?;
        Ok((!key.is_empty()).then(|| key.to_vec()))
    }

    /// The physician (this client's key) publishes their umbral public key.
    pub async fn set_physician_pre_key(&self, pre_key: &[u8]) -> Result<TxOutcome, ChainError> {
        let builder = self.roles.setPhysicianPreKey(pre_key.to_vec().into());
        self.send("setPhysicianPreKey", Contract::Roles, builder)
            .await
    }

    /// The physician's published umbral public key, if any.
    pub async fn physician_pre_key(
        &self,
        physician: Address,
    ) -> Result<Option<Vec<u8>>, ChainError> {
        let key = self
            .view(
                "physicianPreKey",
                Contract::Roles,
                self.roles.physicianPreKey(physician),
            )
            .await?;
        Ok((!key.is_empty()).then(|| key.to_vec()))
    }

    /// An active entity enrols an iroh node it runs.
    pub async fn enrol_node(&self, node_id: B256) -> Result<TxOutcome, ChainError> {
        self.send("enrolNode", Contract::Roles, self.roles.enrolNode(node_id))
            .await
    }

    /// The node's entity, or the admin, retires it.
    pub async fn retire_node(&self, node_id: B256) -> Result<TxOutcome, ChainError> {
        self.send(
            "retireNode",
            Contract::Roles,
            self.roles.retireNode(node_id),
        )
        .await
    }

    /// The active entity running `node_id`, if any.
    pub async fn active_node_entity(&self, node_id: B256) -> Result<Option<Address>, ChainError> {
        let entity = self
            .view(
                "activeNodeEntity",
                Contract::Roles,
                self.roles.activeNodeEntity(node_id),
            )
            .await?;
        Ok((!entity.is_zero()).then_some(entity))
    }
}
