//! Roles: the consortium admin, medical entities, physicians, patients, hubs.

mod support;

use alloy::primitives::Address;
use glyco_contracts::bindings::Roles::{self, RolesErrors};
use glyco_contracts::{EntityKind, Refusal, Role};
use support::{World, accounts::*};

#[tokio::test]
async fn the_deployer_is_admin_and_enrols_entities_and_physicians() {
    let world = World::empty().await;
    let admin = world.client(ADMIN);
    assert_eq!(admin.admin().await.unwrap(), world.addr(ADMIN));

    let tx = admin
        .enrol_entity(world.addr(HOSPITAL), EntityKind::Hospital, "St Luke's")
        .await
        .unwrap();
    assert!(tx.gas_used > 21_000);
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

    admin
        .enrol_physician(world.addr(PHYSICIAN), world.addr(HOSPITAL))
        .await
        .unwrap();
    assert!(
        admin
            .is_active_physician(world.addr(PHYSICIAN))
            .await
            .unwrap()
    );
    assert_eq!(
        admin.role_of(world.addr(PHYSICIAN)).await.unwrap(),
        Some(Role::Physician)
    );
}

#[tokio::test]
async fn a_non_admin_cannot_enrol_an_entity_or_a_physician() {
    let world = World::enrolled().await;
    let stranger = world.client(STRANGER);
    assert_refused!(
        stranger
            .enrol_entity(world.addr(STRANGER), EntityKind::Lab, "Fake Lab")
            .await,
        Refusal::Roles(RolesErrors::NotAdmin(_))
    );
    // Not even an enrolled hospital or physician may enrol a physician.
    for index in [HOSPITAL, PHYSICIAN, STRANGER] {
        assert_refused!(
            world
                .client(index)
                .enrol_physician(world.addr(NEXT_ADMIN), world.addr(HOSPITAL))
                .await,
            Refusal::Roles(RolesErrors::NotAdmin(_))
        );
    }
    assert_eq!(
        stranger.role_of(world.addr(NEXT_ADMIN)).await.unwrap(),
        Some(Role::None)
    );
}

#[tokio::test]
async fn enrolment_refuses_bad_kinds_zero_addresses_and_taken_roles() {
    let world = World::enrolled().await;
    let admin = world.client(ADMIN);
    // Kind None (0) cannot be expressed through the typed client: call the raw binding.
    let roles = Roles::new(
        world.consortium.deployment.contracts.roles,
        admin.provider(),
    );
    let err = roles
        .enrolEntity(world.addr(STRANGER), 0, "nothing".into())
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
            .enrol_entity(Address::ZERO, EntityKind::Lab, "zero")
            .await,
        Refusal::Roles(RolesErrors::ZeroAddress(_))
    );
    assert_refused!(
        admin
            .enrol_entity(world.addr(HOSPITAL), EntityKind::Hospital, "again")
            .await,
        Refusal::Roles(RolesErrors::RoleTaken(_))
    );
    // A patient's key cannot also become a physician, nor a physician's an entity.
    assert_refused!(
        admin
            .enrol_physician(world.addr(PATIENT), world.addr(HOSPITAL))
            .await,
        Refusal::Roles(RolesErrors::RoleTaken(_))
    );
    assert_refused!(
        admin
            .enrol_entity(world.addr(PHYSICIAN), EntityKind::Lab, "x")
            .await,
        Refusal::Roles(RolesErrors::RoleTaken(_))
    );
    // A physician must belong to an active entity.
    assert_refused!(
        admin
            .enrol_physician(world.addr(STRANGER), world.addr(PATIENT))
            .await,
        Refusal::Roles(RolesErrors::NotActiveEntity(_))
    );
}

#[tokio::test]
async fn only_an_active_physician_registers_a_patient_and_only_once() {
    let world = World::enrolled().await;
    let physician = world.client(PHYSICIAN);
    assert_eq!(
        physician.registered_by(world.addr(PATIENT)).await.unwrap(),
        world.addr(PHYSICIAN)
    );
    assert_refused!(
        physician.register_patient(world.addr(PATIENT)).await,
        Refusal::Roles(RolesErrors::RoleTaken(_))
    );
    for index in [ADMIN, HOSPITAL, PATIENT, HUB, STRANGER] {
        assert_refused!(
            world
                .client(index)
                .register_patient(world.addr(NEXT_ADMIN))
                .await,
            Refusal::Roles(RolesErrors::NotActivePhysician(_))
        );
    }
    assert_refused!(
        physician.register_patient(Address::ZERO).await,
        Refusal::Roles(RolesErrors::ZeroAddress(_))
    );
}

