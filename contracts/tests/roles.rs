//! Roles: the consortium admin, offers that bind nothing until accepted,
//! hubs with their own consent, revocations with epochs, key rotation.

mod support;

use std::time::Duration;

use alloy::primitives::{Address, B256};
use glyco_contracts::bindings::Roles::{self, RolesErrors};
use glyco_contracts::{EntityKind, KeyRotation, Refusal, Role, UnixSeconds};
use support::{World, accounts::*};

fn in_an_hour() -> UnixSeconds {
    UnixSeconds::now().plus(Duration::from_secs(3600))
}

#[tokio::test]
async fn an_offered_role_binds_nothing_until_the_key_accepts_it() {
    let world = World::empty().await;
    let admin = world.client(ADMIN);
    assert_eq!(admin.admin().await.unwrap(), world.addr(ADMIN));
    admin
        .offer_entity(world.addr(HOSPITAL), EntityKind::Hospital, "St Luke's")
        .await
        .unwrap();
    assert_eq!(
        admin.role_of(world.addr(HOSPITAL)).await.unwrap(),
        Some(Role::None)
    );
    assert_eq!(
        admin
            .offered_role(world.addr(HOSPITAL), world.addr(ADMIN))
            .await
            .unwrap(),
        Some(Role::Entity)
    );
    // Nobody else can take the offer, nor accept another role than offered.
    assert_refused!(
        world
            .client(STRANGER)
            .accept_role(world.addr(ADMIN), Role::Entity)
            .await,
        Refusal::Roles(RolesErrors::NoOffer(_))
    );
    let hospital = world.client(HOSPITAL);
    assert_refused!(
        hospital
            .accept_role(world.addr(ADMIN), Role::Physician)
            .await,
        Refusal::Roles(RolesErrors::NoOffer(_))
    );
    hospital
        .accept_role(world.addr(ADMIN), Role::Entity)
        .await
        .unwrap();
    assert_eq!(
        admin.role_of(world.addr(HOSPITAL)).await.unwrap(),
        Some(Role::Entity)
    );
    assert!(
        admin
            .is_active_hospital(world.addr(HOSPITAL))
            .await
            .unwrap()
    );
    let entity = admin.entity_of(world.addr(HOSPITAL)).await.unwrap();
    assert_eq!(
        (entity.kind, entity.epoch, entity.name.as_str()),
        (Some(EntityKind::Hospital), 1, "St Luke's")
    );
    assert_eq!(admin.active_hospitals().await.unwrap(), 1);
    // An offer is used once.
    assert_refused!(
        hospital.accept_role(world.addr(ADMIN), Role::Entity).await,
        Refusal::Roles(RolesErrors::NoOffer(_))
    );

    admin
        .offer_physician(world.addr(PHYSICIAN), world.addr(HOSPITAL))
        .await
        .unwrap();
    world
        .client(PHYSICIAN)
        .accept_role(world.addr(ADMIN), Role::Physician)
        .await
        .unwrap();
    assert!(
        admin
            .is_active_physician(world.addr(PHYSICIAN))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn offers_expire_and_can_be_withdrawn() {
    let world = World::empty().await;
    let admin = world.client(ADMIN);
    admin
        .offer_entity(world.addr(CLINIC), EntityKind::Clinic, "Riverside")
        .await
        .unwrap();
    admin.withdraw_offer(world.addr(CLINIC)).await.unwrap();
    assert_refused!(
        world
            .client(CLINIC)
            .accept_role(world.addr(ADMIN), Role::Entity)
            .await,
        Refusal::Roles(RolesErrors::NoOffer(_))
    );
    admin
        .offer_entity(world.addr(CLINIC), EntityKind::Clinic, "Riverside")
        .await
        .unwrap();
    world.advance_time(31 * 86_400).await;
    assert_refused!(
        world
            .client(CLINIC)
            .accept_role(world.addr(ADMIN), Role::Entity)
            .await,
        Refusal::Roles(RolesErrors::OfferExpired(_))
    );
}

#[tokio::test]
async fn only_the_admin_offers_entity_and_physician_roles() {
    let world = World::enrolled().await;
    for index in [HOSPITAL, PHYSICIAN, PATIENT, HUB, STRANGER] {
        let client = world.client(index);
        assert_refused!(
            client
                .offer_entity(world.addr(NEXT_ADMIN), EntityKind::Lab, "Fake Lab")
                .await,
            Refusal::Roles(RolesErrors::NotAdmin(_))
        );
        assert_refused!(
            client
                .offer_physician(world.addr(NEXT_ADMIN), world.addr(HOSPITAL))
                .await,
            Refusal::Roles(RolesErrors::NotAdmin(_))
        );
    }
    // A stranger's own "offer" cannot be accepted as an admin's: the offerer
    // must hold the power when the key accepts.
    assert_refused!(
        world
            .client(NEXT_ADMIN)
            .accept_role(world.addr(STRANGER), Role::Physician)
            .await,
        Refusal::Roles(RolesErrors::NoOffer(_))
    );
}

#[tokio::test]
async fn offers_refuse_bad_kinds_zero_addresses_long_names_and_taken_roles() {
    let world = World::enrolled().await;
    let admin = world.client(ADMIN);
    // Kind None (0) cannot be expressed through the typed client: call the raw binding.
    let roles = Roles::new(
        world.consortium.deployment.contracts.roles,
        admin.provider(),
    );
    let err = roles
        .offerEntity(world.addr(STRANGER), 0, "nothing".into())
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.as_decoded_interface_error::<RolesErrors>(),
            Some(RolesErrors::InvalidEntityKind(_))
        ),
        "{err}"
    );
    assert_refused!(
        admin
            .offer_entity(Address::ZERO, EntityKind::Lab, "zero")
            .await,
        Refusal::Roles(RolesErrors::ZeroAddress(_))
    );
    assert_refused!(
        admin
            .offer_entity(world.addr(STRANGER), EntityKind::Lab, &"x".repeat(65))
            .await,
        Refusal::Roles(RolesErrors::NameTooLong(_))
    );
    assert_refused!(
        admin
            .offer_entity(world.addr(HOSPITAL), EntityKind::Hospital, "again")
            .await,
        Refusal::Roles(RolesErrors::RoleTaken(_))
    );
    // A patient's key cannot also become a physician, nor a physician's an entity.
    assert_refused!(
        admin
            .offer_physician(world.addr(PATIENT), world.addr(HOSPITAL))
            .await,
        Refusal::Roles(RolesErrors::RoleTaken(_))
    );
    assert_refused!(
        admin
            .offer_entity(world.addr(PHYSICIAN), EntityKind::Lab, "x")
            .await,
        Refusal::Roles(RolesErrors::RoleTaken(_))
    );
    // A physician must belong to an active entity.
    admin.revoke_entity(world.addr(CLINIC)).await.unwrap();
    assert_refused!(
        admin
            .offer_physician(world.addr(STRANGER), world.addr(CLINIC))
            .await,
        Refusal::Roles(RolesErrors::NotActiveEntity(_))
    );
}