#[tokio::test]
async fn revoking_a_physician_or_their_entity_ends_their_powers_and_re_enrolment_restores_them() {
    let world = World::enrolled().await;
    let admin = world.client(ADMIN);
    let locum = world.client(LOCUM);

    admin.revoke_physician(world.addr(LOCUM)).await.unwrap();
    assert!(!admin.is_active_physician(world.addr(LOCUM)).await.unwrap());
    assert_refused!(
        locum.register_patient(world.addr(NEXT_ADMIN)).await,
        Refusal::Roles(RolesErrors::NotActivePhysician(_))
    );
    admin
        .enrol_physician(world.addr(LOCUM), world.addr(CLINIC))
        .await
        .unwrap();
    assert!(admin.is_active_physician(world.addr(LOCUM)).await.unwrap());

    // Revoking the clinic makes its physician inactive too.
    admin.revoke_entity(world.addr(CLINIC)).await.unwrap();
    assert!(!admin.is_active_physician(world.addr(LOCUM)).await.unwrap());
    assert_refused!(
        admin
            .enrol_physician(world.addr(STRANGER), world.addr(CLINIC))
            .await,
        Refusal::Roles(RolesErrors::NotActiveEntity(_))
    );
    assert_refused!(
        admin.revoke_entity(world.addr(PHYSICIAN)).await,
        Refusal::Roles(RolesErrors::NotEntity(_))
    );
    assert_refused!(
        admin.revoke_physician(world.addr(HOSPITAL)).await,
        Refusal::Roles(RolesErrors::NotPhysician(_))
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
async fn patients_authorise_and_revoke_their_own_hubs() {
    let world = World::enrolled().await;
    let patient = world.client(PATIENT);
    assert_eq!(
        patient.hub_patient(world.addr(HUB)).await.unwrap(),
        Some(world.addr(PATIENT))
    );
    assert!(
        patient
            .acts_for(world.addr(HUB), world.addr(PATIENT))
            .await
            .unwrap()
    );
    assert!(
        patient
            .acts_for(world.addr(PATIENT), world.addr(PATIENT))
            .await
            .unwrap()
    );
    assert!(
        !patient
            .acts_for(world.addr(HUB), world.addr(SECOND_PATIENT))
            .await
            .unwrap()
    );

    // Only patients authorise hubs, and a key with a role cannot become a hub.
    assert_refused!(
        world
            .client(PHYSICIAN)
            .authorise_hub(world.addr(STRANGER))
            .await,
        Refusal::Roles(RolesErrors::NotPatient(_))
    );
    assert_refused!(
        world
            .client(SECOND_PATIENT)
            .authorise_hub(world.addr(HUB))
            .await,
        Refusal::Roles(RolesErrors::RoleTaken(_))
    );
    // Another patient cannot revoke this patient's hub.
    assert_refused!(
        world
            .client(SECOND_PATIENT)
            .revoke_hub(world.addr(HUB))
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
    assert_refused!(
        patient.revoke_hub(world.addr(HUB)).await,
        Refusal::Roles(RolesErrors::NotHubOfPatient(_))
    );
}

#[tokio::test]
async fn admin_transfer_moves_every_admin_power() {
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
    assert_eq!(new.admin().await.unwrap(), world.addr(NEXT_ADMIN));
    assert_refused!(
        old.enrol_entity(world.addr(STRANGER), EntityKind::Lab, "Lab")
            .await,
        Refusal::Roles(RolesErrors::NotAdmin(_))
    );
    new.enrol_entity(world.addr(STRANGER), EntityKind::Lab, "Lab")
        .await
        .unwrap();
}

#[tokio::test]
async fn every_role_change_emits_an_indexed_event() {
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

    client.revoke_physician(world.addr(LOCUM)).await.unwrap();
    client.revoke_entity(world.addr(CLINIC)).await.unwrap();
    world
        .client(PATIENT)
        .revoke_hub(world.addr(HUB))
        .await
        .unwrap();
    assert_eq!(
        roles
            .PhysicianRevoked_filter()
            .from_block(0)
            .query()
            .await
            .unwrap()
            .len(),
        1
    );
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