/// Exploit (v1): a physician registered a colleague's key as a patient and
/// blocked it from ever being a physician. Now registration is an offer the
/// key must accept, and an unaccepted offer blocks nothing.
#[tokio::test]
async fn a_physician_cannot_squat_a_colleagues_key_by_registering_it_as_a_patient() {
    let world = World::enrolled().await;
    let colleague = world.addr(NEXT_ADMIN);
    world
        .client(PHYSICIAN)
        .register_patient(colleague)
        .await
        .unwrap();
    let admin = world.client(ADMIN);
    assert_eq!(admin.role_of(colleague).await.unwrap(), Some(Role::None));
    admin
        .offer_physician(colleague, world.addr(HOSPITAL))
        .await
        .unwrap();
    world
        .client(NEXT_ADMIN)
        .accept_role(world.addr(ADMIN), Role::Physician)
        .await
        .unwrap();
    assert!(admin.is_active_physician(colleague).await.unwrap());
    // The stale patient offer can no longer be accepted.
    assert_refused!(
        world
            .client(NEXT_ADMIN)
            .accept_role(world.addr(PHYSICIAN), Role::Patient)
            .await,
        Refusal::Roles(RolesErrors::RoleTaken(_))
    );
}

#[tokio::test]
async fn a_patient_accepts_registration_only_from_a_physician_still_active() {
    let world = World::enrolled().await;
    let locum = world.client(LOCUM);
    assert_refused!(
        world
            .client(PATIENT)
            .register_patient(world.addr(STRANGER))
            .await,
        Refusal::Roles(RolesErrors::NotActivePhysician(_))
    );
    assert_refused!(
        locum.register_patient(Address::ZERO).await,
        Refusal::Roles(RolesErrors::ZeroAddress(_))
    );
    assert_refused!(
        locum.register_patient(world.addr(PATIENT)).await,
        Refusal::Roles(RolesErrors::RoleTaken(_))
    );
    locum.register_patient(world.addr(STRANGER)).await.unwrap();
    world
        .client(ADMIN)
        .revoke_physician(world.addr(LOCUM))
        .await
        .unwrap();
    assert_refused!(
        world
            .client(STRANGER)
            .accept_role(world.addr(LOCUM), Role::Patient)
            .await,
        Refusal::Roles(RolesErrors::NotActivePhysician(_))
    );
    let patient = world.client(PATIENT);
    assert_eq!(
        patient.registered_by(world.addr(PATIENT)).await.unwrap(),
        world.addr(PHYSICIAN)
    );
    assert_eq!(
        patient.patient_key(world.addr(PATIENT)).await.unwrap(),
        Some(world.addr(PATIENT))
    );
}

/// Exploit (v1): any registered patient could authorise someone else's new
/// hub first; the real patient got RoleTaken and the hub followed the
/// attacker's registry. Now the hub's own signature names its patient.
#[tokio::test]
async fn a_strangers_authorise_hub_is_refused_without_the_hubs_consent() {
    let world = World::enrolled().await;
    let new_hub = STRANGER;
    let hub = world.client(new_hub);
    let patient = world.client(PATIENT);
    let attacker = world.client(SECOND_PATIENT);

    // The hub's consent names the real patient; the attacker submits it.
    let consent = hub
        .sign_hub_consent(world.addr(PATIENT), in_an_hour())
        .await
        .unwrap();
    assert_refused!(
        attacker.authorise_hub(&consent, true).await,
        Refusal::Roles(RolesErrors::WrongSigner(_))
    );
    // Nor can the attacker forge one: signed by the attacker's key, not the hub's.
    let forged = world
        .client(SECOND_PATIENT)
        .sign_hub_consent(world.addr(SECOND_PATIENT), in_an_hour())
        .await
        .unwrap();
    let mut forged = forged;
    forged.hub = world.addr(new_hub);
    assert_refused!(
        attacker.authorise_hub(&forged, true).await,
        Refusal::Roles(RolesErrors::WrongSigner(_))
    );
    // Non-patients cannot authorise hubs at all.
    assert_refused!(
        world.client(PHYSICIAN).authorise_hub(&consent, false).await,
        Refusal::Roles(RolesErrors::NotPatient(_))
    );

    patient.authorise_hub(&consent, false).await.unwrap();
    assert_eq!(
        patient.hub_patient(world.addr(new_hub)).await.unwrap(),
        Some(world.addr(PATIENT))
    );
    assert!(
        !patient
            .may_manage_devices(world.addr(new_hub), world.addr(PATIENT))
            .await
            .unwrap(),
        "device power is given explicitly"
    );
    assert!(
        patient
            .acts_for(world.addr(new_hub), world.addr(PATIENT))
            .await
            .unwrap()
    );

    // A consent is used once: after a revoke, the same signature is void.
    patient.revoke_hub(world.addr(new_hub)).await.unwrap();
    assert_refused!(
        patient.authorise_hub(&consent, false).await,
        Refusal::Roles(RolesErrors::WrongSigner(_))
    );
}

#[tokio::test]
async fn a_hub_consent_expires_and_hubs_are_revoked_by_their_own_patient_only() {
    let world = World::enrolled().await;
    let patient = world.client(PATIENT);
    let consent = world
        .client(STRANGER)
        .sign_hub_consent(world.addr(PATIENT), in_an_hour())
        .await
        .unwrap();
    world.advance_time(2 * 3600).await;
    assert_refused!(
        patient.authorise_hub(&consent, false).await,
        Refusal::Roles(RolesErrors::ConsentExpired(_))
    );
    // A key with a role cannot become a hub.
    let consent = world
        .client(PHYSICIAN)
        .sign_hub_consent(
            world.addr(PATIENT),
            UnixSeconds::now().plus(Duration::from_secs(86_400)),
        )
        .await
        .unwrap();
    assert_refused!(
        patient.authorise_hub(&consent, false).await,
        Refusal::Roles(RolesErrors::RoleTaken(_))
    );
    assert_refused!(
        world
            .client(SECOND_PATIENT)
            .revoke_hub(world.addr(HUB))
            .await,
        Refusal::Roles(RolesErrors::NotHubOfPatient(_))
    );
    assert_refused!(
        world
            .client(SECOND_PATIENT)
            .set_hub_device_power(world.addr(HUB), false)
            .await,
        Refusal::Roles(RolesErrors::NotHubOfPatient(_))
    );
    patient.revoke_hub(world.addr(HUB)).await.unwrap();
    assert_eq!(patient.hub_patient(world.addr(HUB)).await.unwrap(), None);
    assert!(
        !patient
            .acts_for(world.addr(HUB), world.addr(PATIENT))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn revocation_ends_an_enrolment_and_re_enrolment_starts_a_new_epoch() {
    let world = World::enrolled().await;
    let admin = world.client(ADMIN);
    let c = &world.consortium;
    assert_eq!(
        admin.physician_of(world.addr(LOCUM)).await.unwrap().epoch,
        1
    );
    admin.revoke_physician(world.addr(LOCUM)).await.unwrap();
    assert!(!admin.is_active_physician(world.addr(LOCUM)).await.unwrap());
    assert_refused!(
        world
            .client(LOCUM)
            .register_patient(world.addr(NEXT_ADMIN))
            .await,
        Refusal::Roles(RolesErrors::NotActivePhysician(_))
    );
    c.enrol_physician(LOCUM, CLINIC).await.unwrap();
    assert_eq!(
        admin.physician_of(world.addr(LOCUM)).await.unwrap().epoch,
        2
    );

    // Revoking the clinic makes its physician inactive; re-enrolling the
    // clinic starts a new clinic epoch and does not revive the physician.
    admin.revoke_entity(world.addr(CLINIC)).await.unwrap();
    assert!(!admin.is_active_physician(world.addr(LOCUM)).await.unwrap());
    c.enrol_entity(CLINIC, EntityKind::Clinic, "Riverside")
        .await
        .unwrap();
    assert_eq!(admin.entity_of(world.addr(CLINIC)).await.unwrap().epoch, 2);
    assert!(!admin.is_active_physician(world.addr(LOCUM)).await.unwrap());
    c.enrol_physician(LOCUM, CLINIC).await.unwrap();
    assert_eq!(
        admin.physician_of(world.addr(LOCUM)).await.unwrap().epoch,
        3
    );

    assert_refused!(
        admin.revoke_entity(world.addr(PHYSICIAN)).await,
        Refusal::Roles(RolesErrors::NotActiveEntity(_))
    );
    assert_refused!(
        admin.revoke_physician(world.addr(HOSPITAL)).await,
        Refusal::Roles(RolesErrors::NotActivePhysician(_))
    );
    assert_refused!(
        world
            .client(STRANGER)
            .revoke_entity(world.addr(HOSPITAL))
            .await,
        Refusal::Roles(RolesErrors::NotAdmin(_))
    );
}

#[tokio::test]
async fn an_entity_revokes_its_own_physicians_and_proxies_only() {
    let world = World::enrolled().await;
    assert_refused!(
        world
            .client(CLINIC)
            .revoke_physician(world.addr(PHYSICIAN))
            .await,
        Refusal::Roles(RolesErrors::NotAllowed(_))
    );
    assert_refused!(
        world.client(CLINIC).revoke_proxy(world.addr(PROXY)).await,
        Refusal::Roles(RolesErrors::NotAllowed(_))
    );
    let hospital = world.client(HOSPITAL);
    assert!(hospital.is_active_proxy(world.addr(PROXY)).await.unwrap());
    hospital
        .revoke_physician(world.addr(PHYSICIAN))
        .await
        .unwrap();
    hospital.revoke_proxy(world.addr(PROXY)).await.unwrap();
    assert!(
        !hospital
            .is_active_physician(world.addr(PHYSICIAN))
            .await
            .unwrap()
    );
    assert!(!hospital.is_active_proxy(world.addr(PROXY)).await.unwrap());
}

#[tokio::test]
async fn proxies_are_offered_by_an_active_hospital_and_die_with_its_epoch() {
    let world = World::enrolled().await;
    let c = &world.consortium;
    // A clinic is not a hospital: it cannot run proxies.
    assert_refused!(
        world
            .client(CLINIC)
            .offer_proxy(world.addr(SECOND_PROXY), Default::default())
            .await,
        Refusal::Roles(RolesErrors::NotActiveHospital(_))
    );
    let reader = world.client(STRANGER);
    let proxy = reader.proxy_of(world.addr(PROXY)).await.unwrap();
    assert_eq!(proxy.hospital, world.addr(HOSPITAL));
    assert_eq!(
        proxy.node_id,
        glyco_contracts::B256::repeat_byte(PROXY as u8)
    );
    let admin = world.client(ADMIN);
    admin.revoke_entity(world.addr(HOSPITAL)).await.unwrap();
    assert!(!reader.is_active_proxy(world.addr(PROXY)).await.unwrap());
    c.enrol_entity(HOSPITAL, EntityKind::Hospital, "St Luke's")
        .await
        .unwrap();
    assert!(
        !reader.is_active_proxy(world.addr(PROXY)).await.unwrap(),
        "re-enrolling the hospital does not revive its old proxies"
    );
    c.enrol_proxy(HOSPITAL, PROXY).await.unwrap();
    assert!(reader.is_active_proxy(world.addr(PROXY)).await.unwrap());
}

#[tokio::test]
async fn the_admin_changes_only_in_two_steps() {
    let world = World::enrolled().await;
    let old = world.client(ADMIN);
    let new = world.client(NEXT_ADMIN);
    assert_refused!(
        new.transfer_admin(world.addr(NEXT_ADMIN)).await,
        Refusal::Roles(RolesErrors::NotAdmin(_))
    );
    assert_refused!(
        old.transfer_admin(Address::ZERO).await,
        Refusal::Roles(RolesErrors::ZeroAddress(_))
    );
    old.transfer_admin(world.addr(NEXT_ADMIN)).await.unwrap();
    // Nothing moved yet; a wrong address cannot accept.
    assert_eq!(new.admin().await.unwrap(), world.addr(ADMIN));
    assert_eq!(
        new.pending_admin().await.unwrap(),
        Some(world.addr(NEXT_ADMIN))
    );
    assert_refused!(
        world.client(STRANGER).accept_admin().await,
        Refusal::Roles(RolesErrors::NotPendingAdmin(_))
    );
    new.accept_admin().await.unwrap();
    assert_eq!(new.admin().await.unwrap(), world.addr(NEXT_ADMIN));
    assert_eq!(new.pending_admin().await.unwrap(), None);
    assert_refused!(
        old.offer_entity(world.addr(STRANGER), EntityKind::Lab, "Lab")
            .await,
        Refusal::Roles(RolesErrors::NotAdmin(_))
    );
    // An offer made by the old admin is void now.
    new.offer_entity(world.addr(STRANGER), EntityKind::Lab, "Lab")
        .await
        .unwrap();
    world
        .client(STRANGER)
        .accept_role(world.addr(NEXT_ADMIN), Role::Entity)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_patient_key_rotates_with_the_new_keys_consent_and_the_physicians_cosignature() {
    let world = World::enrolled().await;
    let record = world.addr(PATIENT);
    let new_key = world.addr(NEW_PATIENT_KEY);
    let rotation = KeyRotation {
        patient: record,
        old_key: record,
        new_key,
        deadline: in_an_hour(),
    };
    let consent = world
        .client(NEW_PATIENT_KEY)
        .sign_key_rotation(&rotation)
        .await
        .unwrap();
    let cosignature = world
        .client(PHYSICIAN)
        .sign_key_rotation(&rotation)
        .await
        .unwrap();
    let wrong_physician = world
        .client(LOCUM)
        .sign_key_rotation(&rotation)
        .await
        .unwrap();
    let patient = world.client(PATIENT);

    // Every signature must be the right key's.
    assert_refused!(
        patient.rotate_patient_key(&consent, &wrong_physician).await,
        Refusal::Roles(RolesErrors::WrongSigner(_))
    );
    assert_refused!(
        patient.rotate_patient_key(&cosignature, &cosignature).await,
        Refusal::Roles(RolesErrors::WrongSigner(_))
    );
    // Only the current key (or the admin) may move the record.
    assert_refused!(
        world
            .client(STRANGER)
            .rotate_patient_key(&consent, &cosignature)
            .await,
        Refusal::Roles(RolesErrors::NotAllowed(_))
    );

    patient
        .rotate_patient_key(&consent, &cosignature)
        .await
        .unwrap();
    let reader = world.client(STRANGER);
    assert_eq!(reader.patient_key(record).await.unwrap(), Some(new_key));
    assert_eq!(reader.patient_of_key(new_key).await.unwrap(), Some(record));
    assert_eq!(reader.role_of(record).await.unwrap(), Some(Role::Retired));
    // The record keeps its hub and devices; the new key acts, the old cannot.
    assert_eq!(
        reader.hub_patient(world.addr(HUB)).await.unwrap(),
        Some(record)
    );
    assert!(reader.may_manage_devices(new_key, record).await.unwrap());
    assert!(!reader.may_manage_devices(record, record).await.unwrap());
    // A retired key never takes a role again.
    assert_refused!(
        world.client(LOCUM).register_patient(record).await,
        Refusal::Roles(RolesErrors::RoleTaken(_))
    );
    // The same signatures cannot move the record again.
    assert_refused!(
        world
            .client(NEW_PATIENT_KEY)
            .rotate_patient_key(&consent, &cosignature)
            .await,
        Refusal::Roles(RolesErrors::RoleTaken(_))
    );
}

#[tokio::test]
async fn role_changes_emit_indexed_events() {
    let world = World::enrolled().await;
    let client = world.client(ADMIN);
    let roles = Roles::new(
        world.consortium.deployment.contracts.roles,
        client.provider(),
    );
    let entities = roles
        .EntityEnrolled_filter()
        .from_block(0)
        .query()
        .await
        .unwrap();
    assert_eq!(entities.len(), 2);
    let physicians = roles
        .PhysicianEnrolled_filter()
        .topic2(world.addr(HOSPITAL).into_word())
        .from_block(0)
        .query()
        .await
        .unwrap();
    assert_eq!(physicians.len(), 1);
    assert_eq!(physicians[0].0.physician, world.addr(PHYSICIAN));
    let patients = roles
        .PatientRegistered_filter()
        .topic1(world.addr(PATIENT).into_word())
        .from_block(0)
        .query()
        .await
        .unwrap();
    assert_eq!(patients.len(), 1);
    assert_eq!(patients[0].0.physician, world.addr(PHYSICIAN));
    let hubs = roles
        .HubAuthorised_filter()
        .from_block(0)
        .query()
        .await
        .unwrap();
    assert_eq!(hubs.len(), 1);
    assert!(hubs[0].0.mayManageDevices);
    let offers = roles
        .RoleOffered_filter()
        .from_block(0)
        .query()
        .await
        .unwrap();
    assert_eq!(
        offers.len(),
        7,
        "2 entities, 2 physicians, a proxy, 2 patients"
    );

    client.revoke_physician(world.addr(LOCUM)).await.unwrap();
    client.revoke_entity(world.addr(CLINIC)).await.unwrap();
    world
        .client(PATIENT)
        .revoke_hub(world.addr(HUB))
        .await
        .unwrap();
    let revoked = roles
        .PhysicianRevoked_filter()
        .from_block(0)
        .query()
        .await
        .unwrap();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].0.epoch, 1);
    assert_eq!(
        roles
            .EntityRevoked_filter()
            .from_block(0)
            .query()
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        roles
            .HubRevoked_filter()
            .from_block(0)
            .query()
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn the_senders_allowlist_holds_live_roles_and_pending_offers_only() {
    let world = World::enrolled().await;
    let admin = world.client(ADMIN);
    // A pending offer (the key must be able to accept it), a revoked
    // physician, a withdrawn offer and a retired key.
    admin
        .offer_entity(world.addr(THIRD_HOSPITAL), EntityKind::Hospital, "Royal")
        .await
        .unwrap();
    admin
        .offer_entity(world.addr(SECOND_HOSPITAL), EntityKind::Hospital, "Mercy")
        .await
        .unwrap();
    admin
        .withdraw_offer(world.addr(SECOND_HOSPITAL))
        .await
        .unwrap();
    admin.revoke_physician(world.addr(LOCUM)).await.unwrap();
    let rotation = KeyRotation {
        patient: world.addr(PATIENT),
        old_key: world.addr(PATIENT),
        new_key: world.addr(NEW_PATIENT_KEY),
        deadline: in_an_hour(),
    };
    let consent = world
        .client(NEW_PATIENT_KEY)
        .sign_key_rotation(&rotation)
        .await
        .unwrap();
    let cosigned = world
        .client(PHYSICIAN)
        .sign_key_rotation(&rotation)
        .await
        .unwrap();
    world
        .client(PATIENT)
        .rotate_patient_key(&consent, &cosigned)
        .await
        .unwrap();

    let allowed = world.client(STRANGER).allowed_senders().await.unwrap();
    for index in [
        ADMIN,
        HOSPITAL,
        CLINIC,
        PHYSICIAN,
        PROXY,
        NEW_PATIENT_KEY,
        SECOND_PATIENT,
        HUB,
        THIRD_HOSPITAL,
    ] {
        assert!(
            allowed.contains(&world.addr(index)),
            "account {index} missing: {allowed:?}"
        );
    }
    for index in [STRANGER, LOCUM, PATIENT, SECOND_HOSPITAL, NEXT_ADMIN] {
        assert!(
            !allowed.contains(&world.addr(index)),
            "account {index} allowed: {allowed:?}"
        );
    }
    let file = glyco_contracts::client::besu_accounts_allowlist(&allowed);
    assert!(file.contains(&format!("\"{}\"", world.addr(HUB))), "{file}");
}

#[tokio::test]
async fn a_patients_umbral_key_is_published_by_the_patient_or_its_hub_only() {
    let world = World::enrolled().await;
    let patient = world.client(PATIENT);
    let record = world.addr(PATIENT);
    assert_eq!(patient.patient_pre_key(record).await.unwrap(), None);

    let mut key = vec![0x02];
    key.extend([7u8; 32]);
    patient.set_patient_pre_key(record, &key).await.unwrap();
    assert_eq!(
        patient.patient_pre_key(record).await.unwrap(),
        Some(key.clone())
    );

    // Its hub may replace it (the hub creates the key pair).
    let hub = world.client(STRANGER);
    world
        .consortium
        .authorise_hub(PATIENT, STRANGER, false)
        .await
        .unwrap();
    key[0] = 0x03;
    hub.set_patient_pre_key(record, &key).await.unwrap();
    assert_eq!(
        patient.patient_pre_key(record).await.unwrap(),
        Some(key.clone())
    );

    // Nobody else: not another patient, not the physician, not the admin.
    for other in [SECOND_PATIENT, PHYSICIAN, ADMIN] {
        assert_refused!(
            world.client(other).set_patient_pre_key(record, &key).await,
            Refusal::Roles(RolesErrors::NotActingForPatient(_))
        );
    }
    // Only a compressed point's shape is accepted.
    for bad in [vec![0x04; 33], vec![0x02; 32], vec![0x02; 65], vec![]] {
        assert_refused!(
            patient.set_patient_pre_key(record, &bad).await,
            Refusal::Roles(RolesErrors::InvalidPreKey(_))
        );
    }
    // A revoked hub no longer may.
    patient.revoke_hub(world.addr(STRANGER)).await.unwrap();
    assert_refused!(
        hub.set_patient_pre_key(record, &key).await,
        Refusal::Roles(RolesErrors::NotActingForPatient(_))
    );
}

#[tokio::test]
async fn only_an_active_physician_publishes_their_own_umbral_key() {
    let world = World::enrolled().await;
    let physician = world.client(PHYSICIAN);
    let me = world.addr(PHYSICIAN);
    assert_eq!(physician.physician_pre_key(me).await.unwrap(), None);
    let mut key = vec![0x02; 33];
    physician.set_physician_pre_key(&key).await.unwrap();
    assert_eq!(
        physician.physician_pre_key(me).await.unwrap(),
        Some(key.clone())
    );
    // A new machine replaces it.
    key[0] = 0x03;
    physician.set_physician_pre_key(&key).await.unwrap();
    assert_eq!(
        world.client(ADMIN).physician_pre_key(me).await.unwrap(),
        Some(key.clone())
    );
    // Only a compressed point's shape is accepted.
    for bad in [vec![0x04; 33], vec![0x02; 32], vec![]] {
        assert_refused!(
            physician.set_physician_pre_key(&bad).await,
            Refusal::Roles(RolesErrors::InvalidPreKey(_))
        );
    }
    // Not a patient, not an admin, not a revoked physician.
    for other in [PATIENT, ADMIN] {
        assert_refused!(
            world.client(other).set_physician_pre_key(&key).await,
            Refusal::Roles(RolesErrors::NotActivePhysician(_))
        );
    }
    world.client(ADMIN).revoke_physician(me).await.unwrap();
    assert_refused!(
        physician.set_physician_pre_key(&key).await,
        Refusal::Roles(RolesErrors::NotActivePhysician(_))
    );
}

#[tokio::test]
async fn iroh_nodes_count_only_while_their_entity_is_active_in_the_same_epoch() {
    let world = World::enrolled().await;
    let admin = world.client(ADMIN);
    let clinic = world.client(CLINIC);
    let node = B256::repeat_byte(0x11);
    assert_eq!(admin.active_node_entity(node).await.unwrap(), None);

    clinic.enrol_node(node).await.unwrap();
    assert_eq!(
        admin.active_node_entity(node).await.unwrap(),
        Some(world.addr(CLINIC))
    );
    // First come; a second entity cannot take it, nor can a non-entity enrol.
    assert_refused!(
        world.client(HOSPITAL).enrol_node(node).await,
        Refusal::Roles(RolesErrors::NodeTaken(_))
    );
    assert_refused!(
        world
            .client(PHYSICIAN)
            .enrol_node(B256::repeat_byte(0x12))
            .await,
        Refusal::Roles(RolesErrors::NotActiveEntity(_))
    );
    assert_refused!(
        clinic.enrol_node(B256::ZERO).await,
        Refusal::Roles(RolesErrors::ZeroNode(_))
    );
    // Another entity cannot retire it; the admin can (a squatted node).
    assert_refused!(
        world.client(HOSPITAL).retire_node(node).await,
        Refusal::Roles(RolesErrors::NotAllowed(_))
    );

    // Revoking the clinic takes its node out, and re-enrolling the clinic
    // does not bring it back.
    admin.revoke_entity(world.addr(CLINIC)).await.unwrap();
    assert_eq!(admin.active_node_entity(node).await.unwrap(), None);
    world
        .consortium
        .enrol_entity(CLINIC, EntityKind::Clinic, "Riverside")
        .await
        .unwrap();
    assert_eq!(admin.active_node_entity(node).await.unwrap(), None);
    admin.retire_node(node).await.unwrap();
    clinic.enrol_node(node).await.unwrap();
    assert_eq!(
        admin.active_node_entity(node).await.unwrap(),
        Some(world.addr(CLINIC))
    );

    // At most 16 nodes per entity.
    for i in 1..16u8 {
        clinic
            .enrol_node(B256::repeat_byte(0x40 + i))
            .await
            .unwrap();
    }
    assert_refused!(
        clinic.enrol_node(B256::repeat_byte(0x7f)).await,
        Refusal::Roles(RolesErrors::TooManyNodes(_))
    );
    clinic.retire_node(node).await.unwrap();
    assert_refused!(
        clinic.retire_node(node).await,
        Refusal::Roles(RolesErrors::UnknownNode(_))
    );
}
